"""Bake Motion against ground truth: how well, and how fast, the keys reproduce a video's motion.

Runs inside Blender as a Python module (``bpy``), with the extension built by
``scripts/build_extension.py`` and installed into a temporary Blender user folder (the real one is not
touched); a ``puppet-master serve --engine preview`` child process is the backend. The scenes are the
tests' (``tests/bake_scenarios.py``): a box whose lid opens 0 -> 65 degrees on a hinge, and a cabinet
whose drawer slides out 60 % of its 0.9 m depth, each animated, rendered through the camera to 14
frames (Workbench, 320 x 240) from several camera angles. Each rendering becomes a finished job on the
backend (``tests/bake_support.py``), the part is put back at rest, and Bake Motion runs as the
operator does (``prepare_bake`` -> ``BakeTask.run`` -> ``apply_bake``), timed step by step:

- sample: ray casts from the camera that pick the part's visible points (main thread);
- track: ``POST /v1/jobs/{id}/tracks`` (the backend reads the frames and tracks the points), wall time,
  and of it the tracking itself as the backend times it;
- fit: the part's rigid motion per frame (hinge or slide), smoothing;
- key: writing the keyframes.

Errors are the largest over the 14 frames: lid angle in degrees, drawer travel in % of its depth.
Targets: angle <= 2 deg, travel <= 2 %, track + fit <= 1 s per part on 2 cores.

Usage::

    python benchmarks/bake_motion.py --cameras 3 --repeats 5 [--pictures docs/images]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODULE = "bl_ext.user_default.puppet_master"
TARGET_ANGLE_DEG = 2.0
TARGET_TRAVEL = 0.02
TARGET_PART_S = 1.0

# A throw-away Blender user folder, set before bpy is imported.
_USER = tempfile.TemporaryDirectory(prefix="puppet-master-bake-bench-")
os.environ["BLENDER_USER_RESOURCES"] = os.path.join(_USER.name, "blender-user")

import bpy  # noqa: E402
import numpy as np  # noqa: E402
import requests  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402

sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT / "tests"))
import bake_scenarios as scenes  # noqa: E402
from bake_support import seed_job  # noqa: E402
from build_extension import build  # noqa: E402


def start_backend(folder: Path) -> tuple[subprocess.Popen, str, Path]:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    results = folder / "service"
    command = [sys.executable, "-m", "backend.cli", "serve", "--engine", "preview", "--port", str(port)]
    log = open(folder / "serve.log", "wb")  # noqa: SIM115 - lives as long as the process
    process = subprocess.Popen(
        [*command, "--results-dir", str(results)], stdout=log, stderr=subprocess.STDOUT, cwd=ROOT
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if requests.get(url + "/v1/health", timeout=1).ok:
                return process, url, results
        except requests.RequestException:
            time.sleep(0.2)
    process.terminate()
    raise SystemExit(f"the backend did not start; see {folder / 'serve.log'}")


def render_frames(folder: Path, frames: list[int]) -> list[Path]:
    scene = bpy.context.scene
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index, frame in enumerate(frames):
        scene.frame_set(frame)
        scene.render.filepath = str(folder / f"frame_{index:04d}.png")
        bpy.ops.render.render(write_still=True)
        paths.append(Path(scene.render.filepath))
    return paths


def bake_case(scene_kind: str, camera: int, url: str, results: Path, folder: Path, repeats: int = 1) -> dict:
    """Render, seed, bake one case (tracking and fitting ``repeats`` times); errors and median step times."""
    bake_motion = sys.modules[f"{MODULE}.operators.bake_motion"]
    part, axis = scenes.build(scene_kind, camera)
    frames_dir = folder / f"{scene_kind}-{camera}"
    render_frames(frames_dir, list(range(1, scenes.FRAMES + 1)))
    job_id = seed_job(url, results, frames_dir)
    scenes.at_rest(part, scene_kind)
    scenes.register_result(job_id, str(frames_dir))
    settings = bpy.context.scene.puppet_master
    settings.bake_constraint = "HINGE" if scene_kind == "hinge" else "SLIDE"
    settings.bake_axis = axis
    scenes.select_only(part)

    samples, tracks, server, fits = [], [], [], []
    for _ in range(repeats):  # the same bake again: medians, as other work on the machine makes timings noisy
        started = time.perf_counter()
        plan, task = bake_motion.prepare_bake(bpy.context)
        samples.append(time.perf_counter() - started)
        outcome = task.run()
        tracks.append(outcome.track_s)
        server.append(outcome.server_track_s)
        fits.append(outcome.fit_s)
    started = time.perf_counter()
    level, message, _changed = bake_motion.apply_bake(bpy.context, plan, outcome)
    key_s = time.perf_counter() - started
    if level == "ERROR":
        raise SystemExit(f"{scene_kind} camera {camera}: {message}")
    baked = np.asarray(scenes.measured_values(part, scene_kind, axis))
    truth = np.asarray(scenes.truth_values(scene_kind))
    error = np.abs(baked - truth).max()
    motion = outcome.motions[part.name]
    return {
        "case": f"{scene_kind}, camera {camera}",
        "scene": scene_kind,
        "error": error if scene_kind == "hinge" else error / scenes.DRAWER_DEPTH,
        "reprojection_px": motion.error_px,
        "points": motion.points_used,
        "sample_s": statistics.median(samples),
        "track_s": statistics.median(tracks),
        "server_s": statistics.median(server),
        "fit_s": statistics.median(fits),
        "key_s": key_s,
        "baked": baked,
        "truth": truth,
        "frames_dir": frames_dir,
        "part": part,
    }


# --- pictures for docs/bake-motion.md ----------------------------------------------------------------


def plot_angles(row: dict, path: Path) -> None:
    """The lid's keyed angle per frame over the truth, as a small line chart."""
    width, height, margin = 420, 220, 36
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    frames = np.arange(len(row["truth"]))
    low = min(row["truth"].min(), row["baked"].min())

    def point(frame: float, value: float) -> tuple[float, float]:
        x = margin + frame / frames[-1] * (width - 2 * margin)
        y = margin / 2 + (value / low) * (height - 1.5 * margin)
        return x, y

    draw.line([point(0, 0), point(frames[-1], 0)], fill=(200, 200, 200))
    for degrees in range(0, int(low) - 1, -20):
        x, y = point(0, degrees)
        draw.text((4, y - 6), f"{degrees}", fill=(90, 90, 90))
        draw.line([(x - 3, y), (x, y)], fill=(90, 90, 90))
    draw.line([point(f, v) for f, v in zip(frames, row["truth"], strict=True)], fill=(0, 114, 178), width=3)
    for frame, value in zip(frames, row["baked"], strict=True):
        x, y = point(frame, value)
        draw.ellipse([x - 3.5, y - 3.5, x + 3.5, y + 3.5], outline=(213, 94, 0), width=2)
    draw.text((margin, height - 16), "video frame 0 .. 13", fill=(90, 90, 90))
    draw.text((width - 190, 8), "lid angle (deg): truth", fill=(0, 114, 178))
    draw.text((width - 190, 22), "o keyed by Bake Motion", fill=(213, 94, 0))
    image.save(path, optimize=True)


def _crop_box(tiles: list[Image.Image], margin: int = 12) -> tuple[int, int, int, int]:
    """The union of the tiles' opaque pixels, with a margin: the object, not the empty frame around it."""
    boxes = [tile.getchannel("A").getbbox() for tile in tiles]
    boxes = [box for box in boxes if box is not None]
    width, height = tiles[0].size
    left, top = max(0, min(b[0] for b in boxes) - margin), max(0, min(b[1] for b in boxes) - margin)
    return left, top, min(width, max(b[2] for b in boxes) + margin), min(height, max(b[3] for b in boxes) + margin)


def _grid(rows: list[list[Image.Image]], labels: list[str], path: Path) -> None:
    """Tiles (RGBA, one size) cropped to the object, in rows, each row labelled, on white."""
    box = _crop_box([tile for row in rows for tile in row])
    cropped = [[tile.crop(box) for tile in row] for row in rows]
    width, height = cropped[0][0].size
    sheet = Image.new("RGBA", (width * max(len(row) for row in rows), height * len(rows)), (255, 255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for y, row in enumerate(cropped):
        for x, tile in enumerate(row):
            sheet.alpha_composite(tile, (x * width, y * height))
    for y, label in enumerate(labels):
        draw.text((4, y * height + 3), label, fill=(40, 40, 40))
    sheet.convert("RGB").save(path, optimize=True)


def frames_strip(row: dict, path: Path, frames: tuple[int, ...] = (0, 6, 13)) -> None:
    """Top: the video's frames; bottom: the scene with the baked keys, rendered at the same frames."""
    baked_dir = row["frames_dir"].parent / (row["frames_dir"].name + "-baked")
    rendered = render_frames(baked_dir, [1 + frame for frame in frames])
    video = [Image.open(row["frames_dir"] / f"frame_{frame:04d}.png").convert("RGBA") for frame in frames]
    baked = [Image.open(file).convert("RGBA") for file in rendered]
    _grid([video, baked], ["video frames 0, 6, 13", "the scene with the baked keys"], path)


def _with_drags(image: Image.Image, drags: list[list[tuple[float, float]]], colors: list) -> Image.Image:
    """The image with each drag drawn as its path (one dot per frame) and an arrow-like end."""
    image = image.copy()
    draw = ImageDraw.Draw(image)
    width, height = image.size
    for path, color in zip(drags, colors, strict=False):
        fill = tuple(int(round(c * 255)) for c in color) + (255,)
        points = [(x * width, y * height) for x, y in path]
        draw.line(points, fill=fill, width=2)
        for x, y in points:
            draw.ellipse([x - 1.5, y - 1.5, x + 1.5, y + 1.5], fill=fill)
        x, y = points[-1]
        draw.ellipse([x - 4, y - 4, x + 4, y + 4], outline=fill, width=2)
    return image


def loop_picture(folder: Path, path: Path) -> None:
    """The loop on the lid: blocking (2 keys) -> drags -> video (preview engine) -> baked keys, at the last frame."""
    colors = sys.modules[f"{MODULE}.properties"].DRAG_COLORS
    part, axis = scenes.blocking_scene(60.0, 0.3)
    closed, opened = render_frames(folder / "blocking", [1, scenes.FRAMES])
    blocking = Image.blend(Image.open(closed).convert("RGBA"), Image.open(opened).convert("RGBA"), 0.6)
    if bpy.ops.puppet.drags_from_animation() != {"FINISHED"}:
        raise SystemExit("Drags from Animation made no drags for the picture")
    settings = bpy.context.scene.puppet_master
    drags = [[tuple(point.co) for point in drag.points] for drag in settings.drags]
    with_drags = _with_drags(Image.open(closed).convert("RGBA"), drags, colors)
    bpy.context.scene.frame_set(1)
    if bpy.ops.puppet.generate(auto_import=False) != {"FINISHED"}:
        raise SystemExit("Generate failed for the picture")
    result = settings.results[settings.active_result_index]
    video = Image.open(Path(bpy.path.abspath(result.directory)) / f"frame_{scenes.FRAMES - 1:04d}.png").convert("RGBA")
    scenes.at_rest(part, "hinge")
    settings.bake_constraint, settings.bake_axis = "HINGE", axis
    scenes.select_only(part)
    if bpy.ops.puppet.bake_motion() != {"FINISHED"}:
        raise SystemExit("Bake Motion failed for the picture")
    (baked,) = render_frames(folder / "baked", [scenes.FRAMES])
    tiles = [blocking, with_drags, video, Image.open(baked).convert("RGBA")]
    box = _crop_box(tiles)
    cropped = [tile.crop(box) for tile in tiles]
    width, height = cropped[0].size
    sheet = Image.new("RGBA", (width * 4, height + 16), (255, 255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    labels = ["1 blocking: 2 keys", "2 drags from animation", "3 video (preview engine)", "4 baked keys"]
    for index, (tile, label) in enumerate(zip(cropped, labels, strict=True)):
        sheet.alpha_composite(tile, (index * width, 16))
        draw.text((index * width + 4, 2), label, fill=(40, 40, 40))
    sheet.convert("RGB").save(path, optimize=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cameras", type=int, default=3, help="camera angles per scene (1-3)")
    parser.add_argument("--repeats", type=int, default=5, help="track and fit each case this often (median times)")
    parser.add_argument(
        "--pictures", type=Path, help="write bake_motion_lid.png, bake_motion_frames.png and bake_motion_loop.png here"
    )
    args = parser.parse_args()

    folder = Path(_USER.name)
    zip_path = build(folder / "dist")
    bpy.ops.extensions.package_install_files(filepath=str(zip_path), repo="user_default", enable_on_install=True)
    process, url, results = start_backend(folder)
    rows = []
    try:
        bpy.context.preferences.addons[MODULE].preferences.backend_url = url
        bake_case("hinge", 0, url, results, folder / "warm-up")  # first render, first connection, first fit
        for scene_kind in ("hinge", "drawer"):
            for camera in range(args.cameras):
                rows.append(bake_case(scene_kind, camera, url, results, folder / "cases", args.repeats))
                if args.pictures and scene_kind == "hinge" and camera == 0:
                    args.pictures.mkdir(parents=True, exist_ok=True)
                    plot_angles(rows[-1], args.pictures / "bake_motion_lid.png")
                    frames_strip(rows[-1], args.pictures / "bake_motion_frames.png")
        if args.pictures:
            loop_picture(folder / "loop", args.pictures / "bake_motion_loop.png")
    finally:
        process.terminate()
        process.wait(10)

    print(
        f"Blender {bpy.app.version_string} (bpy module, background), {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs; {scenes.FRAMES} frames of {scenes.RESOLUTION[0]} x {scenes.RESOLUTION[1]}; "
        f"one part per case; median of {args.repeats} runs after a warm-up bake; load average "
        f"{os.getloadavg()[0]:.1f} at the end"
    )
    print()
    print(
        "| case | max error | reprojection px | points | sample s | track s (server) | fit s | track + fit s | key s |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        error = f"{row['error']:.2f} deg" if row["scene"] == "hinge" else f"{row['error'] * 100:.2f} %"
        print(
            f"| {row['case']} | {error} | {row['reprojection_px']:.2f} | {row['points']} | {row['sample_s']:.2f} | "
            f"{row['track_s']:.2f} ({row['server_s']:.2f}) | {row['fit_s']:.2f} | "
            f"{row['track_s'] + row['fit_s']:.2f} | {row['key_s']:.2f} |"
        )
    angle = max(row["error"] for row in rows if row["scene"] == "hinge")
    travel = max(row["error"] for row in rows if row["scene"] == "drawer")
    per_part = max(row["track_s"] + row["fit_s"] for row in rows)
    print()
    verdict = "met" if angle <= TARGET_ANGLE_DEG else "NOT met"
    print(f"angle error (worst) {angle:.2f} deg: target <= {TARGET_ANGLE_DEG:g} {verdict}")
    print(
        f"travel error (worst) {travel * 100:.2f} % of the depth: target <= {TARGET_TRAVEL * 100:g} % "
        f"{'met' if travel <= TARGET_TRAVEL else 'NOT met'}"
    )
    print(
        f"track + fit per part (worst) {per_part:.2f} s: target <= {TARGET_PART_S:g} s "
        f"{'met' if per_part <= TARGET_PART_S else 'NOT met'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
