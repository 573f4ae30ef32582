"""``POST /v1/jobs/{id}/tracks``: follow points through a succeeded job's frames (for Bake Motion).

The tracking is CPU work of a fraction of a second, done in the request's own thread (FastAPI runs
plain ``def`` routes in its thread pool), beside the engine's worker, which it never waits for.
"""

from __future__ import annotations

import time

from fastapi import APIRouter

from ...motion import track_points
from ...motion.track import read_frames
from ..deps import JobDep, StoreDep
from ..errors import ApiError
from ..schemas import ErrorResponse
from ..schemas.tracks import TracksCreate, TracksPublic
from .job_files import _succeeded_result

router = APIRouter(tags=["tracks"])


@router.post(
    "/jobs/{job_id}/tracks",
    response_model=TracksPublic,
    summary="Track points through a finished job's frames",
    responses={
        401: {"model": ErrorResponse, "description": "Missing or wrong token."},
        404: {"model": ErrorResponse, "description": "No such job or video, or its frames are gone."},
        409: {"model": ErrorResponse, "description": "The job has not finished yet."},
        422: {"model": ErrorResponse, "description": "Invalid points (outside 0..1, too many) or query frame."},
    },
)
def create_tracks(body: TracksCreate, job: JobDep, store: StoreDep) -> TracksPublic:
    """Pyramidal Lucas-Kanade with a forward-backward check, refined affinely against the query frame
    (``backend/motion/track.py``); every point gets a position and a confidence in every frame."""
    result = _succeeded_result(job, body.video)
    num_frames = int(result["num_frames"])
    if body.query_frame >= num_frames:
        raise ApiError(
            422, f"query_frame {body.query_frame} is not a frame of job {job.id} (0..{num_frames - 1})", "query_frame"
        )
    files = [store.frame_path(job.id, body.video, index) for index in range(num_frames)]
    try:
        frames = read_frames(files)
    except FileNotFoundError:
        raise ApiError(404, f"the frames of job {job.id} are gone (deleted or pruned)", "job_id") from None
    started = time.perf_counter()
    tracks = track_points(frames, body.points, body.query_frame)
    return TracksPublic(
        job_id=job.id, video=body.video, seconds=round(time.perf_counter() - started, 4), **tracks.to_json()
    )
