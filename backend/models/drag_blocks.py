"""The blocks of Puppet-Master's UNet: diffusers' SVD cross-attention blocks plus a drag branch.

Each drag-conditioned layer runs SVD's resnet, modulates its features with a per-pixel scale and
shift from a convolutional drag embedder (:class:`DragEmbedder`), appends one token per drag to the
cross-attention context, then runs SVD's spatio-temporal transformer (arXiv 2408.04631, section 3).
The model that stacks these blocks is :class:`~backend.models.unet_drag.UNetDragSpatioTemporalModel`.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from diffusers.models.unets.unet_3d_blocks import CrossAttnDownBlockSpatioTemporal, CrossAttnUpBlockSpatioTemporal

from .drag_conditioning import CHANNELS_PER_DRAG, DragConditioning, LayerDragConditioning, sample_at_drags

__all__ = [
    "CrossAttnDownBlockSpatioTemporalWithDrag",
    "CrossAttnUpBlockSpatioTemporalWithDrag",
    "DragBranchMixin",
    "DragEmbedder",
]


class DragEmbedder(nn.Module):
    """Convolutional drag embedder (``flow_convs[j]``): drag encoding -> per-pixel modulation.

    ``conv_in`` to ``channels[0]``, then for each following width a same-width conv and a widening
    conv, then ``conv_out``; 3x3, stride 1, SiLU after every conv but the last.
    """

    def __init__(self, in_channels: int, out_channels: int, channels: tuple[int, ...] = (256, 320, 320)):
        super().__init__()
        self.conv_in = nn.Conv2d(in_channels, channels[0], kernel_size=3, padding=1)
        self.blocks = nn.ModuleList()
        for width_in, width_out in zip(channels[:-1], channels[1:], strict=True):
            self.blocks.append(nn.Conv2d(width_in, width_in, kernel_size=3, padding=1))
            self.blocks.append(nn.Conv2d(width_in, width_out, kernel_size=3, padding=1))
        self.conv_out = nn.Conv2d(channels[-1], out_channels, kernel_size=3, padding=1)

    def forward(self, encoding: torch.Tensor) -> torch.Tensor:
        hidden = F.silu(self.conv_in(encoding))
        for conv in self.blocks:
            hidden = F.silu(conv(hidden))
        return self.conv_out(hidden)

    def zero_init_output(self) -> None:
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)


class DragBranchMixin:
    """The drag branch shared by the down and up blocks: one drag embedder and one token MLP per layer.

    Mixed into diffusers' cross-attention SVD blocks, so resnets, transformers and resamplers are
    exactly diffusers' (SVD weights load into them unchanged).
    """

    def _init_drag_branch(
        self,
        out_channels: int,
        num_layers: int,
        num_drags: int,
        pos_embed_dim: int,
        cross_attention_dim: int,
        drag_embedder_out_channels: tuple[int, ...],
        use_modulate: bool,
        drag_token_cross_attn: bool,
    ) -> None:
        self.use_modulate = use_modulate
        self.drag_token_cross_attn = drag_token_cross_attn
        embedding_channels = 2 * out_channels if use_modulate else out_channels
        self.flow_convs = nn.ModuleList(
            DragEmbedder(CHANNELS_PER_DRAG * num_drags, embedding_channels, drag_embedder_out_channels)
            for _ in range(num_layers)
        )
        if drag_token_cross_attn:
            token_in = 2 * out_channels + 2 * pos_embed_dim  # features and positions at start and current
            self.drag_token_mlps = nn.ModuleList(
                nn.Sequential(
                    nn.Linear(token_in, cross_attention_dim),
                    nn.SiLU(),
                    nn.Linear(cross_attention_dim, cross_attention_dim),
                )
                for _ in range(num_layers)
            )

    def _maybe_checkpoint(self, function, *args):
        """Run ``function(*args)``, under activation checkpointing when it is enabled and grads are on."""
        if torch.is_grad_enabled() and self.gradient_checkpointing:
            return self._gradient_checkpointing_func(function, *args)
        return function(*args)

    def prepare_layers(self, encoding: torch.Tensor, positions: torch.Tensor) -> list[LayerDragConditioning]:
        """Run every layer's drag embedder once on ``encoding`` (``[B*F, 6K, H, W]``)."""
        layers = []
        for flow_conv in self.flow_convs:
            embedding = self._maybe_checkpoint(flow_conv, encoding)
            if self.use_modulate:
                scale, shift = embedding.chunk(2, dim=1)
                layers.append(LayerDragConditioning(1 + scale, shift, positions))
            else:
                layers.append(LayerDragConditioning(None, embedding, positions))
        return layers

    def _drag_tokens(
        self, layer_index: int, hidden_states: torch.Tensor, cond: DragConditioning, layer: LayerDragConditioning
    ) -> torch.Tensor:
        """``[B*F, K, cross_attention_dim]`` drag tokens; zero for drag slots absent from the video."""
        # read the modulated features without letting gradients flow through the read
        start, current = sample_at_drags(hidden_states.detach(), cond.grid.to(hidden_states.dtype))
        tokens_in = torch.cat([start, current, layer.positions], dim=-1)  # [B*F, K, 2C + 2P]
        tokens = self.drag_token_mlps[layer_index](tokens_in)
        return tokens.masked_fill(cond.absent, 0)

    def _drag_layer(
        self,
        layer_index: int,
        hidden_states: torch.Tensor,
        temb: torch.Tensor,
        encoder_hidden_states: torch.Tensor,
        image_only_indicator: torch.Tensor,
        cond: DragConditioning,
        layer: LayerDragConditioning,
    ) -> torch.Tensor:
        # 1. resnet
        hidden_states = self._maybe_checkpoint(self.resnets[layer_index], hidden_states, temb, image_only_indicator)
        # 2. adaptive modulation from the (cached) drag embedding
        if layer.scale_plus_one is not None:
            hidden_states = hidden_states * layer.scale_plus_one + layer.shift
        else:
            hidden_states = hidden_states + layer.shift
        # 3. cross-attention context: [CLIP token, drag tokens of this frame]; never accumulates
        context = encoder_hidden_states
        if self.drag_token_cross_attn:
            tokens = self._drag_tokens(layer_index, hidden_states, cond, layer)
            context = torch.cat([encoder_hidden_states, tokens.to(encoder_hidden_states.dtype)], dim=1)
        # 4. spatio-temporal transformer (checkpoints its own blocks when enabled)
        return self.attentions[layer_index](
            hidden_states,
            encoder_hidden_states=context,
            image_only_indicator=image_only_indicator,
            return_dict=False,
        )[0]


class CrossAttnDownBlockSpatioTemporalWithDrag(DragBranchMixin, CrossAttnDownBlockSpatioTemporal):
    """diffusers' SVD cross-attention down block with Puppet-Master's drag branch in every layer."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        temb_channels: int,
        num_layers: int,
        transformer_layers_per_block: int | tuple[int, ...],
        num_attention_heads: int,
        cross_attention_dim: int,
        add_downsample: bool,
        num_drags: int,
        pos_embed_dim: int,
        drag_embedder_out_channels: tuple[int, ...],
        use_modulate: bool,
        drag_token_cross_attn: bool,
    ):
        super().__init__(
            in_channels=in_channels,
            out_channels=out_channels,
            temb_channels=temb_channels,
            num_layers=num_layers,
            transformer_layers_per_block=transformer_layers_per_block,
            num_attention_heads=num_attention_heads,
            cross_attention_dim=cross_attention_dim,
            add_downsample=add_downsample,
        )
        self._init_drag_branch(
            out_channels, num_layers, num_drags, pos_embed_dim, cross_attention_dim,
            drag_embedder_out_channels, use_modulate, drag_token_cross_attn,
        )  # fmt: skip

    def forward(
        self,
        hidden_states: torch.Tensor,
        temb: torch.Tensor,
        encoder_hidden_states: torch.Tensor,
        image_only_indicator: torch.Tensor,
        drag_conditioning: DragConditioning,
        layers: list[LayerDragConditioning],
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        output_states = ()
        for index, layer in enumerate(layers):
            hidden_states = self._drag_layer(
                index, hidden_states, temb, encoder_hidden_states, image_only_indicator, drag_conditioning, layer
            )
            output_states = output_states + (hidden_states,)
        if self.downsamplers is not None:
            for downsampler in self.downsamplers:
                hidden_states = downsampler(hidden_states)
            output_states = output_states + (hidden_states,)
        return hidden_states, output_states


class CrossAttnUpBlockSpatioTemporalWithDrag(DragBranchMixin, CrossAttnUpBlockSpatioTemporal):
    """diffusers' SVD cross-attention up block with Puppet-Master's drag branch in every layer."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        prev_output_channel: int,
        temb_channels: int,
        resolution_idx: int,
        num_layers: int,
        transformer_layers_per_block: int | tuple[int, ...],
        resnet_eps: float,
        num_attention_heads: int,
        cross_attention_dim: int,
        add_upsample: bool,
        num_drags: int,
        pos_embed_dim: int,
        drag_embedder_out_channels: tuple[int, ...],
        use_modulate: bool,
        drag_token_cross_attn: bool,
    ):
        super().__init__(
            in_channels=in_channels,
            out_channels=out_channels,
            prev_output_channel=prev_output_channel,
            temb_channels=temb_channels,
            resolution_idx=resolution_idx,
            num_layers=num_layers,
            transformer_layers_per_block=transformer_layers_per_block,
            resnet_eps=resnet_eps,
            num_attention_heads=num_attention_heads,
            cross_attention_dim=cross_attention_dim,
            add_upsample=add_upsample,
        )
        self._init_drag_branch(
            out_channels, num_layers, num_drags, pos_embed_dim, cross_attention_dim,
            drag_embedder_out_channels, use_modulate, drag_token_cross_attn,
        )  # fmt: skip

    def forward(
        self,
        hidden_states: torch.Tensor,
        res_hidden_states_tuple: tuple[torch.Tensor, ...],
        temb: torch.Tensor,
        encoder_hidden_states: torch.Tensor,
        image_only_indicator: torch.Tensor,
        drag_conditioning: DragConditioning,
        layers: list[LayerDragConditioning],
        upsample_size: tuple[int, int] | None = None,
    ) -> torch.Tensor:
        for index, layer in enumerate(layers):
            # skip connections are consumed last-in first-out, as in SVD
            hidden_states = torch.cat([hidden_states, res_hidden_states_tuple[-1 - index]], dim=1)
            hidden_states = self._drag_layer(
                index, hidden_states, temb, encoder_hidden_states, image_only_indicator, drag_conditioning, layer
            )
        if self.upsamplers is not None:
            for upsampler in self.upsamplers:
                hidden_states = upsampler(hidden_states, upsample_size)
        return hidden_states
