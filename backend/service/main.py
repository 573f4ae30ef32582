"""Builds the FastAPI app; the lifespan starts loading the engine (in the background), takes back the jobs
a previous run left in the journal, and runs the worker thread."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import Depends, FastAPI
from starlette.concurrency import run_in_threadpool

from .. import __version__
from ..engines import Engine
from ..engines.factory import LoadReport, create_engine
from .deps import require_token
from .errors import install_error_handlers
from .intake import Intake
from .journal import JobJournal
from .loading import EngineFactory, EngineLoader
from .middleware import BodySizeLimitMiddleware, EarlyRefusalMiddleware
from .registry import Job, JobRegistry
from .routers import docs, health, job_files, jobs, tracks
from .settings import ServiceSettings
from .storage import PruneLimits, ResultStore, check_results_dir
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
    (loaded like the real one: tests, embedding) replaces it. ValueError (one sentence) for settings
    the service cannot run with: an unsafe bind address, a results folder it cannot write.
    """
    settings = settings or ServiceSettings()
    settings.check_bind_is_safe()
    if engine is not None and engine_factory is not None:
        raise ValueError("create_app takes an engine or an engine_factory, not both")
    results_dir = _check_results_dir(settings.results_dir)
    intake = Intake(settings.max_bodies_bytes, settings.decode_slots, settings.intake_wait_s)

    def make_loader() -> EngineLoader:
        if engine is not None:
            return EngineLoader.loaded(engine, engine_reason or "given to create_app")
        factory = engine_factory or configured_engine_factory(settings)
        loader = EngineLoader(factory, first_stage=f"choosing the engine (--engine {settings.engine})")
        loader.start()
        return loader

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.loader = loader = make_loader()
        intake.bind()
        store = ResultStore(results_dir)
        journal = JobJournal(results_dir)
        store.remove_leftovers()
        registry = JobRegistry(read_record=store.read_record)
        registry.feed.bind(asyncio.get_running_loop())
        _reload_finished_jobs(store, registry)
        worker = Worker(
            loader,
            store,
            registry,
            journal,
            max_queue=settings.max_queue,
            limits=PruneLimits(keep_hours=settings.keep_hours, keep_gb=settings.keep_gb),
        )
        app.state.store, app.state.registry, app.state.worker = store, registry, worker
        worker.recover()
        worker.start()
        try:
            yield
        finally:
            await run_in_threadpool(worker.stop)
            journal.close()

    protected = settings.token_value is not None  # then the API's own description needs the token too
    app = FastAPI(
        title="Puppet-Master",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        **({"openapi_url": None, "docs_url": None, "redoc_url": None} if protected else {}),
    )
    app.state.settings = settings
    app.state.intake = intake
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.max_body_bytes, intake=intake)
    app.add_middleware(EarlyRefusalMiddleware)  # added last: runs first, before a body is held or read
    install_error_handlers(app)
    app.include_router(health.router, prefix="/v1")
    app.include_router(jobs.router, prefix="/v1", dependencies=[Depends(require_token)])
    app.include_router(job_files.router, prefix="/v1", dependencies=[Depends(require_token)])
    app.include_router(tracks.router, prefix="/v1", dependencies=[Depends(require_token)])
    if protected:
        app.include_router(docs.router, dependencies=[Depends(require_token)])
    return app


def _check_results_dir(folder: Path) -> Path:
    """The results folder, writable and able to hold the job journal; ValueError in one sentence otherwise."""
    path = check_results_dir(folder)
    try:
        JobJournal(path).close()
    except sqlite3.Error as error:
        raise ValueError(
            f"--results-dir {folder}: the job journal cannot be kept there ({error}); give a folder on a local disk"
        ) from None
    return path


def configured_engine_factory(settings: ServiceSettings) -> EngineFactory:
    """The engine ``settings`` describe, built by the one engine factory."""

    def build(report: LoadReport) -> tuple[Engine, str]:
        return create_engine(settings.engine_config(), report=report)

    return build


def _reload_finished_jobs(store: ResultStore, registry: JobRegistry) -> None:
    """Register the finished jobs found in the results directory (slim: the records stay on disk)."""
    loaded = 0
    for record in store.load_records():
        try:
            job = Job.from_record(record)
            job.slim()
            registry.add(job)
            loaded += 1
        except ValueError as error:
            logger.warning("skipping job record %s: %s", record.get("id"), error)
    if loaded:
        logger.info("reloaded %d finished job(s) from %s", loaded, store.root)
