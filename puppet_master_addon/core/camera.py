"""Camera-frame maths, bpy-free: world points <-> normalised camera-frame coordinates.

Frame coordinates are the add-on's drag convention: x to the right, y down, 0..1 over the render
frame of the camera (Blender's ``bpy_extras.object_utils.world_to_camera_view`` gives the same x
with y up). The projection follows Blender's ``BKE_camera_params_compute_viewplane``: the sensor
(or the orthographic scale) spans the fitted side of the frame, and the lens shift is measured in
units of that side.

Region rectangles (the camera frame as drawn in a 3D viewport looking through the camera) are
``(xmin, ymin, xmax, ymax)`` in region pixels, y up, as ``view3d_utils`` returns them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

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


def _camera_axes(camera_matrix: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """``(rotation 3x3 with unit columns, location)`` of a camera's world matrix.

    Blender renders through the camera's normalised matrix, so its scale is ignored here too.
    """
    matrix = np.asarray(camera_matrix, dtype=np.float64)
    if matrix.shape != (4, 4):
        raise ValueError(f"camera_matrix must be 4x4, got shape {matrix.shape}")
    rotation = matrix[:3, :3]
    norms = np.linalg.norm(rotation, axis=0)
    if not (norms > 0).all():
        raise ValueError("camera_matrix has a zero-scaled axis; the camera cannot be projected through")
    return rotation / norms, matrix[:3, 3]


def project_to_camera_frame(
    points_world: ArrayLike, camera_matrix: ArrayLike, params: CameraParams
) -> tuple[np.ndarray, np.ndarray]:
    """Project world points into the frame, vectorised.

    Returns ``(frame, depth)``: ``(N, 2)`` frame coordinates (x right, y down, 0..1 inside the
    frame) and ``(N,)`` distances in front of the camera along its view axis (a perspective point
    with ``depth <= 0`` is behind the camera and its frame coordinates mean nothing).
    """
    points = np.atleast_2d(np.asarray(points_world, dtype=np.float64))
    if points.shape[-1] != 3:
        raise ValueError(f"points_world must be (N, 3), got shape {points.shape}")
    rotation, location = _camera_axes(camera_matrix)
    local = (points - location) @ rotation  # [N, 3] world -> camera space (rotation is orthonormal)
    depth = -local[:, 2]
    plane = local[:, :2]
    if params.projection == "PERSP":
        with np.errstate(divide="ignore", invalid="ignore"):
            plane = plane / depth[:, None]
    xmin, xmax, ymin, ymax = params.frame_bounds()
    frame = np.stack([(plane[:, 0] - xmin) / (xmax - xmin), (ymax - plane[:, 1]) / (ymax - ymin)], axis=-1)
    return frame, depth


def world_to_camera_frame(
    point_world: Sequence[float], camera_matrix: ArrayLike, params: CameraParams
) -> tuple[float, float]:
    """Frame coordinates ``(x, y)`` (x right, y down, 0..1 over the frame) of one world point.

    ValueError when a perspective camera sees the point behind itself.
    """
    frame, depth = project_to_camera_frame([point_world], camera_matrix, params)
    if params.projection == "PERSP" and not depth[0] > 0:
        raise ValueError(
            f"Point {tuple(round(float(c), 4) for c in point_world)} is behind the camera; "
            "move it in front of the camera"
        )
    return float(frame[0, 0]), float(frame[0, 1])


def camera_frame_ray(
    x: float, y: float, camera_matrix: ArrayLike, params: CameraParams
) -> tuple[np.ndarray, np.ndarray]:
    """The world-space ray ``(origin, unit direction)`` that the camera sees at frame point ``(x, y)``.

    Perspective rays start at the camera; orthographic rays start on the camera's plane.
    """
    rotation, location = _camera_axes(camera_matrix)
    xmin, xmax, ymin, ymax = params.frame_bounds()
    plane_x = xmin + x * (xmax - xmin)
    plane_y = ymax - y * (ymax - ymin)
    if params.projection == "PERSP":
        origin = location.copy()
        direction = rotation @ np.array([plane_x, plane_y, -1.0])
    else:
        origin = location + rotation @ np.array([plane_x, plane_y, 0.0])
        direction = rotation @ np.array([0.0, 0.0, -1.0])
    return origin, direction / np.linalg.norm(direction)


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
    array = np.asarray(corners, dtype=np.float64).reshape(-1, 2)
    xmin, ymin = array.min(axis=0)
    xmax, ymax = array.max(axis=0)
    if not (xmax > xmin and ymax > ymin):
        raise ValueError(f"The camera frame has no area in the viewport: corners {array.tolist()}")
    return float(xmin), float(ymin), float(xmax), float(ymax)


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


def scene_camera(scene: Any) -> tuple[np.ndarray, CameraParams]:
    """``(world matrix, CameraParams)`` of a scene's active camera (duck-typed ``bpy.types.Scene``).

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
    return np.asarray(camera.matrix_world, dtype=np.float64), CameraParams.from_blender(camera.data, scene.render)
