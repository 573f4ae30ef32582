"""Request and response bodies of the HTTP API, one module per resource."""

from .errors import ErrorDetail, ErrorResponse
from .health import HealthPublic
from .jobs import (
    CropBoxPublic,
    JobAccepted,
    JobCreate,
    JobList,
    JobPublic,
    JobResultPublic,
    JobSettings,
    JobStatus,
    JobTimings,
    OutputOptions,
    VideoPublic,
)

__all__ = [
    "CropBoxPublic",
    "ErrorDetail",
    "ErrorResponse",
    "HealthPublic",
    "JobAccepted",
    "JobCreate",
    "JobList",
    "JobPublic",
    "JobResultPublic",
    "JobSettings",
    "JobStatus",
    "JobTimings",
    "OutputOptions",
    "VideoPublic",
]
