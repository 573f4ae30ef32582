"""Frame-quality metrics on ``(F, 3, H, W)`` videos in [0, 1]: PSNR and SSIM (Wang et al. 2004)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def psnr(prediction: torch.Tensor, target: torch.Tensor) -> float:
    """Peak signal-to-noise ratio in dB over the whole video (inf for identical videos)."""
    mse = F.mse_loss(prediction.float(), target.float()).item()
    return math.inf if mse == 0 else 10 * math.log10(1.0 / mse)


def _gaussian_window(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    coords = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    kernel = torch.exp(-(coords**2) / (2 * sigma**2))
    kernel = kernel / kernel.sum()
    return (kernel[:, None] * kernel[None, :]).float()


def ssim(prediction: torch.Tensor, target: torch.Tensor, window_size: int = 11) -> float:
    """Mean structural similarity over frames and channels (Gaussian 11x11 window, sigma 1.5, valid region)."""
    x, y = prediction.float(), target.float()
    channels = x.shape[1]
    window = _gaussian_window(window_size).to(x.device)[None, None].expand(channels, 1, -1, -1)

    def blur(image: torch.Tensor) -> torch.Tensor:
        return F.conv2d(image, window, groups=channels)

    c1, c2 = 0.01**2, 0.03**2
    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x**2
    var_y = blur(y * y) - mu_y**2
    cov = blur(x * y) - mu_x * mu_y
    numerator = (2 * mu_x * mu_y + c1) * (2 * cov + c2)
    denominator = (mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2)
    return (numerator / denominator).mean().item()
