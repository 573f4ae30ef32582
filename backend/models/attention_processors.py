"""All-to-first spatial attention of Puppet-Master (arXiv 2408.04631, Sec. 3.3)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers.models.attention_processor import Attention


def _attend(attn: Attention, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """``scaled_dot_product_attention`` over ``[B, Sq, H*D]`` queries and ``[B, Sk, H*D]`` keys/values.

    Splits heads, applies the module's query/key norms if any, returns ``[B, Sq, H*D]``.
    """
    batch, heads = query.shape[0], attn.heads
    head_dim = key.shape[-1] // heads
    # [B, S, H*D] -> [B, H, S, D]
    query, key, value = (x.view(batch, -1, heads, head_dim).transpose(1, 2) for x in (query, key, value))
    if attn.norm_q is not None:
        query = attn.norm_q(query)
    if attn.norm_k is not None:
        key = attn.norm_k(key)
    out = F.scaled_dot_product_attention(query, key, value, scale=attn.scale)
    # [B, H, Sq, D] -> [B, Sq, H*D]
    return out.transpose(1, 2).reshape(batch, -1, heads * head_dim).to(query.dtype)


def _project_out(attn: Attention, out: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
    """Output projection, dropout, residual and rescale, as diffusers' ``AttnProcessor2_0``."""
    out = attn.to_out[1](attn.to_out[0](out))
    if attn.residual_connection:
        out = out + residual
    return out / attn.rescale_output_factor


class AllToFirstAttnProcessor:
    r"""Spatial self-attention whose keys and values come from the first frame of each video.

    Queries come from every frame as usual; keys and values are computed from the tokens of
    frame 0 of the same video, so every frame looks at the (clean, conditioning-like) first frame.
    Because all frames of a video share those keys and values, the frames are folded into the
    query sequence and one ``scaled_dot_product_attention`` call serves the whole video: keys and
    values are projected once per video instead of once per frame, for any frame count.

    The spatial transformer sees ``(batch * frames, tokens, channels)`` and cannot know the frame
    count, so the UNet sets ``num_frames`` before each forward pass.
    """

    def __init__(self, num_frames: int | None = None):
        self.num_frames = num_frames

    def __call__(
        self,
        attn: Attention,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        temb: torch.Tensor | None = None,
    ) -> torch.Tensor:
        if encoder_hidden_states is not None or attention_mask is not None:
            raise ValueError("AllToFirstAttnProcessor is for self-attention without a mask")
        if attn.spatial_norm is not None or attn.group_norm is not None or hidden_states.ndim != 3:
            raise ValueError("AllToFirstAttnProcessor expects (batch * frames, tokens, channels) input")
        if not self.num_frames:
            raise RuntimeError("AllToFirstAttnProcessor.num_frames is not set; the UNet sets it in forward()")
        batch_frames, tokens, _ = hidden_states.shape
        num_frames = self.num_frames
        if batch_frames % num_frames:
            raise ValueError(f"batch*frames={batch_frames} is not a multiple of num_frames={num_frames}")
        batch = batch_frames // num_frames
        residual = hidden_states

        # 1. queries from every frame; keys and values from frame 0 only
        query = attn.to_q(hidden_states)
        first_frame = hidden_states.view(batch, num_frames, tokens, -1)[:, 0]  # [B, N, C]
        key = attn.to_k(first_frame)
        value = attn.to_v(first_frame)

        # 2. fold the frames into the query sequence, [B*F, N, H*D] -> [B, F*N, H*D]: softmax is per
        # query row, so this changes nothing numerically and makes one SDPA call per video
        out = _attend(attn, query.view(batch, num_frames * tokens, -1), key, value)
        return _project_out(attn, out.view(batch_frames, tokens, -1), residual)


class VideoContextAttnProcessor:
    r"""Cross-attention of the temporal blocks, with the context projected once per video.

    diffusers' ``TransformerSpatioTemporalModel`` gives each temporal block's cross-attention the
    first frame's context (the CLIP token and, in drag-conditioned blocks, the drag tokens) copied
    to every spatial location: ``(batch * locations, tokens, dim)``, identical for all locations of
    a video. Projecting those keys and values once per video and folding the locations into the
    query sequence of one ``scaled_dot_product_attention`` call gives the same result without the
    per-location projections.

    The context rows of one video must be identical, which diffusers' temporal transformer
    guarantees; the UNet sets ``batch_size`` before each forward pass.
    """

    def __init__(self, batch_size: int | None = None):
        self.batch_size = batch_size

    def __call__(
        self,
        attn: Attention,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        temb: torch.Tensor | None = None,
    ) -> torch.Tensor:
        if encoder_hidden_states is None or attention_mask is not None or hidden_states.ndim != 3:
            raise ValueError("VideoContextAttnProcessor is for unmasked cross-attention on (rows, tokens, C) input")
        if not self.batch_size:
            raise RuntimeError("VideoContextAttnProcessor.batch_size is not set; the UNet sets it in forward()")
        rows, queries, _ = hidden_states.shape
        if rows % self.batch_size:
            raise ValueError(f"{rows} rows are not a multiple of batch_size={self.batch_size}")
        batch, tokens = self.batch_size, encoder_hidden_states.shape[1]
        residual = hidden_states

        # 1. one context per video: [B*L, T, D] -> [B, T, D]
        context = encoder_hidden_states.view(batch, rows // batch, tokens, -1)[:, 0]
        if attn.norm_cross:
            context = attn.norm_encoder_hidden_states(context)

        # 2. fold the locations into the query sequence: [B*L, Q, H*D] -> [B, L*Q, H*D]
        query = attn.to_q(hidden_states).view(batch, rows // batch * queries, -1)
        out = _attend(attn, query, attn.to_k(context), attn.to_v(context))
        return _project_out(attn, out.view(rows, queries, -1), residual)
