"""The one shape every error response has: ``{"detail": [{"field": ..., "message": ...}]}``."""

from __future__ import annotations

from pydantic import BaseModel, Field


class ErrorDetail(BaseModel):
    """One problem with a request."""

    field: str | None = Field(
        description="The request field at fault, e.g. ``drags[2][0]``, ``image`` or ``job_id``; null when none is."
    )
    message: str = Field(description="What is wrong and, where possible, what to do about it.")


class ErrorResponse(BaseModel):
    """Body of every 4xx/5xx response."""

    detail: list[ErrorDetail]
