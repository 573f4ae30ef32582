"""Track query points through a video's frames: pyramidal Lucas-Kanade with a forward-backward check.

Bake Motion (the Blender add-on) samples surface points of the parts it bakes at the video's first
frame; this module follows them through the frames and says how far each position can be trusted,
so the add-on can fit each part's rigid motion to the confident ones.

Method (OpenCV's ``calcOpticalFlowPyrLK``, Bouguet's pyramidal Lucas-Kanade):

1. Frames become grey images; transparent pixels are composited over mid-grey first, so a plain or
   transparent background is one flat colour that never offers texture to lock onto.
2. Each point is followed frame to frame from the query frame (forwards and backwards in time), and
   every step is tracked back again: the forward-backward error (Kalal et al., "Forward-Backward
   Error: Automatic Detection of Tracking Failures", ICPR 2010) is small for a good track and large
   where the window slid off the part, hit an occlusion or saw no texture.
3. Frame-to-frame chaining drifts slowly; each chained position is then refined against the query
   frame itself (the template the point was defined on) whenever the two windows still agree
   (small forward-backward error of that direct match too), which removes the drift.
4. Confidence per point and frame: ``exp(-(fb / fb_scale)^2)`` of the step, multiplied along the chain,
   so it only falls; a point that fails (lost by LK, outside the frame, error beyond ``max_fb``) has
   confidence 0 from then on and keeps its last trusted position.

Coordinates in and out are normalised frame coordinates: x right, y down, 0..1 over the frame
(pixel centres at ``(i + 0.5) / width``), the convention of the HTTP API's drags.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from numpy.typing import ArrayLike
from PIL import Image

# Lucas-Kanade window (pixels) and pyramid levels: a 21 px window sees enough texture on a part of a
# 256-512 px video, and 3 levels follow motions of ~30 px per frame.
WINDOW = 21
LEVELS = 3
# Forward-backward error (pixels) at which a step's confidence falls to 1/e, and beyond which the
# point is lost.
FB_SCALE = 1.0
MAX_FB = 2.0
# The affine alignment against the query frame may move a chained position this far (pixels); further
# means it found something else.
REFINE_SHIFT = 3.0
AFFINE_ITERATIONS = 30
AFFINE_TOLERANCE = 0.005  # pixels
# Zero-normalised correlation of the aligned window with the query window: below MIN the point is lost,
# from GOOD on it is fully trusted.
MIN_CORRELATION = 0.6
GOOD_CORRELATION = 0.9
# Windows flatter than this (minimum eigenvalue of the gradient matrix, OpenCV's normalised units) are
# lost at once: there is nothing to track.
MIN_EIGEN = 1e-3
BACKGROUND_GREY = 0.5
_CRITERIA = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 100, 0.001)


@dataclass(frozen=True)
class Tracks:
    """Where each query point is in every frame.

    Attributes:
        positions: ``(N, F, 2)`` normalised frame coordinates (x right, y down).
        confidence: ``(N, F)`` in 0..1; 1 at the query frame, 0 once the point is lost.
        width, height: frame size in pixels.
        query_frame: the frame the query points were given on.
    """

    positions: np.ndarray
    confidence: np.ndarray
    width: int
    height: int
    query_frame: int = 0

    def to_json(self) -> dict[str, Any]:
        """The JSON of ``puppet-master track`` and ``POST /v1/jobs/{id}/tracks`` (rounded to 1/100 px)."""
        return {
            "width": self.width,
            "height": self.height,
            "num_frames": int(self.positions.shape[1]),
            "query_frame": self.query_frame,
            "tracks": np.round(self.positions, 6).tolist(),
            "confidence": np.round(self.confidence, 4).tolist(),
        }


def grey_frame(frame: np.ndarray) -> np.ndarray:
    """``(H, W)`` uint8 grey of an ``(H, W)``, ``(H, W, 3)`` or ``(H, W, 4)`` uint8 frame.

    Alpha is composited over mid-grey, so the transparent background is flat.
    """
    array = np.asarray(frame)
    if array.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 images, got dtype {array.dtype}")
    if array.ndim == 2:
        return np.ascontiguousarray(array)
    if array.ndim != 3 or array.shape[2] not in (3, 4):
        raise ValueError(f"frames must be (H, W), (H, W, 3) or (H, W, 4), got shape {array.shape}")
    luma = cv2.cvtColor(np.ascontiguousarray(array[..., :3]), cv2.COLOR_RGB2GRAY)  # ITU-R BT.601 weights
    if array.shape[2] == 3:
        return luma
    # luma is linear in the colours: compositing it is compositing the colours first
    alpha = array[..., 3].astype(np.float32) / 255.0
    grey = luma.astype(np.float32) * alpha + 255.0 * BACKGROUND_GREY * (1.0 - alpha)
    return np.clip(grey + 0.5, 0, 255).astype(np.uint8)


def load_frames(folder: str | os.PathLike[str]) -> list[np.ndarray]:
    """The PNG frames of ``folder`` in name order (``frame_0000.png``, ...), as uint8 arrays.

    FileNotFoundError when the folder is missing or holds no PNG; ValueError when sizes differ.
    """
    path = Path(folder)
    if not path.is_dir():
        raise FileNotFoundError(f"frames folder {str(path)!r} does not exist")
    files = sorted(path.glob("*.png"))
    if not files:
        raise FileNotFoundError(f"no PNG frames in {str(path)!r}; expected frame_0000.png, frame_0001.png, ...")
    return read_frames(files)


def read_frames(files: Sequence[str | os.PathLike[str]]) -> list[np.ndarray]:
    """The given image files as uint8 arrays; ValueError when their sizes differ."""
    frames = []
    for file in files:
        with Image.open(file) as image:
            frames.append(np.asarray(image.convert("RGBA" if "A" in image.getbands() else "RGB")))
    sizes = {frame.shape[:2] for frame in frames}
    if len(sizes) > 1:
        raise ValueError(f"the frames differ in size ({sorted(sizes)}); they must come from one video")
    return frames


def check_query_points(points: ArrayLike) -> np.ndarray:
    """``(N, 2)`` float array of query points inside the frame; ValueError naming the first bad one."""
    array = np.asarray(points, dtype=np.float64)
    if array.ndim != 2 or array.shape[1] != 2 or len(array) == 0:
        raise ValueError(f"points must be a non-empty list of [x, y] pairs, got shape {array.shape}")
    bad = ~np.isfinite(array).all(axis=1) | ((array < 0.0) | (array > 1.0)).any(axis=1)
    if bad.any():
        index = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"point {index} {array[index].tolist()} is outside the frame; points are normalised frame "
            "coordinates, x and y in 0..1"
        )
    return array


def _lk(previous: np.ndarray, following: np.ndarray, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One pyramidal Lucas-Kanade pass ``previous -> following``: (new points, found)."""
    moved, status, _error = cv2.calcOpticalFlowPyrLK(
        previous,
        following,
        points.astype(np.float32).reshape(-1, 1, 2),
        None,
        winSize=(WINDOW, WINDOW),
        maxLevel=LEVELS,
        criteria=_CRITERIA,
        minEigThreshold=MIN_EIGEN,
    )
    return moved.reshape(-1, 2).astype(np.float64), status.reshape(-1).astype(bool)


def _inside(points: np.ndarray, width: int, height: int) -> np.ndarray:
    """Whether OpenCV pixel positions lie on the frame (pixel i covers i - 0.5 .. i + 0.5)."""
    x, y = points[:, 0] + 0.5, points[:, 1] + 0.5
    return (x >= 0) & (x <= width) & (y >= 0) & (y <= height)


def _sample(image: np.ndarray, centres: np.ndarray, warps: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Bilinear samples ``(N, K)`` of ``image`` at ``centre + warp @ offset`` for each point's window."""
    where = centres[:, None, :] + np.einsum("nij,kj->nki", warps, offsets)  # [N, K, 2]
    maps = where.astype(np.float32)
    return cv2.remap(image, maps[..., 0], maps[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def _inverse_2x2(matrices: np.ndarray) -> np.ndarray:
    """Inverses of ``(N, 2, 2)`` matrices in closed form (numpy's batched ``inv`` costs ~1 ms a call here)."""
    a, b, c, d = matrices[:, 0, 0], matrices[:, 0, 1], matrices[:, 1, 0], matrices[:, 1, 1]
    determinant = a * d - b * c
    return np.stack([np.stack([d, -b], -1), np.stack([-c, a], -1)], -2) / determinant[:, None, None]


def _weighted_stats(patches: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Weighted mean and deviation ``(N,)`` of each row of ``patches`` ``(N, K)``."""
    mean = patches @ weights / weights.sum()
    deviation = np.sqrt(((patches - mean[:, None]) ** 2) @ weights / weights.sum())
    return mean, np.maximum(deviation, 1e-3)


def _normalised(patches: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Weighted zero mean and unit deviation per row, so brightness and contrast changes (shading as a
    part turns) cancel, and the weighted mean of a product of two such rows is their correlation."""
    mean, deviation = _weighted_stats(patches, weights)
    return (patches - mean[:, None]) / deviation[:, None]


class _Templates:
    """The query points' windows on the query frame, ready for inverse-compositional affine alignment.

    Baker & Matthews, "Lucas-Kanade 20 Years On: A Unifying Framework" (IJCV 2004), section 3.2: the
    steepest-descent images and the Hessian are computed once, on the template.
    """

    def __init__(self, image: np.ndarray, centres: np.ndarray) -> None:
        radius = WINDOW // 2
        steps = np.arange(-radius, radius + 1, dtype=np.float64)
        grid_y, grid_x = np.meshgrid(steps, steps, indexing="ij")
        self.offsets = np.stack([grid_x.ravel(), grid_y.ravel()], axis=-1)  # [K, 2], x then y
        # a Gaussian weight: the centre matters most, the window's rim (maybe background) least
        self.weights = np.exp(-(self.offsets**2).sum(axis=1) / (2 * (radius / 2) ** 2))
        identity = np.broadcast_to(np.eye(2), (len(centres), 2, 2))
        raw = _sample(image, centres, identity, self.offsets)  # [N, K]
        mean, deviation = _weighted_stats(raw, self.weights)
        self.patches = (raw - mean[:, None]) / deviation[:, None]  # as _normalised, keeping the deviation
        deviation = deviation[:, None]

        def derivative(step: tuple[float, float]) -> np.ndarray:  # central difference of the normalised window
            ahead = _sample(image, centres + step, identity, self.offsets)
            behind = _sample(image, centres - np.asarray(step), identity, self.offsets)
            return (ahead - behind) / deviation

        gx, gy = derivative((0.5, 0.0)), derivative((0.0, 0.5))  # [N, K] each
        x, y = self.offsets[:, 0], self.offsets[:, 1]
        # steepest-descent images for the affine warp p = (a11, a12, a21, a22, dx, dy)
        self.steepest = np.stack([gx * x, gx * y, gy * x, gy * y, gx, gy], axis=-1)  # [N, K, 6]
        weighted = self.steepest * self.weights[None, :, None]
        hessian = np.einsum("nki,nkj->nij", weighted, self.steepest)  # [N, 6, 6]
        self.inverse_hessian = np.linalg.pinv(hessian)

    def align(
        self, which: np.ndarray, image: np.ndarray, centres: np.ndarray, warps: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Align templates ``which`` in ``image`` from the guesses; (centres, warps, zero-normalised correlation)."""
        patches, steepest, inverse_hessian = self.patches[which], self.steepest[which], self.inverse_hessian[which]
        centres, warps = centres.copy(), warps.copy()
        active = np.ones(len(centres), dtype=bool)
        for _ in range(AFFINE_ITERATIONS):
            if not active.any():
                break
            index = np.flatnonzero(active)
            warped = _normalised(_sample(image, centres[index], warps[index], self.offsets), self.weights)
            error = (warped - patches[index]) * self.weights  # [n, K]
            gradient = np.einsum("nkj,nk->nj", steepest[index], error)  # [n, 6]
            step = np.einsum("nij,nj->ni", inverse_hessian[index], gradient)
            # W <- W o W(step)^-1: A' = A (I + dA)^-1, c' = c - A' d
            new_warps = warps[index] @ _inverse_2x2(step[:, :4].reshape(-1, 2, 2) + np.eye(2))
            centres[index] = centres[index] - np.einsum("nij,nj->ni", new_warps, step[:, 4:])
            warps[index] = new_warps
            active[index] = np.abs(step[:, 4:]).max(axis=1) > AFFINE_TOLERANCE
        warped = _normalised(_sample(image, centres, warps, self.offsets), self.weights)
        correlation = (warped * patches * self.weights).sum(axis=1) / self.weights.sum()
        return centres, warps, correlation


def _follow(
    greys: Sequence[np.ndarray],
    images: Sequence[np.ndarray],
    templates: _Templates,
    order: Sequence[int],
    start: np.ndarray,
    positions: np.ndarray,
    confidence: np.ndarray,
) -> None:
    """Follow the points along the frame indices ``order`` (from the query frame), filling positions/confidence."""
    height, width = greys[0].shape
    current, trust = start.copy(), np.ones(len(start))
    warps = np.repeat(np.eye(2)[None], len(start), axis=0)
    for previous, frame in zip(order[:-1], order[1:], strict=True):
        alive = np.flatnonzero(trust > 0)
        if len(alive):
            # 1. frame to frame, coarse to fine: finds large motions; tracked back for its consistency
            moved, found = _lk(greys[previous], greys[frame], current[alive])
            back, found_back = _lk(greys[frame], greys[previous], moved)
            consistency = np.linalg.norm(back - current[alive], axis=1)
            # 2. against the query frame's window, affine: no drift, and turning or foreshortened parts fit
            refined, new_warps, correlation = templates.align(alive, images[frame], moved, warps[alive])
            shift = np.linalg.norm(refined - moved, axis=1)
            ok = found & found_back & (consistency < MAX_FB) & (shift < REFINE_SHIFT)
            ok &= (correlation > MIN_CORRELATION) & _inside(refined, width, height)
            step = np.exp(-((consistency / FB_SCALE) ** 2)) * np.clip(
                (correlation - MIN_CORRELATION) / (GOOD_CORRELATION - MIN_CORRELATION), 0.0, 1.0
            )
            current[alive[ok]] = refined[ok]
            warps[alive[ok]] = new_warps[ok]
            trust[alive] = np.where(ok, np.minimum(trust[alive], step), 0.0)
        positions[:, frame] = current
        confidence[:, frame] = trust


def track_points(frames: Sequence[np.ndarray], points: ArrayLike, query_frame: int = 0) -> Tracks:
    """Follow ``points`` (normalised ``(N, 2)``, given on frame ``query_frame``) through ``frames``.

    ``frames`` are uint8 images of one size (grey, RGB or RGBA). See the module docstring for the method.
    """
    if len(frames) < 2:
        raise ValueError(f"tracking needs at least 2 frames, got {len(frames)}")
    if not 0 <= query_frame < len(frames):
        raise ValueError(f"query_frame {query_frame} is not a frame of this video (0..{len(frames) - 1})")
    query = check_query_points(points)
    greys = [grey_frame(frame) for frame in frames]
    height, width = greys[0].shape
    if any(grey.shape != (height, width) for grey in greys):
        raise ValueError("the frames differ in size; they must come from one video")
    scale = np.array([width, height], dtype=np.float64)
    start = query * scale - 0.5  # [N, 2] normalised -> OpenCV pixels (pixel i's centre at i)

    positions = np.zeros((len(query), len(frames), 2))
    confidence = np.zeros((len(query), len(frames)))
    positions[:, query_frame], confidence[:, query_frame] = start, 1.0
    images = [grey.astype(np.float32) for grey in greys]
    templates = _Templates(images[query_frame], start)
    for order in (range(query_frame, len(frames)), range(query_frame, -1, -1)):  # forwards, then backwards
        _follow(greys, images, templates, list(order), start, positions, confidence)
    return Tracks((positions + 0.5) / scale, confidence, width, height, query_frame)
