"""Minimal PNG encoder (8-bit RGBA) on the standard library, so captures upload without Pillow."""

from __future__ import annotations

import struct
import zlib

import numpy as np

_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def encode_png_rgba(pixels: np.ndarray, compression: int = 6) -> bytes:
    """PNG bytes of an ``(H, W, 4)`` uint8 image, rows top to bottom, straight (not premultiplied) alpha."""
    array = np.asarray(pixels)
    if array.ndim != 3 or array.shape[2] != 4 or array.dtype != np.uint8:
        raise ValueError(f"pixels must be an (H, W, 4) uint8 array, got {array.dtype} {array.shape}")
    height, width = array.shape[:2]
    if height == 0 or width == 0:
        raise ValueError(f"Cannot encode an empty {width}x{height} image")
    # Filter type 0 (none) before each row: zlib alone compresses flat render backgrounds well.
    rows = np.concatenate([np.zeros((height, 1), np.uint8), array.reshape(height, width * 4)], axis=1)
    header = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)  # 8-bit, colour type 6 = RGBA
    return (
        _SIGNATURE
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(rows.tobytes(), compression))
        + _chunk(b"IEND", b"")
    )
