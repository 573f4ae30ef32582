"""``GET /v1/health``."""

from __future__ import annotations

from pydantic import BaseModel, Field


class HealthPublic(BaseModel):
    """Whether the service runs, which engine it runs and why, and how busy it is."""

    status: str = Field(description="``ok`` while the worker thread is alive, else ``degraded``.")
    engine: str = Field(description="``puppet-master`` (the diffusion model) or ``preview`` (image warping).")
    device: str | None = Field(None, description="Device the engine runs on, e.g. ``cuda:0`` or ``cpu``.")
    dtype: str | None = Field(None, description="Floating-point type of the model, e.g. ``bf16``.")
    model: str | None = Field(None, description="Identity of the loaded weights (path, hub id or hash).")
    reason: str = Field(description="Why this engine runs, e.g. ``no GPU: CUDA and MPS are unavailable``.")
    queue_length: int = Field(description="Jobs waiting behind the running one.")
    max_queue: int = Field(description="Waiting jobs accepted before new ones get 429.")
    running: bool = Field(description="Whether a job is being generated now.")
    auth: bool = Field(description="Whether requests need ``Authorization: Bearer <token>``.")
    version: str = Field(description="Version of the backend.")
