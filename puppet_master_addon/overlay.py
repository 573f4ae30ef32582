"""Viewport overlay: the drags drawn over a 3D viewport that looks through the scene camera.

A ``POST_PIXEL`` draw handler on ``SpaceView3D`` draws each enabled drag as a polyline in its colour,
with an arrow head at its end and its number at its start. The geometry comes from the bpy-free
``core.overlay_geometry``; ``gpu`` and ``blf`` are imported inside the draw functions, because they
cannot draw in background mode (where the add-on is tested).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import bpy

from .core.camera import FrameRect, rect_from_corners, scene_camera
from .core.drag_paths import drag_frame_path
from .core.overlay_geometry import DragGeometry, drag_geometry

LINE_WIDTH = 3.0  # pixels at interface scale 1
SHADOW_ALPHA = 0.6  # dark outline under each drag, so it reads on any background
FONT_ID = 0  # Blender's default interface font

_draw_handles: list[object] = []


def view_camera_frame_rect(
    scene: bpy.types.Scene, space: bpy.types.SpaceView3D, region: bpy.types.Region, rv3d: bpy.types.RegionView3D
) -> FrameRect | None:
    """The scene camera's frame in region pixels, or None unless the viewport looks through that camera.

    The frame's corners (``Camera.view_frame``, which honours shift, sensor fit and render aspect)
    are projected with the viewport's own matrices, so zooming and panning the camera view are
    followed. A viewport with a local camera other than the scene camera gives None: drags belong to
    the scene camera, which is what the capture renders.
    """
    from bpy_extras.view3d_utils import location_3d_to_region_2d

    camera = scene.camera
    if rv3d is None or rv3d.view_perspective != "CAMERA" or camera is None or camera.type != "CAMERA":
        return None
    if space is not None and getattr(space, "use_local_camera", False) and space.camera not in (None, camera):
        return None
    corners = [
        location_3d_to_region_2d(region, rv3d, camera.matrix_world @ corner)
        for corner in camera.data.view_frame(scene=scene)
    ]
    if any(corner is None for corner in corners):
        return None
    try:
        return rect_from_corners([tuple(corner) for corner in corners])
    except ValueError:
        return None


def interface_scale(context: bpy.types.Context) -> float:
    return context.preferences.system.ui_scale


@contextmanager
def gpu_drawing_state() -> Iterator[None]:
    """Alpha blending for the overlay; the previous blend mode and line width are put back afterwards."""
    import gpu

    blend, line_width = gpu.state.blend_get(), gpu.state.line_width_get()
    gpu.state.blend_set("ALPHA")
    try:
        yield
    finally:
        gpu.state.blend_set(blend)
        gpu.state.line_width_set(line_width)


def draw_drag(geometry: DragGeometry, color: Sequence[float], number: int | None, scale: float) -> None:
    """Draw one drag's geometry (region pixels) in ``color``; call inside :func:`gpu_drawing_state`."""
    import blf
    import gpu
    from gpu_extras.batch import batch_for_shader

    rgb = tuple(color[:3])
    if len(geometry.line) >= 2:
        line_shader = gpu.shader.from_builtin("POLYLINE_UNIFORM_COLOR")
        line_batch = batch_for_shader(line_shader, "LINE_STRIP", {"pos": geometry.line})
        line_shader.uniform_float("viewportSize", gpu.state.viewport_get()[2:])
        for width, rgba in ((LINE_WIDTH + 2.0, (0.0, 0.0, 0.0, SHADOW_ALPHA)), (LINE_WIDTH, (*rgb, 1.0))):
            line_shader.uniform_float("lineWidth", width * scale)
            line_shader.uniform_float("color", rgba)
            line_batch.draw(line_shader)
    if geometry.triangles:
        fill_shader = gpu.shader.from_builtin("UNIFORM_COLOR")
        fill_shader.uniform_float("color", (*rgb, 1.0))
        batch_for_shader(fill_shader, "TRIS", {"pos": geometry.triangles}).draw(fill_shader)
    if number is not None:
        text = str(number)
        blf.size(FONT_ID, 14.0 * scale)
        width, height = blf.dimensions(FONT_ID, text)
        blf.position(FONT_ID, geometry.label[0] - 0.5 * width, geometry.label[1] - 0.5 * height, 0.0)
        blf.color(FONT_ID, *rgb, 1.0)
        blf.enable(FONT_ID, blf.SHADOW)
        blf.shadow(FONT_ID, 3, 0.0, 0.0, 0.0, 0.9)
        blf.shadow_offset(FONT_ID, 1, -1)
        blf.draw(FONT_ID, text)
        blf.disable(FONT_ID, blf.SHADOW)


def draw_scene_drags(context: bpy.types.Context, rect: FrameRect) -> None:
    """Draw the scene's enabled drags (anchored ones where their anchor is now) inside ``rect``."""
    scene = context.scene
    try:
        camera_matrix, params = scene_camera(scene)
    except ValueError:
        camera_matrix, params = None, None
    scale = interface_scale(context)
    for number, drag in enumerate(scene.puppet_master.drags, start=1):
        if not drag.enabled:
            continue
        try:
            path = drag_frame_path(drag, camera_matrix, params)
        except ValueError:  # anchor behind the camera: show the drag where it was drawn
            path = drag_frame_path(drag, None, None)
        geometry = drag_geometry(path, rect, scale)
        if geometry is not None:
            draw_drag(geometry, drag.color, number, scale)


def _draw_overlay() -> None:
    context = bpy.context
    settings = getattr(context.scene, "puppet_master", None)
    if settings is None or not settings.show_drags or len(settings.drags) == 0:
        return
    space = context.space_data
    if space is None or not space.overlay.show_overlays:
        return
    rect = view_camera_frame_rect(context.scene, space, context.region, context.region_data)
    if rect is None:
        return
    with gpu_drawing_state():
        draw_scene_drags(context, rect)


classes = ()


def register() -> None:
    if not _draw_handles:
        _draw_handles.append(bpy.types.SpaceView3D.draw_handler_add(_draw_overlay, (), "WINDOW", "POST_PIXEL"))


def unregister() -> None:
    while _draw_handles:
        bpy.types.SpaceView3D.draw_handler_remove(_draw_handles.pop(), "WINDOW")
