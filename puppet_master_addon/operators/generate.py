"""Generate: capture the camera view, send it with the drags to the backend, bring the video back.

On the main thread the operator checks the scene, captures and encodes the image and builds the
request; a :class:`~..core.jobs.JobRunner` thread does the network and file work, and a
``bpy.app.timers`` callback (:func:`poll_active_job`) copies its progress into the scene and, when
the job ends, adds the result to the history and imports it. Nothing touches ``bpy`` from the
worker thread, and nothing is added to the scene for a job that fails or is cancelled.

In background mode (``blender -b``, the ``bpy`` module) there is no event loop for timers, so the
operator runs the same job synchronously and reports like any other operator.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import bpy
from bpy.app.handlers import persistent

from ..core.client import BackendClient
from ..core.jobs import JobRunner, JobSnapshot, JobState
from ..core.paths import blend_relative, results_root, video_folders
from ..core.payload import build_payload, random_seed
from ..preferences import get_preferences
from .capture import image_to_png_bytes, render_camera_view
from .common import notify, tag_redraw, user_folder
from .drags import collect_drags
from .results import ImportProblem, import_result

logger = logging.getLogger(__name__)

TIMER_INTERVAL_S = 0.15


class GenerateError(Exception):
    """Why a job cannot start, as a sentence for the user."""


@dataclass
class ActiveJob:
    """The job in flight (one at a time) and what the main thread needs to finish it."""

    runner: JobRunner
    scene_name: str
    scene_pointer: int
    seed: int | None
    auto_import: bool
    started: float = field(default_factory=time.monotonic)
    detached: bool = False  # another file was loaded: the scene is gone
    progress_shown: bool = False
    last: JobSnapshot | None = None


_active: ActiveJob | None = None


def active_job() -> ActiveJob | None:
    """The running job, for the panel and the Cancel operator."""
    return _active


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
        image = render_camera_view(context, settings.capture_resolution, settings.capture_engine)
    except (RuntimeError, ValueError) as error:
        raise GenerateError(f"Could not capture the camera view: {error}") from None
    settings.capture_image = image
    png = image_to_png_bytes(image)

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
        )
    except ValueError as error:
        raise GenerateError(f"Cannot send this job: {error}") from None
    prefs = get_preferences(context)
    root = results_root(bpy.data.filepath, prefs.results_folder, lambda: user_folder("results"))
    client = BackendClient(prefs.backend_url, prefs.token, prefs.timeout)
    return ActiveJob(
        runner=JobRunner(client, payload, root),
        scene_name=scene.name,
        scene_pointer=scene.as_pointer(),
        seed=seed,
        auto_import=auto_import,
    )


def _scene_of(job: ActiveJob) -> bpy.types.Scene | None:
    if job.detached:
        return None
    scene = bpy.data.scenes.get(job.scene_name)
    return scene if scene is not None and scene.as_pointer() == job.scene_pointer else None


def finish_job(scene: bpy.types.Scene | None, job: ActiveJob, snapshot: JobSnapshot) -> tuple[str, str]:
    """Apply a finished job to its scene on the main thread; ``(level, message)`` for the user.

    Only a DONE job changes the scene: one history entry per video, then (optionally) the import of
    the first one in the panel's Import As mode.
    """
    elapsed = time.monotonic() - job.started
    if snapshot.state is JobState.CANCELLED:
        detail = f" ({snapshot.message})" if snapshot.message not in ("", "Cancelled") else ""
        level, message = "WARNING", f"Generation cancelled{detail}"
    elif snapshot.state is not JobState.DONE:
        level, message = "ERROR", snapshot.error or f"The job ended in state {snapshot.state.value}"
    elif scene is None:
        level, message = "WARNING", f"The job finished after its scene was closed; the frames are in {snapshot.folder}"
    else:
        level, message = _add_results(scene, job, snapshot, elapsed)
    if scene is not None:
        settings = scene.puppet_master
        outcome = {JobState.DONE: "Done", JobState.CANCELLED: "Cancelled"}.get(snapshot.state, "Failed")
        settings.job_status = f"{outcome}: {message}"
        settings.job_progress = 1.0 if snapshot.state is JobState.DONE else 0.0
    return level, message


def _add_results(scene: bpy.types.Scene, job: ActiveJob, snapshot: JobSnapshot, elapsed: float) -> tuple[str, str]:
    settings = scene.puppet_master
    folders = video_folders(snapshot.folder)
    if not folders:
        return "ERROR", f"The job finished but no frames arrived in {snapshot.folder}"
    created = time.strftime("%Y-%m-%d %H:%M:%S")
    seed = snapshot.seed if snapshot.seed is not None else job.seed
    first = len(settings.results)
    for folder in folders:
        result = settings.results.add()
        result.job_id = snapshot.job_id
        result.directory = blend_relative(folder, bpy.data.filepath)
        result.engine = snapshot.engine
        result.seed = min(int(seed or 0), 2**31 - 1)
        result.num_frames = snapshot.num_frames
        result.created = created
    settings.active_result_index = first
    engine = f"{snapshot.engine} engine"
    if snapshot.engine == "preview":
        engine = "preview engine (image warping, not the Puppet-Master model)"
    message = (
        f"Generated {len(folders)} x {snapshot.num_frames} frames with the {engine}, seed {seed}, "
        f"in {elapsed:.1f} s; saved in {Path(snapshot.folder)}"
    )
    if job.auto_import:
        try:
            message += ". " + import_result(
                scene,
                settings.results[first],
                settings.import_mode,
                opacity=settings.import_opacity,
                start_frame=settings.import_start_frame,
                frame_step=settings.import_frame_step,
            )
        except (ImportProblem, OSError) as error:
            return "WARNING", f"{message}, but importing it failed: {error}"
    return "INFO", message


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


def poll_active_job() -> float | None:
    """Timer callback: mirror the job's progress into its scene; finish it when it ends.

    Cheap by construction (a locked snapshot copy and a few property writes) so the UI never stalls.
    """
    global _active
    job = _active
    if job is None:
        return None
    snapshot = job.runner.snapshot()
    scene = _scene_of(job)
    if not snapshot.finished:
        if snapshot != job.last:
            job.last = snapshot
            if scene is not None:
                settings = scene.puppet_master
                settings.job_id = snapshot.job_id
                settings.job_status = ("Cancelling: " if job.runner.cancel_requested else "") + snapshot.describe()
                settings.job_progress = snapshot.progress
            _progress(job, snapshot)
            tag_redraw()
        return TIMER_INTERVAL_S
    _active = None
    _progress(job, None, end=True)
    try:
        level, message = finish_job(scene, job, snapshot)
    except Exception as error:  # a timer must not die with the job half-finished in the UI
        logger.exception("finishing the job failed")
        level, message = "ERROR", f"Finishing the job failed: {error}"
    notify(level, message)
    tag_redraw()
    return None


def start_job(job: ActiveJob) -> None:
    """Run ``job`` in its worker thread, followed by the :func:`poll_active_job` timer."""
    global _active
    if _active is not None:
        raise RuntimeError("a job is running already")
    _active = job
    job.runner.start()
    _progress(job, None)
    bpy.app.timers.register(poll_active_job, first_interval=TIMER_INTERVAL_S, persistent=True)


class PUPPET_OT_generate(bpy.types.Operator):
    bl_idname = "puppet.generate"
    bl_label = "Generate"
    bl_description = (
        "Render the camera view, send it with the drags to the backend, and load the video it returns "
        "(runs in the background; the panel shows progress)"
    )
    bl_options = {"REGISTER"}

    auto_import: bpy.props.BoolProperty(
        name="Import Result",
        description="Import the result in the panel's Import As mode when it arrives",
        default=True,
    )

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        if _active is not None:
            cls.poll_message_set("A job is running: wait for it or cancel it")
            return False
        return context.scene is not None

    def execute(self, context: bpy.types.Context) -> set[str]:
        try:
            job = prepare_job(context, self.auto_import)
        except GenerateError as error:
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        settings = context.scene.puppet_master
        settings.job_id, settings.job_status, settings.job_progress = "", "Sending", 0.0

        if bpy.app.background:  # no event loop: run the job here, then report
            snapshot = job.runner.run()
            level, message = finish_job(_scene_of(job), job, snapshot)
            self.report({level}, message)
            return {"FINISHED"} if level == "INFO" else {"CANCELLED"}

        start_job(job)
        tag_redraw(context)
        self.report({"INFO"}, "Generating: the panel shows the progress")
        return {"FINISHED"}


class PUPPET_OT_cancel(bpy.types.Operator):
    bl_idname = "puppet.cancel"
    bl_label = "Cancel"
    bl_description = "Stop the running generation (the backend drops the job)"
    bl_options = {"REGISTER", "INTERNAL"}

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return _active is not None and not _active.runner.cancel_requested

    def execute(self, context: bpy.types.Context) -> set[str]:
        job = _active
        if job is None:
            self.report({"WARNING"}, "No job is running")
            return {"CANCELLED"}
        job.runner.cancel()  # the worker sends the request: the UI does not wait on the network
        scene = _scene_of(job)
        if scene is not None:
            scene.puppet_master.job_status = "Cancelling"
        tag_redraw(context)
        self.report({"INFO"}, "Cancelling the generation")
        return {"FINISHED"}


@persistent
def _on_load_pre(*_args: object) -> None:
    """Another file replaces this one: the running job's scene goes away, so stop the job."""
    if _active is not None:
        _active.detached = True
        _active.runner.cancel()


classes = (PUPPET_OT_generate, PUPPET_OT_cancel)


_register_classes, _unregister_classes = bpy.utils.register_classes_factory(classes)


def register() -> None:
    _register_classes()
    bpy.app.handlers.load_pre.append(_on_load_pre)


def unregister() -> None:
    global _active
    if _on_load_pre in bpy.app.handlers.load_pre:
        bpy.app.handlers.load_pre.remove(_on_load_pre)
    if bpy.app.timers.is_registered(poll_active_job):
        bpy.app.timers.unregister(poll_active_job)
    if _active is not None:
        _active.runner.cancel()
        _progress(_active, None, end=True)
        _active = None
    _unregister_classes()
