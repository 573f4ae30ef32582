"""``puppet-master render-animations``: render one animated asset from several views, with point tracks.

One asset per invocation, so any batch scheduler (or Ray) can fan a dataset out. Runs inside the
``bpy`` module in this process. Output folder::

    OUT/settings.json          the settings the folder was started with (a resume must match)
    OUT/points.npz             positions (T, N, 3) float32 world coords, part_ids (N,) int32,
                               part_names (P,) str, frames (T,) int32 scene frame numbers
    OUT/view_00/frame_0001.png RGBA, transparent background, one per scene frame
    OUT/view_00/cameras.json   per frame: K (3x3 px), world_to_camera (4x4, OpenCV axes), resolution
    OUT/view_00/visibility.npy (T, N) bool: in the image and not occluded (depth test by ray casting)
    OUT/manifest.json          written last (atomically): counts and the scene's bounding sphere

Conventions (axes, pixels, normalised coordinates) are in ``geometry.py``. Interrupted runs resume:
frames already rendered are kept; tracks and visibility are recomputed (they are cheap). A folder
with a manifest and the same settings is complete and is skipped.

Also runnable without the rest of the CLI: ``python -m backend.data.render ASSET --out DIR``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from .files import frame_filename, view_name, write_arrays_atomic, write_json_atomic
from .geometry import (
    LENS_MM,
    SENSOR_WIDTH_MM,
    bounding_sphere,
    in_image,
    intrinsics_matrix,
    project_points,
    view_angles,
    world_to_camera_from_blender,
)

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
SETTING_KEYS = ("asset", "views", "resolution", "frames", "points", "engine", "samples", "seed")
# Depth-test tolerance, as a fraction of the object's bounding-sphere radius.
VISIBILITY_EPSILON = 2e-3


def parse_frames(text: str | None) -> tuple[int, int] | None:
    """``"START:END"`` (inclusive) as two ints; ``None`` for the asset's own range."""
    if text is None:
        return None
    try:
        start, end = (int(part) for part in text.split(":"))
    except ValueError as error:
        raise ValueError(f"--frames must be START:END with integers, e.g. 1:48, got {text!r}") from error
    if end <= start:
        raise ValueError(f"--frames END must be after START, got {text!r}")
    return start, end


def check_settings(out: Path, settings: dict[str, Any]) -> bool:
    """Start or resume ``out``; True if it already holds a complete render with these settings."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / "settings.json"
    if path.is_file():
        previous = json.loads(path.read_text())
        if previous != settings:
            changed = {key: (previous.get(key), new) for key, new in settings.items() if previous.get(key) != new}
            raise ValueError(
                f"{os.fspath(out)!r} was rendered with other settings {changed} (old, new): "
                "use a new --out folder or the same settings to resume"
            )
        return (out / "manifest.json").is_file()
    write_json_atomic(path, settings)
    return False


def camera_records(camera_matrix_world: np.ndarray, frames: list[int], resolution: int, info: dict) -> dict:
    """The ``cameras.json`` payload of one static view, repeated per frame."""
    intrinsics = intrinsics_matrix(LENS_MM, SENSOR_WIDTH_MM, resolution, resolution).tolist()
    extrinsics = world_to_camera_from_blender(camera_matrix_world).tolist()
    per_frame = [
        {
            "frame": frame,
            "image": frame_filename(frame),
            "K": intrinsics,
            "world_to_camera": extrinsics,
            "resolution": [resolution, resolution],
        }
        for frame in frames
    ]
    return (
        {"convention": "OpenCV camera axes (x right, y down, z forward); pixel (0,0) = top-left corner"}
        | info
        | {"frames": per_frame}
    )


def _write_view(folder: Path, camera, frames: list[int], resolution: int, azimuth: float, elevation: float) -> dict:
    """Create a view's folder and its ``cameras.json``; the view's record for the render loop."""
    folder.mkdir(exist_ok=True)
    matrix_world = np.array(camera.matrix_world)
    info = {"view": folder.name, "azimuth_deg": float(azimuth), "elevation_deg": float(elevation)}
    record = camera_records(matrix_world, frames, resolution, info | {"position": matrix_world[:3, 3].tolist()})
    write_json_atomic(folder / "cameras.json", record)
    return {"folder": folder, "camera": camera, "record": record, "origin": matrix_world[:3, 3]}


def _write_tracks(
    out: Path, frames: list[int], positions: np.ndarray, part_ids: np.ndarray, part_names: list[str]
) -> None:
    """``points.npz``: the tracks and their parts (format in the module docstring)."""
    arrays = {
        "positions": positions.astype(np.float32),
        "part_ids": part_ids.astype(np.int32),
        "part_names": np.array(part_names, dtype=str),
        "frames": np.array(frames, dtype=np.int32),
    }
    write_arrays_atomic(out / "points.npz", arrays)


def render_animation(asset: Path, out: Path, settings: dict[str, Any]) -> dict[str, Any]:
    """Render all views x frames of ``asset`` into ``out``; track points; return the manifest."""
    import bpy
    from tqdm import tqdm

    from .scene import (
        add_cameras,
        add_lights_if_needed,
        animation_frame_range,
        configure_render,
        load_asset,
        render_still,
        renderable_meshes,
        world_bound_corners,
    )
    from .tracking import sample_tracks, track_positions, unoccluded

    started = time.monotonic()
    imported = load_asset(asset)
    scene = bpy.context.scene
    start, end = parse_frames(settings["frames"]) or animation_frame_range(scene, imported)
    frames = list(range(start, end + 1))
    objects = renderable_meshes(scene)

    # 1. bounding sphere of the animated meshes over all frames places the cameras
    corners = []
    for frame in frames:
        scene.frame_set(frame)
        corners.append(world_bound_corners(objects, bpy.context.evaluated_depsgraph_get()))
    center, radius = bounding_sphere(np.concatenate(corners))

    # 2. render settings, cameras (static per view), lights for engines that need them
    configure_render(scene, settings["engine"], settings["resolution"], settings["samples"])
    rng = np.random.default_rng(settings["seed"])
    azimuths, elevations = view_angles(settings["views"], rng)
    cameras = add_cameras(scene, center, radius, azimuths, elevations)
    add_lights_if_needed(scene, settings["engine"], radius)
    views = [
        _write_view(out / view_name(index), camera, frames, settings["resolution"], azimuths[index], elevations[index])
        for index, camera in enumerate(cameras)
    ]

    # 3. surface points at the first frame
    scene.frame_set(frames[0])
    tracks = sample_tracks(objects, bpy.context.evaluated_depsgraph_get(), settings["points"], rng)
    positions = np.zeros((len(frames), settings["points"], 3), dtype=np.float32)
    visibility = np.zeros((len(views), len(frames), settings["points"]), dtype=bool)

    # 4. frame-major loop: evaluate the scene once per frame, then render and depth-test every view
    rendered = reused = 0
    epsilon = VISIBILITY_EPSILON * radius
    progress = tqdm(total=len(frames) * len(views), desc=asset.name, unit="img", leave=False)
    for t, frame in enumerate(frames):
        scene.frame_set(frame)
        depsgraph = bpy.context.evaluated_depsgraph_get()
        points = track_positions(tracks, objects, depsgraph)
        positions[t] = points
        for v, view in enumerate(views):
            image = view["folder"] / frame_filename(frame)
            if image.is_file() and image.stat().st_size > 0:
                reused += 1
            else:
                render_still(scene, view["camera"], image)
                rendered += 1
            camera = view["record"]["frames"][t]
            resolution = tuple(camera["resolution"])
            normalised, depth = project_points(points, camera["K"], camera["world_to_camera"], resolution)
            candidates = in_image(normalised, depth)
            visibility[v, t] = unoccluded(scene, depsgraph, view["origin"], points, candidates, epsilon)
            progress.update()
    progress.close()

    # 5. arrays, then the manifest last: its presence means the folder is complete
    _write_tracks(out, frames, positions, tracks.part_ids, tracks.part_names)
    for v, view in enumerate(views):
        write_arrays_atomic(view["folder"] / "visibility.npy", visibility[v])
    manifest = {
        "format_version": FORMAT_VERSION,
        "asset": settings["asset"],
        "frames": [start, end],
        "num_frames": len(frames),
        "views": [view_name(index) for index in range(len(views))],
        "resolution": settings["resolution"],
        "engine": settings["engine"],
        "num_points": settings["points"],
        "part_names": tracks.part_names,
        "objects": tracks.object_names,
        "bounding_sphere": {"center": center.tolist(), "radius": radius},
        "images_rendered": rendered,
        "images_reused": reused,
        "seconds": round(time.monotonic() - started, 2),
    }
    write_json_atomic(out / "manifest.json", manifest)
    return manifest


def main(args: argparse.Namespace) -> int:
    """Handler of ``render-animations``."""
    asset = Path(args.asset).resolve()
    if not asset.is_file():
        raise FileNotFoundError(f"asset {args.asset!r} does not exist")
    for name, value in (("--views", args.views), ("--resolution", args.resolution), ("--points", args.points)):
        if value < 1:
            raise ValueError(f"{name} must be at least 1, got {value}")
    parse_frames(args.frames)  # fail on a malformed range before loading Blender
    settings = {key: getattr(args, key) for key in SETTING_KEYS} | {"asset": os.fspath(asset)}
    out = Path(args.out)
    if check_settings(out, settings):
        print(f"{out}: already complete (manifest.json present), nothing to do")
        return 0
    manifest = render_animation(asset, out, settings)
    print(
        f"{out}: {manifest['num_frames']} frames x {len(manifest['views'])} views "
        f"({manifest['images_rendered']} rendered, {manifest['images_reused']} reused), "
        f"{manifest['num_points']} points on {len(manifest['part_names'])} parts in {manifest['seconds']} s"
    )
    return 0


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """The flags of ``render-animations`` (shared by the CLI and ``python -m backend.data.render``)."""
    parser.add_argument("asset", help="a .blend, .glb, .gltf or .fbx file with an animation")
    parser.add_argument("--out", required=True, help="output folder for this asset (resumable)")
    parser.add_argument("--views", type=int, default=4, help="cameras around the object")
    parser.add_argument("--resolution", type=int, default=256, help="square image side in pixels (256 or 512)")
    parser.add_argument("--frames", default=None, help="START:END scene frames, inclusive (default: the asset's)")
    parser.add_argument("--points", type=int, default=2048, help="surface points to track")
    parser.add_argument("--engine", choices=("workbench", "cycles", "eevee"), default="workbench")
    parser.add_argument("--samples", type=int, default=32, help="Cycles/EEVEE samples per pixel")
    parser.add_argument("--seed", type=int, default=0, help="seeds the view angles and the point sample")
    parser.set_defaults(handler=main)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``render-animations`` on the ``puppet-master`` CLI."""
    configure_parser(
        subparsers.add_parser("render-animations", help="render an animated asset from several views, track points")
    )


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    parser = argparse.ArgumentParser(prog="python -m backend.data.render", description=__doc__.splitlines()[0])
    configure_parser(parser)
    cli_args = parser.parse_args()
    try:
        sys.exit(cli_args.handler(cli_args))
    except (ValueError, FileNotFoundError, RuntimeError) as error:
        print(f"render-animations: {error}", file=sys.stderr)
        sys.exit(2)
