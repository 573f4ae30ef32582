"""The Blender side of ``render-animations``: load an asset, add cameras and lights, render a frame.

Needs the ``bpy`` module (``pip install bpy``), imported by ``render.py`` only when rendering.
Nothing in the asset's scene is moved or rescaled: the pipeline only adds its own cameras (and
lights for engines that need them) and sets render settings.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import bpy
import numpy as np
from mathutils import Matrix

from .geometry import LENS_MM, SENSOR_WIDTH_MM, framing_distance, look_at_matrix_world, orbit_positions

logger = logging.getLogger(__name__)

ENGINES = {"workbench": "BLENDER_WORKBENCH", "cycles": "CYCLES", "eevee": "BLENDER_EEVEE"}
CAMERA_PREFIX = "PuppetMaster_View_"


def load_asset(path: Path) -> bool:
    """Open a .blend, or import a .glb/.gltf/.fbx into an empty scene; True if it was imported."""
    suffix = path.suffix.lower()
    if not path.is_file():
        raise FileNotFoundError(f"asset {os.fspath(path)!r} does not exist")
    if suffix == ".blend":
        bpy.ops.wm.open_mainfile(filepath=str(path), load_ui=False)
        return False
    if suffix not in (".glb", ".gltf", ".fbx"):
        raise ValueError(f"asset {path.name!r}: unsupported format {suffix!r}; use .blend, .glb, .gltf or .fbx")
    bpy.ops.wm.read_factory_settings(use_empty=True)
    if suffix == ".fbx":
        bpy.ops.import_scene.fbx(filepath=str(path), use_anim=True)
    else:
        bpy.ops.import_scene.gltf(filepath=str(path))
    return True


def animation_frame_range(scene: bpy.types.Scene, imported: bool) -> tuple[int, int]:
    """The frames to render: the scene's range for a .blend, the actions' range for an import."""
    if imported and bpy.data.actions:
        starts, ends = zip(*(action.frame_range for action in bpy.data.actions), strict=True)
        start, end = int(np.floor(min(starts))), int(np.ceil(max(ends)))
        if end > start:
            return start, end
    return scene.frame_start, scene.frame_end


def renderable_meshes(scene: bpy.types.Scene) -> list[bpy.types.Object]:
    """Mesh objects that appear in the render, in a stable (name) order."""
    meshes = [obj for obj in scene.objects if obj.type == "MESH" and not obj.hide_render and obj.visible_get()]
    if not meshes:
        raise ValueError(f"scene {scene.name!r} has no visible mesh object to render")
    return sorted(meshes, key=lambda obj: obj.name)


def world_bound_corners(objects: list[bpy.types.Object], depsgraph: bpy.types.Depsgraph) -> np.ndarray:
    """World-space corners ``(8 * len(objects), 3)`` of the objects' evaluated bounding boxes."""
    corners = []
    for obj in objects:
        evaluated = obj.evaluated_get(depsgraph)
        matrix = np.array(evaluated.matrix_world)
        local = np.array([tuple(corner) for corner in evaluated.bound_box])
        corners.append(local @ matrix[:3, :3].T + matrix[:3, 3])
    return np.concatenate(corners)


def configure_render(scene: bpy.types.Scene, engine: str, resolution: int, samples: int) -> None:
    """Square RGBA PNG frames with a transparent film on the chosen engine."""
    render = scene.render
    try:
        render.engine = ENGINES[engine]
    except TypeError:  # Blender 4.2-4.x calls the EEVEE engine BLENDER_EEVEE_NEXT
        render.engine = "BLENDER_EEVEE_NEXT"
    render.resolution_x = render.resolution_y = resolution
    render.resolution_percentage = 100
    render.pixel_aspect_x = render.pixel_aspect_y = 1.0
    render.use_border = False
    render.film_transparent = True
    render.image_settings.file_format = "PNG"
    render.image_settings.color_mode = "RGBA"
    render.image_settings.color_depth = "8"
    if engine == "workbench":
        scene.display.shading.light = "STUDIO"
        scene.display.shading.color_type = "TEXTURE"  # material colour where there is no texture
    elif engine == "cycles":
        scene.cycles.samples = samples
    else:
        scene.eevee.taa_render_samples = samples


def add_cameras(
    scene: bpy.types.Scene, center: np.ndarray, radius: float, azimuths: np.ndarray, elevations: np.ndarray
) -> list[bpy.types.Object]:
    """One static camera per view on a sphere around the object, framing its bounding sphere."""
    distance = framing_distance(radius, LENS_MM, SENSOR_WIDTH_MM)
    cameras = []
    for index, position in enumerate(orbit_positions(center, distance, azimuths, elevations)):
        data = bpy.data.cameras.new(f"{CAMERA_PREFIX}{index:02d}")
        data.lens, data.sensor_width, data.sensor_fit = LENS_MM, SENSOR_WIDTH_MM, "HORIZONTAL"
        data.shift_x = data.shift_y = 0.0
        data.clip_start = max(1e-4, (distance - radius) * 0.05)
        data.clip_end = (distance + radius) * 2.0
        camera = bpy.data.objects.new(data.name, data)
        scene.collection.objects.link(camera)
        camera.matrix_world = Matrix(look_at_matrix_world(position, center).tolist())  # rows
        cameras.append(camera)
    bpy.context.view_layer.update()
    return cameras


def add_lights_if_needed(scene: bpy.types.Scene, engine: str, radius: float) -> None:
    """A key and a fill sun plus a grey world for Cycles/EEVEE when the scene brings no light."""
    if engine == "workbench" or any(obj.type == "LIGHT" for obj in scene.objects):
        return
    for name, strength, rotation in (("Key", 3.0, (0.8, 0.2, 0.6)), ("Fill", 1.0, (1.1, 0.0, 3.6))):
        light = bpy.data.lights.new(f"PuppetMaster_{name}", type="SUN")
        light.energy = strength
        obj = bpy.data.objects.new(light.name, light)
        obj.rotation_euler = rotation
        scene.collection.objects.link(obj)
    if scene.world is None:
        scene.world = bpy.data.worlds.new("PuppetMaster_World")
    scene.world.color = (0.3, 0.3, 0.3)
    logger.debug("added two sun lights (scene radius %.3g)", radius)


@contextlib.contextmanager
def _quiet_stdout() -> Iterator[None]:
    """Silence Blender's per-frame "Saved: ..." lines (C-level stdout), keeping stderr."""
    with open(os.devnull, "w") as devnull:
        saved = os.dup(1)
        try:
            os.dup2(devnull.fileno(), 1)
            yield
        finally:
            os.dup2(saved, 1)
            os.close(saved)


def render_still(scene: bpy.types.Scene, camera: bpy.types.Object, path: Path) -> None:
    """Render the current frame through ``camera`` to ``path`` (written whole, then renamed)."""
    scene.camera = camera
    partial = path.with_name(f".{path.stem}.partial.png")
    scene.render.filepath = str(partial)
    with _quiet_stdout():
        bpy.ops.render.render(write_still=True)
    if not partial.is_file():
        raise RuntimeError(f"Blender did not write {partial}; see its messages above")
    os.replace(partial, path)
