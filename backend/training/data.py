"""Cached training examples: one ``.safetensors`` file per clip, made by ``puppet-master cache-latents``.

Each file holds ``latents`` ``(F, 4, h, w)`` (VAE samples times the scaling factor), ``cond_latent``
``(4, h, w)`` (the first frame's unscaled VAE latent mean), ``embedding`` ``(1, D)`` (CLIP image
embedding of the first frame) and ``drags`` ``(F, num_drags, 4)`` — the same quantities as the
authors' Drag-a-Move test batches, without the batch dimension.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch.utils.data import Dataset

KEYS = ("latents", "cond_latent", "embedding", "drags")


def write_cached_example(path: str | os.PathLike, example: dict[str, torch.Tensor]) -> Path:
    """Save one example (atomically: a temp file, then rename)."""
    missing = [key for key in KEYS if key not in example]
    if missing:
        raise ValueError(f"cached example needs {KEYS}, missing {missing}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    save_file({key: example[key].contiguous().cpu() for key in KEYS}, str(temporary))
    os.replace(temporary, path)
    return path


class CachedClipDataset(Dataset):
    """All ``*.safetensors`` examples under a folder, checked for consistent shapes on first read."""

    def __init__(self, root: str | os.PathLike, dtype: torch.dtype = torch.float32):
        self.files = sorted(Path(root).rglob("*.safetensors"))
        if not self.files:
            raise FileNotFoundError(f"no cached examples (*.safetensors) under {os.fspath(root)!r}")
        self.dtype = dtype

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        example = load_file(str(self.files[index]))
        missing = [key for key in KEYS if key not in example]
        if missing:
            raise ValueError(f"{self.files[index]} lacks {missing}; re-run cache-latents")
        return {key: example[key].to(self.dtype) for key in KEYS}
