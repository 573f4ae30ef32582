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
    try:
        device = torch.device(name)
    except RuntimeError as error:
        raise ValueError(f"unknown device {name!r}; use auto, cpu, cuda, cuda:N or mps") from error
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} was requested but CUDA is not available on this machine")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        count = torch.cuda.device_count()
        raise ValueError(f"device {name!r} was requested but this machine has {count} CUDA device(s)")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device {name!r} was requested but Apple MPS is not available on this machine")
    return device


def natively_supports_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes bf16 in hardware: CUDA compute capability 8.0 or newer (Ampere, Ada,
    Hopper, Blackwell). Older NVIDIA cards (RTX 20xx, T4, V100) only emulate it, slowly, so they use fp16."""
    if device.type != "cuda":
        return False
    index = device.index if device.index is not None else torch.cuda.current_device()
    major, _minor = torch.cuda.get_device_capability(index)
    return major >= 8


def resolve_dtype(name: str | None, device: torch.device) -> torch.dtype:
    """The compute dtype for ``device``. ``auto``/None picks:

    - CUDA: bf16 where the chosen card runs it natively (compute capability >= 8.0), else fp16;
    - Apple MPS: fp16 (bf16 needs macOS 14 and is slower there);
    - CPU: fp32 (half precision on a CPU is emulated and slower).
    """
    if name in (None, "auto"):
        if device.type == "cuda":
            return torch.bfloat16 if natively_supports_bf16(device) else torch.float16
        return torch.float16 if device.type == "mps" else torch.float32
    if name not in DTYPES:
        raise ValueError(f"unknown dtype {name!r}; choose one of {', '.join(DTYPES)} or auto")
    return DTYPES[name]
