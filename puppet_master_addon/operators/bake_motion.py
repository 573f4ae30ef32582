"""Bake Motion: keyframes on the artist's own objects (or pose bones) that reproduce a result's motion.

1. On the main thread: visible surface points of each selected part are sampled at the result's
   first frame (the scene at Start Frame), by ray casts from the scene camera (``parts.py``).
2. In a worker thread (:class:`~..core.bake_task.BakeTask`): the backend tracks the points through
   the result's frames (``POST /v1/jobs/{id}/tracks``), and each part's rigid motion is fitted to the
   confident tracks (``core/motion_fit.py``): hinge, slide, rotation about the pivot, or free.
3. Back on the main thread: location and rotation keys on the frames the result is imported on
   (Start Frame, then every Frame Step), as this operator's one undo step; the report gives each
   part's reprojection error, and the parts that could not be fitted with the reason.

Like Generate, Bake Motion is a modal operator fed by a window-manager timer, so the UI keeps running
while the backend tracks; Esc cancels. In background mode ``execute`` runs it all synchronously.
numpy is checked first: a Blender without it gets a sentence, not a failed registration.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import bpy

from ..preferences import get_preferences
from . import parts as part_tools
from .common import tag_redraw

logger = logging.getLogger(__name__)

TIMER_INTERVAL_S = 0.1


class BakeProblem(Exception):
    """Why Bake Motion cannot start, as a sentence for the user."""


@dataclass
class BakePlan:
    """What the main thread measured before the task started, and needs again to write the keys."""

    scene_uid: int
    parts: list[part_tools.Part]
    reference: dict[str, Any]  # part name -> world Matrix at the result's first frame
    start_frame: int
    frame_step: int
    job_id: str


def _active_result(settings: Any) -> Any:
    index = settings.active_result_index
    if not 0 <= index < len(settings.results):
        raise BakeProblem("Select a result in the Results list first: Bake Motion follows its video")
    result = settings.results[index]
    if not result.job_id:
        raise BakeProblem("The selected result has no backend job id, so the backend cannot track its frames")
    return result


def prepare_bake(context: bpy.types.Context) -> tuple[BakePlan, Any]:
    """Check the scene, sample the parts, and build the task (not started). BakeProblem for the user."""
    from ..core.motion_fit import MIN_POINTS, numpy_missing

    missing = numpy_missing()
    if missing:
        raise BakeProblem(missing)
    from ..core.bake_task import BakeTask, PartSamples
    from ..core.camera import scene_camera
    from ..core.client import BackendClient

    scene = context.scene
    settings = scene.puppet_master
    result = _active_result(settings)
    try:
        camera_matrix, params = scene_camera(scene)
    except ValueError as error:
        raise BakeProblem(str(error)) from None
    parts = part_tools.selected_parts(context)
    if not parts:
        raise BakeProblem(
            "Select the objects whose motion to bake (or, in Pose Mode, the bones); the result's video is followed "
            "on them"
        )
    constraint, axis_name = settings.bake_constraint, settings.bake_axis
    needed = MIN_POINTS[constraint]
    current = scene.frame_current
    scene.frame_set(settings.import_start_frame)  # the scene as the video's first frame shows it
    try:
        sampled = part_tools.sample_visible_points(context, parts, camera_matrix, params, settings.bake_points)
        samples, reference, unseen = [], {}, []
        for part, points in zip(parts, sampled, strict=True):
            if len(points.frame_points) < needed:
                unseen.append(f"{part.name} ({len(points.frame_points)} visible point(s))")
                continue
            axis = tuple(part.axis(axis_name)) if constraint in ("HINGE", "SLIDE") else None
            samples.append(
                PartSamples(part.name, points.frame_points, points.world_points, tuple(part.pivot()), axis, constraint)
            )
            reference[part.name] = part.world_matrix()
    finally:
        scene.frame_set(current)
    if unseen:
        raise BakeProblem(
            f"The camera sees too little of {', '.join(unseen)} at frame {settings.import_start_frame} "
            f"(a {constraint.lower()} fit needs {needed} points): frame the parts in the camera view, or deselect them"
        )
    prefs = get_preferences(context)
    task = BakeTask(
        BackendClient(prefs.backend_url, prefs.token, prefs.timeout),
        result.job_id,
        result.variation - 1,
        samples,
        camera_matrix,
        params,
        expected_frames=result.num_frames,
        smoothing=settings.bake_smoothing,
    )
    kept = [part for part in parts if part.name in reference]
    plan = BakePlan(scene.session_uid, kept, reference, settings.import_start_frame, settings.import_frame_step,
                    result.job_id)  # fmt: skip
    return plan, task


def apply_bake(context: bpy.types.Context, plan: BakePlan, outcome: Any) -> tuple[str, str, bool]:
    """Write the keys of the fitted parts; ``(level, message, changed)`` for the report."""
    from mathutils import Matrix

    if outcome.error:
        return "ERROR", f"Bake Motion failed: {outcome.error}", False
    scene = context.scene
    fitted = sorted((part for part in plan.parts if part.name in outcome.motions), key=lambda part: part.depth())
    frames = [plan.start_frame + index * plan.frame_step for index in range(outcome.num_frames)]
    if fitted:
        deltas = {part.name: outcome.motions[part.name].world_deltas() for part in fitted}
        previous: dict[str, Any] = {}
        current = scene.frame_current
        for index, frame in enumerate(frames):
            scene.frame_set(frame)
            for part in fitted:  # parents first: a child is placed against its parent's new pose
                matrix = Matrix(deltas[part.name][index].tolist()) @ plan.reference[part.name]
                previous[part.name] = part_tools.set_world_matrix(part, matrix, previous.get(part.name))
                part_tools.insert_keys(part, frame)
                context.view_layer.update()
        scene.frame_set(current)
    return _report(plan, outcome, fitted, frames)


def _report(plan: BakePlan, outcome: Any, fitted: list, frames: list[int]) -> tuple[str, str, bool]:
    notes = []
    for part in fitted:
        motion = outcome.motions[part.name]
        text = f"{part.name} {motion.error_px:.2f} px"
        if motion.filled_frames:
            text += f" ({len(motion.filled_frames)} frame(s) interpolated: too few points tracked there)"
        if motion.outlier_fraction > 0.2:
            text += f" ({motion.outlier_fraction:.0%} of the tracks disagree: check the result)"
        notes.append(text)
    refused = list(outcome.refused.values())
    if not fitted:
        return "ERROR", "Nothing was baked. " + " ".join(refused), False
    message = (
        f"Baked {len(fitted)} part(s) from result {plan.job_id[:8]} on frames {frames[0]}-{frames[-1]}"
        f"{f' every {plan.frame_step}' if plan.frame_step > 1 else ''}; reprojection error (RMS): {', '.join(notes)}"
        f" (tracking {outcome.track_s:.2f} s, fitting {outcome.fit_s:.2f} s)"
    )
    if refused:
        return "WARNING", message + ". Not baked: " + " ".join(refused), True
    level = "WARNING" if any(outcome.motions[part.name].filled_frames for part in fitted) else "INFO"
    return level, message, True


class PUPPET_OT_bake_motion(bpy.types.Operator):
    bl_idname = "puppet.bake_motion"
    bl_label = "Bake Motion"
    bl_description = (
        "Key the selected objects (or pose bones) so they move as in the selected result's video: the backend "
        "tracks points on them, their motion is fitted with the Bake constraint, keys go on the imported frames"
    )
    # UNDO: all the keys are one undo step. No REGISTER: redoing would track again over the network.
    bl_options = {"UNDO"}

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        scene = context.scene
        if scene is None or len(scene.puppet_master.results) == 0:
            cls.poll_message_set("Generate a result first: Bake Motion follows a result's video")
            return False
        return True

    def _prepare(self, context: bpy.types.Context) -> bool:
        try:
            self._plan, self._task = prepare_bake(context)
        except BakeProblem as error:
            self.report({"ERROR"}, str(error))
            return False
        return True

    def _finish(self, context: bpy.types.Context, outcome: Any) -> set[str]:
        try:
            level, message, changed = apply_bake(context, self._plan, outcome)
        except Exception as error:  # the operator must end cleanly whatever happens here
            logger.exception("writing the baked keys failed")
            level, message, changed = "ERROR", f"Writing the keys failed: {error}", True
        tag_redraw(context)
        self.report({level}, message)
        return {"FINISHED"} if changed else {"CANCELLED"}

    def execute(self, context: bpy.types.Context) -> set[str]:
        """Scripts and background mode: track and fit here, then write the keys."""
        if not self._prepare(context):
            return {"CANCELLED"}
        return self._finish(context, self._task.run())

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        if bpy.app.background or context.window is None:
            return self.execute(context)
        if not self._prepare(context):
            return {"CANCELLED"}
        self._task.start()
        self._timer = context.window_manager.event_timer_add(TIMER_INTERVAL_S, window=context.window)
        context.window_manager.modal_handler_add(self)
        context.workspace.status_text_set("Bake Motion: the backend is tracking the parts (Esc cancels)")
        return {"RUNNING_MODAL"}

    def modal(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        if event.type == "ESC" and event.value == "PRESS":
            self.cancel(context)
            self.report({"WARNING"}, "Bake Motion cancelled; no keys were written")
            return {"CANCELLED"}
        if event.type != "TIMER":
            return {"PASS_THROUGH"}
        outcome = self._task.outcome()
        if outcome is None:
            return {"PASS_THROUGH"}
        self._cleanup(context)
        if context.scene.session_uid != self._plan.scene_uid:
            self.report({"WARNING"}, "Bake Motion finished after the scene changed; no keys were written")
            return {"CANCELLED"}
        return self._finish(context, outcome)

    def cancel(self, context: bpy.types.Context) -> None:
        """Blender ends the operator (file load, window closed) or Esc: stop the task, write nothing."""
        self._task.cancel()
        self._cleanup(context)

    def _cleanup(self, context: bpy.types.Context) -> None:
        timer, self._timer = getattr(self, "_timer", None), None
        if timer is not None:
            context.window_manager.event_timer_remove(timer)
        if context.workspace is not None:
            context.workspace.status_text_set(None)


classes = (PUPPET_OT_bake_motion,)


register, unregister = bpy.utils.register_classes_factory(classes)
