"""``puppet-master track FRAMES_DIR --points points.json --out tracks.json``: point tracks through a video's frames.

The same tracking the service runs for ``POST /v1/jobs/{id}/tracks`` (Bake Motion), on a folder of
frames: a result's ``video_0`` folder, or any PNG sequence (frames sorted by name).
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path
from typing import Any

from .track import load_frames, track_points

logger = logging.getLogger(__name__)


def read_points(path: str) -> tuple[list[Any], int | None]:
    """Query points from a JSON file: ``[[x, y], ...]`` or ``{"points": [[x, y], ...], "query_frame": 0}``."""
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"points file {path!r} does not exist")
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except ValueError as error:
        raise ValueError(f"points file {path!r} is not valid JSON ({error})") from None
    query_frame = None
    if isinstance(data, dict):
        query_frame = data.get("query_frame")
        data = data.get("points")
    if not isinstance(data, list) or not data:
        raise ValueError(
            f"points file {path!r}: expected a list of [x, y] points (normalised, 0..1) or "
            '{"points": [[x, y], ...], "query_frame": 0}'
        )
    if query_frame is not None and not isinstance(query_frame, int):
        raise ValueError(f"points file {path!r}: query_frame must be a frame index, got {query_frame!r}")
    return data, query_frame


def main(args: argparse.Namespace) -> int:
    points, query_frame = read_points(args.points)
    if args.query_frame is not None:
        query_frame = args.query_frame
    frames = load_frames(args.frames_dir)
    started = time.perf_counter()
    tracks = track_points(frames, points, query_frame or 0)
    seconds = time.perf_counter() - started
    output = Path(args.out)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps({**tracks.to_json(), "seconds": round(seconds, 4)}) + "\n", encoding="utf-8")
    lost = int((tracks.confidence[:, -1] == 0).sum())
    logger.info(
        "tracked %d point(s) through %d frames in %.2f s (%d lost by the last frame): %s",
        len(points), len(frames), seconds, lost, output,
    )  # fmt: skip
    return 0


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``track`` on the ``puppet-master`` CLI."""
    parser = subparsers.add_parser(
        "track",
        help="track points through a folder of frames (as Bake Motion does)",
        description="Track query points through a video's frames with pyramidal Lucas-Kanade and a "
        "forward-backward check; writes per-point tracks and confidences as JSON.",
    )
    parser.add_argument("frames_dir", metavar="FRAMES_DIR", help="folder of PNG frames, sorted by name")
    parser.add_argument(
        "--points", required=True, help='JSON: [[x, y], ...] or {"points": [[x, y], ...], "query_frame": 0}'
    )
    parser.add_argument("--out", required=True, help="JSON file to write the tracks to")
    parser.add_argument("--query-frame", type=int, help="frame the points are given on (default 0, or the file's)")
    parser.set_defaults(handler=main)
