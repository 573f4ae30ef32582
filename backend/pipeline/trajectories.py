"""Drags as one position per frame, and the ``(1, F, K, 4)`` drag tensor Puppet-Master reads.

A drag arrives as points in normalised image coordinates (x right, y down, 0..1): 2 points are a
straight drag, more points a path, exactly one point per frame explicit timing. The published demo
turns a straight drag into a trajectory by linear interpolation over the frames (frame 0 = start,
last frame = end); paths are resampled by arc length, so the drag moves at constant speed along
them (Puppet-Master, arXiv 2408.04631, trains on real tracks, so curved trajectories are valid).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from numpy.typing import ArrayLike

EASES = ("linear", "ease-in-out")
MAX_DRAGS = 5


def _check_num_frames(num_frames: int) -> None:
    if isinstance(num_frames, bool) or not isinstance(num_frames, int | np.integer) or num_frames < 2:
        raise ValueError(f"num_frames must be an integer of at least 2, got {num_frames!r}")


def _as_point_array(points: ArrayLike, what: str) -> np.ndarray:
    """``points`` as a finite float64 ``(N, 2)`` array; ValueError naming ``what`` otherwise."""
    try:
        array = np.asarray(points, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{what} must be an (N, 2) array of numbers, got {points!r}") from error
    if array.ndim != 2 or array.shape[1] != 2:
        raise ValueError(f"{what} must have shape (N, 2), one (x, y) per point, got shape {array.shape}")
    finite = np.isfinite(array).all(axis=1)
    if not finite.all():
        index = int(np.flatnonzero(~finite)[0])
        raise ValueError(f"{what} has a non-finite point {index}: {tuple(array[index].tolist())}")
    return array


def smoothstep(t: np.ndarray) -> np.ndarray:
    """``3t^2 - 2t^3``: ease-in-out on ``[0, 1]``, symmetric, with zero speed at both ends."""
    return t * t * (3.0 - 2.0 * t)


def _sample_by_arc_length(path: np.ndarray, fractions: np.ndarray) -> np.ndarray:
    """Positions at ``fractions`` (0..1) of the path's length; ``(N, 2) -> (len(fractions), 2)``."""
    lengths = np.hypot(*np.diff(path, axis=0).T)
    # Repeated points add no length; dropping them keeps the arc-length axis strictly increasing.
    path = path[np.concatenate([[True], lengths > 0])]
    lengths = lengths[lengths > 0]
    if lengths.size == 0:
        return np.repeat(path[:1], len(fractions), axis=0)
    arc = np.concatenate([[0.0], np.cumsum(lengths)])
    targets = fractions * arc[-1]
    return np.stack([np.interp(targets, arc, path[:, 0]), np.interp(targets, arc, path[:, 1])], axis=-1)


def resample_drag(points: ArrayLike, num_frames: int, ease: str = "linear") -> np.ndarray:
    """One position per frame for a drag.

    Parameters:
        points: ``(N, 2)`` points. N == 2: a straight drag from the first point (frame 0) to the
            second (last frame). N == num_frames: explicit timing, returned as is. Other N >= 2: a
            path, resampled to ``num_frames`` positions evenly spaced by arc length, first point
            at frame 0 and last point at the last frame.
        num_frames: number of frames (>= 2).
        ease: ``"linear"`` or ``"ease-in-out"`` (smoothstep on the time parameter, so the drag
            starts and stops gently); applies to straight drags and paths, not to explicit timing.

    Returns:
        ``(num_frames, 2)`` float64 positions.
    """
    _check_num_frames(num_frames)
    if ease not in EASES:
        raise ValueError(f"Unknown ease {ease!r}; expected one of {', '.join(EASES)}")
    path = _as_point_array(points, "Drag points")
    if len(path) < 2:
        raise ValueError(f"A drag needs at least 2 points (start and end), got {len(path)}")
    if len(path) == num_frames:
        return path.copy()
    fractions = np.linspace(0.0, 1.0, num_frames)
    if ease == "ease-in-out":
        fractions = smoothstep(fractions)
    return _sample_by_arc_length(path, fractions)


def _check_inside(drags: Sequence[np.ndarray], width: float, height: float, where: str) -> None:
    """ValueError naming the first point of the first drag outside ``[0, width] x [0, height]``."""
    for drag_index, drag in enumerate(drags):
        outside = (drag[:, 0] < 0) | (drag[:, 0] > width) | (drag[:, 1] < 0) | (drag[:, 1] > height)
        if outside.any():
            point_index = int(np.flatnonzero(outside)[0])
            point = tuple(drag[point_index].tolist())
            raise ValueError(
                f"Drag {drag_index}, point {point_index} {point} lies outside {where} "
                f"(x in [0, {width:g}], y in [0, {height:g}]); move it onto the image"
            )


def validate_points_in_image(drags: Sequence[ArrayLike], width: float, height: float) -> list[np.ndarray]:
    """Check drags given in pixel coordinates of a ``width`` x ``height`` image.

    Every drag must be a finite ``(N, 2)`` array with every point in ``[0, width] x [0, height]``
    (pixel coordinates are continuous: ``(width, height)`` is the bottom-right image corner).
    ValueError names the drag index and the offending point. Returns the drags as float64 arrays.
    """
    arrays = [_as_point_array(drag, f"Drag {index}") for index, drag in enumerate(drags)]
    _check_inside(arrays, width, height, f"the {width:g}x{height:g} image")
    return arrays


def drags_to_model_tensor(trajectories: Sequence[ArrayLike], num_drags: int = MAX_DRAGS) -> torch.Tensor:
    """The model's drag tensor from per-frame trajectories in normalised model-image coordinates.

    Drag k in frame n is ``(xs, ys, xn, yn)``: its start ``trajectories[k][0]`` (the same in every
    frame) and its position ``trajectories[k][n]``. Slots beyond ``len(trajectories)`` are all zeros
    (no drag).

    Parameters:
        trajectories: one to ``num_drags`` arrays of shape ``(F, 2)``, all with the same F, every
            coordinate in [0, 1].
        num_drags: number of drag slots of the model (5 for the published weights).

    Returns:
        ``(1, F, num_drags, 4)`` float32 tensor.
    """
    if not 1 <= len(trajectories) <= num_drags:
        raise ValueError(f"Expected 1 to {num_drags} drags, got {len(trajectories)}")
    tracks = [_as_point_array(track, f"Drag {index}") for index, track in enumerate(trajectories)]
    frame_counts = [len(track) for track in tracks]
    if len(set(frame_counts)) != 1:
        raise ValueError(f"All drags must have the same number of frames, got {frame_counts}")
    _check_inside(tracks, 1.0, 1.0, "the model image in normalised coordinates")

    drags = np.zeros((1, frame_counts[0], num_drags, 4), dtype=np.float32)
    for slot, track in enumerate(tracks):
        drags[0, :, slot, :2] = track[0]  # start point, repeated in every frame
        drags[0, :, slot, 2:] = track  # position in frame n
    return torch.from_numpy(drags)
