"""Frames of the preview: the dragged parts moved rigidly over the still rest, in depth order.

1. Parts. Each drag picks the part under its start (:mod:`.regions`): from the part map when there
   is one, else grown from the image. Drags that pick overlapping regions move one part together; a
   drag that starts on a seam, beside a smaller part that other drags move the same way, moves that
   part (a click a pixel off a drawer's edge should not move the whole cabinet).
2. Motion. Each part gets one rigid motion per frame fitted to its drags (:mod:`.motion`).
3. The still plate. The image without the moving parts: where a part uncovers what lies inside the
   outline of the still parts (their convex hull) the surface around it is carried in (OpenCV's
   inpainting, Telea 2004, fed from the still object only, never from the white background); what it
   uncovers outside that outline is background (white, transparent).
4. Compositing, per frame. Each moving part is warped (bilinear) and laid over the plate where it is
   nearer than what is there. Depth: the depth map when given (a moving part keeps the depth of its
   pixels, less ``MOVING_DEPTH_BIAS`` of the object's depth range, because parts that move usually
   come towards the camera: doors open, drawers come out); without one, moving parts lie in front of
   the still ones, smaller moving parts in front of larger ones (a handle over its door).

Pixels that no moving part covers or uncovers are copied from the input unchanged, so frame 0 and
the still parts equal the input exactly. There is no randomness.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from .motion import affine_matrices, part_angles
from .regions import SNAP_DISTANCE, build_merge_tree, grow_part, part_from_map, refine_border

# Inpainting radius (pixels) and the margin (pixels) of the window it works in.
INPAINT_RADIUS = 5
INPAINT_MARGIN = 12
# A moving part counts as this fraction of the object's depth range nearer than it was.
MOVING_DEPTH_BIAS = 0.02
# Drags whose parts overlap by more than this fraction of the smaller part move one part together.
SHARED_PART_OVERLAP = 0.5
# Two drags move alike when their start-relative paths stay within this fraction of their motion.
SAME_MOTION = 0.2
# Drags that move less than this (pixels) in every frame move nothing.
STILL_EPSILON = 1e-3


@dataclass
class _Part:
    """One moving part: its pixels and the drags on it."""

    pixels: np.ndarray
    drags: list[int]


@dataclass
class _Layer:
    """A moving part ready to draw: premultiplied RGBA, coverage, depth (per pixel or whole) and motion."""

    colour: np.ndarray
    coverage: np.ndarray
    depth: np.ndarray | float
    matrices: np.ndarray

    def draw(self, canvas: np.ndarray, nearest: np.ndarray, frame: int) -> tuple[np.ndarray, np.ndarray]:
        """``canvas`` and its depth with this part laid over it in ``frame`` where the part is nearer."""
        size = canvas.shape[0]

        def warp(array: np.ndarray, interpolation: int) -> np.ndarray:
            return cv2.warpAffine(
                array, self.matrices[frame], (size, size), flags=interpolation, borderMode=cv2.BORDER_CONSTANT
            )

        coverage = warp(self.coverage, cv2.INTER_LINEAR)
        if np.isscalar(self.depth):
            depth = np.where(coverage > 0, np.float32(self.depth), np.float32(np.inf))
        else:
            depth = warp(np.where(np.isfinite(self.depth), self.depth, 0.0).astype(np.float32), cv2.INTER_NEAREST)
            depth = np.where(warp(self.coverage, cv2.INTER_NEAREST) > 0, depth, np.inf)
        in_front = (coverage > 0) & (depth <= nearest)
        # premultiplied "over": the part's colour plus what shows through its soft edge
        over = warp(self.colour, cv2.INTER_LINEAR) + (1.0 - coverage[..., None]) * canvas
        return np.where(in_front[..., None], over, canvas), np.where(in_front & (coverage > 0.5), depth, nearest)


def _drag_regions(
    image: np.ndarray, mask: np.ndarray, tracks: Sequence[np.ndarray], part_map: np.ndarray | None
) -> list[np.ndarray | None]:
    """Per drag, the pixels of the part under its start (None for a drag that does not move or hits nothing)."""
    tree = None
    regions: list[np.ndarray | None] = []
    for track in tracks:
        pixels = None
        if np.abs(track - track[0]).max() >= STILL_EPSILON:
            if part_map is not None:
                pixels = part_from_map(part_map, mask, track[0])
            else:
                if tree is None:  # built once, for the first drag that needs it
                    tree = build_merge_tree(image, mask)
                pixels = refine_border(image, mask, grow_part(tree, track[0]))
        regions.append(_with_slivers(pixels, mask) if pixels is not None and pixels.any() else None)
    return regions


def _same_motion(first: np.ndarray, second: np.ndarray) -> bool:
    """Whether two drags move alike: their start-relative paths stay within SAME_MOTION of their motion."""
    first, second = first - first[0], second - second[0]
    motion = max(float(np.linalg.norm(first, axis=-1).max()), float(np.linalg.norm(second, axis=-1).max()))
    return float(np.linalg.norm(first - second, axis=-1).max()) <= SAME_MOTION * motion


def _distance_to(pixels: np.ndarray, point: np.ndarray) -> float:
    """Distance (pixels) from a point to the nearest pixel centre of a region."""
    rows, cols = np.nonzero(pixels)
    return float(np.hypot(cols + 0.5 - point[0], rows + 0.5 - point[1]).min())


def _join_seam_drags(regions: list[np.ndarray | None], tracks: Sequence[np.ndarray]) -> list[np.ndarray | None]:
    """Drags that start on a seam join the smaller part that other drags move the same way.

    A drag placed on a door's edge may land, in the image, a pixel or two onto the cabinet around it;
    if another drag moves the door the same way and the start is within SNAP_DISTANCE of the door, the
    drag moves the door, not the (larger) cabinet.
    """
    joined = list(regions)
    for index, region in enumerate(regions):
        if region is None:
            continue
        for other, other_region in enumerate(regions):
            if other_region is None or other == index or _same_part(region, other_region):
                continue
            smaller = np.count_nonzero(other_region) < np.count_nonzero(region)
            if (
                smaller
                and _same_motion(tracks[index], tracks[other])
                and _distance_to(other_region, tracks[index][0]) <= SNAP_DISTANCE
            ):
                joined[index] = other_region
                break
    return joined


def _same_part(first: np.ndarray, second: np.ndarray) -> bool:
    """Whether two drags' regions are one part: they overlap by more than SHARED_PART_OVERLAP of the smaller."""
    overlap = np.count_nonzero(first & second)
    return overlap > SHARED_PART_OVERLAP * min(np.count_nonzero(first), np.count_nonzero(second))


def _select_parts(
    image: np.ndarray, mask: np.ndarray, tracks: Sequence[np.ndarray], part_map: np.ndarray | None
) -> list[_Part]:
    """The moving parts: one per drag, drags on overlapping regions merged into one part."""
    parts: list[_Part] = []
    regions = _join_seam_drags(_drag_regions(image, mask, tracks, part_map), tracks)
    for index, pixels in enumerate(regions):
        if pixels is None:
            continue
        for part in parts:
            if _same_part(part.pixels, pixels):
                part.pixels |= pixels
                part.drags.append(index)
                break
        else:
            parts.append(_Part(pixels=pixels.copy(), drags=[index]))
    return parts


def _open(pixels: np.ndarray) -> np.ndarray:
    """``pixels`` without the bits thinner than three pixels (a morphological opening)."""
    return cv2.morphologyEx(pixels.astype(np.uint8), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8)) > 0


def _with_slivers(part: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``part`` plus the slivers of the rest of the object that touch it and are too thin to stand alone.

    A part's soft silhouette edge or a pixel-wide strip left along its border would otherwise stay
    behind when it moves, and stretch the still parts' outline over where the part was.
    """
    rest = mask & ~part
    slivers = rest & ~_open(rest)
    touching = cv2.dilate(part.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    return part | (slivers & touching)


def _still_outline(still: np.ndarray) -> np.ndarray:
    """``(H, W)`` bool convex hull of the still object (empty when it is thinner than three pixels)."""
    rows, cols = np.nonzero(_open(still))
    outline = np.zeros(still.shape, dtype=np.uint8)
    if rows.size >= 3:
        cv2.fillConvexPoly(outline, cv2.convexHull(np.stack([cols, rows], axis=-1).astype(np.int32)), 1)
    return outline > 0


def _inpaint_from_object(image: np.ndarray, holes: np.ndarray, known: np.ndarray) -> np.ndarray:
    """``image`` with ``holes`` filled by Telea inpainting from the ``known`` pixels only.

    Every pixel that is not known (holes and background alike) is marked unknown, so that the fill
    carries in the surrounding surface and never the white background; only the holes are kept.
    Works in a window around the holes.
    """
    rows, cols = np.nonzero(holes)
    top, left = max(rows.min() - INPAINT_MARGIN, 0), max(cols.min() - INPAINT_MARGIN, 0)
    bottom, right = rows.max() + INPAINT_MARGIN + 1, cols.max() + INPAINT_MARGIN + 1
    window = (slice(top, bottom), slice(left, right))
    if not known[window].any():
        return image
    unknown = (~known[window]).astype(np.uint8)
    filled = cv2.inpaint(np.ascontiguousarray(image[window]), unknown, INPAINT_RADIUS, cv2.INPAINT_TELEA)
    result = image.copy()
    result[window][holes[window]] = filled[holes[window]]
    return result


def _still_plate(image: np.ndarray, alpha: np.ndarray, mask: np.ndarray, moving: np.ndarray) -> np.ndarray:
    """The ``(H, W, 4)`` float32 RGBA image without the moving parts (step 3 of the module docstring)."""
    still = mask & ~moving
    inside = moving & _still_outline(still)
    rgb = image.copy()
    rgb[moving & ~inside] = 255
    if inside.any():
        rgb = _inpaint_from_object(rgb, inside, still)
    plate_alpha = np.where(moving & ~inside, 0.0, alpha)
    plate_alpha[inside] = 1.0
    return np.concatenate([rgb.astype(np.float32), (plate_alpha * 255.0).astype(np.float32)[..., None]], -1)


def _layer_depths(parts: list[_Part], mask: np.ndarray, depth: np.ndarray | None) -> tuple[np.ndarray, list]:
    """Depth of the plate ``(H, W)`` and, per part, of its pixels (an array, or a number for the whole part)."""
    if depth is None:
        plate = np.where(mask, 1.0, np.inf).astype(np.float32)
        # moving parts in front of the still ones, smaller moving parts in front of larger ones
        by_size = sorted(range(len(parts)), key=lambda j: -np.count_nonzero(parts[j].pixels))
        rank = {part: position for position, part in enumerate(by_size)}
        return plate, [0.5 - 0.01 * rank[j] for j in range(len(parts))]
    finite = depth[mask & np.isfinite(depth)]
    spread = float(finite.max() - finite.min()) if finite.size else 0.0
    bias = MOVING_DEPTH_BIAS * max(spread, 1e-6)
    plate = np.where(mask & np.isfinite(depth), depth, np.inf).astype(np.float32)
    return plate, [np.where(part.pixels, plate - bias, np.inf).astype(np.float32) for part in parts]


def iter_preview_frames(
    image: np.ndarray,
    mask: np.ndarray,
    trajectories: Sequence[np.ndarray],
    part_map: np.ndarray | None = None,
    depth: np.ndarray | None = None,
) -> Iterator[np.ndarray]:
    """Yield the ``(s, s, 4)`` uint8 RGBA frames of the preview one at a time (see the module docstring).

    Parameters:
        image: ``(s, s, 3)`` uint8 model image, object on white.
        mask: ``(s, s)`` object mask: bool, or float alpha in [0, 1] (the object is alpha > 0.5).
        trajectories: per drag, ``(F, 2)`` positions in normalised model-image coordinates
            (x right, y down, 0..1); position 0 is the drag's start.
        part_map: optional ``(s, s)`` integer part ids, 0 = background.
        depth: optional ``(s, s)`` float depth (larger = farther; inf or anything off the object ignored).
    """
    image, alpha, tracks = _check_inputs(image, mask, trajectories, part_map, depth)
    mask = alpha > 0.5
    num_frames = len(tracks[0])
    parts = _select_parts(image, mask, tracks, part_map)
    moving = np.zeros_like(mask)
    for part in parts:
        moving |= part.pixels
    plate = _still_plate(image, alpha, mask, moving)
    plate_depth, part_depths = _layer_depths(parts, mask, depth)
    plate_depth[moving] = np.inf  # a part moving back covers the surface carried into its place
    source = np.concatenate([image.astype(np.float32), (alpha * 255.0).astype(np.float32)[..., None]], axis=-1)
    layers = []
    for part, part_depth in zip(parts, part_depths, strict=True):
        coverage = part.pixels.astype(np.float32)
        angles, start, targets = part_angles(np.stack([tracks[k] for k in part.drags]), part.pixels, mask & ~moving)
        matrices = affine_matrices(angles, start, targets)
        layers.append(_Layer(source * coverage[..., None], coverage, part_depth, matrices))
    # back to front by each layer's nearest depth, so overlapping moving parts stack in depth order too
    layers.sort(key=lambda layer: -float(np.min(layer.depth)))

    original = np.concatenate([image, (alpha * 255.0).round().astype(np.uint8)[..., None]], axis=-1)
    yield original
    for frame in range(1, num_frames):
        if not layers:
            yield original.copy()
            continue
        canvas, nearest = plate, plate_depth
        for layer in layers:
            canvas, nearest = layer.draw(canvas, nearest, frame)
        yield np.clip(np.rint(canvas), 0, 255).astype(np.uint8)


def warp_preview(
    image: np.ndarray,
    mask: np.ndarray,
    trajectories: Sequence[np.ndarray],
    part_map: np.ndarray | None = None,
    depth: np.ndarray | None = None,
) -> np.ndarray:
    """All frames of :func:`iter_preview_frames` as ``(F, s, s, 3)`` uint8 RGB on white; frame 0 = ``image``."""
    # the colour channels are already composited on white: the plate and the parts are on white
    return np.stack([frame[..., :3] for frame in iter_preview_frames(image, mask, trajectories, part_map, depth)])


def _check_inputs(
    image: np.ndarray,
    mask: np.ndarray,
    trajectories: Sequence[np.ndarray],
    part_map: np.ndarray | None,
    depth: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """The image, the alpha as float32 in [0, 1] and the tracks in pixels; ValueError naming what is wrong."""
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3 or image.shape[0] != image.shape[1]:
        raise ValueError(f"image must be a square uint8 (s, s, 3) array, got {image.dtype} {image.shape}")
    shape = image.shape[:2]
    for name, array in (("mask", mask), ("part_map", part_map), ("depth", depth)):
        if array is not None and np.shape(array) != shape:
            raise ValueError(f"{name} must have shape {shape} to match the image, got {np.shape(array)}")
    mask = np.asarray(mask)
    alpha = np.clip(mask.astype(np.float32), 0.0, 1.0) if mask.dtype.kind == "f" else (mask != 0).astype(np.float32)
    if len(trajectories) == 0:
        raise ValueError("trajectories: expected at least one drag, got none")
    tracks = [np.asarray(track, dtype=np.float64) for track in trajectories]
    shapes = [track.shape for track in tracks]
    if len(set(shapes)) != 1 or len(shapes[0]) != 2 or shapes[0][1] != 2 or shapes[0][0] < 1:
        raise ValueError(f"trajectories must all have the same shape (F, 2) with F >= 1, got {shapes}")
    if not all(np.isfinite(track).all() for track in tracks):
        raise ValueError("trajectories must be finite")
    return np.ascontiguousarray(image), alpha, [track * shape[0] for track in tracks]
