"""Puppet-Master model code."""

from .attention_processors import AllToFirstAttnProcessor, VideoContextAttnProcessor
from .checkpoint import (
    PUBLISHED_UNET_FILENAME,
    PUBLISHED_UNET_REPO,
    PUBLISHED_UNET_REPO_TYPE,
    CheckpointMismatchError,
    resolve_weights_file,
)
from .drag_conditioning import DragConditioning, encode_drags, sincos_position_map
from .unet_drag import UNetDragSpatioTemporalModel, UNetDragSpatioTemporalOutput

__all__ = [
    "AllToFirstAttnProcessor",
    "CheckpointMismatchError",
    "DragConditioning",
    "PUBLISHED_UNET_FILENAME",
    "PUBLISHED_UNET_REPO",
    "PUBLISHED_UNET_REPO_TYPE",
    "UNetDragSpatioTemporalModel",
    "UNetDragSpatioTemporalOutput",
    "VideoContextAttnProcessor",
    "encode_drags",
    "resolve_weights_file",
    "sincos_position_map",
]
