"""End-to-end generation time, split by stage, on random pipelines (no weights needed).

Runs the real engine path (``DiffusionEngine.generate``: object crop and drag mapping, CLIP/VAE
encoding, drag conditioning, Euler sampling with guidance, temporal VAE decode, un-crop) and prints
seconds per stage, seconds per video and peak memory for each size given:

    python benchmarks/pipeline.py --sizes tiny mid --steps 5            # CPU
    python benchmarks/pipeline.py --sizes full --steps 50 --dtype bf16  # GPU: the published recipe

Targets (issue 3) on an H100 for ``full``: <= 1.5 s per video (50 guided steps, 14 frames, 256^2)
and <= 8 GiB peak GPU memory.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from diffusers.utils import logging as diffusers_logging
from PIL import Image

from backend.devices import resolve_device, resolve_dtype
from backend.engines import GenerationRequest
from backend.engines.diffusion import DiffusionEngine
from backend.pipeline.tiny import build_random_pipeline

STAGES = ("preprocess", "encode", "prepare", "sampling", "decode", "postprocess")


def input_image(width: int = 640, height: int = 480) -> Image.Image:
    """A camera-like RGBA render: an object (two parts) on a transparent film."""
    pixels = np.zeros((height, width, 4), np.uint8)
    pixels[180:330, 250:400] = [180, 120, 80, 255]
    pixels[150:180, 250:400] = [90, 60, 40, 255]
    return Image.fromarray(pixels)


def peak_memory_gib(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.max_memory_allocated(device) / 2**30:.2f} GiB (allocated)"
    import resource

    return f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB (process max RSS)"


def run(size: str, args: argparse.Namespace) -> dict[str, float]:
    device = resolve_device(args.device)
    dtype = resolve_dtype(args.dtype, device)
    pipeline = build_random_pipeline(size).to(device, dtype)
    pipeline.set_progress_bar_config(disable=True)
    engine = DiffusionEngine(pipeline, f"random {size}")
    request = GenerationRequest(
        image=input_image(),
        drags=[np.array([[0.5, 0.33], [0.6, 0.25]]), np.array([[0.45, 0.55], [0.45, 0.6]])],
        num_frames=args.frames,
        steps=args.steps,
        guidance_scale=5.0,
        seed=0,
    )
    engine.generate(GenerationRequest(**{**request.__dict__, "steps": 1}))  # warm-up (kernels, caches)
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats(device)
    pipeline._image_cache.clear()  # time the encoders too
    started = time.perf_counter()
    result = engine.generate(request)
    if device.type == "cuda":
        torch.cuda.synchronize()
    total = time.perf_counter() - started
    row = {stage: result.timings.get(stage, 0.0) for stage in STAGES}
    row |= {"total": total, "per_step": row["sampling"] / args.steps, "memory": peak_memory_gib(device)}
    row |= {"device": str(device), "dtype": str(dtype).removeprefix("torch."), "side": pipeline.default_size}
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", default=["tiny", "mid"], choices=["tiny", "mid", "full"])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--frames", type=int, default=14)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dtype", default="auto")
    args = parser.parse_args()
    diffusers_logging.set_verbosity_error()  # dtype-cast notices from .to()
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, {args.frames} frames, {args.steps} steps")
    header = f"| size | device/dtype | image | {' | '.join(STAGES)} | s/step | total s | peak memory |"
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    for size in args.sizes:
        row = run(size, args)
        stages = " | ".join(f"{row[stage]:.3f}" for stage in STAGES)
        print(
            f"| {size} | {row['device']}/{row['dtype']} | {row['side']}² | {stages} | {row['per_step']:.3f} "
            f"| {row['total']:.2f} | {row['memory']} |"
        )


if __name__ == "__main__":
    main()
