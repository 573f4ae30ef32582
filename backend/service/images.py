"""Decode and check the submitted image, part map and depth before a job is queued, so a bad one never
reaches the engine.

The part map and depth are optional grayscale PNGs of the image's size (see :func:`open_part_map` and
:func:`open_depth` for the encoding). A server fault met while decoding (no file handles, no memory)
is reported as the server's (:mod:`.faults`), never as a 4xx blaming the input.
"""

from __future__ import annotations

import base64
import binascii
import io
import re
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ..engines.base import check_part_inputs
from . import faults
from .errors import ApiError

FORMATS = ("PNG", "JPEG", "WEBP")
# Pillow imports its format plugins on first use; doing it now means decoding later opens no files
# (a server out of file handles would otherwise fail every image).
Image.init()
MIN_IMAGE_SIDE = 8
_DATA_URL = re.compile(r"^data:image/[A-Za-z0-9.+-]+(;[A-Za-z0-9=.+-]+)*;base64,", re.IGNORECASE)
_WHITESPACE = re.compile(r"\s+")
# Pillow modes of a grayscale PNG: 8-bit, and 16-bit (as this Pillow opens it, or older ones did).
_GRAY_8 = ("L",)
_GRAY_16 = ("I;16", "I;16B", "I;16L", "I")
# Depth in the default range when a request sends depth without ``depth_range``: only the order counts.
DEFAULT_DEPTH_RANGE = (0.0, 1.0)


def _bad(message: str, status: int = 422, field: str = "image") -> ApiError:
    return ApiError(status, message, field=field)


# Characters of base64 decoded per call (a multiple of 4): one call over 30 MB holds the GIL, and so
# the event loop and /v1/health, for a tenth of a second; a megabyte at a time lets them in between.
_B64_CHUNK = 1 << 20


def _b64decode(text: str) -> bytes:
    """Strict base64; line breaks and spaces are allowed (removed, but only when there are any: a pass
    over 30 MB of text costs a quarter of a second)."""
    try:
        return _b64decode_in_chunks(text)
    except binascii.Error:
        if not _WHITESPACE.search(text):
            raise
        return _b64decode_in_chunks(_WHITESPACE.sub("", text))


def _b64decode_in_chunks(text: str) -> bytes:
    if len(text) <= _B64_CHUNK or "=" in text[: len(text) - 2]:  # padding only at the very end, else one call
        return base64.b64decode(text, validate=True)  # says what is wrong
    return b"".join(
        base64.b64decode(text[start : start + _B64_CHUNK], validate=True) for start in range(0, len(text), _B64_CHUNK)
    )


def _describe(field: str) -> tuple[str, str, str]:
    """How messages name ``field``'s input: what it is, the files it may be, what to send instead."""
    if field == "image":
        return "the image", "a PNG, JPEG or WebP file; send one of those", "an intact PNG or JPEG"
    return field, "a PNG file; send a grayscale PNG", "an intact grayscale PNG"


@contextmanager
def _decoding(field: str) -> Iterator[None]:
    """Decode inside this block: what Pillow raises on a bad file becomes a 4xx naming ``field``, and a fault
    of the server (no file handles, no memory) the server's own 503/507."""
    what, formats, intact = _describe(field)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            yield
    except ApiError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise _bad(f"{what} is too large to decode safely ({error})", 413, field) from None
    except UnidentifiedImageError:
        raise _bad(f"{what} is not {formats}, base64-encoded", field=field) from None
    except Exception as error:  # noqa: BLE001 - Pillow raises many kinds of errors on broken files
        if faults.is_server_fault(error):
            raise faults.classify(error, f"decoding {what}") from None
        message = f"{what} could not be decoded ({type(error).__name__}: {error}); send {intact}"
        raise _bad(message, field=field) from None


def decode_base64(data: str, field: str = "image") -> bytes:
    """The bytes of a base64 string or ``data:image/...;base64,`` URL; ApiError 422 naming ``field`` otherwise."""
    what, kind = ("the image", "PNG or JPEG") if field == "image" else (field, "PNG")
    text = data
    if text[:64].lstrip().lower().startswith("data:"):
        text = _WHITESPACE.sub("", text)
        match = _DATA_URL.match(text)
        if match is None:
            raise _bad(f"the {field} data URL must look like data:image/png;base64,<data>", field=field)
        text = text[match.end() :]
    try:
        raw = _b64decode(text)
    except (binascii.Error, ValueError) as error:
        raise _bad(
            f"{what} is not valid base64 ({error}); encode the {kind} file's bytes with standard base64", field=field
        ) from None
    if not raw:
        raise _bad(f"{what} is empty; send a {kind} file encoded as base64", field=field)
    return raw


def decode_image(
    data: str, max_side: int, needs_object: bool, images_per_job: int = 1, max_job_pixels: int | None = None
) -> tuple[bytes, Image.Image]:
    """The submitted image's bytes and the image (see :func:`open_image`), from base64 text or a data URL."""
    raw = decode_base64(data)
    return raw, open_image(raw, max_side, needs_object, images_per_job, max_job_pixels)


def open_image(
    raw: bytes,
    max_side: int | None,
    needs_object: bool,
    images_per_job: int = 1,
    max_job_pixels: int | None = None,
) -> Image.Image:
    """The image in ``raw``, loaded and converted to RGB or RGBA (EXIF orientation applied).

    Parameters:
        raw: the bytes of a PNG, JPEG or WebP file.
        max_side: largest width or height accepted; larger images are refused with 413 (None: no limit).
        needs_object: the image will be cropped around its object, so an alpha channel must not
            be fully transparent.
        images_per_job: output frames of this size the job makes (frames x videos): the frames are
            placed back into the input image, so their size is the image's.
        max_job_pixels: largest total of output pixels (width x height x ``images_per_job``) accepted,
            checked before the pixels are decoded; 413 beyond it.
    """
    with _decoding("image"):
        image = Image.open(io.BytesIO(raw), formats=FORMATS)
        width, height = image.size
        if max_side is not None and (width > max_side or height > max_side):
            raise _bad(
                f"the image is {width}x{height} pixels; the limit is {max_side}x{max_side}, so scale it down", 413
            )
        if width < MIN_IMAGE_SIDE or height < MIN_IMAGE_SIDE:
            raise _bad(f"the image is {width}x{height} pixels; it must be at least {MIN_IMAGE_SIDE}x{MIN_IMAGE_SIDE}")
        total = width * height * images_per_job
        if max_job_pixels is not None and total > max_job_pixels:
            raise _bad(
                f"this job would make {images_per_job} frames (frames x num_videos) of {width}x{height} pixels, "
                f"{total / 1e6:.0f} million pixels; the server's limit is {max_job_pixels / 1e6:.0f} million "
                "(--max-job-pixels), so send a smaller image, fewer frames or fewer videos",
                413,
            )
        image.load()
        image = ImageOps.exif_transpose(image)
        image = image.convert("RGBA" if image.has_transparency_data else "RGB")
    if needs_object and image.mode == "RGBA" and not (np.asarray(image.getchannel("A")) > 127).any():
        raise _bad(
            "the image is fully transparent, so there is no object to crop around; render with the object visible, "
            "send it without alpha, or set crop_scale to null to use the whole image"
        )
    return image


def _open_grayscale(raw: bytes, field: str, size: tuple[int, int], modes: tuple[str, ...]) -> tuple[np.ndarray, int]:
    """``(H, W)`` values of the grayscale PNG in ``raw`` and the largest value its bit depth holds (255 or 65535).

    ApiError naming ``field`` unless it is an intact PNG of ``size`` (the image's ``(W, H)``) in one of ``modes``.
    """
    width, height = size
    with _decoding(field):
        image = Image.open(io.BytesIO(raw), formats=("PNG",))
        if image.size != size:
            raise _bad(
                f"{field} is {image.width}x{image.height} pixels but the image is {width}x{height}; "
                "send one value per image pixel, at the image's size",
                field=field,
            )
        if image.mode not in modes:
            raise _bad(
                f"{field} is a PNG in mode {image.mode}; send a grayscale PNG (8- or 16-bit, one channel, "
                "one value per pixel)",
                field=field,
            )
        image.load()
        values = np.asarray(image)
    return values, 65535 if image.mode in _GRAY_16 else 255


def _checked(field: str, size: tuple[int, int], **arrays: np.ndarray) -> None:
    """ApiError 422 naming ``field`` when the engines' own check of the part inputs refuses them."""
    try:
        check_part_inputs(size, arrays.get("part_map"), arrays.get("depth"))
    except ValueError as error:
        raise _bad(str(error), field=field) from None


def open_part_map(raw: bytes, size: tuple[int, int]) -> np.ndarray:
    """``(H, W)`` int32 part ids from a part-map PNG for an image of ``size`` (``(W, H)``).

    The PNG is grayscale, 8-bit (ids up to 255) or 16-bit (up to 65535), or palette-indexed (the
    index is the id); each pixel's value is the id of the part it shows, 0 = background.
    """
    values, _ = _open_grayscale(raw, "part_map", size, _GRAY_8 + _GRAY_16 + ("P",))
    ids = values.astype(np.int32)
    _checked("part_map", size, part_map=ids)
    return ids


def open_depth(raw: bytes, size: tuple[int, int], depth_range: Sequence[float] = DEFAULT_DEPTH_RANGE) -> np.ndarray:
    """``(H, W)`` float32 depth (larger = farther, inf = no surface) from a depth PNG for an image of ``size``.

    The PNG is grayscale, 16-bit (or 8-bit). Its largest value (65535, or 255) marks a pixel without a
    surface; any other value ``v`` is the depth ``near + v / (largest - 1) * (far - near)`` for
    ``depth_range = (near, far)``.
    """
    codes, largest = _open_grayscale(raw, "depth", size, _GRAY_8 + _GRAY_16)
    near, far = (float(value) for value in depth_range)
    depth = (near + codes.astype(np.float64) * ((far - near) / (largest - 1))).astype(np.float32)
    depth[codes >= largest] = np.inf
    _checked("depth", size, depth=depth)
    return depth


@dataclass(frozen=True)
class PartInputs:
    """The optional part map and depth sent with an image, as PNG file bytes (None: not sent).

    Kept in this form from submission (in the job journal) until the job starts, where
    :func:`open_part_inputs` turns them into the engine's arrays.
    """

    part_map: bytes | None = None
    depth: bytes | None = None

    @property
    def size(self) -> int:
        """Bytes held."""
        return len(self.part_map or b"") + len(self.depth or b"")


NO_PARTS = PartInputs()


def open_part_inputs(
    parts: PartInputs, depth_range: Sequence[float] | None, size: tuple[int, int]
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """The part map and depth arrays (None where not sent) for an image of ``size`` from their PNG bytes."""
    ids = None if parts.part_map is None else open_part_map(parts.part_map, size)
    depth = None if parts.depth is None else open_depth(parts.depth, size, depth_range or DEFAULT_DEPTH_RANGE)
    return ids, depth
