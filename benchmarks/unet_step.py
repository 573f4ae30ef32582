"""Time one denoising step of the Puppet-Master UNet against diffusers' plain SVD UNet of the same size.

What is measured, in one run and side by side (interleaved a, b, c, a, b, c, ... within every repeat
so that clock and thermal drift hit all variants alike):

(a) ``plain``: diffusers' ``UNetSpatioTemporalConditionModel`` with the same blocks, channels, heads,
    layers and cross-attention width, fed ``added_time_ids`` of shape ``(B, 3)`` as SVD is;
(b) ``ours, drags prepared once``: ``UNetDragSpatioTemporalModel`` given the ``DragConditioning`` from
    ``prepare_drag_conditioning`` (computed outside the timed region), the real sampling path;
(c) ``ours, raw drags each step``: the same model given the raw drags, so every step redoes the
    drag encoding and drag embedders; (c) - (b) is what the per-video cache saves per step.

One "step" is one UNet forward pass at batch 2 (classifier-free guidance), 14 frames, 32x32 latents,
3 active drags of 5, random weights, under ``torch.inference_mode``. The table gives the median and
the best milliseconds per step over the repeats, each as a ratio to (a), and the peak memory of one
step (CUDA: the allocator's peak above what was allocated before the step; CPU: the growth of the
process's resident set size, sampled by a background thread, above its level after returning freed
heap to the OS).

Target: (b) / (a) <= 1.05. The drag branch adds per-step work (modulation, drag-token sampling and
MLPs, a longer cross-attention context) while the all-to-first spatial attention computes keys and
values from frame 0 only, less work than plain self-attention over every frame.

On a CPU shared with other work, use fewer torch threads than cores (``--threads 1`` on 2 cores):
with every core in use, a busy core stalls the others and step times vary many-fold at random.

Usage::

    python benchmarks/unet_step.py --size mid --repeats 3
    python benchmarks/unet_step.py --size mid --repeats 5 --threads 1   # shared CPU
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import math
import os
import platform
import statistics
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import diffusers
import psutil  # installed with accelerate, a project dependency
import torch
from diffusers import UNetSpatioTemporalConditionModel

from backend.models import UNetDragSpatioTemporalModel
from backend.models.configs import UNET_CONFIGS
from backend.models.unet_drag import SVD_CONFIG_KEYS

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
NUM_DRAGS = 5
ACTIVE_DRAGS = 3
# SVD's added-time ids: fps - 1, motion bucket id, noise-augmentation strength
SVD_ADDED_TIME_IDS = (6.0, 127.0, 0.02)
# SVD feeds the UNet 0.25 * log(sigma); sigma = 1, mid-schedule
TIMESTEP = 0.25 * math.log(1.0)
RSS_SAMPLE_INTERVAL_S = 0.001
# glibc mallopt parameters
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3


@dataclass
class Variant:
    name: str
    step: Callable[[], torch.Tensor]
    times_ms: list[float]
    peak_memory_bytes: int = 0


# ---------------------------------------------------------------------------------------------- memory


def _glibc() -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:
        return None


def keep_freed_heap() -> bool:
    """Make glibc keep freed memory in the process instead of returning it to the OS after every tensor.

    By default glibc unmaps large freed blocks, so every step faults its activations in afresh: on
    the 2-core development VM, ~800k minor page faults and 1-2 s of kernel time per mid-size step,
    none with this setting. A caching allocator (jemalloc, tcmalloc, as PyTorch's CPU tuning guide
    recommends) avoids this too. The same for every variant, it makes the timing measure the model
    rather than the kernel's paging. Returns whether glibc accepted the setting.
    """
    libc = _glibc()
    if libc is None or not hasattr(libc, "mallopt"):
        return False
    return bool(libc.mallopt(M_MMAP_THRESHOLD, 2**30)) and bool(libc.mallopt(M_TRIM_THRESHOLD, 2**30))


def _release_freed_heap() -> None:
    """Return freed heap pages to the OS (glibc), so that RSS growth counts a step's own allocations."""
    gc.collect()
    libc = _glibc()
    if libc is not None and hasattr(libc, "malloc_trim"):
        libc.malloc_trim(0)  # else RSS growth undercounts memory the allocator reuses


class PeakRssSampler:
    """Peak resident set size of this process above its level at ``__enter__``, sampled by a thread."""

    def __init__(self, interval_s: float = RSS_SAMPLE_INTERVAL_S):
        self.interval_s = interval_s
        self.process = psutil.Process()
        self.baseline = 0
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.process.memory_info().rss)
            time.sleep(self.interval_s)

    def __enter__(self) -> PeakRssSampler:
        self.baseline = self.peak = self.process.memory_info().rss
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.process.memory_info().rss)

    @property
    def growth(self) -> int:
        return self.peak - self.baseline


def measure_peak_memory(step: Callable[[], torch.Tensor], device: torch.device) -> int:
    """Bytes one call of ``step`` needs above what is already held (CUDA allocator peak, or CPU RSS)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        before = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        step()
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device) - before
    _release_freed_heap()
    with PeakRssSampler() as sampler:
        step()
    return sampler.growth


# ---------------------------------------------------------------------------------------------- models


def cast(model: torch.nn.Module, dtype: torch.dtype) -> torch.nn.Module:
    # diffusers' ModelMixin.to(dtype) logs a warning on every cast, even a no-op one
    return model if dtype == torch.float32 else model.to(dtype=dtype)


def build_models(
    size: str, device: torch.device, dtype: torch.dtype, num_frames: int
) -> tuple[UNetSpatioTemporalConditionModel, UNetDragSpatioTemporalModel]:
    """Ours from the named config and diffusers' plain SVD UNet of the same architecture, one after the other."""
    torch.manual_seed(0)
    with torch.device(device):
        ours = UNetDragSpatioTemporalModel(**UNET_CONFIGS[size], num_frames=num_frames)
    ours = cast(ours, dtype).eval()
    # same blocks, channels, heads, layers, cross-attention width and added-time sizes as ours
    plain_config = {key: ours.config[key] for key in SVD_CONFIG_KEYS if key in ours.config}
    torch.manual_seed(0)
    with torch.device(device):
        plain = UNetSpatioTemporalConditionModel(**plain_config)
    plain = cast(plain, dtype).eval()
    return plain, ours


def random_drags(batch: int, num_frames: int, generator: torch.Generator) -> torch.Tensor:
    """``(batch, frames, 5, 4)`` drags in [0, 1]: 3 straight-line trajectories, 2 empty slots."""
    start = 0.2 + 0.6 * torch.rand(batch, 1, ACTIVE_DRAGS, 2, generator=generator)
    end = 0.2 + 0.6 * torch.rand(batch, 1, ACTIVE_DRAGS, 2, generator=generator)
    progress = torch.linspace(0, 1, num_frames)[None, :, None, None]  # [1, F, 1, 1]
    current = start + (end - start) * progress  # [B, F, K, 2]
    drags = torch.zeros(batch, num_frames, NUM_DRAGS, 4)
    drags[:, :, :ACTIVE_DRAGS, 0:2] = start.expand(-1, num_frames, -1, -1)
    drags[:, :, :ACTIVE_DRAGS, 2:4] = current
    return drags


def make_variants(
    plain: UNetSpatioTemporalConditionModel,
    ours: UNetDragSpatioTemporalModel,
    args: argparse.Namespace,
    device: torch.device,
    dtype: torch.dtype,
) -> list[Variant]:
    generator = torch.Generator().manual_seed(0)
    latent_channels = ours.config.out_channels
    cross_attention_dim = ours.config.cross_attention_dim
    if not isinstance(cross_attention_dim, int):
        cross_attention_dim = cross_attention_dim[0]
    shape = (args.batch, args.frames, latent_channels, args.latent, args.latent)

    def randn(*size: int) -> torch.Tensor:
        return torch.randn(*size, generator=generator).to(device=device, dtype=dtype)

    sample = randn(*shape)
    image_latents = randn(args.batch, latent_channels, args.latent, args.latent)
    clip_embedding = randn(args.batch, 1, cross_attention_dim)
    timestep = torch.full((args.batch,), TIMESTEP, device=device)
    added_time_ids = torch.tensor([SVD_ADDED_TIME_IDS] * args.batch, device=device, dtype=dtype)  # [B, 3]
    drags = random_drags(args.batch, args.frames, generator).to(device)
    # the real sampling path: step-invariant drag work done once per video, outside the timed region
    prepared = ours.prepare_drag_conditioning(drags, args.latent)

    def plain_step() -> torch.Tensor:
        # SVD's pipeline concatenates the image latent to every frame; ours does it inside forward
        # [B, F, 4, h, w] + [B, 4, h, w] -> [B, F, 8, h, w]
        frames_image = image_latents[:, None].expand(-1, args.frames, -1, -1, -1)
        unet_input = torch.cat([sample, frames_image], dim=2)
        return plain(unet_input, timestep, clip_embedding, added_time_ids, return_dict=False)[0]

    def ours_prepared_step() -> torch.Tensor:
        return ours(sample, timestep, image_latents, clip_embedding, prepared, return_dict=False)[0]

    def ours_raw_step() -> torch.Tensor:
        return ours(sample, timestep, image_latents, clip_embedding, drags, return_dict=False)[0]

    return [
        Variant("(a) plain diffusers SVD UNet", plain_step, []),
        Variant("(b) ours, drags prepared once", ours_prepared_step, []),
        Variant("(c) ours, raw drags each step", ours_raw_step, []),
    ]


# ---------------------------------------------------------------------------------------------- timing


def timed_ms(step: Callable[[], torch.Tensor], device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return (time.perf_counter() - start) * 1000


def run_interleaved(variants: list[Variant], repeats: int, warmup: int, device: torch.device) -> None:
    """Warm up, then time every variant once per repeat, in turn (a, b, c, a, b, c, ...)."""
    for round_index in range(warmup):
        warmup_ms = [timed_ms(variant.step, device) for variant in variants]
        print(f"warmup {round_index + 1}/{warmup}: " + ", ".join(f"{ms:.0f} ms" for ms in warmup_ms))
    for repeat in range(repeats):
        for variant in variants:
            variant.times_ms.append(timed_ms(variant.step, device))
        print(f"repeat {repeat + 1}/{repeats}: " + ", ".join(f"{v.times_ms[-1]:.0f} ms" for v in variants))


# ---------------------------------------------------------------------------------------------- report


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return f"{line.split(':', 1)[1].strip()} ({psutil.cpu_count()} logical cores)"
    except OSError:
        pass
    return f"{platform.processor() or platform.machine()} ({psutil.cpu_count()} logical cores)"


def print_header(
    args: argparse.Namespace, device: torch.device, plain: torch.nn.Module, ours: torch.nn.Module, heap_kept: bool
) -> None:
    def millions(model: torch.nn.Module) -> str:
        return f"{sum(p.numel() for p in model.parameters()) / 1e6:.1f} M"

    print(f"torch {torch.__version__}, diffusers {diffusers.__version__}, python {platform.python_version()}")
    print(f"device: {device} - {device_name(device)}; torch threads: {torch.get_num_threads()}")
    if device.type == "cpu":
        print(f"glibc keeps freed heap in the process (see keep_freed_heap): {'yes' if heap_kept else 'NO'}")
        print(f"load average before the run (1/5/15 min): {' '.join(f'{load:.2f}' for load in os.getloadavg())}")
    print(f"size: {args.size} {UNET_CONFIGS[args.size] or '(published defaults)'}")
    print(
        f"step: batch {args.batch}, {args.frames} frames, {args.latent}x{args.latent} latents, "
        f"{ACTIVE_DRAGS} of {NUM_DRAGS} drags, dtype {args.dtype}, warmup {args.warmup}, repeats {args.repeats}"
    )
    print(f"parameters: plain {millions(plain)}, ours {millions(ours)}")


def print_table(variants: list[Variant], device: torch.device) -> None:
    """Median and best step per variant, each as a ratio to (a); the best is the one least hit by noise."""
    memory_title = "peak memory (CUDA max_allocated)" if device.type == "cuda" else "peak memory (CPU RSS growth)"
    medians = [statistics.median(v.times_ms) for v in variants]
    bests = [min(v.times_ms) for v in variants]
    rows = [
        (
            v.name,
            f"{median:.1f}",
            f"{median / medians[0]:.3f}",
            f"{best:.1f}",
            f"{best / bests[0]:.3f}",
            f"{v.peak_memory_bytes / 2**20:.0f} MiB",
        )
        for v, median, best in zip(variants, medians, bests, strict=True)
    ]
    header = ("variant", "ms/step (median)", "ratio vs plain", "ms/step (min)", "ratio (min)", memory_title)
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]

    def line(cells: tuple[str, ...]) -> str:
        return "| " + " | ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True)) + " |"

    print()
    print(line(header))
    print("|" + "|".join("-" * (width + 2) for width in widths) + "|")
    for row in rows:
        print(line(row))
    ratio_median, ratio_min = medians[1] / medians[0], bests[1] / bests[0]
    print(f"\ntarget: (b) / (a) <= 1.05; measured {ratio_median:.3f} (median), {ratio_min:.3f} (min)")


# ---------------------------------------------------------------------------------------------- main


def main(args: argparse.Namespace) -> None:
    device = torch.device(args.device)
    dtype = DTYPES[args.dtype or ("bf16" if device.type == "cuda" else "fp32")]
    args.dtype = {value: key for key, value in DTYPES.items()}[dtype]
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    heap_kept = device.type == "cpu" and keep_freed_heap()
    if device.type == "cpu" and torch.get_num_threads() >= (psutil.cpu_count() or 1) and os.getloadavg()[0] > 0.5:
        # measured on the 2-core VM: a tiny step went from 0.4 s to 8.5 s with one core taken by other work
        warnings.warn(
            f"other processes are using the CPU (load {os.getloadavg()[0]:.1f}) and torch uses every core "
            f"({torch.get_num_threads()} threads): its threads wait on each other and steps can take many times "
            "longer, at random. Use --threads 1 (or fewer threads than free cores) for stable ratios.",
            stacklevel=1,
        )
    if args.size == "full" and device.type == "cpu":
        warnings.warn("--size full on CPU is very slow (minutes per step, ~13 GB of weights)", stacklevel=1)

    with torch.inference_mode():
        plain, ours = build_models(args.size, device, dtype, args.frames)
        print_header(args, device, plain, ours, heap_kept)
        variants = make_variants(plain, ours, args, device, dtype)
        run_interleaved(variants, args.repeats, args.warmup, device)
        # memory in its own pass: the CPU sampling thread would otherwise perturb the timings
        for variant in variants:
            variant.peak_memory_bytes = measure_peak_memory(variant.step, device)
    print_table(variants, device)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=sorted(UNET_CONFIGS), default="mid", help="UNet config (configs.py)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", choices=sorted(DTYPES), default=None, help="default: fp32 on CPU, bf16 on CUDA")
    parser.add_argument("--repeats", type=int, default=3, help="timed steps per variant (median reported)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps per variant first")
    parser.add_argument("--frames", type=int, default=14)
    parser.add_argument("--latent", type=int, default=32, help="latent height and width")
    parser.add_argument("--batch", type=int, default=2, help="2 = one video with classifier-free guidance")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    args = parser.parse_args()
    threads = 1 if args.threads is None else args.threads
    if args.repeats < 1 or args.warmup < 0 or min(args.frames, args.latent, args.batch, threads) < 1:
        parser.error(
            "need --repeats >= 1, --warmup >= 0 and positive --frames/--latent/--batch/--threads, got "
            f"repeats={args.repeats}, warmup={args.warmup}, frames={args.frames}, latent={args.latent}, "
            f"batch={args.batch}, threads={args.threads}"
        )
    return args


if __name__ == "__main__":
    main(parse_args())
