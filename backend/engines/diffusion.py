"""The ``puppet-master`` engine: the diffusion pipeline behind the shared engine contract."""

from __future__ import annotations

import logging
import os
import secrets
import threading
import time
from typing import Any

import torch

from ..devices import resolve_device, resolve_dtype
from ..pipeline.inputs import frames_to_input, prepare_inputs
from ..pipeline.pipeline import PuppetMasterPipeline
from .base import Cancelled, GenerationRequest, GenerationResult, ProgressCallback, request_settings

logger = logging.getLogger(__name__)


def load_pipeline(
    model: str | os.PathLike | None = None,
    svd: str | os.PathLike | None = None,
    unet: str | os.PathLike | None = None,
    unet_filename: str = "model.safetensors",
    device: str | None = "auto",
    dtype: str | None = "auto",
    cpu_offload: bool = False,
    local_files_only: bool = False,
) -> tuple[PuppetMasterPipeline, str]:
    """Load the pipeline from our saved folder (``model``) or from SVD + a Puppet-Master UNet.

    Returns the pipeline on its device and a human-readable model identity.
    """
    torch_device = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, torch_device)
    if model is not None:
        if not os.path.isdir(model):
            raise FileNotFoundError(f"model folder {os.fspath(model)!r} does not exist")
        pipeline = PuppetMasterPipeline.from_pretrained(model, dtype=torch_dtype)
        identity = os.path.abspath(model)
    elif svd is not None and unet is not None:
        pipeline = PuppetMasterPipeline.from_svd(
            svd, unet, unet_filename, dtype=torch_dtype, local_files_only=local_files_only
        )
        identity = f"{os.fspath(svd)} + {os.fspath(unet)}"
    else:
        raise ValueError("give --model DIR (a saved pipeline folder), or both --svd and --unet")
    if cpu_offload and torch_device.type == "cuda":
        pipeline.enable_model_cpu_offload(device=torch_device)
    else:
        pipeline.to(torch_device)
    pipeline.set_progress_bar_config(disable=True)
    return pipeline, identity


class DiffusionEngine:
    """Puppet-Master diffusion behind :class:`~backend.engines.base.Engine`."""

    name = "puppet-master"

    def __init__(self, pipeline: PuppetMasterPipeline, model_identity: str, reason: str = "requested"):
        self.pipeline = pipeline
        self.model_identity = model_identity
        self.reason = reason

    @classmethod
    def from_settings(cls, reason: str = "requested", **load_options: Any) -> DiffusionEngine:
        """Load with :func:`load_pipeline` options (model, svd, unet, device, dtype, cpu_offload ...)."""
        pipeline, identity = load_pipeline(**load_options)
        return cls(pipeline, identity, reason)

    def describe(self) -> dict[str, Any]:
        unet = self.pipeline.unet
        return {
            "engine": self.name,
            "device": str(self.pipeline._execution_device),
            "dtype": str(unet.dtype).removeprefix("torch."),
            "model": self.model_identity,
            "reason": self.reason,
        }

    def generate(
        self,
        request: GenerationRequest,
        progress: ProgressCallback | None = None,
        cancel: threading.Event | None = None,
    ) -> GenerationResult:
        if request.num_videos < 1 or request.steps < 1:
            raise ValueError(f"num_videos and steps must be at least 1, got {request.num_videos}, {request.steps}")
        timings: dict[str, float] = {}
        started = time.perf_counter()
        inputs = prepare_inputs(
            request.image, request.drags, request.num_frames, request.mask, request.crop_scale, request.ease,
            size=self.pipeline.default_size, num_drag_slots=self.pipeline.unet.config.num_drags,
        )  # fmt: skip
        timings["preprocess"] = time.perf_counter() - started
        seed = request.seed if request.seed is not None else secrets.randbits(32)
        # one CPU generator per video: video k of a batch equals a single run with seed + k, on any device
        generators = [torch.Generator("cpu").manual_seed(seed + k) for k in range(request.num_videos)]

        def on_step_end(pipe: PuppetMasterPipeline, step: int, _t: torch.Tensor, tensors: dict) -> dict:
            if progress is not None:
                progress(step + 1, request.steps)
            if cancel is not None and cancel.is_set():
                pipe.interrupt = True
            return tensors

        if cancel is not None and cancel.is_set():
            raise Cancelled("cancelled before it started")
        output = self.pipeline(
            inputs.image,
            inputs.drags,
            num_inference_steps=request.steps,
            guidance_scale=request.guidance_scale,
            num_videos_per_prompt=request.num_videos,
            generator=generators,
            callback_on_step_end=on_step_end,
        )
        if output.interrupted:
            raise Cancelled("cancelled between denoising steps")
        timings.update(self.pipeline.last_timings)

        started = time.perf_counter()
        crops = list(output.frames)
        videos = [frames_to_input(crop, inputs) for crop in crops]
        timings["postprocess"] = time.perf_counter() - started
        return GenerationResult(
            videos=videos,
            crops=crops,
            crop_box=inputs.crop_box,
            image_trajectories=inputs.image_trajectories,
            seed=seed,
            engine=self.name,
            timings=timings,
            settings=request_settings(request) | {"model": self.model_identity},
        )
