"""Which pixels make up the part under a drag: from a part map, or grown from the drag's start.

Without a part map the object is cut into parts by its edges, in three steps:

1. Superpixels: a watershed (OpenCV's, Meyer's flooding) from one marker per ``SUPERPIXEL_CELL`` x
   ``SUPERPIXEL_CELL`` cell, placed at the cell's weakest-edge object pixel, so that superpixel borders
   follow the image's edges.
2. A merge tree: adjacent regions are merged greedily, weakest shared border first, the border's
   strength being the mean colour gradient (CIELAB, after a light blur) along all of it. Merging on the
   *mean* over the whole shared border, rather than on its weakest point (single linkage), keeps a
   seam that is strong along most of its length from leaking through a gap. This is the classic
   agglomerative segmentation behind ultrametric contour maps (Arbelaez et al., "Contour Detection and
   Hierarchical Image Segmentation", TPAMI 2011), with plain gradients instead of learned contours.
3. The part: of the nested regions that contain the drag's start, the one most clearly cut from the
   rest — the largest ratio between the border level at which it merges into its parent and its own
   internal level — among those covering ``MIN_PART_FRACTION`` to ``MAX_PART_FRACTION`` of the object.
   Conservative when unsure: a region whose outer border is weaker than ``MIN_BORDER`` (a faint seam
   or none) is taken only when no region with a clear border exists, and then at most
   ``UNSURE_PART_FRACTION`` of the object; no region is ever more than ``MAX_PART_FRACTION``, because
   moving the whole body when the seam was missed costs far more than moving too small a part. An
   object with no edge inside it at all (its gradient below ``NO_BORDER`` off its rim) is one part and
   moves whole.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

import cv2
import numpy as np

# Side (pixels of the 256 x 256 model image) of the cells that seed one superpixel each.
SUPERPIXEL_CELL = 6
# Blur (pixels) before the colour gradient, so that edges are measured above the pixel noise.
GRADIENT_SIGMA = 0.8
# A grown part covers at least / at most this fraction of the object's pixels.
MIN_PART_FRACTION = 0.03
MAX_PART_FRACTION = 0.3
# A border this strong (mean CIELAB gradient per pixel along it) is a clear seam between parts.
MIN_BORDER = 5.0
# A gradient below this is no edge at all (flat colour, compression noise): an object without a stronger
# one anywhere inside it is one part.
NO_BORDER = 1.0
# A region without a clear border covers at most this fraction of the object.
UNSURE_PART_FRACTION = 0.1
# Pixels either side of a grown part's border within which the border snaps to the image's edge.
REFINE_BAND = 2
# A drag that starts off the object takes the nearest object pixel within this distance (pixels).
SNAP_DISTANCE = 6.0


def colour_gradient(image: np.ndarray, mask: np.ndarray, sigma: float = GRADIENT_SIGMA) -> np.ndarray:
    """``(H, W)`` float32 gradient magnitude of an RGB uint8 image in CIELAB units per pixel, on the object.

    The blur is a normalised convolution over the object's pixels only (``blur(lab * mask) / blur(mask)``),
    so that the silhouette against the white background is no edge: only edges on the object count.
    """
    lab = cv2.cvtColor(image, cv2.COLOR_RGB2LAB).astype(np.float32)
    weight = mask.astype(np.float32)
    blurred_weight = cv2.GaussianBlur(weight, (0, 0), sigma)
    lab = cv2.GaussianBlur(lab * weight[..., None], (0, 0), sigma) / np.maximum(blurred_weight, 1e-6)[..., None]
    # Sobel's 3x3 kernels sum to 8 times the derivative
    gx = cv2.Sobel(lab, cv2.CV_32F, 1, 0, ksize=3) / 8.0
    gy = cv2.Sobel(lab, cv2.CV_32F, 0, 1, ksize=3) / 8.0
    return np.sqrt((gx * gx + gy * gy).sum(axis=-1))


def superpixels(image: np.ndarray, mask: np.ndarray, gradient: np.ndarray, cell: int = SUPERPIXEL_CELL) -> np.ndarray:
    """``(H, W)`` int32 labels 0..n-1 on the object's pixels, -1 elsewhere (see the module docstring)."""
    height, width = mask.shape
    rows, cols = -(-height // cell), -(-width // cell)
    padded = np.full((rows * cell, cols * cell), np.inf, dtype=np.float32)
    padded[:height, :width] = np.where(mask, gradient, np.inf)
    # [rows*cell, cols*cell] -> [rows, cols, cell*cell]: one cell per (row, col)
    cells = padded.reshape(rows, cell, cols, cell).transpose(0, 2, 1, 3).reshape(rows, cols, -1)
    weakest = cells.argmin(axis=-1)
    row, col = np.nonzero(np.isfinite(cells.min(axis=-1)))  # cells with an object pixel
    markers = np.zeros((height, width), dtype=np.int32)
    markers[~mask] = 1  # the background floods as one region and stops the object's at the silhouette
    markers[row * cell + weakest[row, col] // cell, col * cell + weakest[row, col] % cell] = np.arange(len(row)) + 2
    cv2.watershed(np.ascontiguousarray(image[..., ::-1]), markers)
    # the watershed lines (-1) and the odd pixel it does not reach (0) take a neighbour's label
    for _ in range(4):
        gaps = (markers < 2) & mask
        if not gaps.any():
            break
        nearby = cv2.dilate(np.where(markers >= 2, markers, 0).astype(np.float32), np.ones((3, 3), np.uint8))
        markers = np.where(gaps, nearby.astype(np.int32), markers)
    return np.where(mask & (markers >= 2), markers - 2, -1).astype(np.int32)


def _borders(labels: np.ndarray, gradient: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Adjacent label pairs ``(E, 2)``, the summed gradient along each shared border and its length."""
    pairs, strengths = [], []
    for first, second, first_gradient, second_gradient in (
        (labels[:, :-1], labels[:, 1:], gradient[:, :-1], gradient[:, 1:]),  # horizontal neighbours
        (labels[:-1], labels[1:], gradient[:-1], gradient[1:]),  # vertical neighbours
    ):
        across = (first >= 0) & (second >= 0) & (first != second)
        low, high = np.minimum(first[across], second[across]), np.maximum(first[across], second[across])
        pairs.append(np.stack([low, high], axis=-1))
        strengths.append(np.maximum(first_gradient[across], second_gradient[across]))
    pair = np.concatenate(pairs).astype(np.int64)
    keys, index = np.unique(pair[:, 0] * (labels.max() + 1) + pair[:, 1], return_inverse=True)
    count = labels.max() + 1
    edges = np.stack([keys // count, keys % count], axis=-1)
    return edges, np.bincount(index, np.concatenate(strengths)), np.bincount(index).astype(np.float64)


@dataclass
class MergeTree:
    """Nested regions of the object: leaves are superpixels, each inner node the merge of two children.

    Attributes:
        labels: ``(H, W)`` superpixel (leaf) of each object pixel, -1 off the object.
        parent: per node, the node it merged into (-1 for a root).
        children: per node, its two children (empty for a leaf).
        level: per node, the mean border strength at which it formed (0 for a leaf).
        area: per node, its pixel count.
        uniform: no edge inside the object at all: its gradient stays below NO_BORDER everywhere but on
            its three-pixel rim (where edge pixels blend with the background).
    """

    labels: np.ndarray
    parent: list[int]
    children: list[tuple[int, ...]]
    level: list[float]
    area: list[int]
    uniform: bool = False

    def leaves(self, node: int) -> list[int]:
        """The superpixels under ``node``."""
        found, stack = [], [node]
        while stack:
            current = stack.pop()
            if self.children[current]:
                stack.extend(self.children[current])
            else:
                found.append(current)
        return found


def build_merge_tree(image: np.ndarray, mask: np.ndarray) -> MergeTree:
    """Superpixels of the object and their greedy merge tree, weakest mean border first."""
    gradient = colour_gradient(image, mask)
    labels = superpixels(image, mask, gradient)
    count = int(labels.max()) + 1
    area = np.bincount(labels[labels >= 0], minlength=count).tolist()
    parent, children, level = [-1] * count, [()] * count, [0.0] * count
    # per live node: neighbour -> [summed strength, border length]
    borders: list[dict[int, list[float]]] = [{} for _ in range(count)]
    heap: list[tuple[float, int, int]] = []
    if count > 1:
        edges, strength, length = _borders(labels, gradient)
        for (first, second), total, pixels in zip(edges.tolist(), strength.tolist(), length.tolist(), strict=True):
            borders[first][second] = borders[second][first] = [total, pixels]
            heap.append((total / pixels, first, second))
    heapq.heapify(heap)
    while heap:
        mean, first, second = heapq.heappop(heap)
        if parent[first] != -1 or parent[second] != -1:
            continue  # stale: one of them merged already
        node = len(parent)
        parent[first] = parent[second] = node
        parent.append(-1)
        children.append((first, second))
        level.append(mean)
        area.append(area[first] + area[second])
        merged: dict[int, list[float]] = {}
        for old in (first, second):
            for neighbour, (total, pixels) in borders[old].items():
                if neighbour in (first, second):
                    continue
                entry = merged.setdefault(neighbour, [0.0, 0.0])
                entry[0] += total
                entry[1] += pixels
                del borders[neighbour][old]
            borders[old] = {}
        borders.append(merged)
        for neighbour, (total, pixels) in merged.items():
            borders[neighbour][node] = merged[neighbour]
            heapq.heappush(heap, (total / pixels, node, neighbour))
    inner = cv2.erode(mask.astype(np.uint8), np.ones((7, 7), np.uint8)) > 0
    uniform = not inner.any() or float(gradient[inner].max()) < NO_BORDER
    return MergeTree(labels=labels, parent=parent, children=children, level=level, area=area, uniform=uniform)


def _leaf_at(labels: np.ndarray, point: np.ndarray) -> int | None:
    """The superpixel under a pixel-coordinate point, or the nearest within SNAP_DISTANCE; None if off."""
    height, width = labels.shape
    col, row = int(np.clip(np.floor(point[0]), 0, width - 1)), int(np.clip(np.floor(point[1]), 0, height - 1))
    if labels[row, col] >= 0:
        return int(labels[row, col])
    rows, cols = np.nonzero(labels >= 0)
    if rows.size == 0:
        return None
    distance = np.hypot(cols + 0.5 - point[0], rows + 0.5 - point[1])
    nearest = int(np.argmin(distance))
    return int(labels[rows[nearest], cols[nearest]]) if distance[nearest] <= SNAP_DISTANCE else None


def grow_part(
    tree: MergeTree,
    point: np.ndarray,
    min_fraction: float = MIN_PART_FRACTION,
    max_fraction: float = MAX_PART_FRACTION,
) -> np.ndarray:
    """``(H, W)`` bool: the region of ``tree`` under ``point`` (pixels) most clearly cut from the rest.

    See step 3 of the module docstring. All False when the point is off the object (beyond SNAP_DISTANCE).
    """
    leaf = _leaf_at(tree.labels, point)
    if leaf is None:
        return np.zeros(tree.labels.shape, dtype=bool)
    if tree.uniform:  # no edge inside the object at all: it is one part
        return tree.labels >= 0
    total = int((tree.labels >= 0).sum())
    best, best_score = leaf, (False, -1.0)
    node = leaf
    while tree.parent[node] != -1 and tree.area[node] <= max_fraction * total:
        above = tree.parent[node]
        sure = tree.level[above] >= MIN_BORDER
        # how much stronger the border that the region loses on merging is than the borders inside it
        contrast = tree.level[above] / (tree.level[node] + 1.0)
        large_enough = tree.area[node] >= min_fraction * total
        small_enough = sure or tree.area[node] <= UNSURE_PART_FRACTION * total
        if large_enough and small_enough and (sure, contrast) > best_score:
            best, best_score = node, (sure, contrast)
        node = above
    return np.isin(tree.labels, tree.leaves(best))


def refine_border(image: np.ndarray, mask: np.ndarray, part: np.ndarray, band: int = REFINE_BAND) -> np.ndarray:
    """``part`` with its border moved onto the strongest edge within ``band`` pixels of it.

    Superpixel borders sit a pixel or two off the true edge (the blur, the watershed's line pixels). A
    pixel-level watershed from the part and the rest of the object, each shrunk by ``band``, places the
    border on the image's edge; its line pixels go to the side whose mean colour is nearer.
    """
    kernel = np.ones((2 * band + 1, 2 * band + 1), np.uint8)
    inner = cv2.erode(part.astype(np.uint8), kernel) > 0
    outer = cv2.erode((mask & ~part).astype(np.uint8), kernel) > 0
    if not inner.any():
        return part
    markers = np.zeros(mask.shape, dtype=np.int32)
    markers[~mask] = 1
    markers[outer] = 2
    markers[inner] = 3
    cv2.watershed(np.ascontiguousarray(image[..., ::-1]), markers)
    refined = markers == 3
    line = (markers < 2) & mask
    if line.any():
        lab = cv2.cvtColor(image, cv2.COLOR_RGB2LAB).astype(np.float32)
        rest = markers == 2
        part_colour = lab[refined].mean(axis=0)
        rest_colour = lab[rest].mean(axis=0) if rest.any() else np.full(3, np.inf, dtype=np.float32)
        nearer_part = np.linalg.norm(lab - part_colour, axis=-1) <= np.linalg.norm(lab - rest_colour, axis=-1)
        refined |= line & nearer_part
    # only the band may change: thin pieces of the rest that erosion removed are not the part's to take
    return refined & mask & (cv2.dilate(part.astype(np.uint8), kernel) > 0)


def part_from_map(part_map: np.ndarray, mask: np.ndarray, point: np.ndarray) -> np.ndarray:
    """``(H, W)`` bool: the object pixels with the part id under ``point`` (pixels; nearest id within reach).

    Id 0 is background: a drag starting on it takes the nearest non-zero id within SNAP_DISTANCE, or
    moves nothing.
    """
    ids = np.where(mask, part_map, 0)
    leaf_like = np.where(ids > 0, ids, -1)
    part = _leaf_at(leaf_like, point)
    if part is None:
        return np.zeros(mask.shape, dtype=bool)
    return ids == part
