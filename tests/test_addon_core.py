"""The add-on's bpy-free core (HTTP client, job state machine, paths, payload, placement), no Blender needed.

The client and the job runner talk to real HTTP servers on 127.0.0.1: the backend service (preview
engine, or small engines that keep its contract) under uvicorn on a free port, and a few stdlib
servers that misbehave on purpose (no answer, 500, not JSON).
"""

from __future__ import annotations

import ast
import io
import json
import socket
import subprocess
import sys
import threading
import time
import zipfile
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from backend.engines import Cancelled, GenerationRequest, GenerationResult
from backend.engines.preview import PreviewEngine
from backend.service import ServiceSettings, create_app
from backend.service.schemas import JobCreate
from backend.service.server import BackgroundServer
from tests.addon_core_loader import CORE_DIR, load_addon_core
from tests.slow_backend import FIRST_STAGE, HeldFactory

client_mod, jobs_mod, paths_mod, payload_mod, placement_mod, start_command_mod = load_addon_core(
    "client", "jobs", "paths", "payload", "placement", "start_command"
)
BackendClient, BackendError, Health = client_mod.BackendClient, client_mod.BackendError, client_mod.Health
JobRunner, JobState = jobs_mod.JobRunner, jobs_mod.JobState

WIDTH, HEIGHT = 96, 64
DRAGS = [[(0.55, 0.5), (0.7, 0.42)], [(0.35, 0.55), (0.3, 0.6), (0.28, 0.7)]]


# ------------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------------


def object_png(width: int = WIDTH, height: int = HEIGHT) -> bytes:
    """An opaque textured box in a transparent frame, as a Blender capture with film transparent."""
    pixels = np.zeros((height, width, 4), dtype=np.uint8)
    ys, xs = np.mgrid[0:height, 0:width]
    inside = (abs(xs - width / 2) < width / 4) & (abs(ys - height / 2) < height / 4)
    pixels[inside] = np.stack([xs * 2 % 256, ys * 3 % 256, np.full_like(xs, 128), np.full_like(xs, 255)], -1)[inside]
    buffer = io.BytesIO()
    Image.fromarray(pixels, "RGBA").save(buffer, format="PNG")
    return buffer.getvalue()


def payload(**overrides: Any) -> dict[str, Any]:
    settings = dict(steps=4, guidance=5.0, seed=7, num_videos=1, crop_scale=2.2, frames=14, ease="linear")
    settings.update(overrides)
    return payload_mod.build_payload(object_png(), DRAGS, **settings)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class StepEngine:
    """The preview engine behind ``steps`` sleeps of ``step_s`` that check ``cancel`` (to test cancelling)."""

    name = "preview"

    def __init__(self, step_s: float = 0.05, error: Exception | None = None) -> None:
        self.step_s = step_s
        self.error = error
        self.inner = PreviewEngine("test engine")

    def describe(self) -> dict[str, Any]:
        return self.inner.describe()

    def generate(
        self,
        request: GenerationRequest,
        progress: Callable[[int, int], None] | None = None,
        cancel: threading.Event | None = None,
    ) -> GenerationResult:
        if self.error is not None:
            raise self.error
        for step in range(request.steps):
            if cancel is not None and cancel.is_set():
                raise Cancelled(f"cancelled after {step} steps")
            time.sleep(self.step_s)
            if progress is not None:
                progress(step + 1, request.steps)
        return self.inner.generate(request)


def serve(tmp_path: Path, engine: Any = None, token: str | None = None) -> BackgroundServer:
    settings = ServiceSettings(engine="preview", results_dir=tmp_path / "service", token=token)
    return BackgroundServer(create_app(settings, engine=engine, engine_reason="test")).start()


@pytest.fixture(scope="module")
def preview_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BackgroundServer]:
    server = serve(tmp_path_factory.mktemp("preview"))
    yield server
    server.stop()


class _Canned(BaseHTTPRequestHandler):
    """Answers every request with the server's ``canned`` (status, content type, body); ``hang`` never answers."""

    def do_GET(self) -> None:  # noqa: N802 - the http.server API
        status, content_type, body = self.server.canned
        if status == 0:
            time.sleep(5)
            return
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_GET
    do_DELETE = do_GET

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def canned_server() -> Iterator[Callable[[int, str, bytes], str]]:
    servers: list[ThreadingHTTPServer] = []

    def start(status: int, content_type: str = "application/json", body: bytes = b"{}") -> str:
        server = ThreadingHTTPServer(("127.0.0.1", 0), _Canned)
        server.daemon_threads = True
        server.canned = (status, content_type, body)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def watch(runner: Any, timeout: float = 30.0) -> list[Any]:
    """Start ``runner`` and record every distinct snapshot until it finishes (as the panel's timer would)."""
    runner.start()
    seen = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        snapshot = runner.snapshot()
        if not seen or snapshot != seen[-1]:
            seen.append(snapshot)
        if snapshot.finished:
            return seen
        time.sleep(0.005)
    raise AssertionError(f"job did not finish: {seen[-1]}")


# ------------------------------------------------------------------------------------------------
# the core stays bpy-free
# ------------------------------------------------------------------------------------------------


def test_core_modules_import_nothing_from_blender() -> None:
    forbidden = {"bpy", "gpu", "mathutils", "bmesh", "torch", "backend"}
    for path in sorted(CORE_DIR.glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            else:
                continue
            assert not {name.split(".")[0] for name in names} & forbidden, f"{path.name} imports {names}"


# ------------------------------------------------------------------------------------------------
# client errors: each a sentence the user can act on
# ------------------------------------------------------------------------------------------------


def test_connection_refused_says_how_to_start_the_backend() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(BackendError) as caught:
        BackendClient(url, timeout=2).health()
    assert str(caught.value) == (
        f"Cannot reach the Puppet Master backend at {url}: start it with `puppet-master serve` "
        "or set the URL in preferences"
    )
    assert caught.value.status is None


def test_timeout_names_the_limit_and_the_preference(canned_server: Callable[..., str]) -> None:
    url = canned_server(0)  # accepts, never answers
    started = time.monotonic()
    with pytest.raises(BackendError, match=r"did not answer within 0\.3 s.*Request Timeout"):
        BackendClient(url, timeout=0.3).status("x" * 22)
    assert time.monotonic() - started < 3


def test_invalid_url() -> None:
    with pytest.raises(BackendError, match="is not valid: set it in the add-on preferences"):
        BackendClient("localhost:8765").health()


def test_wrong_or_missing_token_says_to_set_the_token(tmp_path: Path) -> None:
    server = serve(tmp_path, token="s3cret")
    try:
        assert BackendClient(server.url).health().auth is True  # health is open
        for token in ("", "wrong"):
            with pytest.raises(BackendError) as caught:
                BackendClient(server.url, token=token).submit(payload())
            assert caught.value.status == 401
            assert "set Token in the add-on preferences" in str(caught.value)
        job_id = BackendClient(server.url, token="s3cret").submit(payload())
        assert len(job_id) == 22
    finally:
        server.stop()


def test_validation_errors_join_the_servers_messages(preview_server: BackgroundServer) -> None:
    body = payload()
    body["drags"] = [[[0.5, 0.5]], [[0.1, 0.2], [1.5, 0.2]]]
    with pytest.raises(BackendError) as caught:
        BackendClient(preview_server.url).submit(body)
    message = str(caught.value)
    assert caught.value.status == 422
    assert message.startswith("The backend refused the request (HTTP 422): drags[0]: ")
    assert "; drags[1][1][0]: " in message  # both problems, each with its field


def test_server_errors_and_strangers(canned_server: Callable[..., str]) -> None:
    detail = json.dumps({"detail": [{"field": None, "message": "internal server error; see the log"}]}).encode()
    with pytest.raises(BackendError, match=r"internal error \(HTTP 500\): internal server error") as caught:
        BackendClient(canned_server(500, body=detail)).health()
    assert caught.value.status == 500
    with pytest.raises(BackendError, match="did not answer like a Puppet Master backend"):
        BackendClient(canned_server(200, "text/html", b"<html>hello</html>")).health()


def test_cancel_of_a_job_that_is_gone_is_not_an_error(preview_server: BackgroundServer) -> None:
    BackendClient(preview_server.url).cancel("A" * 22)


def test_urls_that_are_not_http_are_refused_before_any_request() -> None:
    for url in ("ftp://127.0.0.1:8765", "file:///etc/passwd", "http://127.0.0.1:99999", "http://", ""):
        with pytest.raises(BackendError, match="is not valid: set it in the add-on preferences") as caught:
            BackendClient(url).health()
        assert caught.value.status is None


# The client in a process where requests (and numpy, urllib3, certifi) cannot be imported, as in Debian's
# Blender: the whole job against a real backend, and the messages for a refusal and for no backend.
_WITHOUT_REQUESTS = """
import json, sys
from tests.addon_blocker import block
block()
from tests.addon_core_loader import load_addon_core
client_mod, jobs_mod = load_addon_core("client", "jobs")
url, payload_path, results, nobody = sys.argv[1:]
body = json.loads(open(payload_path).read())
client = client_mod.BackendClient(url)
report = {"health": client.health().describe()}
final = jobs_mod.JobRunner(client, body, results, poll_interval=0.02).run()
report["job"] = {"state": final.state.value, "folder": final.folder, "frames": final.num_frames}
report["png"] = client.frame_png(final.job_id, 3).startswith(bytes([137, 80, 78, 71]))
errors = []
for call in (lambda: client.submit(dict(body, frames=99)), lambda: client_mod.BackendClient(nobody).health()):
    try:
        call()
    except client_mod.BackendError as error:
        errors.append([error.status, str(error)])
report["errors"] = errors
client.cancel("A" * 22)  # gone: not an error
try:
    import requests  # noqa: F401
    report["requests_importable"] = True
except ImportError:
    report["requests_importable"] = False
report["loaded"] = sorted(name for name in ("requests", "numpy", "urllib3", "certifi") if name in sys.modules)
print(json.dumps(report))
"""


def test_client_works_without_requests(preview_server: BackgroundServer, tmp_path: Path) -> None:
    body_path = tmp_path / "payload.json"
    body_path.write_text(json.dumps(payload()))
    nobody = f"http://127.0.0.1:{free_port()}"
    arguments = [preview_server.url, str(body_path), str(tmp_path / "results"), nobody]
    completed = subprocess.run(
        [sys.executable, "-c", _WITHOUT_REQUESTS, *arguments],
        capture_output=True, text=True, timeout=120, cwd=Path(__file__).resolve().parent.parent, check=False,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr
    report = json.loads(completed.stdout.strip().splitlines()[-1])
    assert report["requests_importable"] is False and report["loaded"] == []
    assert report["health"].startswith("Backend runs the PREVIEW engine")
    assert report["job"]["state"] == "done" and report["job"]["frames"] == 14
    folder = Path(report["job"]["folder"])
    assert sorted(path.name for path in (folder / "video_0").iterdir()) == [f"frame_{i:04d}.png" for i in range(14)]
    assert report["png"] is True
    (refused_status, refused), (down_status, down) = report["errors"]
    assert refused_status == 422 and refused.startswith("The backend refused the request (HTTP 422): frames: ")
    assert down_status is None and down == (
        f"Cannot reach the Puppet Master backend at {nobody}: start it with `puppet-master serve` "
        "or set the URL in preferences"
    )


# ------------------------------------------------------------------------------------------------
# health while the backend loads its engine, and the start command
# ------------------------------------------------------------------------------------------------


def serve_loading(tmp_path: Path, factory: HeldFactory) -> BackgroundServer:
    settings = ServiceSettings(engine="puppet-master", results_dir=tmp_path / "service")
    return BackgroundServer(create_app(settings, engine_factory=factory)).start()


def test_health_says_loading_with_the_stage_then_which_engine_runs(tmp_path: Path) -> None:
    factory = HeldFactory(PreviewEngine("test engine"))
    server = serve_loading(tmp_path, factory)
    try:
        client = BackendClient(server.url)
        deadline = time.monotonic() + 10
        while (health := client.health()).stage != FIRST_STAGE:
            assert health.loading and time.monotonic() < deadline, health
            time.sleep(0.02)
        assert health.loading and not health.failed and health.engine == ""
        assert health.loading_text() == f"Loading the model: {FIRST_STAGE} ({health.load_s:.0f} s)"
        assert health.describe().startswith(f"The backend is up and loading the model: {FIRST_STAGE} (")
        job_id = client.submit(payload(steps=1))  # accepted while it loads
        assert client.status(job_id)["status"] == "queued"

        factory.release.set()
        while (health := client.health()).loading:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert health.status == "ok" and health.engine == "preview" and health.device == "cpu"
        assert health.describe() == (
            "Backend runs the PREVIEW engine (a rigid draft, not the Puppet-Master model) on cpu (test engine)"
        )
    finally:
        server.stop()


def test_health_of_a_failed_load_says_why_and_jobs_are_refused_with_it(tmp_path: Path) -> None:
    cause = "--engine puppet-master needs model weights: run `puppet-master fetch-weights`"
    factory = HeldFactory(error=ValueError(cause))
    factory.release.set()
    server = serve_loading(tmp_path, factory)
    try:
        client = BackendClient(server.url)
        deadline = time.monotonic() + 10
        while (health := client.health()).loading:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert health.failed and health.error == cause
        assert health.describe().startswith(f"The backend could not load the model: {cause}; fix that and start")
        with pytest.raises(BackendError) as caught:
            client.submit(payload())
        assert caught.value.status == 503
        assert f"(HTTP 503): the engine failed to load: {cause}" in str(caught.value)
    finally:
        server.stop()


def test_health_of_a_backend_without_the_loading_state() -> None:
    """A backend from before the loading state answers only when ready, without status details."""
    health = Health.parse({"status": "ok", "engine": "puppet-master", "device": "cuda:0", "reason": "a GPU"})
    assert not health.loading and not health.failed and health.load_s == 0.0
    assert health.describe() == "Backend runs the puppet-master model on cuda:0 (a GPU)"
    assert Health.parse({"engine": "preview", "load_s": "soon", "queue_length": None}).status == "ok"
    degraded = Health.parse({"status": "degraded", "engine": "puppet-master", "device": "cpu"})
    assert (
        degraded.describe()
        == "Backend runs the puppet-master model on cpu, but its status is 'degraded' (see the backend's log)"
    )


def test_start_command_gets_cpu_offload_when_low_vram_is_on() -> None:
    start_argv = start_command_mod.start_argv
    assert start_argv("puppet-master serve --port 8765") == ["puppet-master", "serve", "--port", "8765"]
    assert start_argv("puppet-master serve", cpu_offload=True) == ["puppet-master", "serve", "--cpu-offload"]
    assert start_argv("puppet-master serve --cpu-offload", cpu_offload=True).count("--cpu-offload") == 1
    assert start_argv("'/opt/my env/bin/puppet-master' serve")[0] == "/opt/my env/bin/puppet-master"
    with pytest.raises(ValueError, match="No Start Command: set one in the add-on preferences"):
        start_argv("  ", cpu_offload=True)
    with pytest.raises(ValueError, match="Cannot read the Start Command .*fix it in the add-on preferences"):
        start_argv("puppet-master serve --token 'unclosed")


# ------------------------------------------------------------------------------------------------
# the job state machine, end to end
# ------------------------------------------------------------------------------------------------


def test_job_runs_to_done_and_downloads_atomically(tmp_path: Path) -> None:
    server = serve(tmp_path, engine=StepEngine(step_s=0.02))
    try:
        root = tmp_path / "results"
        runner = JobRunner(BackendClient(server.url), payload(steps=10), root, poll_interval=0.02)
        seen = watch(runner)
    finally:
        server.stop()
    states = [snapshot.state for snapshot in seen]
    final = seen[-1]
    assert final.state is JobState.DONE, final
    # the states come in order (fast ones may be skipped between two looks)
    order = [JobState.IDLE, JobState.SUBMITTING, JobState.QUEUED, JobState.RUNNING, JobState.DOWNLOADING, JobState.DONE]
    assert [order.index(state) for state in states] == sorted(order.index(state) for state in states)
    assert JobState.RUNNING in states
    running = [snapshot.progress for snapshot in seen if snapshot.state is JobState.RUNNING]
    assert running == sorted(running) and 0 < running[-1] <= 1
    assert final.engine == "preview" and final.seed == 7 and final.num_frames == 14 and final.num_videos == 1
    folder = Path(final.folder)
    assert folder == root / final.job_id
    frames = sorted(path.name for path in (folder / "video_0").iterdir())
    assert frames == [f"frame_{index:04d}.png" for index in range(14)]
    assert json.loads((folder / "record.json").read_text())["id"] == final.job_id
    assert [path.name for path in root.iterdir()] == [final.job_id]  # no temporary folder left
    assert Image.open(folder / "video_0" / "frame_0000.png").size == (WIDTH, HEIGHT)
    assert final.describe() == "Done"
    assert set(final.durations) == {"submit", "follow", "download", "extract"}


def test_job_with_two_videos(preview_server: BackgroundServer, tmp_path: Path) -> None:
    runner = JobRunner(BackendClient(preview_server.url), payload(num_videos=2), tmp_path, poll_interval=0.02)
    final = runner.run()
    assert final.state is JobState.DONE and final.num_videos == 2
    assert [path.name for path in paths_mod.video_folders(final.folder)] == ["video_0", "video_1"]


def test_cancel_a_running_job(tmp_path: Path) -> None:
    server = serve(tmp_path, engine=StepEngine(step_s=0.05))
    try:
        client = BackendClient(server.url)
        runner = JobRunner(client, payload(steps=200), tmp_path / "results", poll_interval=0.02)
        runner.start()
        deadline = time.monotonic() + 10
        while runner.snapshot().state is not JobState.RUNNING:
            assert time.monotonic() < deadline, runner.snapshot()
            time.sleep(0.01)
        runner.cancel()
        final = runner.wait(15)
        assert final.state is JobState.CANCELLED, final
        backend_job = BackendClient(server.url).status(final.job_id)
        assert backend_job["status"] == "cancelled" and backend_job["step"] < 200
        assert not (tmp_path / "results" / final.job_id).exists()
    finally:
        server.stop()


def test_cancel_before_submitting_sends_nothing(tmp_path: Path) -> None:
    runner = JobRunner(BackendClient(f"http://127.0.0.1:{free_port()}"), payload(), tmp_path)
    runner.cancel()
    assert runner.run().state is JobState.CANCELLED


def test_failed_job_reports_the_backends_reason(tmp_path: Path) -> None:
    server = serve(tmp_path, engine=StepEngine(error=ValueError("no object in the image: the alpha is empty")))
    try:
        final = JobRunner(BackendClient(server.url), payload(), tmp_path / "results", poll_interval=0.02).run()
    finally:
        server.stop()
    assert final.state is JobState.FAILED
    assert final.error.startswith("The backend could not generate the video: ")
    assert "alpha is empty" in final.error
    assert final.describe().startswith("Failed: ")
    assert not (tmp_path / "results").exists() or not any((tmp_path / "results").iterdir())


def test_backend_down_fails_with_the_connection_message(tmp_path: Path) -> None:
    final = JobRunner(BackendClient(f"http://127.0.0.1:{free_port()}"), payload(), tmp_path).run()
    assert final.state is JobState.FAILED and final.error.startswith("Cannot reach the Puppet Master backend")


def test_refused_job_fails_with_the_servers_message(preview_server: BackgroundServer, tmp_path: Path) -> None:
    body = payload()
    body["frames"] = 99
    final = JobRunner(BackendClient(preview_server.url), body, tmp_path).run()
    assert final.state is JobState.FAILED and "frames: " in final.error and "HTTP 422" in final.error


# ------------------------------------------------------------------------------------------------
# extracting the archive
# ------------------------------------------------------------------------------------------------


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def test_extract_ignores_unexpected_members_and_checks_counts(tmp_path: Path) -> None:
    archive = _zip(
        {
            "record.json": b"{}",
            "video_0/frame_0000.png": b"a",
            "video_0/frame_0001.png": b"b",
            "../evil.png": b"x",
            "/abs/frame_0000.png": b"x",
            "video_0/../../x.png": b"x",
        }
    )
    folder = jobs_mod.extract_frames(archive, tmp_path / "job", expected_frames=2)
    assert sorted(str(path.relative_to(folder)) for path in folder.rglob("*") if path.is_file()) == [
        "record.json",
        "video_0/frame_0000.png",
        "video_0/frame_0001.png",
    ]
    assert not (tmp_path / "evil.png").exists()
    with pytest.raises(ValueError, match="expected 3 per video"):
        jobs_mod.extract_frames(archive, tmp_path / "other", expected_frames=3)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["job"]  # nothing half-written left


# ------------------------------------------------------------------------------------------------
# paths, payload, placement
# ------------------------------------------------------------------------------------------------


def test_results_root_rules(tmp_path: Path) -> None:
    blend = str(tmp_path / "shots" / "door.blend")
    user = str(tmp_path / "user" / "results")
    never: Callable[[], str] = lambda: pytest.fail("the user folder was not needed")  # noqa: E731
    assert paths_mod.results_root(blend, "", never) == tmp_path / "shots" / "puppet_master"
    assert paths_mod.results_root("", "", lambda: user) == Path(user)
    assert paths_mod.results_root(blend, "//refs", never) == tmp_path / "shots" / "refs"
    assert paths_mod.results_root("", "//refs", lambda: user) == Path(user)  # relative to nothing
    assert paths_mod.results_root(blend, str(tmp_path / "elsewhere"), never) == tmp_path / "elsewhere"


def test_blend_relative(tmp_path: Path) -> None:
    blend = str(tmp_path / "door.blend")
    inside = tmp_path / "puppet_master" / "JOB" / "video_0"
    assert paths_mod.blend_relative(inside, blend) == "//puppet_master/JOB/video_0/"
    outside = tmp_path.parent / "x"
    assert paths_mod.blend_relative(outside, blend) == str(outside.resolve()) + "/"
    assert paths_mod.blend_relative(inside, "") == str(inside.resolve()) + "/"


def test_held_sequence_repeats_each_frame(tmp_path: Path) -> None:
    folder = tmp_path / "video_0"
    folder.mkdir()
    for index in (0, 1, 2, 10):
        (folder / f"frame_{index:04d}.png").write_bytes(bytes([index]))
    (folder / "notes.txt").write_text("ignored")
    assert paths_mod.frame_files(folder)[-1] == "frame_0010.png"
    assert paths_mod.held_sequence(folder, 1) == folder
    held = paths_mod.held_sequence(folder, 3)
    assert held == tmp_path / "video_0_step3"
    names = paths_mod.frame_files(held)
    assert names == [f"frame_{index:04d}.png" for index in range(12)]
    assert [(held / name).read_bytes()[0] for name in names] == [0, 0, 0, 1, 1, 1, 2, 2, 2, 10, 10, 10]
    assert paths_mod.held_sequence(folder, 3) == held  # reused
    assert sorted(path.name for path in tmp_path.iterdir()) == ["video_0", "video_0_step3"]


def test_payload_matches_the_services_schema() -> None:
    body = payload(seed=None, crop_scale=None, ease="ease-in-out")
    parsed = JobCreate.model_validate(body)  # strict: field names and JSON types exactly as the service wants
    assert parsed.drags == [[[0.55, 0.5], [0.7, 0.42]], [[0.35, 0.55], [0.3, 0.6], [0.28, 0.7]]]
    assert parsed.seed is None and parsed.crop_scale is None and parsed.frames == 14
    clamped = payload_mod.build_payload(object_png(), [[(-0.2, 0.5), (1.3, 0.5)]], **{**_SETTINGS})
    assert clamped["drags"] == [[[0.0, 0.5], [1.0, 0.5]]]
    with pytest.raises(ValueError, match="6 drags"):
        payload_mod.build_payload(object_png(), DRAGS * 3, **_SETTINGS)
    seeds = {payload_mod.random_seed() for _ in range(20)}
    assert len(seeds) > 1 and all(0 <= seed < 2**31 for seed in seeds)


_SETTINGS = dict(steps=4, guidance=5.0, seed=1, num_videos=1, crop_scale=2.2, frames=14, ease="linear")


def test_frame_placement_fills_the_camera_frame() -> None:
    # a 16:9 perspective frame at depth 2 with a horizontal lens shift
    corners = [(1.2, 0.45, -2.0), (1.2, -0.675, -2.0), (-0.8, -0.675, -2.0), (-0.8, 0.45, -2.0)]
    placement = placement_mod.frame_at_distance(corners, 4.0)
    assert placement.center == pytest.approx((0.4, -0.225, -4.0))
    assert (placement.width, placement.height) == pytest.approx((4.0, 2.25))
    assert placement.display_size == pytest.approx(4.0)
    ortho = placement_mod.frame_at_distance([(3, 2, -1), (3, -2, -1), (-3, -2, -1), (-3, 2, -1)], 10.0, True)
    assert (ortho.width, ortho.height, *ortho.center) == pytest.approx((6.0, 4.0, 0.0, 0.0, -10.0))
    assert placement_mod.empty_distance(0.1, 100.0) == 1.0
    assert placement_mod.empty_distance(2.0, 100.0) == 4.0
    with pytest.raises(ValueError, match="in front of the camera"):
        placement_mod.frame_at_distance([(1, 1, 1)] * 4, 1.0)
