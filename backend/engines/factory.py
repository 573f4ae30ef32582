"""Choose and build the engine a server or command runs, and say why that one.

``auto`` runs the Puppet-Master model only where it can run at a useful speed with real weights: a
CUDA or MPS device and weights (named with ``--model``/``--svd``+``--unet``, or the folder
``puppet-master fetch-weights`` made). Anywhere else it runs the weight-free preview, and the
returned reason says what was missing and the command that fixes it, so the user is never shown the
preview as the model.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable

from ..paths import default_model_dir, find_fetched_model
from .base import Engine
from .config import ENGINE_CHOICES, EngineConfig

logger = logging.getLogger(__name__)

__all__ = ["ENGINE_CHOICES", "LoadReport", "create_engine", "gpu_unavailable_reason", "with_fetched_weights"]

# Called while an engine loads with a short description of the stage ("loading the UNet", ...).
LoadReport = Callable[[str], None]

FETCH_HINT = "run `puppet-master fetch-weights` once (a download of a few GB) or pass --model DIR"


def gpu_unavailable_reason() -> str | None:
    """None when CUDA or Apple MPS is available, else a short reason saying neither is."""
    import torch

    if torch.cuda.is_available() or torch.backends.mps.is_available():
        return None
    return "no GPU: CUDA and MPS are unavailable"


def with_fetched_weights(config: EngineConfig) -> EngineConfig:
    """``config`` with ``model`` set to the fetched pipeline folder when no weights were named and one exists."""
    if config.weights_given():
        return config
    fetched = find_fetched_model()
    return dataclasses.replace(config, model=str(fetched)) if fetched is not None else config


def _preview(reason: str) -> tuple[Engine, str]:
    from .preview import PreviewEngine

    return PreviewEngine(reason=reason), reason


def _diffusion(config: EngineConfig, reason: str, report: LoadReport | None) -> Engine:
    """The Puppet-Master model engine; RuntimeError (one sentence) when it cannot be imported."""
    try:
        from .diffusion import DiffusionEngine
    except ImportError as error:
        raise RuntimeError(
            f"the Puppet-Master model engine is unavailable in this installation ({error}); "
            "run with --engine preview, or reinstall the backend"
        ) from error
    return DiffusionEngine.from_config(config, reason=reason, report=report)


def create_engine(config: EngineConfig, report: LoadReport | None = None) -> tuple[Engine, str]:
    """Build the engine ``config.engine`` asks for and return it with the reason it was chosen.

    - ``preview``: the weight-free preview, because it was asked for.
    - ``puppet-master``: the model; errors (no weights, unavailable device) propagate to the caller.
    - ``auto``: the model when CUDA or MPS is available and weights are there; otherwise, or when the
      model fails to load, the preview with the reason (and what fixes it).

    ``report`` hears the loading stages, for a server that shows them while it loads.
    """
    if config.engine == "preview":
        return _preview("requested with --engine preview")
    config = with_fetched_weights(config)
    if config.engine == "puppet-master":
        if not config.weights_given():
            raise ValueError(
                f"--engine puppet-master needs model weights, and none were fetched to {default_model_dir()}: "
                f"{FETCH_HINT}"
            )
        reason = "requested with --engine puppet-master"
        return _diffusion(config, reason, report), reason

    gpu_missing = gpu_unavailable_reason()
    weights_missing = None if config.weights_given() else f"no model weights: {FETCH_HINT}"
    if gpu_missing and weights_missing:
        return _preview(f"{gpu_missing}; {weights_missing}")
    if gpu_missing:
        return _preview(f"{gpu_missing} (the model needs an NVIDIA GPU with CUDA or an Apple Silicon Mac)")
    if weights_missing:
        return _preview(weights_missing)
    reason = "a GPU and model weights are available"
    try:
        return _diffusion(config, reason, report), reason
    except (RuntimeError, ValueError, OSError) as error:
        logger.warning("the Puppet-Master model failed to load, falling back to the preview: %s", error)
        return _preview(f"the Puppet-Master model failed to load: {error}")
