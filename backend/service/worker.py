"""The one worker thread that owns the engine, and the bounded queue it drains.

Request handlers only enqueue jobs and read them; the engine (and the GPU behind it) is touched by
this thread alone, one job at a time. Jobs queue while the engine loads; the thread starts on them
once it is ready (or fails each with the load error). A job that fails, for whatever reason, is
marked failed with a readable message and the thread goes on with the next one.

Every accepted job is in the journal (:mod:`.journal`) before its 202, with its image; the worker
reads the image from there when the job starts, so a waiting job holds no pixels in memory, and a
restarted service runs again what a crash or a shutdown interrupted. A job becomes finished only
once its record is durable on disk (:meth:`Worker._finish`); the journal forgets it after that.
"""

from __future__ import annotations

import collections
import dataclasses
import enum
import gc
import logging
import math
import statistics
import sys
import threading
import time

import numpy as np
from pydantic import ValidationError

from ..engines import Cancelled, Engine, GenerationRequest, GenerationResult
from ..engines.base import SAMPLING
from . import faults, memory
from .errors import ApiError
from .images import NO_PARTS, PartInputs, open_image, open_part_inputs
from .journal import JobJournal
from .loading import EngineLoader, LoadState
from .registry import Job, JobRegistry
from .schemas import JobSettings, JobStatus
from .schemas.jobs import JobPhase
from .storage import PruneLimits, ResultStore

logger = logging.getLogger(__name__)

_RECENT_DURATIONS = 20
# A job that was running when the service died this many times is failed rather than started again:
# it may be what kills the service (the out-of-memory killer, a driver crash).
MAX_ATTEMPTS = 3
INTERRUPTED = "interrupted by a restart"
# Disk bytes per output pixel (PNG frames at zlib level 1) assumed until a job has shown the real figure;
# a submission is refused (507) when the results disk has less room than its estimate.
_INITIAL_BYTES_PER_PIXEL = 0.5


class QueueFull(Exception):
    """The queue holds ``max_queue`` waiting jobs already."""


class JobQueue:
    """A bounded FIFO of waiting jobs that, unlike ``queue.Queue``, can drop a cancelled job from the middle."""

    def __init__(self, max_size: int) -> None:
        self.max_size = max_size
        self._jobs: collections.deque[Job] = collections.deque()
        self._ready = threading.Condition()

    def put(self, job: Job, force: bool = False) -> int:
        """Append ``job``; return its 1-based position. QueueFull when the queue is full (unless ``force``:
        jobs accepted before a restart are owed their run, whatever the limit is now)."""
        with self._ready:
            if len(self._jobs) >= self.max_size and not force:
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
    memory.trim()


def describe_failure(error: BaseException) -> str:
    """A message a user can act on for an exception raised inside the engine."""
    if isinstance(error, OSError) and faults.is_server_fault(error):
        return f"generation failed: {faults.classify(error).reason}"
    text = (faults.describe(error) if isinstance(error, OSError) else str(error)).strip() or type(error).__name__
    if isinstance(error, MemoryError) or "out of memory" in text.lower():
        return (
            f"the engine ran out of memory ({text}); try fewer videos (num_videos), fewer frames or a smaller "
            "image, or free the GPU of other work"
        )
    if isinstance(error, ValueError):
        return f"the engine rejected the input: {text}"
    return f"generation failed: {type(error).__name__}: {text}"


class CancelOutcome(enum.Enum):
    """What a cancel request achieved."""

    cancelled = "cancelled"  # the job was waiting: it is cancelled now
    requested = "requested"  # the job runs: it stops at its next step and ends cancelled
    too_late = "too late"  # the job is committing its results: it will finish as it is
    finished = "finished"  # the job had ended already


def generation_request(settings: JobSettings, image_bytes: bytes, parts: PartInputs = NO_PARTS) -> GenerationRequest:
    """What the engine gets for a job: its settings and the submitted image (and part map and depth, when
    sent), decoded again from the journal."""
    image = open_image(image_bytes, max_side=None, needs_object=settings.crop_scale is not None)
    part_map, depth = open_part_inputs(parts, settings.depth_range, image.size)
    return GenerationRequest(
        image=image,
        drags=[np.asarray(drag, dtype=np.float64) for drag in settings.drags],
        num_frames=settings.frames,
        steps=settings.steps,
        guidance_scale=settings.guidance,
        seed=settings.seed,
        num_videos=settings.num_videos,
        crop_scale=settings.crop_scale,
        ease=settings.ease,
        part_map=part_map,
        depth=depth,
    )


class Worker:
    """Owns the engine; runs queued jobs one at a time on its own thread, writes results, prunes old ones.

    ``loader`` provides the engine; the thread waits for it to finish loading before it takes a job.
    ``journal`` keeps every unfinished job, durably, with its image.
    """

    def __init__(
        self,
        loader: EngineLoader,
        store: ResultStore,
        registry: JobRegistry,
        journal: JobJournal,
        max_queue: int,
        limits: PruneLimits,
    ) -> None:
        self.loader = loader
        self.store = store
        self.registry = registry
        self.journal = journal
        self.limits = limits
        self.queue = JobQueue(max_queue)
        self.running: Job | None = None
        self._stop = threading.Event()
        self._interrupted: set[str] = set()  # jobs stopped by a shutdown, not by their client
        self._thread = threading.Thread(target=self._loop, name="puppet-master-worker", daemon=True)
        self._durations: collections.deque[float] = collections.deque(maxlen=_RECENT_DURATIONS)
        self._bytes_per_pixel = _INITIAL_BYTES_PER_PIXEL
        self._admission_lock = threading.Lock()
        self._receiving = 0  # submissions admitted (middleware.EarlyRefusalMiddleware), not yet queued

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

    def submit(self, job: Job, image_bytes: bytes, parts: PartInputs = NO_PARTS) -> int:
        """Write ``job``, its image and any part inputs to the journal (durably), then enqueue it; its queue position.

        QueueFull when the queue is full; ServiceFault when the journal cannot be written (a full or
        read-only disk): then the job was not accepted, and nothing of it remains.
        """
        if len(self.queue) >= self.queue.max_size:  # before the write: a full queue costs no disk
            raise QueueFull(f"{len(self.queue)} jobs are waiting already (the limit is {self.queue.max_size})")
        self._check_room(job, len(image_bytes) + parts.size)
        settings = job.settings.model_dump_json() if job.settings is not None else "{}"
        try:
            self.journal.add(job.id, job.created_at, settings, image_bytes, parts.part_map, parts.depth)
        except Exception as error:  # noqa: BLE001 - sqlite3 and OS errors alike are the server's fault
            raise faults.classify(error, "accepting the job") from None
        self.registry.add(job)
        try:
            return self.queue.put(job)
        except QueueFull:
            self.registry.remove(job.id)
            self._forget(job.id)
            raise

    def admission_error(self, receiving: int = 0) -> ApiError | None:
        """Why no new job can be taken now, or None: the engine failed to load (503 with its message), or the
        queue is full (429 with Retry-After), counting ``receiving`` submissions admitted but not queued yet."""
        if self.loader.state is LoadState.failed:  # no engine will ever run it: say why now, not after a wait
            return ApiError(503, self.loader.failure_message())
        if len(self.queue) + receiving >= self.queue.max_size:
            return self.queue_full(f"{self.queue.max_size} jobs are waiting or being received")
        return None

    def admit(self) -> ApiError | None:
        """Hold a place in the queue for a submission about to be received (give it back with
        :meth:`release_admission`); its refusal instead when there is none. Forty large submissions at
        once are then answered 429 from their headers, not after reading and parsing their bodies."""
        with self._admission_lock:
            refused = self.admission_error(self._receiving)
            if refused is None:
                self._receiving += 1
            return refused

    def release_admission(self) -> None:
        with self._admission_lock:
            self._receiving -= 1

    def queue_full(self, reason: str) -> ApiError:
        """429 with a Retry-After guess."""
        wait = self.retry_after_seconds()
        return ApiError(
            429, f"the queue is full ({reason}); retry in about {wait} s", headers={"Retry-After": str(wait)}
        )

    def _check_room(self, job: Job, image_bytes: int) -> None:
        """ServiceFault 507 when the results disk has less free space than the job will need (an estimate
        from the jobs before it): better refused now than failed after its run."""
        free = self.store.free_bytes()
        if free is None or job.settings is None:
            return
        needed = int(_output_pixels(job.settings) * self._bytes_per_pixel) + image_bytes
        if free < needed:
            raise faults.ServiceFault(
                507, f"the server's results disk has {free / 1e6:.0f} MB free, and this job needs about "
                f"{needed / 1e6:.0f} MB"
            )  # fmt: skip

    def cancel(self, job: Job) -> CancelOutcome:
        """Cancel a waiting job now, or ask the running one to stop.

        The check here and the worker's commit share the registry lock, so both sides agree: a job
        asked to stop ends cancelled, and one whose results are being committed answers ``too_late``.
        """
        if self.queue.remove(job):
            self._finish(job, JobStatus.cancelled, "cancelled before it started")
            return CancelOutcome.cancelled
        with self.registry.lock:
            if job.status.finished:
                return CancelOutcome.finished
            if job.committing:
                return CancelOutcome.too_late
            job.cancel.set()
            self.registry.update(job)  # cancel_requested shows at once
            return CancelOutcome.requested

    def delete(self, job: Job) -> None:
        """Delete a finished job: its folder (a tombstone first: one rename), its journal row, then the job.

        OSError when the disk refuses (read-only): then the job stays, whole, as it was.
        """
        self.store.delete(job.id)
        self._forget(job.id)
        self.registry.remove(job.id)

    def queue_position(self, job: Job) -> int | None:
        return self.queue.position(job) if job.status is JobStatus.queued else None

    def retry_after_seconds(self) -> int:
        """A guess of when a queue slot frees up: the typical job duration (at least 1 s)."""
        typical = statistics.median(self._durations) if self._durations else 5.0
        return max(1, math.ceil(typical))

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the thread; the running job is interrupted and, like the waiting ones, stays in the journal
        to run when the service starts again."""
        self._stop.set()
        running = self.running
        if running is not None:
            with self.registry.lock:
                if not running.cancel.is_set() and not running.committing:
                    self._interrupted.add(running.id)
                    running.cancel.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def prune(self) -> None:
        """Delete finished jobs beyond the age/size limits, from disk and from the registry."""
        finished = [
            (job.id, job.finished_at or job.created_at)
            for job in self.registry.recent(len(self.registry))
            if job.status.finished and job.slimmed
        ]
        try:
            deleted = self.store.prune(finished, self.limits)
        except OSError as error:
            logger.warning("pruning old results failed: %s", faults.describe(error))
            return
        for job_id in deleted:
            self.registry.remove(job_id)

    # -- start-up ------------------------------------------------------------------------------

    def recover(self) -> None:
        """Take back the jobs the journal holds that did not finish before the service stopped or died.

        Waiting and interrupted jobs are queued again, in the order they were accepted; a job that
        was running in :data:`MAX_ATTEMPTS` lives of the service, or whose input is gone, fails with
        a message saying so. A job whose record made it to disk is finished already.
        """
        resumed = 0
        for entry in self.journal.entries():
            if self.store.has_record(entry.id):
                self._forget(entry.id)
                continue
            try:
                settings = JobSettings.model_validate_json(entry.settings)
            except ValidationError as error:
                logger.error("job %s from before the restart cannot be read back, dropped: %s", entry.id, error)
                self._forget(entry.id)
                continue
            job = Job(id=entry.id, settings=settings, created_at=entry.created_at)
            self.registry.add(job)
            if entry.state in (JobStatus.failed.value, JobStatus.cancelled.value):
                self._finish(job, JobStatus(entry.state), entry.error)
            elif not entry.has_image:
                self._finish(job, JobStatus.failed, f"{INTERRUPTED}, and its input was lost; submit it again")
            elif entry.attempts >= MAX_ATTEMPTS:
                self._finish(
                    job,
                    JobStatus.failed,
                    f"{INTERRUPTED} each of the {entry.attempts} times it ran (it may be what stops the server); "
                    "submit it again, perhaps with fewer frames or videos or a smaller image",
                )
            else:
                self.queue.put(job, force=True)
                resumed += 1
        if resumed:
            logger.info("resuming %d job(s) accepted before the restart", resumed)

    # -- the worker thread ---------------------------------------------------------------------

    def _loop(self) -> None:
        while not self._stop.is_set() and not self.loader.wait(timeout=0.25):
            pass  # jobs queue up meanwhile
        while not self._stop.is_set():
            job = self.queue.get(timeout=0.25)
            if job is None:
                continue
            if self._stop.is_set():  # taken just as the service stops: it stays in the journal
                break
            try:
                self._run(job)
            except Exception:  # a bug here must not kill the only worker
                logger.exception("job %s: unexpected error in the worker", job.id)
                if not job.status.finished:
                    self._finish(job, JobStatus.failed, "internal error in the service (logged on the server)")
            finally:
                self.running = None
            memory.trim()  # the job's frames are freed: give the pages back
            self.prune()

    def _run(self, job: Job) -> None:
        if job.cancel.is_set() or job.settings is None:
            self._finish(job, JobStatus.cancelled, "cancelled before it started")
            return
        engine = self.engine
        if engine is None or self.loader.state is not LoadState.ready:
            self._finish(job, JobStatus.failed, self.loader.failure_message())
            return
        try:
            image_bytes, _attempt = self.journal.start(job.id)
            if image_bytes is None:
                raise ValueError("its image is missing from the journal")
            request = generation_request(job.settings, image_bytes, PartInputs(*self.journal.part_inputs(job.id)))
        except (ValueError, ApiError) as error:
            self._finish(job, JobStatus.failed, f"its input could not be read back: {error}; submit it again")
            return
        except Exception as error:  # noqa: BLE001 - the journal's storage failed
            reason = faults.classify(error, "reading the job from the journal").reason
            self._finish(job, JobStatus.failed, f"{reason}; submit it again")
            return
        del image_bytes
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
            del request
            engine_s = time.perf_counter() - clock
            if job.cancel.is_set():
                raise Cancelled("cancelled after the engine finished")
            self.registry.update(job, phase=JobPhase.writing)
            clock = time.perf_counter()
            try:
                written = self.store.save_outputs(job.id, result, job.settings.output)
            except OSError as error:
                raise _NotSaved(faults.classify(error)) from None
            summary = self._summary(engine, result, written)
            del result
            with self.registry.lock:  # the commit: a cancel that came first wins, one that comes later is refused
                if job.cancel.is_set():
                    raise Cancelled("cancelled while writing the files")
                job.committing = True
            stages = dict(summary.pop("stages"))
            write_s = time.perf_counter() - clock
            self._finish(job, JobStatus.succeeded, None, summary, engine=engine_s, write=write_s, stages=stages)
        except Cancelled:
            self.store.discard(job.id)
            if job.id in self._interrupted:
                self._requeue(job)
            else:
                self._finish(job, JobStatus.cancelled, "cancelled while running")
        except _NotSaved as error:
            logger.error("job %s: its results could not be saved: %s", job.id, error.fault.reason)
            self.store.discard(job.id)
            self._finish(job, JobStatus.failed, _not_saved_message(error.fault))
        except Exception as error:  # noqa: BLE001 - any engine failure fails this job only
            if isinstance(error, ValueError):
                logger.info("job %s: the engine rejected the input: %s", job.id, error)
            elif faults.is_server_fault(error):
                logger.error("job %s failed: %s", job.id, faults.describe(error))
            else:
                logger.exception("job %s failed", job.id)
            failed = True
            self.store.discard(job.id)
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
            "stages": dict(result.timings),
            **written,
        }

    def _requeue(self, job: Job) -> None:
        """A job a shutdown interrupted: back to ``queued`` in the journal (the next start runs it)."""
        self._interrupted.discard(job.id)
        try:
            self.journal.requeue(job.id)
        except Exception as error:  # noqa: BLE001 - it runs again anyway, as an interrupted job
            logger.warning("job %s: could not mark it queued again: %s", job.id, faults.describe(error))
        self.registry.update(job, status=JobStatus.queued, phase=None, step=0, cancel=threading.Event())

    def _finish(
        self,
        job: Job,
        status: JobStatus,
        error: str | None,
        result: dict | None = None,
        **timings: object,
    ) -> None:
        """Make ``job`` finished: write its record durably, then show it finished, then let the journal forget it.

        A succeeded job whose record cannot be written fails instead (its files are removed), with
        the reason; a job whose record cannot be written at all stays in the journal, so it is still
        there, finished, after a restart.
        """
        now = time.time()
        timings["total"] = now - job.created_at
        final = {
            "status": status,
            "error": error,
            "finished_at": now,
            "timings": job.timings.model_copy(update=timings),
            "result": result,
        }
        fault = self._write_record(job, final)
        if fault is not None and status is JobStatus.succeeded:
            self.store.discard(job.id)
            final |= {"status": JobStatus.failed, "error": _not_saved_message(fault), "result": None}
            fault = self._write_record(job, final)
        if fault is None:
            self._forget(job.id)
        else:
            try:
                self.journal.keep_finished(job.id, final["status"].value, final["error"])
            except Exception as journal_error:  # noqa: BLE001 - it is in the journal as unfinished, at worst
                reason = faults.describe(journal_error)
                logger.error("job %s: could not note its end in the journal: %s", job.id, reason)
        done = job.done
        with self.registry.lock:
            self.registry.update(job, committing=False, **final)
            if fault is None:
                job.slim()
        done.set()
        if final["status"] is JobStatus.succeeded and job.started_at is not None:
            self._durations.append(now - job.started_at)
            self._learn_size(job.id, final["result"])

    def _learn_size(self, job_id: str, result: dict) -> None:
        """Update the bytes-per-pixel estimate from a succeeded job's folder (a moving average)."""
        pixels = result["width"] * result["height"] * result["num_frames"] * result["num_videos"]
        try:
            size = self.store.size(job_id)
        except OSError:
            return
        if pixels > 0:
            self._bytes_per_pixel = 0.7 * self._bytes_per_pixel + 0.3 * size / pixels

    def _write_record(self, job: Job, final: dict) -> faults.ServiceFault | None:
        """Write the record ``job`` will have with the ``final`` changes; the fault when the disk refused."""
        with self.registry.lock:
            record = dataclasses.replace(job, **final).to_record()
        try:
            self.store.write_record(job.id, record)
        except OSError as error:
            fault = faults.classify(error)
            logger.error("job %s: could not write its record: %s", job.id, fault.reason)
            return fault
        return None

    def _forget(self, job_id: str) -> None:
        """Drop a job from the journal (its record is durable, or it was never accepted)."""
        try:
            self.journal.remove(job_id)
        except Exception as error:  # noqa: BLE001 - a stale row is resolved at the next start
            logger.warning("job %s: could not remove it from the journal: %s", job_id, faults.describe(error))


def _output_pixels(settings: JobSettings) -> int:
    """Pixels a job writes: its frames are as large as its input image."""
    return settings.image_width * settings.image_height * settings.frames * settings.num_videos


class _NotSaved(Exception):
    """The results could not be written; ``fault`` says why."""

    def __init__(self, fault: faults.ServiceFault) -> None:
        super().__init__(fault.reason)
        self.fault = fault


def _not_saved_message(fault: faults.ServiceFault) -> str:
    """What a job whose results could not be written reports."""
    return (
        f"its results could not be saved: {fault.reason}; free space or fix the folder on the server, "
        "then submit it again"
    )
