"""Writing a :class:`GenerationResult` to a folder: frames, crops, optional GIF/MP4, the JSON record.

Used by ``puppet-master generate`` and by the service's result store, so both produce the same
layout: ``video_<k>/frame_<n>.png`` (aligned with the input image), optionally ``video_<k>/crop/``
(model-space frames), ``video_<k>.gif`` / ``.mp4`` and ``record.json``.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from ..pipeline.export import draw_drags, write_gif, write_mp4, write_png_sequence, write_record
from .base import GenerationResult

logger = logging.getLogger(__name__)
RECORD_NAME = "record.json"


def result_record(result: GenerationResult) -> dict[str, Any]:
    """The JSON record: engine, seed, settings, crop box, timings and the per-frame drag positions."""
    return {
        "engine": result.engine,
        "seed": result.seed,
        "settings": result.settings,
        "crop_box": result.crop_box.to_dict(),
        "timings": result.timings,
        "num_videos": len(result.videos),
        "num_frames": int(result.videos[0].shape[0]),
        "frame_size": [int(result.videos[0].shape[2]), int(result.videos[0].shape[1])],
        "trajectories": [track.tolist() for track in result.image_trajectories],
    }


def write_videos(
    result: GenerationResult,
    directory: str | os.PathLike,
    *,
    gif: bool = False,
    mp4: bool = False,
    overlay: bool = False,
    fps: float = 7,
    crops: bool = False,
    compress_level: int = 6,
    workers: int = 1,
) -> dict[str, list]:
    """Write every video's frames (and crops, GIF, MP4 when asked) under ``directory``, atomically per file.

    A GIF or MP4 that cannot be written (no ffmpeg, say) is a warning, not a failure: the frames are
    what the add-on needs. Returns ``{"gif": [video indices], "mp4": [...], "warnings": [...]}``.
    """
    root = Path(directory)
    written: dict[str, list] = {"gif": [], "mp4": [], "warnings": []}
    for index, video in enumerate(result.videos):
        folder = root / f"video_{index}"
        write_png_sequence(video, folder, compress_level=compress_level, workers=workers)
        if crops:
            write_png_sequence(result.crops[index], folder / "crop", compress_level=compress_level, workers=workers)
        if not (gif or mp4):
            continue
        movie = video
        if overlay:
            size = np.array([video.shape[2], video.shape[1]], dtype=np.float64)  # (W, H)
            movie = draw_drags(video, [np.asarray(track) * size for track in result.image_trajectories])
        for kind, wanted, writer in (("gif", gif, write_gif), ("mp4", mp4, write_mp4)):
            if not wanted:
                continue
            try:
                writer(movie, root / f"video_{index}.{kind}", fps=fps)
                written[kind].append(index)
            except (RuntimeError, OSError, ValueError) as error:
                logger.warning("could not write the %s of video %d: %s", kind, index, error)
                written["warnings"].append(f"{kind.upper()} of video {index} could not be written: {error}")
    return written


def save_result(
    result: GenerationResult,
    directory: str | os.PathLike,
    gif: bool = False,
    mp4: bool = False,
    overlay: bool = False,
) -> dict[str, Any]:
    """Write frames, crops, previews and ``record.json`` (last: its presence marks a complete folder)."""
    written = write_videos(result, directory, gif=gif, mp4=mp4, overlay=overlay, crops=True)
    record = result_record(result) | {"previews": written}
    write_record(Path(directory) / RECORD_NAME, record)
    return record
