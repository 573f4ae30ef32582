"""PuppetMasterPipeline: an image and drags in, a short video of part-level motion out.

The published inference recipe of Puppet-Master (arXiv 2408.04631; ``shared/spec`` section 3):
Stable Video Diffusion's VAE, CLIP image encoder and Euler scheduler (v-prediction, Karras sigmas,
continuous timesteps ``0.25 * log(sigma)``) around the drag-conditioned UNet; classifier-free
guidance whose unconditional branch has zero image latents, a zero CLIP embedding and no drags,
with a guidance weight ramped linearly over the frames from 1 (frame 0) to ``guidance_scale``.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
from diffusers import AutoencoderKLTemporalDecoder, DiffusionPipeline, EulerDiscreteScheduler
from diffusers.utils import BaseOutput
from diffusers.utils.torch_utils import randn_tensor
from PIL import Image
from transformers import AutoImageProcessor, CLIPVisionModelWithProjection
from transformers.image_processing_utils import BaseImageProcessor

from ..models import DragConditioning, UNetDragSpatioTemporalModel

# Size of the CLIP image encoder's input, as SVD's pipeline resizes it.
CLIP_INPUT_SIZE = (224, 224)
IMAGE_CACHE_SIZE = 8


@dataclass
class PuppetMasterPipelineOutput(BaseOutput):
    """Output of :class:`PuppetMasterPipeline`.

    Args:
        frames: ``(num_videos, F, H, W, 3)`` uint8 numpy frames (``output_type="np"``), a list of lists of
            PIL images (``"pil"``), a float tensor in [0, 1] (``"pt"``) or the latents (``"latent"``);
            None when the run was interrupted.
        interrupted: True when ``interrupt`` stopped the run between steps.
    """

    frames: np.ndarray | list | torch.Tensor | None
    interrupted: bool = False


class PuppetMasterPipeline(DiffusionPipeline):
    r"""Drag-conditioned image-to-video generation with Puppet-Master.

    Components:
        vae: SVD's temporal-decoder VAE (``AutoencoderKLTemporalDecoder``).
        image_encoder: CLIP vision model with projection (SVD's).
        feature_extractor: CLIP image processor (SVD's).
        scheduler: Euler discrete scheduler with SVD's config.
        unet: :class:`UNetDragSpatioTemporalModel`.

    Set ``pipe.interrupt = True`` (e.g. from another thread or a step callback) to stop between steps.
    """

    model_cpu_offload_seq = "image_encoder->unet->vae"
    _callback_tensor_inputs = ["latents"]

    def __init__(
        self,
        vae: AutoencoderKLTemporalDecoder,
        image_encoder: CLIPVisionModelWithProjection,
        feature_extractor: BaseImageProcessor,
        scheduler: EulerDiscreteScheduler,
        unet: UNetDragSpatioTemporalModel,
    ):
        super().__init__()
        self.register_modules(
            vae=vae, image_encoder=image_encoder, feature_extractor=feature_extractor, scheduler=scheduler, unet=unet
        )
        self.vae_scale_factor = 2 ** (len(self.vae.config.block_out_channels) - 1)
        self._image_cache: OrderedDict[tuple, tuple[torch.Tensor, torch.Tensor]] = OrderedDict()
        self.encoder_calls = 0  # how often the VAE/CLIP encoders actually ran (cache misses)
        self.interrupt = False
        self.last_timings: dict[str, float] = {}

    # ------------------------------------------------------------------ loading

    @staticmethod
    def load_svd_components(
        svd: str | os.PathLike,
        dtype: torch.dtype | None = None,
        variant: str | None = None,
        **hub: object,
    ) -> dict:
        """SVD img2vid's VAE, CLIP image encoder, feature extractor and scheduler (a folder or hub id)."""
        weights = dict(dtype=dtype, variant=variant, **hub)
        return {
            "vae": AutoencoderKLTemporalDecoder.from_pretrained(svd, subfolder="vae", **weights),
            "image_encoder": CLIPVisionModelWithProjection.from_pretrained(svd, subfolder="image_encoder", **weights),
            "feature_extractor": AutoImageProcessor.from_pretrained(svd, subfolder="feature_extractor", **hub),
            "scheduler": EulerDiscreteScheduler.from_pretrained(svd, subfolder="scheduler", **hub),
        }

    @classmethod
    def from_svd(
        cls,
        svd: str | os.PathLike,
        unet: str | os.PathLike,
        unet_filename: str | None = None,
        *,
        dtype: torch.dtype | None = None,
        variant: str | None = None,
        local_files_only: bool = False,
        cache_dir: str | os.PathLike | None = None,
        token: str | None = None,
    ) -> PuppetMasterPipeline:
        """SVD img2vid components (a folder or hub id) plus a Puppet-Master UNet checkpoint (file, folder or hub id;
        ``unet_filename`` None = the source's default, e.g. ``ckpts/model.safetensors`` for ``rayli/Puppet-Master``).

        ``unet`` may also be a folder saved with ``save_pretrained`` (it holds a ``config.json``).
        """
        hub = dict(local_files_only=local_files_only, cache_dir=cache_dir, token=token)
        components = cls.load_svd_components(svd, dtype, variant, **hub)
        if os.path.isfile(os.path.join(os.fspath(unet), "config.json")):
            drag_unet = UNetDragSpatioTemporalModel.from_pretrained(unet, dtype=dtype)
        else:
            drag_unet = UNetDragSpatioTemporalModel.from_puppet_master_checkpoint(
                unet, unet_filename, torch_dtype=dtype, **hub
            )
        return cls(unet=drag_unet, **components)

    # ------------------------------------------------------------------ recipe steps

    @property
    def default_size(self) -> int:
        """Model image side: the UNet's ``sample_size`` latents, or the published 256 pixels."""
        sample_size = self.unet.config.sample_size
        return sample_size * self.vae_scale_factor if sample_size else 256

    def check_inputs(
        self, image: Image.Image | torch.Tensor | None, drags: torch.Tensor, height: int, width: int, precomputed: bool
    ) -> None:
        if not precomputed and not isinstance(image, Image.Image | torch.Tensor):
            raise ValueError(
                f"image must be a PIL image or a tensor (or pass image_latents and image_embeddings), "
                f"got {type(image).__name__}"
            )
        num_drags = self.unet.config.num_drags
        if drags.ndim != 4 or drags.shape[0] != 1 or drags.shape[2:] != (num_drags, 4):
            raise ValueError(f"drags must have shape (1, frames, {num_drags}, 4), got {tuple(drags.shape)}")
        if drags.shape[1] < 1:
            raise ValueError("drags must cover at least one frame")
        if not torch.isfinite(drags).all() or drags.min() < 0 or drags.max() > 1:
            raise ValueError("drag coordinates must be finite and within [0, 1]")
        if height % self.vae_scale_factor or width % self.vae_scale_factor:
            raise ValueError(f"height and width must be multiples of {self.vae_scale_factor}, got {height}x{width}")

    def _image_tensor(self, image: Image.Image | torch.Tensor, height: int, width: int) -> torch.Tensor:
        """``(1, 3, H, W)`` float tensor in [0, 1]."""
        if isinstance(image, torch.Tensor):
            tensor = image if image.ndim == 4 else image[None]
        else:
            rgb = image.convert("RGB")
            if rgb.size != (width, height):
                rgb = rgb.resize((width, height), Image.Resampling.LANCZOS)
            tensor = torch.from_numpy(np.asarray(rgb, dtype=np.float32) / 255.0).permute(2, 0, 1)[None]
        return tensor.float()

    @torch.no_grad()
    def encode_image(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """CLIP embedding ``(1, 1, D)`` and unscaled VAE latent mean ``(1, 4, h, w)`` of a ``[0, 1]`` image.

        Cached by image content (and device/dtype), so re-generating the same frame with new drags
        skips both encoders.
        """
        device = self._execution_device
        key = (hashlib.sha256(image.cpu().numpy().tobytes()).hexdigest(), tuple(image.shape), str(device))
        if key in self._image_cache:
            self._image_cache.move_to_end(key)
            return self._image_cache[key]
        self.encoder_calls += 1

        # CLIP: as SVD's pipeline (antialiased resize in [-1, 1], then CLIP normalisation). Imported here:
        # importing SVD's pipeline module makes transformers log a torchvision notice at import time.
        from diffusers.pipelines.stable_video_diffusion.pipeline_stable_video_diffusion import (
            _resize_with_antialiasing,
        )

        clip_input = (_resize_with_antialiasing(image * 2 - 1, CLIP_INPUT_SIZE) + 1) / 2
        pixel_values = self.feature_extractor(
            images=clip_input, do_normalize=True, do_center_crop=False, do_resize=False, do_rescale=False,
            return_tensors="pt",
        ).pixel_values  # fmt: skip
        encoder_dtype = next(self.image_encoder.parameters()).dtype
        clip = self.image_encoder(pixel_values.to(device, encoder_dtype)).image_embeds[:, None]  # [1, 1, D]

        # VAE: the latent mean of the image in [-1, 1]; no scaling factor, no noise augmentation. As diffusers'
        # SVD pipeline, an fp16 VAE whose config asks for it (force_upcast) encodes in fp32: the encoder
        # overflows in fp16. The temporal decoder runs in the VAE's own dtype.
        with self._vae_upcast_for_encoding():
            vae_input = (image * 2 - 1).to(device, self.vae.dtype)
            latents = self.vae.encode(vae_input).latent_dist.mode()

        self._image_cache[key] = (clip, latents)
        if len(self._image_cache) > IMAGE_CACHE_SIZE:
            self._image_cache.popitem(last=False)
        return clip, latents

    @contextmanager
    def _vae_upcast_for_encoding(self) -> Iterator[None]:
        upcast = self.vae.dtype == torch.float16 and self.vae.config.get("force_upcast", False)
        if upcast:
            self.vae.to(dtype=torch.float32)
        try:
            yield
        finally:
            if upcast:
                self.vae.to(dtype=torch.float16)

    def prepare_latents(
        self,
        num_videos: int,
        num_frames: int,
        height: int,
        width: int,
        dtype: torch.dtype,
        device: torch.device,
        generator: torch.Generator | list[torch.Generator] | None,
        latents: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Initial noise ``(num_videos, F, 4, h, w)`` times the scheduler's initial sigma.

        With a list of generators, video k draws from generator k alone, so a batch of variations
        matches separate single-video runs seeded the same way.
        """
        shape = (num_videos, num_frames, 4, height // self.vae_scale_factor, width // self.vae_scale_factor)
        if latents is None:
            if isinstance(generator, list):
                if len(generator) != num_videos:
                    raise ValueError(f"got {len(generator)} generators for {num_videos} videos")
                noise = [randn_tensor((1, *shape[1:]), generator=g, device=device, dtype=dtype) for g in generator]
                latents = torch.cat(noise)
            else:
                latents = randn_tensor(shape, generator=generator, device=device, dtype=dtype)
        elif latents.shape != shape:
            raise ValueError(f"latents must have shape {shape}, got {tuple(latents.shape)}")
        return latents.to(device, dtype) * self.scheduler.init_noise_sigma

    @staticmethod
    def guidance_ramp(num_frames: int, guidance_scale: float, min_guidance_scale: float = 1.0) -> torch.Tensor:
        """Per-frame guidance weights ``(1, F, 1, 1, 1)``: linear from ``min_guidance_scale`` to ``guidance_scale``."""
        return torch.linspace(min_guidance_scale, guidance_scale, num_frames)[None, :, None, None, None]

    @torch.no_grad()
    def decode_latents(self, latents: torch.Tensor, decode_chunk_size: int | None = None) -> torch.Tensor:
        """``(B, F, 4, h, w)`` latents -> ``(B, F, 3, H, W)`` float frames in [0, 1].

        Each video is decoded on its own (the temporal decoder mixes frames), ``decode_chunk_size``
        frames at a time (default: the whole video).
        """
        num_frames = latents.shape[1]
        chunk = decode_chunk_size or num_frames
        videos = []
        for video in latents / self.vae.config.scaling_factor:
            pieces = [
                self.vae.decode(video[i : i + chunk].to(self.vae.dtype), num_frames=len(video[i : i + chunk])).sample
                for i in range(0, num_frames, chunk)
            ]
            videos.append(torch.cat(pieces))
        return (torch.stack(videos).float() / 2 + 0.5).clamp(0, 1)

    # ------------------------------------------------------------------ the recipe

    @torch.no_grad()
    def __call__(
        self,
        image: Image.Image | torch.Tensor | None,
        drags: torch.Tensor,
        height: int | None = None,
        width: int | None = None,
        num_inference_steps: int = 50,
        guidance_scale: float = 5.0,
        min_guidance_scale: float = 1.0,
        num_videos_per_prompt: int = 1,
        generator: torch.Generator | list[torch.Generator] | None = None,
        latents: torch.Tensor | None = None,
        decode_chunk_size: int | None = None,
        output_type: str = "np",
        callback_on_step_end: Callable[[PuppetMasterPipeline, int, torch.Tensor, dict], dict] | None = None,
        callback_on_step_end_tensor_inputs: tuple[str, ...] = ("latents",),
        image_latents: torch.Tensor | None = None,
        image_embeddings: torch.Tensor | None = None,
        return_dict: bool = True,
    ) -> PuppetMasterPipelineOutput | tuple:
        r"""Generate ``num_videos_per_prompt`` videos of ``drags.shape[1]`` frames.

        Args:
            image: the model image (object on white, square), PIL or ``(3, H, W)`` tensor in [0, 1].
            drags: ``(1, F, num_drags, 4)`` drags in normalised model-image coordinates.
            height, width: model image size (default :attr:`default_size`).
            num_inference_steps: Euler steps (the demo uses 50).
            guidance_scale: guidance weight of the last frame (the demo recommends about 5).
            min_guidance_scale: guidance weight of the first frame.
            num_videos_per_prompt: variations, sampled together in one batch.
            generator: a generator, or one per video (variations reproducible one by one).
            latents: optional initial noise ``(num_videos, F, 4, h, w)`` (before sigma scaling).
            decode_chunk_size: frames per VAE decode call (lower saves memory).
            output_type: ``np`` (uint8), ``pil``, ``pt`` (float in [0, 1]) or ``latent``.
            callback_on_step_end: ``fn(pipe, step, timestep, tensors) -> tensors`` after each step.
            image_latents, image_embeddings: precomputed conditioning ``(1, 4, h, w)`` (unscaled VAE
                latent mean) and ``(1, 1, D)`` (CLIP embedding), e.g. from cached training data or a
                Drag-a-Move test batch; both together replace ``image``.
        """
        height = height or self.default_size
        width = width or self.default_size
        precomputed = image_latents is not None and image_embeddings is not None
        self.check_inputs(image, drags, height, width, precomputed)
        if output_type not in ("np", "pil", "pt", "latent"):
            raise ValueError(f"output_type must be np, pil, pt or latent, got {output_type!r}")
        unknown = set(callback_on_step_end_tensor_inputs) - set(self._callback_tensor_inputs)
        if unknown:
            raise ValueError(f"callback tensors must be among {self._callback_tensor_inputs}, got {sorted(unknown)}")
        device = self._execution_device
        dtype = self.unet.dtype
        num_frames = drags.shape[1]
        num_videos = num_videos_per_prompt
        do_guidance = guidance_scale > 1.0 or min_guidance_scale > 1.0
        self.interrupt = False
        timings: dict[str, float] = {}

        # 1. conditioning image: CLIP embedding and VAE latent (cached by content)
        started = time.perf_counter()
        if precomputed:
            clip, image_latents = image_embeddings.to(device), image_latents.to(device)
        else:
            clip, image_latents = self.encode_image(self._image_tensor(image, height, width))
        clip = clip.to(dtype).repeat(num_videos, 1, 1)
        image_latents = image_latents.to(dtype).repeat(num_videos, 1, 1, 1)
        timings["encode"] = time.perf_counter() - started

        # 2. step-invariant work, once per call: drag conditioning, guidance batch, guidance ramp
        started = time.perf_counter()
        drags = drags.to(device).repeat(num_videos, 1, 1, 1)
        if do_guidance:  # unconditional branch: no image latent, no CLIP embedding, no drags
            clip = torch.cat([torch.zeros_like(clip), clip])
            image_latents = torch.cat([torch.zeros_like(image_latents), image_latents])
            drags = torch.cat([torch.zeros_like(drags), drags])
        latent_size = (height // self.vae_scale_factor, width // self.vae_scale_factor)
        drag_conditioning: DragConditioning = self.unet.prepare_drag_conditioning(drags, latent_size)
        guidance = self.guidance_ramp(num_frames, guidance_scale, min_guidance_scale).to(device, dtype)

        # 3. timesteps and initial noise
        self.scheduler.set_timesteps(num_inference_steps, device=device)
        timesteps = self.scheduler.timesteps
        latents = self.prepare_latents(num_videos, num_frames, height, width, dtype, device, generator, latents)
        timings["prepare"] = time.perf_counter() - started

        # 4. denoising loop (Euler, v-prediction; scheduler.scale_model_input applies 1 / sqrt(sigma^2 + 1))
        started = time.perf_counter()
        with self.progress_bar(total=len(timesteps)) as progress_bar:
            for step, t in enumerate(timesteps):
                if self.interrupt:
                    break
                model_input = torch.cat([latents] * 2) if do_guidance else latents
                model_input = self.scheduler.scale_model_input(model_input, t)
                prediction = self.unet(model_input, t, image_latents, clip, drag_conditioning).sample
                if do_guidance:
                    unconditional, conditional = prediction.chunk(2)
                    prediction = unconditional + guidance * (conditional - unconditional)
                latents = self.scheduler.step(prediction, t, latents).prev_sample
                if callback_on_step_end is not None:
                    tensors = {"latents": latents} if "latents" in callback_on_step_end_tensor_inputs else {}
                    latents = callback_on_step_end(self, step, t, tensors).get("latents", latents)
                progress_bar.update()
        timings["sampling"] = time.perf_counter() - started
        interrupted = self.interrupt

        # 5. decode
        started = time.perf_counter()
        if interrupted:
            frames = None
        elif output_type == "latent":
            frames = latents
        else:
            frames = self.decode_latents(latents, decode_chunk_size)  # [B, F, 3, H, W] in [0, 1]
            if output_type in ("np", "pil"):
                frames = (frames.permute(0, 1, 3, 4, 2) * 255).round().to(torch.uint8).cpu().numpy()
            if output_type == "pil":
                frames = [[Image.fromarray(frame) for frame in video] for video in frames]
        timings["decode"] = time.perf_counter() - started
        self.last_timings = timings
        self.maybe_free_model_hooks()

        if not return_dict:
            return (frames, interrupted)
        return PuppetMasterPipelineOutput(frames=frames, interrupted=interrupted)
