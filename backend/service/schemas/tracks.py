"""Point tracks through a finished job's frames: what a client asks (``TracksCreate``) and gets (``TracksPublic``)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from .jobs import Point

# Bake Motion sends a few dozen points per part; this leaves room for a whole rig and bounds the work.
MAX_TRACK_POINTS = 2000


class TracksCreate(BaseModel):
    """``POST /v1/jobs/{id}/tracks``: points on one frame of the job's video, to follow through all its frames."""

    model_config = ConfigDict(strict=True, extra="forbid")

    points: list[Point] = Field(
        min_length=1,
        max_length=MAX_TRACK_POINTS,
        description=f"1 to {MAX_TRACK_POINTS} query points ``[x, y]`` in normalised frame coordinates "
        "(x right, y down, 0..1), as drags are given.",
    )
    video: int = Field(0, ge=0, le=3, description="Which video, for jobs with num_videos > 1.")
    query_frame: int = Field(0, ge=0, le=1023, description="The frame the points are given on, from 0.")


class TracksPublic(BaseModel):
    """Where each query point is in every frame, and how far that can be trusted."""

    job_id: str
    video: int
    width: int = Field(description="Frame width in pixels.")
    height: int = Field(description="Frame height in pixels.")
    num_frames: int
    query_frame: int
    tracks: list[list[list[float]]] = Field(
        description="Per point, per frame: ``[x, y]`` in normalised frame coordinates (``[N][F][2]``)."
    )
    confidence: list[list[float]] = Field(
        description="Per point, per frame: 0..1; 1 on the query frame, 0 once the point was lost (``[N][F]``)."
    )
    seconds: float = Field(description="Time the tracking took on the server.")
