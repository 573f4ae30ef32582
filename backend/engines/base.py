"""The contract every engine keeps, so the CLI, the service and the add-on treat them alike."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from PIL import Image

from ..pipeline.preprocess import DEFAULT_CROP_SCALE, CropBox

# progress(step, total_steps[, phase]): called from the engine's thread after each unit of work. ``phase``
# names what the engine does now: "encoding", "sampling" (the default: step counts sampling steps),
# "decoding"; the service shows it, so a slow decode is not mistaken for a hang at 100%.
ProgressCallback = Callable[..., None]
SAMPLING = "sampling"


class Cancelled(Exception):
    """The generation was cancelled between steps; nothing was produced."""


@dataclass
class GenerationRequest:
    """One generation, in the coordinates of the submitted image.

    Attributes:
        image: the input image; with alpha, the alpha is the object mask.
        drags: 1-5 drags, each ``(N, 2)`` in normalised image coordinates (x right, y down, 0..1):
            2 points = straight, more = a path, exactly ``num_frames`` points = explicit timing.
        num_frames: frames of the video (the published model: 14).
        steps: denoising steps (the diffusion engine).
        guidance_scale: classifier-free guidance scale of the last frame (ramped from 1 at frame 0).
        seed: random seed; None picks one (reported in the result).
        num_videos: variations, generated in one batch.
        crop_scale: object crop side / longer object-box side; None = the whole image.
        ease: ``linear`` or ``ease-in-out`` timing of straight drags and paths.
        mask: optional ``(H, W)`` object mask, instead of the alpha.
    """

    image: Image.Image
    drags: list[np.ndarray]
    num_frames: int = 14
    steps: int = 50
    guidance_scale: float = 5.0
    seed: int | None = None
    num_videos: int = 1
    crop_scale: float | None = DEFAULT_CROP_SCALE
    ease: str = "linear"
    mask: np.ndarray | None = None


@dataclass
class GenerationResult:
    """What an engine produced.

    Attributes:
        videos: ``num_videos`` arrays ``(F, H, W, 4)`` uint8, aligned with the input image.
        crops: ``num_videos`` arrays ``(F, s, s, 3)`` uint8, the model-space (cropped) frames.
        crop_box: where the model image sits in the input image.
        image_trajectories: per drag, ``(F, 2)`` positions in normalised input-image coordinates.
        seed: the seed used.
        engine: the engine's name (``puppet-master`` or ``preview``).
        timings: seconds per stage (e.g. preprocess, encode, sampling, decode, postprocess).
        settings: the settings that produced it, for the JSON record.
    """

    videos: list[np.ndarray]
    crops: list[np.ndarray]
    crop_box: CropBox
    image_trajectories: list[np.ndarray]
    seed: int
    engine: str
    timings: dict[str, float] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)


class Engine(Protocol):
    """A loaded generator. One thread uses it at a time (the service's worker, or the CLI)."""

    name: str

    def describe(self) -> dict[str, Any]:
        """Engine name, device, dtype, model identity and why this engine was chosen."""
        ...

    def generate(
        self,
        request: GenerationRequest,
        progress: ProgressCallback | None = None,
        cancel: threading.Event | None = None,
    ) -> GenerationResult:
        """Generate; raise :class:`Cancelled` if ``cancel`` is set between steps, ValueError for bad input."""
        ...


def request_settings(request: GenerationRequest) -> dict[str, Any]:
    """The request's settings for the JSON record (everything but the image and mask)."""
    return {
        "num_frames": request.num_frames,
        "steps": request.steps,
        "guidance_scale": request.guidance_scale,
        "seed": request.seed,
        "num_videos": request.num_videos,
        "crop_scale": request.crop_scale,
        "ease": request.ease,
        "drags": [np.asarray(drag, dtype=np.float64).tolist() for drag in request.drags],
        "image_size": list(request.image.size),
    }
