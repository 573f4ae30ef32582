"""The ``preview`` engine: a weight-free, CPU-only image warp that drafts the motion of the drags.

It gives an artist an instant draft of the motion when no GPU or no weights are available, and it is
the baseline in evaluation. It is never presented as the Puppet-Master model: it only moves pixels
that are already in the image and invents nothing.

Method
------
Every frame is a *backward* map of the model image (for each output pixel, where to read in the
source), computed on a coarse 64 x 64 grid with moving-least-squares (MLS) rigid deformation
(Schaefer, McPhail and Warren, "Image Deformation Using Moving Least Squares", SIGGRAPH 2006, §2.3):

1. Control points. Each drag is a control point. Anchors are control points fixed in place: points
   of the object mask at least ``ANCHOR_RADIUS`` x the object size (the longer side of the mask's
   bounding box) from every position of every drag, so the parts of the object far from the drags
   stay still (part-level motion, not a translation of the whole object). All anchors together weigh
   as much as one drag, so that they hold the far parts without pulling a dragged part back, and each
   pulls over about ``ANCHOR_SOFTENING`` x the object size, so that single anchors do not dimple the
   motion around them.
2. MLS rigid map. At an output point v, with weights ``w_i = s_i / (|p_i - v|^2 + r_i^2)`` (drags:
   ``s = 1, r = 0``, so they are followed exactly; anchors: see above), the weighted
   centroids ``p*`` (output) and ``q*`` (source) and the best rotation ``R`` of the centred control
   points give ``f(v) = R (v - p*) + q*``; the angle of R is ``atan2(sum w_i p^_i x q^_i,
   sum w_i p^_i . q^_i)``, the closed form of the paper's rigid ``f_r``.
3. Small steps, composed. A single MLS map from frame n straight back to frame 0 folds over itself
   when a drag is long compared with the distance to the anchors (content would show twice). So the
   map of frame n is the map of frame n - 1 composed with one MLS step (or a few, when the drags
   jump) that takes the drags from their frame-n positions back to their frame-(n-1) positions. Each
   step is close to the identity and does not fold, so neither does their composition; and each step
   maps the drags exactly, so the pixel under a drag in frame n is the one under its start in frame 0.
4. Slide or turn. MLS rigid turns the part under a lone drag about the anchors, even when the drag
   goes straight (a lid pushed sideways would tilt by 25 degrees). So each drag's step is a blend of
   the MLS rigid map and a slide (the drags' moves, interpolated between drags with weights
   ``1 / d^2``), weighted by how much the drag's path turns: the largest angle between one of its
   moves and its chord, about half the angle of an arc. Up to ``STRAIGHT_TURNING`` the part slides,
   from ``CURVED_TURNING`` on it turns by MLS rigid alone (today's arms and hinges), between a
   smoothstep. The slide's share also fades with the falloff below, so that towards the still parts
   the anchored MLS map takes over and holds them.
5. Falloff. Each step's displacement is blended to zero by a smoothstep of the distance from the
   drags: full within ``FULL_MOTION_RADIUS`` x the object size, none beyond a further ``TRANSITION`` x
   the object size, so distant parts of the object stay exactly still.
6. Sampling. The coarse map is upsampled bilinearly to full resolution and the image is sampled
   bilinearly (numpy), reading white beyond its borders. The model image is white outside the object
   (``prepare_inputs`` segments it onto white), so the background stays white and the area a part
   moved away from shows background. Pixels whose displacement is negligible are copied unchanged, so
   frame 0, drags that do not move, and the still parts of the object equal the input exactly.

Limits
------
- The deformation is smooth: a dragged part moves, and the object between it and the still parts
  stretches, squashes or bends with it. Nothing separates along a seam (a drawer does not slide
  cleanly *out* of its cabinet) and nothing turns in 3-D. No occlusion: what a moved part uncovers is
  background, never the surface that was hidden behind it; a part moved over the object covers nothing
  either (the maps do not fold, so it squashes what is in its way). No shading or perspective change.
- A straight drag slides the part under it and a curved one turns it (MLS rigid turns the part about
  the still part, following the line from the anchors to the drag): so a straight drag on an arm or
  a hinged lid shifts it (bending what is between it and the still part) rather than swinging it;
  drag along an arc to swing it.
- The mask sets the object size (and so the falloff radii) and where the anchors go; what keeps the
  background still is that the model image is white there. Without a mask (an RGB input with neither
  alpha nor mask) the whole image is the "object" and the background bends with the drags.
- Every variation is the same video: there is no randomness.

Cost: a few milliseconds of MLS on the coarse grid per composition step and one full-resolution
bilinear resampling per frame; 14 frames at 256 x 256 take well under a second on two CPU cores.
"""

from __future__ import annotations

import math
import secrets
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from ..pipeline.inputs import frames_to_input, prepare_inputs
from .base import Cancelled, GenerationRequest, GenerationResult, ProgressCallback, request_settings

__all__ = ["PreviewEngine", "iter_warp_frames", "warp_preview"]

# Side of the coarse grid the backward maps are computed on before bilinear upsampling.
GRID_SIZE = 64
# Falloff of each step's motion, as fractions of the object size (the longer side of the mask's
# bounding box): full within FULL_MOTION_RADIUS of a drag, none beyond FULL_MOTION_RADIUS + TRANSITION.
FULL_MOTION_RADIUS = 0.4
TRANSITION = 0.4
# Anchors are mask points at least this far (x object size) from every position of every drag.
ANCHOR_RADIUS = 0.5
# Anchors pull over about this radius (x object size) rather than pinning single points.
ANCHOR_SOFTENING = 0.1
# At most this many anchors (picked far apart), together weighing ANCHOR_TOTAL_WEIGHT drags.
MAX_ANCHORS = 24
ANCHOR_TOTAL_WEIGHT = 1.0
# Largest drag move of one composition step, as a fraction of the object size; and a cap on steps.
MAX_STEP = 0.05
MAX_STEPS_PER_FRAME = 32
# A drag whose moves all stay within STRAIGHT_TURNING (radians) of its chord slides the part under it;
# one that turns by CURVED_TURNING or more (about half an arc's angle) moves it by MLS rigid, in between
# a blend.
STRAIGHT_TURNING = math.radians(2.0)
CURVED_TURNING = math.radians(10.0)
# Displacements below this (in pixels) count as none: the pixel is copied from the input.
STILL_EPSILON = 1e-3
# Squared distance (in pixels^2) added in the MLS weights, so a grid point on a control point is finite.
_WEIGHT_EPSILON = 1e-6


def _segment_distance(points: np.ndarray, start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """Distance from ``(..., 2)`` points to the segment ``start -> end`` (a point when they coincide)."""
    direction = end - start
    length_sq = float(direction @ direction)
    if length_sq == 0.0:
        return np.linalg.norm(points - start, axis=-1)
    t = np.clip(((points - start) @ direction) / length_sq, 0.0, 1.0)
    return np.linalg.norm(points - (start + t[..., None] * direction), axis=-1)


def _object_size(mask: np.ndarray) -> float:
    """Longer side of the mask's bounding box in pixels (the whole image when the mask is empty)."""
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return float(max(mask.shape))
    return float(max(rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1))


def _pick_anchors(mask: np.ndarray, tracks: Sequence[np.ndarray], min_distance: float) -> np.ndarray:
    """Up to MAX_ANCHORS mask points (pixel coordinates) at least ``min_distance`` from every drag position.

    Candidates are mask pixels on a coarse lattice; farthest-point sampling spreads the kept ones
    over the still part of the object.
    """
    size = mask.shape[0]
    step = max(1, size // 32)
    rows, cols = np.nonzero(mask[step // 2 :: step, step // 2 :: step])
    candidates = np.stack([cols, rows], axis=-1) * step + step // 2 + 0.5  # pixel centres
    if len(candidates) == 0:
        return np.zeros((0, 2))
    # distance to every drag's polyline over all frames
    distance = np.full(len(candidates), np.inf)
    for track in tracks:
        for start, end in zip(track[:-1], track[1:], strict=True):
            distance = np.minimum(distance, _segment_distance(candidates, start, end))
    candidates = candidates[distance >= min_distance]
    if len(candidates) <= MAX_ANCHORS:
        return candidates
    chosen = [0]
    nearest = np.linalg.norm(candidates - candidates[0], axis=-1)
    while len(chosen) < MAX_ANCHORS:
        index = int(np.argmax(nearest))
        chosen.append(index)
        nearest = np.minimum(nearest, np.linalg.norm(candidates - candidates[index], axis=-1))
    return candidates[chosen]


def _mls_rigid_backward(
    points: np.ndarray, targets: np.ndarray, sources: np.ndarray, weight_scale: np.ndarray, softening: np.ndarray
) -> np.ndarray:
    """MLS rigid deformation (Schaefer et al. 2006) mapping output points back into the source.

    Parameters:
        points: ``(N, 2)`` output points v.
        targets: ``(K, 2)`` control points p_i where they are in the output frame.
        sources: ``(K, 2)`` the same control points q_i where they are in the source image.
        weight_scale: ``(K,)`` factor s_i on each control point's weight ``w_i = s_i / (|p_i - v|^2 + r_i^2)``.
        softening: ``(K,)`` squared radius r_i^2 (pixels^2): 0 interpolates the control point exactly,
            more spreads its pull over about r_i instead of pinning a single point.

    Returns:
        ``(N, 2)`` source positions f(v).
    """
    # |p_i - v|^2 without an [N, K, 2] intermediate
    squared = (points**2).sum(-1)[:, None] - 2.0 * points @ targets.T + (targets**2).sum(-1)[None]  # [N, K]
    weights = weight_scale / (np.maximum(squared, 0.0) + softening + _WEIGHT_EPSILON)
    weights /= weights.sum(-1, keepdims=True)  # sum_i w_i = 1 from here on
    target_centroid = weights @ targets  # [N, 2]
    source_centroid = weights @ sources  # [N, 2]
    # with normalised weights: sum w (p - p*) . (q - q*) = sum w p . q - p* . q*, and alike for x
    dot = weights @ (targets * sources).sum(-1) - (target_centroid * source_centroid).sum(-1)
    cross = weights @ (targets[:, 0] * sources[:, 1] - targets[:, 1] * sources[:, 0]) - (
        target_centroid[:, 0] * source_centroid[:, 1] - target_centroid[:, 1] * source_centroid[:, 0]
    )
    angle = np.arctan2(cross, dot)  # atan2(0, 0) = 0: one control point, or no spread -> translation
    cos, sin = np.cos(angle), np.sin(angle)
    local = points - target_centroid
    rotated = np.stack([cos * local[:, 0] - sin * local[:, 1], sin * local[:, 0] + cos * local[:, 1]], axis=-1)
    return rotated + source_centroid


def _smoothstep(t: np.ndarray) -> np.ndarray:
    t = np.clip(t, 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _path_turning(track: np.ndarray) -> float:
    """How far (radians) a drag's path turns: the largest angle between one of its moves and its chord.

    0 for a straight drag (and for one that does not move); about half the arc's angle for a drag along
    a circular arc, whatever the arc's radius.
    """
    moves = np.diff(track, axis=0)
    chord = track[-1] - track[0]
    lengths = np.linalg.norm(moves, axis=-1)
    chord_length = float(np.linalg.norm(chord))
    moves = moves[lengths > max(1e-3 * lengths.sum(), 1e-9)]
    if len(moves) == 0 or chord_length < 1e-9:
        return 0.0 if len(moves) <= 1 else math.pi  # no move; or a drag that comes back to its start
    cross = chord[0] * moves[:, 1] - chord[1] * moves[:, 0]
    return float(np.abs(np.arctan2(cross, moves @ chord)).max())


def _rigidity(track: np.ndarray) -> float:
    """Share of MLS rigid (against a slide) in a drag's motion: 0 for a straight drag, 1 for a curved one."""
    return float(_smoothstep((_path_turning(track) - STRAIGHT_TURNING) / (CURVED_TURNING - STRAIGHT_TURNING)))


def _step_displacement(
    grid: np.ndarray,
    before: np.ndarray,
    after: np.ndarray,
    anchors: np.ndarray,
    full_radius: float,
    transition: float,
    anchor_softening: float,
    rigidity: np.ndarray,
) -> np.ndarray:
    """``(N, 2)`` backward displacement of one small step: drags at ``after`` (output) read from ``before``.

    MLS rigid with the drags as control points ``after -> before`` and the anchors fixed (softened over
    ``anchor_softening`` pixels, so that single anchors do not dimple the motion around them), blended
    with a slide (the drags' moves, interpolated between drags with weights ``1 / d^2``) by each drag's
    ``rigidity`` (1: MLS rigid only, 0: slide only; interpolated alike between drags), the slide's share
    also fading with the falloff; all times a falloff that is 1 within ``full_radius`` of any drag's
    step and 0 beyond ``full_radius + transition`` of all of them.
    """
    # a fuzzy union of the drags' falloffs: smooth between drags, where a minimum of distances has a crease
    still = np.ones(len(grid))
    for b, a in zip(before, after, strict=True):
        still *= _smoothstep((_segment_distance(grid, b, a) - full_radius) / transition)
    moving = 1.0 - still
    displacement = np.zeros_like(grid)
    slide_share = np.zeros(len(grid))
    if (rigidity < 1.0).any():
        squared = ((grid[:, None, :] - after[None]) ** 2).sum(-1)  # [N, K]
        weights = 1.0 / (squared + _WEIGHT_EPSILON)
        weights /= weights.sum(-1, keepdims=True)
        # the slide fades out towards the still parts faster than the motion does, so that there the
        # anchored MLS rigid map takes over and holds them
        slide_share = (weights @ (1.0 - rigidity)) * moving
        displacement = slide_share[:, None] * (weights @ (before - after))
    if (slide_share < 1.0).any():
        targets = np.concatenate([after, anchors])
        sources = np.concatenate([before, anchors])
        anchor_scale = ANCHOR_TOTAL_WEIGHT / len(anchors) if len(anchors) else 0.0
        weight_scale = np.concatenate([np.ones(len(after)), np.full(len(anchors), anchor_scale)])
        softening = np.concatenate([np.zeros(len(after)), np.full(len(anchors), anchor_softening**2)])
        rigid = _mls_rigid_backward(grid, targets, sources, weight_scale, softening) - grid
        displacement += (1.0 - slide_share)[:, None] * rigid
    return displacement * moving[:, None]


def _linear_weights(coordinates: np.ndarray, length: int) -> tuple[np.ndarray, np.ndarray]:
    """Lower sample index and fraction of bilinear interpolation at ``coordinates`` (in samples), clamped."""
    coordinates = np.clip(coordinates, 0.0, length - 1)
    lower = np.minimum(np.floor(coordinates).astype(np.int64), max(length - 2, 0))
    return lower, coordinates - lower


def _sample_bilinear(array: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Bilinear samples of an ``(H, W, C)`` array at sample coordinates ``x, y`` (clamped to the border)."""
    height, width = array.shape[:2]
    x0, fx = _linear_weights(x, width)
    y0, fy = _linear_weights(y, height)
    x1, y1 = np.minimum(x0 + 1, width - 1), np.minimum(y0 + 1, height - 1)
    fx, fy = fx[..., None], fy[..., None]
    top = array[y0, x0] * (1 - fx) + array[y0, x1] * fx
    bottom = array[y1, x0] * (1 - fx) + array[y1, x1] * fx
    return top * (1 - fy) + bottom * fy


def _upsample_matrix(size: int, grid_size: int) -> np.ndarray:
    """``(size, G)`` bilinear weights from G cell-centred samples to ``size`` pixel centres."""
    lower, fraction = _linear_weights((np.arange(size) + 0.5) * (grid_size / size) - 0.5, grid_size)
    matrix = np.zeros((size, grid_size))
    np.add.at(matrix, (np.arange(size), lower), 1.0 - fraction)
    np.add.at(matrix, (np.arange(size), np.minimum(lower + 1, grid_size - 1)), fraction)
    return matrix


def _coarse_backward_maps(tracks: Sequence[np.ndarray], mask: np.ndarray, grid_size: int) -> Iterator[np.ndarray]:
    """Per frame, the ``(G, G, 2)`` backward displacement (source - output, in pixels) on the coarse grid.

    The map of frame n is the map of frame n - 1 composed with small MLS steps from frame n's drag
    positions back to frame n - 1's (one step, or more when a drag moves more than ``MAX_STEP`` x the
    object size between frames). See the module docstring.

    Parameters:
        tracks: per drag, ``(F, 2)`` positions in pixels of the ``s x s`` model image.
        mask: ``(s, s)`` bool object mask.
        grid_size: side G of the coarse grid (cell centres of a G x G tiling of the image).
    """
    size = mask.shape[0]
    object_size = _object_size(mask)
    full_radius = FULL_MOTION_RADIUS * object_size
    transition = max(TRANSITION * object_size, 1.0)
    max_step = max(MAX_STEP * object_size, 0.5)
    anchors = _pick_anchors(mask, tracks, ANCHOR_RADIUS * object_size)
    anchor_softening = ANCHOR_SOFTENING * object_size
    rigidity = np.array([_rigidity(track) for track in tracks])

    cell = size / grid_size
    centres = (np.arange(grid_size) + 0.5) * cell
    grid = np.stack(np.meshgrid(centres, centres, indexing="xy"), axis=-1).reshape(-1, 2)  # [G*G, 2] (x, y)
    positions = np.stack(tracks, axis=1)  # [F, K, 2]
    displacement = np.zeros_like(grid)  # the identity map
    yield displacement.reshape(grid_size, grid_size, 2)
    for frame in range(1, len(positions)):
        previous, current = positions[frame - 1], positions[frame]
        moved = float(np.linalg.norm(current - previous, axis=-1).max())
        num_steps = 0 if moved < STILL_EPSILON else min(MAX_STEPS_PER_FRAME, math.ceil(moved / max_step))
        # drag configurations c_0 = previous ... c_m = current; map(c_j) = map(c_{j-1}) o step_j,
        # where step_j takes the drags from c_j back to c_{j-1}
        for step in range(1, num_steps + 1):
            before = previous + (current - previous) * ((step - 1) / num_steps)
            after = previous + (current - previous) * (step / num_steps)
            step_displacement = _step_displacement(
                grid, before, after, anchors, full_radius, transition, anchor_softening, rigidity
            )
            # map_new(v) = map_old(v + step(v)): read the old displacement where the step lands
            landed = (grid + step_displacement) / cell - 0.5  # pixels -> coarse sample coordinates
            old = displacement.reshape(grid_size, grid_size, 2)
            displacement = step_displacement + _sample_bilinear(old, landed[:, 0], landed[:, 1])
        yield displacement.reshape(grid_size, grid_size, 2)


def _check_warp_inputs(
    image: np.ndarray, mask: np.ndarray, trajectories: Sequence[np.ndarray]
) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """The image, the mask as bool and the trajectories as float64; ValueError naming what is wrong."""
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3 or image.shape[0] != image.shape[1]:
        raise ValueError(f"image must be a square uint8 (s, s, 3) array, got {image.dtype} {image.shape}")
    mask = np.asarray(mask)
    if mask.shape != image.shape[:2]:
        raise ValueError(f"mask must have shape {image.shape[:2]} to match the image, got {mask.shape}")
    if len(trajectories) == 0:
        raise ValueError("trajectories: expected at least one drag, got none")
    tracks = [np.asarray(track, dtype=np.float64) for track in trajectories]
    shapes = [track.shape for track in tracks]
    if len(set(shapes)) != 1 or len(shapes[0]) != 2 or shapes[0][1] != 2 or shapes[0][0] < 1:
        raise ValueError(f"trajectories must all have the same shape (F, 2) with F >= 1, got {shapes}")
    if not all(np.isfinite(track).all() for track in tracks):
        raise ValueError("trajectories must be finite")
    return image, mask.astype(bool), tracks


def iter_warp_frames(
    image: np.ndarray, mask: np.ndarray, trajectories: Sequence[np.ndarray], grid_size: int = GRID_SIZE
) -> Iterator[np.ndarray]:
    """Yield the frames of :func:`warp_preview` one at a time, so a caller can report progress and cancel."""
    image, mask, tracks = _check_warp_inputs(image, mask, trajectories)
    size = image.shape[0]
    tracks = [track * size for track in tracks]  # normalised -> pixels (continuous: 0..s)
    upsample = _upsample_matrix(size, grid_size)
    pixel_centres = np.arange(size) + 0.5
    # white beyond the image: one white pixel all round, and sampling clamps to it
    padded = np.pad(image.astype(np.float32), ((1, 1), (1, 1), (0, 0)), constant_values=255.0)

    for coarse in _coarse_backward_maps(tracks, mask, grid_size):
        if np.abs(coarse).max() < STILL_EPSILON:
            yield image.copy()
            continue
        # [G, G, 2] -> [s, s, 2]: the same bilinear interpolation along y, then along x
        along_y = (upsample @ coarse.reshape(grid_size, -1)).reshape(size, grid_size, 2)  # [s, G, 2]
        displacement = (along_y.transpose(0, 2, 1) @ upsample.T).transpose(0, 2, 1)  # [s, 2, s] -> [s, s, 2]
        # source pixel coordinates -> padded sample coordinates (pixel i's centre is i + 0.5; +1 for the pad)
        x = pixel_centres[None, :] + displacement[..., 0] + 0.5
        y = pixel_centres[:, None] + displacement[..., 1] + 0.5
        warped = np.clip(np.rint(_sample_bilinear(padded, x, y)), 0, 255).astype(np.uint8)
        still = (np.abs(displacement) < STILL_EPSILON).all(-1)
        yield np.where(still[..., None], image, warped)


def warp_preview(image: np.ndarray, mask: np.ndarray, trajectories: Sequence[np.ndarray]) -> np.ndarray:
    """Draft the drags' motion by warping the model image (MLS rigid, backward map; see the module docstring).

    Parameters:
        image: ``(s, s, 3)`` uint8 model image, object on white.
        mask: ``(s, s)`` bool object mask in the model image.
        trajectories: per drag, ``(F, 2)`` positions in normalised model-image coordinates
            (x right, y down, 0..1); position 0 is the drag's start.

    Returns:
        ``(F, s, s, 3)`` uint8 frames; frame 0 equals ``image``.
    """
    return np.stack(list(iter_warp_frames(image, mask, trajectories)))


class PreviewEngine:
    """The weight-free preview engine: the same inputs and outputs as the model, made by image warping.

    Parameters:
        reason: why this engine runs (e.g. ``"requested"``, or ``"no CUDA device"`` when the service
            falls back to it); reported by :meth:`describe`.
    """

    name = "preview"

    def __init__(self, reason: str = "requested") -> None:
        self.reason = reason

    def describe(self) -> dict[str, Any]:
        """Engine name, device, dtype, model identity and why this engine was chosen."""
        return {
            "engine": self.name,
            "device": "cpu",
            "dtype": "none",
            "model": "preview (image warping, no weights)",
            "reason": self.reason,
        }

    def generate(
        self,
        request: GenerationRequest,
        progress: ProgressCallback | None = None,
        cancel: threading.Event | None = None,
    ) -> GenerationResult:
        """Warp the model image along the drags; ``progress(n, F)`` after each frame, Cancelled between frames.

        The un-crop onto the input frame is reported as the "decoding" phase.
        """
        num_videos = request.num_videos
        if isinstance(num_videos, bool) or not isinstance(num_videos, int | np.integer) or num_videos < 1:
            raise ValueError(f"num_videos must be an integer of at least 1, got {num_videos!r}")
        # 1. crop the object and map the drags (ValueError for bad input propagates unchanged)
        started = time.perf_counter()
        inputs = prepare_inputs(
            request.image, request.drags, request.num_frames, request.mask, request.crop_scale, request.ease
        )
        image = np.asarray(inputs.image.convert("RGB"))
        timings = {"preprocess": time.perf_counter() - started}

        # 2. warp, one frame at a time, checking for cancel before each
        started = time.perf_counter()
        num_frames = inputs.num_frames
        warped_frames = iter_warp_frames(image, inputs.mask, inputs.trajectories)
        frames = []
        for index in range(num_frames):
            if cancel is not None and cancel.is_set():
                raise Cancelled(f"preview cancelled after {index} of {num_frames} frames")
            frames.append(next(warped_frames))
            if progress is not None:
                progress(index + 1, num_frames)
        crop = np.stack(frames)
        timings["warp"] = time.perf_counter() - started

        # 3. back onto the input frame
        if progress is not None:
            progress(num_frames, num_frames, "decoding")
        started = time.perf_counter()
        video = frames_to_input(crop, inputs)
        timings["postprocess"] = time.perf_counter() - started

        # the warp is deterministic: every variation is the same video (the same arrays, not copies)
        num_videos = int(num_videos)
        return GenerationResult(
            videos=[video] * num_videos,
            crops=[crop] * num_videos,
            crop_box=inputs.crop_box,
            image_trajectories=inputs.image_trajectories,
            # the warp ignores the seed; a null seed is still picked and reported, as every engine does
            seed=request.seed if request.seed is not None else secrets.randbits(32),
            engine=self.name,
            timings=timings,
            settings=request_settings(request)
            | {
                "variations": "identical: the preview warp is deterministic",
                "note": "preview engine: image warping of the input, not the Puppet-Master model",
            },
        )
