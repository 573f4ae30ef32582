"""Drag encodings of Puppet-Master (arXiv 2408.04631, Sec. 3.2) and the per-video cache built from them.

A drag k in frame n is ``(xs, ys, xn, yn)``: its start point and its position in frame n, normalised
to [0, 1] over the model image (x right, y down). Unused drag slots are all zeros.

Everything in this module depends on the drags alone, never on the noisy latent or the timestep,
so a sampler computes it once per video (see ``UNetDragSpatioTemporalModel.prepare_drag_conditioning``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

CHANNELS_PER_DRAG = 6


def drag_presence(drags: torch.Tensor) -> torch.Tensor:
    """``(B, F, K, 4) -> (B, F, K)`` bool: the drag has a non-zero number in that frame."""
    return drags.ne(0).any(dim=-1)


def absent_drags(drags: torch.Tensor) -> torch.Tensor:
    """``(B, F, K, 4) -> (B, K)`` bool: the slot is all zeros in every frame (no drag there)."""
    return ~drag_presence(drags).any(dim=1)


def encode_drags(drags: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Rasterise drags into the sparse ``(B, F, 6K, height, width)`` image the drag embedders read.

    The image is filled with -1. For drag k, channels 6k..6k+5 carry three one-cell marks, each
    holding the sub-cell offset ``(x * width - cx, y * height - cy)`` of a point in the cell
    ``cx = clamp(round(x * width - 0.5), 0, width - 1)`` (``cy`` likewise; round half to even):
    the start point (6k, 6k+1), the position in this frame (6k+2, 6k+3) and the position in the
    last frame (6k+4, 6k+5). A drag that is all zeros in a frame writes nothing in that frame.

    Computed in at least float32 (float64 input stays float64), so half-precision drags never move
    a mark to another cell.
    """
    if drags.ndim != 4 or drags.shape[-1] != 4:
        raise ValueError(f"drags must have shape (batch, frames, num_drags, 4), got {tuple(drags.shape)}")
    batch, frames, num_drags, _ = drags.shape
    drags = drags.to(torch.promote_types(drags.dtype, torch.float32))

    # 1. the three points of every drag in every frame: start, current, last frame's position
    last = drags[:, -1:, :, 2:4].expand(-1, frames, -1, -1)
    points = torch.stack([drags[..., 0:2], drags[..., 2:4], last], dim=3)  # [B, F, K, 3, 2]

    # 2. cell index and sub-cell offset of each point
    size = torch.tensor([width, height], dtype=points.dtype, device=points.device)
    scaled = points * size
    cell = torch.minimum((scaled - 0.5).round().clamp(min=0), size - 1)
    offset = scaled - cell  # [B, F, K, 3, 2]

    # 3. scatter the offsets into a -1 image; absent drags write -1 at cell 0, i.e. nothing
    present = drag_presence(drags)[..., None, None]  # [B, F, K, 1, 1]
    values = torch.where(present, offset, torch.full_like(offset, -1.0))
    flat_index = (cell[..., 1] * width + cell[..., 0]).long()  # [B, F, K, 3]
    image = torch.full((batch, frames, num_drags, 3, 2, height * width), -1.0, device=drags.device, dtype=drags.dtype)
    image.scatter_(-1, flat_index[..., None, None].expand(-1, -1, -1, -1, 2, 1), values[..., None])
    # [B, F, K, 3, 2, H*W] -> [B, F, 6K, H, W]; channel 6k + 2m + c for point m, coordinate c
    return image.view(batch, frames, num_drags * CHANNELS_PER_DRAG, height, width)


@lru_cache(maxsize=32)
def _sincos_position_map(dim: int, height: int, width: int) -> np.ndarray:
    """Fixed 2-D sin-cos embedding (MAE/DiT style) of integer cell indices, as a ``(dim, H, W)`` image.

    The first half of the channels encodes x (the column), the second half y (the row); each half
    is ``[sin(pos * w_i) for i] + [cos(pos * w_i) for i]`` with ``w_i = 1 / 10000 ** (i / (dim / 4))``.
    """
    if dim % 4 != 0:
        raise ValueError(f"pos_embed_dim must be a multiple of 4, got {dim}")
    omega = 1.0 / 10000 ** (np.arange(dim // 4, dtype=np.float64) / (dim / 4))

    def encode_axis(positions: np.ndarray) -> np.ndarray:  # (N,) -> (N, dim / 2)
        angles = np.outer(positions, omega)
        return np.concatenate([np.sin(angles), np.cos(angles)], axis=1)

    cols = encode_axis(np.arange(width, dtype=np.float64))  # [W, dim/2]
    rows = encode_axis(np.arange(height, dtype=np.float64))  # [H, dim/2]
    x_part = np.broadcast_to(cols.T[:, None, :], (dim // 2, height, width))
    y_part = np.broadcast_to(rows.T[:, :, None], (dim // 2, height, width))
    return np.ascontiguousarray(np.concatenate([x_part, y_part], axis=0))


def sincos_position_map(
    dim: int, height: int, width: int, device: torch.device | str | None = None, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """``(dim, height, width)`` tensor of :func:`_sincos_position_map` (computed in float64, then cast)."""
    return torch.from_numpy(_sincos_position_map(dim, height, width)).to(device=device, dtype=dtype)


def drag_sample_grid(drags: torch.Tensor) -> torch.Tensor:
    """``(B, F, K, 4) -> (B*F, 2, K, 2)`` ``grid_sample`` coordinates (2p - 1) of start and current points."""
    points = torch.stack([drags[..., 0:2], drags[..., 2:4]], dim=2)  # [B, F, 2, K, 2]
    return (points * 2 - 1).flatten(0, 1)


def sample_at_drags(feature_map: torch.Tensor, grid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Bilinear read of ``(N, C, H, W)`` features at the drag points of ``grid`` (``(N, 2, K, 2)``).

    Border padding, ``align_corners=False``, as the published model. Returns the features at the
    start points and at the current points, each ``(N, K, C)``.
    """
    samples = F.grid_sample(feature_map, grid, mode="bilinear", padding_mode="border", align_corners=False)
    # [N, C, 2, K] -> [N, 2, K, C]
    samples = samples.permute(0, 2, 3, 1)
    return samples[:, 0], samples[:, 1]


@dataclass
class LayerDragConditioning:
    """What one drag-conditioned layer (resnet + transformer pair) needs, for one video batch.

    ``scale_plus_one`` and ``shift`` are the adaptive modulation ``h * (1 + scale) + shift`` from the
    layer's drag embedder (``scale_plus_one`` is None when modulation is off); ``positions`` are the
    sin-cos embeddings at the start and current points, ``(B*F, K, 2 * pos_embed_dim)``.
    """

    scale_plus_one: torch.Tensor | None
    shift: torch.Tensor
    positions: torch.Tensor

    def to(self, *args, **kwargs) -> LayerDragConditioning:
        """A copy with every tensor moved/cast by ``torch.Tensor.to(*args, **kwargs)``."""
        scale = None if self.scale_plus_one is None else self.scale_plus_one.to(*args, **kwargs)
        return LayerDragConditioning(scale, self.shift.to(*args, **kwargs), self.positions.to(*args, **kwargs))


@dataclass
class DragConditioning:
    """Step-invariant drag conditioning of a whole UNet, made by ``prepare_drag_conditioning``.

    Pass it as ``drags`` to every denoising step of the same video batch.
    """

    num_frames: int
    latent_size: tuple[int, int]
    grid: torch.Tensor  # [B*F, 2, K, 2] grid_sample coordinates of start and current points
    absent: torch.Tensor  # [B*F, K, 1] True where the drag slot is empty in the whole video
    down_blocks: dict[int, list[LayerDragConditioning]] = field(default_factory=dict)
    up_blocks: dict[int, list[LayerDragConditioning]] = field(default_factory=dict)

    @property
    def batch_size(self) -> int:
        return self.grid.shape[0] // self.num_frames

    @property
    def device(self) -> torch.device:
        return self.grid.device

    def to(self, *args, **kwargs) -> DragConditioning:
        """A copy with every tensor moved by ``torch.Tensor.to(*args, **kwargs)``; the empty-slot mask keeps
        its bool dtype. Lets accelerate's offload hooks (``send_to_device``) move it with the UNet."""

        def move_layers(blocks: dict[int, list[LayerDragConditioning]]) -> dict[int, list[LayerDragConditioning]]:
            return {index: [layer.to(*args, **kwargs) for layer in layers] for index, layers in blocks.items()}

        absent_device = self.grid.to(*args, **kwargs).device
        return DragConditioning(
            num_frames=self.num_frames,
            latent_size=self.latent_size,
            grid=self.grid.to(*args, **kwargs),
            absent=self.absent.to(absent_device),
            down_blocks=move_layers(self.down_blocks),
            up_blocks=move_layers(self.up_blocks),
        )
