"""Shared fixtures: a tiny Puppet-Master UNet and matching random inputs."""

from __future__ import annotations

import pytest
import torch

from backend.models import UNetDragSpatioTemporalModel
from backend.models.configs import TINY_UNET_CONFIG

TINY_CROSS_DIM = TINY_UNET_CONFIG["cross_attention_dim"]


@pytest.fixture(autouse=True, scope="session")
def isolated_puppet_master_home(tmp_path_factory: pytest.TempPathFactory):
    """Every test (and every server or CLI it starts) sees an empty data folder, never weights or results
    this machine's user fetched: PUPPET_MASTER_HOME points at a fresh temporary folder."""
    patcher = pytest.MonkeyPatch()
    patcher.setenv("PUPPET_MASTER_HOME", str(tmp_path_factory.mktemp("puppet-master-home")))
    yield
    patcher.undo()


@pytest.fixture
def tiny_unet() -> UNetDragSpatioTemporalModel:
    torch.manual_seed(0)
    return UNetDragSpatioTemporalModel(**TINY_UNET_CONFIG).eval()


def make_inputs(batch: int = 2, frames: int = 5, size: int = 8, active: int = 2, seed: int = 1) -> dict:
    """Random UNet inputs; drags have ``active`` straight drags and empty remaining slots."""
    generator = torch.Generator().manual_seed(seed)
    drags = torch.zeros(batch, frames, 5, 4)
    start = torch.rand(batch, active, 2, generator=generator) * 0.8 + 0.1
    end = torch.rand(batch, active, 2, generator=generator) * 0.8 + 0.1
    t = torch.linspace(0, 1, frames)[None, :, None, None]
    drags[:, :, :active, :2] = start[:, None]
    drags[:, :, :active, 2:] = start[:, None] + (end - start)[:, None] * t
    return dict(
        sample=torch.randn(batch, frames, 4, size, size, generator=generator),
        timestep=torch.tensor(0.3),
        image_latents=torch.randn(batch, 4, size, size, generator=generator),
        encoder_hidden_states=torch.randn(batch, 1, TINY_CROSS_DIM, generator=generator),
        drags=drags,
    )


@pytest.fixture
def inputs() -> dict:
    return make_inputs()
