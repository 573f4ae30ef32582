"""Decode and check the submitted image before a job is queued, so a bad one never reaches the engine."""

from __future__ import annotations

import base64
import binascii
import io
import re
import warnings

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import ApiError

FORMATS = ("PNG", "JPEG", "WEBP")
MIN_IMAGE_SIDE = 8
_DATA_URL = re.compile(r"^data:image/[A-Za-z0-9.+-]+(;[A-Za-z0-9=.+-]+)*;base64,", re.IGNORECASE)
_WHITESPACE = re.compile(r"\s+")


def _bad(message: str, status: int = 422) -> ApiError:
    return ApiError(status, message, field="image")


def decode_base64(data: str) -> bytes:
    """The bytes of a base64 string or ``data:image/...;base64,`` URL; ApiError 422 naming ``image`` otherwise."""
    text = _WHITESPACE.sub("", data)
    if text.lower().startswith("data:"):
        match = _DATA_URL.match(text)
        if match is None:
            raise _bad("the image data URL must look like data:image/png;base64,<data>")
        text = text[match.end() :]
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as error:
        raise _bad(
            f"the image is not valid base64 ({error}); encode the PNG or JPEG file's bytes with standard base64"
        ) from None
    if not raw:
        raise _bad("the image is empty; send a PNG or JPEG file encoded as base64")
    return raw


def decode_image(data: str, max_side: int, needs_object: bool) -> Image.Image:
    """The submitted image, loaded and converted to RGB or RGBA (EXIF orientation applied).

    Parameters:
        data: base64 text or a data URL.
        max_side: largest width or height accepted; larger images are refused with 413.
        needs_object: the image will be cropped around its object, so an alpha channel must not
            be fully transparent.
    """
    raw = decode_base64(data)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(raw), formats=FORMATS)
            width, height = image.size
            if width > max_side or height > max_side:
                raise _bad(
                    f"the image is {width}x{height} pixels; the limit is {max_side}x{max_side}, so scale it down", 413
                )
            if width < MIN_IMAGE_SIDE or height < MIN_IMAGE_SIDE:
                raise _bad(
                    f"the image is {width}x{height} pixels; it must be at least {MIN_IMAGE_SIDE}x{MIN_IMAGE_SIDE}"
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
        raise _bad(
            f"the image could not be decoded ({type(error).__name__}: {error}); send an intact PNG or JPEG"
        ) from None
    if needs_object and image.mode == "RGBA" and not (np.asarray(image.getchannel("A")) > 127).any():
        raise _bad(
            "the image is fully transparent, so there is no object to crop around; render with the object visible, "
            "send it without alpha, or set crop_scale to null to use the whole image"
        )
    return image
