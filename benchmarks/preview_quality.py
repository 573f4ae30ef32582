"""How well the preview engine drafts real motion: PSNR/SSIM against ground truth, next to a still frame.

Two benchmarks, printed as one table (frames 1..F-1 scored; frame 0 is every method's input):

1. Drag-a-Move (``--dragamove DIR``): the authors' 100 published test examples (``NNNNN.pkl`` with
   the drags, ``NNNNN.gif`` with the frames), exactly as ``puppet-master evaluate`` without a model
   scores them: the preview of the first frame against the GIF's frames, resized to 256 x 256.
2. Synthetic (``--synthetic``): articulated assets built here in Blender (cabinets with a hinged door,
   chests with a hinged lid, chests of drawers, desk lamps with a turning arm, laptops; sizes, colours
   and motions drawn from ``--seed``), rendered with ``puppet-master render-animations`` (Workbench,
   256 x 256, two views), drags from ``puppet-master sample-drags``, and a part map per view rendered
   from the same camera with each object in its own flat colour. The preview runs through
   :class:`PreviewEngine` on the first frame (RGBA, whole image), with and without the part map.

Usage::

    python benchmarks/preview_quality.py --dragamove /path/to/DragAMove-test-batches --synthetic

The Drag-a-Move folder is the authors' public ``DragAMove-test-batches`` (no licence: fetch it for a
run, never commit it). The synthetic set takes a few minutes on two cores; its renders go to
``--work`` (a temporary folder by default). Needs ``bpy`` for the synthetic set.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("TQDM_DISABLE", "1")  # render-animations' progress bars (read when tqdm is imported)

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from backend.cli import main as cli_main  # noqa: E402
from backend.engines import GenerationRequest  # noqa: E402
from backend.engines.preview import PreviewEngine  # noqa: E402
from backend.evaluation.evaluate import PREVIEW, STATIC, evaluate_published  # noqa: E402
from backend.evaluation.metrics import psnr, ssim  # noqa: E402

FAMILIES = ("cabinet door", "chest lid", "drawer", "lamp arm", "laptop")
# Flat colours of the part-map render, one per object (decoded by the nearest colour).
PART_COLOURS = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0], [1, 0, 1], [0, 1, 1]], dtype=np.float64)
NUM_FRAMES = 14


@dataclass
class Row:
    """One method's scores on one benchmark."""

    benchmark: str
    method: str
    psnr: list[float]
    ssim: list[float]
    beats_static: int | None = None


# ----------------------------------------------------------------------------------------------
# Drag-a-Move
# ----------------------------------------------------------------------------------------------


def dragamove_rows(folder: Path) -> list[Row]:
    """Static and preview on every published example, as ``puppet-master evaluate`` scores them."""
    files = sorted(folder.glob("*.pkl"))
    if not files:
        raise FileNotFoundError(f"no *.pkl in {folder}: pass the authors' DragAMove-test-batches folder")
    scores = [score for path in files for score in evaluate_published(path)]
    by_method = {method: [row for row in scores if row.method == method] for method in (STATIC, PREVIEW)}
    static, preview = by_method[STATIC], by_method[PREVIEW]
    wins = sum(p.psnr > s.psnr for p, s in zip(preview, static, strict=True))
    name = f"Drag-a-Move ({len(files)})"
    return [
        Row(name, "static first frame", [row.psnr for row in static], [row.ssim for row in static]),
        Row(name, "preview (grown parts)", [row.psnr for row in preview], [row.ssim for row in preview], wins),
    ]


# ----------------------------------------------------------------------------------------------
# synthetic assets (Blender)
# ----------------------------------------------------------------------------------------------


def _box(bpy, name: str, size, location, pivot, colour) -> object:
    """A box mesh object of ``size`` whose centre is at ``location``, with its origin at ``pivot``."""
    from mathutils import Matrix, Vector

    bpy.ops.mesh.primitive_cube_add(size=1.0)
    obj = bpy.context.active_object
    obj.name = name
    obj.data.transform(Matrix.Diagonal((*size, 1.0)))
    obj.data.transform(Matrix.Translation(Vector(location) - Vector(pivot)))
    obj.location = pivot
    material = bpy.data.materials.new(name)
    material.diffuse_color = (*colour, 1.0)
    obj.data.materials.append(material)
    return obj


def _animate(obj, path: str, start, end) -> None:
    """Linear keyframes of ``obj.<path>`` from ``start`` (frame 1) to ``end`` (frame NUM_FRAMES)."""
    import bpy

    bpy.context.preferences.edit.keyframe_new_interpolation_type = "LINEAR"
    for frame, value in ((1, start), (NUM_FRAMES, end)):
        setattr(obj, path, value)
        obj.keyframe_insert(data_path=path, frame=frame)


def _colours(rng: np.random.Generator) -> tuple[tuple, tuple]:
    """A body colour and a moving part's colour, sometimes close to it (a harder seam)."""
    body = rng.uniform(0.1, 0.9, 3)
    part = np.clip(body + rng.normal(0, 0.08 if rng.random() < 0.3 else 0.35, 3), 0.05, 0.95)
    return tuple(body), tuple(part)


def build_asset(path: Path, family: str, rng: np.random.Generator) -> None:
    """An articulated asset of ``family`` with one moving part, animated over NUM_FRAMES, saved as .blend."""
    import bpy

    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    scene.frame_start, scene.frame_end = 1, NUM_FRAMES
    body_colour, part_colour = _colours(rng)
    w, d, h = rng.uniform(0.6, 1.4), rng.uniform(0.4, 0.9), rng.uniform(0.5, 1.5)
    angle = math.radians(rng.uniform(45, 85))
    if family == "cabinet door":
        _box(bpy, "body", (w, d, h), (0, 0, h / 2), (0, 0, 0), body_colour)
        side = 1 if rng.random() < 0.5 else -1  # hinge on the left or the right edge of the front
        door = _box(bpy, "door", (w * 0.9, 0.04, h * 0.9), (0, -d / 2 - 0.02, h / 2), (side * w * 0.45, -d / 2, 0),
                    part_colour)  # fmt: skip
        _animate(door, "rotation_euler", (0, 0, 0), (0, 0, side * angle))
    elif family == "chest lid":
        _box(bpy, "body", (w, d, h * 0.6), (0, 0, h * 0.3), (0, 0, 0), body_colour)
        lid = _box(bpy, "lid", (w, d, 0.06), (0, 0, h * 0.6 + 0.03), (0, d / 2, h * 0.6), part_colour)
        _animate(lid, "rotation_euler", (0, 0, 0), (-angle, 0, 0))  # opens upwards about its back edge
    elif family == "drawer":
        _box(bpy, "body", (w, d, h), (0, 0, h / 2), (0, 0, 0), body_colour)
        level = h * rng.uniform(0.3, 0.75)
        drawer = _box(bpy, "drawer", (w * 0.8, d * 0.95, h * 0.22), (0, -0.03, level), (0, 0, 0), part_colour)
        _animate(drawer, "location", (0, 0, 0), (0, -d * rng.uniform(0.4, 0.7), 0))
    elif family == "lamp arm":
        _box(bpy, "base", (0.5, 0.5, 0.08), (0, 0, 0.04), (0, 0, 0), body_colour)
        _box(bpy, "lower arm", (0.08, 0.08, h), (0, 0, 0.08 + h / 2), (0, 0, 0), body_colour)
        top = 0.08 + h
        arm = _box(bpy, "upper arm", (w * 0.8, 0.08, 0.08), (w * 0.4, 0, top), (0, 0, top), part_colour)
        _animate(arm, "rotation_euler", (0, 0, 0), (0, -angle * rng.choice([-1, 1]) * 0.7, 0))
    elif family == "laptop":
        _box(bpy, "base", (w, d, 0.05), (0, 0, 0.025), (0, 0, 0), body_colour)
        screen = _box(bpy, "screen", (w, 0.03, d), (0, d / 2, 0.05 + d / 2), (0, d / 2, 0.05), part_colour)
        opened = math.radians(rng.uniform(-30, -10))
        _animate(screen, "rotation_euler", (opened, 0, 0), (opened - angle * 0.8, 0, 0))
    else:
        raise ValueError(f"unknown family {family!r}; expected one of {FAMILIES}")
    bpy.ops.wm.save_as_mainfile(filepath=str(path))


def render_part_map(asset: Path, view_dir: Path, frame: int) -> np.ndarray:
    """``(H, W)`` part ids (0 = background) of ``asset`` at ``frame`` through the view's camera.

    Workbench with flat lighting, each object in its own colour, no antialiasing, the Standard view
    transform (colours written as they are), decoded by the nearest palette colour.
    """
    import bpy
    from mathutils import Matrix

    bpy.ops.wm.open_mainfile(filepath=str(asset), load_ui=False)
    scene = bpy.context.scene
    scene.frame_set(frame)
    record = json.loads((view_dir / "cameras.json").read_text())["frames"][0]
    resolution = record["resolution"][0]
    meshes = sorted((obj for obj in scene.objects if obj.type == "MESH"), key=lambda obj: obj.name)
    for index, obj in enumerate(meshes):
        obj.color = (*PART_COLOURS[index % len(PART_COLOURS)], 1.0)
    scene.render.engine = "BLENDER_WORKBENCH"
    scene.display.shading.light = "FLAT"
    scene.display.shading.color_type = "OBJECT"
    scene.display.render_aa = "OFF"
    scene.view_settings.view_transform = "Standard"
    scene.render.film_transparent = True
    scene.render.resolution_x = scene.render.resolution_y = resolution
    scene.render.resolution_percentage = 100
    scene.render.image_settings.file_format = "PNG"
    scene.render.image_settings.color_mode = "RGBA"
    camera_data = bpy.data.cameras.new("part_map")
    camera_data.lens, camera_data.sensor_width, camera_data.sensor_fit = 50.0, 36.0, "HORIZONTAL"
    camera_data.clip_start, camera_data.clip_end = 1e-3, 1e4
    camera = bpy.data.objects.new("part_map", camera_data)
    scene.collection.objects.link(camera)
    flip = np.diag([1.0, -1.0, -1.0, 1.0])  # OpenCV camera axes <-> Blender's
    camera.matrix_world = Matrix((np.linalg.inv(np.array(record["world_to_camera"])) @ flip).tolist())
    scene.camera = camera
    with tempfile.TemporaryDirectory() as folder:
        scene.render.filepath = os.path.join(folder, "part_map.png")
        bpy.ops.render.render(write_still=True)
        pixels = np.asarray(Image.open(scene.render.filepath).convert("RGBA")).astype(np.float64) / 255.0
    distance = np.linalg.norm(pixels[..., None, :3] - PART_COLOURS[None, None, : len(meshes)], axis=-1)
    return np.where(pixels[..., 3] > 0.5, distance.argmin(axis=-1) + 1, 0).astype(np.int32)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence stdout, Blender's C-level messages included, so that only the table is printed."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(io.StringIO()):
            os.dup2(devnull.fileno(), 1)
            yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


def _run(command: list[str]) -> None:
    """Run a ``puppet-master`` command in this process (Blender is loaded once for all assets)."""
    code = cli_main(command)
    if code != 0:
        raise RuntimeError(f"puppet-master {' '.join(command)} failed with exit code {code}")


def prepare_synthetic(work: Path, count: int, seed: int) -> list[dict]:
    """Build, render, sample drags and render part maps; the samples with their part maps' paths."""
    rng = np.random.default_rng(seed)
    samples = []
    for index in range(count):
        family = FAMILIES[index % len(FAMILIES)]
        asset = work / f"asset_{index:02d}.blend"
        render = work / f"render_{index:02d}"
        drags_file = render / "drags.json"
        if not asset.exists():
            build_asset(asset, family, rng)
        if not drags_file.exists():
            _run(["render-animations", str(asset), "--out", str(render), "--views", "2", "--points", "512",
                  "--seed", str(seed + index)])  # fmt: skip
            _run(["sample-drags", str(render), "--out", str(drags_file), "--clip-frames", str(NUM_FRAMES),
                  "--stride", str(NUM_FRAMES), "--samples-per-clip", "1", "--seed", str(seed + index)])  # fmt: skip
        for sample in json.loads(drags_file.read_text()):
            part_map_file = render / sample["view"] / "part_map.npy"
            if not part_map_file.exists():
                np.save(part_map_file, render_part_map(asset, render / sample["view"], sample["start_frame"]))
            samples.append(sample | {"family": family, "part_map": str(part_map_file)})
    return samples


def _on_white(rgba: np.ndarray) -> torch.Tensor:
    """``(F, H, W, 4)`` uint8 -> ``(F, 3, H, W)`` in [0, 1], composited over white."""
    colour = rgba[..., :3].astype(np.float32) / 255.0
    alpha = rgba[..., 3:].astype(np.float32) / 255.0
    return torch.from_numpy(colour * alpha + (1.0 - alpha)).permute(0, 3, 1, 2)


def _frames(sample: dict) -> np.ndarray:
    """The sample's ``(F, H, W, 4)`` rendered frames."""
    render = Path(sample["render_dir"])
    return np.stack([np.asarray(Image.open(render / name).convert("RGBA")) for name in sample["frames"]])


def preview_requests(sample: dict, frames: np.ndarray) -> dict[str, GenerationRequest]:
    """The preview's request on the sample's first frame, without and with its part map."""
    drags = [np.asarray(drag, dtype=np.float64) for drag in sample["drags"]]
    first = Image.fromarray(frames[0], "RGBA")
    return {
        f"preview ({label})": GenerationRequest(
            image=first, drags=drags, num_frames=len(frames), crop_scale=None, part_map=part_map
        )
        for label, part_map in (("grown parts", None), ("part map", np.load(sample["part_map"])))
    }


def synthetic_videos(sample: dict, engine: PreviewEngine) -> dict[str, torch.Tensor]:
    """Ground truth, static and both previews of one synthetic sample, ``(F, 3, H, W)`` on white."""
    frames = _frames(sample)
    truth = _on_white(frames)
    videos = {"truth": truth, "static first frame": truth[:1].repeat(len(truth), 1, 1, 1)}
    for method, request in preview_requests(sample, frames).items():
        videos[method] = _on_white(engine.generate(request).videos[0])
    return videos


def preview_seconds(samples: list[dict], repeats: int = 3) -> list[float]:
    """Per synthetic request, the median of ``repeats`` timed runs (a busy machine's spikes left out)."""
    engine, seconds = PreviewEngine(), []
    for sample in samples:
        for request in preview_requests(sample, _frames(sample)).values():
            runs = []
            for _ in range(repeats):
                started = time.perf_counter()
                engine.generate(request)
                runs.append(time.perf_counter() - started)
            seconds.append(float(np.median(runs)))
    return seconds


def synthetic_rows(samples: list[dict]) -> list[Row]:
    """Static, preview with grown parts and preview with the part map on every synthetic sample."""
    engine = PreviewEngine()
    methods = ("static first frame", "preview (grown parts)", "preview (part map)")
    scores: dict[str, list[tuple[float, float]]] = {method: [] for method in methods}
    for sample in samples:
        videos = synthetic_videos(sample, engine)
        truth = videos["truth"][1:]
        for method in methods:
            scores[method].append((psnr(videos[method][1:], truth), ssim(videos[method][1:], truth)))
    name = f"Synthetic ({len(samples)} from {len({sample['render_dir'] for sample in samples})} assets)"
    static = [value for value, _ in scores["static first frame"]]
    rows = []
    for method in methods:
        values, similarities = [value for value, _ in scores[method]], [value for _, value in scores[method]]
        wins = None if method == methods[0] else sum(v > s for v, s in zip(values, static, strict=True))
        rows.append(Row(name, method, values, similarities, wins))
    return rows


def write_strip(samples: list[dict], path: Path, side: int = 96) -> None:
    """A picture: per sample, rows truth / static / preview (part map) / preview (grown) at four frames."""
    engine = PreviewEngine()
    blocks = []
    for sample in samples:
        videos = synthetic_videos(sample, engine)
        picked = np.linspace(0, len(videos["truth"]) - 1, 4).round().astype(int)
        rows = []
        for method in ("truth", "static first frame", "preview (part map)", "preview (grown parts)"):
            frames = (videos[method][picked].permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)
            rows.append(np.concatenate([np.asarray(Image.fromarray(f).resize((side, side))) for f in frames], 1))
        blocks.append(np.concatenate(rows, 0))
    gap = np.full((blocks[0].shape[0], 8, 3), 255, dtype=np.uint8)
    strip = np.concatenate([part for block in blocks for part in (block, gap)][:-1], 1)
    Image.fromarray(strip).save(path, optimize=True)


# ----------------------------------------------------------------------------------------------
# the table
# ----------------------------------------------------------------------------------------------


def print_table(rows: list[Row]) -> None:
    print("| benchmark | method | PSNR (dB) ↑ | SSIM ↑ | beats static (PSNR) | examples |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        beats = "—" if row.beats_static is None else f"{row.beats_static}"
        print(
            f"| {row.benchmark} | {row.method} | {np.mean(row.psnr):.2f} | {np.mean(row.ssim):.4f} | {beats} "
            f"| {len(row.psnr)} |"
        )


def main(args: argparse.Namespace) -> int:
    rows: list[Row] = []
    notes: list[str] = []
    if args.dragamove:
        started = time.perf_counter()
        rows += dragamove_rows(Path(args.dragamove))
        print(f"Drag-a-Move scored in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    if args.synthetic:
        started = time.perf_counter()
        work = Path(args.work or tempfile.mkdtemp(prefix="preview_quality_"))
        work.mkdir(parents=True, exist_ok=True)
        with _quiet():
            samples = prepare_synthetic(work, args.assets, args.seed)
        print(f"synthetic set ready in {time.perf_counter() - started:.0f} s ({work})", file=sys.stderr)
        started = time.perf_counter()
        rows += synthetic_rows(samples)
        print(f"synthetic set scored in {time.perf_counter() - started:.0f} s", file=sys.stderr)
        seconds = preview_seconds(samples)
        notes.append(
            f"preview time per video ({NUM_FRAMES} frames, 256 x 256, {os.cpu_count()} CPUs, median of 3 runs each): "
            f"median {np.median(seconds):.2f} s, max {np.max(seconds):.2f} s over {len(seconds)} videos"
        )
        if args.strip:
            chosen = [samples[int(index)] for index in args.strip_samples.split(",")]
            write_strip(chosen, Path(args.strip))
            notes.append(f"frame strip of samples {args.strip_samples}: {args.strip}")
    if not rows:
        print("nothing to do: pass --dragamove DIR and/or --synthetic", file=sys.stderr)
        return 2
    print_table(rows)
    for note in notes:
        print(f"\n{note}")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dragamove", help="the authors' DragAMove-test-batches folder (*.pkl + *.gif)")
    parser.add_argument("--synthetic", action="store_true", help="build, render and score the synthetic set")
    parser.add_argument("--assets", type=int, default=20, help="synthetic assets (cycling through the families)")
    parser.add_argument("--work", help="folder for the synthetic renders (reused when it has them)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--strip", help="write a PNG frame strip of some synthetic samples here")
    parser.add_argument("--strip-samples", default="0,1", help="comma-separated synthetic sample indices")
    sys.exit(main(parser.parse_args()))
