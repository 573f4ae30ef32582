"""Generate: capture the camera view, send it with the drags to the backend, bring the video back.

Generate is a modal operator fed by a window-manager timer. On invoke it checks the scene, renders
the camera view (and, with Send Parts, the part pass: which object each pixel shows, and its depth)
and starts a :class:`~..core.jobs.JobRunner` thread, which does all the network and
file work; each timer event mirrors the job's progress into the panel (runtime state, not scene
data). When the job ends the operator itself adds the result to the history and imports it, and
reports the outcome with ``self.report``: that reaches the status bar and the Info editor (errors
also as a popup), and Blender records what it changed as the operator's own undo step, "Generate".
Data changed outside an undo step is what made Ctrl+Z after a timer-driven import free the imported
image under the camera that still showed it (a segfault in Blender 4.3, issue 10 item 0).

Nothing is added to the scene for a job that fails or is cancelled, and nothing is changed while a
render or bake runs (the import waits for it). Blender ends the operator on file load or when its
window closes: ``cancel()`` stops the job. In background mode (``blender -b``, the ``bpy`` module)
there is no event loop: ``execute`` runs the same job synchronously and reports like any operator.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import bpy

from .. import runtime
from ..core.client import BackendClient
from ..core.jobs import JobRunner, JobSnapshot, JobState
from ..core.paths import blend_relative, results_root, video_folders
from ..core.payload import build_payload, random_seed
from ..preferences import get_preferences
from . import backend as backend_ops
from .capture import capture_png_bytes, render_part_pass
from .common import tag_redraw, user_folder
from .drags import collect_drags
from .results import ImportProblem, import_result

logger = logging.getLogger(__name__)

TIMER_INTERVAL_S = 0.15
# Jobs during which Blender's data must not change (their threads read it).
_BUSY_JOBS = ("RENDER", "RENDER_PREVIEW", "OBJECT_BAKE", "COMPOSITE")


class GenerateError(Exception):
    """Why a job cannot start, as a sentence for the user."""


@dataclass
class ActiveJob:
    """The job in flight (one at a time) and what the main thread needs to finish it."""

    runner: JobRunner
    scene_uid: int
    seed: int | None
    auto_import: bool
    started: float = field(default_factory=time.monotonic)
    detached: bool = False  # Blender ended the operator (another file, window closed): no scene to change
    progress_shown: bool = False
    last: JobSnapshot | None = None


@dataclass(frozen=True)
class Outcome:
    """How a job ended, for the user: ``level`` (INFO, WARNING, ERROR), ``message``; ``changed`` the scene or not."""

    level: str
    message: str
    changed: bool = False


def active_job() -> ActiveJob | None:
    """The running job, for the panel and the Cancel operator."""
    return runtime.active_job


def prepare_job(context: bpy.types.Context, auto_import: bool = True) -> ActiveJob:
    """Check the scene, capture the camera view, and build the job (not started). GenerateError for the user."""
    scene = context.scene
    settings = scene.puppet_master
    if scene.camera is None or scene.camera.type != "CAMERA":
        raise GenerateError(
            f"Scene {scene.name!r} has no active camera: add a camera and make it the scene camera "
            "(Scene Properties > Camera); Generate works on the camera's view"
        )
    try:
        drags = collect_drags(context)
    except ValueError as error:
        raise GenerateError(str(error)) from None
    try:
        png = capture_png_bytes(context, settings.capture_resolution, settings.capture_engine)
    except (RuntimeError, ValueError, OSError) as error:
        raise GenerateError(f"Could not capture the camera view: {error}") from None
    parts = None
    if settings.send_parts:
        try:
            parts = render_part_pass(context, settings.capture_resolution)
        except (RuntimeError, ValueError, OSError) as error:
            raise GenerateError(
                f"Could not render the part pass (which object each pixel shows): {error}; "
                "switch off Send Parts in the Generate panel to generate without it"
            ) from None

    seed = random_seed() if settings.use_random_seed else settings.seed
    try:
        payload = build_payload(
            png,
            drags,
            steps=settings.steps,
            guidance=settings.guidance,
            seed=seed,
            num_videos=settings.num_videos,
            crop_scale=settings.crop_scale,
            frames=settings.num_frames,
            ease=settings.ease,
            parts=parts,
        )
    except ValueError as error:
        raise GenerateError(f"Cannot send this job: {error}") from None
    prefs = get_preferences(context)
    root = results_root(bpy.data.filepath, prefs.results_folder, lambda: user_folder("results"))
    client = BackendClient(prefs.backend_url, prefs.token, prefs.timeout)
    return ActiveJob(runner=JobRunner(client, payload, root), scene_uid=scene.session_uid, seed=seed,
                     auto_import=auto_import)  # fmt: skip


def _scene_of(job: ActiveJob) -> bpy.types.Scene | None:
    return None if job.detached else runtime.scene_by_uid(job.scene_uid)


def data_locked() -> str:
    """What keeps the add-on from changing Blender's data now ("" when nothing): a render, a bake, a locked UI."""
    for kind in _BUSY_JOBS:
        if bpy.app.is_job_running(kind):
            return kind.replace("_", " ").lower()
    window_manager = bpy.context.window_manager
    if window_manager is not None and getattr(window_manager, "is_interface_locked", False):
        return "render (interface locked)"
    return ""


def finish_job(scene: bpy.types.Scene | None, job: ActiveJob, snapshot: JobSnapshot) -> Outcome:
    """Apply a finished job to its scene on the main thread; the outcome for the user.

    Only a DONE job changes the scene: one history entry per video, then (optionally) the import of
    the first one in the panel's Import As mode.
    """
    elapsed = time.monotonic() - job.started
    if snapshot.state is JobState.CANCELLED:
        detail = f" ({snapshot.message})" if snapshot.message not in ("", "Cancelled") else ""
        outcome = Outcome("WARNING", f"Generation cancelled{detail}; the scene is unchanged")
    elif snapshot.state is not JobState.DONE:
        outcome = Outcome("ERROR", snapshot.error or f"The job ended in state {snapshot.state.value}")
        if not snapshot.job_id:  # it never reached the backend: the Backend panel says why
            backend_ops.status.health, backend_ops.status.error = None, outcome.message
    elif scene is None:
        folder = snapshot.folder
        outcome = Outcome("WARNING", f"The job finished after its scene was closed; its frames are in {folder}")
    else:
        outcome = _add_results(scene, job, snapshot, elapsed)
    if scene is not None:
        verdict = {JobState.DONE: "Done", JobState.CANCELLED: "Cancelled"}.get(snapshot.state, "Failed")
        runtime.set_job_line(scene, f"{verdict}: {outcome.message}", 1.0 if snapshot.state is JobState.DONE else 0.0)
    return outcome


def _add_results(scene: bpy.types.Scene, job: ActiveJob, snapshot: JobSnapshot, elapsed: float) -> Outcome:
    settings = scene.puppet_master
    folders = video_folders(snapshot.folder)
    if not folders:
        return Outcome("ERROR", f"The job finished but no frames arrived in {snapshot.folder}")
    created = time.strftime("%Y-%m-%d %H:%M:%S")
    seed = snapshot.seed if snapshot.seed is not None else job.seed
    first = len(settings.results)
    for number, folder in enumerate(folders, start=1):
        result = settings.results.add()
        result.job_id = snapshot.job_id
        result.directory = blend_relative(folder, bpy.data.filepath)
        result.engine = snapshot.engine
        result.seed = min(int(seed or 0), 2**31 - 1)
        result.num_frames = snapshot.num_frames
        result.variation = number
        result.created = created
        runtime.remember_result(scene, result)
    settings.active_result_index = first
    engine = f"{snapshot.engine} engine"
    if snapshot.engine == "preview":
        engine = "preview engine (a rigid draft, not the Puppet-Master model)"
    message = (
        f"Generated {len(folders)} x {snapshot.num_frames} frames with the {engine}, seed {seed}, "
        f"in {elapsed:.1f} s; saved in {Path(snapshot.folder)}"
    )
    if job.auto_import:
        try:
            message += ". " + import_result(scene, settings.results[first], settings.import_mode)
        except (ImportProblem, OSError) as error:
            return Outcome("WARNING", f"{message}, but importing it failed: {error}", changed=True)
    return Outcome("INFO", message, changed=True)


def _progress(job: ActiveJob, snapshot: JobSnapshot | None, end: bool = False) -> None:
    """The window's progress indicator (UI only; the bpy module has no window to show it)."""
    window_manager = bpy.context.window_manager
    if bpy.app.background or window_manager is None or not window_manager.windows:
        return
    if end:
        if job.progress_shown:
            window_manager.progress_end()
            job.progress_shown = False
        return
    if not job.progress_shown:
        window_manager.progress_begin(0, 100)
        job.progress_shown = True
    if snapshot is not None:
        window_manager.progress_update(int(snapshot.progress * 100))


def poll_active_job() -> Outcome | None:
    """One tick of the running job: mirror its progress; once it ended (and data may change), finish it.

    The job's outcome when it was finished by this call, else None. Cheap by construction (a locked
    snapshot copy and a few assignments) so the UI never stalls; called by Generate's timer events,
    and by tests in background mode where no timers fire.
    """
    job = runtime.active_job
    if job is None:
        return None
    snapshot = job.runner.snapshot()
    scene = _scene_of(job)
    if not snapshot.finished or (snapshot.state is JobState.DONE and scene is not None and data_locked()):
        if snapshot != job.last or snapshot.finished:
            job.last = snapshot
            if scene is not None:
                text = ("Cancelling: " if job.runner.cancel_requested else "") + snapshot.describe()
                if snapshot.finished:
                    text = f"Done; importing once the {data_locked()} has finished"
                runtime.set_job_line(scene, text, snapshot.progress, running=True)
            _progress(job, snapshot)
            tag_redraw()
        return None
    runtime.active_job = None
    _progress(job, None, end=True)
    try:
        outcome = finish_job(scene, job, snapshot)
    except Exception as error:  # the operator must end cleanly whatever happens here
        logger.exception("finishing the job failed")
        outcome = Outcome("ERROR", f"Finishing the job failed: {error}", changed=True)
    tag_redraw()
    return outcome


def start_job(job: ActiveJob) -> None:
    """Run ``job`` in its worker thread; :func:`poll_active_job` follows it."""
    if runtime.active_job is not None:
        raise RuntimeError("a job is running already")
    runtime.active_job = job
    job.runner.start()
    _progress(job, None)


def stop_job(job: ActiveJob) -> None:
    """Blender ended the operator (another file, a closed window): stop the job, change nothing."""
    job.detached = True
    job.runner.cancel()
    _progress(job, None, end=True)
    if runtime.active_job is job:
        runtime.active_job = None


class PUPPET_OT_generate(bpy.types.Operator):
    bl_idname = "puppet.generate"
    bl_label = "Generate"
    bl_description = (
        "Render the camera view, send it with the drags to the backend, and load the video it returns "
        "(runs in the background; the panel shows progress)"
    )
    # UNDO: the result and its import are one undo step. No REGISTER: "Adjust Last Operation" would
    # run a whole generation again.
    bl_options = {"UNDO"}

    auto_import: bpy.props.BoolProperty(
        name="Import Result",
        description="Import the result in the panel's Import As mode when it arrives",
        default=True,
    )

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        if runtime.active_job is not None:
            cls.poll_message_set("A job is running: wait for it or cancel it")
            return False
        return context.scene is not None

    def _prepare(self, context: bpy.types.Context) -> ActiveJob | None:
        try:
            return prepare_job(context, self.auto_import)
        except GenerateError as error:
            self.report({"ERROR"}, str(error))
            return None

    def execute(self, context: bpy.types.Context) -> set[str]:
        """Scripts and background mode: run the whole job here, then report."""
        job = self._prepare(context)
        if job is None:
            return {"CANCELLED"}
        outcome = finish_job(context.scene, job, job.runner.run())
        self.report({outcome.level}, outcome.message)
        return {"FINISHED"} if outcome.changed else {"CANCELLED"}

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        if bpy.app.background or context.window is None:
            return self.execute(context)
        job = self._prepare(context)
        if job is None:
            return {"CANCELLED"}
        start_job(job)
        runtime.set_job_line(context.scene, "Sending the image and drags", running=True)
        self._timer = context.window_manager.event_timer_add(TIMER_INTERVAL_S, window=context.window)
        context.window_manager.modal_handler_add(self)
        tag_redraw(context)
        self.report({"INFO"}, "Generating: the panel shows the progress")
        return {"RUNNING_MODAL"}

    def modal(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        if event.type != "TIMER":
            return {"PASS_THROUGH"}
        job = runtime.active_job
        outcome = poll_active_job()
        if outcome is None and job is not None:
            return {"PASS_THROUGH"}  # other operators' timers come here too
        self._remove_timer(context)
        if outcome is None:  # the job was stopped elsewhere (add-on disabled)
            return {"CANCELLED"}
        self.report({outcome.level}, outcome.message)
        return {"FINISHED"} if outcome.changed else {"CANCELLED"}

    def cancel(self, context: bpy.types.Context) -> None:
        """Blender ends the operator (file load, window closed): stop the job; the scene is not touched."""
        self._remove_timer(context)
        if runtime.active_job is not None:
            stop_job(runtime.active_job)

    def _remove_timer(self, context: bpy.types.Context) -> None:
        timer, self._timer = getattr(self, "_timer", None), None
        if timer is not None:
            context.window_manager.event_timer_remove(timer)


class PUPPET_OT_cancel(bpy.types.Operator):
    bl_idname = "puppet.cancel"
    bl_label = "Cancel"
    bl_description = "Stop the running generation (the backend drops the job; the scene stays as it was)"
    bl_options = {"INTERNAL"}

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        job = runtime.active_job
        if job is None or job.runner.cancel_requested:
            return False
        if not job.runner.snapshot().cancellable:
            cls.poll_message_set("The backend has finished: the result is being downloaded")
            return False
        return True

    def execute(self, context: bpy.types.Context) -> set[str]:
        job = runtime.active_job
        if job is None:
            self.report({"WARNING"}, "No job is running")
            return {"CANCELLED"}
        job.runner.cancel()  # the worker sends the request: the UI does not wait on the network
        scene = _scene_of(job)
        if scene is not None:
            runtime.set_job_line(scene, "Cancelling", job.runner.snapshot().progress, running=True)
        tag_redraw(context)
        self.report({"INFO"}, "Cancelling the generation")
        return {"FINISHED"}


classes = (PUPPET_OT_generate, PUPPET_OT_cancel)


_register_classes, _unregister_classes = bpy.utils.register_classes_factory(classes)


def register() -> None:
    _register_classes()


def unregister() -> None:
    if runtime.active_job is not None:
        stop_job(runtime.active_job)
    _unregister_classes()
