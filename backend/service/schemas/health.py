"""``GET /v1/health``."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

HealthStatus = Literal["loading", "ok", "degraded", "error"]


class HealthPublic(BaseModel):
    """Whether the service runs, which engine it runs and why (or how far loading it got), and how busy it is.

    The port opens before the engine has loaded (minutes for the model): until then ``status`` is
    ``loading`` with ``stage`` and ``load_s``, and jobs submitted meanwhile wait in the queue.
    """

    status: HealthStatus = Field(
        description="``loading`` while the engine loads (jobs queue meanwhile), ``ok`` once it is ready and the "
        "worker thread is alive, ``error`` when the engine failed to load (see ``error``; jobs fail until a "
        "restart), ``degraded`` when the worker thread died."
    )
    engine: str | None = Field(
        None,
        description="``puppet-master`` (the diffusion model) or ``preview`` (a weight-free draft: rigid part motion); "
        "null while loading or after a failed load.",
    )
    device: str | None = Field(None, description="Device the engine runs on, e.g. ``cuda:0`` or ``cpu``.")
    dtype: str | None = Field(None, description="Floating-point type of the model, e.g. ``bf16``.")
    model: str | None = Field(None, description="Identity of the loaded weights (path, hub id or hash).")
    reason: str | None = Field(
        None,
        description="Why this engine runs, e.g. ``no GPU: CUDA and MPS are unavailable``; null until it is chosen.",
    )
    stage: str | None = Field(
        None,
        description="While ``loading``: what the engine is doing, e.g. ``reading the model from DIR``; else null.",
    )
    load_s: float = Field(
        description="Seconds the engine has been loading (while ``loading``), or took to load or to fail."
    )
    error: str | None = Field(None, description="Why the engine failed to load (status ``error``); null otherwise.")
    queue_length: int = Field(description="Jobs waiting behind the running one (or for the engine to load).")
    max_queue: int = Field(description="Waiting jobs accepted before new ones get 429.")
    running: bool = Field(description="Whether a job is being generated now.")
    auth: bool = Field(description="Whether requests need ``Authorization: Bearer <token>``.")
    version: str = Field(description="Version of the backend.")
