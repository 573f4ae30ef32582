"""Drags: draw them over the camera view, make them from annotations or curves, anchor them to meshes.

Drags are stored in ``Scene.puppet_master.drags`` as paths in normalised camera-frame coordinates
(x right, y down, 0..1). :func:`collect_drags` turns the enabled ones into what the backend's API
takes. The overlay that shows them lives in ``overlay.py`` and is registered from here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import bpy
from bpy.props import BoolProperty, FloatVectorProperty, IntProperty
from mathutils import Vector

from .. import overlay, runtime
from ..core.camera import (
    FrameRect,
    camera_frame_ray,
    clamp_to_frame,
    frame_to_region,
    project_points,
    region_to_frame,
    scene_camera,
)
from ..core.drag_paths import (
    anchor_world_point,
    bezier_path,
    check_api_drags,
    drag_frame_path,
    nearest_path,
    normalise_path,
)
from ..core.overlay_geometry import drag_geometry, path_to_region
from ..core.regions import Rect, navigation_gizmo_rect, pointer_over_view
from ..properties import DRAG_COLORS, MAX_DRAGS
from .common import tag_redraw

MIN_STROKE_SPACING = 3.0  # region pixels between recorded points of a hand-drawn drag
REMOVE_DISTANCE = 20.0  # region pixels within which right-click removes a drag


# --- drags in the scene ---------------------------------------------------------------------------


def _unused_color(settings: Any) -> tuple[float, float, float]:
    """The first palette colour no drag uses, so numbers and colours stay told apart."""
    used = [tuple(drag.color) for drag in settings.drags]
    for color in DRAG_COLORS:
        if not any(all(abs(a - b) <= 1e-3 for a, b in zip(color, other, strict=True)) for other in used):
            return color
    return DRAG_COLORS[len(settings.drags) % len(DRAG_COLORS)]


def add_drag(settings: Any, path: Sequence[Sequence[float]]) -> Any:
    """Append a drag with ``path`` (frame points) to ``Scene.puppet_master``; it becomes the active drag.

    ValueError when the scene already holds ``MAX_DRAGS`` drags.
    """
    if len(settings.drags) >= MAX_DRAGS:
        raise ValueError(f"There are already {MAX_DRAGS} drags, the most the model takes: remove one first")
    drag = settings.drags.add()
    drag.color = _unused_color(settings)
    for x, y in path:
        drag.points.add().co = (x, y)
    settings.active_drag_index = len(settings.drags) - 1
    return drag


def remove_drag(settings: Any, index: int) -> None:
    """Remove drag ``index`` and keep the active index on the list."""
    settings.drags.remove(index)
    settings.active_drag_index = min(settings.active_drag_index, max(len(settings.drags) - 1, 0))


def collect_drags(context: bpy.types.Context) -> list[list[tuple[float, float]]]:
    """The enabled drags as the backend's API takes them: one list of ``(x, y)`` frame points per drag.

    Anchored drags start where the camera sees their anchor point now, the whole path moved by the
    same offset (so a drag drawn on a door handle follows the door and the camera). ValueError with
    a sentence for the user when there are no enabled drags, more than ``MAX_DRAGS``, a drag with
    fewer than 2 points, or a point outside the camera frame.
    """
    scene = context.scene
    enabled = [(number, drag) for number, drag in enumerate(scene.puppet_master.drags, start=1) if drag.enabled]
    camera_matrix, params = None, None
    if any(drag.use_anchor and drag.anchor_object is not None for _, drag in enabled):
        context.evaluated_depsgraph_get()  # brings the objects' world matrices up to date after edits
        camera_matrix, params = scene_camera(scene)
    paths = []
    for number, drag in enabled:
        try:
            paths.append(drag_frame_path(drag, camera_matrix, params))
        except ValueError as error:
            raise ValueError(f"Drag {number} cannot follow its anchor: {error}") from error
    return check_api_drags(paths, MAX_DRAGS, numbers=[number for number, _ in enabled])


# --- simple editing operators ---------------------------------------------------------------------


class PUPPET_OT_add_drag(bpy.types.Operator):
    bl_idname = "puppet.add_drag"
    bl_label = "Add Drag"
    bl_description = "Add a straight drag in camera-frame coordinates (x right, y down, 0 to 1)"
    bl_options = {"REGISTER", "UNDO"}

    start: FloatVectorProperty(
        name="Start", description="Where the drag starts (x right, y down, 0 to 1)", size=2, min=0.0, max=1.0,
        default=(0.4, 0.5),
    )  # fmt: skip
    end: FloatVectorProperty(
        name="End", description="Where the drag ends (x right, y down, 0 to 1)", size=2, min=0.0, max=1.0,
        default=(0.6, 0.5),
    )  # fmt: skip

    def execute(self, context: bpy.types.Context) -> set[str]:
        try:
            add_drag(context.scene.puppet_master, [tuple(self.start), tuple(self.end)])
        except ValueError as error:
            self.report({"WARNING"}, str(error))
            return {"CANCELLED"}
        tag_redraw(context)
        return {"FINISHED"}


class PUPPET_OT_remove_drag(bpy.types.Operator):
    bl_idname = "puppet.remove_drag"
    bl_label = "Remove Drag"
    bl_description = "Remove a drag (the active one by default)"
    bl_options = {"REGISTER", "UNDO"}

    index: IntProperty(
        name="Index", description="Drag to remove, from 0; -1 removes the active drag", default=-1, min=-1, max=999
    )

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return len(context.scene.puppet_master.drags) > 0

    def execute(self, context: bpy.types.Context) -> set[str]:
        settings = context.scene.puppet_master
        index = settings.active_drag_index if self.index < 0 else self.index
        if not 0 <= index < len(settings.drags):
            self.report({"ERROR"}, f"There is no drag {index}: the scene has {len(settings.drags)} drag(s)")
            return {"CANCELLED"}
        remove_drag(settings, index)
        tag_redraw(context)
        return {"FINISHED"}


class PUPPET_OT_clear_drags(bpy.types.Operator):
    bl_idname = "puppet.clear_drags"
    bl_label = "Clear Drags"
    bl_description = "Remove all drags"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return len(context.scene.puppet_master.drags) > 0

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        return context.window_manager.invoke_confirm(self, event)

    def execute(self, context: bpy.types.Context) -> set[str]:
        settings = context.scene.puppet_master
        settings.drags.clear()
        settings.active_drag_index = 0
        tag_redraw(context)
        return {"FINISHED"}


# --- drags from 3-D paths: annotations and curves -------------------------------------------------


def scene_annotation(scene: bpy.types.Scene) -> Any:
    """The scene's annotation data: ``Scene.annotation`` (Blender 5) or ``Scene.grease_pencil`` (4.x)."""
    for name in ("annotation", "grease_pencil"):
        if hasattr(scene, name):
            return getattr(scene, name)
    return None


def _active_annotation_layer(annotation: Any) -> Any:
    layers = annotation.layers
    if hasattr(layers, "active"):  # Blender 4.x
        return layers.active
    index = layers.active_index  # Blender 5: the collection has only the index
    return layers[index] if 0 <= index < len(layers) else None


def _annotation_frame_at(layer: Any, frame_number: int) -> Any:
    """The layer's drawing shown at ``frame_number``: the last keyframe at or before it (else the first)."""
    frames = sorted(layer.frames, key=lambda frame: frame.frame_number)
    shown = [frame for frame in frames if frame.frame_number <= frame_number]
    return shown[-1] if shown else (frames[0] if frames else None)


def annotation_strokes(scene: bpy.types.Scene) -> list[list[tuple[float, float, float]]]:
    """World-space points of each stroke of the active annotation layer at the current frame.

    ValueError saying what to draw when there is nothing to convert. Strokes drawn in 2-D screen
    space (Blender 4.x 2D annotations) have no 3-D position and are left out.
    """
    annotation = scene_annotation(scene)
    if annotation is None or len(annotation.layers) == 0:
        raise ValueError("The scene has no annotations: draw strokes with the Annotate tool (D + drag) first")
    layer = _active_annotation_layer(annotation)
    if layer is None:
        raise ValueError("No annotation layer is active: pick one in the Annotations panel")
    frame = _annotation_frame_at(layer, scene.frame_current)
    strokes = []
    for stroke in frame.strokes if frame is not None else ():
        if getattr(stroke, "display_mode", "3DSPACE") != "3DSPACE":
            continue
        points = [tuple(point.co) for point in stroke.points]
        if len(points) >= 2:
            strokes.append(points)
    if not strokes:
        raise ValueError(
            f"Annotation layer {layer.info!r} has no 3-D strokes at frame {scene.frame_current}: "
            "draw some in the 3D viewport with the Annotate tool"
        )
    return strokes


def curve_object_paths(obj: bpy.types.Object, depsgraph: bpy.types.Depsgraph) -> list[list[tuple[float, float, float]]]:
    """World-space points of each spline of an evaluated curve object.

    Bezier splines are sampled at their resolution; poly splines use their points; NURBS splines
    use their control points (an approximation). New-style Curves objects give one path per curve.
    """
    evaluated = obj.evaluated_get(depsgraph)
    local_paths: list[Sequence[Sequence[float]]] = []
    if obj.type == "CURVE":
        for spline in evaluated.data.splines:
            if spline.type == "BEZIER":
                knots = spline.bezier_points
                local_paths.append(
                    bezier_path(
                        [tuple(p.co) for p in knots],
                        [tuple(p.handle_left) for p in knots],
                        [tuple(p.handle_right) for p in knots],
                        spline.resolution_u,
                        spline.use_cyclic_u,
                    )
                )
            else:
                points = [tuple(p.co)[:3] for p in spline.points]  # NURBS and poly points are (x, y, z, w)
                if spline.use_cyclic_u and len(points) > 2:
                    points.append(points[0])
                local_paths.append(points)
    elif obj.type == "CURVES":
        for curve in evaluated.data.curves:
            local_paths.append([tuple(p.position) for p in curve.points])
    matrix = evaluated.matrix_world  # applied in double precision, as the projection is
    return [[anchor_world_point(matrix, point) for point in path] for path in local_paths if len(path) >= 2]


class _DragsFromPathsMixin:
    """Shared by the annotation and curve converters: project 3-D paths through the camera into drags."""

    replace: BoolProperty(name="Replace Drags", description="Remove the existing drags first", default=False)

    def add_world_paths(
        self, context: bpy.types.Context, world_paths: Sequence[Sequence[Sequence[float]]], source: str
    ) -> set[str]:
        settings = context.scene.puppet_master
        try:
            camera_matrix, params = scene_camera(context.scene)
        except ValueError as error:
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        paths, behind, too_short, clipped = [], 0, 0, 0
        for points in world_paths:
            projected = project_points(points, camera_matrix, params)
            if params.projection == "PERSP" and not all(depth > 0 for _, _, depth in projected):
                behind += 1
                continue
            path = normalise_path((x, y) for x, y, _ in projected)
            if path is None:
                too_short += 1
                continue
            inside = [clamp_to_frame(x, y) for x, y in path]
            clipped += inside != path
            paths.append(inside)
        if self.replace and paths:
            settings.drags.clear()
        free = max(MAX_DRAGS - len(settings.drags), 0)
        for path in paths[:free]:
            add_drag(settings, path)
        problems = []
        if behind:
            problems.append(f"{behind} behind the camera")
        if too_short:
            problems.append(f"{too_short} without length in the camera view")
        if len(paths) > free:
            problems.append(f"{len(paths) - free} beyond the {MAX_DRAGS}-drag limit")
        if clipped:
            problems.append(f"{clipped} clipped to the camera frame")
        added = min(len(paths), free)
        message = f"Added {added} drag(s) from {source}" + (f" ({'; '.join(problems)})" if problems else "")
        tag_redraw(context)
        if added == 0:
            self.report({"WARNING"}, message)
            return {"CANCELLED"}
        self.report({"WARNING"} if problems else {"INFO"}, message)
        return {"FINISHED"}


class PUPPET_OT_drags_from_annotation(_DragsFromPathsMixin, bpy.types.Operator):
    bl_idname = "puppet.drags_from_annotation"
    bl_label = "Drags from Annotation"
    bl_description = (
        "Turn each stroke of the active annotation layer into a drag, as the scene camera sees it "
        "(draw the strokes with the Annotate tool)"
    )
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context: bpy.types.Context) -> set[str]:
        try:
            strokes = annotation_strokes(context.scene)
        except ValueError as error:
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        return self.add_world_paths(context, strokes, "annotation strokes")


class PUPPET_OT_drags_from_curve(_DragsFromPathsMixin, bpy.types.Operator):
    bl_idname = "puppet.drags_from_curve"
    bl_label = "Drags from Curves"
    bl_description = "Turn each spline of the selected curve objects into a drag, as the scene camera sees it"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context: bpy.types.Context) -> set[str]:
        curves = [obj for obj in context.selected_objects if obj.type in {"CURVE", "CURVES"}]
        if not curves:
            self.report({"ERROR"}, "Select one or more curve objects whose splines should become drags")
            return {"CANCELLED"}
        depsgraph = context.evaluated_depsgraph_get()
        paths = [path for obj in curves for path in curve_object_paths(obj, depsgraph)]
        return self.add_world_paths(context, paths, "curve splines")


# --- anchoring ------------------------------------------------------------------------------------


class PUPPET_OT_anchor_drag(bpy.types.Operator):
    bl_idname = "puppet.anchor_drag"
    bl_label = "Anchor Drag"
    bl_description = (
        "Attach the drag's start to the surface the camera sees under it, so the drag follows that object "
        "(and camera moves) until generation"
    )
    bl_options = {"REGISTER", "UNDO"}

    index: IntProperty(
        name="Index", description="Drag to anchor, from 0; -1 anchors the active drag", default=-1, min=-1, max=999
    )

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return len(context.scene.puppet_master.drags) > 0

    def execute(self, context: bpy.types.Context) -> set[str]:
        scene = context.scene
        settings = scene.puppet_master
        index = settings.active_drag_index if self.index < 0 else self.index
        if not 0 <= index < len(settings.drags) or len(settings.drags[index].points) == 0:
            self.report({"ERROR"}, f"There is no drag {index} with points to anchor")
            return {"CANCELLED"}
        drag = settings.drags[index]
        try:
            camera_matrix, params = scene_camera(scene)
        except ValueError as error:
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        try:  # where the drag shows now: an anchored drag is re-anchored from its current start
            path = drag_frame_path(drag, camera_matrix, params)
        except ValueError:
            path = drag_frame_path(drag, None, None)
        x, y = path[0]
        origin, direction = camera_frame_ray(x, y, camera_matrix, params)
        origin = origin + direction * params.clip_start  # the camera does not see what is nearer
        depsgraph = context.evaluated_depsgraph_get()
        hit, location, _normal, _face, hit_object, _matrix = scene.ray_cast(
            depsgraph, Vector(origin), Vector(direction), distance=params.clip_end - params.clip_start
        )
        if not hit or hit_object is None:
            self.report(
                {"ERROR"},
                f"Nothing is under the start of drag {index + 1} at ({x:.3f}, {y:.3f}): "
                "start the drag on an object the camera sees",
            )
            return {"CANCELLED"}
        anchor = hit_object.original
        for point, co in zip(drag.points, path, strict=True):
            point.co = co
        drag.anchor_object = anchor
        drag.anchor_local = anchor.matrix_world.inverted_safe() @ location
        drag.use_anchor = True
        self.report({"INFO"}, f"Drag {index + 1} is anchored to {anchor.name!r}")
        return {"FINISHED"}


# --- the drawing tool -----------------------------------------------------------------------------


def _drawing_problem(context: bpy.types.Context) -> str | None:
    """Why the drawing tool cannot run here, as a sentence; None when it can."""
    area = context.area
    if area is None or area.type != "VIEW_3D" or context.region is None or context.region.type != "WINDOW":
        return "Draw Drags works in a 3D Viewport: run it from a viewport that looks through the camera"
    scene = context.scene
    try:
        scene_camera(scene)
    except ValueError as error:
        return str(error)
    rv3d = context.region_data
    if rv3d is None or rv3d.view_perspective != "CAMERA":
        return "Look through the scene camera first (Numpad 0), then draw drags"
    if overlay.view_camera_frame_rect(scene, context.space_data, context.region, rv3d) is None:
        return "This viewport looks through another camera: look through the scene camera (Numpad 0)"
    return None


def _rect(region: bpy.types.Region) -> Rect:
    return Rect(region.x, region.y, region.width, region.height)


def pointer_over_picture(context: bpy.types.Context, event: bpy.types.Event) -> bool:
    """Whether the pointer is over the viewport's picture, not the Sidebar, Toolbar, headers or navigation gizmo."""
    view = _rect(context.region)
    covering = [
        _rect(region)
        for region in context.area.regions
        if region.type != "WINDOW" and region.width > 1 and region.height > 1
    ]
    space = context.space_data
    if getattr(space, "show_gizmo", False) and getattr(space, "show_gizmo_navigate", False):
        size = context.preferences.view.gizmo_size_navigate_v3d
        covering.append(navigation_gizmo_rect(view, covering, size, overlay.interface_scale(context)))
    return pointer_over_view(event.mouse_x, event.mouse_y, view, covering)


def _draw_live_stroke(operator: PUPPET_OT_draw_drags, context: bpy.types.Context) -> None:
    stroke = operator.stroke
    if not stroke:
        return
    rect = overlay.view_camera_frame_rect(context.scene, context.space_data, context.region, context.region_data)
    if rect is None:
        return
    scale = overlay.interface_scale(context)
    geometry = drag_geometry(stroke, rect, scale)
    if geometry is not None:
        with overlay.gpu_drawing_state():
            overlay.draw_drag(geometry, operator.stroke_color, len(context.scene.puppet_master.drags) + 1, scale)


class PUPPET_OT_draw_drags(bpy.types.Operator):
    bl_idname = "puppet.draw_drags"
    bl_label = "Draw Drags"
    bl_description = (
        "Draw drags over the camera view: press, drag and release for each drag; right-click removes the "
        "nearest; Enter or Esc finishes"
    )
    bl_options = {"UNDO"}  # no redo panel: the tool has no settings to adjust afterwards

    STATUS = (
        "Drag: draw a drag  |  Right-click: remove the nearest  |  Backspace: remove the last  |  "
        "Wheel: zoom  |  Enter / Esc: done"
    )

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        problem = _drawing_problem(context)
        if problem is not None:
            self.report({"ERROR"}, problem)
            return {"CANCELLED"}
        self.stroke: list[tuple[float, float]] = []  # frame points of the drag being drawn
        self.stroke_color = _unused_color(context.scene.puppet_master)
        self.changed = False
        self._area = context.area
        self._handle = bpy.types.SpaceView3D.draw_handler_add(
            _draw_live_stroke, (self, context), "WINDOW", "POST_PIXEL"
        )
        runtime.tool_draw_handlers.append(self._handle)
        context.scene.puppet_master.show_drags = True
        context.window_manager.modal_handler_add(self)
        self._update_status(context)
        return {"RUNNING_MODAL"}

    def execute(self, context: bpy.types.Context) -> set[str]:
        # Reached from scripts and background mode, where there is no mouse to draw with.
        problem = _drawing_problem(context)
        self.report({"ERROR"}, problem or "Draw Drags is interactive: start it with the mouse over the 3D Viewport")
        return {"CANCELLED"}

    def modal(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        rect = overlay.view_camera_frame_rect(context.scene, context.space_data, context.region, context.region_data)
        if rect is None:  # the view was orbited out of the camera, or the camera changed
            return self._finish(context, "Stopped drawing drags: the viewport no longer looks through the camera")
        mouse = (event.mouse_region_x, event.mouse_region_y)
        if not self.stroke and not pointer_over_picture(context, event):
            return {"PASS_THROUGH"}  # the Sidebar, Toolbar, headers and gizmos keep their clicks and keys

        if event.type in {"ESC", "RET", "NUMPAD_ENTER"} and event.value == "PRESS":
            return self._finish(context)
        if event.type == "LEFTMOUSE" and event.value == "PRESS":
            self._start_stroke(context, mouse, rect)
        elif event.type == "LEFTMOUSE" and event.value == "RELEASE" and self.stroke:
            self._commit_stroke(context)
        elif event.type in {"MOUSEMOVE", "INBETWEEN_MOUSEMOVE"} and self.stroke:
            self._extend_stroke(mouse, rect)
        elif event.type == "RIGHTMOUSE":
            if event.value == "PRESS" and not self.stroke:
                self._remove_nearest(context, mouse, rect)
        elif event.type in {"BACK_SPACE", "DEL"} and event.value == "PRESS" and not self.stroke:
            settings = context.scene.puppet_master
            if len(settings.drags) > 0:
                remove_drag(settings, len(settings.drags) - 1)
                self.changed = True
        elif self.stroke:
            return {"RUNNING_MODAL"}  # nothing interrupts a drag being drawn
        else:
            return {"PASS_THROUGH"}  # zoom, pan, shortcuts and the rest of the interface keep working
        self._update_status(context)
        tag_redraw(context)
        return {"RUNNING_MODAL"}

    def _start_stroke(self, context: bpy.types.Context, mouse: tuple[int, int], rect: FrameRect) -> None:
        settings = context.scene.puppet_master
        if len(settings.drags) >= MAX_DRAGS:
            self.report({"WARNING"}, f"The model takes at most {MAX_DRAGS} drags: remove one (right-click) first")
            return
        self.stroke_color = _unused_color(settings)
        self.stroke = [clamp_to_frame(*region_to_frame(*mouse, rect))]

    def _extend_stroke(self, mouse: tuple[int, int], rect: FrameRect) -> None:
        last_x, last_y = frame_to_region(*self.stroke[-1], rect)
        if math.hypot(mouse[0] - last_x, mouse[1] - last_y) >= MIN_STROKE_SPACING:
            self.stroke.append(clamp_to_frame(*region_to_frame(*mouse, rect)))

    def _commit_stroke(self, context: bpy.types.Context) -> None:
        path = normalise_path(self.stroke)
        self.stroke = []
        if path is None:
            self.report({"INFO"}, "Press and drag to draw a drag; a click alone makes none")
            return
        add_drag(context.scene.puppet_master, path)
        self.changed = True

    def _remove_nearest(self, context: bpy.types.Context, mouse: tuple[int, int], rect: FrameRect) -> None:
        settings = context.scene.puppet_master
        try:
            camera_matrix, params = scene_camera(context.scene)
        except ValueError:
            camera_matrix, params = None, None
        shown = [(index, drag) for index, drag in enumerate(settings.drags) if drag.enabled]
        polylines = []
        for _, drag in shown:
            try:
                polylines.append(path_to_region(drag_frame_path(drag, camera_matrix, params), rect))
            except ValueError:
                polylines.append(path_to_region(drag_frame_path(drag, None, None), rect))
        nearest = nearest_path(mouse, polylines, REMOVE_DISTANCE * overlay.interface_scale(context))
        if nearest is None:
            self.report({"INFO"}, "No drag near the cursor to remove")
            return
        remove_drag(settings, shown[nearest][0])
        self.changed = True

    def _update_status(self, context: bpy.types.Context) -> None:
        count = len(context.scene.puppet_master.drags)
        context.workspace.status_text_set(self.STATUS)
        self._area.header_text_set(f"Draw Drags: {count} of {MAX_DRAGS} drags")

    def _cleanup(self, context: bpy.types.Context) -> None:
        """Remove the draw handler and the status texts (whatever ends the tool)."""
        if self._handle in runtime.tool_draw_handlers:
            runtime.tool_draw_handlers.remove(self._handle)
            bpy.types.SpaceView3D.draw_handler_remove(self._handle, "WINDOW")
        if context.workspace is not None:
            context.workspace.status_text_set(None)
        try:
            self._area.header_text_set(None)
        except (ReferenceError, AttributeError):  # the area was closed while drawing
            pass
        tag_redraw(context)

    def cancel(self, context: bpy.types.Context) -> None:
        """Blender ends the tool (a file is loaded, the window closes): clean up as :meth:`_finish` does."""
        self.stroke = []
        self._cleanup(context)

    def _finish(self, context: bpy.types.Context, warning: str | None = None) -> set[str]:
        """Clean up, report, and end the tool."""
        self._cleanup(context)
        count = len(context.scene.puppet_master.drags)
        self.report({"WARNING"} if warning else {"INFO"}, warning or f"{count} drag(s) over the camera view")
        return {"FINISHED"} if self.changed else {"CANCELLED"}


classes = (
    PUPPET_OT_add_drag,
    PUPPET_OT_remove_drag,
    PUPPET_OT_clear_drags,
    PUPPET_OT_drags_from_annotation,
    PUPPET_OT_drags_from_curve,
    PUPPET_OT_anchor_drag,
    PUPPET_OT_draw_drags,
)


_register_classes, _unregister_classes = bpy.utils.register_classes_factory(classes)


def register() -> None:
    _register_classes()
    overlay.register()


def unregister() -> None:
    overlay.unregister()
    _unregister_classes()
