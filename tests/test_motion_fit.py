"""The add-on's bpy-free Bake Motion maths: the camera model, rigid fits under each constraint (with
noise and outliers), smoothing, refusals, the choice of points, and importing without numpy."""

from __future__ import annotations

import math
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from addon_core_loader import CORE_DIR, load_addon_core

motion_fit, camera, point_picking, bake_task = load_addon_core("motion_fit", "camera", "point_picking", "bake_task")

WIDTH, HEIGHT = 320, 240


def look_at(eye: tuple[float, float, float], target: tuple[float, float, float]) -> np.ndarray:
    """A camera world matrix at ``eye`` looking at ``target`` (Blender cameras look down their -Z)."""
    forward = np.subtract(target, eye) / np.linalg.norm(np.subtract(target, eye))
    right = np.cross(forward, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    matrix = np.eye(4)
    matrix[:3, 0], matrix[:3, 1], matrix[:3, 2], matrix[:3, 3] = right, np.cross(right, forward), -forward, eye
    return matrix


def make_view(projection: str = "PERSP", eye=(3.0, 1.2, 2.6)) -> motion_fit.PinholeView:
    params = camera.CameraParams(
        projection=projection, lens=40.0, ortho_scale=3.0, shift_x=0.03, resolution_x=WIDTH, resolution_y=HEIGHT
    )
    return motion_fit.PinholeView.from_camera(look_at(eye, (0.0, 0.0, 0.5)), params, WIDTH, HEIGHT)


def lid_points(rng: np.random.Generator, count: int = 40) -> np.ndarray:
    """Points on a 1 x 1 lid whose hinge runs along X through (0, 0.5, 0.6)."""
    return np.c_[rng.uniform(-0.5, 0.5, count), rng.uniform(-0.5, 0.5, count), np.full(count, 0.63)]


def observe(view, points: np.ndarray, motions: list[np.ndarray], rng, noise: float = 0.3) -> np.ndarray:
    """``(N, F, 2)`` pixel tracks of ``points`` moved by each 4x4 world motion, with Gaussian noise."""
    tracks = np.stack([view.project(points @ m[:3, :3].T + m[:3, 3])[0] for m in motions], axis=1)
    return tracks + rng.normal(0.0, noise, tracks.shape)


def about(pivot: np.ndarray, rotation: np.ndarray, translation=(0.0, 0.0, 0.0)) -> np.ndarray:
    motion = np.eye(4)
    motion[:3, :3] = rotation
    motion[:3, 3] = pivot - rotation @ pivot + np.asarray(translation)
    return motion


PIVOT = np.array([0.0, 0.5, 0.6])
X_AXIS = np.array([1.0, 0.0, 0.0])
ANGLES = np.radians(np.linspace(0.0, -65.0, 14) ** 1)


# ------------------------------------------------------------------------------------------------
# the camera model
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("projection", ["PERSP", "ORTHO"])
def test_view_projects_as_the_add_on_camera_does_and_rays_invert_it(projection: str) -> None:
    view = make_view(projection)
    points = np.random.default_rng(0).uniform(-0.6, 0.6, (30, 3)) + [0.0, 0.0, 0.5]
    pixels, depth = view.project(points)
    params = camera.CameraParams(
        projection=projection, lens=40.0, ortho_scale=3.0, shift_x=0.03, resolution_x=WIDTH, resolution_y=HEIGHT
    )
    frame, same_depth = camera.project_to_camera_frame(points, look_at((3.0, 1.2, 2.6), (0.0, 0.0, 0.5)), params)
    np.testing.assert_allclose(pixels, frame * [WIDTH, HEIGHT], atol=1e-9)
    np.testing.assert_allclose(depth, same_depth, atol=1e-9)
    origins, directions = view.rays(pixels)
    along = np.einsum("ni,ni->n", points - origins, directions)
    np.testing.assert_allclose(origins + directions * along[:, None], points, atol=1e-9)


@pytest.mark.parametrize("projection", ["PERSP", "ORTHO"])
def test_projection_jacobian_matches_finite_differences(projection: str) -> None:
    view = make_view(projection)
    points = np.random.default_rng(1).uniform(-0.5, 0.5, (5, 3))
    jacobian = view.project_jacobian(points)
    step = 1e-6
    for axis in range(3):
        shift = np.zeros(3)
        shift[axis] = step
        numeric = (view.project(points + shift)[0] - view.project(points - shift)[0]) / (2 * step)
        np.testing.assert_allclose(jacobian[:, :, axis], numeric, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("angle", [0.0, 1e-8, 0.4, 2.0, math.pi - 1e-9, math.pi])
def test_rotation_vectors_round_trip(angle: float) -> None:
    axis = np.array([0.3, -0.5, 0.81])
    axis /= np.linalg.norm(axis)
    rotation = motion_fit.rotation_from_vector(axis * angle)
    np.testing.assert_allclose(rotation @ rotation.T, np.eye(3), atol=1e-12)
    back = motion_fit.rotation_to_vector(rotation)
    np.testing.assert_allclose(motion_fit.rotation_from_vector(back), rotation, atol=1e-6)


def test_kabsch_recovers_a_rotation_and_translation() -> None:
    rng = np.random.default_rng(2)
    source = rng.normal(size=(20, 3))
    rotation = motion_fit.rotation_from_vector([0.4, -0.2, 0.9])
    target = source @ rotation.T + [0.5, -1.0, 2.0]
    found, offset = motion_fit.kabsch(source, target, np.ones(20), translate=True)
    np.testing.assert_allclose(found, rotation, atol=1e-10)
    np.testing.assert_allclose(offset, [0.5, -1.0, 2.0], atol=1e-10)


# ------------------------------------------------------------------------------------------------
# fits
# ------------------------------------------------------------------------------------------------


def hinge_observations(rng, view, outliers: int = 4):
    points = lid_points(rng)
    motions = [about(PIVOT, motion_fit.rotation_from_vector(X_AXIS * angle)) for angle in ANGLES]
    tracks = observe(view, points, motions, rng)
    tracks[:outliers, 5:] += rng.uniform(-25, 25, (outliers, len(ANGLES) - 5, 2))  # tracks that slid off
    return points, tracks


@pytest.mark.parametrize("constraint", ["HINGE", "ROTATE", "FREE"])
def test_fits_recover_a_hinged_lid_through_noise_and_outliers(constraint: str) -> None:
    rng = np.random.default_rng(3)
    view = make_view()
    points, tracks = hinge_observations(rng, view)
    fit = motion_fit.fit_part_motion(
        "Lid", points, tracks, np.ones(tracks.shape[:2]), view, PIVOT, constraint, X_AXIS, smoothing=0.5
    )
    angles = [np.linalg.norm(motion_fit.rotation_to_vector(rotation)) for rotation in fit.rotations]
    assert np.degrees(np.abs(np.asarray(angles) - np.abs(ANGLES))).max() < 1.0, np.degrees(angles)
    assert fit.error_px < 0.6, fit.error_px  # the noise is 0.3 px per axis; outliers are left out of it
    assert 0.0 < fit.outlier_fraction < 0.1
    assert np.abs(fit.translations).max() < (0.02 if constraint == "FREE" else 1e-12)
    if constraint == "HINGE":
        np.testing.assert_allclose(fit.values, ANGLES, atol=math.radians(0.5))


def test_a_hinge_that_jumps_between_frames_is_still_found() -> None:
    """A video that skips most of the opening between two frames: the neighbour's angle is far off."""
    rng = np.random.default_rng(10)
    view = make_view()
    points = lid_points(rng)
    angles = np.radians([0.0, -2.0, -4.0, -95.0, -97.0, -99.0])
    motions = [about(PIVOT, motion_fit.rotation_from_vector(X_AXIS * angle)) for angle in angles]
    tracks = observe(view, points, motions, rng, noise=0.2)
    fit = motion_fit.fit_part_motion(
        "Lid", points, tracks, np.ones(tracks.shape[:2]), view, PIVOT, "HINGE", X_AXIS, smoothing=0.0
    )
    np.testing.assert_allclose(fit.values, angles, atol=math.radians(0.5))


def test_slide_recovers_the_travel_along_its_axis() -> None:
    rng = np.random.default_rng(4)
    view = make_view(eye=(2.2, -3.2, 2.2))
    points = np.c_[rng.uniform(-0.45, 0.45, 30), np.full(30, -0.52), rng.uniform(0.3, 0.6, 30)]  # a drawer front
    axis = np.array([0.0, 1.0, 0.0])
    travel = np.linspace(0.0, -0.54, 14)
    tracks = observe(view, points, [about(np.zeros(3), np.eye(3), axis * s) for s in travel], rng)
    fit = motion_fit.fit_part_motion("Drawer", points, tracks, np.ones((30, 14)), view, (0, -0.52, 0.45), "SLIDE", axis)
    np.testing.assert_allclose(fit.values, travel, atol=0.01)
    np.testing.assert_allclose(fit.translations, travel[:, None] * axis, atol=0.01)
    np.testing.assert_allclose(fit.world_deltas()[:, :3, 3], fit.translations, atol=1e-12)


def test_orthographic_camera_fits_too() -> None:
    rng = np.random.default_rng(5)
    view = make_view("ORTHO")
    points, tracks = hinge_observations(rng, view, outliers=0)
    fit = motion_fit.fit_part_motion("Lid", points, tracks, np.ones(tracks.shape[:2]), view, PIVOT, "HINGE", X_AXIS)
    np.testing.assert_allclose(fit.values, ANGLES, atol=math.radians(1.0))


def test_low_confidence_tracks_are_ignored_and_thin_frames_interpolated() -> None:
    rng = np.random.default_rng(6)
    view = make_view()
    points, tracks = hinge_observations(rng, view, outliers=0)
    confidence = np.ones(tracks.shape[:2])
    tracks[:10, 3:] += 40.0  # wrong, but flagged as untrusted
    confidence[:10, 3:] = 0.1
    confidence[2:, 7] = 0.0  # frame 7: only 2 points left, too few for any fit
    fit = motion_fit.fit_part_motion("Lid", points, tracks, confidence, view, PIVOT, "HINGE", X_AXIS, smoothing=0.0)
    assert fit.filled_frames == [7] and math.isnan(fit.frame_errors[7])
    np.testing.assert_allclose(fit.values, ANGLES, atol=math.radians(0.7))
    assert fit.points_used == 40


def test_too_few_tracked_points_refuse_with_the_parts_name() -> None:
    rng = np.random.default_rng(7)
    view = make_view()
    points, tracks = hinge_observations(rng, view, outliers=0)
    confidence = np.zeros(tracks.shape[:2])
    confidence[:, 0] = 1.0
    confidence[:5, :] = 1.0
    with pytest.raises(motion_fit.FitError, match=r"Lid: only 5 of 40 sampled points .* a free fit needs 6"):
        motion_fit.fit_part_motion("Lid", points, tracks, confidence, view, PIVOT, "FREE")
    fit = motion_fit.fit_part_motion("Lid", points, tracks, confidence, view, PIVOT, "HINGE", X_AXIS)
    np.testing.assert_allclose(fit.values, ANGLES, atol=math.radians(1.5))  # 5 points do for one angle


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"constraint": "TWIST"}, "unknown constraint 'TWIST'"), ({"constraint": "HINGE"}, "a hinge needs an axis")],
)
def test_bad_fit_requests_are_named(kwargs: dict, message: str) -> None:
    rng = np.random.default_rng(8)
    view = make_view()
    points, tracks = hinge_observations(rng, view, outliers=0)
    with pytest.raises(ValueError, match=message):
        motion_fit.fit_part_motion("Lid", points, tracks, np.ones(tracks.shape[:2]), view, PIVOT, **kwargs)


def test_smoothing_keeps_a_steady_motion_and_fills_gaps() -> None:
    frames = np.arange(14, dtype=float)
    steady = np.stack([2.0 * frames, -frames + 3], axis=1)
    valid = np.ones(14, dtype=bool)
    valid[[0, 6, 13]] = False
    np.testing.assert_allclose(motion_fit.smooth_series(steady, valid, 1.0), steady, atol=1e-9)
    np.testing.assert_allclose(motion_fit.smooth_series(steady, valid, 0.0)[6], steady[6])
    noisy = steady + np.random.default_rng(9).normal(0, 0.5, steady.shape)
    smoothed = motion_fit.smooth_series(noisy, np.ones(14, dtype=bool), 1.5)
    assert np.abs(smoothed - steady).mean() < np.abs(noisy - steady).mean()


# ------------------------------------------------------------------------------------------------
# choosing points
# ------------------------------------------------------------------------------------------------


def test_ray_grid_and_interior_cells() -> None:
    grid, (columns, rows) = point_picking.ray_grid((-0.2, 0.1, 0.3, 0.5), 0.05)
    array = np.asarray(grid)
    assert len(grid) == columns * rows and (array >= 0).all() and array[:, 0].max() < 0.3
    hits = np.zeros((rows, columns), dtype=bool)
    hits[1:-1, 1:-1] = True
    inside = np.asarray(point_picking.interior_cells(hits.ravel().tolist(), (columns, rows))).reshape(rows, columns)
    assert inside[2:-2, 2:-2].all() and not inside[1].any() and not inside[:, 1].any()


def test_spread_indices_spread_out() -> None:
    square = [(x / 10, y / 10) for x in range(11) for y in range(11)]
    chosen = point_picking.spread_indices(square, 5)
    corners = {(0.0, 0.0), (0.0, 1.0), (1.0, 0.0), (1.0, 1.0)}
    assert square[chosen[0]] == (0.5, 0.5) and {square[i] for i in chosen[1:]} == corners
    assert point_picking.spread_indices(square[:2], 5) == [0, 1]


def test_drag_points_favour_motion_and_spread_over_parts() -> None:
    frames = np.linspace(0.0, 1.0, 14)[None, :, None]
    starts = np.array([[0.2, 0.5], [0.22, 0.5], [0.6, 0.5], [0.8, 0.3], [0.5, 0.9], [0.4, 0.4]])
    moves = np.array([[0.3, 0.0], [0.31, 0.0], [0.0, -0.1], [0.05, 0.0], [0.0, 0.3], [0.001, 0.0]])
    paths = starts[:, None, :] + moves[:, None, :] * frames
    parts = [0, 0, 1, 1, 2, 1]
    chosen = point_picking.pick_drag_points(paths, parts, 5)
    # part 0's most moving point (1), then part 1's (2); then the next that moves, apart from those (3).
    # Not 0 (beside 1), 4 (leaves the frame: y reaches 1.2), 5 (barely moves); part 2 has only point 4.
    assert chosen == [1, 2, 3], chosen
    assert point_picking.pick_drag_points(paths, parts, 1) == [1]
    assert point_picking.pick_drag_points(paths[:, :1], parts, 5) == []  # nothing moves in one frame


# ------------------------------------------------------------------------------------------------
# the worker task, and Blender builds without numpy
# ------------------------------------------------------------------------------------------------


def test_bake_task_reports_an_unreachable_backend() -> None:
    (client,) = load_addon_core("client")
    part = bake_task.PartSamples("Lid", [(0.5, 0.5)], [(0.0, 0.0, 0.0)], (0.0, 0.0, 0.0), None, "FREE")
    task = bake_task.BakeTask(
        client.BackendClient("http://127.0.0.1:9", timeout=2), "J" * 22, 0, [part], np.eye(4), None
    )
    outcome = task.run()
    assert "Cannot reach the Puppet Master backend" in outcome.error and not outcome.motions


def test_modules_import_without_numpy_and_say_so() -> None:
    """Blender builds without numpy: the Bake modules import, and numpy_missing() names the problem."""
    script = textwrap.dedent(
        f"""
        import sys
        sys.modules["numpy"] = None  # import numpy now raises ImportError
        sys.path.insert(0, {str(CORE_DIR.parent.parent / "tests")!r})
        from addon_core_loader import load_addon_core
        motion_fit, point_picking = load_addon_core("motion_fit", "point_picking")
        print(motion_fit.numpy_missing())
        """
    )
    completed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert completed.returncode == 0, completed.stderr
    assert "Bake Motion needs numpy, which this Blender build lacks" in completed.stdout
