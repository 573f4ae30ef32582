"""``GET /v1/health``: is the service up, and which engine runs (and why)."""

from __future__ import annotations

from fastapi import APIRouter, Request

from ... import __version__
from ..deps import EngineDep, SettingsDep, WorkerDep
from ..schemas import HealthPublic

router = APIRouter(tags=["health"])


@router.get("/health", response_model=HealthPublic, summary="Service status and the engine in use")
def read_health(request: Request, engine: EngineDep, worker: WorkerDep, settings: SettingsDep) -> HealthPublic:
    """Open without a token, so a client can tell "server down" from "wrong token"."""
    info = engine.describe()
    return HealthPublic(
        status="ok" if worker.alive else "degraded",
        engine=str(info.get("engine") or engine.name),
        device=_text(info.get("device")),
        dtype=_text(info.get("dtype")),
        model=_text(info.get("model")),
        reason=str(info.get("reason") or request.app.state.engine_reason),
        queue_length=len(worker.queue),
        max_queue=worker.queue.max_size,
        running=worker.running is not None,
        auth=settings.token_value is not None,
        version=__version__,
    )


def _text(value: object) -> str | None:
    return None if value is None else str(value)
