"""One generation job against the backend, as a small state machine run in a worker thread (bpy-free).

    idle -> submitting -> queued -> running -> downloading -> done
                     \\________\\_________\\____________\\--> failed | cancelled

The worker thread does all the network and file work; the main thread (Generate's timer events)
only reads :meth:`JobRunner.snapshot`, which is an immutable copy taken under a lock, so
Blender's UI never waits on the network. Frames are extracted into a temporary folder next to the
target and moved into place with one ``os.replace``, so a half-written result is never loaded.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import threading
import time
import zipfile
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import Any

from .client import BackendClient, BackendError

POLL_INTERVAL_S = 0.25
# Status polls that may fail in a row (a busy server, a hiccup) before the job is given up.
MAX_POLL_ERRORS = 3
# After a cancel request, how long to wait for the backend's final word before giving up waiting. The
# backend honours a cancel until it has committed the results, which may take a slow decode's time.
CANCEL_CONFIRM_S = 120.0
# The backend's phases of a running job, as the panel names them.
PHASE_NAMES = {"encoding": "Encoding", "sampling": "Sampling", "decoding": "Decoding", "writing": "Writing files"}

# Archive members the add-on accepts; anything else (and any path trickery) is ignored.
_MEMBER = re.compile(r"^(record\.json|video_\d{1,2}/frame_\d{4,5}\.png)$")


class JobState(StrEnum):
    IDLE = "idle"
    SUBMITTING = "submitting"
    QUEUED = "queued"
    RUNNING = "running"
    DOWNLOADING = "downloading"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in (JobState.DONE, JobState.FAILED, JobState.CANCELLED)


@dataclass(frozen=True)
class JobSnapshot:
    """What the main thread may know about a job at one moment.

    ``folder`` is the job's result folder (set when done), holding ``video_<k>/frame_<nnnn>.png``
    and ``record.json``. ``progress`` is the backend's fraction of engine steps done (0..1);
    ``phase`` the backend's phase of a running job (encoding, sampling, decoding, writing).
    """

    state: JobState = JobState.IDLE
    job_id: str = ""
    progress: float = 0.0
    phase: str = ""
    step: int = 0
    total_steps: int = 0
    queue_position: int | None = None
    message: str = ""
    error: str = ""
    engine: str = ""
    seed: int | None = None
    num_frames: int = 0
    num_videos: int = 0
    folder: str = ""
    timings: dict[str, float] = field(default_factory=dict)
    # wall seconds of this side's phases: submit, follow (queued + running), download, extract
    durations: dict[str, float] = field(default_factory=dict)

    @property
    def finished(self) -> bool:
        return self.state.finished

    def describe(self) -> str:
        """One line for the panel: ``Running 40% (step 2/5)``, ``Queued (position 2)``, ..."""
        if self.state is JobState.RUNNING:
            if self.phase == "sampling" and self.total_steps:
                return f"Sampling {self.step}/{self.total_steps}"
            if self.phase in PHASE_NAMES:
                return PHASE_NAMES[self.phase]
            steps = f" (step {self.step}/{self.total_steps})" if self.total_steps else ""
            return f"Running {self.progress * 100:.0f}%{steps}"
        if self.state is JobState.QUEUED and self.queue_position:
            return f"Queued (position {self.queue_position})"
        if self.state is JobState.FAILED:
            return f"Failed: {self.error}"
        return self.message or self.state.value.capitalize()

    @property
    def cancellable(self) -> bool:
        """Until the backend has committed the results; after that the job is done, only downloading."""
        return self.state in (JobState.IDLE, JobState.SUBMITTING, JobState.QUEUED, JobState.RUNNING)


def extract_frames(archive: bytes, target: str | os.PathLike[str], expected_frames: int = 0) -> Path:
    """Unpack a ``frames.zip`` into ``target`` atomically; the folder.

    The files go to a temporary sibling folder first, which is renamed to ``target`` once complete,
    so ``target`` either does not exist or holds every frame. ``expected_frames`` > 0 checks that
    each video has that many frames. ValueError for an archive without frames.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    temp = target.parent / f".{target.name}.{os.getpid()}.{time.monotonic_ns()}.partial"
    try:
        temp.mkdir()
        frames: dict[str, int] = {}
        with zipfile.ZipFile(io.BytesIO(archive)) as bundle:
            for name in bundle.namelist():
                if not _MEMBER.match(name):
                    continue
                destination = temp / name
                destination.parent.mkdir(exist_ok=True)
                with bundle.open(name) as source, open(destination, "wb") as sink:
                    shutil.copyfileobj(source, sink)
                if name != "record.json":
                    video = name.split("/", 1)[0]
                    frames[video] = frames.get(video, 0) + 1
        if not frames:
            raise ValueError("the backend's archive holds no frames")
        if expected_frames > 0:
            short = {video: count for video, count in frames.items() if count != expected_frames}
            if short:
                raise ValueError(f"the backend's archive has {short} frames, expected {expected_frames} per video")
        if target.exists():
            shutil.rmtree(target)  # an earlier, complete download of the same job
        os.replace(temp, target)
    finally:
        if temp.exists():
            shutil.rmtree(temp, ignore_errors=True)
    return target


class JobRunner:
    """Submit one job, follow it, download its frames into ``results_root/<job_id>``.

    Parameters:
        client: the backend client (used only by the thread that runs the job).
        payload: the ``POST /v1/jobs`` body.
        results_root: folder that receives one sub-folder per job.
        poll_interval: seconds between status polls.

    ``start()`` runs the job in a daemon thread; ``run()`` runs it in the caller's thread (background
    mode, tests). ``cancel()`` may be called from any thread at any time and never blocks.
    """

    def __init__(
        self,
        client: BackendClient,
        payload: dict[str, Any],
        results_root: str | os.PathLike[str],
        poll_interval: float = POLL_INTERVAL_S,
    ) -> None:
        self.client = client
        self.payload = payload
        self.results_root = Path(results_root)
        self.poll_interval = poll_interval
        self._lock = threading.Lock()
        self._snapshot = JobSnapshot()
        self._cancel = threading.Event()
        self._thread: threading.Thread | None = None

    # -- main-thread side ----------------------------------------------------------------------

    def snapshot(self) -> JobSnapshot:
        with self._lock:
            return self._snapshot

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("this job was started already")
        self._thread = threading.Thread(target=self.run, name="puppet-master-job", daemon=True)
        self._thread.start()

    def cancel(self) -> None:
        """Ask the job to stop; the worker sends the backend's cancel request."""
        self._cancel.set()

    @property
    def cancel_requested(self) -> bool:
        return self._cancel.is_set()

    def wait(self, timeout: float | None = None) -> JobSnapshot:
        """Block until the worker thread ends (tests, background mode); the final snapshot."""
        if self._thread is not None:
            self._thread.join(timeout)
        return self.snapshot()

    # -- worker side ---------------------------------------------------------------------------

    def _update(self, **changes: Any) -> None:
        with self._lock:
            self._snapshot = replace(self._snapshot, **changes)

    def _timed(self, phase: str, started: float) -> None:
        with self._lock:
            durations = {**self._snapshot.durations, phase: time.perf_counter() - started}
            self._snapshot = replace(self._snapshot, durations=durations)

    def run(self) -> JobSnapshot:
        """Run the whole job in this thread; the final snapshot (never raises for backend trouble)."""
        try:
            self._run()
        except BackendError as error:
            self._update(state=JobState.FAILED, error=error.message, message="")
        except (OSError, ValueError, zipfile.BadZipFile) as error:
            self._update(state=JobState.FAILED, error=f"Could not save the frames: {error}", message="")
        except Exception as error:  # a worker thread must always end in a final state
            self._update(state=JobState.FAILED, error=f"Unexpected error: {type(error).__name__}: {error}")
        finally:
            self.client.close()
        return self.snapshot()

    def _run(self) -> None:
        if self._cancel.is_set():
            self._update(state=JobState.CANCELLED, message="Cancelled before it was sent")
            return
        self._update(state=JobState.SUBMITTING, message="Sending the image and drags")
        started = time.perf_counter()
        job_id = self.client.submit(self.payload)
        self._timed("submit", started)
        self._update(state=JobState.QUEUED, job_id=job_id, message="Queued")

        started = time.perf_counter()
        status = self._follow(job_id)
        self._timed("follow", started)
        if status is None:  # cancelled, and the backend agrees (or could not be told)
            return
        if status["status"] == "failed":
            error = status.get("error") or "no reason given"
            self._update(state=JobState.FAILED, error=f"The backend could not generate the video: {error}")
            return
        if status["status"] == "cancelled":
            self._update(state=JobState.CANCELLED, message="Cancelled on the backend")
            return
        # succeeded: a cancel that reached the backend after it committed the results is too late for both sides

        result = status.get("result") or {}
        num_frames = int(result.get("num_frames") or 0)
        self._update(
            state=JobState.DOWNLOADING,
            message="Downloading the frames",
            progress=1.0,
            engine=str(result.get("engine") or ""),
            seed=result.get("seed"),
            num_frames=num_frames,
            num_videos=len(result.get("videos") or ()) or 1,
            timings=dict((status.get("timings") or {}).get("stages") or {}),
        )
        started = time.perf_counter()
        archive = self.client.frames_zip(job_id)
        self._timed("download", started)
        started = time.perf_counter()
        folder = extract_frames(archive, self.results_root / job_id, expected_frames=num_frames)
        self._timed("extract", started)
        self._update(state=JobState.DONE, folder=str(folder), message="Done")

    def _follow(self, job_id: str) -> dict[str, Any] | None:
        """Poll until the job ends; its final status, or None when it was cancelled (see :meth:`_cancelled`).

        A cancel request is sent once; then the backend's word is awaited: it ends the job cancelled
        unless the results were committed first, and the outcome here is whatever it says.
        """
        errors = 0
        cancel_sent: float | None = None
        while True:
            if self._cancel.is_set() and cancel_sent is None:
                self._update(message="Cancelling")
                try:
                    self.client.cancel(job_id)
                except BackendError as error:
                    return self._cancelled(f"Cancelled here; the backend was not told: {error}")
                cancel_sent = time.monotonic()
            try:
                status = self.client.status(job_id)
                errors = 0
            except BackendError as error:
                if cancel_sent is not None and error.status == 404:  # finished just before: the cancel deleted it
                    return self._cancelled("Cancelled; the backend had just finished and deleted the result")
                errors += 1
                if errors >= MAX_POLL_ERRORS or error.status == 404:
                    if cancel_sent is not None:
                        return self._cancelled(f"Cancelled here; the backend did not confirm: {error}")
                    raise
                time.sleep(self.poll_interval)
                continue
            state = status.get("status")
            if state in ("succeeded", "failed", "cancelled"):
                return status
            if cancel_sent is not None and time.monotonic() - cancel_sent > CANCEL_CONFIRM_S:
                return self._cancelled(f"Cancelled here; the backend did not confirm within {CANCEL_CONFIRM_S:g} s")
            if state == "running":
                self._update(
                    state=JobState.RUNNING,
                    progress=float(status.get("progress") or 0.0),
                    phase=str(status.get("phase") or ""),
                    step=int(status.get("step") or 0),
                    total_steps=int(status.get("total_steps") or 0),
                    queue_position=None,
                    message="Running",
                )
            else:
                self._update(state=JobState.QUEUED, queue_position=status.get("queue_position"), message="Queued")
            if cancel_sent is None:
                self._cancel.wait(self.poll_interval)
            else:
                time.sleep(self.poll_interval / 2)

    def _cancelled(self, message: str) -> None:
        self._update(state=JobState.CANCELLED, message=message)
        return None
