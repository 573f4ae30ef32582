"""Jobs: submit (``POST /v1/jobs``), list, read, follow (server-sent events) and cancel or delete.

Routes only check input, enqueue and read; the worker thread does the work. Submitting decodes the
image (and the optional part map and depth) on the intake's own threads (:mod:`..intake`), so many
large submissions at once neither take the memory of all their images nor the threads that the other
routes and ``/v1/health`` need.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Query, Response, status
from fastapi.responses import JSONResponse
from fastapi.sse import EventSourceResponse, ServerSentEvent
from starlette.concurrency import run_in_threadpool

from ..deps import IntakeDep, JobDep, RegistryDep, SettingsDep, WorkerDep
from ..errors import ApiError
from ..images import PartInputs, decode_base64, decode_image, open_part_inputs
from ..registry import Job, JobRegistry, new_job_id
from ..schemas import ErrorResponse, JobAccepted, JobCreate, JobList, JobPublic, JobSettings
from ..worker import CancelOutcome, QueueFull, Worker

router = APIRouter(tags=["jobs"])

# Server-sent event streams wake on every job change; this only bounds how long one sleeps.
_EVENT_WAIT_S = 15.0
# A DELETE that finds the job committing its results waits this long for it to finish, then deletes it.
_COMMIT_WAIT_S = 30.0

_ERRORS = {
    401: {"model": ErrorResponse, "description": "Missing or wrong token."},
    404: {"model": ErrorResponse, "description": "No such job."},
    422: {"model": ErrorResponse, "description": "Invalid input; each problem names its field."},
}
_SERVER_FAULTS = {
    503: {
        "model": ErrorResponse,
        "description": "The server cannot take it now: busy (see Retry-After), out of file handles or memory, "
        "a read-only results folder, or an engine that failed to load. The message says which.",
    },
    507: {"model": ErrorResponse, "description": "The server's results disk is full."},
}


@router.post(
    "/jobs",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=JobAccepted,
    summary="Submit a generation job",
    responses={
        **_ERRORS,
        413: {"model": ErrorResponse, "description": "Body or image too large, or the job's output over the limit."},
        429: {"model": ErrorResponse, "description": "Queue full; retry after the Retry-After header's seconds."},
        **_SERVER_FAULTS,
    },
)
async def create_job(
    body: JobCreate, worker: WorkerDep, settings: SettingsDep, intake: IntakeDep, response: Response
) -> JobAccepted:
    """Check the image and settings, write the job down (durably) and queue it; return its id at once.

    While the engine is still loading the job is accepted and waits in the queue like any other. A
    202 means the job is on disk: it runs even if the server restarts before it does.
    """
    refused = worker.admission_error()  # asked before the body was read too (middleware.EarlyRefusalMiddleware)
    if refused is not None:
        raise refused

    def accept() -> tuple[Job, int]:
        raw, image = decode_image(
            body.image,
            settings.max_image_side,
            needs_object=body.crop_scale is not None,
            images_per_job=body.frames * body.num_videos,
            max_job_pixels=settings.max_job_pixels,
        )
        parts = _part_inputs(body, image.size)
        job_settings = JobSettings(
            **body.model_dump(exclude={"image", "part_map", "depth", "output"}),
            output=body.output,
            image_width=image.width,
            image_height=image.height,
            has_part_map=parts.part_map is not None,
            has_depth=parts.depth is not None,
        )
        del image  # the worker decodes it again from the journal when the job starts
        job = Job(id=new_job_id(), settings=job_settings)
        return job, worker.submit(job, raw, parts)

    try:
        job, position = await intake.decode(accept)
    except QueueFull as error:
        raise worker.queue_full(str(error)) from None
    response.headers["Location"] = job.url
    return JobAccepted(
        id=job.id, url=job.url, events_url=f"{job.url}/events", status=job.status, queue_position=position
    )


def _part_inputs(body: JobCreate, size: tuple[int, int]) -> PartInputs:
    """The part map's and depth's PNG bytes, checked here (a 422 naming the field) so the job's engine gets
    valid ones; the worker decodes them again from the journal when the job starts."""
    parts = PartInputs(
        part_map=None if body.part_map is None else decode_base64(body.part_map, "part_map"),
        depth=None if body.depth is None else decode_base64(body.depth, "depth"),
    )
    open_part_inputs(parts, body.depth_range, size)
    return parts


def public_view(job: Job, registry: JobRegistry, worker: Worker) -> JobPublic:
    """The job as the API shows it; 404 when a finished job's record went away meanwhile."""
    try:
        return registry.public(job, worker.queue_position)
    except FileNotFoundError:
        raise ApiError(404, f"no job {job.id}; it was deleted or pruned", field="job_id") from None


@router.get("/jobs", response_model=JobList, summary="Recent jobs, newest first", responses=_ERRORS)
def list_jobs(registry: RegistryDep, worker: WorkerDep, limit: Annotated[int, Query(ge=1, le=200)] = 20) -> JobList:
    views = []
    for job in registry.recent(limit):
        try:
            views.append(registry.public(job, worker.queue_position))
        except FileNotFoundError:
            continue  # deleted or pruned while listing
    return JobList(jobs=views)


@router.get(
    "/jobs/{job_id}", response_model=JobPublic, summary="A job's status, progress and result", responses=_ERRORS
)
def read_job(job: JobDep, registry: RegistryDep, worker: WorkerDep) -> JobPublic:
    return public_view(job, registry, worker)


@router.delete(
    "/jobs/{job_id}",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=JobPublic,
    summary="Cancel a queued or running job, or delete a finished one",
    responses={
        **_ERRORS,
        204: {"description": "The finished job and its files were deleted."},
        409: {
            "model": ErrorResponse,
            "description": "The job is still saving its results after 30 s; delete it once it has finished.",
        },
        **_SERVER_FAULTS,
    },
)
def delete_job(job: JobDep, registry: RegistryDep, worker: WorkerDep) -> JobPublic | Response:
    """A queued job is cancelled at once (202, status ``cancelled``); a running one stops at its next step
    (202 with ``cancel_requested: true``: it will end ``cancelled``). A finished job is deleted with its
    files (204). A job already committing its results when the request comes cannot be cancelled any
    more: it is let finish, then deleted (204), as a finished one."""
    outcome = worker.cancel(job)
    if outcome is CancelOutcome.too_late and not job.done.wait(_COMMIT_WAIT_S):
        raise ApiError(
            409,
            f"job {job.id} is saving its results and cannot be cancelled any more; delete it once it has finished",
            field="job_id",
            headers={"Retry-After": "2"},
        )
    if outcome in (CancelOutcome.cancelled, CancelOutcome.requested):
        view = public_view(job, registry, worker)
        return JSONResponse(status_code=status.HTTP_202_ACCEPTED, content=view.model_dump(mode="json"))
    worker.delete(job)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/jobs/{job_id}/events",
    response_class=EventSourceResponse,
    summary="Follow a job as server-sent events until it ends",
    responses=_ERRORS,
)
async def stream_job_events(job: JobDep, registry: RegistryDep, worker: WorkerDep) -> AsyncIterator[ServerSentEvent]:
    """One event per change, named after the job's status, with the job (as ``GET /v1/jobs/{id}``) as data.

    The stream ends after the event of a final status (succeeded, failed or cancelled).
    """
    last_version = -1
    while True:
        changed = registry.feed.current()  # before reading, so a change in between still wakes us
        version = job.version
        public = None
        if version != last_version:
            try:
                public = await run_in_threadpool(registry.public, job, worker.queue_position)
            except FileNotFoundError:
                return  # deleted while followed
        if public is not None:
            last_version = version
            yield ServerSentEvent(data=public, event=public.status.value, id=str(version))
            if public.status.finished:
                return
        try:
            await asyncio.wait_for(changed.wait(), timeout=_EVENT_WAIT_S)
        except TimeoutError:
            pass
