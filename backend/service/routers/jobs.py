"""Jobs: submit (``POST /v1/jobs``), list, read, follow (server-sent events) and cancel or delete.

Routes only check input, enqueue and read; the worker thread does the work.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated

import numpy as np
from fastapi import APIRouter, Query, Response, status
from fastapi.responses import JSONResponse
from fastapi.sse import EventSourceResponse, ServerSentEvent

from ...engines import GenerationRequest
from ..deps import JobDep, LoaderDep, RegistryDep, SettingsDep, StoreDep, WorkerDep
from ..errors import ApiError
from ..images import decode_image
from ..loading import LoadState
from ..registry import Job, new_job_id
from ..schemas import ErrorResponse, JobAccepted, JobCreate, JobList, JobPublic, JobSettings
from ..worker import QueueFull, Worker

router = APIRouter(tags=["jobs"])

# Server-sent event streams wake on every job change; this only bounds how long one sleeps.
_EVENT_WAIT_S = 15.0

_ERRORS = {
    401: {"model": ErrorResponse, "description": "Missing or wrong token."},
    404: {"model": ErrorResponse, "description": "No such job."},
    422: {"model": ErrorResponse, "description": "Invalid input; each problem names its field."},
}


@router.post(
    "/jobs",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=JobAccepted,
    summary="Submit a generation job",
    responses={
        **_ERRORS,
        413: {"model": ErrorResponse, "description": "Body or image too large."},
        429: {"model": ErrorResponse, "description": "Queue full; retry after the Retry-After header's seconds."},
        503: {
            "model": ErrorResponse,
            "description": "The engine failed to load; the message says why. Jobs are refused until a restart.",
        },
    },
)
def create_job(
    body: JobCreate, worker: WorkerDep, loader: LoaderDep, settings: SettingsDep, response: Response
) -> JobAccepted:
    """Check the image and settings, queue the job and return its id at once (the work happens later).

    While the engine is still loading the job is accepted and waits in the queue like any other.
    """
    if loader.state is LoadState.failed:  # no engine will ever run it: say why now, not after a wait
        raise ApiError(503, loader.failure_message())
    if len(worker.queue) >= worker.queue.max_size:  # answer before decoding an image that cannot be queued
        raise _queue_full(worker, f"{worker.queue.max_size} jobs are waiting already")
    image = decode_image(body.image, settings.max_image_side, needs_object=body.crop_scale is not None)
    request = GenerationRequest(
        image=image,
        drags=[np.asarray(drag, dtype=np.float64) for drag in body.drags],
        num_frames=body.frames,
        steps=body.steps,
        guidance_scale=body.guidance,
        seed=body.seed,
        num_videos=body.num_videos,
        crop_scale=body.crop_scale,
        ease=body.ease,
    )
    job_settings = JobSettings(
        **body.model_dump(exclude={"image", "output"}),
        output=body.output,
        image_width=image.width,
        image_height=image.height,
    )
    job = Job(id=new_job_id(), settings=job_settings, request=request)
    try:
        position = worker.submit(job)
    except QueueFull as error:
        raise _queue_full(worker, str(error)) from None
    response.headers["Location"] = job.url
    return JobAccepted(
        id=job.id, url=job.url, events_url=f"{job.url}/events", status=job.status, queue_position=position
    )


def _queue_full(worker: Worker, reason: str) -> ApiError:
    """429 with a Retry-After guess."""
    wait = worker.retry_after_seconds()
    return ApiError(429, f"the queue is full ({reason}); retry in about {wait} s", headers={"Retry-After": str(wait)})


@router.get("/jobs", response_model=JobList, summary="Recent jobs, newest first", responses=_ERRORS)
def list_jobs(registry: RegistryDep, worker: WorkerDep, limit: Annotated[int, Query(ge=1, le=200)] = 20) -> JobList:
    jobs = registry.recent(limit)
    with registry.lock:
        return JobList(jobs=[job.to_public(worker.queue_position(job)) for job in jobs])


@router.get(
    "/jobs/{job_id}", response_model=JobPublic, summary="A job's status, progress and result", responses=_ERRORS
)
def read_job(job: JobDep, registry: RegistryDep, worker: WorkerDep) -> JobPublic:
    with registry.lock:
        return job.to_public(worker.queue_position(job))


@router.delete(
    "/jobs/{job_id}",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=JobPublic,
    summary="Cancel a queued or running job, or delete a finished one",
    responses={**_ERRORS, 204: {"description": "The finished job and its files were deleted."}},
)
def delete_job(job: JobDep, registry: RegistryDep, worker: WorkerDep, store: StoreDep) -> JobPublic | Response:
    """A queued job is cancelled at once; a running one stops at its next step (202 either way, with the
    job as it is now). A finished job is deleted with its files (204)."""
    with registry.lock:
        finished = job.status.finished
        if finished:
            registry.remove(job.id)
    if finished:
        store.delete(job.id)
        return Response(status_code=status.HTTP_204_NO_CONTENT)
    worker.cancel(job)
    with registry.lock:
        return JSONResponse(
            status_code=status.HTTP_202_ACCEPTED,
            content=job.to_public(worker.queue_position(job)).model_dump(mode="json"),
        )


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
        with registry.lock:
            version = job.version
            public = job.to_public(worker.queue_position(job)) if version != last_version else None
        if public is not None:
            last_version = version
            yield ServerSentEvent(data=public, event=public.status.value, id=str(version))
            if public.status.finished:
                return
        try:
            await asyncio.wait_for(changed.wait(), timeout=_EVENT_WAIT_S)
        except TimeoutError:
            pass
