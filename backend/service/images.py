"""Decode and check the submitted image before a job is queued, so a bad one never reaches the engine.

A server fault met while decoding (no file handles, no memory) is reported as the server's
(:mod:`.faults`), never as a 4xx blaming the image.
"""

from __future__ import annotations

import base64
import binascii
import io
import re
import warnings

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from . import faults
from .errors import ApiError

FORMATS = ("PNG", "JPEG", "WEBP")
# Pillow imports its format plugins on first use; doing it now means decoding later opens no files
# (a server out of file handles would otherwise fail every image).
Image.init()
MIN_IMAGE_SIDE = 8
_DATA_URL = re.compile(r"^data:image/[A-Za-z0-9.+-]+(;[A-Za-z0-9=.+-]+)*;base64,", re.IGNORECASE)
_WHITESPACE = re.compile(r"\s+")


def _bad(message: str, status: int = 422) -> ApiError:
    return ApiError(status, message, field="image")


def _b64decode(text: str) -> bytes:
    """Strict base64; line breaks and spaces are allowed (removed, but only when there are any: a pass
    over 30 MB of text costs a quarter of a second)."""
    try:
        return base64.b64decode(text, validate=True)
    except binascii.Error:
        if not _WHITESPACE.search(text):
            raise
        return base64.b64decode(_WHITESPACE.sub("", text), validate=True)


def decode_base64(data: str) -> bytes:
    """The bytes of a base64 string or ``data:image/...;base64,`` URL; ApiError 422 naming ``image`` otherwise."""
    text = data
    if text[:64].lstrip().lower().startswith("data:"):
        text = _WHITESPACE.sub("", text)
        match = _DATA_URL.match(text)
        if match is None:
            raise _bad("the image data URL must look like data:image/png;base64,<data>")
        text = text[match.end() :]
    try:
        raw = _b64decode(text)
    except (binascii.Error, ValueError) as error:
        raise _bad(
            f"the image is not valid base64 ({error}); encode the PNG or JPEG file's bytes with standard base64"
        ) from None
    if not raw:
        raise _bad("the image is empty; send a PNG or JPEG file encoded as base64")
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
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(raw), formats=FORMATS)
            width, height = image.size
            if max_side is not None and (width > max_side or height > max_side):
                raise _bad(
                    f"the image is {width}x{height} pixels; the limit is {max_side}x{max_side}, so scale it down", 413
                )
            if width < MIN_IMAGE_SIDE or height < MIN_IMAGE_SIDE:
                raise _bad(
                    f"the image is {width}x{height} pixels; it must be at least {MIN_IMAGE_SIDE}x{MIN_IMAGE_SIDE}"
                )
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
    except ApiError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise _bad(f"the image is too large to decode safely ({error})", 413) from None
    except UnidentifiedImageError:
        raise _bad("the image is not a PNG, JPEG or WebP file; send one of those, base64-encoded") from None
    except Exception as error:  # noqa: BLE001 - Pillow raises many kinds of errors on broken files
        if faults.is_server_fault(error):
            raise faults.classify(error, "decoding the image") from None
        raise _bad(
            f"the image could not be decoded ({type(error).__name__}: {error}); send an intact PNG or JPEG"
        ) from None
    if needs_object and image.mode == "RGBA" and not (np.asarray(image.getchannel("A")) > 127).any():
        raise _bad(
            "the image is fully transparent, so there is no object to crop around; render with the object visible, "
            "send it without alpha, or set crop_scale to null to use the whole image"
        )
    return image
