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


# Largest part id a part map may hold (what a 16-bit object-index pass can carry).
MAX_PART_ID = 65535


def check_part_inputs(image_size: tuple[int, int], part_map: np.ndarray | None, depth: np.ndarray | None) -> None:
    """ValueError, naming the field and what to send, unless the part map and depth fit an image of ``(W, H)``."""
    width, height = image_size
    for name, array in (("part_map", part_map), ("depth", depth)):
        if array is None:
            continue
        shape = np.shape(array)
        if shape != (height, width):
            raise ValueError(
                f"{name} has shape {shape} but the image is {width}x{height}; send a ({height}, {width}) array, "
                "one value per image pixel"
            )
    if part_map is not None:
        ids = np.asarray(part_map)
        if ids.dtype.kind not in "biu":
            raise ValueError(f"part_map must hold integer part ids (0 = background), got dtype {ids.dtype}")
        if ids.size and (int(ids.min()) < 0 or int(ids.max()) > MAX_PART_ID):
            raise ValueError(
                f"part_map ids must be 0 (background) to {MAX_PART_ID}, got {int(ids.min())}..{int(ids.max())}"
            )
    if depth is not None:
        values = np.asarray(depth)
        if values.dtype.kind not in "iuf":
            raise ValueError(f"depth must be a float array (larger = farther), got dtype {values.dtype}")
        if np.isnan(values.astype(np.float64)).any() or (values.astype(np.float64) == -np.inf).any():
            raise ValueError("depth must not hold NaN or -inf; mark pixels off the object with +inf (or leave them)")


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
        part_map: optional ``(H, W)`` integer part ids (0 = background, 1..MAX_PART_ID a part): which part
            each pixel shows, e.g. from a render's object-index pass. The preview engine moves whole
            parts from it; other engines ignore it.
        depth: optional ``(H, W)`` float depth (larger = farther; inf off the object), e.g. a render's Z
            pass. The preview engine composites moved parts in its order; other engines ignore it.
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
    part_map: np.ndarray | None = None
    depth: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.part_map is not None or self.depth is not None:
            check_part_inputs(self.image.size, self.part_map, self.depth)


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
    """The request's settings for the JSON record (everything but the image, mask, part map and depth)."""
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
