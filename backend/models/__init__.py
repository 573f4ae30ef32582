"""Puppet-Master model code."""

from .attention_processors import AllToFirstAttnProcessor, VideoContextAttnProcessor
from .drag_conditioning import DragConditioning, encode_drags, sincos_position_map
from .unet_drag import (
    CheckpointMismatchError,
    UNetDragSpatioTemporalModel,
    UNetDragSpatioTemporalOutput,
)

__all__ = [
    "AllToFirstAttnProcessor",
    "CheckpointMismatchError",
    "DragConditioning",
    "UNetDragSpatioTemporalModel",
    "UNetDragSpatioTemporalOutput",
    "VideoContextAttnProcessor",
    "encode_drags",
    "sincos_position_map",
]
