"""Camera-frame maths, bpy-free: world points <-> normalised camera-frame coordinates.

Frame coordinates are the add-on's drag convention: x to the right, y down, 0..1 over the render
frame of the camera (Blender's ``bpy_extras.object_utils.world_to_camera_view`` gives the same x
with y up). The projection follows Blender's ``BKE_camera_params_compute_viewplane``: the sensor
(or the orthographic scale) spans the fitted side of the frame, and the lens shift is measured in
units of that side.

Region rectangles (the camera frame as drawn in a 3D viewport looking through the camera) are
``(xmin, ymin, xmax, ymax)`` in region pixels, y up, as ``view3d_utils`` returns them.

The maths is plain Python: Blender builds packaged by Linux distributions (Debian's, for one) ship
without numpy, and drawing, anchoring and Generate must work there. Only :func:`project_to_camera_frame`,
the array form for the tools that compute with numpy arrays anyway (Bake Motion's), imports numpy.
Camera matrices may be anything that iterates as 4 rows of 4 numbers: ``mathutils.Matrix``, nested
lists, numpy arrays.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

PROJECTIONS = ("PERSP", "ORTHO")
SENSOR_FITS = ("AUTO", "HORIZONTAL", "VERTICAL")

FrameRect = tuple[float, float, float, float]


@dataclass(frozen=True)
class CameraParams:
    """What Blender's camera frame depends on, besides the camera's placement.

    Parameters:
        projection: ``"PERSP"`` or ``"ORTHO"`` (panoramic cameras are not supported).
        lens: focal length in millimetres (perspective).
        ortho_scale: width of the fitted side of the frame in scene units (orthographic).
        sensor_fit: ``"AUTO"`` (the larger side), ``"HORIZONTAL"`` or ``"VERTICAL"``.
        sensor_width, sensor_height: sensor size in millimetres; AUTO and HORIZONTAL use the width.
        shift_x, shift_y: lens shift in units of the fitted side.
        resolution_x, resolution_y: render size in pixels (only the ratio matters).
        pixel_aspect_x, pixel_aspect_y: render pixel aspect.
        clip_start, clip_end: clipping distances (used for rays, not for the projection).
    """

    projection: str = "PERSP"
    lens: float = 50.0
    ortho_scale: float = 6.0
    sensor_fit: str = "AUTO"
    sensor_width: float = 36.0
    sensor_height: float = 24.0
    shift_x: float = 0.0
    shift_y: float = 0.0
    resolution_x: float = 1920.0
    resolution_y: float = 1080.0
    pixel_aspect_x: float = 1.0
    pixel_aspect_y: float = 1.0
    clip_start: float = 0.1
    clip_end: float = 1000.0

    def __post_init__(self) -> None:
        if self.projection not in PROJECTIONS:
            raise ValueError(
                f"Camera type {self.projection!r} is not supported; use a perspective or orthographic camera"
            )
        if self.sensor_fit not in SENSOR_FITS:
            raise ValueError(f"Unknown sensor fit {self.sensor_fit!r}; expected one of {', '.join(SENSOR_FITS)}")
        sizes = {
            "lens": self.lens,
            "ortho_scale": self.ortho_scale,
            "sensor_width": self.sensor_width,
            "sensor_height": self.sensor_height,
            "resolution_x": self.resolution_x,
            "resolution_y": self.resolution_y,
            "pixel_aspect_x": self.pixel_aspect_x,
            "pixel_aspect_y": self.pixel_aspect_y,
        }
        for name, value in sizes.items():
            if not value > 0:
                raise ValueError(f"Camera {name} must be positive, got {value!r}")

    @classmethod
    def from_blender(cls, camera_data: Any, render: Any) -> CameraParams:
        """Read a ``bpy.types.Camera`` and the scene's ``RenderSettings`` (duck-typed, no bpy import)."""
        return cls(
            projection=camera_data.type,
            lens=camera_data.lens,
            ortho_scale=camera_data.ortho_scale,
            sensor_fit=camera_data.sensor_fit,
            sensor_width=camera_data.sensor_width,
            sensor_height=camera_data.sensor_height,
            shift_x=camera_data.shift_x,
            shift_y=camera_data.shift_y,
            resolution_x=render.resolution_x,
            resolution_y=render.resolution_y,
            pixel_aspect_x=render.pixel_aspect_x,
            pixel_aspect_y=render.pixel_aspect_y,
            clip_start=camera_data.clip_start,
            clip_end=camera_data.clip_end,
        )

    def frame_bounds(self) -> tuple[float, float, float, float]:
        """``(xmin, xmax, ymin, ymax)`` of the frame in camera space, y up.

        Perspective: on the plane at unit distance in front of the camera (``z = -1``);
        orthographic: in scene units around the camera's axis.
        """
        width = self.resolution_x
        height = self.resolution_y * self.pixel_aspect_y / self.pixel_aspect_x
        fit = self.sensor_fit
        if fit == "AUTO":
            fit = "HORIZONTAL" if width >= height else "VERTICAL"
        fitted_side = width if fit == "HORIZONTAL" else height
        if self.projection == "ORTHO":
            size = self.ortho_scale
        else:
            # Only AUTO and HORIZONTAL read the width: Blender's BKE_camera_sensor_size.
            sensor = self.sensor_height if self.sensor_fit == "VERTICAL" else self.sensor_width
            size = sensor / self.lens
        scale = size / fitted_side
        dx, dy = self.shift_x * fitted_side, self.shift_y * fitted_side
        return (
            (-0.5 * width + dx) * scale,
            (0.5 * width + dx) * scale,
            (-0.5 * height + dy) * scale,
            (0.5 * height + dy) * scale,
        )


class Vec3(tuple):
    """A 3-D point or direction: three floats with the arithmetic of ``mathutils.Vector`` (``+``, ``-`` and
    ``*`` by a number work per component), which this module cannot import (it runs without Blender)."""

    __slots__ = ()

    def __new__(cls, xyz: Iterable[float]) -> Vec3:
        x, y, z = xyz
        return super().__new__(cls, (float(x), float(y), float(z)))

    def __add__(self, other: Sequence[float]) -> Vec3:  # type: ignore[override]
        return Vec3(a + b for a, b in zip(self, other, strict=True))

    def __sub__(self, other: Sequence[float]) -> Vec3:
        return Vec3(a - b for a, b in zip(self, other, strict=True))

    def __mul__(self, factor: float) -> Vec3:  # type: ignore[override]
        return Vec3(a * factor for a in self)

    __rmul__ = __mul__

    @property
    def length(self) -> float:
        return math.hypot(*self)


def _camera_axes(camera_matrix: Any) -> tuple[tuple[Vec3, Vec3, Vec3], Vec3]:
    """``((x axis, y axis, z axis) as unit vectors, location)`` of a camera's world matrix.

    Blender renders through the camera's normalised matrix, so its scale is ignored here too.
    """
    rows = [[float(value) for value in row] for row in camera_matrix]
    if len(rows) != 4 or any(len(row) != 4 for row in rows):
        shape = (len(rows), *sorted({len(row) for row in rows}))
        raise ValueError(f"camera_matrix must be 4x4, got shape {shape}")
    axes = []
    for column in range(3):
        axis = Vec3(rows[row][column] for row in range(3))
        if not axis.length > 0:
            raise ValueError("camera_matrix has a zero-scaled axis; the camera cannot be projected through")
        axes.append(axis * (1.0 / axis.length))
    return (axes[0], axes[1], axes[2]), Vec3(rows[row][3] for row in range(3))


def _projector(camera_matrix: Any, params: CameraParams) -> Callable[[Sequence[float]], tuple[float, float, float]]:
    """``point_world -> (x, y, depth)`` for one camera; the axes and the frame are worked out once."""
    axes, location = _camera_axes(camera_matrix)
    xmin, xmax, ymin, ymax = params.frame_bounds()
    perspective = params.projection == "PERSP"

    def project(point_world: Sequence[float]) -> tuple[float, float, float]:
        offset = Vec3(point_world) - location
        # world -> camera space: the rotation is orthonormal, so its transpose (dot with each axis) inverts it
        local_x, local_y, local_z = (sum(a * b for a, b in zip(offset, axis, strict=True)) for axis in axes)
        depth = -local_z
        if perspective:
            # on the camera's plane (depth 0) a point has no place in the frame
            local_x, local_y = (local_x / depth, local_y / depth) if depth != 0 else (math.nan, math.nan)
        return (local_x - xmin) / (xmax - xmin), (ymax - local_y) / (ymax - ymin), depth

    return project


def project_points(
    points_world: Iterable[Sequence[float]], camera_matrix: Any, params: CameraParams
) -> list[tuple[float, float, float]]:
    """``(x, y, depth)`` of each world point: frame coordinates (x right, y down, 0..1 inside the frame) and the
    distance in front of the camera along its view axis (a perspective point with ``depth <= 0`` is behind the
    camera and its frame coordinates mean nothing)."""
    project = _projector(camera_matrix, params)
    projected = []
    for point in points_world:
        if len(point) != 3:
            raise ValueError(f"world points must have 3 coordinates, got {tuple(point)!r}")
        projected.append(project(point))
    return projected


def project_to_camera_frame(points_world: Any, camera_matrix: Any, params: CameraParams) -> tuple[Any, Any]:
    """:func:`project_points` as numpy arrays, for callers that compute with arrays (needs numpy).

    Returns ``(frame, depth)``: ``(N, 2)`` frame coordinates and ``(N,)`` depths.
    """
    import numpy as np

    points = np.atleast_2d(np.asarray(points_world, dtype=np.float64))
    if points.ndim != 2 or points.shape[-1] != 3:
        raise ValueError(f"points_world must be (N, 3), got shape {points.shape}")
    projected = np.asarray(project_points(points.tolist(), camera_matrix, params), dtype=np.float64).reshape(-1, 3)
    return projected[:, :2], projected[:, 2]


def world_to_camera_frame(
    point_world: Sequence[float], camera_matrix: Any, params: CameraParams
) -> tuple[float, float]:
    """Frame coordinates ``(x, y)`` (x right, y down, 0..1 over the frame) of one world point.

    ValueError when a perspective camera sees the point behind itself.
    """
    ((x, y, depth),) = project_points([point_world], camera_matrix, params)
    if params.projection == "PERSP" and not depth > 0:
        raise ValueError(
            f"Point {tuple(round(float(c), 4) for c in point_world)} is behind the camera; "
            "move it in front of the camera"
        )
    return x, y


def camera_frame_ray(x: float, y: float, camera_matrix: Any, params: CameraParams) -> tuple[Vec3, Vec3]:
    """The world-space ray ``(origin, unit direction)`` that the camera sees at frame point ``(x, y)``.

    Perspective rays start at the camera; orthographic rays start on the camera's plane.
    """
    (x_axis, y_axis, z_axis), location = _camera_axes(camera_matrix)
    xmin, xmax, ymin, ymax = params.frame_bounds()
    plane_x = xmin + x * (xmax - xmin)
    plane_y = ymax - y * (ymax - ymin)
    if params.projection == "PERSP":
        origin = location
        direction = x_axis * plane_x + y_axis * plane_y - z_axis
    else:
        origin = location + x_axis * plane_x + y_axis * plane_y
        direction = z_axis * -1.0
    return origin, direction * (1.0 / direction.length)


def capture_size(
    resolution_x: float, resolution_y: float, pixel_aspect_x: float, pixel_aspect_y: float, longer_side: int
) -> tuple[int, int]:
    """Square-pixel image size with the render frame's shape and ``longer_side`` pixels on its longer side."""
    if longer_side < 1:
        raise ValueError(f"longer_side must be at least 1 pixel, got {longer_side}")
    width = resolution_x * pixel_aspect_x
    height = resolution_y * pixel_aspect_y
    if not (width > 0 and height > 0):
        raise ValueError(f"Render size must be positive, got {resolution_x}x{resolution_y}")
    if width >= height:
        return longer_side, max(1, round(longer_side * height / width))
    return max(1, round(longer_side * width / height)), longer_side


# --- the camera frame inside a viewport region -------------------------------------------------


def rect_from_corners(corners: Sequence[Sequence[float]]) -> FrameRect:
    """Bounding rectangle ``(xmin, ymin, xmax, ymax)`` of the frame's projected corners."""
    points = [(float(x), float(y)) for x, y in corners]
    xs, ys = [x for x, _ in points], [y for _, y in points]
    xmin, ymin, xmax, ymax = min(xs), min(ys), max(xs), max(ys)
    if not (xmax > xmin and ymax > ymin):
        raise ValueError(f"The camera frame has no area in the viewport: corners {[list(p) for p in points]}")
    return xmin, ymin, xmax, ymax


def region_to_frame(x: float, y: float, rect: FrameRect) -> tuple[float, float]:
    """Region pixel ``(x, y)`` (y up) -> frame coordinates (x right, y down)."""
    xmin, ymin, xmax, ymax = rect
    return (x - xmin) / (xmax - xmin), (ymax - y) / (ymax - ymin)


def frame_to_region(x: float, y: float, rect: FrameRect) -> tuple[float, float]:
    """Frame coordinates (x right, y down) -> region pixel ``(x, y)`` (y up)."""
    xmin, ymin, xmax, ymax = rect
    return xmin + x * (xmax - xmin), ymax - y * (ymax - ymin)


def clamp_to_frame(x: float, y: float) -> tuple[float, float]:
    """The nearest point of the frame ``[0, 1] x [0, 1]``."""
    return min(max(x, 0.0), 1.0), min(max(y, 0.0), 1.0)


def scene_camera(scene: Any) -> tuple[Any, CameraParams]:
    """``(world matrix, CameraParams)`` of a scene's active camera (duck-typed ``bpy.types.Scene``); the matrix
    is a copy (a ``mathutils.Matrix`` in Blender), so later edits of the camera do not move it.

    ValueError with a sentence the user can act on when there is no usable camera.
    """
    camera = scene.camera
    if camera is None:
        raise ValueError(
            "The scene has no active camera: select a camera and press Ctrl+Numpad 0 to make it the scene camera"
        )
    if camera.type != "CAMERA":
        raise ValueError(
            f"The scene camera {camera.name!r} is a {camera.type.lower()} object, not a camera; "
            "make a camera object the scene camera"
        )
    return camera.matrix_world.copy(), CameraParams.from_blender(camera.data, scene.render)
