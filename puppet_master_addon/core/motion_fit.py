"""Fit a part's rigid motion to point tracks seen through the camera (bpy-free; numpy, imported lazily).

Bake Motion samples surface points of a part at the video's first frame (their world positions are
known), the backend tracks their image positions through the frames, and this module finds, for each
frame, the rigid motion of the part that best explains where the camera saw them:

    X' = R (X - pivot) + pivot + T

with ``R`` and ``T`` constrained as the artist's rig allows: ``HINGE`` (rotation about a given axis
through the pivot), ``SLIDE`` (translation along a given axis), ``ROTATE`` (any rotation about the
pivot) or ``FREE`` (rotation about the pivot plus translation).

Per frame (nearest the reference frame first, so each starts from its neighbour's answer):

1. Start: the neighbour's motion, and a Kabsch alignment (Kabsch 1976; Umeyama 1991) of the points
   to their tracked image rays, each point taken at its reference depth, projected onto the
   constraint (this one finds the part after a jump between frames).
2. Levenberg-Marquardt on the reprojection error in pixels, iteratively reweighted: track confidence
   times a Huber weight (Huber 1964), so a few bad tracks cannot pull the part.
3. The start with the lowest robust cost wins.

Frames with too few confident tracks are interpolated from their neighbours; over time the motion
parameters (angle, travel, rotation vector) are smoothed with a local-linear Gaussian kernel, which
follows a steady motion without lag or flattening at the ends. Numpy is imported inside the functions
(some Blender builds lack it): importing this module never fails.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

CONSTRAINTS = ("HINGE", "SLIDE", "ROTATE", "FREE")
# Fewest confident tracks in a frame that determine each motion (with one to spare against noise).
MIN_POINTS = {"HINGE": 3, "SLIDE": 3, "ROTATE": 4, "FREE": 6}
_DEGREES_OF_FREEDOM = {"HINGE": 1, "SLIDE": 1, "ROTATE": 3, "FREE": 6}
MIN_CONFIDENCE = 0.3
HUBER_PX = 1.5  # residuals beyond this (pixels) count linearly, not squared
OUTLIER_PX = 6.0  # tracks further than this from the fitted motion are reported as outliers, not as error
LM_ITERATIONS = 30


class FitError(ValueError):
    """A part's motion cannot be recovered; the message says why and what to do."""


def numpy_missing() -> str:
    """A sentence for the user when this Blender has no numpy, else ``""``."""
    try:
        import numpy  # noqa: F401
    except ImportError:
        return "Bake Motion needs numpy, which this Blender build lacks; use a Blender build that ships numpy"
    return ""


@dataclass(frozen=True)
class PinholeView:
    """The scene camera as the fit needs it: world -> pixel coordinates of the video's frames.

    Parameters:
        rotation: 3x3, the camera's axes in world space (columns, unit length).
        location: the camera's position in world space.
        bounds: ``(xmin, xmax, ymin, ymax)`` of the frame in camera space (y up) on the plane at unit
            distance (perspective) or in scene units (orthographic), as ``CameraParams.frame_bounds``.
        perspective: False for an orthographic camera.
        width, height: size of the video's frames in pixels.
    """

    rotation: Any
    location: Any
    bounds: tuple[float, float, float, float]
    perspective: bool
    width: int
    height: int

    @classmethod
    def from_camera(cls, camera_matrix: Any, params: Any, width: int, height: int) -> PinholeView:
        """From a camera's 4x4 world matrix and its ``CameraParams`` (duck-typed)."""
        import numpy as np

        matrix = np.asarray(camera_matrix, dtype=np.float64)
        rotation = matrix[:3, :3] / np.linalg.norm(matrix[:3, :3], axis=0)
        return cls(
            rotation=rotation,
            location=matrix[:3, 3].copy(),
            bounds=tuple(float(value) for value in params.frame_bounds()),
            perspective=params.projection == "PERSP",
            width=int(width),
            height=int(height),
        )

    def _pixel_scale(self) -> tuple[float, float]:
        xmin, xmax, ymin, ymax = self.bounds
        return self.width / (xmax - xmin), self.height / (ymax - ymin)

    def project(self, points: Any) -> tuple[np.ndarray, np.ndarray]:
        """``(pixels (N, 2), depth (N,))`` of world points ``(N, 3)``; pixels x right, y down, 0..width."""
        import numpy as np

        local = (np.asarray(points, dtype=np.float64) - self.location) @ self.rotation  # [N, 3] camera space
        depth = -local[:, 2]
        plane = local[:, :2] / depth[:, None] if self.perspective else local[:, :2]
        xmin, _xmax, _ymin, ymax = self.bounds
        scale_x, scale_y = self._pixel_scale()
        return np.stack([(plane[:, 0] - xmin) * scale_x, (ymax - plane[:, 1]) * scale_y], axis=-1), depth

    def project_jacobian(self, points: Any) -> np.ndarray:
        """``(N, 2, 3)``: how each point's pixel position changes with its world position."""
        import numpy as np

        local = (np.asarray(points, dtype=np.float64) - self.location) @ self.rotation
        scale_x, scale_y = self._pixel_scale()
        jacobian = np.zeros((len(local), 2, 3))
        if self.perspective:
            depth = -local[:, 2]
            jacobian[:, 0, 0] = scale_x / depth
            jacobian[:, 0, 2] = scale_x * local[:, 0] / depth**2
            jacobian[:, 1, 1] = -scale_y / depth
            jacobian[:, 1, 2] = -scale_y * local[:, 1] / depth**2
        else:
            jacobian[:, 0, 0], jacobian[:, 1, 1] = scale_x, -scale_y
        return jacobian @ self.rotation.T  # d(camera space)/d(world) = rotation^T

    def rays(self, pixels: Any) -> tuple[np.ndarray, np.ndarray]:
        """World rays ``(origins (N, 3), unit directions (N, 3))`` through pixel positions ``(N, 2)``."""
        import numpy as np

        pixels = np.asarray(pixels, dtype=np.float64)
        xmin, _xmax, _ymin, ymax = self.bounds
        scale_x, scale_y = self._pixel_scale()
        plane = np.stack([xmin + pixels[:, 0] / scale_x, ymax - pixels[:, 1] / scale_y], axis=-1)
        if self.perspective:
            directions = np.concatenate([plane, -np.ones((len(plane), 1))], axis=1) @ self.rotation.T
            origins = np.repeat(self.location[None], len(plane), axis=0)
        else:
            origins = self.location + np.concatenate([plane, np.zeros((len(plane), 1))], axis=1) @ self.rotation.T
            directions = np.repeat(-self.rotation[:, 2][None], len(plane), axis=0)
        return origins, directions / np.linalg.norm(directions, axis=1, keepdims=True)


@dataclass
class PartMotion:
    """A part's fitted motion over the video's frames.

    Attributes:
        rotations: ``(F, 3, 3)`` world rotation about ``pivot`` per frame (identity at the reference).
        translations: ``(F, 3)`` world translation per frame.
        pivot: the world point the rotations turn about.
        constraint: which motions were allowed.
        values: per-frame hinge angle (radians) or slide travel (scene units); None otherwise.
        error_px: RMS reprojection error (pixels) over the confident tracks, all frames, outliers left out.
        frame_errors: ``(F,)`` the same per frame (NaN where a frame had too few tracks).
        outlier_fraction: share of the confident track positions further than ``OUTLIER_PX`` from the fit.
        points_used: sampled points confident at the reference frame.
        filled_frames: frames with too few confident tracks, interpolated from their neighbours.
    """

    rotations: np.ndarray
    translations: np.ndarray
    pivot: np.ndarray
    constraint: str
    values: np.ndarray | None
    error_px: float
    frame_errors: np.ndarray
    points_used: int
    outlier_fraction: float = 0.0
    filled_frames: list[int] = field(default_factory=list)

    def world_deltas(self) -> np.ndarray:
        """``(F, 4, 4)``: the motion of each frame as a matrix acting on world points (and world matrices)."""
        import numpy as np

        deltas = np.repeat(np.eye(4)[None], len(self.rotations), axis=0)
        deltas[:, :3, :3] = self.rotations
        deltas[:, :3, 3] = self.pivot - self.rotations @ self.pivot + self.translations
        return deltas


# --- rotations ------------------------------------------------------------------------------------


def _skew(vectors: np.ndarray) -> np.ndarray:
    """``(..., 3) -> (..., 3, 3)`` cross-product matrices: ``skew(a) @ b == cross(a, b)``."""
    import numpy as np

    x, y, z = vectors[..., 0], vectors[..., 1], vectors[..., 2]
    zero = np.zeros_like(x)
    return np.stack([np.stack([zero, -z, y], -1), np.stack([z, zero, -x], -1), np.stack([-y, x, zero], -1)], -2)


def rotation_from_vector(vector: Any) -> np.ndarray:
    """Rodrigues' formula: the rotation by ``|vector|`` radians about ``vector``."""
    import numpy as np

    vector = np.asarray(vector, dtype=np.float64)
    angle = float(np.linalg.norm(vector))
    if angle < 1e-12:
        return np.eye(3) + _skew(vector)
    k = _skew(vector / angle)
    return np.eye(3) + math.sin(angle) * k + (1 - math.cos(angle)) * (k @ k)


def rotation_to_vector(rotation: Any) -> np.ndarray:
    """The inverse of :func:`rotation_from_vector` (angle in 0..pi)."""
    import numpy as np

    rotation = np.asarray(rotation, dtype=np.float64)
    cosine = np.clip((np.trace(rotation) - 1) / 2, -1.0, 1.0)
    angle = math.acos(cosine)
    axis = np.array([rotation[2, 1] - rotation[1, 2], rotation[0, 2] - rotation[2, 0], rotation[1, 0] - rotation[0, 1]])
    if angle < 1e-6:
        return axis / 2
    if angle > math.pi - 1e-6:  # 180 degrees: the axis is the dominant column of R + I
        symmetric = (rotation + np.eye(3)) / 2
        column = symmetric[:, int(np.argmax(np.diag(symmetric)))]
        return angle * column / np.linalg.norm(column)
    return angle * axis / (2 * math.sin(angle))


def kabsch(source: Any, target: Any, weights: Any, translate: bool) -> tuple[np.ndarray, np.ndarray]:
    """The rotation (and translation) that best maps ``source`` onto ``target`` in the weighted
    least-squares sense (Kabsch 1976): ``(R, t)`` with ``target ~ R @ source + t``; ``t = 0`` unless ``translate``."""
    import numpy as np

    source, target = np.asarray(source, dtype=np.float64), np.asarray(target, dtype=np.float64)
    weights = np.asarray(weights, dtype=np.float64)
    weights = weights / weights.sum()
    source_mean = weights @ source if translate else np.zeros(3)
    target_mean = weights @ target if translate else np.zeros(3)
    covariance = ((target - target_mean) * weights[:, None]).T @ (source - source_mean)
    u, _s, vt = np.linalg.svd(covariance)
    sign = np.sign(np.linalg.det(u @ vt)) or 1.0
    rotation = u @ np.diag([1.0, 1.0, sign]) @ vt
    return rotation, target_mean - rotation @ source_mean


# --- one frame ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Model:
    """The motion model of one fit: constraint, pivot and (for hinge and slide) the world axis."""

    constraint: str
    pivot: np.ndarray
    axis: np.ndarray | None

    def apply(self, rotation: np.ndarray, translation: np.ndarray, points: np.ndarray) -> np.ndarray:
        return (points - self.pivot) @ rotation.T + self.pivot + translation

    def jacobian(self, rotation: np.ndarray, points: np.ndarray) -> np.ndarray:
        """``(N, 3, k)``: how the moved points change with a small update of the ``k`` free parameters."""
        import numpy as np

        turned = (points - self.pivot) @ rotation.T  # R (X - p)
        if self.constraint == "HINGE":
            return np.cross(self.axis, turned)[:, :, None]
        if self.constraint == "SLIDE":
            return np.broadcast_to(self.axis[None, :, None], (len(points), 3, 1))
        spin = -_skew(turned)  # d/d(omega) of exp(omega) R (X - p)
        if self.constraint == "ROTATE":
            return spin
        return np.concatenate([spin, np.broadcast_to(np.eye(3), (len(points), 3, 3))], axis=2)

    def update(self, rotation: np.ndarray, translation: np.ndarray, step: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        import numpy as np

        if self.constraint == "HINGE":
            return rotation_from_vector(self.axis * step[0]) @ rotation, translation
        if self.constraint == "SLIDE":
            return rotation, translation + self.axis * step[0]
        rotation = rotation_from_vector(step[:3]) @ rotation
        return rotation, translation + (step[3:] if self.constraint == "FREE" else np.zeros(3))

    def constrain(self, rotation: np.ndarray, translation: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The nearest motion this model allows (for a Kabsch start)."""
        import numpy as np

        if self.constraint == "HINGE":
            return rotation_from_vector(self.axis * self.angle(rotation)), np.zeros(3)
        if self.constraint == "ROTATE":
            return rotation, np.zeros(3)
        return rotation, translation

    def angle(self, rotation: np.ndarray) -> float:
        """The signed angle about the hinge axis of the rotation's component about it."""
        vector = rotation_to_vector(rotation)
        return float(vector @ self.axis)


def _robust_cost(residuals: np.ndarray, confidence: np.ndarray) -> float:
    """Sum of confidence-weighted Huber losses of residual vectors ``(N, 2)`` (pixels)."""
    import numpy as np

    norms = np.linalg.norm(residuals, axis=1)
    huber = np.where(norms <= HUBER_PX, 0.5 * norms**2, HUBER_PX * (norms - 0.5 * HUBER_PX))
    return float(confidence @ huber)


def _levenberg_marquardt(
    model: _Model,
    view: PinholeView,
    points: np.ndarray,
    observed: np.ndarray,
    confidence: np.ndarray,
    rotation: np.ndarray,
    translation: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, float]:
    """Refine one frame's motion; (rotation, translation, robust cost)."""
    import numpy as np

    def residuals_of(r: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        moved = model.apply(r, t, points)
        return view.project(moved)[0] - observed, moved

    residuals, moved = residuals_of(rotation, translation)
    cost = _robust_cost(residuals, confidence)
    damping = 1e-3
    for _ in range(LM_ITERATIONS):
        norms = np.linalg.norm(residuals, axis=1)
        weights = confidence * np.where(norms <= HUBER_PX, 1.0, HUBER_PX / np.maximum(norms, 1e-12))  # IRLS Huber
        jacobian = view.project_jacobian(moved) @ model.jacobian(rotation, points)  # [N, 2, k]
        normal = np.einsum("n,nai,naj->ij", weights, jacobian, jacobian)
        gradient = np.einsum("n,nai,na->i", weights, jacobian, residuals)
        improved = False
        while damping < 1e8:
            lhs = normal + damping * (np.diag(np.diag(normal)) + 1e-9 * np.eye(len(normal)))
            step = -np.linalg.solve(lhs, gradient)
            new_rotation, new_translation = model.update(rotation, translation, step)
            new_residuals, new_moved = residuals_of(new_rotation, new_translation)
            new_cost = _robust_cost(new_residuals, confidence)
            if np.isfinite(new_cost) and new_cost < cost:
                rotation, translation, residuals, moved = new_rotation, new_translation, new_residuals, new_moved
                improved, damping = cost - new_cost > 1e-10 * max(cost, 1.0), max(damping / 10, 1e-7)
                cost = new_cost
                break
            damping *= 10
        if not improved:
            break
    return rotation, translation, cost


def _kabsch_start(
    model: _Model, view: PinholeView, points: np.ndarray, observed: np.ndarray, confidence: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Each point placed on its tracked ray at its reference depth, then the best rigid motion onto those."""
    import numpy as np

    _pixels, depth = view.project(points)
    origins, directions = view.rays(observed)
    if view.perspective:
        along = depth / np.maximum(directions @ -view.rotation[:, 2], 1e-6)  # depth along the view axis -> range
        targets = origins + directions * along[:, None]
    else:
        targets = origins + directions * depth[:, None]
    if model.constraint == "SLIDE":  # no rotation to find: the mean offset along the axis
        travel = confidence @ ((targets - points) @ model.axis) / confidence.sum()
        return np.eye(3), model.axis * travel
    rotation, offset = kabsch(points - model.pivot, targets - model.pivot, confidence, model.constraint == "FREE")
    return model.constrain(rotation, offset)


def _fit_frame(
    model: _Model,
    view: PinholeView,
    points: np.ndarray,
    observed: np.ndarray,
    confidence: np.ndarray,
    previous: tuple[np.ndarray, np.ndarray],
) -> tuple[np.ndarray, np.ndarray]:
    """The best motion of one frame from two starts: the neighbour's motion (a smooth video) and Kabsch's
    (a jump between frames, as a video that skips most of a motion has)."""
    starts = (previous, _kabsch_start(model, view, points, observed, confidence))
    fits = [_levenberg_marquardt(model, view, points, observed, confidence, *start) for start in starts]
    rotation, translation, _cost = min(fits, key=lambda fitted: fitted[2])
    return rotation, translation


# --- over time ------------------------------------------------------------------------------------


def smooth_series(values: Any, valid: Any, sigma: float) -> np.ndarray:
    """Local-linear Gaussian smoothing of ``values`` ``(F, D)`` over frames, using only ``valid`` ones.

    Each frame's value is the intercept of a straight line fitted to the valid frames around it with
    Gaussian weights of ``sigma`` frames: a steady motion passes unchanged, ends are not pulled in,
    and invalid frames get the line of their neighbours. ``sigma`` 0 only fills invalid frames
    (linearly between valid ones, constant beyond them).
    """
    import numpy as np

    values = np.asarray(values, dtype=np.float64)
    valid = np.asarray(valid, dtype=bool)
    frames = np.arange(len(values), dtype=np.float64)
    if not valid.any():
        raise ValueError("no valid frame to smooth")
    if sigma <= 0:
        filled = values.copy()
        for column in range(values.shape[1]):
            filled[:, column] = np.interp(frames, frames[valid], values[valid, column])
        return filled
    smoothed = np.empty_like(values)
    for index, frame in enumerate(frames):
        offset = frames[valid] - frame
        weights = np.exp(-0.5 * (offset / sigma) ** 2)
        design = np.stack([np.ones_like(offset), offset], axis=1)  # [V, 2]: intercept, slope
        normal = design.T @ (design * weights[:, None])
        if np.linalg.cond(normal) > 1e8:  # one valid frame in reach: its value
            smoothed[index] = weights @ values[valid] / weights.sum()
            continue
        coefficients = np.linalg.solve(normal, design.T @ (values[valid] * weights[:, None]))
        smoothed[index] = coefficients[0]
    return smoothed


def _parameters(model: _Model, rotations: np.ndarray, translations: np.ndarray) -> np.ndarray:
    """``(F, D)`` numbers that describe the motions, continuous over time (for smoothing)."""
    import numpy as np

    if model.constraint == "HINGE":
        return np.unwrap([model.angle(rotation) for rotation in rotations])[:, None]
    if model.constraint == "SLIDE":
        return (translations @ model.axis)[:, None]
    vectors = np.array([rotation_to_vector(rotation) for rotation in rotations])
    return np.concatenate([vectors, translations], axis=1) if model.constraint == "FREE" else vectors


def _motions(model: _Model, parameters: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The inverse of :func:`_parameters`."""
    import numpy as np

    frames = len(parameters)
    if model.constraint == "HINGE":
        return np.array([rotation_from_vector(model.axis * value) for value in parameters[:, 0]]), np.zeros((frames, 3))
    if model.constraint == "SLIDE":
        return np.repeat(np.eye(3)[None], frames, axis=0), parameters[:, :1] * model.axis
    rotations = np.array([rotation_from_vector(vector) for vector in parameters[:, :3]])
    translations = parameters[:, 3:6] if model.constraint == "FREE" else np.zeros((frames, 3))
    return rotations, translations


def fit_part_motion(
    name: str,
    points: Any,
    tracks: Any,
    confidence: Any,
    view: PinholeView,
    pivot: Sequence[float],
    constraint: str = "FREE",
    axis: Sequence[float] | None = None,
    reference_frame: int = 0,
    smoothing: float = 0.5,
    min_confidence: float = MIN_CONFIDENCE,
) -> PartMotion:
    """The rigid motion of one part over the video.

    Parameters:
        name: the part's name, for messages.
        points: ``(N, 3)`` world positions of the tracked surface points at the reference frame.
        tracks: ``(N, F, 2)`` their positions in pixels of the video's frames (x right, y down).
        confidence: ``(N, F)`` 0..1 per track and frame.
        view: the camera.
        pivot: world point the part turns about (object origin, bone head).
        constraint: one of ``CONSTRAINTS``.
        axis: world direction of the hinge or slide (needed for those).
        reference_frame: the frame where the part is where ``points`` say (its motion is identity there).
        smoothing: Gaussian sigma in frames of the temporal smoothing (0: none).
        min_confidence: tracks below this confidence in a frame are not used there.

    FitError when too few points track (the message names the part and what to do).
    """
    import numpy as np

    if constraint not in CONSTRAINTS:
        raise ValueError(f"unknown constraint {constraint!r}; use one of {', '.join(CONSTRAINTS)}")
    points = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    tracks = np.asarray(tracks, dtype=np.float64)
    confidence = np.asarray(confidence, dtype=np.float64)
    if tracks.shape[:1] != (len(points),) or tracks.ndim != 3 or confidence.shape != tracks.shape[:2]:
        raise ValueError(
            f"points {points.shape}, tracks {tracks.shape} and confidence {confidence.shape} do not match "
            "(expected (N, 3), (N, F, 2) and (N, F))"
        )
    axis_vector = None
    if constraint in ("HINGE", "SLIDE"):
        if axis is None or not np.linalg.norm(axis) > 0:
            raise ValueError(f"a {constraint.lower()} needs an axis, got {axis!r}")
        axis_vector = np.asarray(axis, dtype=np.float64) / np.linalg.norm(axis)
    model = _Model(constraint, np.asarray(pivot, dtype=np.float64), axis_vector)
    frames = tracks.shape[1]
    needed = MIN_POINTS[constraint]

    usable = confidence >= min_confidence  # [N, F]
    usable &= usable[:, reference_frame : reference_frame + 1]
    counts = usable.sum(axis=0)
    good = counts >= needed
    if not good[reference_frame] or good.sum() * 2 < frames:
        tracked = int((usable.sum(axis=1) * 2 >= frames).sum())
        raise FitError(
            f"{name}: only {tracked} of {len(points)} sampled points could be followed through at least half "
            f"of the video, and a {constraint.lower()} fit needs {needed}. Make the part larger in the camera "
            "view, give it some surface texture, or check that the video shows it (not hidden or blurred)"
        )

    rotations = np.repeat(np.eye(3)[None], frames, axis=0)
    translations = np.zeros((frames, 3))
    for order in (range(reference_frame + 1, frames), range(reference_frame - 1, -1, -1)):
        previous = (np.eye(3), np.zeros(3))
        for frame in order:
            if not good[frame]:
                continue
            use = usable[:, frame]
            fitted = _fit_frame(model, view, points[use], tracks[use, frame], confidence[use, frame], previous)
            rotations[frame], translations[frame] = previous = fitted

    parameters = smooth_series(_parameters(model, rotations, translations), good, smoothing)
    parameters[reference_frame] = 0.0  # the reference pose is the part as it is
    rotations, translations = _motions(model, parameters)

    frame_errors = np.full(frames, np.nan)
    errors = []
    for frame in np.flatnonzero(good):
        use = usable[:, frame]
        moved = model.apply(rotations[frame], translations[frame], points[use])
        distances = np.linalg.norm(view.project(moved)[0] - tracks[use, frame], axis=1)
        inliers = distances[distances <= OUTLIER_PX]
        frame_errors[frame] = float(np.sqrt(np.mean(inliers**2))) if len(inliers) else math.nan
        errors.append(distances)
    distances = np.concatenate(errors)
    inliers = distances[distances <= OUTLIER_PX]
    values = parameters[:, 0].copy() if constraint in ("HINGE", "SLIDE") else None
    return PartMotion(
        rotations=rotations,
        translations=translations,
        pivot=model.pivot,
        constraint=constraint,
        values=values,
        error_px=float(np.sqrt(np.mean(inliers**2))) if len(inliers) else math.nan,
        frame_errors=frame_errors,
        points_used=int(usable[:, reference_frame].sum()),
        outlier_fraction=float(1.0 - len(inliers) / len(distances)),
        filled_frames=[int(frame) for frame in np.flatnonzero(~good)],
    )
