"""One engine configuration for every command: which engine, which weights, and how it runs.

``serve``, ``generate``, ``evaluate``, training's sample videos and the add-on's start command all
describe the engine with the same flags (:func:`add_engine_arguments`), turned into one
:class:`EngineConfig`, which :func:`backend.engines.factory.create_engine` builds. There is no second
way to build an engine.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import asdict, dataclass, fields
from typing import Any

ENGINE_CHOICES = ("auto", "puppet-master", "preview")


@dataclass(frozen=True)
class EngineConfig:
    """How to build and run an engine.

    Attributes:
        engine: ``auto`` (the model when a GPU and weights are there, else the preview), ``puppet-master``
            (the model or an error) or ``preview``.
        model: a saved Puppet-Master pipeline folder; None = the folder ``fetch-weights`` made, if any.
        svd: SVD img2vid components (folder or hub id), with ``unet``, instead of ``model``.
        unet: Puppet-Master UNet weights (file, folder or hub id), with ``svd``.
        unet_filename: the weights file inside a ``unet`` folder or repo (None: ``ckpts/model.safetensors`` for
            the published Space ``rayli/Puppet-Master``, ``model.safetensors`` otherwise).
        device: ``auto``, ``cpu``, ``cuda``, ``cuda:1``, ``mps``.
        dtype: ``auto`` (see :func:`backend.devices.resolve_dtype`), ``fp32``, ``fp16`` or ``bf16``.
        cpu_offload: keep components in CPU memory and move each to the GPU only while it runs
            (low-VRAM cards; slower).
        decode_chunk: frames per VAE decode call (None = a whole video at once; lower saves memory).
    """

    engine: str = "auto"
    model: str | None = None
    svd: str | None = None
    unet: str | None = None
    unet_filename: str | None = None
    device: str = "auto"
    dtype: str = "auto"
    cpu_offload: bool = False
    decode_chunk: int | None = None

    def __post_init__(self) -> None:
        if self.engine not in ENGINE_CHOICES:
            raise ValueError(f"unknown engine {self.engine!r}; choose one of {', '.join(ENGINE_CHOICES)}")
        if self.decode_chunk is not None and self.decode_chunk < 1:
            raise ValueError(f"decode chunk must be at least 1 frame, got {self.decode_chunk}")
        for name in ("model", "svd", "unet"):  # paths arrive as Path objects from settings
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                object.__setattr__(self, name, os.fspath(value))

    @classmethod
    def from_mapping(cls, values: Any) -> EngineConfig:
        """From any object or dict carrying (some of) the field names: argparse namespaces, settings."""
        get = values.get if isinstance(values, dict) else lambda name, default: getattr(values, name, default)
        given = {field.name: get(field.name, None) for field in fields(cls)}
        return cls(**{name: value for name, value in given.items() if value is not None})

    def weights_given(self) -> bool:
        """Whether weights were named explicitly (``model``, ``svd`` or ``unet``)."""
        return bool(self.model or self.svd or self.unet)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def command_line(self) -> list[str]:
        """The flags that reproduce this configuration (for a command that starts another process)."""
        flags: list[str] = []
        for field in fields(self):
            value = getattr(self, field.name)
            if value in (None, False) or value == field.default:
                continue
            flag = "--" + field.name.replace("_", "-")
            flags += [flag] if value is True else [flag, str(value)]
        return flags


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is out of range: must be at least 1")
    return value


def add_engine_arguments(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    engines: tuple[str, ...] = ENGINE_CHOICES,
    default_engine: str | None = "auto",
    defaults: bool = True,
) -> None:
    """The engine flags every command shares. ``defaults=False`` leaves unset flags None (``serve``
    fills them from ``PUPPET_MASTER_*`` variables)."""

    def default(value: Any) -> Any:
        return value if defaults else None

    parser.add_argument(
        "--engine", choices=engines, default=default(default_engine),
        help="auto: the model when a GPU and weights are there, else the preview; puppet-master: the model "
        "or an error; preview: the weight-free draft that moves the dragged parts rigidly",
    )  # fmt: skip
    parser.add_argument(
        "--model", help="a Puppet-Master pipeline folder (default: the one `puppet-master fetch-weights` made)"
    )
    parser.add_argument("--svd", help="Stable Video Diffusion img2vid folder or hub id (with --unet)")
    parser.add_argument("--unet", help="Puppet-Master UNet: .safetensors file, folder or hub id (with --svd)")
    parser.add_argument(
        "--unet-filename",
        help="weights file in a --unet folder or repo (default: model.safetensors; ckpts/model.safetensors for the "
        "published Space rayli/Puppet-Master)",
    )
    parser.add_argument("--device", default=default("auto"), help="auto (default), cpu, cuda, cuda:1, mps")
    parser.add_argument(
        "--dtype", default=default("auto"),
        help="auto (default: bf16 on CUDA cards that run it natively, else fp16 on GPUs; fp32 on CPU), "
        "fp32, fp16 or bf16",
    )  # fmt: skip
    parser.add_argument(
        "--cpu-offload", action="store_true", default=default(False),
        help="low-VRAM cards: move each component to the GPU only while it runs (slower)",
    )  # fmt: skip
    parser.add_argument(
        "--decode-chunk", type=_positive_int, default=None,
        help="frames per VAE decode call (default: a whole video; lower saves GPU memory)",
    )  # fmt: skip
