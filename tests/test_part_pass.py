"""The add-on's part pass maths without Blender: id colours, the OpenEXR reader, the PNGs it sends.

Blender's own EXR files are read in ``test_addon_parts.py``; here the reader meets files built byte by
byte from the OpenEXR layout (single- and multi-part, float and half channels), and the PNGs are
decoded by Pillow and by the service's own decoders, as the backend will.
"""

from __future__ import annotations

import io
import struct

import numpy as np
import pytest
from PIL import Image

from backend.service.images import PartInputs, decode_base64, open_depth, open_part_inputs, open_part_map
from backend.service.schemas import JobCreate
from tests.addon_core_loader import load_addon_core

part_pass, payload = load_addon_core("part_pass", "payload")

FLOAT, HALF = 2, 1


def _attribute(name: str, kind: str, value: bytes) -> bytes:
    return name.encode() + b"\0" + kind.encode() + b"\0" + struct.pack("<i", len(value)) + value


def _header(channels: list[tuple[str, int]], width: int, height: int, part_name: str | None, compression: int) -> bytes:
    chlist = b"".join(name.encode() + b"\0" + struct.pack("<iB3xii", kind, 0, 1, 1) for name, kind in channels) + b"\0"
    window = struct.pack("<4i", 0, 0, width - 1, height - 1)
    header = _attribute("channels", "chlist", chlist) + _attribute("compression", "compression", bytes([compression]))
    header += _attribute("dataWindow", "box2i", window) + _attribute("displayWindow", "box2i", window)
    if part_name is not None:
        header += _attribute("name", "string", part_name.encode()) + _attribute("type", "string", b"scanlineimage")
        header += _attribute("chunkCount", "int", struct.pack("<i", height))
    return header + b"\0"


def make_exr(parts: list[dict[str, np.ndarray]], kinds: dict[str, int] | None = None, compression: int = 0) -> bytes:
    """An uncompressed scanline OpenEXR file: one part per dict (``{channel: (H, W) array}``), several = multi-part."""
    kinds = kinds or {}
    height, width = next(iter(parts[0].values())).shape
    multipart = len(parts) > 1
    layouts = [sorted((name, kinds.get(name, FLOAT)) for name in part) for part in parts]
    headers = b"".join(
        _header(layout, width, height, f"part{index}" if multipart else None, compression)
        for index, layout in enumerate(layouts)
    )
    head = b"v/1\x01" + struct.pack("<I", 2 | (0x1000 if multipart else 0)) + headers + (b"\0" if multipart else b"")
    position = len(head) + 8 * height * len(parts)
    tables, chunks = [], []
    for index, (part, layout) in enumerate(zip(parts, layouts, strict=True)):
        offsets = []
        for y in range(height):
            line = b"".join(part[name][y].astype("<f4" if kind == FLOAT else "<f2").tobytes() for name, kind in layout)
            chunk = (struct.pack("<i", index) if multipart else b"") + struct.pack("<ii", y, len(line)) + line
            offsets.append(position)
            position += len(chunk)
            chunks.append(chunk)
        tables.append(struct.pack(f"<{height}Q", *offsets))
    return head + b"".join(tables) + b"".join(chunks)


def part_render(ids: np.ndarray, depth: np.ndarray, multipart: bool = True) -> bytes:
    """What Blender writes for the part pass: Combined RGBA (the id colours) and Depth.Z, as parts or one part."""
    colours = np.zeros((*ids.shape, 4), dtype=np.float32)
    for part in np.unique(ids[ids > 0]):
        colours[ids == part] = part_pass.part_colour(int(part))
    combined = {f"ViewLayer.Combined.{c}": colours[..., i] for i, c in enumerate("RGBA")}
    z = {"ViewLayer.Depth.Z": np.where(ids > 0, depth, 1e10).astype(np.float32)}
    kinds = dict.fromkeys(combined, HALF)  # Workbench's colours come as half floats (its GPU buffer)
    return make_exr([combined, z] if multipart else [combined | z], kinds)


def png_array(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)))


def test_every_part_id_survives_its_colour_in_half_floats() -> None:
    ids = np.arange(1, part_pass.MAX_PART_ID + 1)
    colours = np.array([part_pass.part_colour(int(part))[:3] for part in ids], dtype=np.float16)
    decoded = [part_pass.colour_part(*map(float, colour)) for colour in colours]
    assert decoded == ids.tolist()
    with pytest.raises(ValueError, match="part ids are 1..65535"):
        part_pass.part_colour(0)


@pytest.mark.parametrize("multipart", [True, False], ids=["multi-part", "single part"])
def test_exr_channels_are_read_top_row_first_in_float_and_half(multipart: bool) -> None:
    rng = np.random.default_rng(0)
    red = rng.random((5, 7)).astype(np.float32)
    depth = rng.random((5, 7)).astype(np.float32) * 100
    parts = [{"L.Combined.R": red}, {"L.Depth.Z": depth}]
    data = make_exr(parts if multipart else [parts[0] | parts[1]], {"L.Combined.R": HALF})
    exr = part_pass.read_exr_channels(data, lambda name: True)
    assert (exr.width, exr.height) == (7, 5)
    np.testing.assert_array_equal(np.asarray(exr.find(".Depth.Z")).reshape(5, 7), depth)
    np.testing.assert_array_equal(np.asarray(exr.find(".Combined.R")).reshape(5, 7), red.astype(np.float16))
    only_depth = part_pass.read_exr_channels(data, lambda name: name.endswith(".Z"))
    assert list(only_depth.values) == ["L.Depth.Z"]
    with pytest.raises(KeyError, match="no Combined.G channel"):
        exr.find(".Combined.G")


def test_exr_files_the_reader_does_not_handle_are_refused() -> None:
    plane = {"R": np.zeros((2, 2), dtype=np.float32)}
    with pytest.raises(ValueError, match="compressed"):
        part_pass.read_exr_channels(make_exr([plane], compression=3), lambda name: True)
    with pytest.raises(ValueError, match="not an OpenEXR file"):
        part_pass.read_exr_channels(b"\x89PNG\r\n\x1a\n", lambda name: True)


@pytest.mark.parametrize("bits", [8, 16])
def test_gray_pngs_decode_to_the_values(bits: int) -> None:
    values = np.random.default_rng(1).integers(0, 2**bits, (9, 13))
    data = part_pass.encode_gray_png(13, 9, values.ravel().tolist(), bits)
    decoded = png_array(data)
    assert decoded.dtype == (np.uint8 if bits == 8 else np.uint16)
    np.testing.assert_array_equal(decoded, values)
    with pytest.raises(ValueError, match="36 values for a 13x9 image"):
        part_pass.encode_gray_png(13, 9, [0] * 36, bits)


def test_the_part_pass_gives_ids_and_depth_the_backend_reads_back() -> None:
    ids = np.zeros((12, 16), dtype=np.int32)
    ids[2:6, 2:7] = 3  # a near part
    ids[6:10, 8:14] = 300  # a far one, with an id over 255 (a 16-bit map)
    ids[2:6, 10:12] = 4  # a colour no object was given: no part
    depth = np.where(ids == 3, 2.0, 5.0).astype(np.float32)
    depth[6:10, 13] = 6.0  # a slanted edge: the far part's far end
    result = part_pass.part_pass_from_exr(part_render(ids, depth), known_ids={3, 300})

    assert result.parts == 2 and result.depth_range == (2.0, 6.0)
    part_map = open_part_map(result.part_map, (16, 12))
    decoded_depth = open_depth(result.depth, (16, 12), result.depth_range)
    inner = np.zeros_like(ids, dtype=bool)
    inner[3:5, 3:6] = inner[7:9, 9:12] = True
    np.testing.assert_array_equal(part_map[inner], ids[inner])
    assert (part_map[2:5, 10:12] == 0).all() and np.isinf(decoded_depth[2:5, 10:12]).all()  # (row 5: the rim of 300)
    np.testing.assert_allclose(decoded_depth[ids == 3], 2.0)
    np.testing.assert_allclose(decoded_depth[6:10, 13], 6.0)
    # the rim: one pixel around each part takes its id and depth (the capture's antialiased edge)
    assert part_map[1, 4] == 3 and part_map[4, 7] == 3 and part_map[10, 10] == 300
    np.testing.assert_allclose(decoded_depth[1, 4], 2.0)
    assert part_map[0, 0] == 0 and np.isinf(decoded_depth[0, 0]) and part_map[1, 1] == 0  # not diagonally


def test_an_empty_frame_sends_an_empty_map() -> None:
    result = part_pass.part_pass_from_exr(part_render(np.zeros((4, 5), dtype=np.int32), np.zeros((4, 5))))
    assert result.parts == 0 and result.depth_range == (0.0, 1.0)
    assert (png_array(result.part_map) == 0).all() and (png_array(result.depth) == part_pass.NO_SURFACE).all()


def test_part_ids_number_objects_by_name_and_wrap_past_the_limit() -> None:
    assert part_pass.assign_part_ids(["b", "a", "c", "a"]) == {"a": 1, "b": 2, "c": 3}
    many = part_pass.assign_part_ids(f"{index:06d}" for index in range(part_pass.MAX_PART_ID + 2))
    assert many["065535"] == 1 and max(many.values()) == part_pass.MAX_PART_ID


@pytest.mark.parametrize("projection", ["PERSP", "ORTHO"])
def test_camera_point_is_where_the_camera_sees_the_pixel_at_that_depth(projection: str) -> None:
    (camera,) = load_addon_core("camera")
    params = camera.CameraParams(projection=projection, resolution_x=40, resolution_y=30, shift_x=0.1, lens=35.0)
    identity = [[1.0 if row == column else 0.0 for column in range(4)] for row in range(4)]  # looking down -z
    width, height, depth = 40, 30, 7.5
    for index in (0, 17, 40 * 12 + 33, 40 * 30 - 1):
        point = part_pass.camera_point(index, depth, width, height, params.frame_bounds(), projection == "PERSP")
        ((x, y, seen_depth),) = camera.project_points([point], identity, params)
        row, column = divmod(index, width)
        assert (x * width, y * height, seen_depth) == pytest.approx((column + 0.5, row + 0.5, depth))


def test_the_payload_carries_the_part_pass_as_the_api_takes_it() -> None:
    ids = np.zeros((6, 8), dtype=np.int32)
    ids[1:5, 2:6] = 2
    result = part_pass.part_pass_from_exr(part_render(ids, np.full((6, 8), 4.0, dtype=np.float32)))
    image = io.BytesIO()
    Image.new("RGBA", (8, 6), (90, 90, 90, 255)).save(image, format="PNG")
    settings = dict(steps=2, guidance=5.0, seed=1, num_videos=1, crop_scale=2.2, frames=14, ease="linear")
    body = payload.build_payload(image.getvalue(), [[(0.5, 0.5), (0.7, 0.5)]], parts=result, **settings)
    job = JobCreate.model_validate(body, strict=True)
    assert job.depth_range == [4.0, 4.0]
    parts = PartInputs(decode_base64(job.part_map, "part_map"), decode_base64(job.depth, "depth"))
    part_map, depth = open_part_inputs(parts, job.depth_range, (8, 6))
    assert set(np.unique(part_map)) == {0, 2} and np.isfinite(depth[part_map > 0]).all()
    alone = payload.build_payload(image.getvalue(), [[(0.5, 0.5), (0.7, 0.5)]], **settings)
    assert not {"part_map", "depth", "depth_range"} & set(alone)
