"""Puppet-Master model code."""

from .attention_processors import AllToFirstAttnProcessor
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
    "encode_drags",
    "sincos_position_map",
]
