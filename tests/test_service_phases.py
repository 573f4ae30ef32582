"""A running job says what it does (``phase``), and a cancel holds until its results are committed.

Real ``puppet-master serve --engine preview`` processes on 127.0.0.1 (issue 10, items D and E): the
add-on showed "Running 100%" through the un-crop and the file writing, and a cancel pressed then
ended "cancelled" in Blender while the backend recorded the job as succeeded.
"""

from __future__ import annotations

import base64
import io
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import requests
from PIL import Image

from tests.addon_support import backend_server

PHASES = {"encoding", "sampling", "decoding", "writing"}


def _image_b64(size: int) -> str:
    """An RGBA image: a grey square object on a transparent background."""
    pixels = np.zeros((size, size, 4), dtype=np.uint8)
    pixels[size // 4 : 3 * size // 4, size // 4 : 3 * size // 4] = (120, 120, 120, 255)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def _body(size: int, **overrides: object) -> dict:
    body = {"image": _image_b64(size), "drags": [[[0.5, 0.4], [0.6, 0.3]]], "frames": 16, "steps": 1, "seed": 1}
    return body | overrides


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    # the cancel test needs a job that writes for long: 1024x1024 x 32 frames x 4 videos, twice the default limit
    results = tmp_path_factory.mktemp("phases") / "results"
    with backend_server(results, "--engine", "preview", "--max-job-pixels", str(2**27)) as url:
        yield url


def _follow(url: str, job_id: str, until: set[str] | None = None, timeout: float = 120.0) -> list[dict]:
    """Every distinct (status, phase, step) of a job, polled fast, until it ends or shows a phase in ``until``."""
    seen: list[dict] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = requests.get(f"{url}/v1/jobs/{job_id}", timeout=10).json()
        if not seen or (job["status"], job["phase"], job["step"]) != (
            seen[-1]["status"],
            seen[-1]["phase"],
            seen[-1]["step"],
        ):
            seen.append(job)
        if job["status"] in ("succeeded", "failed", "cancelled") or (until and job["phase"] in until):
            return seen
        time.sleep(0.005)
    raise AssertionError(f"job {job_id} did not get there in {timeout} s: {[(j['status'], j['phase']) for j in seen]}")


def test_a_running_job_reports_its_phases(server: str) -> None:
    job_id = requests.post(f"{server}/v1/jobs", json=_body(512, num_videos=4), timeout=30).json()["id"]
    seen = _follow(server, job_id)
    assert seen[-1]["status"] == "succeeded" and seen[-1]["phase"] is None  # only a running job has a phase
    running = [job for job in seen if job["status"] == "running"]
    assert {job["phase"] for job in running} <= PHASES
    sampling = [job for job in running if job["phase"] == "sampling"]
    assert sampling and all(1 <= job["step"] <= job["total_steps"] == 16 for job in sampling)
    order = [job["phase"] for job in running]
    assert order.index("sampling") < order.index("writing")  # writing the files shows after the engine
    assert [job["phase"] for job in seen if job["status"] == "queued"] in ([], [None])


def test_a_cancel_while_writing_holds_and_both_sides_agree(server: str, tmp_path: Path) -> None:
    job_id = requests.post(f"{server}/v1/jobs", json=_body(1024, frames=32, num_videos=4), timeout=30).json()["id"]
    seen = _follow(server, job_id, until={"writing"})
    assert seen[-1]["phase"] == "writing", [(job["status"], job["phase"]) for job in seen]

    answer = requests.delete(f"{server}/v1/jobs/{job_id}", timeout=10)

    assert answer.status_code == 202 and answer.json()["cancel_requested"] is True
    final = _follow(server, job_id)[-1]
    assert final["status"] == "cancelled" and final["result"] is None
    assert requests.get(f"{server}/v1/jobs/{job_id}/frames/0.png", timeout=10).status_code in (404, 409)
