"""The part pass, bpy-free: which part each captured pixel shows and how far away it is, as the backend takes them.

Generate renders one extra, cheap Workbench pass besides the capture: flat lighting, no antialiasing,
every object in a colour that encodes its part id (:func:`part_colour`), and the view layer's depth
(Z) pass, written as an uncompressed multilayer OpenEXR. This module reads that file
(:func:`read_exr_channels`, plain ``struct``/``array``: the add-on runs on Blender builds without
numpy), turns it into a part-id map and a depth map (:func:`part_pass_from_exr`), and encodes both as
the grayscale PNGs ``POST /v1/jobs`` takes as ``part_map`` and ``depth`` (:func:`encode_gray_png`).
"""

from __future__ import annotations

import struct
import sys
import zlib
from array import array
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

# Each colour channel carries one base-64 digit of the part id: a level k is the value k / 63 (exact in
# the float EXR; a tolerance of half a level all the same). Three channels hold ids up to 64**3 - 1.
LEVELS = 64
# The backend's largest part id (a 16-bit PNG).
MAX_PART_ID = 65535
# Depth PNG: 0..DEPTH_CODES-1 span [near, far]; NO_SURFACE marks a pixel without one.
NO_SURFACE = 65535
DEPTH_CODES = NO_SURFACE
# Suffixes of the multilayer EXR channels Blender writes for the view layer's passes.
COMBINED = (".Combined.R", ".Combined.G", ".Combined.B", ".Combined.A")
DEPTH = ".Depth.Z"

_EXR_MAGIC = b"v/1\x01"
_MULTIPART = 0x1000
_TILED = 0x200
_NO_COMPRESSION = 0
# OpenEXR pixel types: UINT, HALF, FLOAT -> (bytes per value, struct code)
_PIXEL_TYPES = {0: (4, "I"), 1: (2, "e"), 2: (4, "f")}


def part_colour(part_id: int) -> tuple[float, float, float, float]:
    """The RGBA object colour that renders as ``part_id`` (1..MAX_PART_ID) in the part pass."""
    if not 1 <= part_id <= MAX_PART_ID:
        raise ValueError(f"part ids are 1..{MAX_PART_ID}, got {part_id}")
    top = LEVELS - 1
    return (part_id % LEVELS / top, part_id // LEVELS % LEVELS / top, part_id // LEVELS**2 / top, 1.0)


def colour_part(red: float, green: float, blue: float) -> int:
    """The part id a colour of :func:`part_colour` encodes."""
    top = LEVELS - 1
    return round(red * top) + LEVELS * round(green * top) + LEVELS**2 * round(blue * top)


# --- OpenEXR (uncompressed scanlines, one or several parts) ------------------------------------------


@dataclass
class ExrChannels:
    """Channels of an OpenEXR image: ``values[name]`` holds ``width * height`` floats, top row first."""

    width: int
    height: int
    values: dict[str, array]

    def find(self, suffix: str) -> array:
        """The channel whose name ends with ``suffix`` (the view layer's name comes first); KeyError if none."""
        for name, values in self.values.items():
            if name.endswith(suffix):
                return values
        raise KeyError(f"the render has no {suffix.lstrip('.')} channel (it has {', '.join(self.values) or 'none'})")


def _read_string(data: bytes, position: int) -> tuple[str, int]:
    end = data.index(b"\0", position)
    return data[position:end].decode("utf-8", "replace"), end + 1


def _read_headers(data: bytes) -> tuple[list[dict[str, bytes]], int]:
    """The attributes of each part's header and the position after the headers."""
    if data[:4] != _EXR_MAGIC:
        raise ValueError("not an OpenEXR file")
    (flags,) = struct.unpack_from("<I", data, 4)
    if flags & _TILED:
        raise ValueError("tiled OpenEXR files are not read here; the part pass writes scanlines")
    position, headers = 8, []
    while True:
        header: dict[str, bytes] = {}
        while True:
            name, position = _read_string(data, position)
            if not name:
                break
            _kind, position = _read_string(data, position)
            (size,) = struct.unpack_from("<i", data, position)
            header[name] = data[position + 4 : position + 4 + size]
            position += 4 + size
        if not header:  # the empty header that ends a multi-part file's list
            break
        headers.append(header)
        if not flags & _MULTIPART:
            break
    return headers, position


def _channel_list(value: bytes) -> list[tuple[str, int]]:
    """``(name, pixel type)`` of each channel, in file order (the order of the pixel data)."""
    channels, position = [], 0
    while value[position : position + 1] not in (b"\0", b""):
        name, position = _read_string(value, position)
        pixel_type, _linear, x_sampling, y_sampling = struct.unpack_from("<iB3xii", value, position)
        position += 16
        if (x_sampling, y_sampling) != (1, 1) or pixel_type not in _PIXEL_TYPES:
            raise ValueError(f"channel {name!r} is subsampled or of an unknown type; the part pass writes neither")
        channels.append((name, pixel_type))
    return channels


def _floats(data: bytes, pixel_type: int) -> array:
    size, code = _PIXEL_TYPES[pixel_type]
    if code == "e":
        return array("f", struct.unpack(f"<{len(data) // size}e", data))
    values = array(code)
    values.frombytes(data)
    if sys.byteorder == "big":
        values.byteswap()
    return values if code == "f" else array("f", values)


def read_exr_channels(data: bytes, wanted: Callable[[str], bool]) -> ExrChannels:
    """The ``wanted`` channels of an uncompressed scanline OpenEXR file (single- or multi-part), as floats.

    ValueError for a file this reader does not handle (compressed, tiled, damaged) or parts of
    different sizes.
    """
    headers, position = _read_headers(data)
    multipart = len(headers) > 1 or bool(struct.unpack_from("<I", data, 4)[0] & _MULTIPART)
    size = None
    layouts = []
    for header in headers:
        if header.get("compression", b"\0")[:1] != bytes([_NO_COMPRESSION]):
            raise ValueError("the OpenEXR file is compressed; the part pass writes it uncompressed (codec NONE)")
        xmin, ymin, xmax, ymax = struct.unpack("<4i", header["dataWindow"])
        part_size = (xmax - xmin + 1, ymax - ymin + 1)
        if size not in (None, part_size):
            raise ValueError(f"the OpenEXR parts differ in size: {size} and {part_size}")
        size = part_size
        chunks = struct.unpack("<i", header["chunkCount"])[0] if "chunkCount" in header else part_size[1]
        layouts.append((_channel_list(header["channels"]), ymin, chunks))
    if size is None:
        raise ValueError("the OpenEXR file has no image")
    width, height = size
    tables = []
    for _channels, _ymin, chunks in layouts:
        tables.append(struct.unpack_from(f"<{chunks}Q", data, position))
        position += 8 * chunks
    values: dict[str, array] = {}
    for (channels, ymin, _chunks), offsets in zip(layouts, tables, strict=True):
        rows = {name: [None] * height for name, _ in channels if wanted(name)}
        if not rows:
            continue
        for offset in offsets:
            offset += 4 if multipart else 0  # the part number
            y, length = struct.unpack_from("<ii", data, offset)
            line = data[offset + 8 : offset + 8 + length]
            start = 0
            for name, pixel_type in channels:
                end = start + width * _PIXEL_TYPES[pixel_type][0]
                if name in rows:
                    rows[name][y - ymin] = _floats(line[start:end], pixel_type)
                start = end
        for name, lines in rows.items():
            if any(line is None for line in lines):
                raise ValueError(f"the OpenEXR file lacks scanlines of channel {name!r}")
            values[name] = array("f", b"".join(line.tobytes() for line in lines))
    return ExrChannels(width, height, values)


# --- PNG ---------------------------------------------------------------------------------------------


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def encode_gray_png(width: int, height: int, values: Sequence[int], bits: int) -> bytes:
    """A grayscale PNG (``bits`` 8 or 16) of ``width * height`` integer ``values``, top row first."""
    if bits not in (8, 16):
        raise ValueError(f"bits must be 8 or 16, got {bits}")
    if len(values) != width * height:
        raise ValueError(f"{len(values)} values for a {width}x{height} image")
    pixels = array("B" if bits == 8 else "H", values)
    if bits == 16 and sys.byteorder == "little":
        pixels.byteswap()  # PNG stores 16-bit samples big-endian
    stride = width * bits // 8
    raw = pixels.tobytes()
    # filter type 0 (none) before every row
    scanlines = b"".join(b"\0" + raw[row * stride : (row + 1) * stride] for row in range(height))
    header = struct.pack(">IIBBBBB", width, height, bits, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(scanlines, 6))
        + _png_chunk(b"IEND", b"")
    )


# --- the part pass -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PartPass:
    """What the part pass sends: ``part_map`` and ``depth`` PNG bytes and the depth's ``[near, far]``.

    ``parts`` counts the distinct part ids seen (0, the background, not counted).
    """

    width: int
    height: int
    part_map: bytes
    depth: bytes
    depth_range: tuple[float, float]
    parts: int


def _grow_into_background(ids: array, depth: array, width: int, height: int) -> None:
    """Give each background pixel next to a part (4-neighbourhood) that part's id and depth, in place.

    The capture is antialiased and the part pass is not: the capture's soft rim lies one pixel outside
    the pass's hard one, and without this the rim of a moved part would stay behind.
    """
    grown = []
    for index in range(width * height):
        if ids[index]:
            continue
        x = index % width
        for neighbour in (index - width, index + width, index - 1 if x else -1, index + 1 if x + 1 < width else -1):
            if 0 <= neighbour < width * height and ids[neighbour]:
                grown.append((index, neighbour))
                break
    for index, neighbour in grown:
        ids[index] = ids[neighbour]
        depth[index] = depth[neighbour]


# split(ids, depth, width, height): gives some pixels of ``ids`` other part ids, in place (bones as parts).
Splitter = Callable[[array, array, int, int], None]


def part_pass_from_exr(data: bytes, known_ids: set[int] | None = None, split: Splitter | None = None) -> PartPass:
    """The part map and depth of a part-pass render (see the module docstring) as :class:`PartPass`.

    Pixels whose alpha is under one half are background (id 0, no surface), and so are pixels whose
    colour is no id in ``known_ids`` (an object whose colour could not be set). ``split`` may then
    divide objects into finer parts. ValueError when the file is not such a render.
    """
    exr = read_exr_channels(data, lambda name: name.endswith(COMBINED) or name.endswith(DEPTH))
    red, green, blue, alpha = (exr.find(suffix) for suffix in COMBINED)
    width, height = exr.width, exr.height
    pixels = zip(red, green, blue, alpha, strict=True)
    ids = array("i", (colour_part(r, g, b) if a >= 0.5 else 0 for r, g, b, a in pixels))
    if known_ids is not None:
        ids = array("i", (part if part in known_ids else 0 for part in ids))
    depth = array("f", (value if part else 0.0 for value, part in zip(exr.find(DEPTH), ids, strict=True)))
    if split is not None:
        split(ids, depth, width, height)
    _grow_into_background(ids, depth, width, height)
    return encode_part_pass(ids, depth, width, height)


def encode_part_pass(ids: Sequence[int], depth: Sequence[float], width: int, height: int) -> PartPass:
    """Encode ``(H * W)`` part ids (0 = background) and their depths as the PNGs of a :class:`PartPass`.

    The part map is 8-bit while every id is below 256, else 16-bit; the depth is 16-bit, spanning
    the nearest to the farthest depth of the part pixels.
    """
    surface = [value for value, part in zip(depth, ids, strict=True) if part]
    near, far = (min(surface), max(surface)) if surface else (0.0, 1.0)
    scale = (DEPTH_CODES - 1) / (far - near) if far > near else 0.0
    codes = [round((value - near) * scale) if part else NO_SURFACE for value, part in zip(depth, ids, strict=True)]
    largest = max(ids, default=0)
    if largest > MAX_PART_ID:
        raise ValueError(f"part id {largest} is over the backend's limit of {MAX_PART_ID}")
    return PartPass(
        width=width,
        height=height,
        part_map=encode_gray_png(width, height, ids, 8 if largest < 256 else 16),
        depth=encode_gray_png(width, height, codes, 16),
        depth_range=(float(near), float(far)),
        parts=len(set(ids) - {0}),
    )


def camera_point(
    index: int, depth: float, width: int, height: int, frame_bounds: Sequence[float], perspective: bool
) -> tuple[float, float, float]:
    """Camera-space point (x right, y up, looking down -z) that pixel ``index`` (row-major, top row first)
    shows at planar ``depth`` (the depth pass: distance along the view axis).

    ``frame_bounds`` is :meth:`..camera.CameraParams.frame_bounds` ``(xmin, xmax, ymin, ymax)``: the frame
    at unit distance (perspective) or in scene units (orthographic).
    """
    xmin, xmax, ymin, ymax = frame_bounds
    row, column = divmod(index, width)
    x = xmin + (column + 0.5) / width * (xmax - xmin)
    y = ymax - (row + 0.5) / height * (ymax - ymin)
    return (x * depth, y * depth, -depth) if perspective else (x, y, -depth)


def assign_part_ids(names: Iterable[str]) -> dict[str, int]:
    """Part ids 1, 2, ... for object names, in sorted order (the same scene gives the same ids).

    Past MAX_PART_ID objects the ids start again at 1: a scene that large shares ids between objects
    rather than failing to capture.
    """
    return {name: index % MAX_PART_ID + 1 for index, name in enumerate(sorted(set(names)))}
