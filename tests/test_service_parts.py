"""``part_map``, ``depth`` and ``depth_range`` in ``POST /v1/jobs``: checked like the image, kept across a restart,
and used by the preview engine to move whole parts, over real HTTP against servers on 127.0.0.1.
"""

from __future__ import annotations

import base64
import io
import threading
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests
from PIL import Image

from backend.engines import GenerationRequest
from backend.engines.preview import PreviewEngine
from backend.service import images
from backend.service.errors import ApiError
from tests.test_service import StepEngine, finished, serve, wait_for

SIDE = 256  # the preview's model size: with crop_scale null the frames are the model's own pixels
BODY = (slice(64, 192), slice(40, 140))  # rows, columns
DOOR = (slice(64, 192), slice(140, 190))
# from the door's middle, 40 px right and 20 px down: a slide of whole pixels
DRAG = [[165 / SIDE, 128 / SIDE], [205 / SIDE, 148 / SIDE]]


def png_b64(pixels: np.ndarray, mode: str | None = None) -> str:
    buffer = io.BytesIO()
    Image.fromarray(pixels, mode).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def cabinet() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """RGBA pixels of a textured body with a door beside it in almost the same colour (no edge to find
    between them), its part map (body 1, door 2) and depth (the door nearer)."""
    ys, xs = np.mgrid[0:SIDE, 0:SIDE]
    pixels = np.zeros((SIDE, SIDE, 4), dtype=np.uint8)
    texture = np.stack([150 + (xs * 7 + ys * 3) % 40, 90 + (xs * 5 + ys * 11) % 30, 60 + ys % 20], -1)
    ids = np.zeros((SIDE, SIDE), dtype=np.uint8)
    depth = np.full((SIDE, SIDE), 65535, dtype=np.uint16)
    for part, (rows, columns), distance in ((1, BODY, 30000), (2, DOOR, 10000)):
        pixels[rows, columns, :3] = texture[rows, columns]
        pixels[rows, columns, 3] = 255
        ids[rows, columns] = part
        depth[rows, columns] = distance
    return pixels, ids, depth


PIXELS, IDS, DEPTH = cabinet()


def body(**overrides: Any) -> dict[str, Any]:
    job = {
        "image": png_b64(PIXELS),
        "part_map": png_b64(IDS),
        "depth": png_b64(DEPTH),
        "depth_range": [2.0, 5.0],
        "drags": [DRAG],
        "frames": 5,
        "steps": 2,
        "seed": 1,
        "crop_scale": None,
    }
    job.update(overrides)
    return {key: value for key, value in job.items() if value is not ...}


def result_frames(url: str, job: dict) -> np.ndarray:
    archive = zipfile.ZipFile(io.BytesIO(requests.get(url + job["result"]["zip_url"], timeout=30).content))
    names = sorted(name for name in archive.namelist() if name.endswith(".png"))
    return np.stack([np.asarray(Image.open(archive.open(name))) for name in names])


# ------------------------------------------------------------------------------------------------
# accepted, and used
# ------------------------------------------------------------------------------------------------


def test_a_part_map_moves_that_part_only(tmp_path: Path) -> None:
    with serve(tmp_path, PreviewEngine(reason="test")) as server:
        accepted = requests.post(f"{server.url}/v1/jobs", json=body(), timeout=30)
        assert accepted.status_code == 202, accepted.text
        job = wait_for(f"{server.url}/v1/jobs/{accepted.json()['id']}", finished)
        assert job["status"] == "succeeded", job
        assert job["settings"]["has_part_map"] and job["settings"]["has_depth"]
        assert job["settings"]["depth_range"] == [2.0, 5.0]
        frames = result_frames(server.url, job)

        # the same job without the part map: the door has no edge to the body, so no part can be grown
        unmapped = requests.post(f"{server.url}/v1/jobs", json=body(part_map=..., depth=..., depth_range=...))
        grown = result_frames(server.url, wait_for(f"{server.url}/v1/jobs/{unmapped.json()['id']}", finished))

    assert frames.shape == (5, SIDE, SIDE, 4)
    for frame in frames:  # the body stays bit for bit
        np.testing.assert_array_equal(frame[BODY], PIXELS[BODY])
    # the whole door slid with the drag: 40 px right, 20 px down by the last frame
    rows, columns = DOOR
    slid = (slice(rows.start + 20, rows.stop + 20), slice(columns.start + 40, columns.stop + 40))
    np.testing.assert_array_equal(frames[-1][slid], PIXELS[DOOR])
    # where the door was and nothing covers it now, the background shows
    assert (frames[-1][rows.start : rows.start + 20, columns.stop - 10 : columns.stop, 3] == 0).all()
    # without the map the preview moves something else than the door (not the whole door, exactly)
    assert not np.array_equal(grown[-1][slid], PIXELS[DOOR])


def test_8_and_16_bit_palette_and_data_url_encodings_are_accepted() -> None:
    size = (SIDE, SIDE)
    wide = IDS.astype(np.uint16) * 300  # ids 300 and 600: a 16-bit map
    np.testing.assert_array_equal(images.open_part_map(base64.b64decode(png_b64(wide)), size), wide)
    palette = Image.fromarray(IDS, "L").convert("P")
    buffer = io.BytesIO()
    palette.save(buffer, format="PNG")
    assert set(np.unique(images.open_part_map(buffer.getvalue(), size))) == set(np.unique(np.asarray(palette)))
    depth = images.open_depth(base64.b64decode(png_b64(DEPTH)), size, (2.0, 5.0))
    assert depth.dtype == np.float32 and np.isinf(depth[0, 0])
    np.testing.assert_allclose(depth[BODY], 2.0 + 30000 / 65534 * 3.0, rtol=1e-6)
    np.testing.assert_allclose(depth[DOOR], 2.0 + 10000 / 65534 * 3.0, rtol=1e-6)
    eight_bit = images.open_depth(base64.b64decode(png_b64((DEPTH // 256).astype(np.uint8))), size)
    assert np.isinf(eight_bit[0, 0]) and eight_bit[DOOR].max() < eight_bit[BODY].min()  # default range [0, 1]
    url = "data:image/png;base64," + png_b64(IDS)
    assert images.decode_base64(url, "part_map") == base64.b64decode(png_b64(IDS))


# ------------------------------------------------------------------------------------------------
# refused, naming the field
# ------------------------------------------------------------------------------------------------


def _jpeg_b64() -> str:
    buffer = io.BytesIO()
    Image.fromarray(IDS).save(buffer, format="JPEG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


BAD_BODIES = {
    "part map smaller than the image": (body(part_map=png_b64(IDS[:128])), "part_map", "256x128 pixels but the image"),
    "part map in colour": (body(part_map=png_b64(PIXELS[..., :3])), "part_map", "mode RGB"),
    "part map with alpha": (body(part_map=png_b64(PIXELS)), "part_map", "grayscale PNG"),
    "part map not base64": (body(part_map="not base64!"), "part_map", "not valid base64"),
    "part map empty": (body(part_map=""), "part_map", "at least 1 character"),
    "part map a JPEG": (body(part_map=_jpeg_b64()), "part_map", "not a PNG file"),
    "part map cut short": (body(part_map=png_b64(IDS)[:400]), "part_map", "could not be decoded"),
    "part map a bad data URL": (body(part_map="data:text/plain," + png_b64(IDS)), "part_map", "data URL"),
    "part map a number": (body(part_map=7), "part_map", "valid string"),
    "depth larger than the image": (body(depth=png_b64(np.zeros((SIDE, 300), np.uint16))), "depth", "300x256"),
    "depth in colour": (body(depth=png_b64(PIXELS)), "depth", "mode RGBA"),
    "depth range without depth": (body(depth=...), "depth_range", "depth, which is missing"),
    "depth range reversed": (body(depth_range=[5.0, 2.0]), "depth_range", "near (5.0) is beyond far (2.0)"),
    "depth range too far": (body(depth_range=[0.0, 1e13]), "depth_range[1]", "less than or equal to 1000000000000"),
    "depth range of one": (body(depth_range=[1.0]), "depth_range", "at least 2 items"),
}


@pytest.fixture(scope="module")
def preview_url(tmp_path_factory: pytest.TempPathFactory):
    with serve(tmp_path_factory.mktemp("parts"), PreviewEngine(reason="test")) as server:
        yield server.url


@pytest.mark.parametrize("case", sorted(BAD_BODIES))
def test_bad_part_inputs_get_a_422_naming_the_field(preview_url: str, case: str) -> None:
    job, field, message = BAD_BODIES[case]
    response = requests.post(f"{preview_url}/v1/jobs", json=job, timeout=30)
    assert response.status_code == 422, response.text
    [detail] = response.json()["detail"]
    assert detail["field"] == field and message in detail["message"], detail
    assert requests.get(f"{preview_url}/v1/jobs", timeout=10).json()["jobs"] == []  # nothing was queued


def test_what_the_engines_own_check_refuses_is_a_422_too() -> None:
    # a depth PNG cannot hold NaN, nor a part-map PNG an id over 65535; the engines' check is still the last word
    with pytest.raises(ApiError) as refused:
        images._checked("depth", (4, 3), depth=np.full((3, 4), np.nan))
    assert (refused.value.status, refused.value.field) == (422, "depth") and "NaN" in refused.value.message
    with pytest.raises(ApiError) as refused:
        images._checked("part_map", (4, 3), part_map=np.full((3, 4), 70000))
    assert (refused.value.status, refused.value.field) == (422, "part_map") and "65535" in refused.value.message


# ------------------------------------------------------------------------------------------------
# kept across a restart
# ------------------------------------------------------------------------------------------------


class RecordingEngine(StepEngine):
    """A StepEngine that keeps the part map and depth of each request it gets."""

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[GenerationRequest] = []

    def generate(self, request: GenerationRequest, progress=None, cancel: threading.Event | None = None):
        self.requests.append(request)
        return super().generate(request, progress, cancel)


def test_part_map_and_depth_survive_a_restart(tmp_path: Path) -> None:
    with serve(tmp_path, StepEngine(step_s=0.05)) as server:
        running = requests.post(f"{server.url}/v1/jobs", json=body(steps=200, part_map=...), timeout=30).json()["id"]
        waiting = requests.post(f"{server.url}/v1/jobs", json=body(), timeout=30).json()["id"]
        wait_for(f"{server.url}/v1/jobs/{running}", lambda job: job["status"] == "running")
    engine = RecordingEngine()
    with serve(tmp_path, engine) as server:
        jobs = [wait_for(f"{server.url}/v1/jobs/{job_id}", finished) for job_id in (running, waiting)]
    assert [job["status"] for job in jobs] == ["succeeded", "succeeded"]
    first, second = engine.requests
    assert first.part_map is None and second.part_map is not None
    np.testing.assert_array_equal(second.part_map, IDS)
    np.testing.assert_array_equal(np.isinf(second.depth), DEPTH == 65535)
    np.testing.assert_allclose(second.depth[DOOR], 2.0 + 10000 / 65534 * 3.0, rtol=1e-6)
    np.testing.assert_allclose(first.depth[BODY], 2.0 + 30000 / 65534 * 3.0, rtol=1e-6)  # depth without a map
