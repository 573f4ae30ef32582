"""The ``puppet-master`` engine: the diffusion pipeline behind the shared engine contract."""

from __future__ import annotations

import logging
import os
import secrets
import threading
import time
from collections.abc import Callable
from typing import Any

import torch

from ..devices import resolve_device, resolve_dtype
from ..pipeline.inputs import frames_to_input, prepare_inputs
from ..pipeline.pipeline import PuppetMasterPipeline
from .base import Cancelled, GenerationRequest, GenerationResult, ProgressCallback, request_settings
from .config import EngineConfig

logger = logging.getLogger(__name__)


def load_pipeline(
    config: EngineConfig, report: Callable[[str], None] | None = None, local_files_only: bool = False
) -> tuple[PuppetMasterPipeline, str]:
    """Load the pipeline ``config`` names: our saved folder (``model``) or SVD + a Puppet-Master UNet.

    The weights are cast to the target dtype on the CPU before they move, so the GPU never holds two
    copies. Returns the pipeline on its device (or set up for CPU offload) and a readable model identity.
    """
    report = report or (lambda stage: None)
    torch_device = resolve_device(config.device)
    torch_dtype = resolve_dtype(config.dtype, torch_device)
    if config.model is not None:
        if os.path.isfile(config.model):
            raise FileNotFoundError(
                f"--model {config.model!r} is a file; give the pipeline folder (the one with model_index.json), "
                "or a UNet checkpoint file with --unet and --svd"
            )
        if not os.path.isdir(config.model):
            raise FileNotFoundError(f"model folder {config.model!r} does not exist")
        report(f"reading the model from {config.model}")
        pipeline = PuppetMasterPipeline.from_pretrained(config.model, dtype=torch_dtype)
        identity = os.path.abspath(config.model)
    elif config.svd is not None and config.unet is not None:
        report("reading SVD and the Puppet-Master UNet")
        pipeline = PuppetMasterPipeline.from_svd(
            config.svd, config.unet, config.unet_filename, dtype=torch_dtype, local_files_only=local_files_only
        )
        identity = f"{config.svd} + {config.unet}"
    else:
        raise ValueError("give --model DIR (a saved pipeline folder), or both --svd and --unet")
    if config.cpu_offload and torch_device.type in ("cuda", "mps"):
        report(f"setting up CPU offload to {torch_device}")
        pipeline.enable_model_cpu_offload(device=torch_device)
    else:
        if config.cpu_offload:
            logger.warning("--cpu-offload needs a CUDA or MPS device; running on %s without it", torch_device)
        report(f"moving the model to {torch_device}")
        pipeline.to(torch_device)
    pipeline.set_progress_bar_config(disable=True)
    return pipeline, identity


class DiffusionEngine:
    """Puppet-Master diffusion behind :class:`~backend.engines.base.Engine`."""

    name = "puppet-master"

    def __init__(
        self,
        pipeline: PuppetMasterPipeline,
        model_identity: str,
        reason: str = "requested",
        decode_chunk: int | None = None,
    ):
        self.pipeline = pipeline
        self.model_identity = model_identity
        self.reason = reason
        self.decode_chunk = decode_chunk
        # accelerate's offload hooks sit on the UNet when the pipeline offloads to the CPU
        self.cpu_offload = hasattr(pipeline.unet, "_hf_hook")

    @classmethod
    def from_config(
        cls, config: EngineConfig, reason: str = "requested", report: Callable[[str], None] | None = None
    ) -> DiffusionEngine:
        """Load the pipeline ``config`` describes (see :func:`load_pipeline`)."""
        pipeline, identity = load_pipeline(config, report)
        return cls(pipeline, identity, reason, decode_chunk=config.decode_chunk)

    def describe(self) -> dict[str, Any]:
        unet = self.pipeline.unet
        return {
            "engine": self.name,
            "device": str(self.pipeline._execution_device),
            "dtype": str(unet.dtype).removeprefix("torch."),
            "model": self.model_identity,
            "reason": self.reason,
            "cpu_offload": self.cpu_offload,
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
                if step + 1 == request.steps:  # the VAE decode follows the last step
                    progress(request.steps, request.steps, "decoding")
            if cancel is not None and cancel.is_set():
                pipe.interrupt = True
            return tensors

        if cancel is not None and cancel.is_set():
            raise Cancelled("cancelled before it started")
        if progress is not None:
            progress(0, request.steps, "encoding")  # CLIP and VAE encode the image, drags are prepared
        output = self.pipeline(
            inputs.image,
            inputs.drags,
            num_inference_steps=request.steps,
            guidance_scale=request.guidance_scale,
            num_videos_per_prompt=request.num_videos,
            generator=generators,
            callback_on_step_end=on_step_end,
            decode_chunk_size=self.decode_chunk,
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
