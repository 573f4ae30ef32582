"""A tiny, randomly initialised but complete Puppet-Master pipeline, for tests and CPU demos.

Every component is the real class with a very small config (GroupNorm needs channel multiples of
32), so saving, loading and sampling exercise the same code as the published model. Its UNet
``sample_size`` is 8 latents, so its native model image is 64 x 64 pixels.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from diffusers import AutoencoderKLTemporalDecoder, EulerDiscreteScheduler
from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModelWithProjection

from ..models import UNetDragSpatioTemporalModel
from ..models.configs import TINY_UNET_CONFIG
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
    feature_extractor = CLIPImageProcessor(crop_size=224, size={"shortest_edge": 224})
    scheduler = EulerDiscreteScheduler(**SVD_SCHEDULER_CONFIG)
    unet = UNetDragSpatioTemporalModel(**TINY_UNET_CONFIG, sample_size=TINY_SAMPLE_SIZE)
    return PuppetMasterPipeline(vae, image_encoder, feature_extractor, scheduler, unet)


def make_tiny_model(directory: str | os.PathLike, seed: int = 0) -> Path:
    """Save :func:`build_tiny_pipeline` as a model folder that ``PuppetMasterPipeline.from_pretrained`` reads."""
    path = Path(directory)
    build_tiny_pipeline(seed).save_pretrained(path)
    return path
