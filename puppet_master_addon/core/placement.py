"""Where an image empty goes so that it exactly fills the camera frame (bpy-free).

The camera looks down its local -Z. ``Camera.view_frame(scene=...)`` gives the four frame corners
in the camera's local space on the plane z = -d0 (perspective: d0 depends on the lens; orthographic:
the frame's size is the same at every depth). An image empty draws its image centred, with the
longer side equal to ``empty_display_size``, in its local XY plane; parented to the camera with an
identity transform it faces the camera.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class FramePlacement:
    """Camera-local centre of the frame at ``distance``, and the frame's width and height there."""

    center: tuple[float, float, float]
    width: float
    height: float

    @property
    def display_size(self) -> float:
        """``empty_display_size`` of an image of the frame's aspect that fills the frame."""
        return max(self.width, self.height)


def frame_at_distance(
    corners: Sequence[Sequence[float]], distance: float, orthographic: bool = False
) -> FramePlacement:
    """The camera frame on the plane ``distance`` in front of the camera.

    Parameters:
        corners: the 4 corners from ``view_frame`` (camera-local x, y, z; z < 0 for perspective).
        distance: how far in front of the camera (> 0).
        orthographic: orthographic cameras keep the frame's size at every depth.
    """
    if len(corners) != 4:
        raise ValueError(f"expected 4 frame corners, got {len(corners)}")
    if distance <= 0:
        raise ValueError(f"distance must be > 0, got {distance}")
    xs = [float(corner[0]) for corner in corners]
    ys = [float(corner[1]) for corner in corners]
    depth = -sum(float(corner[2]) for corner in corners) / 4
    if orthographic:
        scale = 1.0
    else:
        if depth <= 0:
            raise ValueError(f"frame corners must lie in front of the camera (z < 0), got depth {depth}")
        scale = distance / depth
    center = ((min(xs) + max(xs)) / 2 * scale, (min(ys) + max(ys)) / 2 * scale, -distance)
    return FramePlacement(center=center, width=(max(xs) - min(xs)) * scale, height=(max(ys) - min(ys)) * scale)


def empty_distance(clip_start: float, clip_end: float, preferred: float = 1.0) -> float:
    """A depth for the reference image: ``preferred``, kept well inside the camera's clipping range."""
    low = clip_start * 2.0
    high = max(low, clip_end * 0.5)
    return min(max(preferred, low), high)
