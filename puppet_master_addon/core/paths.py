"""Where results go on disk, and how their paths are stored in the .blend (bpy-free).

- A results folder set in the preferences wins (``//``-relative to the .blend, or absolute).
- Otherwise, next to the saved .blend: ``<blend folder>/puppet_master/<job_id>/``, stored as
  ``//puppet_master/<job_id>/...`` so the project can move as a whole.
- An unsaved file has no folder of its own: the extension's user folder (``.../results``).

Results are loaded as image sequences ``video_<k>/frame_<nnnn>.png``; a frame step > 1 is a
"held" copy of the sequence (each frame repeated, as hard links) in ``video_<k>_step<n>/``.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path

BLEND_RESULTS_DIR = "puppet_master"
FRAME_PATTERN = re.compile(r"^frame_(\d{4,5})\.png$")


def results_root(blend_filepath: str, preference_folder: str, user_folder: Callable[[], str]) -> Path:
    """The folder that receives one sub-folder per job.

    Parameters:
        blend_filepath: the open .blend's path ("" when unsaved).
        preference_folder: the add-on preference (may be "", absolute, or ``//``-relative).
        user_folder: returns the extension's user results folder; only called when needed.
    """
    preference_folder = (preference_folder or "").strip()
    if preference_folder:
        if preference_folder.startswith("//"):
            if blend_filepath:
                return Path(os.path.dirname(blend_filepath), preference_folder[2:]).resolve()
            # relative to an unsaved file means nothing: fall through to the user folder
        else:
            return Path(preference_folder).expanduser().resolve()
    elif blend_filepath:
        return Path(os.path.dirname(blend_filepath), BLEND_RESULTS_DIR).resolve()
    return Path(user_folder()).resolve()


def blend_relative(path: str | os.PathLike[str], blend_filepath: str) -> str:
    """``path`` as ``//sub/folder/`` when it lies under the .blend's folder, else absolute (with a trailing /)."""
    path = Path(path).resolve()
    if blend_filepath:
        base = Path(os.path.dirname(blend_filepath)).resolve()
        try:
            relative = path.relative_to(base)
        except ValueError:
            pass
        else:
            return "//" + (relative.as_posix() + "/" if relative.parts else "")
    return str(path) + os.sep


def frame_files(folder: str | os.PathLike[str]) -> list[str]:
    """The ``frame_<nnnn>.png`` names in ``folder``, in frame order (empty when none or missing)."""
    try:
        names = os.listdir(folder)
    except OSError:
        return []
    return sorted((name for name in names if FRAME_PATTERN.match(name)), key=lambda name: int(name[6:-4]))


def video_folders(job_folder: str | os.PathLike[str]) -> list[Path]:
    """The ``video_<k>`` folders of a job folder, in order."""
    job_folder = Path(job_folder)
    found = [path for path in job_folder.glob("video_*") if path.is_dir() and path.name[6:].isdigit()]
    return sorted(found, key=lambda path: int(path.name[6:]))


def held_sequence(folder: str | os.PathLike[str], step: int) -> Path:
    """A sequence where each frame of ``folder`` is held for ``step`` frames; ``folder`` itself when step is 1.

    The copy is ``<folder>_step<step>/frame_0000.png ...`` made of hard links (copies where links are
    not possible), written to a temporary folder first and renamed into place; an existing complete
    one is reused. This is how Frame Step works the same for backgrounds, image empties and strips:
    image users and strips play one file per scene frame.
    """
    folder = Path(folder)
    if step <= 1:
        return folder
    frames = frame_files(folder)
    if not frames:
        raise FileNotFoundError(f"no frame_*.png files in {folder}")
    target = folder.with_name(f"{folder.name}_step{step}")
    if len(frame_files(target)) == len(frames) * step:
        return target
    temp = folder.with_name(f".{target.name}.{os.getpid()}.partial")
    shutil.rmtree(temp, ignore_errors=True)
    temp.mkdir(parents=True)
    try:
        for index, name in enumerate(frames):
            for repeat in range(step):
                destination = temp / f"frame_{index * step + repeat:04d}.png"
                try:
                    os.link(folder / name, destination)
                except OSError:
                    shutil.copyfile(folder / name, destination)
        if target.exists():
            shutil.rmtree(target)
        os.replace(temp, target)
    finally:
        shutil.rmtree(temp, ignore_errors=True)
    return target
