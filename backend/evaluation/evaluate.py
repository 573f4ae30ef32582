"""``puppet-master evaluate``: Puppet-Master against baselines on the authors' Drag-a-Move test batches.

Each test example is one pickle holding ``latents`` ``(1, F, 4, h, w)`` (VAE latents times 0.18215),
``cond_latent`` ``(1, 4, h, w)``, ``embedding`` ``(1, 1, D)`` and ``drags`` ``(1, F, 5, 4)``, plus
metadata; the published batches also carry ``NNNNN.gif``, the example's frames as a GIF.

- With ``--model``: the model generates from exactly that conditioning; the ground truth is the
  decoded ``latents``; the baselines are scored against the same decoded frames.
- Without a model (no VAE, no GPU): the ground truth is the published GIF's frames, resized to the
  model's 256 x 256 (Lanczos), and only the baselines are scored.

Baselines: the static first frame, and the weight-free preview engine moving the parts of the first
frame along the drags. Metrics: PSNR and SSIM on frames 1..F-1 — frame 0 is the input every method is
given, so it is reported apart (``frame0_psnr``) rather than averaged in — per example and on
average, with the number of examples each method beats the static frame on (PSNR). LPIPS and FVD need
network weights that are not shipped; they are reported as unavailable.

Pickles can run code when loaded: only evaluate test batches from a source you trust. The loader
below accepts only the classes such batches are made of (tensors, arrays, plain containers).
"""

from __future__ import annotations

import argparse
import csv
import io
import logging
import math
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageSequence

from ..engines.preview import warp_preview
from ..pipeline.pipeline import PuppetMasterPipeline
from ..pipeline.preprocess import MODEL_IMAGE_SIZE
from .metrics import psnr, ssim

logger = logging.getLogger(__name__)

REQUIRED_KEYS = ("latents", "cond_latent", "embedding", "drags")
LATENT_SCALE = 0.18215
# Globals a test batch may reference: tensor/array rebuilders and plain containers.
_ALLOWED_GLOBALS = {
    ("collections", "OrderedDict"),
    ("torch._utils", "_rebuild_tensor_v2"),
    ("torch._utils", "_rebuild_parameter"),
    ("torch.storage", "_load_from_bytes"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
}
_ALLOWED_MODULE_PREFIXES = ("torch",)  # storage classes such as torch.FloatStorage


class _TestBatchUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) in _ALLOWED_GLOBALS or (module == "torch" and name.endswith("Storage")):
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"test batch references {module}.{name}, which a test batch never needs")


def load_test_batch(path: str | Path) -> dict:
    """One Drag-a-Move example as tensors; ValueError naming what is missing or malformed."""
    with open(path, "rb") as handle:
        data = _TestBatchUnpickler(io.BytesIO(handle.read())).load()
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a dict, got {type(data).__name__}")
    missing = [key for key in REQUIRED_KEYS if key not in data]
    if missing:
        raise ValueError(f"{path}: missing {missing} (has {sorted(data)})")
    batch = {key: torch.as_tensor(np.asarray(data[key]) if not torch.is_tensor(data[key]) else data[key]).float()
             for key in REQUIRED_KEYS}  # fmt: skip
    frames = batch["latents"].shape[1]
    if batch["latents"].ndim != 5 or batch["drags"].shape[:2] != (1, frames) or batch["drags"].shape[-1] != 4:
        raise ValueError(
            f"{path}: latents {tuple(batch['latents'].shape)} and drags {tuple(batch['drags'].shape)} do not "
            "match the (1, F, 4, h, w) / (1, F, K, 4) layout"
        )
    return batch


STATIC = "static first frame"
PREVIEW = "preview"


@dataclass
class ExampleScores:
    """One method on one example: PSNR and SSIM on frames 1..F-1, and PSNR on frame 0 alone."""

    name: str
    method: str
    psnr: float
    ssim: float
    frame0_psnr: float


def score_video(name: str, method: str, video: torch.Tensor, truth: torch.Tensor) -> ExampleScores:
    """Scores of an ``(F, 3, H, W)`` video in [0, 1] against the ground truth: frames 1..F-1, and frame 0 apart."""
    later, first = video[1:], video[:1]
    return ExampleScores(name, method, psnr(later, truth[1:]), ssim(later, truth[1:]), psnr(first, truth[:1]))


def baseline_videos(truth: torch.Tensor, drags: torch.Tensor) -> dict[str, torch.Tensor]:
    """The static first frame and the preview, both made from the ground truth's frame 0 and the drags."""
    return {STATIC: truth[:1].repeat(truth.shape[0], 1, 1, 1), PREVIEW: preview_baseline(truth[0], drags)}


def drag_trajectories(drags: torch.Tensor) -> list[np.ndarray]:
    """``(F, K, 4)`` drags -> per present drag, its ``(F, 2)`` positions."""
    present = drags.ne(0).any(dim=-1).any(dim=0)
    return [drags[:, k, 2:4].numpy().astype(np.float64) for k in range(drags.shape[1]) if present[k]]


def preview_baseline(first_frame: torch.Tensor, drags: torch.Tensor) -> torch.Tensor:
    """The preview of the first frame ``(3, H, W)`` along the drags; the object is every not-quite-white pixel.

    The batches carry no part map, so the preview grows each dragged part from the image.
    """
    image = (first_frame.permute(1, 2, 0).clamp(0, 1) * 255).round().byte().numpy()
    mask = (image < 245).any(axis=-1)
    tracks = drag_trajectories(drags)
    if not tracks or not mask.any():
        return first_frame[None].repeat(drags.shape[0], 1, 1, 1)
    frames = warp_preview(image, mask, tracks)
    return torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255


@torch.no_grad()
def evaluate_example(pipe: PuppetMasterPipeline, batch: dict, name: str, steps: int, guidance: float, seed: int):
    device = pipe._execution_device
    truth = pipe.decode_latents(batch["latents"].to(device))[0].cpu()  # [F, 3, H, W] in [0, 1]
    side = truth.shape[-1]
    generated = pipe(
        None, batch["drags"].clamp(0, 1), height=side, width=side, num_inference_steps=steps,
        guidance_scale=guidance, generator=torch.Generator().manual_seed(seed), output_type="pt",
        image_latents=batch["cond_latent"], image_embeddings=batch["embedding"],
    ).frames[0].cpu()  # fmt: skip
    candidates = {"puppet-master": generated} | baseline_videos(truth, batch["drags"][0])
    return [score_video(name, method, video, truth) for method, video in candidates.items()]


def load_published_frames(gif_path: Path, size: int = MODEL_IMAGE_SIZE) -> torch.Tensor:
    """The frames of a published example's GIF as ``(F, 3, size, size)`` in [0, 1] (Lanczos resize)."""
    if not gif_path.is_file():
        raise FileNotFoundError(
            f"{gif_path} is missing: without --model the ground truth is the published GIF beside each .pkl "
            "(the authors' DragAMove-test-batches folder has both); pass --model to score against decoded latents"
        )
    with Image.open(gif_path) as gif:
        frames = [np.asarray(frame.convert("RGB").resize((size, size), Image.Resampling.LANCZOS))
                  for frame in ImageSequence.Iterator(gif)]  # fmt: skip
    return torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).float() / 255


def evaluate_published(path: Path) -> list[ExampleScores]:
    """The baselines on one example against its published GIF frames (no model, no VAE)."""
    batch = load_test_batch(path)
    truth = load_published_frames(path.with_suffix(".gif"))
    drags = batch["drags"][0]
    if truth.shape[0] != drags.shape[0]:
        raise ValueError(f"{path.with_suffix('.gif')} has {truth.shape[0]} frames but the drags have {drags.shape[0]}")
    return [score_video(path.stem, method, video, truth) for method, video in baseline_videos(truth, drags).items()]


def write_report(scores: list[ExampleScores], out_dir: Path) -> tuple[Path, Path]:
    """Per-example CSV and a Markdown table of the means per method."""
    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path, markdown_path = out_dir / "scores.csv", out_dir / "scores.md"
    with open(csv_path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["example", "method", "psnr", "ssim", "frame0_psnr"])
        for row in scores:
            writer.writerow([row.name, row.method, f"{row.psnr:.4f}", f"{row.ssim:.4f}", f"{row.frame0_psnr:.4f}"])
    methods = list(dict.fromkeys(row.method for row in scores))
    static = {row.name: row.psnr for row in scores if row.method == STATIC}
    lines = [
        "| method | PSNR (dB) ↑ | SSIM ↑ | LPIPS ↓ | FVD ↓ | beats static (PSNR) | frame 0 PSNR (dB) | examples |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for method in methods:
        rows = [row for row in scores if row.method == method]
        mean_psnr = float(np.mean([row.psnr for row in rows]))
        mean_ssim = float(np.mean([row.ssim for row in rows]))
        frame0 = float(np.mean([row.frame0_psnr for row in rows]))
        beats = "—" if method == STATIC else str(sum(row.psnr > static.get(row.name, math.inf) for row in rows))
        lines.append(
            f"| {method} | {mean_psnr:.2f} | {mean_ssim:.4f} | n/a | n/a | {beats} | {frame0:.2f} | {len(rows)} |"
        )
    lines.append("")
    lines.append("PSNR and SSIM on frames 1..F-1; frame 0, the input every method is given, apart.")
    lines.append("LPIPS and FVD need network weights (VGG/AlexNet, I3D) that are not available offline: n/a.")
    markdown_path.write_text("\n".join(lines) + "\n")
    return csv_path, markdown_path


def print_report(scores: list[ExampleScores], out: str) -> int:
    """Write and print the report; 0 for the CLI."""
    csv_path, markdown_path = write_report(scores, Path(out))
    print(markdown_path.read_text())
    print(f"per-example scores: {csv_path}")
    return 0


def main(args: argparse.Namespace) -> int:
    from ..engines.config import EngineConfig
    from ..engines.diffusion import load_pipeline
    from ..engines.factory import with_fetched_weights

    files = sorted(Path(args.batches).glob("*.pkl"))[: args.limit or None]
    if not files:
        raise FileNotFoundError(f"no test batches (*.pkl) in {args.batches!r}")
    if args.model is None:
        logger.info("no model: scoring the baselines against the published GIF frames of %d examples", len(files))
        return print_report([score for path in files for score in evaluate_published(path)], args.out)
    pipe, identity = load_pipeline(with_fetched_weights(EngineConfig.from_mapping(args)))
    logger.info("evaluating %s on %d examples", identity, len(files))
    scores: list[ExampleScores] = []
    for index, path in enumerate(files, 1):
        scores += evaluate_example(pipe, load_test_batch(path), path.stem, args.steps, args.guidance, args.seed)
        logger.info("%d/%d %s", index, len(files), path.name)
    return print_report(scores, args.out)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("evaluate", help="PSNR/SSIM on Drag-a-Move test batches, with baselines")
    parser.add_argument(
        "--model",
        default=None,
        help="a Puppet-Master pipeline folder; without it only the baselines are scored, against the published GIFs",
    )
    parser.add_argument("--batches", required=True, help="folder of test batches (*.pkl, the authors' format)")
    parser.add_argument("--out", required=True, help="folder for scores.csv and scores.md")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--guidance", type=float, default=5.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--limit", type=int, default=0, help="evaluate only the first N examples (0 = all)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dtype", default="auto")
    parser.set_defaults(handler=main)
