"""The rigid 2-D motion of a part, fitted to the drags on it.

A drag is the path of one point of the part, so the part's motion must carry the drag's start along
that path: in frame n the part is turned by an angle theta_n and placed so that the start lands on
the drag's position n, ``x -> R(theta_n) (x - p_0) + p_n``. What is left to choose is the angle:

- one drag, straight: a slide, theta = 0 (a drawer pulled out, a lid pushed sideways);
- one drag, curved: the part turns about a pivot. The pivot is the centre of the circle fitted to the
  path (Kasa's algebraic fit), moved to the nearest point where the part meets the still parts (its
  hinge) when that point is within the circle's radius; theta_n is the angle the path has swept about
  the pivot by frame n. How curved a path is, is the largest angle between one of its moves and its
  chord (about half an arc's angle): up to ``STRAIGHT_TURNING`` it slides, from ``CURVED_TURNING`` on it
  turns fully, in between the angle is scaled by a smoothstep;
- two or more drags on one part whose starts are apart: the least-squares rotation that takes the
  starts to the positions (2-D Kabsch), placed so that their centroid follows the drags' centroid.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

STRAIGHT_TURNING = math.radians(2.0)
CURVED_TURNING = math.radians(10.0)
# Drags on one part whose starts are closer than this (pixels) count as one drag.
MIN_DRAG_SPREAD = 4.0


def _smoothstep(t: float) -> float:
    t = min(max(t, 0.0), 1.0)
    return t * t * (3.0 - 2.0 * t)


def path_turning(track: np.ndarray) -> float:
    """How far (radians) a drag's path turns: the largest angle between one of its moves and its chord.

    0 for a straight drag (and for one that does not move); about half the arc's angle for a drag along
    a circular arc, whatever the arc's radius; pi for a drag that comes back to its start.
    """
    moves = np.diff(track, axis=0)
    chord = track[-1] - track[0]
    lengths = np.linalg.norm(moves, axis=-1)
    chord_length = float(np.linalg.norm(chord))
    moves = moves[lengths > max(1e-3 * lengths.sum(), 1e-9)]
    if len(moves) == 0 or chord_length < 1e-9:
        return 0.0 if len(moves) <= 1 else math.pi
    cross = chord[0] * moves[:, 1] - chord[1] * moves[:, 0]
    return float(np.abs(np.arctan2(cross, moves @ chord)).max())


def fit_circle(points: np.ndarray) -> tuple[np.ndarray, float]:
    """Centre and radius of the least-squares circle through ``(N, 2)`` points (Kasa 1976)."""
    x, y = points[:, 0], points[:, 1]
    design = np.stack([x, y, np.ones_like(x)], axis=-1)
    solution, *_ = np.linalg.lstsq(design, x * x + y * y, rcond=None)
    centre = solution[:2] / 2.0
    return centre, math.sqrt(max(float(solution[2] + centre @ centre), 0.0))


def _signed_angles(start: np.ndarray, positions: np.ndarray, pivot: np.ndarray) -> np.ndarray:
    """Per position, the signed angle (radians, x right / y down) from ``start`` about ``pivot``."""
    a, b = start - pivot, positions - pivot
    return np.arctan2(a[0] * b[:, 1] - a[1] * b[:, 0], b @ a)


def hinge_pivot(centre: np.ndarray, radius: float, part: np.ndarray, still: np.ndarray) -> np.ndarray:
    """The pixel where ``part`` meets ``still`` nearest to ``centre`` if within ``radius``; else ``centre``."""
    touching = cv2.dilate(still.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    rows, cols = np.nonzero(part & touching)
    if rows.size == 0:
        return centre
    contact = np.stack([cols, rows], axis=-1) + 0.5
    distance = np.linalg.norm(contact - centre, axis=-1)
    nearest = int(np.argmin(distance))
    return contact[nearest] if distance[nearest] < radius else centre


def part_angles(tracks: np.ndarray, part: np.ndarray, still: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The part's motion as ``(angles (F,), source (2,), targets (F, 2))``: ``x -> R(angle)(x - source) + target``.

    Parameters:
        tracks: ``(K, F, 2)`` the part's drags in pixels (continuous: pixel i spans [i, i + 1)).
        part: ``(H, W)`` bool pixels of the part.
        still: ``(H, W)`` bool pixels of the object that do not move.
    """
    starts = tracks[:, 0]
    if len(tracks) >= 2 and float(np.ptp(starts, axis=0).max()) > MIN_DRAG_SPREAD:
        centred_starts = starts - starts.mean(axis=0)
        centres = tracks.mean(axis=0)  # [F, 2]
        centred = tracks - centres[None]  # [K, F, 2]
        cross = (centred_starts[:, None, 0] * centred[..., 1] - centred_starts[:, None, 1] * centred[..., 0]).sum(0)
        dot = (centred_starts[:, None, :] * centred).sum(axis=(0, 2))
        return np.arctan2(cross, dot), starts.mean(axis=0), centres
    track = tracks[0]
    share = _smoothstep((path_turning(track) - STRAIGHT_TURNING) / (CURVED_TURNING - STRAIGHT_TURNING))
    angles = np.zeros(len(track))
    if share > 0.0:
        centre, radius = fit_circle(track)
        pivot = hinge_pivot(centre, radius, part, still)
        angles = share * np.unwrap(_signed_angles(track[0], track, pivot))
    return angles, track[0], track


def affine_matrices(angles: np.ndarray, source: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """``(F, 2, 3)`` forward matrices for ``cv2.warpAffine`` (pixel-index coordinates: centre of pixel i is i)."""
    cos, sin = np.cos(angles), np.sin(angles)
    rotation = np.stack([np.stack([cos, -sin], axis=-1), np.stack([sin, cos], axis=-1)], axis=-2)  # [F, 2, 2]
    # continuous coordinates put pixel i's centre at i + 0.5; cv2 puts it at i
    offset = (targets - 0.5) - rotation @ (np.asarray(source) - 0.5)
    return np.concatenate([rotation, offset[..., None]], axis=-1)
