"""Drags from Animation: a rough blocking pass (keys on the parts) becomes drags with explicit timing.

For the selected objects (or pose bones) that have keys at two or more frames in the scene's range,
visible surface points are sampled at the video's first frame (Start Frame), each point is carried
through the animation with its part, and projected through the scene camera at every output frame
(Start Frame, then every Frame Step: the frames a result will be imported on). The points that move
the most, spread over the parts, become drags of exactly one point per frame, which the backend
reads as explicit timing: the video keeps the blocking's timing, not just its start and end.
"""

from __future__ import annotations

from typing import Any

import bpy

from ..properties import MAX_DRAGS
from . import parts as part_tools
from .common import tag_redraw

# Candidate points sampled per part; the drags are picked among them.
CANDIDATES_PER_PART = 32


class DragsProblem(Exception):
    """Why no drags can be made, as a sentence for the user."""


def animated_parts(context: bpy.types.Context) -> list[part_tools.Part]:
    """The selected parts with their own keys at two or more frames within the scene's frame range."""
    scene = context.scene
    parts = part_tools.selected_parts(context)
    if not parts:
        raise DragsProblem("Select the animated objects (or, in Pose Mode, the bones) to make drags from")
    keyed = []
    for part in parts:
        frames = {frame for frame in part_tools.keyed_frames(part) if scene.frame_start <= frame <= scene.frame_end}
        if len(frames) >= 2:
            keyed.append(part)
    if not keyed:
        names = ", ".join(part.name for part in parts[:4]) + (" ..." if len(parts) > 4 else "")
        raise DragsProblem(
            f"None of the selected parts ({names}) has location or rotation keys at two or more frames between "
            f"{scene.frame_start} and {scene.frame_end}: key a blocking pass first (e.g. a start and an end pose)"
        )
    return keyed


def animation_paths(
    context: bpy.types.Context, parts: list[part_tools.Part], frames: list[int], camera_matrix: Any, params: Any
) -> tuple[Any, list[int]]:
    """Frame-coordinate paths ``(N, F, 2)`` of points sampled on the parts at ``frames[0]``, carried through
    the animation; and the part index of each path. Points that pass behind the camera are left out."""
    import numpy as np

    from ..core.camera import project_to_camera_frame

    scene = context.scene
    current = scene.frame_current
    try:
        scene.frame_set(frames[0])
        sampled = part_tools.sample_visible_points(context, parts, camera_matrix, params, CANDIDATES_PER_PART)
        local, owners = [], []
        for index, (part, points) in enumerate(zip(parts, sampled, strict=True)):
            inverse = np.asarray(part.world_matrix().inverted_safe(), dtype=np.float64)
            for world in points.world_points:
                local.append((inverse @ np.append(world, 1.0))[:3])
                owners.append(index)
        if not local:
            return np.zeros((0, len(frames), 2)), []
        local_points = np.asarray(local)  # [N, 3] in each part's own space
        owners_array = np.asarray(owners)
        paths = np.zeros((len(local_points), len(frames), 2))
        in_front = np.ones(len(local_points), dtype=bool)
        for column, frame in enumerate(frames):
            scene.frame_set(frame)
            matrices = np.asarray([np.asarray(part.world_matrix(), dtype=np.float64) for part in parts])[owners_array]
            world = np.einsum("nij,nj->ni", matrices[:, :3, :3], local_points) + matrices[:, :3, 3]  # [N, 3]
            paths[:, column], depth = project_to_camera_frame(world, camera_matrix, params)
            if params.projection == "PERSP":
                in_front &= depth > 0
    finally:
        scene.frame_set(current)
    keep = np.flatnonzero(in_front)
    return paths[keep], [owners[i] for i in keep]


class PUPPET_OT_drags_from_animation(bpy.types.Operator):
    bl_idname = "puppet.drags_from_animation"
    bl_label = "Drags from Animation"
    bl_description = (
        "Turn the blocking of the selected animated objects (or pose bones) into drags with explicit timing: "
        "the points that move the most, one position per video frame from Start Frame every Frame Step"
    )
    bl_options = {"REGISTER", "UNDO"}

    max_drags: bpy.props.IntProperty(
        name="Drags", description="Most drags to add (the model takes 5 in all)", default=MAX_DRAGS, min=1,
        max=MAX_DRAGS,
    )  # fmt: skip
    replace: bpy.props.BoolProperty(name="Replace Drags", description="Remove the existing drags first", default=False)

    def execute(self, context: bpy.types.Context) -> set[str]:
        from ..core.motion_fit import numpy_missing

        missing = numpy_missing()
        if missing:
            self.report({"ERROR"}, missing.replace("Bake Motion", "Drags from Animation"))
            return {"CANCELLED"}
        try:
            message = self._make_drags(context)
        except DragsProblem as error:
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        tag_redraw(context)
        self.report({"INFO"}, message)
        return {"FINISHED"}

    def _make_drags(self, context: bpy.types.Context) -> str:
        from ..core.camera import scene_camera
        from ..core.point_picking import pick_drag_points
        from .drags import add_drag

        scene = context.scene
        settings = scene.puppet_master
        parts = animated_parts(context)
        try:
            camera_matrix, params = scene_camera(scene)
        except ValueError as error:
            raise DragsProblem(str(error)) from None
        start, step = settings.import_start_frame, settings.import_frame_step
        frames = [start + index * step for index in range(settings.num_frames)]
        paths, owners = animation_paths(context, parts, frames, camera_matrix, params)
        free = MAX_DRAGS if self.replace else MAX_DRAGS - len(settings.drags)
        if free <= 0:
            raise DragsProblem(f"There are already {MAX_DRAGS} drags, the most the model takes: remove some first")
        aspect = (params.resolution_x * params.pixel_aspect_x) / (params.resolution_y * params.pixel_aspect_y)
        chosen = pick_drag_points(paths, owners, min(self.max_drags, free), aspect)
        if not chosen:
            raise DragsProblem(
                f"The selected parts barely move in the camera view between frames {frames[0]} and {frames[-1]} "
                "(or leave it): check Start Frame, Frame Step and Frames against the blocking's keys"
            )
        if self.replace:
            settings.drags.clear()
        for index in chosen:
            add_drag(settings, [(float(x), float(y)) for x, y in paths[index]])
        moved = sorted({parts[owners[index]].name for index in chosen})
        return (
            f"Added {len(chosen)} drag(s) with explicit timing ({len(frames)} points each, frames {frames[0]}-"
            f"{frames[-1]}{f' every {step}' if step > 1 else ''}) from {', '.join(moved)}"
        )


classes = (PUPPET_OT_drags_from_animation,)


register, unregister = bpy.utils.register_classes_factory(classes)
