"""Finished jobs on disk: ``<results-dir>/<job_id>/`` with PNG frames, optional GIF/MP4 and ``record.json``.

Layout of one job::

    <job_id>/record.json              settings, seed, engine, crop box, timings, status
    <job_id>/video_0/frame_0000.png   frames of video 0 (RGBA where the input had alpha)
    <job_id>/video_0.gif, video_0.mp4 previews, when requested
    <job_id>/frames.zip               built on first download

Every file is written atomically (the export helpers), and ``record.json`` is written last, so a
folder with a record is complete; a restarted server reloads jobs from their records. Folder names
are job ids, which the server makes itself and checks against a strict pattern: no client-supplied
text ever becomes part of a path.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..engines import GenerationResult
from ..engines.results import write_videos
from ..pipeline.export import write_record
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
# A job folder without a record is a job being written, or one a crash interrupted; only the
# latter is old.
_STALE_INCOMPLETE_S = 3600.0


@dataclass(frozen=True)
class PruneLimits:
    """Finished jobs older than ``keep_hours``, or beyond ``keep_gb`` in total (oldest first), are deleted.

    0 turns a limit off.
    """

    keep_hours: float = 168.0
    keep_gb: float = 10.0


def _folder_size(folder: Path) -> int:
    total = 0
    for path in folder.rglob("*"):
        try:
            if path.is_file():
                total += path.stat().st_size
        except OSError:
            pass  # deleted meanwhile
    return total


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
        """Write ``record.json`` atomically (last, so its presence marks a complete folder)."""
        write_record(self.job_dir(job_id) / RECORD_NAME, record)

    def delete(self, job_id: str) -> None:
        """Remove a job's folder and everything in it (no error if it is gone)."""
        shutil.rmtree(self.job_dir(job_id), ignore_errors=True)
        self._sizes.pop(job_id, None)

    def size(self, job_id: str) -> int:
        """Bytes a job's folder takes; cached, because pruning asks after every job."""
        if job_id not in self._sizes:
            self._sizes[job_id] = _folder_size(self.job_dir(job_id))
        return self._sizes[job_id]

    def zip_path(self, job_id: str) -> Path:
        """``frames.zip`` with every frame and the record, built on first use (atomically)."""
        folder = self.job_dir(job_id)
        target = folder / ZIP_NAME
        if target.exists():
            return target
        temp = folder / f".{ZIP_NAME}.{os.getpid()}.{time.monotonic_ns()}.tmp"
        try:
            # PNGs are compressed already: store them, do not deflate them again.
            with zipfile.ZipFile(temp, "w", compression=zipfile.ZIP_STORED) as archive:
                archive.write(folder / RECORD_NAME, RECORD_NAME)
                for frame in sorted(folder.glob("video_*/frame_*.png")):
                    archive.write(frame, frame.relative_to(folder).as_posix())
            os.replace(temp, target)
            self._sizes.pop(job_id, None)
        finally:
            temp.unlink(missing_ok=True)
        return target

    # -- reading and pruning -------------------------------------------------------------------

    def load_records(self) -> list[dict[str, Any]]:
        """Records of every complete job folder; incomplete folders left by a crash are removed."""
        records = []
        now = time.time()
        for folder in sorted(self.root.iterdir()):
            if not folder.is_dir() or not is_job_id(folder.name):
                continue
            path = folder / RECORD_NAME
            if not path.exists():
                if now - folder.stat().st_mtime > _STALE_INCOMPLETE_S:
                    logger.info("removing incomplete job folder %s", folder)
                    shutil.rmtree(folder, ignore_errors=True)
                continue
            try:
                record = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as error:
                logger.warning("skipping unreadable job record %s: %s", path, error)
                continue
            if not isinstance(record, dict) or record.get("id") != folder.name:
                logger.warning("skipping job record %s: its id does not match its folder", path)
                continue
            records.append(record)
        return records

    def prune(self, jobs: Iterable[tuple[str, float]], limits: PruneLimits, now: float | None = None) -> list[str]:
        """Delete finished jobs beyond the limits; ``jobs`` are ``(job_id, finished_at)``. Returns the deleted ids.

        The size limit deletes the oldest jobs first and spares the newest one even when it alone is
        over the limit (its client has not fetched it yet); the age limit applies to every job.
        """
        now = time.time() if now is None else now
        ordered = sorted(jobs, key=lambda item: item[1])  # oldest first
        deleted: list[str] = []
        if limits.keep_hours > 0:
            cutoff = now - limits.keep_hours * 3600
            deleted = [job_id for job_id, finished_at in ordered if finished_at < cutoff]
        gone = set(deleted)
        kept = [job_id for job_id, _ in ordered if job_id not in gone]
        if limits.keep_gb > 0:
            sizes = {job_id: self.size(job_id) for job_id in kept}
            budget = limits.keep_gb * 1024**3
            total = sum(sizes.values())
            for job_id in kept[:-1]:  # never the newest: its client has yet to fetch it
                if total <= budget:
                    break
                total -= sizes[job_id]
                deleted.append(job_id)
        for job_id in deleted:
            self.delete(job_id)
        if deleted:
            logger.info("pruned %d finished job(s) beyond the limits (%s)", len(deleted), limits)
        return deleted
