"""Training from a (tiny) Stable Video Diffusion folder: the new model keeps the training data's size."""

from __future__ import annotations

import argparse

from diffusers import UNetSpatioTemporalConditionModel

from backend.models.configs import TINY_UNET_CONFIG
from backend.pipeline.pipeline import PuppetMasterPipeline
from backend.pipeline.tiny import build_tiny_pipeline
from backend.training import train
from tests.test_training import synthetic_examples

SVD_SAMPLE_SIZE = 96  # SVD img2vid's: 768 px


def make_tiny_svd_folder(folder) -> None:
    """An SVD img2vid folder layout (vae, image_encoder, feature_extractor, scheduler, unet) with tiny parts."""
    tiny = build_tiny_pipeline()
    for name in ("vae", "image_encoder", "feature_extractor", "scheduler"):
        getattr(tiny, name).save_pretrained(folder / name)
    svd_keys = ("down_block_types", "up_block_types", "block_out_channels", "layers_per_block",
                "cross_attention_dim", "num_attention_heads")  # fmt: skip
    unet = UNetSpatioTemporalConditionModel(
        sample_size=SVD_SAMPLE_SIZE, **{key: TINY_UNET_CONFIG[key] for key in svd_keys}
    )
    unet.save_pretrained(folder / "unet")


def test_a_model_made_from_svd_keeps_the_training_size_and_samples(tmp_path) -> None:
    make_tiny_svd_folder(tmp_path / "svd")
    synthetic_examples(tmp_path / "data")
    parser = argparse.ArgumentParser()
    train.add_arguments(parser)
    args = parser.parse_args(
        ["--svd", str(tmp_path / "svd"), "--data", str(tmp_path / "data"), "--output", str(tmp_path / "run"),
         "--max-steps", "2", "--sample-every", "2", "--checkpoint-every", "100"]
    )  # fmt: skip
    train.main(args)

    trained = PuppetMasterPipeline.from_pretrained(tmp_path / "run" / "model")
    assert trained.unet.config.sample_size == 8  # the cached latents' side, not SVD's 96
    assert trained.default_size == 64
    assert (tmp_path / "run" / "samples" / "step_000002.gif").stat().st_size > 0
