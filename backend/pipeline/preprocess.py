"""The model image of Puppet-Master (arXiv 2408.04631) and the way back from its frames to the input frame.

The published demo segments the object onto white, squares a crop around its bounding box with side
2.2 x the longer box side, pads with white, resizes to 256 x 256 (Lanczos) and maps the drag points
through the same crop. Here that crop is a :class:`CropBox` in continuous input-pixel coordinates:
``(0, 0)`` is the top-left corner of the top-left pixel and ``(W, H)`` the bottom-right corner of the
bottom-right one, so a normalised point is ``pixel / (W, H)``. The box may be fractional and may
extend beyond the image; drag points, the crop and the un-crop all use the same box math, so the
generated frames line up with the input image.

Resampling is done with ``Image.resize(..., Image.Resampling.LANCZOS, box=...)`` on a white-padded
copy of the source, which reads the fractional source box exactly (``Image.transform`` offers no
Lanczos and no antialiasing when it shrinks). A box whose pixel size equals the output size and whose
corner is on the pixel grid is therefore copied pixel for pixel, in both directions.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from PIL import Image

DEFAULT_CROP_SCALE = 2.2
MODEL_IMAGE_SIZE = 256
WHITE = (255, 255, 255)
# Pillow's Lanczos kernel has a support of 3 source pixels (times the scale when shrinking).
_LANCZOS_SUPPORT = 3.0


@dataclass(frozen=True)
class CropBox:
    """A square crop of the input image, in input-image pixel coordinates.

    Parameters:
        left: x of the crop's left edge (may be fractional or negative).
        top: y of the crop's top edge (may be fractional or negative).
        size: side of the square in input pixels (> 0); the box may extend beyond the image.
        image_width: width of the input image in pixels.
        image_height: height of the input image in pixels.
    """

    left: float
    top: float
    size: float
    image_width: int
    image_height: int

    def __post_init__(self) -> None:
        if not all(math.isfinite(value) for value in (self.left, self.top, self.size)) or self.size <= 0:
            raise ValueError(
                f"CropBox needs finite left/top and a positive size, got left={self.left}, top={self.top}, "
                f"size={self.size}"
            )
        if int(self.image_width) < 1 or int(self.image_height) < 1:
            raise ValueError(f"CropBox image size must be at least 1x1, got {self.image_width}x{self.image_height}")

    @property
    def right(self) -> float:
        """x of the crop's right edge in input pixels."""
        return self.left + self.size

    @property
    def bottom(self) -> float:
        """y of the crop's bottom edge in input pixels."""
        return self.top + self.size

    def image_to_crop(self, points: ArrayLike) -> np.ndarray:
        """Map ``(..., 2)`` normalised input-image points to normalised crop (model image) points."""
        pixels = _as_points(points) * self._image_size
        return (pixels - self._origin) / self.size

    def crop_to_image(self, points: ArrayLike) -> np.ndarray:
        """Map ``(..., 2)`` normalised crop (model image) points to normalised input-image points."""
        pixels = _as_points(points) * self.size + self._origin
        return pixels / self._image_size

    def to_dict(self) -> dict[str, float | int]:
        """The box as plain numbers, for the generation's JSON record."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CropBox:
        """Rebuild a box from :meth:`to_dict` output; ValueError names any missing key."""
        names = [field.name for field in fields(cls)]
        missing = [name for name in names if name not in data]
        if missing:
            raise ValueError(f"Crop box record is missing {missing}; expected keys {names}, got {sorted(data)}")
        return cls(
            left=float(data["left"]),
            top=float(data["top"]),
            size=float(data["size"]),
            image_width=int(data["image_width"]),
            image_height=int(data["image_height"]),
        )

    @property
    def _origin(self) -> np.ndarray:
        return np.array([self.left, self.top], dtype=np.float64)

    @property
    def _image_size(self) -> np.ndarray:
        return np.array([self.image_width, self.image_height], dtype=np.float64)


def _as_points(points: ArrayLike) -> np.ndarray:
    array = np.asarray(points, dtype=np.float64)
    if array.ndim == 0 or array.shape[-1] != 2:
        raise ValueError(f"Points must be an array of shape (..., 2) with (x, y) last, got shape {array.shape}")
    return array


def mask_to_bool(mask: ArrayLike) -> np.ndarray:
    """An ``(H, W)`` object mask as bool: ``> 0.5`` for float masks, non-zero for bool and integer masks."""
    array = np.asarray(mask)
    if array.ndim != 2:
        raise ValueError(f"The object mask must be a 2-D (height, width) array, got shape {array.shape}")
    if np.issubdtype(array.dtype, np.floating):
        return array > 0.5
    return array != 0


def object_crop_box(mask: ArrayLike, crop_scale: float = DEFAULT_CROP_SCALE) -> CropBox:
    """The demo's object-centred square: side ``crop_scale`` x the longer side of the mask's bounding box.

    The bounding box covers whole mask pixels (pixel ``i`` spans ``[i, i + 1)``); the square shares its
    centre.
    """
    if not crop_scale > 0:
        raise ValueError(f"crop_scale must be positive, got {crop_scale}")
    selected = mask_to_bool(mask)
    height, width = selected.shape
    rows = np.flatnonzero(selected.any(axis=1))
    cols = np.flatnonzero(selected.any(axis=0))
    if rows.size == 0:
        raise ValueError(
            f"The object mask ({width}x{height}) selects no pixel, so there is no object to crop around; "
            "render with a transparent film so the alpha outlines the object, or pass a mask that covers it"
        )
    x0, x1 = int(cols[0]), int(cols[-1]) + 1
    y0, y1 = int(rows[0]), int(rows[-1]) + 1
    side = float(crop_scale) * max(x1 - x0, y1 - y0)
    return CropBox(
        left=(x0 + x1 - side) / 2, top=(y0 + y1 - side) / 2, size=side, image_width=width, image_height=height
    )


def full_image_box(width: int, height: int) -> CropBox:
    """The whole image, padded to a centred square of side ``max(width, height)``."""
    side = float(max(width, height))
    return CropBox(left=(width - side) / 2, top=(height - side) / 2, size=side, image_width=width, image_height=height)


def segment_onto_white(image: Image.Image, mask: ArrayLike | None = None) -> tuple[Image.Image, np.ndarray | None]:
    """The RGB image the model sees, before cropping, and the object mask (None when there is none).

    An image with alpha is composited over white; without an explicit mask its mask is ``alpha > 127``.
    An explicit mask selects the object: every pixel outside it becomes white.
    """
    if image.has_transparency_data:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (*WHITE, 255))
        rgb = Image.alpha_composite(white, rgba).convert("RGB")
        if mask is None:
            return rgb, np.asarray(rgba.getchannel("A")) > 127
    else:
        rgb = image.convert("RGB")
        if mask is None:
            return rgb, None

    selected = mask_to_bool(mask)
    if selected.shape != (rgb.height, rgb.width):
        raise ValueError(
            f"The mask has shape {selected.shape} but the image is {rgb.width}x{rgb.height}; "
            f"pass a ({rgb.height}, {rgb.width}) mask"
        )
    pixels = np.array(rgb)
    pixels[~selected] = WHITE
    return Image.fromarray(pixels), selected


def crop_to_model_image(image: Image.Image, box: CropBox, size: int = MODEL_IMAGE_SIZE) -> Image.Image:
    """Cut ``box`` out of an RGB image (white where it leaves the image) and resize it to ``size`` (Lanczos)."""
    # Pad by the filter's reach so that pixels just outside the box weigh in as they would in the
    # full image, and the area beyond the image reads as white.
    margin = math.ceil(_LANCZOS_SUPPORT * max(1.0, box.size / size)) + 1
    x0, y0 = math.floor(box.left) - margin, math.floor(box.top) - margin
    x1, y1 = math.ceil(box.right) + margin, math.ceil(box.bottom) + margin
    canvas = Image.new("RGB", (x1 - x0, y1 - y0), WHITE)
    canvas.paste(image.convert("RGB"), (-x0, -y0))
    source = (box.left - x0, box.top - y0, box.right - x0, box.bottom - y0)
    return canvas.resize((size, size), Image.Resampling.LANCZOS, box=source)


def prepare_model_image(
    image: Image.Image,
    mask: ArrayLike | None = None,
    crop_scale: float | None = DEFAULT_CROP_SCALE,
    size: int = MODEL_IMAGE_SIZE,
) -> tuple[Image.Image, CropBox]:
    """The ``size`` x ``size`` RGB model image on white, and the crop box it was cut with.

    Parameters:
        image: the input frame; RGBA (e.g. a render with transparent film) or RGB.
        mask: optional ``(H, W)`` object mask; by default an RGBA image's ``alpha > 127``.
        crop_scale: square side as a multiple of the object's longer bounding-box side (the demo's
            2.2). None, or no mask and no alpha, uses the whole image padded to a square with white.
        size: side of the model image in pixels.
    """
    if size < 1:
        raise ValueError(f"The model image size must be at least 1 pixel, got {size}")
    rgb, object_mask = segment_onto_white(image, mask)
    if crop_scale is None or object_mask is None:
        box = full_image_box(rgb.width, rgb.height)
    else:
        box = object_crop_box(object_mask, crop_scale)
    return crop_to_model_image(rgb, box, size), box


def _background_frames(background: np.ndarray | None, box: CropBox, num_frames: int) -> np.ndarray:
    """``(F, H, W, 4)`` uint8 frames filled with the background (transparent when None)."""
    shape = (num_frames, box.image_height, box.image_width, 4)
    if background is None:
        return np.zeros(shape, dtype=np.uint8)
    background = np.asarray(background)
    if background.dtype != np.uint8 or background.shape[:2] != shape[1:3] or background.shape[2:] not in ((3,), (4,)):
        raise ValueError(
            f"background must be uint8 of shape ({box.image_height}, {box.image_width}, 3 or 4) to match the crop "
            f"box's image, got {background.dtype} {background.shape}"
        )
    if background.shape[2] == 3:
        alpha = np.full((*background.shape[:2], 1), 255, dtype=np.uint8)
        background = np.concatenate([background, alpha], axis=2)
    return np.broadcast_to(background, shape).copy()


def _paste_region(box: CropBox) -> tuple[int, int, int, int] | None:
    """Input pixels whose centres lie in the box, clipped to the image: ``(x0, y0, x1, y1)`` or None."""
    x0 = max(0, math.ceil(box.left - 0.5))
    y0 = max(0, math.ceil(box.top - 0.5))
    x1 = min(box.image_width, math.floor(box.right - 0.5) + 1)
    y1 = min(box.image_height, math.floor(box.bottom - 0.5) + 1)
    if x1 <= x0 or y1 <= y0:
        return None
    return x0, y0, x1, y1


def uncrop_frames(frames: np.ndarray, box: CropBox, background: np.ndarray | None = None) -> np.ndarray:
    """Put generated crops back where ``box`` cut them from the input frame.

    Each ``(s, s, 3)`` frame is resized (Lanczos) onto the input pixels whose centres lie in the box,
    clipped to the image; those pixels become opaque, unless ``background`` has transparency: then the
    model's white background is keyed out again (:class:`WhiteKey`). The others come from
    ``background`` (e.g. the input image; RGB is taken as opaque) or are transparent when it is None.

    Parameters:
        frames: ``(F, s, s, 3)`` uint8 model frames.
        box: the crop box the model image was made with.
        background: optional ``(H, W, 3 or 4)`` uint8 image of the box's input size.

    Returns:
        ``(F, H, W, 4)`` uint8 frames of the input image's size.
    """
    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[3] != 3 or frames.shape[1] != frames.shape[2]:
        raise ValueError(f"frames must be uint8 of shape (F, s, s, 3), got {frames.dtype} {frames.shape}")
    output = _background_frames(background, box, len(frames))
    region = _paste_region(box)
    if region is None:
        return output
    x0, y0, x1, y1 = region

    # Pixel centres in the box may sit up to half an input pixel beyond its edges, i.e. slightly
    # outside the crop; an edge-replicated border keeps the source box inside what Pillow accepts.
    crop_size = frames.shape[1]
    scale = crop_size / box.size  # crop pixels per input pixel
    pad = math.ceil(scale) + 1
    source = (
        (x0 - box.left) * scale + pad,
        (y0 - box.top) * scale + pad,
        (x1 - box.left) * scale + pad,
        (y1 - box.top) * scale + pad,
    )
    padded = np.pad(frames, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="edge")
    # a transparent input (a render on transparent film) keeps its transparency: the model's white
    # background is keyed out again, so a compositor gets the object over whatever it puts behind
    key = None
    if background is not None and np.asarray(background).shape[2] == 4:
        region_pixels = np.asarray(background)[y0:y1, x0:x1]
        key = WhiteKey(region_pixels) if region_pixels[..., 3].min() < 255 else None
    for index, frame in enumerate(padded):
        placed = np.asarray(Image.fromarray(frame).resize((x1 - x0, y1 - y0), Image.Resampling.LANCZOS, box=source))
        if key is None:
            output[index, y0:y1, x0:x1, :3] = placed
            output[index, y0:y1, x0:x1, 3] = 255
        else:
            output[index, y0:y1, x0:x1] = key(placed)
    return output


# distance from white (0..255, the largest channel's) below which a pixel is background, above which object
WHITE_KEY_LOW, WHITE_KEY_HIGH = 6, 30
# alpha (0..255) for each distance from white: a linear ramp between the two thresholds
_WHITE_KEY_RAMP = np.clip((np.arange(256) - WHITE_KEY_LOW) * 255 / (WHITE_KEY_HIGH - WHITE_KEY_LOW), 0, 255)
_WHITE_KEY_RAMP = _WHITE_KEY_RAMP.round().astype(np.uint8)


class WhiteKey:
    """Turns generated frames on white back into RGBA over the input's own ``(h, w, 4)`` pixels.

    Alpha ramps from 0 to 255 as a pixel's largest distance from white goes from ``WHITE_KEY_LOW`` to
    ``WHITE_KEY_HIGH``, and edge colours are un-composited from white (no white fringes). Where the frame still
    shows the input's own pixel (a still, near-white part of the object) the input's alpha is kept, so only
    what the model shows as background turns transparent. Integer work and a lookup table: ~10 ms a frame.
    """

    def __init__(self, source: np.ndarray):
        self.source_alpha = np.ascontiguousarray(source[..., 3])
        weight = self.source_alpha[..., None].astype(np.uint16)
        over_white = (source[..., :3].astype(np.uint16) * weight + 255 * (255 - weight) + 127) // 255
        self.over_white = over_white.astype(np.int16)

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        output = np.empty((*frame.shape[:2], 4), dtype=np.uint8)
        output[..., :3] = frame
        alpha = _WHITE_KEY_RAMP[255 - frame.min(axis=2)]
        unchanged = np.abs(frame.astype(np.int16) - self.over_white).max(axis=2) <= WHITE_KEY_LOW
        np.maximum(alpha, self.source_alpha, out=alpha, where=unchanged)
        output[..., 3] = alpha
        edge = (alpha > 0) & (alpha < 255)  # un-composite from white: c = 255 - (255 - c_seen) / a
        if edge.any():
            seen = frame[edge].astype(np.float32)
            opacity = alpha[edge].astype(np.float32)[:, None] / 255.0
            output[edge, :3] = np.clip(255.0 - (255.0 - seen) / opacity, 0, 255).round().astype(np.uint8)
        return output


def key_out_white(frame: np.ndarray, source: np.ndarray) -> np.ndarray:
    """RGBA for one generated ``(h, w, 3)`` frame on white over the input's ``(h, w, 4)`` pixels (:class:`WhiteKey`)."""
    return WhiteKey(source)(frame)
