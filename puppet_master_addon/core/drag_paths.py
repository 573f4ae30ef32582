"""Drag paths in camera-frame coordinates, bpy-free: resampling, anchoring, checks for the API.

A drag path is a list of ``(x, y)`` frame points (x right, y down, 0..1). Two points are a straight
drag; more points a path the backend follows at constant speed (it resamples by arc length).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from .camera import CameraParams, world_to_camera_frame

PATH_POINTS = 32  # points kept per hand-drawn or imported path: smooth enough, small to send
FRAME_TOLERANCE = 1e-4  # points this close outside the frame are snapped onto its border

Path = list[tuple[float, float]]


def resample_polyline(points: ArrayLike, n: int) -> np.ndarray:
    """``n`` points evenly spaced by arc length along the polyline, first and last kept.

    ``(N, D) -> (n, D)``; a polyline of zero length gives ``n`` copies of its first point.
    """
    if n < 2:
        raise ValueError(f"n must be at least 2, got {n}")
    path = np.asarray(points, dtype=np.float64)
    if path.ndim != 2 or len(path) == 0:
        raise ValueError(f"points must be a non-empty (N, D) array, got shape {path.shape}")
    lengths = np.linalg.norm(np.diff(path, axis=0), axis=1)
    # Repeated points add no length; dropping them keeps the arc-length axis strictly increasing.
    path = path[np.concatenate([[True], lengths > 0])]
    lengths = lengths[lengths > 0]
    if lengths.size == 0:
        return np.repeat(path[:1], n, axis=0)
    arc = np.concatenate([[0.0], np.cumsum(lengths)])
    targets = np.linspace(0.0, arc[-1], n)
    return np.stack([np.interp(targets, arc, path[:, axis]) for axis in range(path.shape[1])], axis=-1)


def normalise_path(points: ArrayLike, num_points: int = PATH_POINTS) -> Path | None:
    """A drawn or imported path as a drag: 2 points stay a straight drag, longer paths become
    ``num_points`` points evenly spaced by arc length. None when the path has no length."""
    path = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    if len(path) < 2 or not np.linalg.norm(np.diff(path, axis=0), axis=1).any():
        return None
    if len(path) > 2:
        path = resample_polyline(path, num_points)
    return [(float(x), float(y)) for x, y in path]


def anchored_path(path: Sequence[Sequence[float]], anchor_frame: Sequence[float]) -> Path:
    """The path translated so that it starts at ``anchor_frame`` (the anchor's projection now)."""
    start = np.asarray(path[0], dtype=np.float64)
    offset = np.asarray(anchor_frame, dtype=np.float64) - start
    return [(float(x) + offset[0], float(y) + offset[1]) for x, y in path]


def anchor_world_point(anchor_matrix: ArrayLike, anchor_local: Sequence[float]) -> np.ndarray:
    """World position of a point given in an object's local coordinates."""
    matrix = np.asarray(anchor_matrix, dtype=np.float64)
    return (matrix @ np.append(np.asarray(anchor_local, dtype=np.float64), 1.0))[:3]


def drag_frame_path(drag: Any, camera_matrix: ArrayLike | None, params: CameraParams | None) -> Path:
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
        array = np.asarray(path, dtype=np.float64).reshape(-1, 2)
        if len(array) < 2:
            raise ValueError(f"Drag {number} has {len(array)} point(s); a drag needs a start and an end")
        if not np.isfinite(array).all():
            raise ValueError(f"Drag {number} has a point that is not a number; redraw it")
        outside = ((array < -FRAME_TOLERANCE) | (array > 1.0 + FRAME_TOLERANCE)).any(axis=1)
        if outside.any():
            x, y = array[int(np.flatnonzero(outside)[0])]
            raise ValueError(
                f"Drag {number} leaves the camera frame at ({x:.3f}, {y:.3f}); "
                "move it (or its anchor object) inside the camera view"
            )
        checked.append([(float(x), float(y)) for x, y in np.clip(array, 0.0, 1.0)])
    return checked


def distance_to_polyline(point: Sequence[float], polyline: ArrayLike) -> float:
    """Shortest distance from ``point`` to a polyline ``(N, 2)`` (a single point counts too)."""
    p = np.asarray(point, dtype=np.float64)
    line = np.asarray(polyline, dtype=np.float64).reshape(-1, 2)
    if len(line) == 1:
        return float(np.linalg.norm(p - line[0]))
    a, b = line[:-1], line[1:]
    ab = b - a
    length_sq = (ab * ab).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(length_sq > 0, ((p - a) * ab).sum(axis=1) / length_sq, 0.0)
    nearest = a + np.clip(t, 0.0, 1.0)[:, None] * ab
    return float(np.linalg.norm(nearest - p, axis=1).min())


def nearest_path(point: Sequence[float], polylines: Sequence[ArrayLike], max_distance: float) -> int | None:
    """Index of the polyline nearest to ``point`` within ``max_distance``, or None."""
    best, best_distance = None, max_distance
    for index, polyline in enumerate(polylines):
        if len(polyline) == 0:
            continue
        distance = distance_to_polyline(point, polyline)
        if distance <= best_distance:
            best, best_distance = index, distance
    return best


def bezier_points(
    knots: ArrayLike, handles_left: ArrayLike, handles_right: ArrayLike, resolution: int, cyclic: bool = False
) -> np.ndarray:
    """Points along a cubic Bezier spline, ``resolution`` steps per segment, as Blender evaluates it.

    ``knots``, ``handles_left`` and ``handles_right`` are ``(N, D)``; returns ``(M, D)`` with the
    knots included once (and the first knot again at the end of a cyclic spline).
    """
    knots = np.asarray(knots, dtype=np.float64)
    left, right = np.asarray(handles_left, dtype=np.float64), np.asarray(handles_right, dtype=np.float64)
    if len(knots) < 2:
        return knots.copy()
    ends = list(range(1, len(knots))) + ([0] if cyclic else [])
    t = np.linspace(0.0, 1.0, max(resolution, 1) + 1)[1:, None]  # [steps, 1]; t = 0 is the previous end
    pieces = [knots[:1]]
    for start, end in zip(range(len(ends)), ends, strict=True):
        p0, p1, p2, p3 = knots[start], right[start], left[end], knots[end]
        pieces.append(
            (1 - t) ** 3 * p0 + 3 * (1 - t) ** 2 * t * p1 + 3 * (1 - t) * t**2 * p2 + t**3 * p3
        )  # [steps, D] cubic Bernstein form
    return np.concatenate(pieces, axis=0)
