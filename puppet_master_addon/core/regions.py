"""Which part of a 3D viewport the pointer is over (bpy-free).

The viewport's main region lies under the Sidebar, the Toolbar, the headers and the navigation
gizmo (region overlap), so "inside the main region" is not "over the picture". Clicks over those
belong to them: a drawing tool must pass them through, or the Sidebar's widgets stop responding and
a drag on them draws a phantom drag along the frame's edge.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

# The navigation gizmo's column of buttons (zoom, pan, camera, projection) under the gizmo itself.
NAVIGATION_BUTTONS = 4
NAVIGATION_BUTTON_PX = 28.0
NAVIGATION_MARGIN_PX = 10.0


@dataclass(frozen=True)
class Rect:
    """A rectangle in window pixels: ``x``, ``y`` the bottom-left corner."""

    x: float
    y: float
    width: float
    height: float

    @property
    def right(self) -> float:
        return self.x + self.width

    @property
    def top(self) -> float:
        return self.y + self.height

    def contains(self, px: float, py: float) -> bool:
        return self.x <= px < self.right and self.y <= py < self.top

    def overlaps_rows_of(self, other: Rect) -> bool:
        return self.y < other.top and other.y < self.top


def navigation_gizmo_rect(view: Rect, covering: Sequence[Rect], gizmo_px: float, scale: float) -> Rect:
    """Where the navigation gizmo and its buttons sit: the top-right corner of the view left uncovered.

    ``covering`` are the regions over the view (Sidebar, headers); ``gizmo_px`` the preference
    "Navigate Gizmo Size" and ``scale`` the interface scale.
    """
    right = min([r.x for r in covering if r.x > view.x + view.width / 2 and r.overlaps_rows_of(view)] + [view.right])
    top = min([r.y for r in covering if r.y > view.y + view.height / 2 and r.width > view.width / 2] + [view.top])
    width = (gizmo_px + 2 * NAVIGATION_MARGIN_PX) * scale
    height = (gizmo_px + NAVIGATION_BUTTONS * NAVIGATION_BUTTON_PX + 2 * NAVIGATION_MARGIN_PX) * scale
    return Rect(right - width, top - height, width, height)


def pointer_over_view(x: float, y: float, view: Rect, covering: Sequence[Rect]) -> bool:
    """True when window point (x, y) is on the view's picture, not on anything lying over it."""
    return view.contains(x, y) and not any(rect.contains(x, y) for rect in covering)
