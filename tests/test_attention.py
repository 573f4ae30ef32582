"""All-to-first attention against an explicit per-frame, per-head computation."""

from __future__ import annotations

import pytest
import torch
from diffusers.models.attention_processor import Attention

from backend.models import AllToFirstAttnProcessor


def naive_all_to_first(attn: Attention, hidden: torch.Tensor, batch: int, frames: int) -> torch.Tensor:
    tokens, channels = hidden.shape[1:]
    heads, head_dim = attn.heads, channels // attn.heads
    video = hidden.view(batch, frames, tokens, channels)
    out = torch.empty(batch, frames, tokens, channels, dtype=hidden.dtype)
    for b in range(batch):
        keys = attn.to_k(video[b, 0]).view(tokens, heads, head_dim)
        values = attn.to_v(video[b, 0]).view(tokens, heads, head_dim)
        for f in range(frames):
            queries = attn.to_q(video[b, f]).view(tokens, heads, head_dim)
            per_head = []
            for h in range(heads):
                weights = torch.softmax(queries[:, h] @ keys[:, h].T / head_dim**0.5, dim=-1)
                per_head.append(weights @ values[:, h])
            out[b, f] = attn.to_out[0](torch.cat(per_head, dim=-1))
    return out.view(batch * frames, tokens, channels)


@pytest.mark.parametrize(("batch", "frames", "heads"), [(1, 1, 1), (1, 3, 2), (2, 5, 4), (3, 14, 2)])
def test_all_to_first_matches_naive(batch: int, frames: int, heads: int) -> None:
    torch.manual_seed(batch * 100 + frames * 10 + heads)
    channels, tokens = 16, 12
    attn = Attention(query_dim=channels, heads=heads, dim_head=channels // heads, out_bias=True)
    attn.set_processor(AllToFirstAttnProcessor(num_frames=frames))
    hidden = torch.randn(batch * frames, tokens, channels, dtype=torch.float64)
    attn = attn.double()
    with torch.no_grad():
        ours = attn(hidden)
        expected = naive_all_to_first(attn, hidden, batch, frames)
    torch.testing.assert_close(ours, expected, rtol=1e-10, atol=1e-10)


def test_frame_zero_equals_plain_self_attention() -> None:
    """Frame 0 attends to itself: its rows are ordinary self-attention."""
    torch.manual_seed(0)
    attn = Attention(query_dim=8, heads=2, dim_head=4)
    hidden = torch.randn(2 * 3, 6, 8)
    with torch.no_grad():
        plain = attn(hidden.view(2, 3, 6, 8)[:, 0])
        attn.set_processor(AllToFirstAttnProcessor(num_frames=3))
        ours = attn(hidden).view(2, 3, 6, 8)[:, 0]
    torch.testing.assert_close(ours, plain)


def test_needs_frame_count_and_divisible_batch() -> None:
    attn = Attention(query_dim=8, heads=2, dim_head=4)
    attn.set_processor(AllToFirstAttnProcessor())
    with pytest.raises(RuntimeError, match="num_frames is not set"):
        attn(torch.randn(4, 3, 8))
    attn.processor.num_frames = 3
    with pytest.raises(ValueError, match="not a multiple"):
        attn(torch.randn(4, 3, 8))


@pytest.mark.parametrize(("batch", "locations", "frames", "tokens"), [(1, 4, 3, 1), (2, 6, 5, 6), (3, 2, 14, 6)])
def test_video_context_matches_plain_cross_attention(batch: int, locations: int, frames: int, tokens: int) -> None:
    """Temporal cross-attention with one context per video equals diffusers' processor on the copied context."""
    from diffusers.models.attention_processor import AttnProcessor2_0

    from backend.models import VideoContextAttnProcessor

    torch.manual_seed(batch + locations + frames)
    attn = Attention(query_dim=16, cross_attention_dim=12, heads=4, dim_head=4, out_bias=True).double()
    hidden = torch.randn(batch * locations, frames, 16, dtype=torch.float64)
    context = torch.randn(batch, tokens, 12, dtype=torch.float64)
    copied = context[:, None].expand(-1, locations, -1, -1).reshape(batch * locations, tokens, 12)
    with torch.no_grad():
        attn.set_processor(AttnProcessor2_0())
        expected = attn(hidden, encoder_hidden_states=copied)
        attn.set_processor(VideoContextAttnProcessor(batch_size=batch))
        ours = attn(hidden, encoder_hidden_states=copied)
    torch.testing.assert_close(ours, expected, rtol=1e-10, atol=1e-10)
