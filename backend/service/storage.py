"""Finished jobs on disk: ``<results-dir>/<job_id>/`` with PNG frames, optional GIF/MP4 and ``record.json``.

Layout of one job::

    <job_id>/record.json              settings, seed, engine, crop box, timings, status
    <job_id>/video_0/frame_0000.png   frames of video 0 (RGBA where the input had alpha)
    <job_id>/video_0.gif, video_0.mp4 previews, when requested

Every file is written atomically, and ``record.json`` is written last and durably (the frames are
fsync'd first, then the record, then the folder), so a folder with a record is complete and
survives a crash or power loss; the job becomes visible as finished only after that. Deleting
first renames the folder to a tombstone (``.trash-*``, one atomic step), so a half-deleted job is
never served; tombstones, temporary files and folders without a record are leftovers of a crash,
removed when the service starts. Folder names are job ids, which the server makes itself and
checks against a strict pattern: no client-supplied text ever becomes part of a path.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
import time
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..engines import GenerationResult
from ..engines.results import write_videos
from . import faults
from .registry import is_job_id
from .schemas import OutputOptions

logger = logging.getLogger(__name__)

# zlib level of the frame PNGs: encoding dominates the service's own time per job, and level 1 is
# about 3.5x faster than the default 6, for files about 40% larger (docs/performance.md); results
# are local and pruned, so time matters more than disk here.
PNG_COMPRESS_LEVEL = 1
# Frames are encoded in parallel (Pillow releases the GIL while it compresses).
PNG_WRITE_WORKERS = max(1, min(8, os.cpu_count() or 1))
RECORD_NAME = "record.json"
ZIP_NAME = "frames.zip"
TRASH_PREFIX = ".trash-"
# Temporary files of the atomic writers are hidden and carry ".tmp" in their name.
_TEMP_MARK = ".tmp"


@dataclass(frozen=True)
class PruneLimits:
    """Finished jobs older than ``keep_hours``, or beyond ``keep_gb`` in total (oldest first), are deleted.

    0 turns a limit off.
    """

    keep_hours: float = 168.0
    keep_gb: float = 10.0


@dataclass
class Leftovers:
    """What :meth:`ResultStore.remove_leftovers` found and removed."""

    files: int = 0
    bytes: int = 0

    def add(self, path: Path) -> None:
        if path.is_dir() and not path.is_symlink():
            for item in path.rglob("*"):
                self.add_file(item)
        else:
            self.add_file(path)

    def add_file(self, path: Path) -> None:
        try:
            if path.is_file():
                self.files += 1
                self.bytes += path.stat().st_size
        except OSError:
            pass


def _folder_size(folder: Path) -> int:
    """Bytes of every file under ``folder``, temporary files included (they take disk space too)."""
    total = 0
    for path in folder.rglob("*"):
        try:
            if path.is_file():
                total += path.stat().st_size
        except OSError:
            pass  # deleted meanwhile
    return total


def _fsync_path(path: Path) -> None:
    """Flush a file's (or folder's) data to the disk; a folder that cannot be opened (Windows) is skipped."""
    try:
        descriptor = os.open(path, os.O_RDONLY)
    except (IsADirectoryError, PermissionError):
        return
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _fsync_tree(folder: Path) -> None:
    """fsync every file under ``folder``, then the folders, deepest first (their entries name the files)."""
    folders = [folder]
    for path in sorted(folder.rglob("*"), reverse=True):
        if path.is_dir():
            folders.append(path)
        elif path.is_file():
            _fsync_path(path)
    for directory in sorted(folders, key=lambda item: len(item.parts), reverse=True):
        _fsync_path(directory)


def write_durably(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that after this returns it survives a crash: temp file, fsync, rename, fsync."""
    temp = path.with_name(f".{path.name}.{secrets.token_hex(4)}{_TEMP_MARK}")
    try:
        with open(temp, "xb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    _fsync_path(path.parent)


class _ZipSink:
    """A write-only stream for ``zipfile`` that hands out what was written so far (no ``tell``: zipfile streams)."""

    def __init__(self) -> None:
        self._chunks: list[bytes] = []

    def write(self, data: bytes) -> int:
        self._chunks.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        pass

    def take(self) -> bytes:
        data, self._chunks = b"".join(self._chunks), []
        return data


class ResultStore:
    """Reads and writes job folders under one results directory."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).expanduser().resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self._sizes: dict[str, int] = {}

    # -- paths ---------------------------------------------------------------------------------

    def job_dir(self, job_id: str) -> Path:
        """The folder of a job; ValueError for anything that is not a job id."""
        if not is_job_id(job_id):
            raise ValueError(f"not a job id: {job_id!r}")
        return self.root / job_id

    def frame_path(self, job_id: str, video: int, index: int) -> Path:
        return self.job_dir(job_id) / f"video_{int(video)}" / f"frame_{int(index):04d}.png"

    def preview_path(self, job_id: str, video: int, kind: str) -> Path:
        if kind not in ("gif", "mp4"):
            raise ValueError(f"unknown preview kind {kind!r}")
        return self.job_dir(job_id) / f"video_{int(video)}.{kind}"

    # -- writing -------------------------------------------------------------------------------

    def save_outputs(self, job_id: str, result: GenerationResult, output: OutputOptions) -> dict[str, Any]:
        """Write the frames (and GIF/MP4 when asked); return which previews exist and any warnings."""
        return write_videos(
            result, self.job_dir(job_id), gif=output.gif, mp4=output.mp4, overlay=output.overlay, fps=output.fps,
            compress_level=PNG_COMPRESS_LEVEL, workers=PNG_WRITE_WORKERS,
        )  # fmt: skip

    def write_record(self, job_id: str, record: dict[str, Any]) -> None:
        """Make the job's folder durable and write ``record.json`` last, so its presence marks a complete folder.

        Raises OSError when the disk refuses (full, read-only); the caller decides what the job becomes.
        """
        folder = self.job_dir(job_id)
        folder.mkdir(parents=True, exist_ok=True)
        _fsync_tree(folder)
        text = json.dumps(record, indent=2, sort_keys=True, allow_nan=False) + "\n"
        write_durably(folder / RECORD_NAME, text.encode("utf-8"))
        _fsync_path(self.root)
        self._sizes.pop(job_id, None)

    def delete(self, job_id: str) -> None:
        """Remove a job's folder: rename it to a tombstone (one atomic step), then delete the tombstone.

        Once the rename is done the job is gone for readers and for a restarted service, however
        far the deletion gets. Raises OSError when the folder cannot be renamed (read-only disk):
        then nothing changed. A folder that does not exist is fine.
        """
        folder = self.job_dir(job_id)
        tombstone = self.root / f"{TRASH_PREFIX}{job_id}-{secrets.token_hex(4)}"
        try:
            os.rename(folder, tombstone)
        except FileNotFoundError:
            self._sizes.pop(job_id, None)
            return
        self._sizes.pop(job_id, None)
        try:
            _fsync_path(self.root)
        except OSError as error:  # the rename stands in this process either way; a restart finishes it
            logger.warning("could not flush the deletion of job %s: %s", job_id, faults.describe(error))
        shutil.rmtree(tombstone, ignore_errors=True)

    def discard(self, job_id: str) -> None:
        """Remove what a failed or cancelled job started writing; a failure is logged, not raised."""
        try:
            self.delete(job_id)
        except OSError as error:
            logger.warning("could not remove the partial files of job %s: %s", job_id, faults.describe(error))

    # -- reading -------------------------------------------------------------------------------

    def has_record(self, job_id: str) -> bool:
        return (self.job_dir(job_id) / RECORD_NAME).is_file()

    def read_record(self, job_id: str) -> dict[str, Any]:
        """A job's record; FileNotFoundError when the job is gone, ValueError when the file is damaged."""
        record = json.loads((self.job_dir(job_id) / RECORD_NAME).read_text(encoding="utf-8"))
        if not isinstance(record, dict):
            raise ValueError("the record is not a JSON object")
        return record

    def free_bytes(self) -> int | None:
        """Free space on the results disk, or None when the system cannot say."""
        try:
            return shutil.disk_usage(self.root).free
        except OSError:
            return None

    def size(self, job_id: str) -> int:
        """Bytes a job's folder takes; cached, because pruning asks after every job."""
        if job_id not in self._sizes:
            self._sizes[job_id] = _folder_size(self.job_dir(job_id))
        return self._sizes[job_id]

    def zip_members(self, job_id: str, num_videos: int, num_frames: int) -> list[str]:
        """The files ``frames.zip`` holds (the record, then every frame); FileNotFoundError if one is gone."""
        names = [RECORD_NAME] + [
            f"video_{video}/frame_{index:04d}.png" for video in range(num_videos) for index in range(num_frames)
        ]
        folder = self.job_dir(job_id)
        for name in names:
            if not (folder / name).is_file():
                raise FileNotFoundError(name)
        return names

    def zip_stream(self, job_id: str, names: list[str]) -> Iterator[bytes]:
        """``frames.zip`` built while it is sent: nothing is written to the results disk, so a full or
        read-only disk does not stop a download, and the archive takes no space. PNGs are compressed
        already, so they are stored, not deflated again."""
        folder = self.job_dir(job_id)
        sink = _ZipSink()
        with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_STORED) as archive:  # type: ignore[arg-type]
            for name in names:
                archive.write(folder / name, name)
                yield sink.take()
        yield sink.take()  # the central directory

    def load_records(self) -> list[dict[str, Any]]:
        """Records of every complete job folder (run :meth:`remove_leftovers` first)."""
        records = []
        for folder in sorted(self.root.iterdir()):
            if not folder.is_dir() or not is_job_id(folder.name) or not (folder / RECORD_NAME).is_file():
                continue
            try:
                record = self.read_record(folder.name)
            except (OSError, ValueError) as error:
                logger.warning("skipping the unreadable record of job %s: %s", folder.name, faults.describe(error))
                continue
            if record.get("id") != folder.name:
                logger.warning("skipping the record in %s: its id does not match its folder", folder.name)
                continue
            records.append(record)
        return records

    # -- start-up and pruning ------------------------------------------------------------------

    def remove_leftovers(self) -> Leftovers:
        """Remove what a crash left behind: tombstones, temporary files, job folders without a record.

        Called before the service accepts work, so no job of this process is being written. An
        interrupted job's partial folder goes too: the journal still has the job, and it runs again.
        """
        found = Leftovers()
        for path in sorted(self.root.iterdir()):
            if path.name.startswith(TRASH_PREFIX) or (path.name.startswith(".") and _TEMP_MARK in path.name):
                found.add(path)
                self._remove(path)
            elif path.is_dir() and is_job_id(path.name):
                if not (path / RECORD_NAME).is_file():
                    found.add(path)
                    self._remove(path)
                    continue
                for item in path.rglob(f".*{_TEMP_MARK}*"):
                    found.add(item)
                    self._remove(item)
        if found.files:
            logger.info("removed %d leftover file(s), %.1f MB, of interrupted work", found.files, found.bytes / 1e6)
        return found

    @staticmethod
    def _remove(path: Path) -> None:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)

    def prune(self, jobs: Iterable[tuple[str, float]], limits: PruneLimits, now: float | None = None) -> list[str]:
        """Delete finished jobs beyond the limits; ``jobs`` are ``(job_id, finished_at)``. Returns the deleted ids.

        The size limit deletes the oldest jobs first and spares the newest one even when it alone is
        over the limit (its client has not fetched it yet); the age limit applies to every job. A job
        that cannot be deleted (read-only disk) stays, and is tried again next time.
        """
        now = time.time() if now is None else now
        ordered = sorted(jobs, key=lambda item: item[1])  # oldest first
        doomed: list[str] = []
        if limits.keep_hours > 0:
            cutoff = now - limits.keep_hours * 3600
            doomed = [job_id for job_id, finished_at in ordered if finished_at < cutoff]
        gone = set(doomed)
        kept = [job_id for job_id, _ in ordered if job_id not in gone]
        if limits.keep_gb > 0:
            sizes = {job_id: self.size(job_id) for job_id in kept}
            budget = limits.keep_gb * 1024**3
            total = sum(sizes.values())
            for job_id in kept[:-1]:  # never the newest: its client has yet to fetch it
                if total <= budget:
                    break
                total -= sizes[job_id]
                doomed.append(job_id)
        deleted = []
        for job_id in doomed:
            try:
                self.delete(job_id)
                deleted.append(job_id)
            except OSError as error:
                logger.warning("could not prune job %s: %s", job_id, faults.describe(error))
                break  # the disk refuses: the others would fail alike
        if deleted:
            logger.info("pruned %d finished job(s) beyond the limits (%s)", len(deleted), limits)
        return deleted


def check_results_dir(folder: str | os.PathLike[str]) -> Path:
    """The results folder, created and proven writable; ValueError (one sentence) naming the problem otherwise."""
    path = Path(folder).expanduser()
    try:
        path = path.resolve()
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".write-probe-{secrets.token_hex(4)}{_TEMP_MARK}"
        probe.write_bytes(b"")
        probe.unlink()
    except FileExistsError:
        raise ValueError(f"--results-dir {folder}: a file is in the way; give a folder") from None
    except NotADirectoryError:
        raise ValueError(f"--results-dir {folder}: part of that path is a file, not a folder") from None
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise ValueError(f"--results-dir {folder} cannot be written ({reason}); give a writable folder") from None
    return path
