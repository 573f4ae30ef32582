"""The GPU check: speed, memory and half-precision faithfulness of the full pipeline, in one command.

For each precision (fp32, fp16, and bf16 where the card runs it natively) and each offload mode (off,
and on where the device allows it), generates one 14-frame video with 50 guided steps through the
real engine path (``DiffusionEngine.generate``: crop, CLIP/VAE encoding, drag conditioning once per
video, Euler sampling with guidance, temporal VAE decode, un-crop) and prints one table row:
ms per step, seconds per video, peak GPU memory, and the video's mean and max absolute difference
from the fp32 video of the same seed (in 1/255 units).

Weights: the folder ``puppet-master fetch-weights`` made (or ``--model DIR``) when there is one,
else a random full-size pipeline (same architecture and cost; the differences then measure numerics,
not the published model's behaviour).

    python benchmarks/gpu_check.py                                   # a lent GPU: the whole table
    python benchmarks/gpu_check.py --size tiny --device cpu --steps 2  # CI smoke test

Targets (issue 9) on an H100: bf16 <= 1.5 s per video; peak <= 8 GiB without offload, <= 4 GiB with;
fp16 vs fp32 mean abs difference <= 2/255.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import gc
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from diffusers.utils import logging as diffusers_logging
from PIL import Image
from transformers.utils import logging as transformers_logging

from backend.devices import DTYPES, natively_supports_bf16, resolve_device
from backend.engines import GenerationRequest
from backend.engines.config import EngineConfig
from backend.engines.diffusion import DiffusionEngine, load_pipeline
from backend.paths import find_fetched_model
from backend.pipeline.tiny import build_random_pipeline


@dataclasses.dataclass
class Row:
    dtype: str
    offload: bool
    ms_per_step: float
    seconds_per_video: float
    decode_seconds: float
    peak_gib: float | None
    mean_diff: float | None = None  # vs fp32, in 1/255
    max_diff: float | None = None


def input_image(width: int = 640, height: int = 480) -> Image.Image:
    """A camera-like RGBA render: a box with a lid on a transparent film."""
    pixels = np.zeros((height, width, 4), np.uint8)
    pixels[180:330, 250:400] = [180, 120, 80, 255]
    pixels[150:180, 250:400] = [90, 60, 40, 255]
    return Image.fromarray(pixels)


def request(args: argparse.Namespace, steps: int) -> GenerationRequest:
    return GenerationRequest(
        image=input_image(),
        drags=[np.array([[0.5, 0.33], [0.6, 0.25]]), np.array([[0.45, 0.55], [0.45, 0.6]])],
        num_frames=args.frames, steps=steps, guidance_scale=5.0, seed=args.seed,
    )  # fmt: skip


def dtypes_to_check(device: torch.device, asked: list[str] | None) -> list[str]:
    """fp32 first (the reference), then fp16, then bf16 where the device computes it natively."""
    if asked:
        return sorted(set(asked) | {"fp32"}, key=["fp32", "fp16", "bf16"].index)
    names = ["fp32", "fp16"]
    if device.type == "cpu" or natively_supports_bf16(device):
        names.append("bf16")
    return names


def build_engine(args: argparse.Namespace, device: torch.device, dtype: str, offload: bool, random_base):
    """The engine for one row: fetched/--model weights through the shared loader, or the random pipeline."""
    if random_base is None:
        config = EngineConfig(model=args.model, device=str(device), dtype=dtype, cpu_offload=offload)
        pipeline, identity = load_pipeline(config)
        return DiffusionEngine(pipeline, identity)
    pipeline = copy.deepcopy(random_base).to(dtype=DTYPES[dtype])
    if offload:
        pipeline.enable_model_cpu_offload(device=device)
    else:
        pipeline.to(device)
    pipeline.set_progress_bar_config(disable=True)
    return DiffusionEngine(pipeline, f"random {args.size}")


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def measure(engine: DiffusionEngine, args: argparse.Namespace, device: torch.device) -> tuple[Row, np.ndarray]:
    engine.generate(request(args, steps=2))  # warm-up: kernels, allocator, cuDNN autotuning
    synchronize(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    step_ends: list[float] = []

    def on_step(_step: int, _total: int, phase: str = "sampling") -> None:
        if phase == "sampling":
            synchronize(device)
            step_ends.append(time.perf_counter())

    started = time.perf_counter()
    result = engine.generate(request(args, steps=args.steps), progress=on_step)
    synchronize(device)
    total = time.perf_counter() - started
    # per step: from the end of the first step to the end of the last (excludes encoding and preparation)
    ms_per_step = 1000 * (step_ends[-1] - step_ends[0]) / max(1, len(step_ends) - 1)
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
    row = Row("", False, ms_per_step, total, result.timings.get("decode", float("nan")), peak)
    return row, np.asarray(result.videos[0], dtype=np.float64)


def run(args: argparse.Namespace) -> list[Row]:
    device = resolve_device(args.device)
    fetched = find_fetched_model() if args.size == "full" else None
    args.model = args.model or (str(fetched) if fetched else None)
    random_base = None
    if args.model is None:
        torch.manual_seed(0)
        random_base = build_random_pipeline(args.size)
    offload_modes = [False] if device.type == "cpu" or args.no_offload else [False, True]
    rows: list[Row] = []
    reference: np.ndarray | None = None
    for dtype in dtypes_to_check(device, args.dtypes):
        for offload in offload_modes:
            engine = build_engine(args, device, dtype, offload, random_base)
            row, video = measure(engine, args, device)
            row.dtype, row.offload = dtype, offload
            if dtype == "fp32" and not offload:
                reference = video
            elif reference is not None:
                difference = np.abs(video - reference)
                row.mean_diff, row.max_diff = float(difference.mean()), float(difference.max())
            rows.append(row)
            print(format_row(row), flush=True)
            del engine
            gc.collect()
            if device.type == "cuda":
                torch.cuda.empty_cache()
    return rows


HEADER = "| dtype | offload | ms/step | s/video | decode s | peak GiB | mean abs diff vs fp32 | max abs diff |"


def format_row(row: Row) -> str:
    def number(value: float | None, digits: int) -> str:
        return "—" if value is None else f"{value:.{digits}f}"

    return (
        f"| {row.dtype} | {'yes' if row.offload else 'no'} | {row.ms_per_step:.1f} | {row.seconds_per_video:.2f} | "
        f"{row.decode_seconds:.2f} | {number(row.peak_gib, 2)} | {number(row.mean_diff, 2)}/255 | "
        f"{number(row.max_diff, 0)}/255 |"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=["tiny", "mid", "full"], default="full", help="random pipeline size")
    parser.add_argument("--model", help="a pipeline folder (default: the fetched one, for --size full)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dtypes", nargs="+", choices=list(DTYPES), help="default: fp32, fp16, bf16 if native")
    parser.add_argument("--no-offload", action="store_true", help="skip the CPU-offload rows")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--frames", type=int, default=14)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="also write the rows to this JSON file")
    args = parser.parse_args(argv)
    diffusers_logging.set_verbosity_error()  # casting notices for every row
    transformers_logging.set_verbosity_error()
    device = resolve_device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else device.type
    print(f"device: {name}; torch {torch.__version__}; {args.steps} steps, {args.frames} frames; size {args.size}")
    print(HEADER)
    print("|---" * (HEADER.count("|") - 1) + "|")
    rows = run(args)
    print(f"weights: {args.model or f'random {args.size} pipeline'}")
    if args.json:
        Path(args.json).write_text(json.dumps([dataclasses.asdict(row) for row in rows], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
