"""Per-animation motion features for curation, from the tracked points of ``render-animations``.

All lengths are relative to the object size: the diagonal of the points' bounding box at the first
frame. Time is in frames (the rendered frames, consecutive scene frames).
"""

from __future__ import annotations

import numpy as np

FEATURE_NAMES = ("motion_mean", "motion_max", "moving_fraction", "rigid_residual", "jerk", "visibility_change")
# A point moves when its largest displacement from the first frame exceeds this fraction of the object size.
MOVING_THRESHOLD = 0.02


def object_size(points: np.ndarray) -> float:
    """Diagonal of the bounding box of ``points`` ``(N, 3)``."""
    return float(np.linalg.norm(points.max(axis=0) - points.min(axis=0)))


def kabsch(source: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The rotation ``R`` (3x3) and translation ``t`` minimising ``sum ||R @ s + t - target||^2``.

    Kabsch (1976) / Umeyama (1991) without scaling: centre both sets, SVD of the cross-covariance,
    and flip the last singular direction if that would otherwise give a reflection.
    """
    source_center, target_center = source.mean(axis=0), target.mean(axis=0)
    covariance = (target - target_center).T @ (source - source_center)  # [3, 3]
    u, _, vt = np.linalg.svd(covariance)
    reflection = np.sign(np.linalg.det(u @ vt)) or 1.0
    rotation = u @ np.diag([1.0, 1.0, reflection]) @ vt
    return rotation, target_center - rotation @ source_center


def rigid_residual(positions: np.ndarray) -> float:
    """How much of the motion one rigid transform per frame cannot explain: 0 = whole-object rigid.

    For every frame t, fit one rigid transform taking all points at frame 0 to frame t (Kabsch);
    the result is ``sum_t rms(residual_t) / sum_t rms(displacement_t)`` over ``positions`` ``(T, N, 3)``:
    near 0 when the object moves as one rigid body, clearly above 0 when parts move relative to
    each other (or the object deforms). 0 for a static animation.
    """
    first = positions[0].astype(np.float64)
    residual_total = motion_total = 0.0
    for frame in positions[1:].astype(np.float64):
        rotation, translation = kabsch(first, frame)
        fitted = first @ rotation.T + translation
        residual_total += float(np.sqrt(np.mean(np.sum((frame - fitted) ** 2, axis=1))))
        motion_total += float(np.sqrt(np.mean(np.sum((frame - first) ** 2, axis=1))))
    return residual_total / motion_total if motion_total > 0 else 0.0


def jerk(positions: np.ndarray, points: np.ndarray | None = None) -> float:
    """Mean norm of the third finite difference of the tracks (per frame^3), ``(T, N, 3)`` in object sizes.

    ``points`` restricts the mean to some points (the moving ones, so that a large static part does
    not dilute a jerky small one). 0 with fewer than 4 frames or no points.
    """
    if points is not None:
        positions = positions[:, points]
    if positions.shape[0] < 4 or positions.shape[1] == 0:
        return 0.0
    third = positions[3:] - 3 * positions[2:-1] + 3 * positions[1:-2] - positions[:-3]  # [T-3, N, 3]
    return float(np.linalg.norm(third, axis=-1).mean())


def visibility_change(visibilities: list[np.ndarray]) -> float:
    """Fraction of points whose visibility flips at least once, averaged over views ``(T, N)`` each."""
    if not visibilities:
        return 0.0
    return float(np.mean([np.any(v[1:] != v[:-1], axis=0).mean() for v in visibilities]))


def animation_features(positions: np.ndarray, visibilities: list[np.ndarray]) -> dict[str, float]:
    """All curation features of one animation: ``positions`` ``(T, N, 3)``, ``visibilities`` per view."""
    positions = np.asarray(positions, dtype=np.float64) / max(object_size(positions[0]), 1e-12)
    displacement = np.linalg.norm(positions - positions[0], axis=-1).max(axis=0)  # [N] in object sizes
    moving = displacement > MOVING_THRESHOLD
    return {
        "motion_mean": float(displacement.mean()),
        "motion_max": float(displacement.max()),
        "moving_fraction": float(moving.mean()),
        "rigid_residual": rigid_residual(positions),
        "jerk": jerk(positions, np.flatnonzero(moving)),
        "visibility_change": visibility_change(visibilities),
    }
