"""One engine configuration: flags, dtype choice per card, fetched-weights discovery, CPU-offload plumbing."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from accelerate.hooks import ModelHook, add_hook_to_module, remove_hook_from_module
from accelerate.utils import send_to_device

from backend import devices
from backend.engines.config import EngineConfig, add_engine_arguments
from backend.fetch_weights import fetch_weights
from backend.models.drag_conditioning import DragConditioning
from backend.pipeline.tiny import make_tiny_model
from tests.conftest import make_inputs

# (compute capability, card) -> the dtype ``auto`` must pick on that card
CARDS = [
    ((6, 1), "GTX 1080", torch.float16),
    ((7, 0), "V100", torch.float16),
    ((7, 5), "RTX 2080 / T4", torch.float16),
    ((8, 0), "A100", torch.bfloat16),
    ((8, 6), "RTX 3090", torch.bfloat16),
    ((8, 9), "RTX 4090", torch.bfloat16),
    ((9, 0), "H100", torch.bfloat16),
    ((12, 0), "RTX 5090", torch.bfloat16),
]


@pytest.mark.parametrize(("capability", "card", "expected"), CARDS, ids=[card for _, card, _ in CARDS])
def test_auto_dtype_is_bf16_only_where_the_card_runs_it_natively(monkeypatch, capability, card, expected) -> None:
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda index=None: capability)
    assert devices.resolve_dtype("auto", torch.device("cuda")) == expected


def test_auto_dtype_asks_the_chosen_card_not_the_current_one(monkeypatch) -> None:
    capabilities = {0: (7, 5), 1: (8, 6)}  # cuda:0 a T4, cuda:1 an RTX 3090
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda index=None: capabilities[index])
    assert devices.resolve_dtype("auto", torch.device("cuda:1")) == torch.bfloat16
    assert devices.resolve_dtype("auto", torch.device("cuda:0")) == torch.float16
    assert devices.resolve_dtype("auto", torch.device("cuda")) == torch.float16  # the current one: 0


def test_auto_dtype_on_mps_and_cpu_and_explicit_choices() -> None:
    assert devices.resolve_dtype("auto", torch.device("mps")) == torch.float16
    assert devices.resolve_dtype("auto", torch.device("cpu")) == torch.float32
    assert devices.resolve_dtype("bf16", torch.device("cpu")) == torch.bfloat16
    with pytest.raises(ValueError, match="unknown dtype 'fp8'"):
        devices.resolve_dtype("fp8", torch.device("cpu"))


def test_devices_that_do_not_exist_are_refused_with_the_reason(monkeypatch) -> None:
    with pytest.raises(ValueError, match="unknown device 'gpu'"):
        devices.resolve_device("gpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(ValueError, match="has 1 CUDA device"):
        devices.resolve_device("cuda:3")


def test_every_command_parses_the_same_engine_flags() -> None:
    parser = argparse.ArgumentParser()
    add_engine_arguments(parser)
    args = parser.parse_args(["--model", "m", "--dtype", "fp16", "--cpu-offload", "--decode-chunk", "4"])
    config = EngineConfig.from_mapping(args)
    assert config == EngineConfig(model="m", dtype="fp16", cpu_offload=True, decode_chunk=4)
    # the flags that reproduce it (the add-on's start command passes them on)
    assert config.command_line() == ["--model", "m", "--dtype", "fp16", "--cpu-offload", "--decode-chunk", "4"]
    assert EngineConfig.from_mapping(parser.parse_args(config.command_line())) == config
    with pytest.raises(SystemExit):
        parser.parse_args(["--decode-chunk", "0"])
    with pytest.raises(ValueError, match="unknown engine 'gpu'"):
        EngineConfig(engine="gpu")


def test_drag_conditioning_follows_to_and_accelerates_send_to_device(tiny_unet) -> None:
    """Under CPU offload accelerate's hooks move a step's inputs with ``send_to_device``, which calls ``.to()``."""
    inputs = make_inputs()
    cond = tiny_unet.prepare_drag_conditioning(inputs["drags"], latent_size=8)
    moved = send_to_device(cond, torch.device("meta"))
    assert isinstance(moved, DragConditioning)
    tensors = [moved.grid, moved.absent] + [
        tensor
        for blocks in (moved.down_blocks, moved.up_blocks)
        for layers in blocks.values()
        for layer in layers
        for tensor in (layer.scale_plus_one, layer.shift, layer.positions)
        if tensor is not None
    ]
    assert len(tensors) > 2 and all(tensor.device.type == "meta" for tensor in tensors)
    assert moved.absent.dtype == torch.bool
    # cast for a half-precision UNet: values carry over, the empty-slot mask stays bool
    half = cond.to(torch.float64)
    assert half.down_blocks[0][0].shift.dtype == torch.float64 and half.absent.dtype == torch.bool
    torch.testing.assert_close(half.down_blocks[0][0].shift.float(), cond.down_blocks[0][0].shift)


class RecordingHook(ModelHook):
    """Stands in for accelerate's CpuOffload hook: records that the module was asked onto its device."""

    def __init__(self) -> None:
        self.calls = 0

    def pre_forward(self, module, *args, **kwargs):
        self.calls += 1
        return args, kwargs


def test_preparing_drag_conditioning_runs_the_offload_hook_like_forward(tiny_unet) -> None:
    """With CPU offload the UNet sits in CPU memory until a hook moves it; the once-per-video drag preparation
    must trigger that hook too, or it would run the drag embedders on the CPU and leave them there."""
    hook = RecordingHook()
    add_hook_to_module(tiny_unet, hook)
    try:
        tiny_unet.prepare_drag_conditioning(make_inputs()["drags"], latent_size=8)
        assert hook.calls == 1
    finally:
        remove_hook_from_module(tiny_unet)


def test_generate_without_weight_flags_uses_the_fetched_folder(tmp_path, monkeypatch) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("PUPPET_MASTER_HOME", str(home))
    tiny = make_tiny_model(tmp_path / "tiny")
    unet_config = {key: value for key, value in _tiny_unet_config(tiny).items() if not key.startswith("_")}
    folder = fetch_weights(
        svd=str(tiny), unet=str(tiny / "unet" / "diffusion_pytorch_model.safetensors"), unet_config=unet_config,
        dtype="fp32", echo=lambda _line: None,
    )  # fmt: skip
    assert folder == home / "models" / "puppet-master"

    from PIL import Image

    image = Image.new("RGBA", (48, 48), (0, 0, 0, 0))
    image.paste((200, 40, 40, 255), (12, 12, 36, 36))
    image.save(tmp_path / "object.png")
    command = [sys.executable, "-m", "backend.cli", "generate", "--image", str(tmp_path / "object.png"),
               "--drag", "20,20 30,24", "--steps", "1", "--frames", "4", "--device", "cpu", "--quiet",
               "--out", str(tmp_path / "out")]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert f"({folder})" in done.stdout  # the engine line names the fetched folder
    assert (tmp_path / "out" / "video_0" / "frame_0003.png").is_file()

    # with no fetched folder, one sentence that says what to run, exit 2
    monkeypatch.setenv("PUPPET_MASTER_HOME", str(tmp_path / "empty"))
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "run `puppet-master fetch-weights`" in done.stderr


def _tiny_unet_config(model_folder: Path) -> dict:
    import json

    return json.loads((model_folder / "unet" / "config.json").read_text())
