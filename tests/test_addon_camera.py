"""The add-on's bpy-free core: camera-frame maths, region mapping, drag paths, overlay geometry, PNG.

``puppet_master_addon/__init__.py`` imports bpy, so the ``core`` package is loaded on its own here
(under another name): these tests run where Blender's ``bpy`` module is not installed.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest

from tests.addon_core_loader import load_addon_core

camera, drag_paths, geometry, regions = load_addon_core("camera", "drag_paths", "overlay_geometry", "regions")
CameraParams = camera.CameraParams


def test_core_does_not_import_bpy() -> None:
    assert "bpy" not in vars(camera) and "bpy" not in vars(drag_paths) and "bpy" not in vars(geometry)


# --- projection, hand-computed ----------------------------------------------------------------------

IDENTITY = np.eye(4)  # camera at the origin looking down -Z, +Y up: Blender's camera space


def test_perspective_centre_and_edges() -> None:
    # 50 mm lens on a 36 mm sensor, landscape: at unit depth the frame spans x in +-0.36, y in +-0.2025.
    params = CameraParams(lens=50, sensor_width=36, resolution_x=1920, resolution_y=1080)
    assert params.frame_bounds() == pytest.approx((-0.36, 0.36, -0.2025, 0.2025))
    assert camera.world_to_camera_frame((0, 0, -10), IDENTITY, params) == pytest.approx((0.5, 0.5))
    assert camera.world_to_camera_frame((3.6, 0, -10), IDENTITY, params) == pytest.approx((1.0, 0.5))
    assert camera.world_to_camera_frame((-3.6, 0, -10), IDENTITY, params) == pytest.approx((0.0, 0.5))
    # y is down: a point above the axis is near the top (y -> 0)
    assert camera.world_to_camera_frame((0, 2.025, -10), IDENTITY, params) == pytest.approx((0.5, 0.0))
    assert camera.world_to_camera_frame((1.8, -1.0125, -5), IDENTITY, params) == pytest.approx((1.0, 1.0))


def test_lens_shift_is_in_units_of_the_fitted_side() -> None:
    params = CameraParams(lens=50, sensor_width=36, resolution_x=1920, resolution_y=1080, shift_x=0.1, shift_y=-0.1)
    # The frame moves by 0.1 * 0.72 at unit depth on both axes (the width is the fitted side).
    assert params.frame_bounds() == pytest.approx((-0.288, 0.432, -0.2745, 0.1305))
    x, y = camera.world_to_camera_frame((0, 0, -1), IDENTITY, params)
    assert x == pytest.approx(0.288 / 0.72)
    assert y == pytest.approx(0.1305 / 0.405)


def test_sensor_fit() -> None:
    portrait = CameraParams(lens=50, sensor_width=36, resolution_x=1080, resolution_y=1920)
    # AUTO fits the larger side (here the height) to the sensor width.
    assert portrait.frame_bounds() == pytest.approx((-0.2025, 0.2025, -0.36, 0.36))
    vertical = CameraParams(lens=50, sensor_fit="VERTICAL", sensor_height=24, resolution_x=200, resolution_y=100)
    assert vertical.frame_bounds() == pytest.approx((-0.48, 0.48, -0.24, 0.24))
    horizontal = CameraParams(lens=50, sensor_fit="HORIZONTAL", sensor_width=36, resolution_x=100, resolution_y=200)
    assert horizontal.frame_bounds() == pytest.approx((-0.36, 0.36, -0.72, 0.72))


def test_orthographic_and_pixel_aspect() -> None:
    ortho = CameraParams(projection="ORTHO", ortho_scale=4.0, resolution_x=200, resolution_y=100)
    assert camera.world_to_camera_frame((1.0, 0.5, -5.0), IDENTITY, ortho) == pytest.approx((0.75, 0.25))
    # depth does not matter, and points behind an orthographic camera still project
    assert camera.world_to_camera_frame((1.0, 0.5, 3.0), IDENTITY, ortho) == pytest.approx((0.75, 0.25))
    # 100x100 pixels twice as wide as tall show a 2:1 frame
    wide_pixels = CameraParams(
        projection="ORTHO", ortho_scale=2.0, resolution_x=100, resolution_y=100, pixel_aspect_x=2
    )
    assert wide_pixels.frame_bounds() == pytest.approx((-1.0, 1.0, -0.5, 0.5))


def test_camera_placement_and_scale() -> None:
    # Blender's default-looking camera: at (0, -10, 0), rotated 90 degrees about X, looking along +Y.
    rotation = np.array([[1, 0, 0], [0, 0, -1], [0, 1, 0]], dtype=float)
    matrix = np.eye(4)
    matrix[:3, :3] = rotation * 3.0  # scale is ignored, as Blender's renderer ignores it
    matrix[:3, 3] = (0, -10, 0)
    params = CameraParams(lens=50, sensor_width=36, resolution_x=1000, resolution_y=1000)
    assert camera.world_to_camera_frame((0, 0, 0), matrix, params) == pytest.approx((0.5, 0.5))
    # +Z world is up in this camera's view, +X to the right
    x, y = camera.world_to_camera_frame((1, 0, 1), matrix, params)
    assert x > 0.5 and y < 0.5
    assert x == pytest.approx(0.5 + 0.1 / 0.72)


def test_behind_the_camera_and_bad_params() -> None:
    params = CameraParams()
    with pytest.raises(ValueError, match="behind the camera"):
        camera.world_to_camera_frame((0, 0, 5), IDENTITY, params)
    frame, depth = camera.project_to_camera_frame([(0, 0, -2), (0, 0, 2)], IDENTITY, params)
    assert depth.tolist() == [2.0, -2.0]
    with pytest.raises(ValueError, match="PANO"):
        CameraParams(projection="PANO")
    with pytest.raises(ValueError, match="lens must be positive"):
        CameraParams(lens=0)
    with pytest.raises(ValueError, match="4x4"):
        camera.world_to_camera_frame((0, 0, -1), np.eye(3), params)


@pytest.mark.parametrize(
    "params",
    [
        CameraParams(lens=35, resolution_x=640, resolution_y=480, shift_x=0.2, shift_y=-0.05),
        CameraParams(lens=80, sensor_fit="VERTICAL", resolution_x=300, resolution_y=500, pixel_aspect_y=1.5),
        CameraParams(projection="ORTHO", ortho_scale=7.0, resolution_x=512, resolution_y=256, shift_y=0.3),
    ],
)
def test_ray_round_trip(params: CameraParams) -> None:
    rng = np.random.default_rng(0)
    angle = 0.7
    matrix = np.eye(4)
    matrix[:3, :3] = [[math.cos(angle), 0, math.sin(angle)], [0, 1, 0], [-math.sin(angle), 0, math.cos(angle)]]
    matrix[:3, 3] = (2.0, -1.0, 4.0)
    for x, y in rng.uniform(-0.2, 1.2, size=(10, 2)):
        origin, direction = camera.camera_frame_ray(x, y, matrix, params)
        assert np.linalg.norm(direction) == pytest.approx(1.0)
        for distance in (1.0, 7.5):
            assert camera.world_to_camera_frame(origin + distance * direction, matrix, params) == pytest.approx((x, y))


def test_from_blender_reads_camera_and_render() -> None:
    data = SimpleNamespace(
        type="ORTHO", lens=30.0, ortho_scale=3.0, sensor_fit="AUTO", sensor_width=36.0, sensor_height=24.0,
        shift_x=0.1, shift_y=0.2, clip_start=0.5, clip_end=50.0,
    )  # fmt: skip
    render = SimpleNamespace(resolution_x=640, resolution_y=360, pixel_aspect_x=1.0, pixel_aspect_y=1.0)
    params = CameraParams.from_blender(data, render)
    assert (params.projection, params.ortho_scale, params.shift_y, params.clip_start) == ("ORTHO", 3.0, 0.2, 0.5)
    scene = SimpleNamespace(camera=SimpleNamespace(type="CAMERA", matrix_world=np.eye(4), data=data), render=render)
    matrix, same = camera.scene_camera(scene)
    assert same == params and matrix.shape == (4, 4)
    with pytest.raises(ValueError, match="no active camera"):
        camera.scene_camera(SimpleNamespace(camera=None, render=render))
    with pytest.raises(ValueError, match="not a camera"):
        camera.scene_camera(SimpleNamespace(camera=SimpleNamespace(type="EMPTY", name="Target"), render=render))


def test_capture_size() -> None:
    assert camera.capture_size(1920, 1080, 1, 1, 512) == (512, 288)
    assert camera.capture_size(1080, 1920, 1, 1, 512) == (288, 512)
    assert camera.capture_size(100, 100, 2, 1, 64) == (64, 32)
    assert camera.capture_size(100, 100, 1, 1, 64) == (64, 64)
    with pytest.raises(ValueError):
        camera.capture_size(100, 100, 1, 1, 0)


# --- the camera frame inside a viewport region ------------------------------------------------------


def test_region_mapping() -> None:
    rect = camera.rect_from_corners([(300, 400), (300, 100), (100, 100), (100, 400)])
    assert rect == (100, 100, 300, 400)
    assert camera.region_to_frame(100, 400, rect) == pytest.approx((0.0, 0.0))  # top left
    assert camera.region_to_frame(300, 100, rect) == pytest.approx((1.0, 1.0))  # bottom right
    assert camera.region_to_frame(150, 325, rect) == pytest.approx((0.25, 0.25))
    for point in [(0.1, 0.9), (0.5, 0.5), (-0.2, 1.3)]:
        assert camera.region_to_frame(*camera.frame_to_region(*point, rect), rect) == pytest.approx(point)
    assert camera.clamp_to_frame(-0.5, 1.5) == (0.0, 1.0)
    with pytest.raises(ValueError, match="no area"):
        camera.rect_from_corners([(1, 1), (1, 1), (1, 1), (1, 1)])


# --- drag paths ---------------------------------------------------------------------------------------


def test_resample_polyline() -> None:
    path = drag_paths.resample_polyline([(0, 0), (1, 0), (1, 0), (3, 0)], 4)
    np.testing.assert_allclose(path, [[0, 0], [1, 0], [2, 0], [3, 0]])
    corner = drag_paths.resample_polyline([(0, 0), (1, 0), (1, 1)], 5)
    np.testing.assert_allclose(corner, [[0, 0], [0.5, 0], [1, 0], [1, 0.5], [1, 1]])
    assert drag_paths.resample_polyline([(2, 2), (2, 2)], 3).tolist() == [[2, 2]] * 3
    assert drag_paths.resample_polyline(np.zeros((4, 3)), 2).shape == (2, 3)
    with pytest.raises(ValueError):
        drag_paths.resample_polyline([(0, 0), (1, 1)], 1)


def test_normalise_path() -> None:
    assert drag_paths.normalise_path([(0.1, 0.2), (0.3, 0.4)]) == [(0.1, 0.2), (0.3, 0.4)]
    assert drag_paths.normalise_path([(0.1, 0.2)]) is None
    assert drag_paths.normalise_path([(0.1, 0.2), (0.1, 0.2), (0.1, 0.2)]) is None
    wiggle = [(0.1 + 0.001 * i, 0.5 + 0.01 * math.sin(i)) for i in range(200)]
    path = drag_paths.normalise_path(wiggle)
    assert len(path) == drag_paths.PATH_POINTS
    assert path[0] == pytest.approx(wiggle[0]) and path[-1] == pytest.approx(wiggle[-1])


def _drag(points, anchor=None, local=(0, 0, 0), use_anchor=True):
    return SimpleNamespace(
        points=[SimpleNamespace(co=p) for p in points], anchor_object=anchor, anchor_local=local, use_anchor=use_anchor
    )


def test_anchored_drag_follows_its_anchor() -> None:
    params = CameraParams(lens=50, sensor_width=36, resolution_x=1000, resolution_y=1000)
    anchor_matrix = np.eye(4)
    anchor_matrix[:3, 3] = (0.72, 0.0, -2.0)  # an object 2 units in front; local (0, 0, 0) -> x = 0.5 + 0.72/2/0.72
    anchor = SimpleNamespace(matrix_world=anchor_matrix)
    drag = _drag([(0.5, 0.5), (0.6, 0.4)], anchor)
    np.testing.assert_allclose(drag_paths.drag_frame_path(drag, IDENTITY, params), [(1.0, 0.5), (1.1, 0.4)])
    # not anchored, or no camera: the stored points
    assert drag_paths.drag_frame_path(_drag([(0.5, 0.5), (0.6, 0.4)], anchor, use_anchor=False), IDENTITY, params) == [
        (0.5, 0.5),
        (0.6, 0.4),
    ]
    assert drag_paths.drag_frame_path(drag, None, None) == [(0.5, 0.5), (0.6, 0.4)]
    anchor_matrix[:3, 3] = (0, 0, 3)
    with pytest.raises(ValueError, match="behind the camera"):
        drag_paths.drag_frame_path(drag, IDENTITY, params)


def test_check_api_drags() -> None:
    assert drag_paths.check_api_drags([[(0, 0), (1, 1)]], 5) == [[(0.0, 0.0), (1.0, 1.0)]]
    # within the tolerance the point is snapped onto the frame
    assert drag_paths.check_api_drags([[(-1e-6, 0.5), (1.0 + 1e-6, 0.5)]], 5) == [[(0.0, 0.5), (1.0, 0.5)]]
    with pytest.raises(ValueError, match="no enabled drags"):
        drag_paths.check_api_drags([], 5)
    with pytest.raises(ValueError, match="at most 5"):
        drag_paths.check_api_drags([[(0, 0), (1, 1)]] * 6, 5)
    with pytest.raises(ValueError, match="Drag 3 has 1 point"):
        drag_paths.check_api_drags([[(0, 0), (1, 1)], [(0.5, 0.5)]], 5, numbers=[1, 3])
    with pytest.raises(ValueError, match=r"Drag 2 leaves the camera frame at \(1\.200, 0\.500\)"):
        drag_paths.check_api_drags([[(0, 0), (1, 1)], [(0.5, 0.5), (1.2, 0.5)]], 5)


def test_nearest_path() -> None:
    lines = [[(0, 0), (10, 0)], [(0, 10), (10, 10)], [(50, 50)]]
    assert drag_paths.distance_to_polyline((5, 3), lines[0]) == pytest.approx(3)
    assert drag_paths.distance_to_polyline((-3, 4), lines[0]) == pytest.approx(5)
    assert drag_paths.nearest_path((5, 7), lines, max_distance=20) == 1
    assert drag_paths.nearest_path((52, 50), lines, max_distance=5) == 2
    assert drag_paths.nearest_path((30, 30), lines, max_distance=5) is None


def test_bezier_points() -> None:
    knots = [(0, 0, 0), (3, 0, 0)]
    # handles a third of the way along: the straight line at uniform speed
    points = drag_paths.bezier_points(knots, [(-1, 0, 0), (2, 0, 0)], [(1, 0, 0), (4, 0, 0)], resolution=3)
    np.testing.assert_allclose(points, [[0, 0, 0], [1, 0, 0], [2, 0, 0], [3, 0, 0]], atol=1e-12)
    square = [(0, 0), (1, 0), (1, 1)]
    cyclic = drag_paths.bezier_points(square, square, square, resolution=4, cyclic=True)
    assert len(cyclic) == 1 + 3 * 4 and cyclic[-1].tolist() == [0, 0]
    # a curved segment passes the Bernstein midpoint
    mid = drag_paths.bezier_points([(0, 0), (2, 0)], [(0, 0), (2, 2)], [(0, 2), (0, 0)], resolution=2)[1]
    assert mid.tolist() == pytest.approx([1.0, 1.5])


# --- overlay geometry ---------------------------------------------------------------------------------


def test_arrow_head_points_along_the_end() -> None:
    head = geometry.arrow_head([(0, 0), (50, 0), (100, 0)], size=10)
    assert head[0] == (100, 0)
    assert {tuple(np.round(p, 6)) for p in head[1:]} == {(90, 5), (90, -5)}
    # a jittery last sample does not twist the arrow: direction comes from >= size / 2 back
    head = geometry.arrow_head([(0, 0), (100, 0), (100.5, 1.0)], size=10)
    tip, left, right = np.array(head)
    direction = tip - (left + right) / 2
    assert abs(direction[1]) / np.linalg.norm(direction) < 0.02
    assert geometry.arrow_head([(5, 5), (5, 5)], size=10) is None


def test_trim_disc_label() -> None:
    assert geometry.trim_end([(0, 0), (10, 0), (20, 0)], 5) == [(0, 0), (10, 0), (15, 0)]
    assert geometry.trim_end([(0, 0), (10, 0), (12, 0)], 5) == [(0, 0), (7, 0)]
    assert geometry.trim_end([(0, 0), (1, 0)], 5) == [(0, 0)]
    tris = geometry.disc((10, 10), 2, segments=8)
    assert len(tris) == 24
    assert all(math.dist(p, (10, 10)) <= 2 + 1e-9 for p in tris)
    # the label sits behind the start, against the direction of travel
    assert geometry.label_position([(100, 100), (200, 100)], 12) == pytest.approx((88, 100))


def test_drag_geometry() -> None:
    rect = (100, 100, 300, 200)
    drag = geometry.drag_geometry([(0.0, 1.0), (1.0, 1.0)], rect, scale=2.0)
    assert drag.line[0] == (100, 100)
    assert drag.line[-1] == pytest.approx((286, 100))  # trimmed by half the 28 px arrow
    assert drag.triangles[-3] == (300, 100)  # the arrow tip is the drag's end
    assert len(drag.triangles) % 3 == 0
    assert geometry.drag_geometry([], rect) is None
    single = geometry.drag_geometry([(0.5, 0.5)], rect)
    assert single.line == [(200, 150)] and len(single.triangles) == 36  # just the start dot
    assert geometry.path_to_region([(0.5, 0.0)], rect) == [(200, 200)]


# --- what the pointer is over -------------------------------------------------------------------------


def test_pointer_over_the_sidebar_or_toolbar_is_not_over_the_picture() -> None:
    """Region overlap: the main region lies under the Sidebar and Toolbar; clicks there are theirs (issue 10, B)."""
    Rect = regions.Rect
    view = Rect(0, 0, 1000, 600)
    sidebar, toolbar, header = Rect(760, 0, 240, 576), Rect(0, 0, 44, 576), Rect(0, 576, 1000, 24)
    covering = [sidebar, toolbar, header]
    assert regions.pointer_over_view(500, 300, view, covering)
    assert not regions.pointer_over_view(880, 300, view, covering)  # on the Sidebar's drag list
    assert not regions.pointer_over_view(20, 300, view, covering)
    assert not regions.pointer_over_view(500, 590, view, covering)
    assert not regions.pointer_over_view(1200, 300, view, covering)  # another area
    assert regions.pointer_over_view(759, 300, view, covering)  # one pixel left of the Sidebar

    gizmo = regions.navigation_gizmo_rect(view, covering, gizmo_px=80, scale=1.0)
    assert gizmo.right == sidebar.x and gizmo.top == header.y  # top right, left of the Sidebar, under the header
    assert gizmo.width == 100 and gizmo.height == 80 + 4 * 28 + 20
    assert regions.navigation_gizmo_rect(view, [], gizmo_px=80, scale=2.0).right == view.right
