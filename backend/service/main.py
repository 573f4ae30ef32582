"""Builds the FastAPI app; the lifespan starts loading the engine (in the background) and runs the worker thread."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI
from starlette.concurrency import run_in_threadpool

from .. import __version__
from ..engines import Engine
from ..engines.factory import LoadReport, create_engine
from .deps import require_token
from .errors import install_error_handlers
from .loading import EngineFactory, EngineLoader
from .middleware import BodySizeLimitMiddleware
from .registry import Job, JobRegistry
from .routers import health, job_files, jobs
from .settings import ServiceSettings
from .storage import PruneLimits, ResultStore
from .worker import Worker

logger = logging.getLogger(__name__)

DESCRIPTION = """\
Part-level motion videos from drags, for the Puppet Master Blender extension.

Submit an image and drags with `POST /v1/jobs`, follow the job with `GET /v1/jobs/{id}` or the
server-sent events at `/v1/jobs/{id}/events`, then fetch its frames. Every error body is
`{"detail": [{"field": ..., "message": ...}]}`.
"""


def create_app(
    settings: ServiceSettings | None = None,
    engine: Engine | None = None,
    engine_reason: str | None = None,
    engine_factory: EngineFactory | None = None,
) -> FastAPI:
    """The service for ``settings``.

    The engine the settings choose is built on a background thread once the app starts, so the port
    opens at once and ``/v1/health`` reports the loading. ``engine`` (ready at once) or ``engine_factory``
    (loaded like the real one: tests, embedding) replaces it.
    """
    settings = settings or ServiceSettings()
    settings.check_bind_is_safe()
    if engine is not None and engine_factory is not None:
        raise ValueError("create_app takes an engine or an engine_factory, not both")

    def make_loader() -> EngineLoader:
        if engine is not None:
            return EngineLoader.loaded(engine, engine_reason or "given to create_app")
        factory = engine_factory or _configured_engine_factory(settings)
        loader = EngineLoader(factory, first_stage=f"choosing the engine (--engine {settings.engine})")
        loader.start()
        return loader

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.loader = loader = make_loader()
        store = ResultStore(settings.results_dir)
        registry = JobRegistry()
        registry.feed.bind(asyncio.get_running_loop())
        _reload_finished_jobs(store, registry)
        worker = Worker(
            loader,
            store,
            registry,
            max_queue=settings.max_queue,
            limits=PruneLimits(keep_hours=settings.keep_hours, keep_gb=settings.keep_gb),
        )
        app.state.store, app.state.registry, app.state.worker = store, registry, worker
        worker.start()
        try:
            yield
        finally:
            await run_in_threadpool(worker.stop)

    app = FastAPI(title="Puppet-Master", version=__version__, description=DESCRIPTION, lifespan=lifespan)
    app.state.settings = settings
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.max_body_bytes)
    install_error_handlers(app)
    app.include_router(health.router, prefix="/v1")
    app.include_router(jobs.router, prefix="/v1", dependencies=[Depends(require_token)])
    app.include_router(job_files.router, prefix="/v1", dependencies=[Depends(require_token)])
    return app


def _configured_engine_factory(settings: ServiceSettings) -> EngineFactory:
    """The engine ``settings`` describe, built by the one engine factory."""

    def build(report: LoadReport) -> tuple[Engine, str]:
        return create_engine(settings.engine_config(), report=report)

    return build


def _reload_finished_jobs(store: ResultStore, registry: JobRegistry) -> None:
    """Register the finished jobs found in the results directory, so their files stay reachable."""
    loaded = 0
    for record in store.load_records():
        try:
            registry.add(Job.from_record(record))
            loaded += 1
        except ValueError as error:
            logger.warning("skipping job record %s: %s", record.get("id"), error)
    if loaded:
        logger.info("reloaded %d finished job(s) from %s", loaded, store.root)
