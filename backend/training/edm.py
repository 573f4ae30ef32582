"""The EDM-style training objective of Puppet-Master (``shared/spec`` section 4), matched to the sampler.

Stable Video Diffusion's Euler sampler (diffusers' ``EulerDiscreteScheduler`` with v-prediction)
feeds the UNet ``noisy / sqrt(sigma^2 + 1)`` at timestep ``0.25 * log(sigma)`` and recovers the clean
latent as ``out * (-sigma / sqrt(sigma^2 + 1)) + noisy / (sigma^2 + 1)``. Training uses exactly the
same input scaling and reconstruction (the released script omitted the input scaling; we do not),
with ``log(sigma) ~ N(0.7, 1.6^2)`` and the loss weight ``1 + 1 / sigma^2`` (Karras et al. 2022).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..models import UNetDragSpatioTemporalModel


@dataclass(frozen=True)
class EDMConfig:
    """Noise distribution and loss weighting.

    Attributes:
        log_sigma_mean, log_sigma_std: ``log(sigma) ~ N(mean, std^2)``.
        first_frame_weight, last_frame_weight: optional per-frame loss weight ramp (linear over frames).
    """

    log_sigma_mean: float = 0.7
    log_sigma_std: float = 1.6
    first_frame_weight: float = 1.0
    last_frame_weight: float = 1.0


def sample_sigmas(batch: int, config: EDMConfig, generator: torch.Generator | None = None, device=None) -> torch.Tensor:
    """``(batch,)`` noise levels with ``log(sigma) ~ N(mean, std^2)``."""
    normal = torch.randn(batch, generator=generator, device=device)
    return (normal * config.log_sigma_std + config.log_sigma_mean).exp()


def edm_loss(
    unet: UNetDragSpatioTemporalModel,
    latents: torch.Tensor,
    cond_latent: torch.Tensor,
    embedding: torch.Tensor,
    drags: torch.Tensor,
    config: EDMConfig = EDMConfig(),
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Weighted denoising loss for one batch.

    Args:
        unet: the model (in training mode, drag dropout applies inside it).
        latents: ``(B, F, 4, h, w)`` clean video latents, VAE samples times the scaling factor.
        cond_latent: ``(B, 4, h, w)`` unscaled VAE latent mean of the first frame.
        embedding: ``(B, 1, D)`` CLIP image embedding of the first frame.
        drags: ``(B, F, num_drags, 4)``.
    """
    batch, frames = latents.shape[:2]
    sigmas = sample_sigmas(batch, config, generator, latents.device).to(latents.dtype)
    sigma = sigmas[:, None, None, None, None]  # [B] -> [B, 1, 1, 1, 1]
    noise = torch.randn(latents.shape, generator=generator, device=latents.device, dtype=latents.dtype)
    noisy = latents + sigma * noise

    # 1. the sampler's input scaling and timestep
    model_input = noisy / (sigma**2 + 1).sqrt()
    timesteps = 0.25 * sigmas.log()
    prediction = unet(model_input, timesteps, cond_latent, embedding, drags).sample

    # 2. the sampler's reconstruction of the clean latent from a v-prediction
    denoised = prediction * (-sigma / (sigma**2 + 1).sqrt()) + noisy / (sigma**2 + 1)

    # 3. EDM weighting 1 + 1/sigma^2, times an optional ramp over frames
    weight = 1 + 1 / sigma**2
    ramp = torch.linspace(config.first_frame_weight, config.last_frame_weight, frames, device=latents.device)
    weight = weight * ramp[None, :, None, None, None].to(latents.dtype)
    return (weight * (denoised.float() - latents.float()) ** 2).mean()
