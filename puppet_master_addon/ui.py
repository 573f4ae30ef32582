"""The Sidebar tab "Puppet Master" in the 3D Viewport: Backend, Capture, Drags, Generate, Results."""

from __future__ import annotations

import textwrap

import bpy

from . import runtime
from .operators import backend as backend_ops
from .properties import MAX_DRAGS

# Interface pixels per character of the default font, for wrapping labels to the Sidebar's width.
_CHAR_PX = 7.0


def _operator_exists(idname: str) -> bool:
    """Whether ``puppet.some_op`` is registered (panels keep drawing if an operator module is missing)."""
    module, _, name = idname.partition(".")
    return getattr(bpy.types, f"{module.upper()}_OT_{name}", None) is not None


def _operator(layout: bpy.types.UILayout, idname: str, **kwargs: object) -> bpy.types.OperatorProperties | None:
    if not _operator_exists(idname):
        return None
    return layout.operator(idname, **kwargs)


def wrap_to_width(context: bpy.types.Context, text: str, max_lines: int = 6) -> list[str]:
    """``text`` in lines that fit the region's width (labels are cut, not wrapped, by Blender)."""
    width = context.region.width if context.region is not None else 300
    scale = context.preferences.system.ui_scale or 1.0  # 0 in background mode
    chars = max(16, int(width / (_CHAR_PX * scale)) - 4)
    return textwrap.wrap(text, chars)[:max_lines]


def _labels(layout: bpy.types.UILayout, context: bpy.types.Context, text: str, icon: str = "NONE") -> None:
    column = layout.column(align=True)
    for number, line in enumerate(wrap_to_width(context, text)):
        column.label(text=line, icon=icon if number == 0 else "BLANK1" if icon != "NONE" else "NONE")


def _check_backend_once() -> float | None:
    """Timer: ask the backend once a window exists, so the Backend panel has an answer without a Check."""
    if bpy.app.background or backend_ops.status.checked_at or backend_ops.status.starting:
        return None
    window_manager = bpy.context.window_manager
    if window_manager is None or not window_manager.windows:
        return 0.5  # still starting up
    with bpy.context.temp_override(window=window_manager.windows[0]):
        bpy.ops.puppet.check_backend()
    return None


class PuppetPanel:
    """What every panel of the tab shares."""

    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "Puppet Master"


class PuppetSubPanel(PuppetPanel):
    bl_parent_id = "VIEW3D_PT_puppet_master"


class PUPPET_UL_drags(bpy.types.UIList):
    """One row per drag: colour, name and point count, enabled, delete."""

    def draw_item(
        self,
        context: bpy.types.Context,
        layout: bpy.types.UILayout,
        data: bpy.types.AnyType,
        item: bpy.types.AnyType,
        icon: int,
        active_data: bpy.types.AnyType,
        active_property: str,
        index: int = 0,
        flt_flag: int = 0,
    ) -> None:
        row = layout.row(align=True)
        swatch = row.row()
        swatch.ui_units_x = 1.2
        swatch.prop(item, "color", text="")
        label = f"Drag {index + 1}  ({len(item.points)} points)"
        if item.use_anchor and item.anchor_object is not None:
            label += f", on {item.anchor_object.name}"
        row.label(text=label)
        row.prop(item, "enabled", text="")
        remove = _operator(row, "puppet.remove_drag", text="", icon="X", emboss=False)
        if remove is not None:
            remove.index = index


class PUPPET_UL_results(bpy.types.UIList):
    """One row per result: job, engine, frames, when."""

    def draw_item(
        self,
        context: bpy.types.Context,
        layout: bpy.types.UILayout,
        data: bpy.types.AnyType,
        item: bpy.types.AnyType,
        icon: int,
        active_data: bpy.types.AnyType,
        active_property: str,
        index: int = 0,
        flt_flag: int = 0,
    ) -> None:
        # Short enough for the default Sidebar width; variations of one job differ by "v2", "v3".
        # One label, short enough for the default Sidebar width (two labels split it and cut both);
        # the icon tells the preview engine from the model, "v2" tells variations of one job apart.
        variation = f" v{item.variation}" if item.variation > 1 else ""
        icon = "SEQUENCE" if item.engine != "preview" else "IMAGE_DATA"
        layout.label(text=f"{item.created[11:16]}{variation}  seed {item.seed}", icon=icon)


class VIEW3D_PT_puppet_master(PuppetPanel, bpy.types.Panel):
    bl_label = "Puppet Master"

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        line = runtime.job_line(context.scene)
        if context.scene.camera is None:
            _labels(layout, context, "Add a camera and make it the scene camera", icon="ERROR")
        elif line is not None and line.running:
            _labels(layout, context, line.text, icon="SORTTIME")


def _backend_icon(status: backend_ops.BackendStatus) -> str:
    health = status.health
    if health is None:
        return "ERROR" if status.error else "SORTTIME" if status.starting else "QUESTION"
    if health.loading:
        return "SORTTIME"
    return "CHECKMARK" if health.status == "ok" and not health.is_preview else "ERROR"


class VIEW3D_PT_puppet_master_backend(PuppetSubPanel, bpy.types.Panel):
    bl_label = "Backend"
    bl_options = {"DEFAULT_CLOSED"}

    def draw_header_preset(self, context: bpy.types.Context) -> None:
        self.layout.label(text="", icon=_backend_icon(backend_ops.status))

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        status = backend_ops.status
        health = status.health
        column = layout.column(align=True)
        if health is not None and health.loading:
            _labels(column, context, health.loading_text(), icon="SORTTIME")
            if health.queue_length:
                column.label(text=f"{health.queue_length} job(s) waiting for it")
        elif health is not None and health.failed:
            column.label(text="The model failed to load:", icon="ERROR")
            _labels(column, context, health.error)
        elif status.starting:
            column.label(text="Starting the backend ...", icon="SORTTIME")
        elif health is not None:
            column.label(text=f"Engine: {health.engine}", icon="CHECKMARK")
            column.label(text=f"Device: {health.device or '?'}")
            if health.is_preview:
                column.label(text="Preview engine: a rigid draft,", icon="ERROR")
                column.label(text="not the Puppet-Master model")
            if health.queue_length:
                column.label(text=f"{health.queue_length} job(s) waiting")
        elif status.error:
            column.label(text="Backend not reachable:", icon="ERROR")
            _labels(column, context, status.error)
        else:
            column.label(text="Not checked yet", icon="QUESTION")
        row = layout.row(align=True)
        row.operator("puppet.check_backend", text="Check", icon="FILE_REFRESH")
        row.operator("puppet.start_backend", text="Start", icon="PLAY")


class VIEW3D_PT_puppet_master_capture(PuppetSubPanel, bpy.types.Panel):
    bl_label = "Capture"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context: bpy.types.Context) -> None:
        settings = context.scene.puppet_master
        layout = self.layout
        layout.use_property_split = True
        layout.use_property_decorate = False
        layout.prop(settings, "capture_resolution")
        layout.prop(settings, "capture_engine")
        _operator(layout, "puppet.capture", icon="RENDER_STILL")
        image = settings.capture_image
        if image is not None:
            preview = image.preview_ensure()
            if preview is not None and preview.icon_id:
                layout.template_icon(icon_value=preview.icon_id, scale=6.0)
            layout.label(text=f"{image.name}: {image.size[0]} x {image.size[1]}")


class VIEW3D_PT_puppet_master_drags(PuppetSubPanel, bpy.types.Panel):
    bl_label = "Drags"

    def draw(self, context: bpy.types.Context) -> None:
        settings = context.scene.puppet_master
        layout = self.layout
        _operator(layout, "puppet.draw_drags", text="Draw Drags", icon="GREASEPENCIL")
        row = layout.row()
        row.template_list("PUPPET_UL_drags", "", settings, "drags", settings, "active_drag_index", rows=3)
        side = row.column(align=True)
        _operator(side, "puppet.add_drag", text="", icon="ADD")
        _operator(side, "puppet.clear_drags", text="", icon="TRASH")
        if len(settings.drags) >= MAX_DRAGS:
            layout.label(text=f"{MAX_DRAGS} drags: the model's limit", icon="INFO")
        column = layout.column(align=True)
        _operator(column, "puppet.drags_from_annotation", icon="OUTLINER_DATA_GREASEPENCIL")
        _operator(column, "puppet.drags_from_curve", icon="CURVE_DATA")
        _operator(column, "puppet.anchor_drag", icon="PINNED")
        _operator(column, "puppet.drags_from_animation", icon="ACTION")
        layout.prop(settings, "show_drags")


class VIEW3D_PT_puppet_master_generate(PuppetSubPanel, bpy.types.Panel):
    bl_label = "Generate"

    def draw(self, context: bpy.types.Context) -> None:
        settings = context.scene.puppet_master
        layout = self.layout
        column = layout.column()
        column.use_property_split = True
        column.use_property_decorate = False
        column.prop(settings, "steps")
        column.prop(settings, "guidance")
        column.prop(settings, "num_frames")
        column.prop(settings, "ease")
        column.prop(settings, "crop_scale")
        column.prop(settings, "num_videos")
        column.prop(settings, "send_parts")
        column.prop(settings, "use_random_seed")
        seed = column.row()
        seed.active = not settings.use_random_seed
        seed.prop(settings, "seed")

        line = runtime.job_line(context.scene)
        if runtime.active_job is None:
            layout.operator("puppet.generate", icon="PLAY")
            if line is not None:
                _labels(layout.box(), context, line.text)
            return
        lines = wrap_to_width(context, line.text if line is not None else "Generating")
        row = layout.row(align=True)
        row.progress(factor=line.progress if line is not None else 0.0, type="BAR", text=lines[0])
        row.operator("puppet.cancel", text="", icon="CANCEL")
        for rest in lines[1:]:
            layout.label(text=rest)


class VIEW3D_PT_puppet_master_results(PuppetSubPanel, bpy.types.Panel):
    bl_label = "Results"

    def draw(self, context: bpy.types.Context) -> None:
        settings = context.scene.puppet_master
        layout = self.layout
        row = layout.row()
        row.template_list("PUPPET_UL_results", "", settings, "results", settings, "active_result_index", rows=3)
        side = row.column(align=True)
        side.operator("puppet.remove_result", text="", icon="REMOVE")
        column = layout.column()
        column.use_property_split = True
        column.use_property_decorate = False
        column.prop(settings, "import_mode")
        column.prop(settings, "import_keep_previous")
        column.prop(settings, "import_opacity", slider=True)
        column.prop(settings, "import_start_frame")
        column.prop(settings, "import_frame_step")
        layout.operator("puppet.import_result", icon="IMPORT")
        bake = layout.column()
        bake.use_property_split = True
        bake.use_property_decorate = False
        bake.prop(settings, "bake_constraint")
        axis = bake.row()
        axis.active = settings.bake_constraint in {"HINGE", "SLIDE"}
        axis.prop(settings, "bake_axis", expand=True)
        bake.prop(settings, "bake_smoothing")
        _operator(layout, "puppet.bake_motion", icon="KEYINGSET")


classes = (
    PUPPET_UL_drags,
    PUPPET_UL_results,
    VIEW3D_PT_puppet_master,
    VIEW3D_PT_puppet_master_backend,
    VIEW3D_PT_puppet_master_capture,
    VIEW3D_PT_puppet_master_drags,
    VIEW3D_PT_puppet_master_generate,
    VIEW3D_PT_puppet_master_results,
)


_register_classes, _unregister_classes = bpy.utils.register_classes_factory(classes)


def register() -> None:
    _register_classes()
    if not bpy.app.background:  # no window will ever exist, and no event loop would run it
        # persistent: a file opened at startup (``blender scene.blend``) loads after the add-ons register, and
        # a file load drops the other timers. Blender 4.2 also crashes at exit (exit code 139) when a timer
        # that a file load dropped has never run, which is what happens in background mode.
        bpy.app.timers.register(_check_backend_once, first_interval=1.0, persistent=True)


def unregister() -> None:
    if bpy.app.timers.is_registered(_check_backend_once):
        bpy.app.timers.unregister(_check_backend_once)
    _unregister_classes()
