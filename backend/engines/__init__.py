"""Generation engines: the Puppet-Master diffusion model and the weight-free preview."""

from .base import Cancelled, Engine, GenerationRequest, GenerationResult, ProgressCallback

__all__ = ["Cancelled", "Engine", "GenerationRequest", "GenerationResult", "ProgressCallback"]
