"""``GET /v1/health``: is the service up, which engine runs (and why), or how far loading it got."""

from __future__ import annotations

from fastapi import APIRouter

from ... import __version__
from ..deps import LoaderDep, SettingsDep, WorkerDep
from ..loading import LoadState
from ..schemas import HealthPublic
from ..schemas.health import HealthStatus

router = APIRouter(tags=["health"])


@router.get("/health", response_model=HealthPublic, summary="Service status, the engine in use or its loading")
async def read_health(loader: LoaderDep, worker: WorkerDep, settings: SettingsDep) -> HealthPublic:
    """Open without a token, so a client can tell "server down" from "wrong token" (and "still loading").

    ``async`` and reading memory only: it runs on the event loop, never waiting for the thread pool
    that submissions and downloads use.
    """
    state = loader.state
    engine = loader.engine if state is LoadState.ready else None  # nothing to describe before it is ready
    info = engine.describe() if engine is not None else {}
    return HealthPublic(
        status=_status(state, worker.alive),
        engine=_text(info.get("engine") or (engine.name if engine is not None else None)),
        device=_text(info.get("device")),
        dtype=_text(info.get("dtype")),
        model=_text(info.get("model")),
        reason=_text(info.get("reason") or loader.reason),
        stage=loader.stage if state is LoadState.loading else None,
        load_s=round(loader.seconds, 3),
        error=loader.error,
        queue_length=len(worker.queue),
        max_queue=worker.queue.max_size,
        running=worker.running is not None,
        auth=settings.token_value is not None,
        version=__version__,
    )


def _status(state: LoadState, worker_alive: bool) -> HealthStatus:
    if state is LoadState.failed:
        return "error"
    if not worker_alive:
        return "degraded"
    return "loading" if state is LoadState.loading else "ok"


def _text(value: object) -> str | None:
    return None if value is None else str(value)
