"""The one worker thread that owns the engine, and the bounded queue it drains.

Request handlers only enqueue jobs and read them; the engine (and the GPU behind it) is touched by
this thread alone, one job at a time. Jobs queue while the engine loads; the thread starts on them
once it is ready (or fails each with the load error). A job that fails, for whatever reason, is
marked failed with a readable message and the thread goes on with the next one.
"""

from __future__ import annotations

import collections
import gc
import logging
import math
import statistics
import sys
import threading
import time

from ..engines import Cancelled, Engine, GenerationResult
from ..engines.base import SAMPLING
from .loading import EngineLoader, LoadState
from .registry import Job, JobRegistry
from .schemas import JobStatus
from .schemas.jobs import JobPhase
from .storage import PruneLimits, ResultStore

logger = logging.getLogger(__name__)

_RECENT_DURATIONS = 20


class QueueFull(Exception):
    """The queue holds ``max_queue`` waiting jobs already."""


class JobQueue:
    """A bounded FIFO of waiting jobs that, unlike ``queue.Queue``, can drop a cancelled job from the middle."""

    def __init__(self, max_size: int) -> None:
        self.max_size = max_size
        self._jobs: collections.deque[Job] = collections.deque()
        self._ready = threading.Condition()

    def put(self, job: Job) -> int:
        """Append ``job``; return its 1-based position. QueueFull when the queue is full."""
        with self._ready:
            if len(self._jobs) >= self.max_size:
                raise QueueFull(f"{len(self._jobs)} jobs are waiting already (the limit is {self.max_size})")
            self._jobs.append(job)
            self._ready.notify()
            return len(self._jobs)

    def get(self, timeout: float) -> Job | None:
        """The next job, or None when none arrives within ``timeout`` seconds."""
        with self._ready:
            if not self._jobs:
                self._ready.wait(timeout)
            return self._jobs.popleft() if self._jobs else None

    def remove(self, job: Job) -> bool:
        """Take ``job`` out of the queue; False when it is not waiting (any more)."""
        with self._ready:
            try:
                self._jobs.remove(job)
            except ValueError:
                return False
            return True

    def position(self, job: Job) -> int | None:
        """1-based place of ``job`` in the queue, or None when it is not waiting."""
        with self._ready:
            for index, waiting in enumerate(self._jobs):
                if waiting is job:
                    return index + 1
        return None

    def drain(self) -> list[Job]:
        """Remove and return every waiting job."""
        with self._ready:
            jobs = list(self._jobs)
            self._jobs.clear()
            return jobs

    def __len__(self) -> int:
        with self._ready:
            return len(self._jobs)


def release_memory() -> None:
    """Give back what a failed job may have left behind (Python garbage and the CUDA cache)."""
    gc.collect()
    torch = sys.modules.get("torch")  # only if an engine imported it
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()


def describe_failure(error: BaseException) -> str:
    """A message a user can act on for an exception raised inside the engine."""
    text = str(error).strip() or type(error).__name__
    if isinstance(error, MemoryError) or "out of memory" in text.lower():
        return (
            f"the engine ran out of memory ({text}); try fewer videos (num_videos), fewer frames or a smaller "
            "image, or free the GPU of other work"
        )
    if isinstance(error, ValueError):
        return f"the engine rejected the input: {text}"
    return f"generation failed: {type(error).__name__}: {text}"


class Worker:
    """Owns the engine; runs queued jobs one at a time on its own thread, writes results, prunes old ones.

    ``loader`` provides the engine; the thread waits for it to finish loading before it takes a job.
    """

    def __init__(
        self,
        loader: EngineLoader,
        store: ResultStore,
        registry: JobRegistry,
        max_queue: int,
        limits: PruneLimits,
    ) -> None:
        self.loader = loader
        self.store = store
        self.registry = registry
        self.limits = limits
        self.queue = JobQueue(max_queue)
        self.running: Job | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="puppet-master-worker", daemon=True)
        self._durations: collections.deque[float] = collections.deque(maxlen=_RECENT_DURATIONS)

    # -- used by request handlers --------------------------------------------------------------

    def start(self) -> None:
        self.prune()
        self._thread.start()

    @property
    def engine(self) -> Engine | None:
        """The engine, or None while it loads or after it failed to load."""
        return self.loader.engine

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def submit(self, job: Job) -> int:
        """Register and enqueue ``job``; return its queue position. QueueFull when the queue is full."""
        self.registry.add(job)
        try:
            return self.queue.put(job)
        except QueueFull:
            self.registry.remove(job.id)
            raise

    def cancel(self, job: Job) -> None:
        """Cancel a waiting job now, or ask the running one to stop: it ends cancelled unless its results were
        committed before this call (the check here and the commit share the registry lock: both sides agree)."""
        if self.queue.remove(job):
            self._finish(job, JobStatus.cancelled, "cancelled before it started")
            return
        with self.registry.lock:
            if not job.status.finished:
                job.cancel.set()
                self.registry.update(job)  # cancel_requested shows at once

    def queue_position(self, job: Job) -> int | None:
        return self.queue.position(job) if job.status is JobStatus.queued else None

    def retry_after_seconds(self) -> int:
        """A guess of when a queue slot frees up: the typical job duration (at least 1 s)."""
        typical = statistics.median(self._durations) if self._durations else 5.0
        return max(1, math.ceil(typical))

    def stop(self, timeout: float = 10.0) -> None:
        """Cancel the waiting jobs and the running one, and wait for the thread to end."""
        self._stop.set()
        for job in self.queue.drain():
            self._finish(job, JobStatus.cancelled, "the server shut down before the job ran")
        running = self.running
        if running is not None:
            running.cancel.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def prune(self) -> None:
        """Delete finished jobs beyond the age/size limits, from disk and from the registry."""
        finished = [
            (job.id, job.finished_at or job.created_at)
            for job in self.registry.recent(len(self.registry))
            if job.status.finished
        ]
        try:
            deleted = self.store.prune(finished, self.limits)
        except OSError as error:
            logger.warning("pruning old results failed: %s", error)
            return
        for job_id in deleted:
            self.registry.remove(job_id)

    # -- the worker thread ---------------------------------------------------------------------

    def _loop(self) -> None:
        while not self._stop.is_set() and not self.loader.wait(timeout=0.25):
            pass  # jobs queue up meanwhile
        while not self._stop.is_set():
            job = self.queue.get(timeout=0.25)
            if job is None:
                continue
            try:
                self._run(job)
            except Exception:  # a bug here must not kill the only worker
                logger.exception("job %s: unexpected error in the worker", job.id)
                if not job.status.finished:
                    self._finish(job, JobStatus.failed, "internal error in the service (logged on the server)")
            finally:
                self.running = None
            self.prune()

    def _run(self, job: Job) -> None:
        request = job.request
        if job.cancel.is_set() or request is None:
            self._finish(job, JobStatus.cancelled, "cancelled before it started")
            return
        engine = self.engine
        if engine is None or self.loader.state is not LoadState.ready:
            self._finish(job, JobStatus.failed, self.loader.failure_message())
            return
        self.running = job
        started = time.time()
        timings = job.timings.model_copy(update={"queued": started - job.created_at})
        self.registry.update(
            job,
            status=JobStatus.running,
            phase=JobPhase.encoding,
            started_at=started,
            total_steps=request.steps,
            timings=timings,
        )

        def progress(step: int, total: int, phase: str = SAMPLING) -> None:
            self.registry.update(job, step=int(step), total_steps=int(total), phase=JobPhase(phase))

        clock = time.perf_counter()
        failed = False
        try:
            result = engine.generate(request, progress=progress, cancel=job.cancel)
            engine_s = time.perf_counter() - clock
            if job.cancel.is_set():
                raise Cancelled("cancelled after the engine finished")
            self.registry.update(job, phase=JobPhase.writing)
            clock = time.perf_counter()
            written = self.store.save_outputs(job.id, result, job.settings.output)
            summary = self._summary(engine, result, written)
            timings = job.timings.model_copy(
                update={"engine": engine_s, "write": time.perf_counter() - clock, "stages": dict(result.timings)}
            )
            with self.registry.lock:  # the commit: a cancel that came first wins, one that comes later is refused
                if job.cancel.is_set():
                    raise Cancelled("cancelled while writing the files")
                self.registry.update(job, timings=timings, result=summary)
                self._finish(job, JobStatus.succeeded, None)
        except Cancelled:
            self._discard(job)
            self._finish(job, JobStatus.cancelled, "cancelled while running")
        except Exception as error:  # noqa: BLE001 - any engine failure fails this job only
            if isinstance(error, ValueError):
                logger.info("job %s: the engine rejected the input: %s", job.id, error)
            else:
                logger.exception("job %s failed", job.id)
            failed = True
            self._discard(job)
            self._finish(job, JobStatus.failed, describe_failure(error))
        if failed:
            # Outside the except block, so the traceback (and the tensors its frames hold) is gone.
            release_memory()

    def _summary(self, engine: Engine, result: GenerationResult, written: dict) -> dict:
        first = result.videos[0]
        return {
            "engine": result.engine,
            "engine_info": engine.describe(),
            "seed": int(result.seed),
            "crop_box": result.crop_box.to_dict(),
            "width": int(first.shape[2]),
            "height": int(first.shape[1]),
            "num_frames": int(first.shape[0]),
            "num_videos": len(result.videos),
            "image_trajectories": [track.tolist() for track in result.image_trajectories],
            **written,
        }

    def _discard(self, job: Job) -> None:
        """Remove files a failed or cancelled job may have started writing."""
        self.store.delete(job.id)

    def _finish(self, job: Job, status: JobStatus, error: str | None) -> None:
        """Mark ``job`` finished, drop its input image, and write its record."""
        now = time.time()
        timings = job.timings.model_copy(update={"total": now - job.created_at})
        self.registry.update(job, status=status, error=error, finished_at=now, timings=timings, request=None)
        if status is JobStatus.succeeded:
            self._durations.append(now - (job.started_at or job.created_at))
        try:
            self.store.write_record(job.id, job.to_record())
        except (OSError, TypeError, ValueError) as error:
            logger.error("job %s: could not write its record: %s", job.id, error)
