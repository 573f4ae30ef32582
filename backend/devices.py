"""Device and dtype choice shared by the CLI, the pipeline and the service."""

from __future__ import annotations

import torch

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def best_device() -> str:
    """``cuda`` if available, else ``mps``, else ``cpu``."""
    if torch.cuda.is_available():
        return "cuda"
    if torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def resolve_device(name: str | None) -> torch.device:
    """``auto``/None -> :func:`best_device`; otherwise the named device, checked to exist."""
    if name in (None, "auto"):
        return torch.device(best_device())
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} was requested but CUDA is not available on this machine")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device {name!r} was requested but Apple MPS is not available on this machine")
    return device


def resolve_dtype(name: str | None, device: torch.device) -> torch.dtype:
    """``auto``/None -> fp16 on CUDA/MPS (bf16 where CUDA supports it), fp32 on CPU."""
    if name in (None, "auto"):
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float16 if device.type == "mps" else torch.float32
    if name not in DTYPES:
        raise ValueError(f"unknown dtype {name!r}; choose one of {', '.join(DTYPES)} or auto")
    return DTYPES[name]
