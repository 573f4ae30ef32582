"""Drag resampling to one position per frame and the model's drag tensor."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from backend.pipeline.trajectories import drags_to_model_tensor, resample_drag, validate_points_in_image

# --- resample_drag --------------------------------------------------------------------------------


def test_straight_drag_is_linear_in_time() -> None:
    trajectory = resample_drag([[0.1, 0.2], [0.5, 0.8]], num_frames=14)
    assert trajectory.shape == (14, 2)
    np.testing.assert_array_equal(trajectory[0], [0.1, 0.2])
    np.testing.assert_array_equal(trajectory[-1], [0.5, 0.8])
    steps = np.diff(trajectory, axis=0)
    np.testing.assert_allclose(steps, np.broadcast_to([0.4 / 13, 0.6 / 13], (13, 2)), atol=1e-12)


def test_path_is_resampled_by_arc_length() -> None:
    # L-shape: 0.6 right, then 0.3 down (unequal legs, uneven input spacing, a repeated point)
    path = [[0.1, 0.1], [0.2, 0.1], [0.7, 0.1], [0.7, 0.1], [0.7, 0.4]]
    trajectory = resample_drag(path, num_frames=10)
    assert trajectory.shape == (10, 2)
    np.testing.assert_array_equal(trajectory[0], [0.1, 0.1])
    np.testing.assert_array_equal(trajectory[-1], [0.7, 0.4])
    # positions along the path are evenly spaced: 0.9 / 9 = 0.1 of arc length per frame
    along = np.where(trajectory[:, 1] <= 0.1 + 1e-12, trajectory[:, 0] - 0.1, 0.6 + trajectory[:, 1] - 0.1)
    np.testing.assert_allclose(np.diff(along), 0.1, atol=1e-12)
    # every point lies on one of the two legs
    on_path = np.isclose(trajectory[:, 1], 0.1) | np.isclose(trajectory[:, 0], 0.7)
    assert on_path.all()
    # away from the corner, straight-line steps equal the arc-length steps
    distances = np.linalg.norm(np.diff(trajectory, axis=0), axis=1)
    np.testing.assert_allclose(distances[:5], 0.1, atol=1e-12)
    np.testing.assert_allclose(distances[6:], 0.1, atol=1e-12)


def test_explicit_timing_is_returned_as_is() -> None:
    points = np.random.default_rng(0).uniform(size=(14, 2))
    trajectory = resample_drag(points, num_frames=14, ease="ease-in-out")
    np.testing.assert_array_equal(trajectory, points)
    assert trajectory is not points


def test_ease_in_out_is_symmetric_and_slower_at_the_ends() -> None:
    trajectory = resample_drag([[0.0, 0.5], [1.0, 0.5]], num_frames=14, ease="ease-in-out")
    x = trajectory[:, 0]
    assert x[0] == 0.0 and x[-1] == 1.0
    np.testing.assert_allclose(x + x[::-1], 1.0, atol=1e-12)  # symmetric about the middle
    steps = np.diff(x)
    assert (steps > 0).all()
    assert steps[0] < steps[6] and steps[-1] < steps[6]
    np.testing.assert_allclose(trajectory[:, 1], 0.5)


def test_ease_applies_to_paths_too() -> None:
    path = [[0.0, 0.0], [0.5, 0.0], [1.0, 0.0]]
    linear = resample_drag(path, num_frames=5)
    eased = resample_drag(path, num_frames=5, ease="ease-in-out")
    np.testing.assert_allclose(linear[:, 0], [0, 0.25, 0.5, 0.75, 1.0])
    np.testing.assert_allclose(eased[:, 0], [0, 0.15625, 0.5, 0.84375, 1.0])


def test_zero_length_drag_stays_put() -> None:
    trajectory = resample_drag([[0.3, 0.3], [0.3, 0.3], [0.3, 0.3]], num_frames=6)
    np.testing.assert_array_equal(trajectory, np.full((6, 2), 0.3))


@pytest.mark.parametrize(
    ("points", "num_frames", "ease", "message"),
    [
        ([[0.1, 0.1]], 14, "linear", "at least 2 points.*got 1"),
        ([], 14, "linear", "shape \\(N, 2\\).*\\(0,\\)"),
        ([[0.1, 0.1, 0.1], [0.2, 0.2, 0.2]], 14, "linear", "shape \\(N, 2\\).*\\(2, 3\\)"),
        ([0.1, 0.2], 14, "linear", "shape \\(N, 2\\).*\\(2,\\)"),
        ([[0.1, 0.1], [0.2, float("nan")]], 14, "linear", "non-finite point 1"),
        ([[0.1, 0.1], [float("inf"), 0.2]], 14, "linear", "non-finite point 1"),
        ([["a", "b"], [0.2, 0.2]], 14, "linear", "array of numbers"),
        ([[0.1, 0.1], [0.2, 0.2]], 14, "bounce", "Unknown ease 'bounce'"),
        ([[0.1, 0.1], [0.2, 0.2]], 1, "linear", "num_frames.*got 1"),
        ([[0.1, 0.1], [0.2, 0.2]], 2.5, "linear", "num_frames.*got 2.5"),
    ],
)
def test_resample_drag_errors(points: list, num_frames: int, ease: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        resample_drag(points, num_frames=num_frames, ease=ease)


# --- drags_to_model_tensor ------------------------------------------------------------------------


def test_model_tensor_layout_and_empty_slots() -> None:
    first = resample_drag([[0.2, 0.3], [0.6, 0.3]], num_frames=14)
    second = resample_drag([[0.5, 0.9], [0.5, 0.1]], num_frames=14)
    drags = drags_to_model_tensor([first, second])
    assert drags.shape == (1, 14, 5, 4) and drags.dtype == torch.float32
    for slot, trajectory in enumerate((first, second)):
        expected_start = np.broadcast_to(trajectory[0], (14, 2))
        np.testing.assert_allclose(drags[0, :, slot, :2].numpy(), expected_start, atol=1e-7)
        np.testing.assert_allclose(drags[0, :, slot, 2:].numpy(), trajectory, atol=1e-7)
    # frame 0: current position equals the start
    torch.testing.assert_close(drags[0, 0, :2, :2], drags[0, 0, :2, 2:])
    assert (drags[0, :, 2:] == 0).all()


def test_model_tensor_custom_slot_count() -> None:
    drags = drags_to_model_tensor([np.zeros((3, 2)) + 0.5], num_drags=2)
    assert drags.shape == (1, 3, 2, 4)
    assert (drags[0, :, 0] == 0.5).all() and (drags[0, :, 1] == 0).all()


def test_model_tensor_errors() -> None:
    track = np.full((14, 2), 0.5)
    with pytest.raises(ValueError, match="1 to 5 drags, got 6"):
        drags_to_model_tensor([track] * 6)
    with pytest.raises(ValueError, match="1 to 5 drags, got 0"):
        drags_to_model_tensor([])
    with pytest.raises(ValueError, match="same number of frames, got \\[14, 13\\]"):
        drags_to_model_tensor([track, track[:13]])
    outside = track.copy()
    outside[4] = (1.2, 0.5)
    with pytest.raises(ValueError, match="Drag 1, point 4 \\(1.2, 0.5\\) lies outside the model image"):
        drags_to_model_tensor([track, outside])
    negative = track.copy()
    negative[0, 1] = -0.01
    with pytest.raises(ValueError, match="Drag 0, point 0"):
        drags_to_model_tensor([negative])


# --- validate_points_in_image ---------------------------------------------------------------------


def test_validate_points_in_image_accepts_the_corners() -> None:
    drags = validate_points_in_image([[[0, 0], [1920, 1080]], [(10.5, 3.25), (20, 30), (5, 5)]], 1920, 1080)
    assert [drag.shape for drag in drags] == [(2, 2), (3, 2)]
    assert drags[0].dtype == np.float64


def test_validate_points_in_image_names_the_offending_point() -> None:
    drags = [[[10, 10], [20, 20]], [[5, 5], [1950, 20]]]
    with pytest.raises(ValueError, match="Drag 1, point 1 \\(1950.0, 20.0\\) lies outside the 1920x1080 image"):
        validate_points_in_image(drags, 1920, 1080)
    with pytest.raises(ValueError, match="Drag 0 has a non-finite point 1"):
        validate_points_in_image([[[1, 1], [float("nan"), 2]]], 1920, 1080)
    with pytest.raises(ValueError, match="Drag 0 must have shape"):
        validate_points_in_image([[1, 2, 3]], 1920, 1080)
