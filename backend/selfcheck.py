"""``puppet-master self-check``: build a small Puppet-Master UNet and run one denoising step."""

from __future__ import annotations

import argparse
import logging
import time

import torch

from . import __version__
from .devices import resolve_device, resolve_dtype
from .models import UNetDragSpatioTemporalModel
from .models.configs import UNET_CONFIGS

logger = logging.getLogger(__name__)


def run_self_check(size: str = "tiny", device: str | None = None, dtype: str | None = None, frames: int = 14) -> dict:
    """One forward pass with random weights and inputs; checks that cached drag conditioning is exact."""
    torch_device = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, torch_device)
    torch.manual_seed(0)
    started = time.perf_counter()
    model = UNetDragSpatioTemporalModel(**UNET_CONFIGS[size]).to(torch_device, torch_dtype).eval()
    build_seconds = time.perf_counter() - started

    latent = 8 if size == "tiny" else 32
    cross_dim = model.config.cross_attention_dim
    cross_dim = cross_dim if isinstance(cross_dim, int) else cross_dim[0]
    batch = 2  # classifier-free guidance: unconditional + conditional
    sample = torch.randn(batch, frames, 4, latent, latent, device=torch_device, dtype=torch_dtype)
    image_latents = torch.randn(batch, 4, latent, latent, device=torch_device, dtype=torch_dtype)
    clip = torch.randn(batch, 1, cross_dim, device=torch_device, dtype=torch_dtype)
    drags = torch.zeros(batch, frames, model.config.num_drags, 4, device=torch_device)
    progress = torch.linspace(0, 1, frames, device=torch_device)
    drags[1, :, 0, :2] = torch.tensor([0.4, 0.5], device=torch_device)
    drags[1, :, 0, 2] = 0.4 + 0.2 * progress
    drags[1, :, 0, 3] = 0.5

    with torch.inference_mode():
        started = time.perf_counter()
        cond = model.prepare_drag_conditioning(drags, latent)
        cached = model(sample, 0.5, image_latents, clip, cond).sample
        step_seconds = time.perf_counter() - started
        uncached = model(sample, 0.5, image_latents, clip, drags).sample
    if not torch.equal(cached, uncached):
        raise RuntimeError("cached and uncached drag conditioning disagree")
    if not torch.isfinite(cached).all():
        raise RuntimeError("the forward pass produced non-finite values")
    return {
        "version": __version__,
        "torch": torch.__version__,
        "device": str(torch_device),
        "dtype": str(torch_dtype).removeprefix("torch."),
        "size": size,
        "parameters": sum(p.numel() for p in model.parameters()),
        "output_shape": tuple(cached.shape),
        "build_seconds": round(build_seconds, 3),
        "step_seconds": round(step_seconds, 3),
    }


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "self-check", help="build a small random Puppet-Master UNet and run one denoising step"
    )
    parser.add_argument("--size", choices=sorted(UNET_CONFIGS), default="tiny", help="architecture size")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, mps")
    parser.add_argument("--dtype", default="auto", help="auto, fp32, fp16 or bf16")
    parser.add_argument("--frames", type=int, default=14, help="video frames")
    parser.set_defaults(handler=_handle)


def _handle(args: argparse.Namespace) -> int:
    report = run_self_check(args.size, args.device, args.dtype, args.frames)
    width = max(map(len, report))
    for key, value in report.items():
        print(f"{key:<{width}}  {value}")
    print("self-check passed: the Puppet-Master UNet builds and runs (random weights).")
    return 0
