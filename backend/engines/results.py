"""Writing a :class:`GenerationResult` to a folder: frames, crops, optional GIF/MP4, the JSON record."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from ..pipeline.export import draw_drags, write_gif, write_mp4, write_png_sequence, write_record
from .base import GenerationResult

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


def save_result(
    result: GenerationResult,
    directory: str | os.PathLike,
    gif: bool = False,
    mp4: bool = False,
    overlay: bool = False,
) -> dict[str, Any]:
    """Write every video under ``directory`` and return the record (with the written paths).

    Layout: ``video_<k>/frame_<n>.png`` (aligned with the input image, RGBA), ``video_<k>/crop/``
    (the model-space frames), ``video_<k>.gif`` / ``.mp4`` when asked (drags drawn on with
    ``overlay``), and ``record.json``. Every file is written atomically.
    """
    root = Path(directory)
    record = result_record(result)
    files: dict[str, list[str]] = {"frames": [], "crops": [], "gif": [], "mp4": []}
    for index, (video, crop) in enumerate(zip(result.videos, result.crops, strict=True)):
        folder = root / f"video_{index}"
        files["frames"] += [str(p) for p in write_png_sequence(video, folder)]
        files["crops"] += [str(p) for p in write_png_sequence(crop, folder / "crop")]
        movie = video
        if overlay:
            size = np.array([video.shape[2], video.shape[1]])
            movie = draw_drags(video, [track * size for track in result.image_trajectories])
        if gif:
            files["gif"].append(str(write_gif(movie, root / f"video_{index}.gif")))
        if mp4:
            files["mp4"].append(str(write_mp4(movie, root / f"video_{index}.mp4")))
    record["files"] = {kind: paths for kind, paths in files.items() if paths}
    write_record(root / RECORD_NAME, record)
    return record
