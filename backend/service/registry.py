"""Jobs in memory: the :class:`Job` record, the registry that holds them and the change feed for SSE.

The worker thread changes jobs and request handlers read them, so every change goes through
:meth:`JobRegistry.update`, under one lock, and bumps the job's ``version``; server-sent-event streams
wait on the :class:`ChangeFeed` (woken from the worker thread) instead of polling.

A finished job whose record is on disk keeps only a small summary in memory (:meth:`Job.slim`): its
settings (up to 5000 drag points) and result are read back from ``record.json`` when asked for, so
memory does not grow with the finished jobs kept for a week.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from .. import __version__
from .schemas import (
    CropBoxPublic,
    JobPublic,
    JobResultPublic,
    JobSettings,
    JobStatus,
    JobTimings,
    VideoPublic,
)
from .schemas.jobs import JobPhase

# secrets.token_urlsafe(16): 16 random bytes -> 22 URL-safe base64 characters
JOB_ID_PATTERN = r"^[A-Za-z0-9_-]{22}$"
_JOB_ID_RE = re.compile(JOB_ID_PATTERN)
RECORD_FORMAT = 1


def new_job_id() -> str:
    """A fresh unguessable job id (128 random bits)."""
    return secrets.token_urlsafe(16)


def is_job_id(value: str) -> bool:
    """True when ``value`` has the shape of a job id; only such strings ever become file names."""
    return bool(_JOB_ID_RE.fullmatch(value))


# Finished jobs share one set event for ``cancel`` and ``done``: nothing waits on them or sets them any more.
_FINISHED_EVENT = threading.Event()
_FINISHED_EVENT.set()

# Reads a finished job's record from disk (ResultStore.read_record).
RecordReader = Callable[[str], dict[str, Any]]


def _datetime(timestamp: float | None) -> datetime | None:
    return None if timestamp is None else datetime.fromtimestamp(timestamp, tz=UTC)


@dataclass(eq=False)
class Job:
    """One generation job, from submission to its result (or failure).

    Attributes:
        id: the job id (see :func:`new_job_id`).
        settings: the submitted settings, without the image (which waits in the journal); None once the
            job is finished and slimmed (the record on disk has them).
        result: a succeeded job's metadata (engine, seed, crop box, sizes, which files exist); once
            slimmed, only what serving its files needs (see :meth:`slim`).
        phase: what a running job is doing (encoding, sampling, decoding, writing); None otherwise.
        cancel: set to ask the engine to stop between steps; honoured until the results are committed.
        committing: the results are being made durable; a cancel is too late from then on.
        done: set once the job is finished (its record written, or writing it failed).
        version: bumped on every change; server-sent events compare it.
    """

    id: str
    settings: JobSettings | None
    status: JobStatus = JobStatus.queued
    created_at: float = field(default_factory=time.time)
    started_at: float | None = None
    finished_at: float | None = None
    phase: JobPhase | None = None
    step: int = 0
    total_steps: int = 0
    error: str | None = None
    timings: JobTimings = field(default_factory=JobTimings)
    result: dict[str, Any] | None = None
    cancel: threading.Event = field(default_factory=threading.Event)
    committing: bool = False
    done: threading.Event = field(default_factory=threading.Event)
    version: int = 0

    @property
    def slimmed(self) -> bool:
        """True when the job's full record lives on disk only."""
        return self.settings is None

    def slim(self) -> None:
        """Drop what the record on disk holds, keeping what listing, pruning and serving files need.

        Call under the registry lock, once the job's record is durable.
        """
        result, settings = self.result, self.settings
        if settings is None:
            return
        if result is not None:
            self.result = {
                "num_videos": result["num_videos"],
                "num_frames": result["num_frames"],
                "gif": list(result.get("gif", [])),
                "mp4": list(result.get("mp4", [])),
                "requested": {"gif": settings.output.gif, "mp4": settings.output.mp4},
            }
        self.settings = None
        self.timings = JobTimings()
        self.cancel = _FINISHED_EVENT
        self.done = _FINISHED_EVENT

    @property
    def url(self) -> str:
        return f"/v1/jobs/{self.id}"

    def to_public(self, queue_position: int | None = None) -> JobPublic:
        """The API view of the job. Call under the registry lock for a consistent snapshot; not for a slimmed job."""
        if self.settings is None:
            raise ValueError(f"job {self.id} is slimmed: read its record (JobRegistry.public)")
        return JobPublic(
            id=self.id,
            url=self.url,
            status=self.status,
            cancel_requested=self.cancel.is_set() and not self.status.finished,
            progress=min(1.0, self.step / self.total_steps) if self.total_steps else 0.0,
            phase=self.phase if self.status is JobStatus.running else None,
            step=self.step,
            total_steps=self.total_steps,
            queue_position=queue_position if self.status is JobStatus.queued else None,
            error=self.error,
            created_at=_datetime(self.created_at),
            started_at=_datetime(self.started_at),
            finished_at=_datetime(self.finished_at),
            timings=self.timings.model_copy(),
            settings=self.settings.model_copy(),
            result=self._result_public(),
        )

    def _result_public(self) -> JobResultPublic | None:
        if self.status is not JobStatus.succeeded or self.result is None:
            return None
        result = self.result
        videos = []
        for index in range(result["num_videos"]):
            query = f"?video={index}" if result["num_videos"] > 1 else ""
            videos.append(
                VideoPublic(
                    index=index,
                    frames=[f"{self.url}/frames/{n}.png{query}" for n in range(result["num_frames"])],
                    gif_url=f"{self.url}/video.gif{query}" if index in result["gif"] else None,
                    mp4_url=f"{self.url}/video.mp4{query}" if index in result["mp4"] else None,
                )
            )
        return JobResultPublic(
            engine=result["engine"],
            seed=result["seed"],
            crop_box=CropBoxPublic(**result["crop_box"]),
            width=result["width"],
            height=result["height"],
            num_frames=result["num_frames"],
            videos=videos,
            zip_url=f"{self.url}/frames.zip",
        )

    def to_record(self) -> dict[str, Any]:
        """The JSON record written next to the job's files; :meth:`from_record` reads it back."""
        if self.settings is None:
            raise ValueError(f"job {self.id} is slimmed: its record is on disk")
        return {
            "format": RECORD_FORMAT,
            "backend_version": __version__,
            "id": self.id,
            "status": self.status.value,
            "error": self.error,
            "created_at": self.created_at,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "step": self.step,
            "total_steps": self.total_steps,
            "settings": self.settings.model_dump(mode="json"),
            "timings": self.timings.model_dump(mode="json"),
            "result": self.result,
        }

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Job:
        """Rebuild a finished job from its record; ValueError when the record is not one we wrote."""
        try:
            if record.get("format") != RECORD_FORMAT:
                raise ValueError(f"unknown record format {record.get('format')!r}")
            status = JobStatus(record["status"])
            if not status.finished or not is_job_id(record["id"]):
                raise ValueError(f"not a finished job record (status {status.value}, id {record['id']!r})")
            result = record.get("result")
            if status is JobStatus.succeeded and not isinstance(result, dict):
                raise ValueError("a succeeded job's record has no result")
            started_at = record.get("started_at")
            job = cls(
                id=record["id"],
                settings=JobSettings.model_validate(record["settings"]),
                status=status,
                created_at=float(record["created_at"]),
                started_at=None if started_at is None else float(started_at),
                finished_at=float(record["finished_at"]),
                step=int(record.get("step", 0)),
                total_steps=int(record.get("total_steps", 0)),
                error=None if record.get("error") is None else str(record["error"]),
                timings=JobTimings.model_validate(record.get("timings") or {}),
                result=result,
            )
            job.to_public()  # a record the API cannot show is rejected here, not on every request
            return job
        except (KeyError, TypeError, ValueError, OverflowError) as error:  # pydantic's ValidationError too
            raise ValueError(f"malformed job record ({type(error).__name__}: {error})") from error


class ChangeFeed:
    """Wakes asyncio waiters (SSE streams) when any job changes; ``notify`` may be called from any thread."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._event: asyncio.Event | None = None

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """Attach to the server's event loop (called from the lifespan, on that loop)."""
        self._loop = loop
        self._event = asyncio.Event()

    def current(self) -> asyncio.Event:
        """The event the next change sets; take it *before* reading job state so no change is missed."""
        if self._event is None:
            raise RuntimeError("ChangeFeed.bind() was not called")
        return self._event

    def notify(self) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            loop.call_soon_threadsafe(self._fire)
        except RuntimeError:  # the loop closed between the check and the call
            pass

    def _fire(self) -> None:
        event, self._event = self._event, asyncio.Event()
        if event is not None:
            event.set()


class JobRegistry:
    """All known jobs by id (queued, running and finished), guarded by one lock.

    ``read_record`` reads a finished job's record from disk, for the jobs kept slim in memory.
    """

    def __init__(self, read_record: RecordReader | None = None) -> None:
        self.lock = threading.RLock()
        self.feed = ChangeFeed()
        self._jobs: dict[str, Job] = {}
        self._read_record = read_record

    def add(self, job: Job) -> None:
        with self.lock:
            self._jobs[job.id] = job
        self.feed.notify()

    def get(self, job_id: str) -> Job | None:
        with self.lock:
            return self._jobs.get(job_id)

    def remove(self, job_id: str) -> Job | None:
        with self.lock:
            job = self._jobs.pop(job_id, None)
        self.feed.notify()
        return job

    def update(self, job: Job, **changes: Any) -> None:
        """Change a job's attributes atomically and wake the event streams."""
        with self.lock:
            for name, value in changes.items():
                setattr(job, name, value)
            job.version += 1
        self.feed.notify()

    def public(self, job: Job, queue_position: Callable[[Job], int | None] | None = None) -> JobPublic:
        """The API view of ``job``: from memory while it is active, from its record on disk once slimmed.

        FileNotFoundError when a slimmed job's record is gone (deleted or pruned meanwhile).
        """
        with self.lock:
            if not job.slimmed:
                return job.to_public(queue_position(job) if queue_position else None)
        if self._read_record is None:
            raise FileNotFoundError(job.id)
        return Job.from_record(self._read_record(job.id)).to_public()

    def recent(self, limit: int) -> list[Job]:
        """Up to ``limit`` jobs, newest first."""
        with self.lock:
            jobs = sorted(self._jobs.values(), key=lambda job: job.created_at, reverse=True)
        return jobs[:limit]

    def ids(self) -> set[str]:
        with self.lock:
            return set(self._jobs)

    def __len__(self) -> int:
        with self.lock:
            return len(self._jobs)
