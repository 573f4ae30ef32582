"""A succeeded job's files: PNG frames, GIF/MP4 previews and a zip of everything (built while it is sent)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, StreamingResponse

from ..deps import JobDep, StoreDep
from ..errors import ApiError
from ..registry import Job
from ..schemas import ErrorResponse, JobStatus

router = APIRouter(tags=["job files"])

VideoQuery = Annotated[int, Query(ge=0, le=3, description="Which video, for jobs with num_videos > 1.")]

_ERRORS = {
    401: {"model": ErrorResponse, "description": "Missing or wrong token."},
    404: {"model": ErrorResponse, "description": "No such job, video, frame or file."},
    409: {"model": ErrorResponse, "description": "The job has not finished yet."},
    422: {"model": ErrorResponse, "description": "Invalid job id, frame index or video."},
}


def _succeeded_result(job: Job, video: int) -> dict:
    """The result of a succeeded job with at least ``video + 1`` videos; 409/404 otherwise."""
    if job.status in (JobStatus.queued, JobStatus.running):
        raise ApiError(409, f"job {job.id} is {job.status.value}; its files exist once it has succeeded", "job_id")
    if job.status is not JobStatus.succeeded or job.result is None:
        raise ApiError(404, f"job {job.id} {job.status.value} ({job.error}) and produced no files", "job_id")
    if video >= job.result["num_videos"]:  # (the slim summary a finished job keeps has these keys)
        raise ApiError(
            404, f"job {job.id} has {job.result['num_videos']} video(s); video {video} does not exist", "video"
        )
    return job.result


def _file(path: Path, media_type: str, what: str, filename: str | None = None) -> FileResponse:
    try:
        stat = os.stat(path)  # here, so a missing file is a 404 rather than an error mid-response
    except FileNotFoundError:
        raise ApiError(404, f"{what} is gone (the job was deleted or pruned)") from None
    return FileResponse(path, media_type=media_type, stat_result=stat, filename=filename)


@router.get(
    "/jobs/{job_id}/frames/{index}.png",
    response_class=FileResponse,
    summary="One frame as PNG (RGBA where the input had alpha)",
    responses={**_ERRORS, 200: {"content": {"image/png": {}}}},
)
def read_frame(
    job: JobDep,
    store: StoreDep,
    index: Annotated[int, PathParam(ge=0, le=1023, description="Frame index, from 0.")],
    video: VideoQuery = 0,
) -> FileResponse:
    result = _succeeded_result(job, video)
    if index >= result["num_frames"]:
        raise ApiError(404, f"job {job.id} has {result['num_frames']} frames (0..{result['num_frames'] - 1})", "index")
    return _file(store.frame_path(job.id, video, index), "image/png", f"frame {index}")


def _preview(job: Job, store: StoreDep, video: int, kind: str) -> FileResponse:
    result = _succeeded_result(job, video)
    if video not in result.get(kind, []):
        requested = result["requested"][kind] if "requested" in result else getattr(job.settings.output, kind)
        reason = "could not be written (see the job's record)" if requested else f"was not requested (output.{kind})"
        raise ApiError(
            404, f"the {kind.upper()} of video {video} {reason}", field="video" if requested else f"output.{kind}"
        )
    media_type = "image/gif" if kind == "gif" else "video/mp4"
    return _file(store.preview_path(job.id, video, kind), media_type, f"the {kind.upper()}")


@router.get(
    "/jobs/{job_id}/video.gif",
    response_class=FileResponse,
    summary="The animated GIF preview (when requested)",
    responses={**_ERRORS, 200: {"content": {"image/gif": {}}}},
)
def read_gif(job: JobDep, store: StoreDep, video: VideoQuery = 0) -> FileResponse:
    return _preview(job, store, video, "gif")


@router.get(
    "/jobs/{job_id}/video.mp4",
    response_class=FileResponse,
    summary="The MP4 preview (when requested)",
    responses={**_ERRORS, 200: {"content": {"video/mp4": {}}}},
)
def read_mp4(job: JobDep, store: StoreDep, video: VideoQuery = 0) -> FileResponse:
    return _preview(job, store, video, "mp4")


@router.get(
    "/jobs/{job_id}/frames.zip",
    response_class=StreamingResponse,
    summary="Every frame of every video, and the JSON record, as a zip",
    responses={**_ERRORS, 200: {"content": {"application/zip": {}}}},
)
def read_zip(job: JobDep, store: StoreDep) -> StreamingResponse:
    result = _succeeded_result(job, 0)
    try:
        names = store.zip_members(job.id, result["num_videos"], result["num_frames"])
    except FileNotFoundError:
        raise ApiError(404, f"the files of job {job.id} are gone (deleted or pruned)", "job_id") from None
    return StreamingResponse(
        store.zip_stream(job.id, names),
        media_type="application/zip",
        headers={"Content-Disposition": f'attachment; filename="puppet-master-{job.id}.zip"'},
    )
