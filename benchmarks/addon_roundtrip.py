"""The Blender add-on's round trip against a real backend: where the time goes, and how long the UI stalls.

Runs inside Blender as a Python module (``bpy``), with the extension built by
``scripts/build_extension.py`` and installed into a temporary Blender user folder (the real one is not
touched). A ``puppet-master serve --engine preview`` child process on a free port is the backend.
The scene is a cube, a camera and a light, with one drag. Each run:

1. capture: Workbench render of the camera view to the PNG file Generate sends (``capture_png_bytes``: the
   render writes the PNG itself, nothing is re-encoded), then the payload;
2. the job as in the UI: the worker thread submits, polls, downloads the zip and extracts it, while
   the main thread calls ``poll_active_job`` every 0.15 s, as Generate's window-manager timer events
   would (they do not fire in background mode). Every call is timed: that is how long the UI would
   freeze; the last one (it returns the job's outcome) adds the result and imports it (camera background);
3. import: each import mode once more, timed (with the panel's defaults: a new import replaces earlier ones).

**Overhead** = wall time from pressing Generate to the imported result, minus the engine's own time
(the backend's ``timings.engine``): capture (render and PNG), HTTP, polling latency, the backend's writing,
download, extraction and import. Targets: overhead <= 1 s; no main-thread stall > 50 ms.

Usage::

    python benchmarks/addon_roundtrip.py --runs 5 --capture-size 512
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]
TARGET_OVERHEAD_S = 1.0
TARGET_STALL_MS = 50.0
TIMER_INTERVAL_S = 0.15
MODULE = "bl_ext.user_default.puppet_master"
MODES = ("CAMERA_BACKGROUND", "IMAGE_EMPTY", "SEQUENCER")

# A throw-away Blender user folder, set before bpy is imported.
_USER = tempfile.TemporaryDirectory(prefix="puppet-master-bench-")
os.environ["BLENDER_USER_RESOURCES"] = os.path.join(_USER.name, "blender-user")

import bpy  # noqa: E402

sys.path.insert(0, str(ROOT / "scripts"))
from build_extension import build  # noqa: E402


def start_backend(folder: Path, client_module: ModuleType) -> tuple[subprocess.Popen, str]:
    """``puppet-master serve --engine preview`` on a free port; asked for its health with the add-on's own client."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    command = [sys.executable, "-m", "backend.cli", "serve", "--engine", "preview", "--port", str(port)]
    command += ["--results-dir", str(folder / "service")]
    log = open(folder / "serve.log", "wb")  # noqa: SIM115 - lives as long as the process
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            client_module.BackendClient(url, timeout=1).health()
            return process, url
        except client_module.BackendError:
            time.sleep(0.2)
    process.terminate()
    raise SystemExit(f"the backend did not start; see {folder / 'serve.log'}")


def build_scene(capture_size: int) -> bpy.types.Scene:
    import math

    bpy.ops.wm.read_homefile(use_empty=True)
    scene = bpy.context.scene
    bpy.ops.mesh.primitive_cube_add(size=1.0)
    camera = bpy.data.objects.new("Camera", bpy.data.cameras.new("Camera"))
    scene.collection.objects.link(camera)
    camera.location = (3.0, -3.0, 2.0)
    camera.rotation_euler = (math.radians(65.0), 0.0, math.radians(45.0))
    scene.camera = camera
    scene.collection.objects.link(bpy.data.objects.new("Light", bpy.data.lights.new("Light", "SUN")))
    scene.render.resolution_x, scene.render.resolution_y = 1280, 720
    settings = scene.puppet_master
    settings.capture_resolution = capture_size
    settings.use_random_seed = False
    settings.import_mode = "CAMERA_BACKGROUND"
    bpy.ops.puppet.add_drag(start=(0.5, 0.5), end=(0.62, 0.42))
    return scene


def png_size(png: bytes) -> tuple[int, int]:
    """Width and height from a PNG's header (its IHDR chunk comes first)."""
    return struct.unpack(">II", png[16:24])


def one_run(url: str, modules: dict[str, ModuleType]) -> dict[str, float]:
    generate, capture, results, client = modules["generate"], modules["capture"], modules["results"], modules["client"]
    context = bpy.context
    scene = context.scene
    settings = scene.puppet_master
    row: dict[str, float] = {}

    # the capture on its own (prepare_job repeats it below, as Generate does)
    started = time.perf_counter()
    capture.capture_png_bytes(context, settings.capture_resolution, settings.capture_engine)
    row["capture: render to PNG"] = time.perf_counter() - started

    pressed = time.perf_counter()
    job = generate.prepare_job(context, auto_import=True)
    row["Generate: capture + payload"] = time.perf_counter() - pressed
    generate.start_job(job)
    stalls = []
    while True:
        time.sleep(TIMER_INTERVAL_S)
        started = time.perf_counter()
        outcome = generate.poll_active_job()  # the job's outcome once this call finished it, else None
        stalls.append(time.perf_counter() - started)
        if outcome is not None:
            break
    done = time.perf_counter()
    snapshot = job.runner.snapshot()
    if snapshot.state.value != "done" or outcome.level != "INFO":
        raise SystemExit(f"the job did not finish: {snapshot}; {outcome}")
    backend = client.BackendClient(url).status(snapshot.job_id)["timings"]
    row["submit (POST)"] = snapshot.durations["submit"]
    row["queued + engine + write (polled)"] = snapshot.durations["follow"]
    row["  engine (backend)"] = backend["engine"]
    row["  write (backend)"] = backend["write"]
    row["download zip"] = snapshot.durations["download"]
    row["extract"] = snapshot.durations["extract"]
    row["last callback: add result + import"] = stalls[-1]
    row["total: Generate -> imported"] = done - pressed
    row["overhead (total - engine)"] = row["total: Generate -> imported"] - backend["engine"]
    row["longest timer callback"] = max(stalls)
    row["longest callback while running"] = max(stalls[:-1]) if len(stalls) > 1 else 0.0
    row["timer callbacks"] = float(len(stalls))

    result = settings.results[len(settings.results) - 1]
    for mode in MODES:
        started = time.perf_counter()
        results.import_result(scene, result, mode)
        row[f"import {mode}"] = time.perf_counter() - started
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--capture-size", type=int, default=512, help="longer side of the capture (default 512)")
    args = parser.parse_args()

    folder = Path(_USER.name)
    zip_path = build(folder / "dist")
    bpy.ops.extensions.package_install_files(filepath=str(zip_path), repo="user_default", enable_on_install=True)
    modules = {name: sys.modules[f"{MODULE}.operators.{name}"] for name in ("generate", "capture", "results")}
    modules["client"] = sys.modules[f"{MODULE}.core.client"]
    process, url = start_backend(folder, modules["client"])
    try:
        prefs = bpy.context.preferences.addons[MODULE].preferences
        prefs.backend_url = url
        settings = build_scene(args.capture_size).puppet_master
        # warm-up (first render, first connection); the capture's size as Generate sends it
        width, height = png_size(
            modules["capture"].capture_png_bytes(bpy.context, settings.capture_resolution, settings.capture_engine)
        )
        one_run(url, modules)
        rows = [one_run(url, modules) for _ in range(args.runs)]
    finally:
        process.terminate()
        process.wait(10)

    print(
        f"Blender {bpy.app.version_string} (bpy module, background), {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs; preview engine; capture {width} x {height}; 14 frames; "
        f"{args.runs} runs after a warm-up"
    )
    print()
    print("| step | median ms | max ms |")
    print("|---|---:|---:|")
    for key in rows[0]:
        values = [row[key] for row in rows]
        if key == "timer callbacks":
            print(f"| {key} (count) | {statistics.median(values):.0f} | {max(values):.0f} |")
        else:
            print(f"| {key} | {statistics.median(values) * 1000:.1f} | {max(values) * 1000:.1f} |")
    overhead = statistics.median(row["overhead (total - engine)"] for row in rows)
    stall = max(row["longest timer callback"] for row in rows) * 1000
    running = max(row["longest callback while running"] for row in rows) * 1000
    print()
    print(
        f"overhead (median) {overhead:.2f} s: target <= {TARGET_OVERHEAD_S:g} s "
        f"{'met' if overhead <= TARGET_OVERHEAD_S else 'NOT met'}"
    )
    print(
        f"longest main-thread stall {stall:.1f} ms (while running: {running:.1f} ms): target <= {TARGET_STALL_MS:g} ms "
        f"{'met' if stall <= TARGET_STALL_MS else 'NOT met'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
