"""The Sidebar tab "Puppet Master" in the 3D Viewport: Backend, Capture, Drags, Generate, Results."""

from __future__ import annotations

import textwrap

import bpy

from .operators import backend as backend_ops
from .operators import generate as generate_ops
from .properties import MAX_DRAGS


def _operator_exists(idname: str) -> bool:
    """Whether ``puppet.some_op`` is registered (panels keep drawing if an operator module is missing)."""
    module, _, name = idname.partition(".")
    return getattr(bpy.types, f"{module.upper()}_OT_{name}", None) is not None


def _operator(layout: bpy.types.UILayout, idname: str, **kwargs: object) -> bpy.types.OperatorProperties | None:
    if not _operator_exists(idname):
        return None
    return layout.operator(idname, **kwargs)


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
        row = layout.row(align=True)
        folder = item.directory.rstrip("/\\").replace("\\", "/").rsplit("/", 1)[-1]
        video = f" {folder}" if folder.startswith("video_") and folder != "video_0" else ""
        row.label(text=f"{item.job_id[:8]}{video}", icon="SEQUENCE" if item.engine != "preview" else "IMAGE_DATA")
        row.label(text=f"{item.engine}, {item.num_frames} fr, seed {item.seed}")
        row.label(text=item.created[5:16])


class VIEW3D_PT_puppet_master(PuppetPanel, bpy.types.Panel):
    bl_label = "Puppet Master"

    def draw(self, context: bpy.types.Context) -> None:
        settings = context.scene.puppet_master
        layout = self.layout
        if context.scene.camera is None:
            layout.label(text="Add a camera and make it the scene camera", icon="ERROR")
        elif generate_ops.active_job() is not None:
            layout.label(text=settings.job_status or "Generating", icon="SORTTIME")


class VIEW3D_PT_puppet_master_backend(PuppetSubPanel, bpy.types.Panel):
    bl_label = "Backend"
    bl_options = {"DEFAULT_CLOSED"}

    def draw_header_preset(self, context: bpy.types.Context) -> None:
        status = backend_ops.status
        icon = (
            "CHECKMARK"
            if status.health and not status.is_preview
            else "ERROR"
            if status.health or status.error
            else "QUESTION"
        )
        self.layout.label(text="", icon=icon)

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        status = backend_ops.status
        column = layout.column(align=True)
        if status.starting:
            column.label(text="Starting the backend ...", icon="SORTTIME")
        elif status.health is not None:
            column.label(text=f"Engine: {status.engine}", icon="CHECKMARK")
            column.label(text=f"Device: {status.health.get('device') or '?'}")
            if status.is_preview:
                column.label(text="Preview engine: image warping,", icon="ERROR")
                column.label(text="not the Puppet-Master model")
            queue = status.health.get("queue_length")
            if queue:
                column.label(text=f"{queue} job(s) waiting")
        elif status.error:
            column.label(text="Backend not reachable", icon="ERROR")
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
        column.prop(settings, "use_random_seed")
        seed = column.row()
        seed.active = not settings.use_random_seed
        seed.prop(settings, "seed")

        job = generate_ops.active_job()
        if job is None:
            layout.operator("puppet.generate", icon="PLAY")
            if settings.job_status:
                box = layout.box()
                for line in textwrap.wrap(settings.job_status, 48)[:4]:
                    box.label(text=line)
            return
        row = layout.row(align=True)
        text = settings.job_status or "Generating"
        if hasattr(row, "progress"):  # Blender 4.0+
            row.progress(factor=settings.job_progress, type="BAR", text=text)
        else:
            row.prop(settings, "job_progress", text=text, slider=True)
        row.operator("puppet.cancel", text="", icon="CANCEL")


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
        column.prop(settings, "import_opacity", slider=True)
        column.prop(settings, "import_start_frame")
        column.prop(settings, "import_frame_step")
        layout.operator("puppet.import_result", icon="IMPORT")


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


register, unregister = bpy.utils.register_classes_factory(classes)
