"""From a user's request (image + drags in its own coordinates) to model inputs, and back.

Both engines — the Puppet-Master diffusion model and the weight-free preview — share these two
steps, so their results line up with the input image in exactly the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch
from numpy.typing import ArrayLike
from PIL import Image

from .preprocess import (
    DEFAULT_CROP_SCALE,
    MODEL_IMAGE_SIZE,
    CropBox,
    crop_to_model_image,
    full_image_box,
    mask_to_bool,
    object_crop_box,
    segment_onto_white,
    uncrop_frames,
)
from .trajectories import MAX_DRAGS, drags_to_model_tensor, resample_drag

# Drag points that fall outside the object crop grow the crop (about its centre) to contain them,
# with this margin as a fraction of the crop side, so that no drag is clipped.
DRAG_MARGIN = 0.05


@dataclass(frozen=True)
class ModelInputs:
    """One request, ready for an engine.

    Attributes:
        image: the ``size x size`` RGB model image (object on white).
        mask: ``(size, size)`` bool object mask in the model image (all True when unknown).
        crop_box: where the model image sits in the input image.
        trajectories: per drag, ``(F, 2)`` positions in normalised model-image coordinates.
        image_trajectories: the same in normalised input-image coordinates (for overlays).
        drags: the model's ``(1, F, num_drags, 4)`` drag tensor.
        background: ``(H, W, 4)`` uint8 input image, for un-cropping frames onto it.
    """

    image: Image.Image
    mask: np.ndarray
    crop_box: CropBox
    trajectories: list[np.ndarray]
    image_trajectories: list[np.ndarray]
    drags: torch.Tensor
    background: np.ndarray

    @property
    def num_frames(self) -> int:
        return self.drags.shape[1]


def _grow_to_contain(box: CropBox, points: np.ndarray) -> CropBox:
    """Grow a square box about its centre so that every normalised input point lies inside it."""
    pixels = points * np.array([box.image_width, box.image_height])
    centre = np.array([box.left + box.size / 2, box.top + box.size / 2])
    needed = 2 * float(np.abs(pixels - centre).max()) * (1 + DRAG_MARGIN)
    if needed <= box.size:
        return box
    return replace(box, left=float(centre[0] - needed / 2), top=float(centre[1] - needed / 2), size=needed)


def prepare_inputs(
    image: Image.Image,
    drags: Sequence[ArrayLike],
    num_frames: int = 14,
    mask: ArrayLike | None = None,
    crop_scale: float | None = DEFAULT_CROP_SCALE,
    ease: str = "linear",
    size: int = MODEL_IMAGE_SIZE,
    num_drag_slots: int = MAX_DRAGS,
) -> ModelInputs:
    """Crop the object, map the drags through the same crop, and build the model's drag tensor.

    Args:
        image: the input (e.g. a camera render); RGBA alpha is the object mask unless ``mask`` is given.
        drags: 1..num_drag_slots drags, each ``(N, 2)`` in normalised input-image coordinates:
            2 points = straight, more = a path, exactly ``num_frames`` = explicit timing.
        num_frames: frames of the video.
        mask: optional ``(H, W)`` object mask.
        crop_scale: object crop side / longer object-box side; None uses the whole image.
        ease: ``linear`` or ``ease-in-out`` timing for straight drags and paths.
    """
    if not 1 <= len(drags) <= num_drag_slots:
        raise ValueError(f"drags: expected 1 to {num_drag_slots} drags, got {len(drags)}")
    image_trajectories = [resample_drag(points, num_frames, ease) for points in drags]
    white_image, object_mask = segment_onto_white(image, mask)
    width, height = image.size
    if crop_scale is None or object_mask is None:
        box = full_image_box(width, height)
    else:
        box = object_crop_box(object_mask, crop_scale)
    box = _grow_to_contain(box, np.concatenate(image_trajectories))
    model_image = crop_to_model_image(white_image, box, size)
    trajectories = [box.image_to_crop(track) for track in image_trajectories]
    if object_mask is None:
        model_mask = np.ones((size, size), dtype=bool)
    else:
        # the crop pads with white, so crop the mask as "dark = object"
        dark_object = Image.fromarray(np.where(mask_to_bool(object_mask), 0, 255).astype(np.uint8)).convert("RGB")
        model_mask = np.asarray(crop_to_model_image(dark_object, box, size))[..., 0] < 128
    background = np.asarray(image.convert("RGBA"))
    return ModelInputs(
        image=model_image,
        mask=model_mask,
        crop_box=box,
        trajectories=trajectories,
        image_trajectories=image_trajectories,
        drags=drags_to_model_tensor(trajectories, num_drag_slots),
        background=background,
    )


def frames_to_input(frames: np.ndarray, inputs: ModelInputs) -> np.ndarray:
    """``(F, s, s, 3)`` model-space frames -> ``(F, H, W, 4)`` frames aligned with the input image."""
    return uncrop_frames(frames, inputs.crop_box, inputs.background)
