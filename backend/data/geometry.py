"""Camera and surface geometry for the data pipeline, in plain numpy (no ``bpy``).

Conventions shared by every file the pipeline writes:

- World space is Blender's: right-handed, Z up, scene units.
- Camera space is OpenCV's: x right, y down, z forward (the direction the camera looks).
  ``world_to_camera`` is the 4x4 matrix taking homogeneous world points into that space.
- Pixel coordinates ``(u, v)`` put ``(0, 0)`` at the top-left corner of the image and
  ``(W, H)`` at the bottom-right corner, so a pixel's centre is at ``(i + 0.5, j + 0.5)``.
  Normalised image coordinates are ``(u / W, v / H)``: x right, y down, 0..1 inside the image,
  the convention of the drags everywhere else in Puppet Master.
"""

from __future__ import annotations

import math

import numpy as np

# Blender cameras look down their local -Z with +Y up; OpenCV cameras look down +Z with y down.
BLENDER_TO_OPENCV_CAMERA = np.diag([1.0, -1.0, -1.0, 1.0])
# The cameras the pipeline adds: a 50 mm lens on a 36 mm sensor (about 40 degrees field of view).
LENS_MM = 50.0
SENSOR_WIDTH_MM = 36.0


def intrinsics_matrix(lens_mm: float, sensor_width_mm: float, width: int, height: int) -> np.ndarray:
    """The 3x3 pinhole matrix ``K`` (pixels) of a Blender camera with a horizontal sensor fit.

    Square pixels and no lens shift: the principal point is the image centre ``(W / 2, H / 2)``.
    """
    if lens_mm <= 0 or sensor_width_mm <= 0 or width <= 0 or height <= 0:
        raise ValueError(f"camera needs positive lens/sensor/size, got {lens_mm}, {sensor_width_mm}, {width}x{height}")
    focal_px = lens_mm / sensor_width_mm * width
    return np.array([[focal_px, 0.0, width / 2.0], [0.0, focal_px, height / 2.0], [0.0, 0.0, 1.0]])


def world_to_camera_from_blender(camera_matrix_world: np.ndarray) -> np.ndarray:
    """OpenCV world-to-camera 4x4 extrinsics from a Blender camera's ``matrix_world``."""
    return BLENDER_TO_OPENCV_CAMERA @ np.linalg.inv(np.asarray(camera_matrix_world, dtype=np.float64))


def look_at_matrix_world(position: np.ndarray, target: np.ndarray) -> np.ndarray:
    """A Blender camera ``matrix_world`` at ``position`` looking at ``target``, world Z up.

    The camera's local X is the image's right, local Y its up and local -Z the viewing direction.
    """
    position = np.asarray(position, dtype=np.float64)
    forward = np.asarray(target, dtype=np.float64) - position
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, [0.0, 0.0, 1.0])
    if np.linalg.norm(right) < 1e-8:  # looking straight up or down: any horizontal right works
        right = np.array([1.0, 0.0, 0.0])
    right /= np.linalg.norm(right)
    up = np.cross(right, forward)
    matrix = np.eye(4)
    matrix[:3, 0], matrix[:3, 1], matrix[:3, 2], matrix[:3, 3] = right, up, -forward, position
    return matrix


def orbit_positions(
    center: np.ndarray, distance: float, azimuths_deg: np.ndarray, elevations_deg: np.ndarray
) -> np.ndarray:
    """Camera positions ``(V, 3)`` on a sphere around ``center``; elevation above the XY plane."""
    azimuth, elevation = np.radians(azimuths_deg), np.radians(elevations_deg)
    offsets = np.stack(
        [np.cos(elevation) * np.cos(azimuth), np.cos(elevation) * np.sin(azimuth), np.sin(elevation)], axis=-1
    )
    return np.asarray(center, dtype=np.float64) + distance * offsets


def view_angles(
    num_views: int, rng: np.random.Generator, elevation_range_deg: tuple[float, float] = (5.0, 40.0)
) -> tuple[np.ndarray, np.ndarray]:
    """Azimuths uniformly spaced around the object with a random offset, elevations uniform in a range."""
    offset = rng.uniform(0.0, 360.0 / num_views)
    azimuths = (offset + np.arange(num_views) * 360.0 / num_views) % 360.0
    elevations = rng.uniform(*elevation_range_deg, size=num_views)
    return azimuths, elevations


def framing_distance(radius: float, lens_mm: float, sensor_width_mm: float, margin: float = 1.1) -> float:
    """Distance at which a sphere of ``radius`` fits in the (square) view with ``margin`` to spare."""
    half_fov = math.atan(sensor_width_mm / 2.0 / lens_mm)
    return margin * radius / math.sin(half_fov)


def bounding_sphere(points: np.ndarray) -> tuple[np.ndarray, float]:
    """Centre (of the axis-aligned box) and radius of a sphere holding all ``(..., 3)`` points."""
    points = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    if points.size == 0:
        raise ValueError("bounding sphere of no points: the scene has no renderable mesh")
    center = (points.min(axis=0) + points.max(axis=0)) / 2.0
    radius = float(np.linalg.norm(points - center, axis=1).max())
    return center, max(radius, 1e-6)


def project_points(
    points: np.ndarray, intrinsics: np.ndarray, world_to_camera: np.ndarray, resolution: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """Project world points ``(..., 3)`` to normalised image coordinates ``(..., 2)`` and depths ``(...)``.

    Depth is the camera-space z (positive in front of the camera). Points behind the camera get
    coordinates too (mirrored); check ``depth > 0`` before trusting them.
    """
    points = np.asarray(points, dtype=np.float64)
    world_to_camera = np.asarray(world_to_camera, dtype=np.float64)
    camera = points @ world_to_camera[:3, :3].T + world_to_camera[:3, 3]  # [..., 3] camera space
    depth = camera[..., 2]
    safe_depth = np.where(np.abs(depth) < 1e-12, 1e-12, depth)
    pixels = camera @ np.asarray(intrinsics, dtype=np.float64).T  # [..., 3] homogeneous pixels
    uv = pixels[..., :2] / safe_depth[..., None]
    width, height = resolution
    return uv / np.array([width, height], dtype=np.float64), depth


def in_image(normalised: np.ndarray, depth: np.ndarray) -> np.ndarray:
    """True where a projected point is in front of the camera and inside the image."""
    inside = np.all((normalised >= 0.0) & (normalised <= 1.0), axis=-1)
    return inside & (depth > 0)


def triangle_areas(vertices: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """Areas ``(L,)`` of triangles ``(L, 3)`` (vertex indices) over ``vertices`` ``(V, 3)``."""
    corners = vertices[triangles]  # [L, 3, 3]
    return 0.5 * np.linalg.norm(np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]), axis=1)


def sample_surface_points(
    meshes: list[tuple[np.ndarray, np.ndarray]], count: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Area-weighted uniform points on a set of triangle meshes.

    Args:
        meshes: per mesh, world-space ``vertices`` ``(V, 3)`` and ``triangles`` ``(L, 3)`` (indices).
        count: number of points to draw.
        rng: the random generator (the sample is reproducible from its seed).

    Returns:
        ``mesh_index`` ``(count,)``, ``vertex_ids`` ``(count, 3)`` (the chosen triangle's vertices in
        that mesh) and ``barycentric`` ``(count, 3)`` weights: the point is
        ``sum_k barycentric[k] * vertices[vertex_ids[k]]`` in any frame with the same topology.
    """
    areas = [triangle_areas(vertices, triangles) for vertices, triangles in meshes]
    all_areas = np.concatenate(areas) if areas else np.zeros(0)
    total = float(all_areas.sum())
    if count <= 0 or total <= 0:
        raise ValueError(f"cannot sample {count} points on meshes of total area {total}: need positive both")
    chosen = rng.choice(all_areas.size, size=count, p=all_areas / total)
    offsets = np.cumsum([0] + [a.size for a in areas])
    mesh_index = np.searchsorted(offsets, chosen, side="right") - 1
    vertex_ids = np.stack([meshes[m][1][c - offsets[m]] for m, c in zip(mesh_index, chosen, strict=True)])
    # Uniform barycentrics (Osada et al. 2002): fold sqrt(r1) so the density is flat over the triangle.
    r1, r2 = np.sqrt(rng.random(count)), rng.random(count)
    barycentric = np.stack([1.0 - r1, r1 * (1.0 - r2), r1 * r2], axis=1)
    return mesh_index.astype(np.int64), vertex_ids.astype(np.int64), barycentric


def interpolate_points(vertices: np.ndarray, vertex_ids: np.ndarray, barycentric: np.ndarray) -> np.ndarray:
    """Surface points ``(N, 3)`` from a mesh's ``vertices`` and per-point triangle corners and weights."""
    return np.einsum("nk,nkc->nc", barycentric, vertices[vertex_ids])
