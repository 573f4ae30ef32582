"""Jobs: what a client submits (``JobCreate``) and what it reads back (``JobPublic``).

Every bound here is checked before a job is queued, so a request that passes reaches the engine
with valid values; the error for one that does not names the field (see ``service.errors``).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from ...pipeline.preprocess import DEFAULT_CROP_SCALE
from ...pipeline.trajectories import MAX_DRAGS

MAX_POINTS_PER_DRAG = 1000
MAX_SEED = 2**32 - 1

Coordinate = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]
Point = Annotated[list[Coordinate], Field(min_length=2, max_length=2, description="``[x, y]``, each in 0..1.")]
Drag = Annotated[
    list[Point],
    Field(
        min_length=2,
        max_length=MAX_POINTS_PER_DRAG,
        description="2 points = straight drag, more = a path, exactly ``frames`` points = one position per frame.",
    ),
]


# Bounds of ``depth_range``, in any unit: far beyond any scene, and finite as 32-bit floats.
MAX_DEPTH = 1e12
DepthValue = Annotated[float, Field(ge=-MAX_DEPTH, le=MAX_DEPTH, allow_inf_nan=False)]


class JobStatus(StrEnum):
    """Where a job is in its life: queued -> running -> succeeded | failed | cancelled."""

    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"

    @property
    def finished(self) -> bool:
        """True for the terminal states."""
        return self in (JobStatus.succeeded, JobStatus.failed, JobStatus.cancelled)


class JobPhase(StrEnum):
    """What a running job is doing: encoding the input, sampling (``step``/``total_steps``), decoding, writing files."""

    encoding = "encoding"
    sampling = "sampling"
    decoding = "decoding"
    writing = "writing"


class OutputOptions(BaseModel):
    """Extra files besides the PNG frames, which are always written."""

    model_config = ConfigDict(strict=True, extra="forbid")

    gif: bool = Field(False, description="Also write an animated GIF per video.")
    mp4: bool = Field(False, description="Also write an H.264 MP4 per video.")
    overlay: bool = Field(False, description="Draw the drags on the GIF/MP4 (the PNG frames stay clean).")
    fps: float = Field(7.0, ge=1.0, le=60.0, allow_inf_nan=False, description="Frame rate of the GIF/MP4.")


class JobCreate(BaseModel):
    """``POST /v1/jobs``: an image, the drags on it and the generation settings."""

    model_config = ConfigDict(strict=True, extra="forbid")

    image: str = Field(
        min_length=1,
        description="PNG, JPEG or WebP, base64-encoded, optionally as a ``data:image/png;base64,...`` URL. "
        "With alpha, the alpha is the object mask.",
    )
    part_map: str | None = Field(
        None,
        min_length=1,
        description="Optional: which part each pixel shows, so the preview engine moves whole parts (other "
        "engines ignore it). A grayscale PNG of the image's size, base64-encoded like the image: 8-bit (ids up to "
        "255) or 16-bit (up to 65535); each pixel's value is the id of the part it shows, 0 = background "
        "(e.g. a render's object index). The Blender add-on sends one with every capture.",
    )
    depth: str | None = Field(
        None,
        min_length=1,
        description="Optional: how far each pixel is, so the preview engine lays moved parts over the others in "
        "depth order (other engines ignore it). A 16-bit (or 8-bit) grayscale PNG of the image's size, "
        "base64-encoded: 65535 (255 in 8 bits) = no surface; any other value v is the depth "
        "near + v / 65534 * (far - near) (v / 254 in 8 bits) for ``depth_range`` [near, far]; larger = farther.",
    )
    depth_range: list[DepthValue] | None = Field(
        None,
        min_length=2,
        max_length=2,
        description="``[near, far]``, near <= far: the depths of ``depth``'s values 0 and 65534 (254 in 8 bits), "
        "in any unit; only with ``depth``. Default ``[0, 1]``: the preview needs only the order.",
    )
    drags: list[Drag] = Field(
        min_length=1,
        max_length=MAX_DRAGS,
        description="1 to 5 drags in normalised image coordinates (x right, y down, 0..1).",
    )
    frames: int = Field(14, ge=2, le=32, description="Frames of the video (the published model: 14).")
    steps: int = Field(50, ge=1, le=200, description="Denoising steps.")
    guidance: float = Field(5.0, ge=0.0, le=20.0, allow_inf_nan=False, description="Classifier-free guidance scale.")
    seed: int | None = Field(None, ge=0, le=MAX_SEED, description="Random seed; null picks one (reported).")
    num_videos: int = Field(1, ge=1, le=4, description="Variations generated in one batch.")
    crop_scale: float | None = Field(
        DEFAULT_CROP_SCALE,
        ge=1.0,
        le=10.0,
        allow_inf_nan=False,
        description="Object crop side / longer object-box side; null uses the whole image.",
    )
    ease: Literal["linear", "ease-in-out"] = Field("linear", description="Timing of straight drags and paths.")
    output: OutputOptions = Field(default_factory=OutputOptions)

    @field_validator("depth_range")
    @classmethod
    def _depth_range_fits_depth(cls, value: list[float] | None, info: ValidationInfo) -> list[float] | None:
        """A range needs the depth it describes, and near must not be beyond far."""
        if value is None:
            return value
        if "depth" in info.data and info.data["depth"] is None:  # (a depth that failed its own check is absent)
            raise PydanticCustomError(
                "depth_range_without_depth", "depth_range describes depth, which is missing; send both, or neither"
            )
        near, far = value
        if near > far:
            raise PydanticCustomError(
                "depth_range_order",
                "near ({near}) is beyond far ({far}); send [near, far] with near <= far",
                {"near": near, "far": far},
            )
        return value


class JobSettings(BaseModel):
    """The settings a job runs with, as stored in its record (the image, part map and depth are not kept)."""

    drags: list[list[list[float]]]
    frames: int
    steps: int
    guidance: float
    seed: int | None
    num_videos: int
    crop_scale: float | None
    ease: str
    output: OutputOptions
    image_width: int
    image_height: int
    has_part_map: bool = Field(False, description="A part map came with the image.")
    has_depth: bool = Field(False, description="A depth map came with the image.")
    depth_range: list[float] | None = Field(None, description="The depth map's ``[near, far]``, as sent.")


class JobAccepted(BaseModel):
    """``202 Accepted``: the job is queued."""

    id: str
    url: str = Field(description="Where to poll the job: ``/v1/jobs/{id}``.")
    events_url: str = Field(description="Server-sent events with the job's progress.")
    status: JobStatus
    queue_position: int | None = Field(description="1 = next to run; null once running.")


class JobTimings(BaseModel):
    """Seconds spent, end to end and per stage."""

    queued: float | None = Field(None, description="Waiting in the queue.")
    engine: float | None = Field(None, description="Inside the engine's ``generate``.")
    write: float | None = Field(None, description="Writing frames, GIF/MP4 and the record.")
    total: float | None = Field(None, description="From submission to the end.")
    stages: dict[str, float] = Field(default_factory=dict, description="The engine's own stage timings.")


class CropBoxPublic(BaseModel):
    """Where the model image was cut from the input image, in input pixels."""

    left: float
    top: float
    size: float
    image_width: int
    image_height: int


class VideoPublic(BaseModel):
    """One generated video: its frames and optional previews, as URLs on this server."""

    index: int
    frames: list[str]
    gif_url: str | None = None
    mp4_url: str | None = None


class JobResultPublic(BaseModel):
    """What a succeeded job produced."""

    engine: str = Field(description="The engine that produced it (``puppet-master`` or ``preview``).")
    seed: int
    crop_box: CropBoxPublic
    width: int
    height: int
    num_frames: int
    videos: list[VideoPublic]
    zip_url: str = Field(description="All frames and the JSON record as one archive.")


class JobPublic(BaseModel):
    """``GET /v1/jobs/{id}``: a job's state, progress, timings and (when succeeded) its result."""

    id: str
    url: str
    status: JobStatus
    cancel_requested: bool = False
    progress: float = Field(ge=0.0, le=1.0, description="Fraction of the engine's steps done.")
    phase: JobPhase | None = Field(
        None, description="What a running job is doing now (null unless running); step/total_steps count sampling."
    )
    step: int
    total_steps: int
    queue_position: int | None = Field(None, description="1 = next to run; null when not queued.")
    error: str | None = None
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    timings: JobTimings
    settings: JobSettings
    result: JobResultPublic | None = None


class JobList(BaseModel):
    """``GET /v1/jobs``: recent jobs, newest first."""

    jobs: list[JobPublic]
