"""Named UNet configurations: the published model and small ones for tests, demos and benchmarks."""

from __future__ import annotations

# The published Puppet-Master UNet is the constructor's defaults.
PUBLISHED_UNET_CONFIG: dict = {}

# Smallest architecture with every mechanism: two drag-conditioned down blocks and two up blocks,
# a plain down/up block, the mid block. Channel counts are multiples of 32 (GroupNorm).
TINY_UNET_CONFIG: dict = dict(
    down_block_types=(
        "CrossAttnDownBlockSpatioTemporal",
        "CrossAttnDownBlockSpatioTemporal",
        "DownBlockSpatioTemporal",
    ),
    up_block_types=(
        "UpBlockSpatioTemporal",
        "CrossAttnUpBlockSpatioTemporal",
        "CrossAttnUpBlockSpatioTemporal",
    ),
    block_out_channels=(32, 64, 64),
    layers_per_block=1,
    cross_attention_dim=32,
    num_attention_heads=(2, 4, 4),
    pos_embed_dim=16,
    drag_embedder_out_channels=(16, 32),
)

# Same block structure as the published model at about a quarter of its width: CPU-friendly
# benchmarks whose cost profile (attention, drag branch share) resembles the full model.
MID_UNET_CONFIG: dict = dict(
    block_out_channels=(96, 192, 384, 384),
    num_attention_heads=(3, 6, 12, 12),
    cross_attention_dim=256,
    drag_embedder_out_channels=(64, 96, 96),
)

UNET_CONFIGS: dict[str, dict] = {"tiny": TINY_UNET_CONFIG, "mid": MID_UNET_CONFIG, "full": PUBLISHED_UNET_CONFIG}
