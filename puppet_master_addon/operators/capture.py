"""Capture: render the active camera's view (transparent film) into the PNG the backend receives.

The render writes an 8-bit RGBA PNG to a temporary folder. Generate sends that file's bytes as they
are (no pixels read back, no re-encoding, no new datablock: the UI does not stall on large captures
and nothing changes in the scene before the job's own undo step). The Capture operator loads the
same file as a packed image, so the capture can be looked at and travels with the .blend. Every
render setting touched for it is put back afterwards, whatever happens.

With Send Parts on, Generate also renders the part pass (:func:`render_part_pass`): one more
Workbench render of the same frame, flat, without antialiasing, each object in a colour that encodes
its part id, with the view layer's depth pass, into an uncompressed OpenEXR that
:mod:`..core.part_pass` reads without numpy. Parts are objects, and the bones of a mesh an armature
deforms (:mod:`.bone_parts`). The objects' colours and the view layer's depth pass are put back
afterwards like the render settings.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import bpy

from ..core.camera import capture_size, scene_camera
from ..core.part_pass import PartPass, assign_part_ids, part_colour, part_pass_from_exr
from .bone_parts import bone_splitter

log = logging.getLogger(__name__)

CAPTURE_IMAGE_NAME = "Puppet Master Capture"
CAPTURE_ENGINES = ("FAST", "SCENE")
FAST_ENGINE = "BLENDER_WORKBENCH"
# The part pass: Workbench shading that draws each object in its own colour, exactly (no light, no
# outline, no antialiasing), and a float OpenEXR without compression (read in plain Python).
PART_PASS_SHADING = {
    "light": "FLAT",
    "color_type": "OBJECT",
    "show_shadows": False,
    "show_cavity": False,
    "show_object_outline": False,
    "show_specular_highlight": False,
    "use_dof": False,
    "show_xray": False,
}
PART_PASS_IMAGE = {
    "media_type": "MULTI_LAYER_IMAGE",
    "file_format": "OPEN_EXR_MULTILAYER",
    "color_depth": "32",
    "exr_codec": "NONE",
}


@contextmanager
def temporary_settings(owner: Any, values: dict[str, Any]) -> Iterator[None]:
    """Set attributes of ``owner`` for the duration of the block; the old values come back in the same order.

    The order matters where one setting limits another (file format before colour mode and depth).
    Attributes the running Blender lacks are skipped.
    """
    present = {name: value for name, value in values.items() if hasattr(owner, name)}
    saved = {name: getattr(owner, name) for name in present}
    try:
        for name, value in present.items():
            setattr(owner, name, value)
        yield
    finally:
        for name, value in saved.items():
            try:
                setattr(owner, name, value)
            except (AttributeError, TypeError, ValueError):  # put back the others regardless
                log.warning("Could not restore %s.%s to %r", type(owner).__name__, name, value)


def _load_capture(filepath: str) -> bpy.types.Image:
    """The rendered PNG as the packed image ``CAPTURE_IMAGE_NAME``, replacing an older capture in place.

    Users of the older capture (an Image Editor, the scene settings) are remapped to the new one.
    """
    image = bpy.data.images.load(filepath, check_existing=False)
    image.pack()
    # The temporary file is about to go; unpacking would write next to the .blend instead.
    image.filepath_raw = "//puppet_master_capture.png"
    previous = bpy.data.images.get(CAPTURE_IMAGE_NAME)
    if previous is not None and previous != image:
        previous.user_remap(image)
        bpy.data.images.remove(previous)
    image.name = CAPTURE_IMAGE_NAME
    return image


def _render_still(context: bpy.types.Context) -> set[str]:
    """Render the context's view layer and write it to the render file path (one place for tests to fail)."""
    return bpy.ops.render.render(write_still=True, layer=context.view_layer.name, scene=context.scene.name)


def _render_frame(
    context: bpy.types.Context, resolution: int, engine: str, filepath: str, image_values: dict[str, Any]
) -> None:
    """Render the scene camera's view, ``resolution`` pixels on its longer side, with ``engine`` (an engine
    identifier) into ``filepath``; every render setting is restored afterwards.

    ValueError when the scene has no usable camera; RuntimeError when the render fails.
    """
    if resolution < 4:
        raise ValueError(f"The capture needs at least 4 pixels on its longer side, got {resolution}")
    scene = context.scene
    scene_camera(scene)  # ValueError with advice when there is no camera to render through
    render = scene.render
    width, height = capture_size(
        render.resolution_x, render.resolution_y, render.pixel_aspect_x, render.pixel_aspect_y, resolution
    )
    render_values = {
        "engine": engine,
        "resolution_x": max(width, 4),
        "resolution_y": max(height, 4),
        "resolution_percentage": 100,
        # Square pixels with the frame's displayed shape keep the normalised frame unchanged.
        "pixel_aspect_x": 1.0,
        "pixel_aspect_y": 1.0,
        "film_transparent": True,
        "filepath": filepath,
        "use_file_extension": True,
        "use_border": False,
        "use_compositing": False,
        "use_sequencer": False,
        "use_multiview": False,
        "use_stamp": False,
    }
    with temporary_settings(render, render_values), temporary_settings(render.image_settings, image_values):
        result = _render_still(context)
    if "FINISHED" not in result or not os.path.isfile(filepath):
        raise RuntimeError(
            f"Rendering the camera view failed ({', '.join(sorted(result))}); "
            "try rendering the scene once (F12) to see why"
        )


@contextmanager
def rendered_camera_view(context: bpy.types.Context, resolution: int, engine: str = "FAST") -> Iterator[str]:
    """Render the scene camera's view to a temporary RGBA PNG; yields its path (deleted afterwards).

    Parameters:
        context: the context whose scene and view layer are rendered.
        resolution: pixels on the longer side; the image has the camera frame's shape, square pixels.
        engine: ``"FAST"`` renders with Workbench; ``"SCENE"`` with the scene's engine as set up.

    The film is transparent, so the object's alpha is the mask the backend crops with. ValueError
    when the scene has no usable camera or the arguments are wrong; RuntimeError when the render
    fails. Render settings are restored in every case.
    """
    if engine not in CAPTURE_ENGINES:
        raise ValueError(f"Unknown capture engine {engine!r}; expected one of {', '.join(CAPTURE_ENGINES)}")
    with tempfile.TemporaryDirectory(prefix="puppet_master_capture_") as folder:
        filepath = os.path.join(folder, "capture.png")
        # media_type (Blender 5) before file_format, file_format before colour mode and depth.
        image_values = {
            "media_type": "IMAGE",
            "file_format": "PNG",
            "color_mode": "RGBA",
            "color_depth": "8",
            "compression": 15,
        }
        engine_name = FAST_ENGINE if engine == "FAST" else context.scene.render.engine
        _render_frame(context, resolution, engine_name, filepath, image_values)
        yield filepath


@contextmanager
def temporary_object_colours(colours: dict[bpy.types.Object, tuple[float, float, float, float]]) -> Iterator[None]:
    """Give objects the viewport colours ``colours`` for the duration of the block; the old ones come back.

    Objects whose colour cannot be set (linked from a library) keep theirs; the part pass reads such
    colours as no part.
    """
    saved = {}
    try:
        for obj, colour in colours.items():
            try:
                saved[obj], obj.color = tuple(obj.color), colour
            except (AttributeError, TypeError):
                log.warning("Could not set the colour of %r for the part pass; it counts as no part", obj.name)
        yield
    finally:
        for obj, colour in saved.items():
            try:
                obj.color = colour
            except (AttributeError, TypeError, ReferenceError):  # put back the others regardless
                log.warning("Could not restore the colour of an object after the part pass")


def render_part_pass(context: bpy.types.Context, resolution: int) -> PartPass:
    """Which part (object, or bone of a skinned mesh) each pixel of the camera view shows, and its depth
    (see the module docstring).

    The frame is the capture's (same camera, same size); part ids number the view layer's objects by
    name, then the bones. ValueError or RuntimeError as :func:`rendered_camera_view`; ValueError when
    the render cannot be read back. Everything changed for it is restored in every case.
    """
    view_layer = context.view_layer
    ids = assign_part_ids(obj.name for obj in view_layer.objects)
    colours = {obj: part_colour(ids[obj.name]) for obj in view_layer.objects}
    scene = context.scene
    with tempfile.TemporaryDirectory(prefix="puppet_master_parts_") as folder:
        filepath = os.path.join(folder, "parts.exr")
        with (
            temporary_settings(scene.display.shading, PART_PASS_SHADING),
            temporary_settings(scene.display, {"render_aa": "OFF"}),
            temporary_settings(view_layer, {"use_pass_z": True}),
            temporary_object_colours(colours),
        ):
            _render_frame(context, resolution, FAST_ENGINE, filepath, PART_PASS_IMAGE)
        data = Path(filepath).read_bytes()
    return part_pass_from_exr(data, known_ids=set(ids.values()), split=bone_splitter(context, ids))


def capture_png_bytes(context: bpy.types.Context, resolution: int, engine: str = "FAST") -> bytes:
    """The camera view as the render's own RGBA PNG file bytes: what Generate sends."""
    with rendered_camera_view(context, resolution, engine) as filepath:
        return Path(filepath).read_bytes()


def render_camera_view(context: bpy.types.Context, resolution: int, engine: str = "FAST") -> bpy.types.Image:
    """Render the camera view into the packed image "Puppet Master Capture" and return it (the Capture operator)."""
    with rendered_camera_view(context, resolution, engine) as filepath:
        return _load_capture(filepath)


class PUPPET_OT_capture(bpy.types.Operator):
    bl_idname = "puppet.capture"
    bl_label = "Capture Camera View"
    bl_description = (
        "Render the active camera's view with a transparent background: the image the drags are drawn on "
        "and the backend animates"
    )
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context: bpy.types.Context) -> set[str]:
        settings = context.scene.puppet_master
        try:
            image = render_camera_view(context, settings.capture_resolution, settings.capture_engine)
        except (ValueError, RuntimeError) as error:
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        settings.capture_image = image
        width, height = image.size
        self.report({"INFO"}, f"Captured the camera view at {width}x{height} into image '{image.name}'")
        return {"FINISHED"}


classes = (PUPPET_OT_capture,)


register, unregister = bpy.utils.register_classes_factory(classes)
