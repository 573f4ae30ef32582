"""The service's settings: one ``BaseSettings``, filled from CLI flags or ``PUPPET_MASTER_*`` variables."""

from __future__ import annotations

import ipaddress
import os
import re
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from ..engines.config import EngineConfig
from ..paths import puppet_master_home

EngineChoice = Literal["auto", "puppet-master", "preview"]

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
# What an Authorization header can carry after "Bearer ": visible ASCII, no spaces.
_SENDABLE_TOKEN = re.compile(r"[\x21-\x7e]+")


def default_results_dir() -> Path:
    """Where finished jobs are kept unless ``--results-dir`` says otherwise: ``results/`` in the backend's
    data folder (:func:`backend.paths.puppet_master_home`). Results are reproducible from their record
    and pruned by age and size, so a cache folder is the right home for them.
    """
    return puppet_master_home() / "results"


def default_decode_slots() -> int:
    """Half the CPU cores, 1 to 4 (see ``ServiceSettings.decode_slots``)."""
    return max(1, min(4, (os.cpu_count() or 2) // 2))


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1); False for anything else."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name other than localhost may resolve to anything


class ServiceSettings(BaseSettings):
    """Everything ``puppet-master serve`` can be told. Environment variables use the ``PUPPET_MASTER_`` prefix.

    Attributes:
        host: bind address; anything but loopback needs ``token``.
        port: TCP port.
        engine: ``auto`` (the model when a GPU and weights are there, else the preview), ``puppet-master``
            or ``preview``.
        model, svd, unet, unet_filename, device, dtype, cpu_offload, decode_chunk: the engine
            configuration (see :class:`backend.engines.config.EngineConfig`; ``engine_config()`` makes it).
        token: bearer token every request except ``/v1/health`` must carry; None = no auth (loopback only).
        results_dir: where finished jobs are written, one folder per job.
        max_queue: jobs that may wait behind the running one; more are refused with 429.
        keep_hours: finished jobs older than this are deleted (0 = keep regardless of age).
        keep_gb: when the results take more than this, the oldest are deleted (0 = no size limit).
        max_body_mb: largest request body accepted (413 beyond it).
        max_image_side: largest accepted image width or height in pixels (413 beyond it). 2048, the add-on's
            largest capture: the frames come back at the input's size, and the preview engine takes about
            100 bytes per input pixel (1.9 GB for a 4096x4096 image, docs/reliability.md).
        max_job_pixels: largest output of one job, width x height x frames x videos (413 beyond it):
            the frames are as large as the input image and all of them are in memory at once. 2^26 =
            2048x2048 x 16 frames or 1024x1024 x 32 frames x 2 videos: the service then stays under 2 GiB
            and its event loop is never held long by one array operation (docs/reliability.md).
        max_bodies_mb: request bodies held in memory at once; more wait (503 after ``intake_wait_s``).
        decode_slots: images decoded at once; more wait (503 after ``intake_wait_s``). Half the CPU cores
            (1 to 4): decoding holds the GIL in part, and the engine and the event loop need the rest.
        intake_wait_s: longest wait of a submission for room to be read or decoded.
        max_connections: open connections served; past it a new one gets 503 (lowered to fit the
            process's open-file limit).
        head_timeout_s, body_timeout_s, send_timeout_s: deadlines for a request's headers, its body,
            and a client reading the response (see :mod:`.protocol`).
        keep_alive_s: an idle kept-alive connection is closed after this.
    """

    model_config = SettingsConfigDict(env_prefix="PUPPET_MASTER_", extra="ignore")

    host: str = DEFAULT_HOST
    port: int = Field(DEFAULT_PORT, ge=0, le=65535)
    engine: EngineChoice = "auto"
    model: Path | None = None
    svd: str | None = None
    unet: str | None = None
    unet_filename: str | None = None
    device: str = "auto"
    dtype: str = "auto"
    cpu_offload: bool = False
    decode_chunk: int | None = Field(None, ge=1)
    token: SecretStr | None = None
    results_dir: Path = Field(default_factory=default_results_dir)
    max_queue: int = Field(8, ge=1, le=1000)
    keep_hours: float = Field(24.0 * 7, ge=0, allow_inf_nan=False)
    keep_gb: float = Field(10.0, ge=0, allow_inf_nan=False)
    max_body_mb: float = Field(32.0, gt=0, allow_inf_nan=False)
    max_image_side: int = Field(2048, ge=16)
    max_job_pixels: int = Field(2**26, ge=2**16)
    max_bodies_mb: float = Field(128.0, gt=0, allow_inf_nan=False)
    decode_slots: int = Field(default_factory=default_decode_slots, ge=1, le=64)
    intake_wait_s: float = Field(30.0, gt=0, allow_inf_nan=False)
    max_connections: int = Field(128, ge=4)
    head_timeout_s: float = Field(10.0, gt=0, allow_inf_nan=False)
    body_timeout_s: float = Field(60.0, gt=0, allow_inf_nan=False)
    send_timeout_s: float = Field(60.0, gt=0, allow_inf_nan=False)
    keep_alive_s: float = Field(5.0, gt=0, allow_inf_nan=False)

    @field_validator("token")
    @classmethod
    def _token_can_be_sent(cls, token: SecretStr | None) -> SecretStr | None:
        """A token no client can send would lock every client out: refuse it at start, in one sentence."""
        if token is None:
            return None
        value = token.get_secret_value()
        if not value.strip():
            raise ValueError("--token is blank; give a token clients can send, or leave --token out")
        if not _SENDABLE_TOKEN.fullmatch(value):
            raise ValueError(
                "--token holds spaces, control characters or non-ASCII letters, which an HTTP header cannot carry; "
                "use letters, digits and punctuation only"
            )
        return token

    def engine_config(self) -> EngineConfig:
        """The engine part of these settings, as every command describes an engine."""
        return EngineConfig.from_mapping(self)

    @property
    def max_body_bytes(self) -> int:
        """``max_body_mb`` in bytes."""
        return int(self.max_body_mb * 1024 * 1024)

    @property
    def max_bodies_bytes(self) -> int:
        """``max_bodies_mb`` in bytes, at least one body of the largest size."""
        return max(int(self.max_bodies_mb * 1024 * 1024), self.max_body_bytes)

    @property
    def token_value(self) -> str | None:
        """The token as a string, or None when none (or an empty one) is set."""
        return self.token.get_secret_value() if self.token and self.token.get_secret_value() else None

    def check_bind_is_safe(self) -> None:
        """ValueError (one sentence) when the bind address is reachable from other machines and no token is set."""
        if not is_loopback(self.host) and self.token_value is None:
            raise ValueError(
                f"refusing to listen on {self.host} without a token: anyone on the network could use this "
                "machine's GPU, so pass --token SECRET (or set PUPPET_MASTER_TOKEN), or bind to 127.0.0.1"
            )


def describe_settings_error(error: ValidationError) -> str:
    """The first problem of a ``ServiceSettings`` ValidationError as one sentence naming the flag and the value."""
    problem = error.errors()[0]
    name = str(problem["loc"][0]) if problem.get("loc") else "settings"
    message = str(problem.get("msg", "invalid value")).removeprefix("Value error, ")
    if message.startswith("--"):
        return message
    flag = f"--{name.replace('_', '-')}"
    value = problem.get("input")
    shown = "" if isinstance(value, dict) or name == "token" else f" {value}"
    return f"{flag}{shown}: {message[:1].lower()}{message[1:]} (flag or PUPPET_MASTER_{name.upper()})"
