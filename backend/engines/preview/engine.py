"""``PreviewEngine``: the preview's frames with the same inputs and outputs as the model.

The request's image, mask, part map and depth go through the same crop as the model image (the part
map and depth by nearest neighbour, so ids and depths are never blended); the frames come back onto
the input image. An input with transparency keeps it: the output's alpha is the moved object's.
"""

from __future__ import annotations

import math
import secrets
import threading
import time
from typing import Any

import numpy as np
from PIL import Image

from ...pipeline.inputs import ModelInputs, frames_to_input, prepare_inputs
from ...pipeline.preprocess import CropBox, crop_to_model_image, uncrop_frames
from ..base import Cancelled, GenerationRequest, GenerationResult, ProgressCallback, request_settings
from .animate import iter_preview_frames


def crop_nearest(array: np.ndarray, box: CropBox, size: int, fill: float) -> np.ndarray:
    """``(size, size)`` nearest-neighbour crop of an ``(H, W)`` array through ``box``; ``fill`` beyond the image.

    Each model pixel takes the input pixel under its centre, so part ids and depths are never mixed.
    """
    array = np.asarray(array)
    centres = box.size * (np.arange(size) + 0.5) / size
    cols = np.floor(box.left + centres).astype(np.int64)
    rows = np.floor(box.top + centres).astype(np.int64)
    inside_cols = (cols >= 0) & (cols < box.image_width)
    inside_rows = (rows >= 0) & (rows < box.image_height)
    result = np.full((size, size), fill, dtype=np.result_type(array.dtype, np.min_scalar_type(fill)))
    result[np.ix_(inside_rows, inside_cols)] = array[np.ix_(rows[inside_rows], cols[inside_cols])]
    return result


def _model_alpha(request: GenerationRequest, inputs: ModelInputs, size: int) -> np.ndarray:
    """``(s, s)`` float alpha of the model image: the input's own (soft) alpha when it has one, else the mask."""
    if request.mask is not None or not request.image.has_transparency_data:
        return inputs.mask.astype(np.float32)
    # cropped as "dark = opaque", because the crop pads with white
    inverted = Image.fromarray(255 - np.asarray(request.image.convert("RGBA"))[..., 3]).convert("RGB")
    cropped = np.asarray(crop_to_model_image(inverted, inputs.crop_box, size))[..., 0]
    return (255 - cropped.astype(np.float32)) / 255.0


def _input_alpha(frames: np.ndarray, inputs: ModelInputs) -> np.ndarray:
    """``(F, H, W)`` uint8 alpha of the frames on the input image (the input's own alpha outside the crop)."""
    as_grey = np.repeat(frames[..., 3:], 3, axis=-1)
    background = np.repeat(inputs.background[..., 3:], 3, axis=-1)
    return uncrop_frames(as_grey, inputs.crop_box, background)[..., 0]


class PreviewEngine:
    """The weight-free preview engine: the same inputs and outputs as the model, made by moving parts.

    Parameters:
        reason: why this engine runs (e.g. ``"requested"``, or ``"no CUDA device"`` when the service
            falls back to it); reported by :meth:`describe`.
    """

    name = "preview"

    def __init__(self, reason: str = "requested") -> None:
        self.reason = reason

    def describe(self) -> dict[str, Any]:
        """Engine name, device, dtype, model identity and why this engine was chosen."""
        return {
            "engine": self.name,
            "device": "cpu",
            "dtype": "none",
            "model": "preview (rigid part motion, no weights)",
            "reason": self.reason,
        }

    def generate(
        self,
        request: GenerationRequest,
        progress: ProgressCallback | None = None,
        cancel: threading.Event | None = None,
    ) -> GenerationResult:
        """Move the dragged parts; ``progress(n, F)`` after each frame, Cancelled between frames.

        The un-crop onto the input frame is reported as the "decoding" phase.
        """
        num_videos = request.num_videos
        if isinstance(num_videos, bool) or not isinstance(num_videos, int | np.integer) or num_videos < 1:
            raise ValueError(f"num_videos must be an integer of at least 1, got {num_videos!r}")
        # 1. crop the object, its part map and depth, and map the drags (ValueError for bad input propagates)
        started = time.perf_counter()
        inputs = prepare_inputs(
            request.image, request.drags, request.num_frames, request.mask, request.crop_scale, request.ease
        )
        image = np.asarray(inputs.image.convert("RGB"))
        size = image.shape[0]
        alpha = _model_alpha(request, inputs, size)
        part_map = None if request.part_map is None else crop_nearest(request.part_map, inputs.crop_box, size, 0)
        depth = None
        if request.depth is not None:
            depth = crop_nearest(np.asarray(request.depth, dtype=np.float32), inputs.crop_box, size, math.inf)
        timings = {"preprocess": time.perf_counter() - started}

        # 2. the frames, one at a time, checking for cancel before each
        started = time.perf_counter()
        num_frames = inputs.num_frames
        preview_frames = iter_preview_frames(image, alpha, inputs.trajectories, part_map, depth)
        frames = []
        for index in range(num_frames):
            if cancel is not None and cancel.is_set():
                raise Cancelled(f"preview cancelled after {index} of {num_frames} frames")
            frames.append(next(preview_frames))
            if progress is not None:
                progress(index + 1, num_frames)
        rgba = np.stack(frames)
        crop = np.ascontiguousarray(rgba[..., :3])
        timings["warp"] = time.perf_counter() - started

        # 3. back onto the input frame; an input with transparency keeps it
        if progress is not None:
            progress(num_frames, num_frames, "decoding")
        started = time.perf_counter()
        video = frames_to_input(crop, inputs)
        if request.image.has_transparency_data:
            video[..., 3] = _input_alpha(rgba, inputs)
        timings["postprocess"] = time.perf_counter() - started

        # deterministic: every variation is the same video (the same arrays, not copies)
        num_videos = int(num_videos)
        return GenerationResult(
            videos=[video] * num_videos,
            crops=[crop] * num_videos,
            crop_box=inputs.crop_box,
            image_trajectories=inputs.image_trajectories,
            # the preview ignores the seed; a null seed is still picked and reported, as every engine does
            seed=request.seed if request.seed is not None else secrets.randbits(32),
            engine=self.name,
            timings=timings,
            settings=request_settings(request)
            | {
                "variations": "identical: the preview is deterministic",
                "parts": "from the part map" if request.part_map is not None else "grown from the image",
                "note": "preview engine: parts of the input moved rigidly, not the Puppet-Master model",
            },
        )
