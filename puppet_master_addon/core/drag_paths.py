"""Drag paths in camera-frame coordinates, bpy-free: resampling, anchoring, checks for the API.

A drag path is a list of ``(x, y)`` frame points (x right, y down, 0..1). Two points are a straight
drag; more points a path the backend follows at constant speed (it resamples by arc length).

Plain Python, like ``camera.py``: drawing and sending drags must work in Blender builds without numpy.
:func:`resample_polyline` and :func:`bezier_points` also come as numpy arrays for callers that compute
with arrays (those import numpy); the maths is the same.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Sequence
from itertools import pairwise
from typing import Any

from .camera import CameraParams, world_to_camera_frame

PATH_POINTS = 32  # points kept per hand-drawn or imported path: smooth enough, small to send
FRAME_TOLERANCE = 1e-4  # points this close outside the frame are snapped onto its border

Path = list[tuple[float, float]]
Point = tuple[float, ...]


def _points(points: Iterable[Iterable[float]]) -> list[Point]:
    return [tuple(float(value) for value in point) for point in points]


def _linspace(stop: float, n: int) -> list[float]:
    """``n`` numbers from 0 to ``stop``, evenly spaced, the last exactly ``stop`` (as ``numpy.linspace``)."""
    step = stop / (n - 1)
    return [index * step for index in range(n - 1)] + [stop]


def resample_path(points: Iterable[Iterable[float]], n: int) -> list[Point]:
    """``n`` points evenly spaced by arc length along the polyline, first and last kept.

    ``N`` points of ``D`` coordinates -> ``n`` points; a polyline of zero length gives ``n`` copies of its first point.
    """
    if n < 2:
        raise ValueError(f"n must be at least 2, got {n}")
    path = _points(points)
    if not path or len({len(point) for point in path}) != 1:
        sizes = sorted({len(point) for point in path})
        raise ValueError(f"points must be a non-empty list of points of one size, got {len(path)} of sizes {sizes}")
    # Repeated points add no length; dropping them keeps the arc-length axis strictly increasing.
    kept, arc = [path[0]], [0.0]
    for point in path[1:]:
        length = math.dist(kept[-1], point)
        if length > 0:
            kept.append(point)
            arc.append(arc[-1] + length)
    if len(kept) == 1:
        return [path[0]] * n
    resampled = []
    for target in _linspace(arc[-1], n):
        # the segment [arc[i], arc[i + 1]] holding the target, interpolated per coordinate (as numpy.interp)
        i = min(max(bisect.bisect_right(arc, target) - 1, 0), len(arc) - 2)
        if target >= arc[-1]:
            resampled.append(kept[-1])
            continue
        start, end = kept[i], kept[i + 1]
        fraction = target - arc[i]
        span = arc[i + 1] - arc[i]
        resampled.append(tuple((b - a) / span * fraction + a for a, b in zip(start, end, strict=True)))
    return resampled


def resample_polyline(points: Any, n: int) -> Any:
    """:func:`resample_path` as a numpy array ``(n, D)`` (needs numpy)."""
    import numpy as np

    return np.asarray(resample_path(points, n), dtype=np.float64)


def normalise_path(points: Iterable[Sequence[float]], num_points: int = PATH_POINTS) -> Path | None:
    """A drawn or imported path as a drag: 2 points stay a straight drag, longer paths become
    ``num_points`` points evenly spaced by arc length. None when the path has no length."""
    path = [(float(x), float(y)) for x, y in points]
    if len(path) < 2 or not any(math.dist(a, b) > 0 for a, b in pairwise(path)):
        return None
    if len(path) > 2:
        path = [(x, y) for x, y in resample_path(path, num_points)]
    return path


def anchored_path(path: Sequence[Sequence[float]], anchor_frame: Sequence[float]) -> Path:
    """The path translated so that it starts at ``anchor_frame`` (the anchor's projection now)."""
    offset_x, offset_y = float(anchor_frame[0]) - float(path[0][0]), float(anchor_frame[1]) - float(path[0][1])
    return [(float(x) + offset_x, float(y) + offset_y) for x, y in path]


def anchor_world_point(anchor_matrix: Any, anchor_local: Sequence[float]) -> tuple[float, float, float]:
    """World position of a point given in an object's local coordinates (``anchor_matrix``: 4 rows of 4)."""
    local = (*(float(value) for value in anchor_local), 1.0)
    rows = list(anchor_matrix)[:3]
    x, y, z = (sum(float(m) * v for m, v in zip(row, local, strict=True)) for row in rows)
    return x, y, z


def drag_frame_path(drag: Any, camera_matrix: Any, params: CameraParams | None) -> Path:
    """Points of a ``PUPPET_PG_drag`` (duck-typed) as they are now.

    An anchored drag (``use_anchor`` with an ``anchor_object``) starts where the camera sees its
    anchor point now, the whole path moved by the same offset; without a camera the stored points
    are returned. ValueError (from the projection) when the anchor is behind the camera.
    """
    path = [(float(point.co[0]), float(point.co[1])) for point in drag.points]
    anchor = drag.anchor_object if drag.use_anchor else None
    if not path or anchor is None or camera_matrix is None or params is None:
        return path
    anchor_world = anchor_world_point(anchor.matrix_world, drag.anchor_local)
    return anchored_path(path, world_to_camera_frame(anchor_world, camera_matrix, params))


def check_api_drags(
    paths: Sequence[Sequence[Sequence[float]]], max_drags: int, numbers: Sequence[int] | None = None
) -> list[Path]:
    """Drags ready for the backend: 1 to ``max_drags`` paths of >= 2 points inside the frame.

    Points within ``FRAME_TOLERANCE`` of the frame are snapped onto it; anything else is a
    ValueError that names the drag by its number (``numbers``, default 1, 2, ...: the viewport's
    1-based numbering) and says what to do.
    """
    if not paths:
        raise ValueError("There are no enabled drags: draw one over the camera view first")
    if len(paths) > max_drags:
        raise ValueError(f"{len(paths)} drags are enabled but the model takes at most {max_drags}; disable some")
    numbers = list(numbers) if numbers is not None else list(range(1, len(paths) + 1))
    checked = []
    for number, path in zip(numbers, paths, strict=True):
        points = [(float(x), float(y)) for x, y in path]
        if len(points) < 2:
            raise ValueError(f"Drag {number} has {len(points)} point(s); a drag needs a start and an end")
        if not all(math.isfinite(value) for point in points for value in point):
            raise ValueError(f"Drag {number} has a point that is not a number; redraw it")
        for x, y in points:
            if not (-FRAME_TOLERANCE <= x <= 1.0 + FRAME_TOLERANCE and -FRAME_TOLERANCE <= y <= 1.0 + FRAME_TOLERANCE):
                raise ValueError(
                    f"Drag {number} leaves the camera frame at ({x:.3f}, {y:.3f}); "
                    "move it (or its anchor object) inside the camera view"
                )
        checked.append([(min(max(x, 0.0), 1.0), min(max(y, 0.0), 1.0)) for x, y in points])
    return checked


def distance_to_polyline(point: Sequence[float], polyline: Iterable[Sequence[float]]) -> float:
    """Shortest distance from ``point`` to a polyline of ``(x, y)`` points (a single point counts too)."""
    px, py = float(point[0]), float(point[1])
    line = [(float(x), float(y)) for x, y in polyline]
    if len(line) == 1:
        return math.hypot(px - line[0][0], py - line[0][1])
    best = math.inf
    for (ax, ay), (bx, by) in pairwise(line):
        abx, aby = bx - ax, by - ay
        length_sq = abx * abx + aby * aby
        t = ((px - ax) * abx + (py - ay) * aby) / length_sq if length_sq > 0 else 0.0
        t = min(max(t, 0.0), 1.0)
        best = min(best, math.hypot(ax + t * abx - px, ay + t * aby - py))
    return best


def nearest_path(
    point: Sequence[float], polylines: Sequence[Sequence[Sequence[float]]], max_distance: float
) -> int | None:
    """Index of the polyline nearest to ``point`` within ``max_distance``, or None."""
    best, best_distance = None, max_distance
    for index, polyline in enumerate(polylines):
        if len(polyline) == 0:
            continue
        distance = distance_to_polyline(point, polyline)
        if distance <= best_distance:
            best, best_distance = index, distance
    return best


def bezier_path(
    knots: Sequence[Sequence[float]],
    handles_left: Sequence[Sequence[float]],
    handles_right: Sequence[Sequence[float]],
    resolution: int,
    cyclic: bool = False,
) -> list[Point]:
    """Points along a cubic Bezier spline, ``resolution`` steps per segment, as Blender evaluates it.

    ``knots``, ``handles_left`` and ``handles_right`` hold ``N`` points of ``D`` coordinates; the result has
    the knots once each (and the first knot again at the end of a cyclic spline).
    """
    knots, left, right = _points(knots), _points(handles_left), _points(handles_right)
    if len(knots) < 2:
        return knots
    ends = list(range(1, len(knots))) + ([0] if cyclic else [])
    steps = _linspace(1.0, max(resolution, 1) + 1)[1:]  # t = 0 is the previous segment's end
    points = [knots[0]]
    for start, end in enumerate(ends):
        p0, p1, p2, p3 = knots[start], right[start], left[end], knots[end]
        for t in steps:  # the cubic Bernstein form
            points.append(
                tuple(
                    (1 - t) ** 3 * a + 3 * (1 - t) ** 2 * t * b + 3 * (1 - t) * t**2 * c + t**3 * d
                    for a, b, c, d in zip(p0, p1, p2, p3, strict=True)
                )
            )
    return points


def bezier_points(knots: Any, handles_left: Any, handles_right: Any, resolution: int, cyclic: bool = False) -> Any:
    """:func:`bezier_path` as a numpy array ``(M, D)`` (needs numpy)."""
    import numpy as np

    return np.asarray(bezier_path(knots, handles_left, handles_right, resolution, cyclic), dtype=np.float64)
