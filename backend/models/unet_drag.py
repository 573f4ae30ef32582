"""Puppet-Master's drag-conditioned spatio-temporal UNet (arXiv 2408.04631).

Stable Video Diffusion's UNet (diffusers' ``UNetSpatioTemporalConditionModel``) with:

* no added-time conditioning (fps / motion bucket / noise-augmentation ids are not used);
* in every cross-attention down and up block, per layer: adaptive modulation of the features from a
  drag embedder, and drag tokens appended to the CLIP token as cross-attention context;
* all-to-first spatial self-attention everywhere (``AllToFirstAttnProcessor``).

The layout matches the published checkpoint (``shared/spec/checkpoint-keys.tsv``) key for key.
The drag-conditioned blocks live in :mod:`backend.models.drag_blocks`; finding, reading and checking
weight files (local, hub, the published Space) in :mod:`backend.models.checkpoint`.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import torch
import torch.nn as nn
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.attention import AttentionMixin
from diffusers.models.attention_processor import AttnProcessor2_0
from diffusers.models.embeddings import TimestepEmbedding, Timesteps
from diffusers.models.modeling_utils import ModelMixin
from diffusers.models.transformers.transformer_temporal import TransformerSpatioTemporalModel
from diffusers.models.unets.unet_3d_blocks import UNetMidBlockSpatioTemporal, get_down_block, get_up_block
from diffusers.utils import BaseOutput
from diffusers.utils.accelerate_utils import apply_forward_hook

from .attention_processors import AllToFirstAttnProcessor, VideoContextAttnProcessor
from .checkpoint import (
    check_state_dict,
    check_svd_weights_fit,
    load_weights_file,
    resolve_weights_file,
    svd_state_dict,
)
from .drag_blocks import (
    CrossAttnDownBlockSpatioTemporalWithDrag,
    CrossAttnUpBlockSpatioTemporalWithDrag,
    DragBranchMixin,
    DragEmbedder,
)
from .drag_conditioning import (
    DragConditioning,
    absent_drags,
    drag_sample_grid,
    encode_drags,
    sample_at_drags,
    sincos_position_map,
)

logger = logging.getLogger(__name__)

# Config entries shared with diffusers' SVD UNet, copied by ``from_svd_unet``.
SVD_CONFIG_KEYS = (
    "sample_size",
    "in_channels",
    "out_channels",
    "down_block_types",
    "up_block_types",
    "block_out_channels",
    "addition_time_embed_dim",
    "projection_class_embeddings_input_dim",
    "layers_per_block",
    "cross_attention_dim",
    "transformer_layers_per_block",
    "num_attention_heads",
    "num_frames",
)


@dataclass
class UNetDragSpatioTemporalOutput(BaseOutput):
    """Output of :class:`UNetDragSpatioTemporalModel`.

    Args:
        sample (`torch.Tensor` of shape `(batch_size, num_frames, out_channels, height, width)`):
            The model's prediction (v-prediction for the published weights).
    """

    sample: torch.Tensor


def _per_block(value, num_blocks: int, name: str) -> tuple:
    """Broadcast an int config entry to one value per block; check the length of a sequence."""
    if isinstance(value, int):
        return (value,) * num_blocks
    if len(value) != num_blocks:
        raise ValueError(f"`{name}` needs one value per block ({num_blocks}), got {value!r}")
    return tuple(value)


class UNetDragSpatioTemporalModel(ModelMixin, AttentionMixin, ConfigMixin):
    r"""Puppet-Master: a drag-conditioned spatio-temporal UNet (arXiv 2408.04631).

    Takes noisy video latents, a timestep, the conditioning image's latent, its CLIP embedding and
    up to ``num_drags`` drags per frame, and returns a ``(batch, frames, out_channels, h, w)`` sample.

    Parameters:
        sample_size (`int`, *optional*): Height and width of the latent sample (informational).
        in_channels (`int`, defaults to 8): Noisy latent channels plus image-latent channels.
        out_channels (`int`, defaults to 4): Channels of the output.
        down_block_types (`tuple[str]`): SVD down block types; every ``CrossAttnDownBlockSpatioTemporal``
            carries drag conditioning.
        up_block_types (`tuple[str]`): SVD up block types; every ``CrossAttnUpBlockSpatioTemporal``
            carries drag conditioning.
        block_out_channels (`tuple[int]`, defaults to `(320, 640, 1280, 1280)`): Channels per block.
        addition_time_embed_dim (`int`, defaults to 256): Kept for config compatibility with the
            published model; added-time conditioning does not exist in Puppet-Master.
        projection_class_embeddings_input_dim (`int`, defaults to 768): Likewise unused.
        layers_per_block (`int` or `tuple[int]`, defaults to 2): Resnet/transformer pairs per down block.
        cross_attention_dim (`int` or `tuple[int]`, defaults to 1024): CLIP embedding and drag-token width.
        transformer_layers_per_block (`int` or `tuple[int]`, defaults to 1): Transformer depth per block.
        num_attention_heads (`int` or `tuple[int]`, defaults to `(5, 10, 20, 20)`): Heads per block.
        num_frames (`int`, defaults to 14): Frames the model was trained with (any count runs).
        num_drags (`int`, defaults to 5): Drag slots per frame.
        cond_dropout_prob (`float`, defaults to 0.1): Probability, in training mode only, of zeroing all
            drags of a sample (for classifier-free guidance).
        pos_embed_dim (`int`, defaults to 64): Width of the sin-cos positional embedding in drag tokens.
        drag_token_cross_attn (`bool`, defaults to `True`): Append drag tokens to the cross-attention context.
        use_modulate (`bool`, defaults to `True`): Scale-and-shift modulation (else shift only).
        drag_embedder_out_channels (`tuple[int]`, defaults to `(256, 320, 320)`): Drag embedder widths.
    """

    _supports_gradient_checkpointing = True

    @register_to_config
    def __init__(
        self,
        sample_size: int | None = None,
        in_channels: int = 8,
        out_channels: int = 4,
        down_block_types: tuple[str, ...] = (
            "CrossAttnDownBlockSpatioTemporal",
            "CrossAttnDownBlockSpatioTemporal",
            "CrossAttnDownBlockSpatioTemporal",
            "DownBlockSpatioTemporal",
        ),
        up_block_types: tuple[str, ...] = (
            "UpBlockSpatioTemporal",
            "CrossAttnUpBlockSpatioTemporal",
            "CrossAttnUpBlockSpatioTemporal",
            "CrossAttnUpBlockSpatioTemporal",
        ),
        block_out_channels: tuple[int, ...] = (320, 640, 1280, 1280),
        addition_time_embed_dim: int = 256,
        projection_class_embeddings_input_dim: int = 768,
        layers_per_block: int | tuple[int, ...] = 2,
        cross_attention_dim: int | tuple[int, ...] = 1024,
        transformer_layers_per_block: int | tuple[int, ...] = 1,
        num_attention_heads: int | tuple[int, ...] = (5, 10, 20, 20),
        num_frames: int = 14,
        num_drags: int = 5,
        cond_dropout_prob: float = 0.1,
        pos_embed_dim: int = 64,
        drag_token_cross_attn: bool = True,
        use_modulate: bool = True,
        drag_embedder_out_channels: tuple[int, ...] = (256, 320, 320),
    ):
        super().__init__()
        num_blocks = len(down_block_types)
        if len(up_block_types) != num_blocks or len(block_out_channels) != num_blocks:
            raise ValueError(
                "down_block_types, up_block_types and block_out_channels need the same length, got "
                f"{down_block_types!r}, {up_block_types!r}, {block_out_channels!r}"
            )
        if num_drags < 1:
            raise ValueError(f"num_drags must be at least 1, got {num_drags}")
        if pos_embed_dim % 4 != 0:
            raise ValueError(f"pos_embed_dim must be a multiple of 4, got {pos_embed_dim}")
        if not 0.0 <= cond_dropout_prob < 1.0:
            raise ValueError(f"cond_dropout_prob must be in [0, 1), got {cond_dropout_prob}")
        num_attention_heads = _per_block(num_attention_heads, num_blocks, "num_attention_heads")
        cross_attention_dim = _per_block(cross_attention_dim, num_blocks, "cross_attention_dim")
        layers_per_block = _per_block(layers_per_block, num_blocks, "layers_per_block")
        transformer_layers = _per_block(transformer_layers_per_block, num_blocks, "transformer_layers_per_block")
        drag_kwargs = dict(
            num_drags=num_drags,
            pos_embed_dim=pos_embed_dim,
            drag_embedder_out_channels=tuple(drag_embedder_out_channels),
            use_modulate=use_modulate,
            drag_token_cross_attn=drag_token_cross_attn,
        )

        # input and timestep embedding (sinusoidal, cos first, shift 0); no added-time embedding
        self.conv_in = nn.Conv2d(in_channels, block_out_channels[0], kernel_size=3, padding=1)
        time_embed_dim = block_out_channels[0] * 4
        self.time_proj = Timesteps(block_out_channels[0], True, downscale_freq_shift=0)
        self.time_embedding = TimestepEmbedding(block_out_channels[0], time_embed_dim)

        # down blocks; the cross-attention ones carry the drag branch
        self.down_blocks = nn.ModuleList()
        output_channel = block_out_channels[0]
        for i, block_type in enumerate(down_block_types):
            input_channel, output_channel = output_channel, block_out_channels[i]
            common = dict(
                num_layers=layers_per_block[i],
                transformer_layers_per_block=transformer_layers[i],
                in_channels=input_channel,
                out_channels=output_channel,
                temb_channels=time_embed_dim,
                add_downsample=i < num_blocks - 1,
                cross_attention_dim=cross_attention_dim[i],
                num_attention_heads=num_attention_heads[i],
            )
            if block_type == "CrossAttnDownBlockSpatioTemporal":
                block = CrossAttnDownBlockSpatioTemporalWithDrag(**common, **drag_kwargs)
            elif block_type == "DownBlockSpatioTemporal":
                block = get_down_block(block_type, resnet_eps=1e-5, resnet_act_fn="silu", **common)
            else:
                raise ValueError(f"unsupported down block type {block_type!r}")
            self.down_blocks.append(block)

        # mid block: plain SVD (its spatial attention is still all-to-first)
        self.mid_block = UNetMidBlockSpatioTemporal(
            block_out_channels[-1],
            temb_channels=time_embed_dim,
            transformer_layers_per_block=transformer_layers[-1],
            cross_attention_dim=cross_attention_dim[-1],
            num_attention_heads=num_attention_heads[-1],
        )

        # up blocks, mirroring the down blocks
        self.up_blocks = nn.ModuleList()
        reversed_channels = list(reversed(block_out_channels))
        output_channel = reversed_channels[0]
        for i, block_type in enumerate(up_block_types):
            prev_output_channel, output_channel = output_channel, reversed_channels[i]
            j = num_blocks - 1 - i  # the mirrored down block
            common = dict(
                num_layers=layers_per_block[j] + 1,
                transformer_layers_per_block=transformer_layers[j],
                in_channels=reversed_channels[min(i + 1, num_blocks - 1)],
                out_channels=output_channel,
                prev_output_channel=prev_output_channel,
                temb_channels=time_embed_dim,
                add_upsample=i < num_blocks - 1,
                resnet_eps=1e-5,
                resolution_idx=i,
                cross_attention_dim=cross_attention_dim[j],
                num_attention_heads=num_attention_heads[j],
            )
            if block_type == "CrossAttnUpBlockSpatioTemporal":
                block = CrossAttnUpBlockSpatioTemporalWithDrag(**common, **drag_kwargs)
            elif block_type == "UpBlockSpatioTemporal":
                block = get_up_block(block_type, resnet_act_fn="silu", **common)
            else:
                raise ValueError(f"unsupported up block type {block_type!r}")
            self.up_blocks.append(block)

        # output
        self.conv_norm_out = nn.GroupNorm(num_channels=block_out_channels[0], num_groups=32, eps=1e-5)
        self.conv_act = nn.SiLU()
        self.conv_out = nn.Conv2d(block_out_channels[0], out_channels, kernel_size=3, padding=1)

        self.set_all_to_first_attention(True)

    # ------------------------------------------------------------------ attention

    def _video_attentions(self) -> tuple[tuple[nn.Module, ...], tuple[nn.Module, ...]]:
        """The ``attn1`` of every spatial transformer block and the ``attn2`` of every temporal one, found once."""
        if not hasattr(self, "_video_attention_modules"):
            transformers = [m for m in self.modules() if isinstance(m, TransformerSpatioTemporalModel)]
            # plain tuple attributes: not registered as submodules, so no duplicate state-dict keys
            self._video_attention_modules = (
                tuple(block.attn1 for t in transformers for block in t.transformer_blocks),
                tuple(block.attn2 for t in transformers for block in t.temporal_transformer_blocks),
            )
        return self._video_attention_modules

    def set_all_to_first_attention(self, enabled: bool = True) -> None:
        """Use all-to-first spatial self-attention (the published model) or plain self-attention."""
        spatial, temporal_cross = self._video_attentions()
        for attention in spatial:
            attention.set_processor(AllToFirstAttnProcessor() if enabled else AttnProcessor2_0())
        # not a modelling choice: the same result as diffusers' processor, with the context projected once per video
        for attention in temporal_cross:
            attention.set_processor(VideoContextAttnProcessor())

    def _set_attention_video_shape(self, batch_size: int, num_frames: int) -> None:
        spatial, temporal_cross = self._video_attentions()
        for attention in spatial:
            if isinstance(attention.processor, AllToFirstAttnProcessor):
                attention.processor.num_frames = num_frames
        for attention in temporal_cross:
            if isinstance(attention.processor, VideoContextAttnProcessor):
                attention.processor.batch_size = batch_size

    # ------------------------------------------------------------------ drag conditioning

    def _block_resolutions(self, height: int, width: int) -> list[tuple[int, int]]:
        """Feature size inside each down block (up block i works at the size of down block n-1-i)."""
        sizes = [(height, width)]
        for _ in self.down_blocks[:-1]:
            height, width = (height + 1) // 2, (width + 1) // 2  # stride-2 conv, padding 1
            sizes.append((height, width))
        return sizes

    def _drag_blocks(self):
        """``(kind, index, block, level)`` per drag-conditioned block; level indexes ``_block_resolutions``."""
        num_blocks = len(self.down_blocks)
        for i, block in enumerate(self.down_blocks):
            if isinstance(block, DragBranchMixin):
                yield "down", i, block, i
        for i, block in enumerate(self.up_blocks):
            if isinstance(block, DragBranchMixin):
                yield "up", i, block, num_blocks - 1 - i

    @apply_forward_hook  # under CPU offload, move the UNet to the execution device first, as forward() would
    def prepare_drag_conditioning(
        self, drags: torch.Tensor, latent_size: int | tuple[int, int] | None = None
    ) -> DragConditioning:
        """Everything the UNet derives from the drags alone, computed once per video.

        Encodes the drags at every drag-conditioned block's resolution, runs each layer's drag
        embedder (scale/shift), samples the positional embedding at the drag points and finds empty
        drag slots. Pass the result as ``drags`` to every denoising step of that video batch; the
        output is identical to passing the raw drags each step. In training mode (and only there),
        each sample's drags are zeroed with probability ``cond_dropout_prob`` first.

        Args:
            drags: ``(batch, frames, num_drags, 4)`` drags, normalised to [0, 1] (zeros = no drag).
            latent_size: latent height and width (an int for square); defaults to ``sample_size``.
        """
        num_drags = self.config.num_drags
        if drags.ndim != 4 or drags.shape[-2:] != (num_drags, 4):
            raise ValueError(f"drags must have shape (batch, frames, {num_drags}, 4), got {tuple(drags.shape)}")
        if not torch.isfinite(drags).all():
            raise ValueError("drags contain NaN or infinite values")
        if latent_size is None:
            latent_size = self.config.sample_size
            if latent_size is None:
                raise ValueError("latent_size is required when the config has no sample_size")
        height, width = (latent_size, latent_size) if isinstance(latent_size, int) else tuple(latent_size)
        batch, frames = drags.shape[:2]
        dtype, device = self.dtype, self.device
        drags = drags.to(device)

        # 0. drag dropout for classifier-free guidance, in training only
        if self.training and self.config.cond_dropout_prob > 0:
            keep = torch.rand(batch, device=device) >= self.config.cond_dropout_prob
            drags = drags * keep[:, None, None, None]

        # 1. drag-only quantities shared by all blocks
        grid = drag_sample_grid(drags.to(dtype))  # [B*F, 2, K, 2]
        absent = absent_drags(drags).repeat_interleave(frames, dim=0)[..., None]  # [B*F, K, 1]
        cond = DragConditioning(num_frames=frames, latent_size=(height, width), grid=grid, absent=absent)

        # 2. per resolution: the drag encoding and the positional embedding at the drag points
        resolutions = self._block_resolutions(height, width)
        per_resolution: dict[tuple[int, int], tuple[torch.Tensor, torch.Tensor]] = {}
        for _, _, _, level in self._drag_blocks():
            size = resolutions[level]
            if size in per_resolution:
                continue
            encoding = encode_drags(drags, *size).to(dtype).flatten(0, 1)  # [B*F, 6K, h, w]
            position_map = sincos_position_map(self.config.pos_embed_dim, *size, device=device, dtype=dtype)
            position_map = position_map.expand(batch * frames, -1, -1, -1)
            positions = torch.cat(sample_at_drags(position_map, grid), dim=-1)  # [B*F, K, 2P]
            per_resolution[size] = (encoding, positions)

        # 3. per layer: the drag embedder's modulation
        for kind, index, block, level in self._drag_blocks():
            layers = block.prepare_layers(*per_resolution[resolutions[level]])
            (cond.down_blocks if kind == "down" else cond.up_blocks)[index] = layers
        return cond

    # ------------------------------------------------------------------ forward

    def forward(
        self,
        sample: torch.Tensor,
        timestep: torch.Tensor | float | int,
        image_latents: torch.Tensor,
        encoder_hidden_states: torch.Tensor,
        drags: torch.Tensor | DragConditioning,
        return_dict: bool = True,
    ) -> UNetDragSpatioTemporalOutput | tuple[torch.Tensor]:
        r"""Predict for noisy video latents.

        Args:
            sample: ``(batch, frames, 4, h, w)`` noisy latents (already scaled for the sampler's input).
            timestep: the diffusion timestep (scalar or ``(batch,)``); SVD uses ``0.25 * log(sigma)``.
            image_latents: ``(batch, 4, h, w)`` unscaled VAE latent mean of the conditioning image.
            encoder_hidden_states: ``(batch, 1, cross_attention_dim)`` CLIP image embedding.
            drags: ``(batch, frames, num_drags, 4)`` drags, or a ``DragConditioning`` from
                :meth:`prepare_drag_conditioning` (the fast path for repeated steps).
            return_dict: return a :class:`UNetDragSpatioTemporalOutput` rather than a tuple.
        """
        if sample.ndim != 5:
            raise ValueError(f"sample must be (batch, frames, channels, h, w), got {tuple(sample.shape)}")
        batch_size, num_frames = sample.shape[:2]
        latent_size = tuple(sample.shape[-2:])
        if image_latents.ndim != 4 or image_latents.shape[0] != batch_size or image_latents.shape[-2:] != latent_size:
            raise ValueError(
                f"image_latents must be (batch={batch_size}, C, {latent_size[0]}, {latent_size[1]}), "
                f"got {tuple(image_latents.shape)}"
            )

        # 0. drag conditioning: prepared once per video by the caller, or here
        if isinstance(drags, DragConditioning):
            cond = drags
            if (cond.batch_size, cond.num_frames, cond.latent_size) != (batch_size, num_frames, latent_size):
                raise ValueError(
                    f"drag conditioning was prepared for batch {cond.batch_size}, {cond.num_frames} frames, "
                    f"latents {cond.latent_size}; this call has batch {batch_size}, {num_frames} frames, "
                    f"latents {latent_size}"
                )
        else:
            if drags.shape[:2] != (batch_size, num_frames):
                raise ValueError(
                    f"drags must be (batch={batch_size}, frames={num_frames}, {self.config.num_drags}, 4), "
                    f"got {tuple(drags.shape)}"
                )
            cond = self.prepare_drag_conditioning(drags, latent_size)

        # 1. time embedding
        timesteps = timestep
        if not torch.is_tensor(timesteps):
            timesteps = torch.tensor([timesteps], dtype=torch.float32, device=sample.device)
        timesteps = timesteps.reshape(-1).to(sample.device).expand(batch_size)
        emb = self.time_embedding(self.time_proj(timesteps).to(dtype=sample.dtype))  # [B, 4*C0]

        # 2. input: the image latent joins every frame's noisy latent along channels
        # [B, F, 4, h, w] + [B, 4, h, w] -> [B, F, 8, h, w] -> [B*F, 8, h, w]
        sample = torch.cat([sample, image_latents[:, None].expand(-1, num_frames, -1, -1, -1)], dim=2)
        sample = self.conv_in(sample.flatten(0, 1))
        # [B, D] -> [B*F, D];  [B, 1, D] -> [B*F, 1, D]
        emb = emb.repeat_interleave(num_frames, dim=0)
        encoder_hidden_states = encoder_hidden_states.repeat_interleave(num_frames, dim=0)
        image_only_indicator = torch.zeros(batch_size, num_frames, dtype=sample.dtype, device=sample.device)
        self._set_attention_video_shape(batch_size, num_frames)

        # 3. down
        skips = (sample,)
        for i, block in enumerate(self.down_blocks):
            if isinstance(block, DragBranchMixin):
                sample, block_skips = block(
                    sample, emb, encoder_hidden_states, image_only_indicator, cond, cond.down_blocks[i]
                )
            else:
                sample, block_skips = block(sample, temb=emb, image_only_indicator=image_only_indicator)
            skips += block_skips

        # 4. mid
        sample = self.mid_block(
            sample, temb=emb, encoder_hidden_states=encoder_hidden_states, image_only_indicator=image_only_indicator
        )

        # 5. up; forward the skip size when latents are not a multiple of the total down-sampling
        for i, block in enumerate(self.up_blocks):
            block_skips, skips = skips[-len(block.resnets) :], skips[: -len(block.resnets)]
            upsample_size = skips[-1].shape[2:] if i < len(self.up_blocks) - 1 else None
            if isinstance(block, DragBranchMixin):
                sample = block(
                    sample, block_skips, emb, encoder_hidden_states, image_only_indicator, cond,
                    cond.up_blocks[i], upsample_size=upsample_size,
                )  # fmt: skip
            else:
                sample = block(
                    sample, block_skips, temb=emb, image_only_indicator=image_only_indicator,
                    upsample_size=upsample_size,
                )  # fmt: skip

        # 6. output; [B*F, C, h, w] -> [B, F, C, h, w]
        sample = self.conv_out(self.conv_act(self.conv_norm_out(sample)))
        sample = sample.reshape(batch_size, num_frames, *sample.shape[1:])
        if not return_dict:
            return (sample,)
        return UNetDragSpatioTemporalOutput(sample=sample)

    # ------------------------------------------------------------------ weights

    def zero_init_drag_embedders(self) -> None:
        """Zero the last conv of every drag embedder, so modulation starts as the identity."""
        for module in self.modules():
            if isinstance(module, DragEmbedder):
                module.zero_init_output()

    def check_state_dict(self, state_dict: dict[str, torch.Tensor]) -> None:
        """Raise :class:`CheckpointMismatchError` unless ``state_dict`` fits this model key for key."""
        check_state_dict(
            state_dict,
            self.state_dict(),
            "UNetDragSpatioTemporalModel("
            f"num_drags={self.config.num_drags}, block_out_channels={tuple(self.config.block_out_channels)})",
        )

    @classmethod
    def from_puppet_master_checkpoint(
        cls,
        path_or_repo_id: str | os.PathLike,
        filename: str | None = None,
        *,
        repo_type: str | None = None,
        revision: str | None = None,
        cache_dir: str | os.PathLike | None = None,
        token: str | None = None,
        local_files_only: bool = False,
        torch_dtype: torch.dtype | None = None,
        device: torch.device | str = "cpu",
        **config: object,
    ) -> UNetDragSpatioTemporalModel:
        """Load the published Puppet-Master UNet state dict (strictly).

        ``from_puppet_master_checkpoint("rayli/Puppet-Master")`` reads the authors' weights from
        their Hugging Face Space (``ckpts/model.safetensors``); see :mod:`backend.models.checkpoint`.

        Args:
            path_or_repo_id: a ``.safetensors`` file, a folder holding ``filename``, or a Hugging Face
                hub ``repo_id`` whose ``filename`` is downloaded (or read from the local hub cache).
            filename: the weights file inside the folder or repo; ``None``: the source's default
                (``ckpts/model.safetensors`` in the published Space, else ``model.safetensors``).
            repo_type: the hub repo type; ``None``: ``"space"`` for the published repo, else a model repo.
            revision, cache_dir, token, local_files_only: passed to ``huggingface_hub.hf_hub_download``.
            torch_dtype: cast the weights to this dtype (default: as stored).
            device: where the weights are loaded.
            config: overrides of the default (published) config, e.g. ``num_drags``.
        """
        path = resolve_weights_file(
            path_or_repo_id, filename, repo_type=repo_type, revision=revision, cache_dir=cache_dir, token=token,
            local_files_only=local_files_only,
        )  # fmt: skip
        state_dict = load_weights_file(path, device=device, dtype=torch_dtype)
        # build without allocating random weights, then adopt the loaded tensors
        with torch.device("meta"):
            model = cls(**config)
        model.check_state_dict(state_dict)
        model.load_state_dict(state_dict, strict=True, assign=True)
        logger.info("loaded Puppet-Master UNet from %s", path)
        return model.eval()

    @classmethod
    def from_svd_unet(cls, unet: nn.Module, **drag_config: object) -> UNetDragSpatioTemporalModel:
        """Build from a diffusers ``UNetSpatioTemporalConditionModel`` (training initialisation).

        Copies every SVD weight, drops SVD's added-time embedding, keeps the new drag branch's
        default initialisation except each drag embedder's last conv, which is zeroed so that the
        modulation starts as the identity.
        """
        config = {key: unet.config[key] for key in SVD_CONFIG_KEYS if key in unet.config}
        model = cls(**config, **drag_config)
        # 1. copy SVD's weights; every one must find its place, only the drag branch may be new
        missing, unexpected = model.load_state_dict(svd_state_dict(unet.state_dict()), strict=False)
        check_svd_weights_fit(missing, unexpected)
        # 2. zero-init each drag embedder's output conv: modulation starts as the identity
        model.zero_init_drag_embedders()
        return model.to(device=unet.device, dtype=unet.dtype)
