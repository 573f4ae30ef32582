"""Results: bring a generated video into the scene as an image sequence, or drop it from the history.

Three ways to import (``Scene.puppet_master.import_mode``):

- ``CAMERA_BACKGROUND``: a background image of the scene camera, stretched over the camera frame.
  The frames *are* the camera frame (the capture is the camera view and the backend un-crops its
  output back onto it), so stretching aligns them corner to corner at any resolution.
- ``IMAGE_EMPTY``: an image empty parented to the camera, in front of it, filling the camera frame.
- ``SEQUENCER``: an image strip in the scene's video sequencer.

A new import replaces the earlier Puppet Master imports of the same kind (they are found by a tag on
what an import creates) unless ``import_keep_previous`` is on: generating again should update the
reference, not stack one more behind it. The video starts at ``import_start_frame``.
``import_frame_step`` > 1 holds each video frame for that many scene frames: a "held" sequence of
hard links is written next to the frames (see ``core.paths.held_sequence``), so image users and
strips, which play one file per scene frame, show the slowed-down video without drivers or retiming.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import bpy
from mathutils import Matrix

from .. import runtime
from ..core.paths import FRAME_PATTERN, frame_files, held_sequence
from ..core.placement import empty_distance, frame_at_distance

MAX_CHANNEL = 128
# Tags on what an import creates, to find it again (job id of the result).
JOB_TAG = "puppet_master_job"


class ImportProblem(ValueError):
    """Why a result cannot be imported, as a sentence for the user."""


def _sequence_path(result_directory: str, folder: Path, first_file: str) -> str:
    """The first frame's path, ``//``-relative when the result is stored that way (the project can move)."""
    path = str(folder / first_file)
    if result_directory.startswith("//") and bpy.data.filepath:
        try:
            return bpy.path.relpath(path)
        except ValueError:  # another drive on Windows
            return path
    return path


def _sequence(result: bpy.types.PropertyGroup, frame_step: int) -> tuple[Path, list[str], str]:
    """The folder and file names of the result's frames (held for ``frame_step``), and the first one's path."""
    folder = Path(bpy.path.abspath(result.directory))
    if not frame_files(folder):
        raise ImportProblem(
            f"No frames in {folder}: the result's files were moved or deleted; remove it from the history"
        )
    sequence_folder = held_sequence(folder, frame_step)
    files = frame_files(sequence_folder)
    return sequence_folder, files, _sequence_path(result.directory, sequence_folder, files[0])


def _load_image(path: str, name: str, job_id: str) -> bpy.types.Image:
    """The frames as a SEQUENCE image (the one loaded already, if any), tagged with the job."""
    try:
        image = bpy.data.images.load(path, check_existing=True)
    except RuntimeError as error:
        raise ImportProblem(f"Blender could not load {path}: {error}") from None
    image.source = "SEQUENCE"
    image.name = name
    image[JOB_TAG] = job_id
    return image


def _is_ours(data: bpy.types.ID | bpy.types.Sequence | None) -> bool:
    return data is not None and data.get(JOB_TAG) is not None


def _drop_unused_images(images: list[bpy.types.Image]) -> None:
    for image in images:
        if image.users == 0:
            bpy.data.images.remove(image)


def remove_previous_imports(scene: bpy.types.Scene, mode: str) -> int:
    """Remove the earlier Puppet Master imports made in ``mode`` (and their images, once unused); how many."""
    removed: list = []
    images: list[bpy.types.Image] = []
    if mode == "CAMERA_BACKGROUND" and scene.camera is not None and scene.camera.type == "CAMERA":
        backgrounds = scene.camera.data.background_images
        for background in [bg for bg in backgrounds if _is_ours(bg.image)]:
            images.append(background.image)
            backgrounds.remove(background)
            removed.append(background)
    elif mode == "IMAGE_EMPTY":
        for obj in [obj for obj in scene.objects if obj.type == "EMPTY" and _is_ours(obj)]:
            if obj.data is not None:
                images.append(obj.data)
            bpy.data.objects.remove(obj)
            removed.append(obj)
    elif mode == "SEQUENCER" and scene.sequence_editor is not None:
        editor = scene.sequence_editor
        strips = editor.strips if hasattr(editor, "strips") else editor.sequences
        for strip in [strip for strip in strips if _is_ours(strip)]:
            strips.remove(strip)
            removed.append(strip)
    _drop_unused_images(images)
    return len(removed)


def _set_frames(image_user: bpy.types.ImageUser, num_files: int, first_file: str, start_frame: int) -> None:
    """Play ``num_files`` files from ``start_frame`` on.

    Blender shows file number ``scene frame - frame_start + 1 + frame_offset``, so a sequence that
    starts at ``frame_0000`` needs an offset of -1.
    """
    first_number = int(FRAME_PATTERN.match(first_file).group(1))
    image_user.frame_duration = num_files
    image_user.frame_start = start_frame
    image_user.frame_offset = first_number - 1
    image_user.use_cyclic = False
    image_user.use_auto_refresh = True


def _require_camera(scene: bpy.types.Scene) -> bpy.types.Object:
    camera = scene.camera
    if camera is None or camera.type != "CAMERA":
        raise ImportProblem(f"Scene {scene.name!r} has no active camera to import onto: add one and make it active")
    return camera


def import_as_camera_background(
    scene: bpy.types.Scene, image: bpy.types.Image, files: list[str], start_frame: int, opacity: float
) -> str:
    camera = _require_camera(scene)
    background = camera.data.background_images.new()
    background.image = image
    _set_frames(background.image_user, len(files), files[0], start_frame)
    background.alpha = opacity
    background.frame_method = "STRETCH"  # the frames are exactly the camera frame: align corner to corner
    background.display_depth = "FRONT"  # a reference to compare the scene against, over it
    background.show_background_image = True
    camera.data.show_background_images = True
    return f"background of camera {camera.name!r}"


def import_as_image_empty(
    scene: bpy.types.Scene, image: bpy.types.Image, files: list[str], start_frame: int, opacity: float, job_id: str
) -> str:
    camera = _require_camera(scene)
    data = camera.data
    placement = frame_at_distance(
        [tuple(corner) for corner in data.view_frame(scene=scene)],
        empty_distance(data.clip_start, data.clip_end),
        orthographic=data.type == "ORTHO",
    )
    empty = bpy.data.objects.new(f"Puppet Reference {job_id[:8]}", None)
    empty.empty_display_type = "IMAGE"
    empty.data = image
    _set_frames(empty.image_user, len(files), files[0], start_frame)
    empty.empty_display_size = placement.display_size
    empty.empty_image_offset = (-0.5, -0.5)  # centred on the empty
    empty.empty_image_depth = "FRONT"
    empty.use_empty_image_alpha = True
    empty.color = (1.0, 1.0, 1.0, opacity)
    empty.hide_select = True  # it follows the camera; selecting it by accident only gets in the way
    empty[JOB_TAG] = job_id
    collections = [collection for collection in camera.users_collection if collection in _scene_collections(scene)]
    (collections[0] if collections else scene.collection).objects.link(empty)
    empty.parent = camera
    empty.matrix_parent_inverse = Matrix.Identity(4)
    empty.location = placement.center
    empty.rotation_euler = (0.0, 0.0, 0.0)
    empty.scale = (1.0, 1.0, 1.0)
    return f"image empty {empty.name!r} in front of camera {camera.name!r}"


def _scene_collections(scene: bpy.types.Scene) -> set:
    found = {scene.collection}
    stack = [scene.collection]
    while stack:
        for child in stack.pop().children:
            if child not in found:
                found.add(child)
                stack.append(child)
    return found


def import_as_strip(
    scene: bpy.types.Scene, files: list[str], start_frame: int, opacity: float, job_id: str, path: str
) -> str:
    editor = scene.sequence_editor or scene.sequence_editor_create()
    # Blender 5.x: strips / strips_all; 4.2-4.x: sequences / sequences_all
    strips = editor.strips if hasattr(editor, "strips") else editor.sequences
    every_strip = editor.strips_all if hasattr(editor, "strips_all") else editor.sequences_all
    channel = min(MAX_CHANNEL, max((strip.channel for strip in every_strip), default=0) + 1)
    strip = strips.new_image(name=f"Puppet {job_id[:8]}", filepath=path, channel=channel, frame_start=start_frame)
    for name in files[1:]:
        strip.elements.append(name)
    strip.blend_alpha = opacity
    strip[JOB_TAG] = job_id
    return f"strip {strip.name!r} in channel {channel} of the sequencer"


def import_result(scene: bpy.types.Scene, result: bpy.types.PropertyGroup, mode: str) -> str:
    """Import ``result`` into ``scene`` as the panel's settings say; what was made. ImportProblem when it cannot be.

    Opacity, start frame, frame step and Keep Previous come from ``scene.puppet_master``.
    """
    settings = scene.puppet_master
    if mode in ("CAMERA_BACKGROUND", "IMAGE_EMPTY"):
        _require_camera(scene)  # before anything is loaded, so a refusal changes nothing
    if mode not in ("CAMERA_BACKGROUND", "IMAGE_EMPTY", "SEQUENCER"):
        raise ImportProblem(f"Unknown import mode {mode!r}")
    start_frame, opacity = settings.import_start_frame, settings.import_opacity
    folder, files, path = _sequence(result, settings.import_frame_step)
    replaced = 0 if settings.import_keep_previous else remove_previous_imports(scene, mode)
    if mode == "SEQUENCER":  # the strip reads the files itself
        made = import_as_strip(scene, files, start_frame, opacity, result.job_id, path)
    else:
        image = _load_image(path, f"Puppet {result.job_id[:8]} {folder.name}", result.job_id)
        if mode == "CAMERA_BACKGROUND":
            made = import_as_camera_background(scene, image, files, start_frame, opacity)
        else:
            made = import_as_image_empty(scene, image, files, start_frame, opacity, result.job_id)
    end = start_frame + len(files) - 1
    instead = f", replacing {replaced} earlier import(s)" if replaced else ""
    return f"Imported {len(files)} frames ({start_frame}-{end}) as the {made}{instead}"


def _result_at(settings: bpy.types.PropertyGroup, index: int) -> bpy.types.PropertyGroup | None:
    index = settings.active_result_index if index < 0 else index
    return settings.results[index] if 0 <= index < len(settings.results) else None


_MODE_ITEMS = (
    ("CAMERA_BACKGROUND", "Camera Background", "Image sequence as the camera's background, aligned"),
    ("IMAGE_EMPTY", "Image Empty", "Image sequence on an empty in front of the camera"),
    ("SEQUENCER", "Sequencer Strip", "Image strip in the video sequencer"),
)


class PUPPET_OT_import_result(bpy.types.Operator):
    bl_idname = "puppet.import_result"
    bl_label = "Import Result"
    bl_description = "Bring the selected result into the scene as an image sequence (Import As, Opacity, Start Frame)"
    bl_options = {"REGISTER", "UNDO"}

    index: bpy.props.IntProperty(
        name="Result", description="Result in the history (-1: the selected one)", default=-1, min=-1
    )
    mode: bpy.props.EnumProperty(
        name="Import As", description="How to bring the result in (unset: the panel's Import As)", items=_MODE_ITEMS
    )

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        scene = context.scene
        return scene is not None and len(scene.puppet_master.results) > 0

    def execute(self, context: bpy.types.Context) -> set[str]:
        scene = context.scene
        settings = scene.puppet_master
        result = _result_at(settings, self.index)
        if result is None:
            self.report({"ERROR"}, f"No result {self.index} in the history ({len(settings.results)} results)")
            return {"CANCELLED"}
        mode = self.mode if self.properties.is_property_set("mode") else settings.import_mode
        try:
            message = import_result(scene, result, mode)
        except (ImportProblem, OSError) as error:
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        self.report({"INFO"}, message)
        return {"FINISHED"}


def _delete_result_files(directory: str) -> str:
    """Delete a result's video folder (and its held copies, and the job folder once empty); what was deleted."""
    folder = Path(bpy.path.abspath(directory)).resolve()
    job_folder = folder.parent
    # only folders this add-on wrote: video_<k> inside a job folder with the backend's record
    if not (folder.name.startswith("video_") and folder.name[6:].isdigit() and (job_folder / "record.json").exists()):
        raise OSError(f"{folder} does not look like a Puppet Master result folder; delete it by hand")
    for path in [folder, *job_folder.glob(f"{folder.name}_step*")]:
        shutil.rmtree(path, ignore_errors=True)
    if not any(path.is_dir() for path in job_folder.glob("video_*")):
        shutil.rmtree(job_folder, ignore_errors=True)
        return str(job_folder)
    return str(folder)


class PUPPET_OT_remove_result(bpy.types.Operator):
    bl_idname = "puppet.remove_result"
    bl_label = "Remove Result"
    bl_description = "Remove the selected result from the history (its files stay unless Delete Files is on)"
    bl_options = {"REGISTER", "UNDO"}

    index: bpy.props.IntProperty(
        name="Result", description="Result in the history (-1: the selected one)", default=-1, min=-1
    )
    delete_files: bpy.props.BoolProperty(
        name="Delete Files", description="Also delete the result's frames from disk (cannot be undone)", default=False
    )

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        scene = context.scene
        return scene is not None and len(scene.puppet_master.results) > 0

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        if self.delete_files:
            return context.window_manager.invoke_confirm(self, event)
        return self.execute(context)

    def execute(self, context: bpy.types.Context) -> set[str]:
        settings = context.scene.puppet_master
        index = settings.active_result_index if self.index < 0 else self.index
        if not 0 <= index < len(settings.results):
            self.report({"ERROR"}, f"No result {index} in the history ({len(settings.results)} results)")
            return {"CANCELLED"}
        result = settings.results[index]
        job_id, directory = result.job_id, result.directory
        deleted = ""
        if self.delete_files:
            try:
                deleted = _delete_result_files(directory)
            except OSError as error:
                self.report({"ERROR"}, str(error))
                return {"CANCELLED"}
        settings.results.remove(index)
        runtime.forget_result(context.scene, job_id, directory)
        settings.active_result_index = max(0, min(settings.active_result_index, len(settings.results) - 1))
        self.report({"INFO"}, f"Removed result {job_id}" + (f" and deleted {deleted}" if deleted else ""))
        return {"FINISHED"}


classes = (PUPPET_OT_import_result, PUPPET_OT_remove_result)


register, unregister = bpy.utils.register_classes_factory(classes)
