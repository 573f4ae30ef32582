"""``puppet-master sample-drags``: drag samples from the point tracks of a rendered animation.

Puppet-Master's training drags (arXiv 2408.04631, section 4 of the model spec) are 3-D tracks of
points on moving parts projected into each rendered view: up to 5 drags per sample, near-duplicate
drags removed, small-motion drags dropped with a probability that grows as their motion shrinks.

For every view and every clip of ``--clip-frames`` frames (clip starts ``--stride`` apart):

1. object size = diagonal of the tracked points' bounding box at the clip's first frame;
2. a point moves if its largest 3-D displacement in the clip exceeds ``--min-motion`` x object size;
3. candidates: moving points visible (in the image, unoccluded) in the clip's first frame;
4. ``--samples-per-clip`` times: draw 1..``--max-drags`` candidates with probability proportional to
   their motion, project their tracks through the view's cameras (normalised x right, y down),
   remove near-duplicates, randomly drop small-motion drags (always keeping the largest).

Output JSON, a list of samples::

    {"render_dir": "/abs/render/folder", "view": "view_00", "start_frame": 1,
     "frames": ["view_00/frame_0001.png", ...],        # clip_frames paths, relative to render_dir
     "drags": [[[x, y], ...clip_frames], ...],          # per drag, largest motion first; frame 0 = start
     "point_ids": [...], "part_ids": [...], "part_names": [...],   # per drag (ids index points.npz)
     "motion": [...]}                                   # per drag: max 2-D displacement, image units

Needs numpy only (no ``bpy``).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from .files import write_json_atomic
from .geometry import project_points

logger = logging.getLogger(__name__)

# Near-duplicates: starts closer than this (normalised image units) and 2-D tracks that never
# differ by more than this after subtracting their starts.
DUPLICATE_START_DISTANCE = 0.04
DUPLICATE_MOTION_DISTANCE = 0.04
# Drags moving at least this far in the image (normalised units) are never dropped as small.
FULL_KEEP_MOTION = 0.1


def clip_starts(num_frames: int, clip_frames: int, stride: int) -> list[int]:
    """Indices of the first frame of every whole clip: ``0, stride, 2*stride, ...``."""
    if clip_frames < 2 or stride < 1:
        raise ValueError(f"need --clip-frames >= 2 and --stride >= 1, got {clip_frames} and {stride}")
    return list(range(0, num_frames - clip_frames + 1, stride))


def relative_motion(positions: np.ndarray) -> np.ndarray:
    """Per point, the largest displacement from the first frame over the clip / object size.

    ``positions`` ``(F, N, 3)``; object size is the diagonal of the first frame's bounding box.
    """
    first = positions[0]
    size = float(np.linalg.norm(first.max(axis=0) - first.min(axis=0)))
    displacement = np.linalg.norm(positions - first, axis=-1).max(axis=0)  # [N]
    return displacement / max(size, 1e-12)


def choose_points(motion: np.ndarray, candidates: np.ndarray, max_drags: int, rng: np.random.Generator) -> np.ndarray:
    """1..``max_drags`` distinct candidate indices, drawn with probability proportional to ``motion``."""
    pool = np.flatnonzero(candidates)
    if pool.size == 0:
        return pool
    count = int(rng.integers(1, min(max_drags, pool.size) + 1))
    weights = motion[pool] / motion[pool].sum()
    return rng.choice(pool, size=count, replace=False, p=weights)


def project_track(track: np.ndarray, cameras: list[dict[str, Any]]) -> np.ndarray:
    """A 3-D track ``(F, 3)`` to normalised image positions ``(F, 2)``, frame f through ``cameras[f]``."""
    projected = [
        project_points(point, camera["K"], camera["world_to_camera"], tuple(camera["resolution"]))[0]
        for point, camera in zip(track, cameras, strict=True)
    ]
    return np.stack(projected)


def drag_motion(drags: np.ndarray) -> np.ndarray:
    """Per drag ``(K, F, 2)``, the largest distance from its start point: ``(K,)``."""
    return np.linalg.norm(drags - drags[:, :1], axis=-1).max(axis=1)


def deduplicate(
    drags: np.ndarray,
    start_distance: float = DUPLICATE_START_DISTANCE,
    motion_distance: float = DUPLICATE_MOTION_DISTANCE,
) -> np.ndarray:
    """Indices of drags ``(K, F, 2)`` to keep, largest motion first, without near-duplicates.

    Two drags are near-duplicates when their starts are within ``start_distance`` and their
    start-relative tracks stay within ``motion_distance`` of each other in every frame; of such a
    pair the one with the larger motion survives.
    """
    relative = drags - drags[:, :1]
    kept: list[int] = []
    for index in np.argsort(-drag_motion(drags), kind="stable"):
        duplicate = any(
            np.linalg.norm(drags[index, 0] - drags[other, 0]) < start_distance
            and np.linalg.norm(relative[index] - relative[other], axis=-1).max() < motion_distance
            for other in kept
        )
        if not duplicate:
            kept.append(int(index))
    return np.array(kept, dtype=np.int64)


def drop_small_motion(
    motion: np.ndarray, rng: np.random.Generator, full_keep_motion: float = FULL_KEEP_MOTION
) -> np.ndarray:
    """Keep-mask over drags: each is dropped with probability ``1 - motion / full_keep_motion``.

    The probability is 0 for drags moving ``full_keep_motion`` or more and grows to 1 as the motion
    shrinks to 0. The largest drag is always kept, so a sample never loses all its drags.
    """
    drop_probability = np.clip(1.0 - motion / full_keep_motion, 0.0, 1.0)
    keep = rng.random(motion.shape) >= drop_probability
    if motion.size:
        keep[int(np.argmax(motion))] = True
    return keep


def load_render(render_dir: Path) -> tuple[dict[str, np.ndarray], list[dict[str, Any]]]:
    """``points.npz`` and, per view, its cameras and visibility."""
    if not (render_dir / "manifest.json").is_file():
        raise FileNotFoundError(f"{os.fspath(render_dir)!r} has no manifest.json: run render-animations to the end")
    manifest = json.loads((render_dir / "manifest.json").read_text())
    with np.load(render_dir / "points.npz") as data:
        points = {key: data[key] for key in data.files}
    views = []
    for name in manifest["views"]:
        cameras = json.loads((render_dir / name / "cameras.json").read_text())["frames"]
        visibility = np.load(render_dir / name / "visibility.npy")
        views.append({"name": name, "cameras": cameras, "visibility": visibility})
    return points, views


def sample_clip(
    positions: np.ndarray, visible: np.ndarray, cameras: list[dict[str, Any]], args: argparse.Namespace, rng
) -> list[dict[str, Any]]:
    """Distinct drag sets for one clip of one view: ``positions`` ``(F, N, 3)``, ``visible`` ``(N,)``."""
    motion = relative_motion(positions)
    candidates = (motion > args.min_motion) & visible
    samples, seen = [], set()
    for _ in range(args.samples_per_clip):
        chosen = choose_points(motion, candidates, args.max_drags, rng)
        if chosen.size == 0:
            break
        drags = np.stack([project_track(positions[:, point], cameras) for point in chosen])
        kept = deduplicate(drags)
        drags, chosen = drags[kept], chosen[kept]
        keep = drop_small_motion(drag_motion(drags), rng)
        drags, chosen = drags[keep], chosen[keep]
        key = tuple(sorted(chosen.tolist()))
        if key not in seen:
            seen.add(key)
            samples.append({"drags": drags, "point_ids": chosen})
    return samples


def sample_drags(render_dir: Path, args: argparse.Namespace) -> list[dict[str, Any]]:
    """All drag samples of one rendered animation (see the module docstring for the format)."""
    points, views = load_render(render_dir)
    positions, part_ids, part_names = points["positions"], points["part_ids"], points["part_names"].tolist()
    rng = np.random.default_rng(args.seed)
    starts = clip_starts(len(positions), args.clip_frames, args.stride)
    if not starts:
        logger.warning("%s: %d frames, fewer than one clip of %d", render_dir, len(positions), args.clip_frames)
    samples = []
    for view in views:
        for start in starts:
            clip = slice(start, start + args.clip_frames)
            cameras = view["cameras"][clip]
            for found in sample_clip(positions[clip], view["visibility"][start], cameras, args, rng):
                ids = found["point_ids"]
                samples.append(
                    {
                        "render_dir": os.fspath(render_dir.resolve()),
                        "view": view["name"],
                        "start_frame": int(cameras[0]["frame"]),
                        "frames": [f"{view['name']}/{camera['image']}" for camera in cameras],
                        "drags": np.round(found["drags"], 5).tolist(),
                        "point_ids": ids.tolist(),
                        "part_ids": part_ids[ids].tolist(),
                        "part_names": [part_names[part] for part in part_ids[ids]],
                        "motion": np.round(drag_motion(found["drags"]), 5).tolist(),
                    }
                )
    return samples


def main(args: argparse.Namespace) -> int:
    """Handler of ``sample-drags``."""
    if not 1 <= args.max_drags <= 5:
        raise ValueError(f"--max-drags must be 1..5 (the model takes at most 5 drags), got {args.max_drags}")
    samples = sample_drags(Path(args.render_dir), args)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out, samples)
    drags = sum(len(sample["drags"]) for sample in samples)
    print(f"{out}: {len(samples)} samples with {drags} drags from {args.render_dir}")
    return 0


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``sample-drags`` on the ``puppet-master`` CLI."""
    parser = subparsers.add_parser("sample-drags", help="drag samples from the point tracks of a rendered animation")
    parser.add_argument("render_dir", help="a render-animations output folder")
    parser.add_argument("--out", required=True, help="the JSON file to write")
    parser.add_argument("--clip-frames", type=int, default=14, help="frames per training clip")
    parser.add_argument("--stride", type=int, default=7, help="frames between clip starts")
    parser.add_argument("--samples-per-clip", type=int, default=4, help="drag sets drawn per clip and view")
    parser.add_argument("--max-drags", type=int, default=5, help="most drags per sample (model limit 5)")
    parser.add_argument("--min-motion", type=float, default=0.02, help="moving: max displacement / object size above")
    parser.add_argument("--seed", type=int, default=0)
    parser.set_defaults(handler=main)
