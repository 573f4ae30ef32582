"""Randomly initialised but complete Puppet-Master pipelines: tiny (tests, CPU demos), mid, full.

Every component is the real class, so saving, loading and sampling exercise the same code as the
published model. ``tiny`` uses very small configs (GroupNorm needs channel multiples of 32) and a
UNet ``sample_size`` of 8 latents, so its native model image is 64 x 64 pixels. ``full`` has the
published architecture of every component (SVD's VAE and CLIP ViT-H/14, the Puppet-Master UNet) at
256 x 256, for GPU timing and memory checks without the weights; ``mid`` sits in between.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from diffusers import AutoencoderKLTemporalDecoder, EulerDiscreteScheduler
from transformers import CLIPImageProcessorPil, CLIPVisionConfig, CLIPVisionModelWithProjection

from ..models import UNetDragSpatioTemporalModel
from ..models.configs import TINY_UNET_CONFIG, UNET_CONFIGS
from .pipeline import PuppetMasterPipeline

# Stable Video Diffusion img2vid's scheduler config (v-prediction, Karras sigmas, continuous
# timesteps 0.25 * log(sigma)); the published Puppet-Master demo samples with it.
SVD_SCHEDULER_CONFIG = dict(
    beta_end=0.012,
    beta_schedule="scaled_linear",
    beta_start=0.00085,
    interpolation_type="linear",
    num_train_timesteps=1000,
    prediction_type="v_prediction",
    sigma_max=700.0,
    sigma_min=0.002,
    steps_offset=1,
    timestep_spacing="leading",
    timestep_type="continuous",
    use_karras_sigmas=True,
)

TINY_SAMPLE_SIZE = 8


def build_tiny_pipeline(seed: int = 0) -> PuppetMasterPipeline:
    """All five components, tiny and random (seeded)."""
    torch.manual_seed(seed)
    cross_dim = TINY_UNET_CONFIG["cross_attention_dim"]
    vae = AutoencoderKLTemporalDecoder(
        block_out_channels=(32, 32, 32, 32),
        down_block_types=("DownEncoderBlock2D",) * 4,
        layers_per_block=1,
        latent_channels=4,
    )
    image_encoder = CLIPVisionModelWithProjection(
        CLIPVisionConfig(
            hidden_size=32,
            intermediate_size=37,
            num_hidden_layers=1,
            num_attention_heads=4,
            image_size=224,
            patch_size=32,
            projection_dim=cross_dim,
        )
    )
    feature_extractor = CLIPImageProcessorPil(crop_size=224, size={"shortest_edge": 224})
    scheduler = EulerDiscreteScheduler(**SVD_SCHEDULER_CONFIG)
    unet = UNetDragSpatioTemporalModel(**TINY_UNET_CONFIG, sample_size=TINY_SAMPLE_SIZE)
    return PuppetMasterPipeline(vae, image_encoder, feature_extractor, scheduler, unet)


# VAE and CLIP sizes per pipeline size; "full" is SVD img2vid's (its temporal-decoder VAE and
# CLIP ViT-H/14 with a 1024-d projection).
_FOUR_BLOCKS = ("DownEncoderBlock2D",) * 4
_VAE_CONFIGS = {
    "mid": dict(block_out_channels=(64, 128, 128, 128), down_block_types=_FOUR_BLOCKS, layers_per_block=1),
    "full": dict(block_out_channels=(128, 256, 512, 512), down_block_types=_FOUR_BLOCKS, layers_per_block=2),
}
_CLIP_CONFIGS = {
    "mid": dict(hidden_size=256, intermediate_size=1024, num_hidden_layers=4, num_attention_heads=4, patch_size=14),
    "full": dict(hidden_size=1280, intermediate_size=5120, num_hidden_layers=32, num_attention_heads=16, patch_size=14),
}


def build_random_pipeline(size: str = "tiny", seed: int = 0) -> PuppetMasterPipeline:
    """A random pipeline of the given size (``tiny``, ``mid`` or ``full``); mid/full run at 256 x 256."""
    if size == "tiny":
        return build_tiny_pipeline(seed)
    if size not in _VAE_CONFIGS:
        raise ValueError(f"size must be tiny, mid or full, got {size!r}")
    torch.manual_seed(seed)
    unet = UNetDragSpatioTemporalModel(**UNET_CONFIGS[size], sample_size=32)
    cross_dim = unet.config.cross_attention_dim
    cross_dim = cross_dim if isinstance(cross_dim, int) else cross_dim[0]
    vae = AutoencoderKLTemporalDecoder(**_VAE_CONFIGS[size])
    clip_config = CLIPVisionConfig(image_size=224, projection_dim=cross_dim, **_CLIP_CONFIGS[size])
    image_encoder = CLIPVisionModelWithProjection(clip_config)
    feature_extractor = CLIPImageProcessorPil(crop_size=224, size={"shortest_edge": 224})
    scheduler = EulerDiscreteScheduler(**SVD_SCHEDULER_CONFIG)
    return PuppetMasterPipeline(vae, image_encoder, feature_extractor, scheduler, unet)


def make_tiny_model(directory: str | os.PathLike, seed: int = 0) -> Path:
    """Save :func:`build_tiny_pipeline` as a model folder that ``PuppetMasterPipeline.from_pretrained`` reads."""
    path = Path(directory)
    build_tiny_pipeline(seed).save_pretrained(path)
    return path
