"""Geometry of the drag overlay in region pixels, bpy-free (``overlay.py`` only hands it to ``gpu``).

Each drag is drawn as a polyline along its path, a filled arrow head at its end, a dot at its start
and its 1-based number beside the start. All coordinates here are region pixels (y up).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from .camera import FrameRect, frame_to_region

Point2 = tuple[float, float]


@dataclass(frozen=True)
class DragGeometry:
    """What to draw for one drag: ``line`` as a line strip, ``triangles`` as a triangle list."""

    line: list[Point2]
    triangles: list[Point2]
    label: Point2


def path_to_region(path: Sequence[Sequence[float]], rect: FrameRect) -> list[Point2]:
    """Frame points (x right, y down, 0..1) -> region pixels through the camera frame rectangle."""
    return [frame_to_region(x, y, rect) for x, y in path]


def _direction_into_tip(points: Sequence[Point2], reach: float) -> Point2 | None:
    """Unit direction of travel arriving at the last point, or None for a path without length.

    Taken from the last point at least ``reach`` away, so a jittery hand-drawn end does not twist
    the arrow; the farthest point back when the whole path is shorter.
    """
    tip_x, tip_y = points[-1]
    fallback = None
    for x, y in reversed(points[:-1]):
        dx, dy = tip_x - x, tip_y - y
        length = math.hypot(dx, dy)
        if length >= reach:
            return dx / length, dy / length
        if length > 0:
            fallback = (dx / length, dy / length)
    return fallback


def arrow_head(points: Sequence[Point2], size: float) -> list[Point2] | None:
    """Triangle ``[tip, left, right]`` pointing along the end of the path, ``size`` pixels long."""
    direction = _direction_into_tip(points, reach=0.5 * size)
    if direction is None:
        return None
    (tip_x, tip_y), (dx, dy) = points[-1], direction
    base_x, base_y = tip_x - dx * size, tip_y - dy * size
    half_width = 0.5 * size
    return [
        (tip_x, tip_y),
        (base_x - dy * half_width, base_y + dx * half_width),
        (base_x + dy * half_width, base_y - dx * half_width),
    ]


def trim_end(points: Sequence[Point2], length: float) -> list[Point2]:
    """The polyline shortened by ``length`` pixels at its end (so a wide line stops inside the arrow)."""
    trimmed = list(points)
    remaining = length
    while len(trimmed) >= 2 and remaining > 0:
        (x0, y0), (x1, y1) = trimmed[-2], trimmed[-1]
        segment = math.hypot(x1 - x0, y1 - y0)
        if segment > remaining:
            t = (segment - remaining) / segment
            trimmed[-1] = (x0 + (x1 - x0) * t, y0 + (y1 - y0) * t)
            return trimmed
        remaining -= segment
        trimmed.pop()
    return trimmed


def disc(center: Point2, radius: float, segments: int = 12) -> list[Point2]:
    """A filled circle as a triangle list (``3 * segments`` vertices)."""
    cx, cy = center
    ring = [
        (cx + radius * math.cos(2 * math.pi * i / segments), cy + radius * math.sin(2 * math.pi * i / segments))
        for i in range(segments + 1)
    ]
    triangles: list[Point2] = []
    for i in range(segments):
        triangles += [center, ring[i], ring[i + 1]]
    return triangles


def label_position(points: Sequence[Point2], offset: float) -> Point2:
    """Where the drag's number goes: ``offset`` pixels behind the start, against the direction of travel."""
    start_x, start_y = points[0]
    reversed_path = [tuple(p) for p in reversed(points)]
    direction = _direction_into_tip(reversed_path, reach=offset)  # direction arriving back at the start
    if direction is None:
        return start_x + offset, start_y + offset
    return start_x + direction[0] * offset, start_y + direction[1] * offset


def drag_geometry(path: Sequence[Sequence[float]], rect: FrameRect, scale: float = 1.0) -> DragGeometry | None:
    """Everything to draw for one drag path (frame coordinates) in a region; None for an empty path.

    ``scale`` is the interface scale (``preferences.system.ui_scale``); sizes grow with it.
    """
    if len(path) == 0:
        return None
    points = path_to_region(path, rect)
    arrow_size = 14.0 * scale
    head = arrow_head(points, arrow_size) if len(points) >= 2 else None
    triangles = disc(points[0], 4.0 * scale)
    line = points
    if head is not None:
        triangles += head
        line = trim_end(points, 0.5 * arrow_size)
    return DragGeometry(line=line, triangles=triangles, label=label_position(points, 12.0 * scale))
