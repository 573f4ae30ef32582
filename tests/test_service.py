"""The HTTP service, driven over real HTTP against uvicorn servers on 127.0.0.1 (random free ports).

Most tests use the real preview engine; cancel, queue-full and failure tests use small fake engines
that keep the :class:`~backend.engines.base.Engine` contract (slow ones check ``cancel`` between steps).
The loading tests give the app an engine factory that holds until the test releases it. Every test
starts its own servers in its own temporary folder, so any order (or one test alone) gives the same result.
"""

from __future__ import annotations

import base64
import io
import json
import re
import socket
import subprocess
import sys
import threading
import time
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from backend.cli import main as cli_main
from backend.engines import Cancelled, GenerationRequest, GenerationResult
from backend.engines.preview import PreviewEngine
from backend.pipeline.inputs import prepare_inputs
from backend.service import ServiceSettings, create_app
from backend.service.server import BackgroundServer
from tests.slow_backend import FIRST_STAGE, HeldFactory

WIDTH, HEIGHT = 96, 64
DRAGS = [[[0.55, 0.5], [0.7, 0.42]], [[0.35, 0.55], [0.3, 0.6], [0.28, 0.7]]]
TERMINAL = {"succeeded", "failed", "cancelled"}


# ------------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------------


def png_base64(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def object_image(width: int = WIDTH, height: int = HEIGHT) -> Image.Image:
    """A textured opaque object in the middle of a transparent frame (as a Blender render with film transparent)."""
    pixels = np.zeros((height, width, 4), dtype=np.uint8)
    ys, xs = np.mgrid[0:height, 0:width]
    inside = (abs(xs - width / 2) < width / 4) & (abs(ys - height / 2) < height / 4)
    pixels[inside] = np.stack([xs * 2 % 256, ys * 3 % 256, np.full_like(xs, 128), np.full_like(xs, 255)], -1)[inside]
    return Image.fromarray(pixels, "RGBA")


IMAGE_B64 = png_base64(object_image())


def job_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"image": IMAGE_B64, "drags": DRAGS, "frames": 6, "steps": 4, "seed": 3}
    body.update(overrides)
    return body


def wait_for(url: str, predicate: Callable[[dict], bool], timeout: float = 20.0, headers: dict | None = None) -> dict:
    """Poll a job (or any JSON resource, e.g. health) until ``predicate(job)``; its JSON."""
    deadline = time.monotonic() + timeout
    while True:
        job = requests.get(url, headers=headers, timeout=10).json()
        if predicate(job):
            return job
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting on {url}: {job}")
        time.sleep(0.01)


def finished(job: dict) -> bool:
    return job["status"] in TERMINAL


class StepEngine:
    """A fake engine: ``steps`` sleeps of ``step_s``, checking ``cancel`` before each; frames are the input.

    ``failures`` are raised by the first calls, one each, before any step.
    """

    name = "fake"

    def __init__(self, step_s: float = 0.0, failures: list[BaseException] | None = None) -> None:
        self.step_s = step_s
        self.failures = list(failures or [])
        self.calls = 0

    def describe(self) -> dict[str, Any]:
        return {"engine": self.name, "device": "cpu", "dtype": "none", "model": None, "reason": "test engine"}

    def generate(
        self,
        request: GenerationRequest,
        progress: Callable[[int, int], None] | None = None,
        cancel: threading.Event | None = None,
    ) -> GenerationResult:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        # the same input checks the real engines make, so invalid input that slipped through shows
        inputs = prepare_inputs(
            request.image, request.drags, request.num_frames, request.mask, request.crop_scale, request.ease
        )
        for step in range(request.steps):
            if cancel is not None and cancel.is_set():
                raise Cancelled(f"cancelled after {step} steps")
            time.sleep(self.step_s)
            if progress is not None:
                progress(step + 1, request.steps)
        video = np.repeat(np.asarray(request.image.convert("RGBA"))[None], request.num_frames, axis=0)
        return GenerationResult(
            videos=[video] * request.num_videos,
            crops=[],
            crop_box=inputs.crop_box,
            image_trajectories=inputs.image_trajectories,
            seed=request.seed if request.seed is not None else 1,
            engine=self.name,
            timings={"sampling": self.step_s * request.steps},
        )


def serve(tmp_path: Path, engine: Any, **settings_overrides: Any) -> BackgroundServer:
    settings_overrides.setdefault("results_dir", tmp_path / "results")
    app = create_app(ServiceSettings(**settings_overrides), engine=engine, engine_reason="test")
    return BackgroundServer(app)


def serve_loading(tmp_path: Path, factory: Callable[..., tuple[Any, str]], **overrides: Any) -> BackgroundServer:
    """A server whose engine comes from ``factory``, on a background thread, as ``puppet-master serve`` loads it."""
    overrides.setdefault("results_dir", tmp_path / "results")
    return BackgroundServer(create_app(ServiceSettings(**overrides), engine_factory=factory))


@pytest.fixture
def preview_server(tmp_path: Path) -> Iterator[BackgroundServer]:
    with serve(tmp_path, PreviewEngine(reason="requested by the test")) as server:
        yield server


# ------------------------------------------------------------------------------------------------
# the happy path, with the real preview engine
# ------------------------------------------------------------------------------------------------


def test_preview_job_runs_end_to_end(preview_server: BackgroundServer) -> None:
    base = preview_server.url
    health = requests.get(f"{base}/v1/health", timeout=10).json()
    assert health["engine"] == "preview" and health["reason"] == "requested by the test"
    assert health["status"] == "ok" and health["auth"] is False

    response = requests.post(f"{base}/v1/jobs", json=job_body(output={"gif": True, "overlay": True}), timeout=10)
    assert response.status_code == 202, response.text
    accepted = response.json()
    assert response.headers["Location"] == accepted["url"] == f"/v1/jobs/{accepted['id']}"

    progress_seen = []
    job = wait_for(base + accepted["url"], lambda job: progress_seen.append(job["progress"]) or finished(job))
    assert job["status"] == "succeeded", job
    assert progress_seen == sorted(progress_seen) and job["progress"] == 1.0
    result = job["result"]
    assert result["engine"] == "preview" and result["seed"] == 3
    assert (result["width"], result["height"], result["num_frames"]) == (WIDTH, HEIGHT, 6)
    assert set(result["crop_box"]) == {"left", "top", "size", "image_width", "image_height"}
    timings = job["timings"]
    assert timings["total"] >= timings["engine"] > 0 and "warp" in timings["stages"]

    frames = result["videos"][0]["frames"]
    assert len(frames) == 6
    for url in frames:
        response = requests.get(base + url, timeout=10)
        assert response.status_code == 200 and response.headers["content-type"] == "image/png"
        frame = Image.open(io.BytesIO(response.content))
        assert frame.size == (WIDTH, HEIGHT) and frame.mode == "RGBA"
    gif = requests.get(base + result["videos"][0]["gif_url"], timeout=10)
    assert gif.status_code == 200 and gif.content[:6] == b"GIF89a"
    mp4 = requests.get(f"{base}{accepted['url']}/video.mp4", timeout=10)
    assert mp4.status_code == 404 and mp4.json()["detail"][0]["field"] == "output.mp4"

    archive = requests.get(base + result["zip_url"], timeout=10)
    assert archive.status_code == 200
    with zipfile.ZipFile(io.BytesIO(archive.content)) as zipped:
        names = zipped.namelist()
        record = json.loads(zipped.read("record.json"))
    assert sorted(names) == ["record.json"] + [f"video_0/frame_{n:04d}.png" for n in range(6)]
    assert record["status"] == "succeeded" and record["result"]["seed"] == 3
    assert record["settings"]["drags"] == DRAGS

    listed = requests.get(f"{base}/v1/jobs", timeout=10).json()["jobs"]
    assert [job["id"] for job in listed] == [accepted["id"]]
    assert requests.get(f"{base}/openapi.json", timeout=10).json()["paths"]["/v1/jobs"]["post"]


def test_events_stream_until_the_job_ends(preview_server: BackgroundServer) -> None:
    base = preview_server.url
    job_id = requests.post(f"{base}/v1/jobs", json=job_body(frames=8), timeout=10).json()["id"]
    events: list[tuple[str, dict]] = []
    with requests.get(f"{base}/v1/jobs/{job_id}/events", stream=True, timeout=30) as stream:
        assert stream.status_code == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        name = None
        for line in stream.iter_lines(decode_unicode=True):  # ends when the server closes the stream
            if line.startswith("event:"):
                name = line.split(":", 1)[1].strip()
            elif line.startswith("data:"):
                events.append((name, json.loads(line.split(":", 1)[1])))
    assert events, "no events"
    assert events[-1][0] == "succeeded" and events[-1][1]["status"] == "succeeded"
    assert all(name == data["status"] for name, data in events)
    assert sum(name in TERMINAL for name, _ in events) == 1
    steps = [data["step"] for _, data in events]
    assert steps == sorted(steps) and steps[-1] == 8


# ------------------------------------------------------------------------------------------------
# cancel, queue limits, failures, restart
# ------------------------------------------------------------------------------------------------


def test_cancel_running_and_queued_jobs_then_delete(tmp_path: Path) -> None:
    with serve(tmp_path, StepEngine(step_s=0.02)) as server:
        base = server.url
        running = requests.post(f"{base}/v1/jobs", json=job_body(steps=200), timeout=10).json()
        queued = requests.post(f"{base}/v1/jobs", json=job_body(steps=200), timeout=10).json()
        wait_for(base + running["url"], lambda job: job["status"] == "running" and job["step"] > 0)
        assert requests.get(base + queued["url"], timeout=10).json()["queue_position"] == 1

        response = requests.delete(base + queued["url"], timeout=10)
        assert response.status_code == 202 and response.json()["status"] == "cancelled"

        response = requests.delete(base + running["url"], timeout=10)
        assert response.status_code == 202 and response.json()["cancel_requested"] is True
        job = wait_for(base + running["url"], finished)
        assert job["status"] == "cancelled" and 0 < job["step"] < 200
        frame = requests.get(f"{base}{running['url']}/frames/0.png", timeout=10)
        assert frame.status_code == 404

        # a finished job: DELETE removes it and its files
        done = requests.post(f"{base}/v1/jobs", json=job_body(steps=1), timeout=10).json()
        assert wait_for(base + done["url"], finished)["status"] == "succeeded"
        assert (tmp_path / "results" / done["id"] / "record.json").exists()
        assert requests.delete(base + done["url"], timeout=10).status_code == 204
        assert requests.get(base + done["url"], timeout=10).status_code == 404
        assert not (tmp_path / "results" / done["id"]).exists()


def test_full_queue_answers_429_with_retry_after(tmp_path: Path) -> None:
    with serve(tmp_path, StepEngine(step_s=0.02), max_queue=1) as server:
        base = server.url
        first = requests.post(f"{base}/v1/jobs", json=job_body(steps=200), timeout=10).json()
        wait_for(base + first["url"], lambda job: job["status"] == "running")
        second = requests.post(f"{base}/v1/jobs", json=job_body(steps=200), timeout=10)
        assert second.status_code == 202
        third = requests.post(f"{base}/v1/jobs", json=job_body(), timeout=10)
        assert third.status_code == 429
        assert int(third.headers["Retry-After"]) >= 1
        assert "queue is full" in third.json()["detail"][0]["message"]
        assert requests.get(f"{base}/v1/health", timeout=10).json()["queue_length"] == 1
        for job in (second.json(), first):
            requests.delete(base + job["url"], timeout=10)
        wait_for(base + first["url"], finished)


def test_engine_failures_fail_the_job_and_the_next_job_runs(tmp_path: Path) -> None:
    failures = [
        RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB"),
        ValueError("drag 0 leaves the model image"),
        KeyError("boom"),
    ]
    with serve(tmp_path, StepEngine(failures=failures)) as server:
        base = server.url
        messages = []
        for _ in failures:
            job_id = requests.post(f"{base}/v1/jobs", json=job_body(), timeout=10).json()["id"]
            job = wait_for(f"{base}/v1/jobs/{job_id}", finished)
            assert job["status"] == "failed" and job["result"] is None
            messages.append(job["error"])
        assert "ran out of memory" in messages[0] and "CUDA out of memory" in messages[0]
        assert messages[1] == "the engine rejected the input: drag 0 leaves the model image"
        assert messages[2].startswith("generation failed: KeyError")

        job_id = requests.post(f"{base}/v1/jobs", json=job_body(), timeout=10).json()["id"]
        assert wait_for(f"{base}/v1/jobs/{job_id}", finished)["status"] == "succeeded"
        assert requests.get(f"{base}/v1/health", timeout=10).json()["status"] == "ok"


def test_restarted_server_serves_earlier_results(tmp_path: Path) -> None:
    engine = PreviewEngine()
    with serve(tmp_path, engine) as server:
        job_id = requests.post(f"{server.url}/v1/jobs", json=job_body(num_videos=2), timeout=10).json()["id"]
        before = wait_for(f"{server.url}/v1/jobs/{job_id}", finished)
        frame_before = requests.get(f"{server.url}/v1/jobs/{job_id}/frames/5.png?video=1", timeout=10).content
    assert before["status"] == "succeeded"

    with serve(tmp_path, engine) as server:
        after = requests.get(f"{server.url}/v1/jobs/{job_id}", timeout=10).json()
        assert after == before
        response = requests.get(f"{server.url}/v1/jobs/{job_id}/frames/5.png?video=1", timeout=10)
        assert response.status_code == 200 and response.content == frame_before
        missing = requests.get(f"{server.url}/v1/jobs/{job_id}/frames/0.png?video=2", timeout=10)
        assert missing.status_code == 404 and missing.json()["detail"][0]["field"] == "video"


def test_old_results_are_pruned_at_start_up(tmp_path: Path) -> None:
    with serve(tmp_path, StepEngine()) as server:
        job_id = requests.post(f"{server.url}/v1/jobs", json=job_body(), timeout=10).json()["id"]
        wait_for(f"{server.url}/v1/jobs/{job_id}", finished)
    record_path = tmp_path / "results" / job_id / "record.json"
    record = json.loads(record_path.read_text())
    record["finished_at"] -= 3 * 3600
    record_path.write_text(json.dumps(record))

    with serve(tmp_path, StepEngine(), keep_hours=2) as server:
        assert requests.get(f"{server.url}/v1/jobs/{job_id}", timeout=10).status_code == 404
    assert not record_path.parent.exists()


# ------------------------------------------------------------------------------------------------
# the engine loads in the background: the port opens at once, jobs queue meanwhile
# ------------------------------------------------------------------------------------------------


def test_port_opens_at_once_and_health_reports_loading_until_the_engine_is_ready(tmp_path: Path) -> None:
    factory = HeldFactory(PreviewEngine(reason="requested by the test"))
    server = serve_loading(tmp_path, factory)
    started = time.monotonic()
    with server:
        first = requests.get(f"{server.url}/v1/health", timeout=10).json()
        assert time.monotonic() - started < 1.0, "the port did not answer within a second while the engine loads"
        assert first["status"] == "loading", first
        assert first["engine"] is None and first["reason"] is None and first["error"] is None
        loading = wait_for(f"{server.url}/v1/health", lambda health: health["stage"] == FIRST_STAGE)
        assert loading["status"] == "loading" and loading["load_s"] >= first["load_s"]
        time.sleep(0.3)
        later = requests.get(f"{server.url}/v1/health", timeout=10).json()
        assert later["status"] == "loading" and later["load_s"] >= loading["load_s"] + 0.3  # the clock runs

        # a job sent while the engine loads is accepted and waits at the head of the queue
        response = requests.post(f"{server.url}/v1/jobs", json=job_body(), timeout=10)
        assert response.status_code == 202, response.text
        accepted = response.json()
        assert accepted["status"] == "queued" and accepted["queue_position"] == 1
        time.sleep(0.3)  # the worker must not take it before the engine is there
        job = requests.get(server.url + accepted["url"], timeout=10).json()
        assert job["status"] == "queued" and job["queue_position"] == 1
        assert requests.get(f"{server.url}/v1/health", timeout=10).json()["queue_length"] == 1

        factory.release.set()
        job = wait_for(server.url + accepted["url"], finished)
        assert job["status"] == "succeeded", job
        assert job["result"]["engine"] == "preview" and job["result"]["num_frames"] == 6
        health = requests.get(f"{server.url}/v1/health", timeout=10).json()
        assert health["status"] == "ok" and health["engine"] == "preview" and health["device"] == "cpu"
        assert health["reason"] == "requested by the test"
        assert health["stage"] is None and health["error"] is None and health["load_s"] >= later["load_s"]
        assert health["queue_length"] == 0


def test_a_failed_load_fails_the_queued_jobs_and_refuses_new_ones_with_its_message(tmp_path: Path) -> None:
    cause = "model folder /models/slow does not exist; run `puppet-master fetch-weights` or pass --model DIR"
    factory = HeldFactory(error=FileNotFoundError(cause))
    with serve_loading(tmp_path, factory, engine="puppet-master") as server:
        queued = requests.post(f"{server.url}/v1/jobs", json=job_body(), timeout=10)
        assert queued.status_code == 202, queued.text
        factory.release.set()

        job = wait_for(server.url + queued.json()["url"], finished)
        assert job["status"] == "failed" and job["result"] is None
        assert job["error"].startswith(f"the engine failed to load: {cause}; fix that and restart")
        health = wait_for(f"{server.url}/v1/health", lambda health: health["status"] != "loading")
        assert health["status"] == "error" and health["error"] == cause
        assert health["engine"] is None and health["stage"] is None

        refused = requests.post(f"{server.url}/v1/jobs", json=job_body(), timeout=10)
        assert refused.status_code == 503
        assert refused.json()["detail"][0]["message"] == job["error"]


def test_engine_puppet_master_without_weights_serves_the_error(tmp_path: Path, monkeypatch) -> None:
    """The real engine factory, as ``serve --engine puppet-master`` runs it where nothing was fetched."""
    monkeypatch.setenv("PUPPET_MASTER_HOME", str(tmp_path / "home"))  # no fetched weights there
    app = create_app(ServiceSettings(engine="puppet-master", results_dir=tmp_path / "results"))
    with BackgroundServer(app) as server:
        health = wait_for(f"{server.url}/v1/health", lambda health: health["status"] != "loading")
        assert health["status"] == "error", health
        assert health["error"].startswith("--engine puppet-master needs model weights")
        assert "puppet-master fetch-weights" in health["error"]
        refused = requests.post(f"{server.url}/v1/jobs", json=job_body(), timeout=10)
        assert refused.status_code == 503
        assert health["error"] in refused.json()["detail"][0]["message"]


# ------------------------------------------------------------------------------------------------
# security
# ------------------------------------------------------------------------------------------------


def test_token_is_required_when_set(tmp_path: Path) -> None:
    with serve(tmp_path, StepEngine(), token="s3cret-token") as server:
        base = server.url
        assert requests.get(f"{base}/v1/health", timeout=10).json()["auth"] is True
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic czNjcmV0LXRva2Vu"}):
            response = requests.get(f"{base}/v1/jobs", headers=headers, timeout=10)
            assert response.status_code == 401, headers
            assert response.headers["WWW-Authenticate"] == "Bearer"
            assert response.json()["detail"][0]["field"] == "Authorization"
        assert requests.post(f"{base}/v1/jobs", json=job_body(), timeout=10).status_code == 401

        good = {"Authorization": "Bearer s3cret-token"}
        assert requests.get(f"{base}/v1/jobs", headers=good, timeout=10).status_code == 200
        accepted = requests.post(f"{base}/v1/jobs", json=job_body(), headers=good, timeout=10)
        assert accepted.status_code == 202
        job = wait_for(base + accepted.json()["url"], finished, headers=good)
        assert requests.get(base + job["result"]["videos"][0]["frames"][0], timeout=10).status_code == 401
        assert requests.get(base + job["result"]["videos"][0]["frames"][0], headers=good, timeout=10).ok


def test_serve_refuses_a_public_address_without_token(capsys: pytest.CaptureFixture[str], monkeypatch) -> None:
    monkeypatch.delenv("PUPPET_MASTER_TOKEN", raising=False)
    assert cli_main(["serve", "--host", "0.0.0.0", "--engine", "preview"]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("puppet-master serve: refusing to listen on 0.0.0.0 without a token")
    assert "\n" not in error and "Traceback" not in error


def test_serve_command_starts_and_says_which_engine_runs(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "backend.cli", "serve", "--port", str(port), "--engine", "preview"]
    command += ["--results-dir", str(tmp_path / "results")]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}/v1/health"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                health = requests.get(url, timeout=1).json()
                break
            except requests.ConnectionError:
                assert process.poll() is None and time.monotonic() < deadline, "the server did not come up"
                time.sleep(0.1)
        health = wait_for(url, lambda health: health["status"] != "loading")
        assert health["status"] == "ok" and health["engine"] == "preview"
        assert health["reason"] == "requested with --engine preview"
    finally:
        process.terminate()
        output = process.communicate(timeout=30)[0]
    assert "puppet-master serve: loading the engine (--engine preview) in the background" in output
    assert re.search(r"engine ready after [\d.]+ s: preview \(requested with --engine preview\); device cpu", output)
    assert "Traceback" not in output


def test_engine_choice(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from backend.engines import factory

    monkeypatch.setenv("PUPPET_MASTER_HOME", str(tmp_path / "home"))  # not the weights this machine fetched

    def choose(engine: str, **options: Any) -> tuple[Any, str]:
        settings = ServiceSettings(engine=engine, results_dir=tmp_path, **options)
        return factory.create_engine(settings.engine_config())

    engine, reason = choose("preview")
    assert engine.name == "preview" and reason == "requested with --engine preview"
    monkeypatch.setattr(factory, "gpu_unavailable_reason", lambda: "no GPU: CUDA and MPS are unavailable")
    engine, reason = choose("auto", model=tmp_path)
    assert engine.name == "preview" and reason.startswith("no GPU: CUDA and MPS are unavailable (the model needs")
    assert engine.describe()["reason"] == reason
    engine, reason = choose("auto")
    assert reason == f"no GPU: CUDA and MPS are unavailable; no model weights: {factory.FETCH_HINT}"

    monkeypatch.setattr(factory, "gpu_unavailable_reason", lambda: None)  # as if there were a GPU
    engine, reason = choose("auto")
    assert engine.name == "preview" and reason == f"no model weights: {factory.FETCH_HINT}"
    engine, reason = choose("auto", model=tmp_path / "missing", device="cpu")
    assert engine.name == "preview" and reason.startswith("the Puppet-Master model failed to load: model folder")
    with pytest.raises(ValueError, match="needs model weights"):
        choose("puppet-master")
    with pytest.raises(FileNotFoundError):
        choose("puppet-master", model=tmp_path / "missing", device="cpu")


# ------------------------------------------------------------------------------------------------
# bad input: readable 4xx, never 5xx, never the engine
# ------------------------------------------------------------------------------------------------


def _transparent_png() -> str:
    return png_base64(Image.new("RGBA", (32, 32), (0, 0, 0, 0)))


def _huge_png() -> str:
    return png_base64(Image.new("L", (5000, 8)))


BAD_BODIES = [
    (job_body(image="not base64!"), 422, "image"),
    (job_body(image=base64.b64encode(b"GIF89a nonsense").decode()), 422, "image"),
    (job_body(image=IMAGE_B64[: len(IMAGE_B64) // 2]), 422, "image"),
    (job_body(image="data:text/plain;base64,AAAA"), 422, "image"),
    (job_body(image=_transparent_png()), 422, "image"),
    (job_body(image=_huge_png()), 413, "image"),
    (job_body(drags=[]), 422, "drags"),
    (job_body(drags=DRAGS * 3), 422, "drags"),
    (job_body(drags=[[[0.5, 0.5]]]), 422, "drags[0]"),
    (job_body(drags=[DRAGS[0], [[0.1, 0.2], [1.5, 0.2]]]), 422, "drags[1][1][0]"),
    (job_body(drags=[[[0.5, 0.5, 0.5], [0.6, 0.5]]]), 422, "drags[0][0]"),
    (job_body(drags=[[[0.5, "x"], [0.6, 0.5]]]), 422, "drags[0][0][1]"),
    (job_body(steps=0), 422, "steps"),
    (job_body(steps=True), 422, "steps"),
    (job_body(frames=33), 422, "frames"),
    (job_body(guidance=-1), 422, "guidance"),
    (job_body(seed=2**32), 422, "seed"),
    (job_body(num_videos=5), 422, "num_videos"),
    (job_body(crop_scale=0.5), 422, "crop_scale"),
    (job_body(ease="bounce"), 422, "ease"),
    (job_body(output={"gif": "yes"}), 422, "output.gif"),
    (job_body(guidence=5), 422, "guidence"),
    ({"drags": DRAGS}, 422, "image"),
]


def test_bad_requests_get_a_4xx_naming_the_field(tmp_path: Path) -> None:
    engine = StepEngine()
    with serve(tmp_path, engine, max_body_mb=1) as server:
        base = server.url
        for body, status, field in BAD_BODIES:
            response = requests.post(f"{base}/v1/jobs", json=body, timeout=10)
            assert response.status_code == status, (field, response.text)
            fields = [problem["field"] for problem in response.json()["detail"]]
            assert field in fields, (field, response.text)

        raw = json.dumps(job_body()).replace("0.55", "NaN")
        response = requests.post(f"{base}/v1/jobs", data=raw, headers={"Content-Type": "application/json"}, timeout=10)
        assert response.status_code == 422 and response.json()["detail"][0]["field"] == "drags[0][0][0]"
        response = requests.post(f"{base}/v1/jobs", data=b"{not json", headers={"Content-Type": "application/json"})
        assert response.status_code == 422 and response.json()["detail"][0]["field"] == "body"
        too_big = job_body(image="A" * (2 * 1024 * 1024))
        response = requests.post(f"{base}/v1/jobs", json=too_big, timeout=10)
        assert response.status_code == 413 and response.json()["detail"][0]["field"] == "body"

        assert requests.get(f"{base}/v1/jobs/not-a-job-id", timeout=10).json()["detail"][0]["field"] == "job_id"
        unknown = requests.get(f"{base}/v1/jobs/{'A' * 22}", timeout=10)
        assert unknown.status_code == 404 and unknown.json()["detail"][0]["field"] == "job_id"
        assert requests.get(f"{base}/v1/jobs/{'A' * 22}/frames/x.png", timeout=10).status_code == 404
        assert requests.get(f"{base}/v1/jobs?limit=0", timeout=10).status_code == 422
    assert engine.calls == 0  # nothing reached the engine


_json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12)
_json_values = st.recursive(
    _json_scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
_numbers = st.integers(-(10**20), 10**20) | st.floats(allow_nan=False) | st.sampled_from([0, 1, -1, 2**32, 2**63])
_points = st.lists(st.floats(-0.5, 1.5) | _numbers | _json_scalars, max_size=3)
_coordinates = st.floats(0.0, 1.0) | st.sampled_from([0, 1])
_valid_drags = st.lists(
    st.lists(st.lists(_coordinates, min_size=2, max_size=2), min_size=2, max_size=40), min_size=1, max_size=5
)
_drags = (
    _valid_drags
    | st.lists(st.lists(_points, max_size=6), max_size=7)
    | _json_values
    | st.just([[[0.5, 0.5]] * 3000])
    | st.just([[[0.1, 0.1], [0.9, 0.9]]] * 5000)
)
_images = (
    st.sampled_from(
        [
            IMAGE_B64,
            "data:image/png;base64," + IMAGE_B64,
            IMAGE_B64[:-8],
            "===",
            "",
            base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\0" * 64).decode(),
            png_base64(Image.new("RGB", (8, 8))),
            png_base64(Image.new("I;16", (16, 16))),
            png_base64(Image.new("1", (16, 16))),
            _transparent_png(),
        ]
    )
    | _json_values
)
_fields = {
    "image": _images,
    "drags": _drags,
    "frames": st.integers(2, 32) | _numbers | _json_values,
    "steps": st.integers(1, 3) | _numbers | _json_values,
    "guidance": st.floats(0, 20) | _numbers | _json_values,
    "seed": st.integers(0, 2**32 - 1) | _numbers | _json_values,
    "num_videos": st.integers(1, 4) | _numbers | _json_values,
    "crop_scale": st.none() | st.floats(1, 10) | _numbers | _json_values,
    "ease": st.sampled_from(["linear", "ease-in-out", "LINEAR", ""]) | _json_values,
    "output": st.fixed_dictionaries({}, optional={"gif": _json_values, "mp4": st.booleans(), "fps": _numbers})
    | _json_values,
}
_one_field = st.sampled_from(sorted(_fields)).flatmap(lambda name: _fields[name].map(lambda value: {name: value}))
# mostly valid bodies with one or two fields changed reach the deeper checks (image decoding, the engine)
_mutated = st.builds(lambda first, second: {**job_body(), **first, **second}, _one_field, _one_field | st.just({}))
_bodies = st.one_of(_mutated, _mutated, _mutated, st.fixed_dictionaries({}, optional=_fields), _json_values)
# a raw JSON text put in place of one field's value: NaN and friends cannot come from json.dumps
_raw_tweaks = st.none() | st.tuples(
    st.integers(0, 15), st.sampled_from(["NaN", "Infinity", "-Infinity", "1e999", '"\\ud800"', "[", "{}}"])
)


def fuzzed_json(body: Any, tweak: tuple[int, str] | None) -> str:
    """``body`` as JSON text, with one field's value replaced by the raw text of ``tweak`` (if any)."""
    raw = json.dumps(body)
    if tweak is not None and isinstance(body, dict) and body:
        index, text = tweak
        key = sorted(body)[index % len(body)]
        raw = raw.replace(f"{json.dumps(key)}: {json.dumps(body[key])}", f"{json.dumps(key)}: {text}", 1)
    return raw


def test_fuzzed_job_bodies_never_cause_a_server_error_and_accepted_ones_succeed(tmp_path: Path) -> None:
    """Whatever passes validation, the engine accepts too. One server for all examples, owned by this test."""
    engine = StepEngine()
    accepted: list[str] = []
    with serve(tmp_path, engine, max_queue=1000, keep_gb=0.5) as server:

        @settings(max_examples=150, deadline=None)
        @given(body=_bodies, tweak=_raw_tweaks, content_type=st.sampled_from(["application/json", "text/plain", None]))
        def post(body: Any, tweak: tuple[int, str] | None, content_type: str | None) -> None:
            raw = fuzzed_json(body, tweak)
            headers = {"Content-Type": content_type} if content_type else {}
            response = requests.post(
                f"{server.url}/v1/jobs", data=raw.encode("utf-8", "surrogatepass"), headers=headers, timeout=10
            )
            assert response.status_code < 500, response.text
            assert response.status_code in (202, 413, 422, 429), response.text
            if response.status_code == 202:
                accepted.append(response.json()["id"])
            else:
                assert response.json()["detail"][0]["message"]

        post()
        assert accepted, "no fuzzed body was valid: the fuzzing does not reach the engine"
        jobs = [wait_for(f"{server.url}/v1/jobs/{job_id}", finished, timeout=30) for job_id in accepted]
    assert [job["error"] for job in jobs if job["status"] != "succeeded"] == []
    assert engine.calls == len(accepted)
