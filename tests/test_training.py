"""The EDM objective against the sampler, and the trainer end to end on the tiny model."""

from __future__ import annotations

import argparse
import math

import pytest
import torch
from diffusers import EulerDiscreteScheduler

from backend.pipeline.pipeline import PuppetMasterPipeline
from backend.pipeline.tiny import SVD_SCHEDULER_CONFIG, make_tiny_model
from backend.training import train
from backend.training.data import CachedClipDataset, write_cached_example
from backend.training.edm import EDMConfig, edm_loss, sample_sigmas
from tests.conftest import make_inputs

FRAMES = 4


def record_unet_calls(unet) -> list[dict]:
    """Record every call's ``sample``, ``timestep`` and output of ``unet``."""
    calls: list[dict] = []

    def hook(_module, args, output) -> None:
        sample, timestep = args[:2]
        calls.append({"sample": sample.detach(), "timestep": timestep.detach(), "output": output.sample.detach()})

    unet.register_forward_hook(hook)
    return calls


@pytest.mark.parametrize("index", [0, 4, 9])
def test_edm_loss_matches_the_sampler(tiny_unet, index) -> None:
    """``edm_loss`` at one of the sampler's sigmas feeds the UNet what the Euler sampler feeds it and
    scores the clean latent the sampler would reconstruct, weighted ``1 + 1/sigma^2`` (EDM, sigma_data=1).

    The noisy latent is recovered from the UNet's input with the sampler's own scaling: if the two
    scalings differ, the sampler's reconstruction from that latent no longer gives ``edm_loss``'s value,
    and the recovered noise is no longer unit-variance.
    """
    scheduler = EulerDiscreteScheduler(**SVD_SCHEDULER_CONFIG)
    scheduler.set_timesteps(10)
    sigma, t = scheduler.sigmas[index], scheduler.timesteps[index]
    inputs = make_inputs(batch=2, frames=FRAMES, size=16)
    latents = inputs["sample"]
    calls = record_unet_calls(tiny_unet)

    # every sample at the sampler's sigma: log(sigma) ~ N(log(sigma), 0)
    config = EDMConfig(log_sigma_mean=math.log(sigma.item()), log_sigma_std=0.0)
    with torch.no_grad():
        loss = edm_loss(
            tiny_unet, latents, inputs["image_latents"], inputs["encoder_hidden_states"], inputs["drags"],
            config, torch.Generator().manual_seed(0),
        )  # fmt: skip

    (call,) = calls
    # 1. the sampler's timestep for this sigma
    torch.testing.assert_close(call["timestep"], t.expand(2))
    # 2. the sampler's input scaling: undo it with the scheduler and get latents + sigma * unit noise
    noisy = call["sample"] * (sigma**2 + 1).sqrt()
    scheduler._step_index = index
    torch.testing.assert_close(scheduler.scale_model_input(noisy, t), call["sample"])
    assert ((noisy - latents) / sigma).std().item() == pytest.approx(1.0, abs=0.05)
    # 3. the sampler's reconstruction of the clean latent, EDM-weighted
    denoised = scheduler.step(call["output"], t, noisy).pred_original_sample
    expected = ((1 + 1 / sigma**2) * (denoised - latents) ** 2).mean()
    torch.testing.assert_close(loss, expected, rtol=1e-5, atol=0)


def test_sigma_distribution() -> None:
    sigmas = sample_sigmas(20_000, EDMConfig(), torch.Generator().manual_seed(0))
    assert sigmas.log().mean().item() == pytest.approx(0.7, abs=0.05)
    assert sigmas.log().std().item() == pytest.approx(1.6, abs=0.05)


def synthetic_examples(folder, count: int = 2) -> None:
    generator = torch.Generator().manual_seed(0)
    for index in range(count):
        drags = torch.zeros(FRAMES, 5, 4)
        drags[:, 0, :2] = torch.tensor([0.3 + 0.2 * index, 0.5])
        drags[:, 0, 2] = torch.linspace(0.3 + 0.2 * index, 0.6, FRAMES)
        drags[:, 0, 3] = 0.5
        write_cached_example(
            folder / f"clip_{index}.safetensors",
            {
                "latents": torch.randn(FRAMES, 4, 8, 8, generator=generator) * 0.5,
                "cond_latent": torch.randn(4, 8, 8, generator=generator),
                "embedding": torch.randn(1, 32, generator=generator),
                "drags": drags,
            },
        )


def fixed_eval_loss(unet, dataset) -> float:
    unet.eval()
    with torch.no_grad():
        batch = {key: torch.stack([dataset[i][key] for i in range(len(dataset))]) for key in dataset[0]}
        generator = torch.Generator().manual_seed(123)
        losses = [
            edm_loss(unet, batch["latents"], batch["cond_latent"], batch["embedding"], batch["drags"],
                     generator=generator).item()
            for _ in range(4)
        ]  # fmt: skip
    return sum(losses) / len(losses)


def test_trainer_lowers_the_loss_saves_a_loadable_model_and_resumes(tmp_path) -> None:
    base = make_tiny_model(tmp_path / "base")
    synthetic_examples(tmp_path / "data")
    dataset = CachedClipDataset(tmp_path / "data")
    before = fixed_eval_loss(PuppetMasterPipeline.from_pretrained(base).unet, dataset)

    parser = argparse.ArgumentParser()
    train.add_arguments(parser)
    common = ["--base-model", str(base), "--data", str(tmp_path / "data"), "--output", str(tmp_path / "run"),
              "--batch-size", "2", "--learning-rate", "2e-3", "--ema-decay", "0.5", "--checkpoint-every", "10",
              "--log-every", "5", "--drag-dropout", "0.1"]  # fmt: skip
    result = train.main(parser.parse_args([*common, "--max-steps", "24"]))
    assert result["steps"] == 24 and len(result["losses"]) == 24

    trained = PuppetMasterPipeline.from_pretrained(tmp_path / "run" / "model")
    assert trained.unet.config.cond_dropout_prob == pytest.approx(0.1)
    after = fixed_eval_loss(trained.unet, dataset)
    assert after < before, f"evaluation loss did not decrease: {before:.4f} -> {after:.4f}"

    # the saved folder generates with the real pipeline
    trained.set_progress_bar_config(disable=True)
    frames = trained(None, dataset[0]["drags"][None], num_inference_steps=2,
                     image_latents=dataset[0]["cond_latent"][None],
                     image_embeddings=dataset[0]["embedding"][None]).frames  # fmt: skip
    assert frames.shape == (1, FRAMES, 64, 64, 3)

    # a second run resumes from the checkpoint instead of starting over
    resumed = train.main(parser.parse_args([*common, "--max-steps", "26"]))
    assert resumed["steps"] == 26 and len(resumed["losses"]) == 2


def test_dataset_errors(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="no cached examples"):
        CachedClipDataset(tmp_path)
    with pytest.raises(ValueError, match="missing"):
        write_cached_example(tmp_path / "x.safetensors", {"latents": torch.zeros(1)})


def test_cache_latents_from_rendered_clips_feeds_the_trainer(tmp_path) -> None:
    """sample-drags output (RGBA renders + drags) -> cached examples the trainer's dataset reads."""
    import json

    import numpy as np
    from PIL import Image

    from backend.training.cache import cache_latents

    render = tmp_path / "render" / "view_00"
    render.mkdir(parents=True)
    frames = []
    for index in range(FRAMES):
        pixels = np.zeros((96, 96, 4), np.uint8)
        pixels[40:60, 30 + 2 * index : 50 + 2 * index] = [200, 80, 40, 255]  # a part sliding right
        Image.fromarray(pixels).save(render / f"frame_{index:04d}.png")
        frames.append(f"view_00/frame_{index:04d}.png")
    track = [[(40 + 2 * i) / 96, 50 / 96] for i in range(FRAMES)]
    samples = [{"render_dir": str(tmp_path / "render"), "view": "view_00", "start_frame": 0, "frames": frames,
                "drags": [track]}]  # fmt: skip
    (tmp_path / "drags.json").write_text(json.dumps(samples))
    model = make_tiny_model(tmp_path / "model")
    paths = cache_latents(tmp_path / "drags.json", model, tmp_path / "cache", device="cpu", dtype="fp32")
    example = CachedClipDataset(tmp_path / "cache")[0]
    assert len(paths) == 1
    assert example["latents"].shape == (FRAMES, 4, 8, 8) and example["cond_latent"].shape == (4, 8, 8)
    assert example["embedding"].shape == (1, 32) and example["drags"].shape == (FRAMES, 5, 4)
    # the drag moves right in model coordinates too, starting where it started, and other slots are empty
    drags = example["drags"]
    assert torch.all(drags[:, 0, :2] == drags[0, 0, 2:]) and drags[-1, 0, 2] > drags[0, 0, 2]
    assert torch.count_nonzero(drags[:, 1:]) == 0
    # resumable: a second run re-uses the file
    assert cache_latents(tmp_path / "drags.json", model, tmp_path / "cache", device="cpu", dtype="fp32") == paths
