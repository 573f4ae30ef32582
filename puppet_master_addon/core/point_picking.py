"""Choosing points on parts, bpy-free (numpy, imported lazily): where to cast rays, which hits to keep,
which points to turn into drags.

Bake Motion wants many well-spread points inside each part (tracks near the silhouette see the
background move under them); Drags from Animation wants a few points that move the most, spread over
the parts, one drag each. Frame coordinates are the add-on's convention: x right, y down, 0..1.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

# Drags whose point moves less than this share of the frame's diagonal do not say anything.
MIN_DRAG_MOTION = 0.01
# Drags start at least this far apart (frame heights): two drags on one spot say the same thing twice.
MIN_DRAG_SPACING = 0.08


def ray_grid(bounds: Sequence[float], spacing: float) -> tuple[list[tuple[float, float]], tuple[int, int]]:
    """Frame points on a grid over ``bounds`` ``(xmin, ymin, xmax, ymax)`` (clipped to the frame).

    Returns the points row by row and the grid's ``(columns, rows)``; ``spacing`` is in frame units.
    """
    xmin, ymin, xmax, ymax = (min(max(float(value), 0.0), 1.0) for value in bounds)
    columns = max(1, int((xmax - xmin) / spacing) + 1)
    rows = max(1, int((ymax - ymin) / spacing) + 1)
    xs = [xmin + (xmax - xmin) * (i + 0.5) / columns for i in range(columns)]
    ys = [ymin + (ymax - ymin) * (j + 0.5) / rows for j in range(rows)]
    return [(x, y) for y in ys for x in xs], (columns, rows)


def interior_cells(hits: Sequence[bool], shape: tuple[int, int], margin: int = 1) -> list[bool]:
    """For a grid of ray hits (row by row, ``shape`` = ``(columns, rows)``): which hits have hits all
    around them within ``margin`` cells, i.e. lie inside the part rather than on its outline."""
    import numpy as np

    columns, rows = shape
    grid = np.asarray(hits, dtype=bool).reshape(rows, columns)
    padded = np.pad(grid, margin, constant_values=False)
    inside = grid.copy()
    for dy in range(-margin, margin + 1):
        for dx in range(-margin, margin + 1):
            inside &= padded[margin + dy : margin + dy + rows, margin + dx : margin + dx + columns]
    return inside.ravel().tolist()


def spread_indices(points: Any, count: int, first: int | None = None) -> list[int]:
    """Indices of ``count`` of ``points`` ``(N, 2)`` chosen by farthest-point sampling: each next point
    is the one farthest from those chosen. Starts from ``first`` (default: the point nearest the centroid)."""
    import numpy as np

    array = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    if len(array) == 0 or count <= 0:
        return []
    if first is None:
        first = int(np.argmin(np.linalg.norm(array - array.mean(axis=0), axis=1)))
    chosen = [first]
    distance = np.linalg.norm(array - array[first], axis=1)
    while len(chosen) < min(count, len(array)):
        index = int(np.argmax(distance))
        if distance[index] <= 0:
            break  # the rest repeat chosen points
        chosen.append(index)
        distance = np.minimum(distance, np.linalg.norm(array - array[index], axis=1))
    return chosen


def pick_drag_points(paths: Any, parts: Sequence[int], count: int, aspect: float = 1.0) -> list[int]:
    """Which of the candidate ``paths`` ``(N, F, 2)`` (frame coordinates) become drags: at most ``count``.

    A point's motion is its largest distance from where it starts (in frame heights, the frame's
    ``aspect`` = width / height taken into account). Points that stay inside the frame and move more
    than ``MIN_DRAG_MOTION`` of the diagonal qualify. Each moving part gets its most moving point first
    (parts in order of motion); further drags go to the point with the largest motion times its
    distance to the drags chosen so far, so they spread over the parts instead of bunching up, and none
    starts closer than ``MIN_DRAG_SPACING`` to another.
    """
    import numpy as np

    array = np.asarray(paths, dtype=np.float64)
    if array.ndim != 3 or array.shape[2] != 2:
        raise ValueError(f"paths must be (N, F, 2), got shape {array.shape}")
    parts = np.asarray(parts)
    if count <= 0 or len(array) == 0:
        return []
    scale = np.array([aspect, 1.0])
    scaled = array * scale  # [N, F, 2] in frame heights
    motion = np.linalg.norm(scaled - scaled[:, :1], axis=2).max(axis=1)  # [N]
    inside = ((array >= 0.0) & (array <= 1.0)).all(axis=(1, 2))
    diagonal = float(np.hypot(aspect, 1.0))
    candidates = np.flatnonzero(inside & (motion > MIN_DRAG_MOTION * diagonal))
    if len(candidates) == 0:
        return []
    chosen: list[int] = []
    best_per_part = {}
    for index in candidates[np.argsort(-motion[candidates])]:
        best_per_part.setdefault(parts[index], int(index))
    for index in sorted(best_per_part.values(), key=lambda i: -motion[i])[:count]:
        chosen.append(index)
    starts = scaled[:, 0]
    while len(chosen) < min(count, len(candidates)):
        remaining = np.setdiff1d(candidates, chosen)
        spread = np.min(np.linalg.norm(starts[remaining][:, None] - starts[chosen][None], axis=2), axis=1)
        score = np.where(spread >= MIN_DRAG_SPACING, motion[remaining] * spread, 0.0)
        if not score.max() > 0:
            break
        chosen.append(int(remaining[int(np.argmax(score))]))
    return chosen
