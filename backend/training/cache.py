"""``puppet-master cache-latents``: turn drag samples of rendered clips into cached training examples.

For each sample of ``sample-drags`` (a clip of rendered RGBA frames and its drags in normalised
image coordinates), the clip is cropped exactly as generation crops its input — an object-centred
square from the first frame's alpha, on white, the drags mapped through the same box — and encoded
once with the frozen VAE and CLIP, so training never runs the encoders:

- ``latents``: VAE *samples* of every frame times the scaling factor (the diffusion target),
- ``cond_latent``: the first frame's unscaled VAE latent mean, ``embedding``: its CLIP embedding
  (both exactly as the pipeline computes them at inference),
- ``drags``: ``(F, num_drags, 4)`` in model-image coordinates.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from ..pipeline.inputs import prepare_inputs
from ..pipeline.pipeline import PuppetMasterPipeline
from ..pipeline.preprocess import DEFAULT_CROP_SCALE, crop_to_model_image, segment_onto_white
from .data import write_cached_example

logger = logging.getLogger(__name__)


def load_samples(path: str | Path) -> list[dict]:
    samples = json.loads(Path(path).read_text())
    if not isinstance(samples, list) or not all({"render_dir", "frames", "drags"} <= set(s) for s in samples):
        raise ValueError(f"{path}: expected the list of samples written by sample-drags")
    return samples


def clip_model_frames(sample: dict, size: int, crop_scale: float, num_drags: int):
    """The clip's model-space frames ``(F, 3, s, s)`` in [0, 1] and its ``(F, K, 4)`` drag tensor."""
    root = Path(sample["render_dir"])
    images = [Image.open(root / name) for name in sample["frames"]]
    num_frames = len(images)
    drags = [np.asarray(track, dtype=np.float64) for track in sample["drags"]][:num_drags]
    # the first frame decides the crop (from its alpha) and maps the drags (explicit timing: F points each)
    inputs = prepare_inputs(images[0], drags, num_frames, crop_scale=crop_scale, size=size, num_drag_slots=num_drags)
    frames = [inputs.image] + [crop_to_model_image(segment_onto_white(image)[0], inputs.crop_box, size)
                               for image in images[1:]]  # fmt: skip
    pixels = np.stack([np.asarray(frame.convert("RGB"), dtype=np.float32) / 255 for frame in frames])
    return torch.from_numpy(pixels).permute(0, 3, 1, 2), inputs.drags[0]


@torch.no_grad()
def encode_clip(pipe: PuppetMasterPipeline, frames: torch.Tensor, generator: torch.Generator) -> dict:
    """VAE samples (scaled) of all frames; the first frame's conditioning as the pipeline computes it."""
    device, dtype = pipe._execution_device, pipe.vae.dtype
    embedding, cond_latent = pipe.encode_image(frames[:1])
    posterior = pipe.vae.encode((frames * 2 - 1).to(device, dtype)).latent_dist
    noise = torch.randn(posterior.mean.shape, generator=generator).to(device, dtype)
    latents = (posterior.mean + posterior.std * noise) * pipe.vae.config.scaling_factor
    return {
        "latents": latents.float().cpu(),
        "cond_latent": cond_latent[0].float().cpu(),
        "embedding": embedding[0].float().cpu(),
    }


def load_encoders(model: str | Path | None, svd: str | None, device: str, dtype: str) -> PuppetMasterPipeline:
    """A pipeline whose VAE and CLIP do the encoding: a Puppet-Master folder, or SVD's components alone."""
    from ..devices import resolve_device, resolve_dtype
    from ..engines.config import EngineConfig
    from ..engines.diffusion import load_pipeline

    if model:
        return load_pipeline(EngineConfig(model=str(model), device=device, dtype=dtype))[0]
    if not svd:
        raise ValueError("give --model (a Puppet-Master folder) or --svd (SVD img2vid folder or hub id)")
    torch_device = resolve_device(device)
    components = PuppetMasterPipeline.load_svd_components(svd, resolve_dtype(dtype, torch_device))
    return PuppetMasterPipeline(unet=None, **components).to(torch_device)


def cache_latents(
    samples_file: str | Path,
    model: str | Path | None,
    out_dir: str | Path,
    size: int | None = None,
    crop_scale: float = DEFAULT_CROP_SCALE,
    device: str = "auto",
    dtype: str = "auto",
    seed: int = 0,
    svd: str | None = None,
    num_drags: int = 5,
) -> list[Path]:
    """Encode every sample of ``samples_file`` with the VAE and CLIP of ``model`` (or of ``svd``)."""
    samples = load_samples(samples_file)
    pipe = load_encoders(model, svd, device, dtype)
    size = size or (pipe.default_size if pipe.unet is not None else 256)
    num_drags = pipe.unet.config.num_drags if pipe.unet is not None else num_drags
    generator = torch.Generator().manual_seed(seed)
    written = []
    for index, sample in enumerate(tqdm(samples, desc="caching", unit="clip")):
        path = Path(out_dir) / f"{index:06d}.safetensors"
        if path.exists():  # resumable
            written.append(path)
            continue
        frames, drags = clip_model_frames(sample, size, crop_scale, num_drags)
        written.append(write_cached_example(path, encode_clip(pipe, frames, generator) | {"drags": drags}))
    logger.info("cached %d clips in %s", len(written), out_dir)
    return written


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("cache-latents", help="encode sample-drags clips for training (VAE + CLIP)")
    parser.add_argument("samples", help="drags.json written by sample-drags")
    parser.add_argument("--model", help="a Puppet-Master pipeline folder whose VAE and CLIP encode the clips")
    parser.add_argument("--svd", help="or an SVD img2vid folder / hub id (its VAE and CLIP)")
    parser.add_argument("--out", required=True, help="folder for the cached examples")
    parser.add_argument("--size", type=int, default=None, help="model image side (default: the model's)")
    parser.add_argument("--crop-scale", type=float, default=DEFAULT_CROP_SCALE)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--seed", type=int, default=0)
    parser.set_defaults(
        handler=lambda args: (
            cache_latents(args.samples, args.model, args.out, args.size, args.crop_scale, args.device, args.dtype,
                          args.seed, args.svd),
            0,
        )[1]
    )  # fmt: skip
