"""Choose and build the engine a server or command runs, and say why that one.

``auto`` runs the Puppet-Master model only where it can run at a useful speed with real weights: a
CUDA or MPS device and a configured model. Anywhere else it runs the weight-free preview, and the
returned reason says what was missing, so the user is never shown the preview as the model.
"""

from __future__ import annotations

import logging
from os import PathLike
from typing import Protocol

from .base import Engine

logger = logging.getLogger(__name__)

ENGINE_CHOICES = ("auto", "puppet-master", "preview")


class EngineSettings(Protocol):
    """The settings :func:`create_engine` reads (``ServiceSettings`` has them, so has an argparse namespace)."""

    engine: str
    model: str | PathLike[str] | None
    svd: str | None
    unet: str | None
    device: str
    dtype: str


def gpu_unavailable_reason() -> str | None:
    """None when CUDA or Apple MPS is available, else a short reason saying neither is."""
    import torch

    if torch.cuda.is_available() or torch.backends.mps.is_available():
        return None
    return "no GPU: CUDA and MPS are unavailable"


def _weights_configured(settings: EngineSettings) -> bool:
    """Whether any weights were named; loading says what is missing when the set is incomplete."""
    return bool(settings.model or settings.unet or settings.svd)


def _preview(reason: str) -> tuple[Engine, str]:
    from .preview import PreviewEngine

    return PreviewEngine(reason=reason), reason


def _diffusion(settings: EngineSettings, reason: str) -> Engine:
    """The Puppet-Master model engine; RuntimeError (one sentence) when it cannot be imported."""
    try:
        from .diffusion import DiffusionEngine
    except ImportError as error:
        raise RuntimeError(
            f"the Puppet-Master model engine is unavailable in this installation ({error}); "
            "run with --engine preview, or reinstall the backend"
        ) from error
    return DiffusionEngine.from_settings(
        reason=reason,
        model=settings.model,
        svd=settings.svd,
        unet=settings.unet,
        device=settings.device,
        dtype=settings.dtype,
    )


def create_engine(settings: EngineSettings) -> tuple[Engine, str]:
    """Build the engine ``settings.engine`` asks for and return it with the reason it was chosen.

    - ``preview``: the weight-free preview, because it was asked for.
    - ``puppet-master``: the model; errors (no weights, unavailable device) propagate to the caller.
    - ``auto``: the model when CUDA or MPS is available and weights are configured (``--model``, or
      ``--svd`` with ``--unet``); otherwise, or when the model fails to load, the preview with the reason.
    """
    choice = settings.engine
    if choice not in ENGINE_CHOICES:
        raise ValueError(f"unknown engine {choice!r}; choose one of {', '.join(ENGINE_CHOICES)}")
    if choice == "preview":
        return _preview("requested with --engine preview")
    if choice == "puppet-master":
        if not _weights_configured(settings):
            raise ValueError(
                "--engine puppet-master needs model weights: pass --model DIR (a saved Puppet-Master pipeline) "
                "or --svd with --unet"
            )
        reason = "requested with --engine puppet-master"
        return _diffusion(settings, reason), reason

    if (reason := gpu_unavailable_reason()) is not None:
        return _preview(reason)
    if not _weights_configured(settings):
        return _preview("no model weights configured (--model)")
    reason = "a GPU and model weights are available"
    try:
        return _diffusion(settings, reason), reason
    except (RuntimeError, ValueError, OSError) as error:
        logger.warning("the Puppet-Master model failed to load, falling back to the preview: %s", error)
        return _preview(f"the Puppet-Master model failed to load: {error}")
