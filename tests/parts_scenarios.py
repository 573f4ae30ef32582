"""Generate with the part pass, inside Blender (the ``bpy`` module) in a child process; not collected by pytest.

Run as ``python tests/parts_scenarios.py cabinet --zip ZIP --report OUT.json --url URL [--no-parts]
[--without-extras]`` (see ``tests/addon_support.run_scenario``). The scene: a wide box (the body) and a
smaller box in front of it (the door) that covers part of it, both the same grey, so in the capture
only depth tells them apart. One drag starts on the door. The report has the results, the capture
size and each box's pixel rectangle in the capture, for the pytest side to look at the frames.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import bpy
from addon_scenarios import call, result_info, run_scenario_script, set_backend
from bpy_extras.object_utils import world_to_camera_view
from mathutils import Vector

CAPTURE = 128


def add_box(name: str, size: tuple[float, float, float], location: tuple[float, float, float]) -> bpy.types.Object:
    bpy.ops.mesh.primitive_cube_add(size=1.0, location=location)
    box = bpy.context.object
    box.name = name
    box.scale = size
    return box


def pixel_rect(scene: bpy.types.Scene, obj: bpy.types.Object, width: int, height: int) -> list[int]:
    """``[left, top, right, bottom]`` capture pixels of the object's projected corners (y down)."""
    bpy.context.view_layer.update()
    points = [world_to_camera_view(scene, scene.camera, obj.matrix_world @ Vector(corner)) for corner in obj.bound_box]
    xs = [point.x * width for point in points]
    ys = [(1.0 - point.y) * height for point in points]
    return [round(min(xs)), round(min(ys)), round(max(xs)), round(max(ys))]


def scenario_cabinet(args: argparse.Namespace, report: dict[str, Any]) -> None:
    set_backend(args.url)
    bpy.ops.wm.read_homefile(use_empty=True)
    scene = bpy.context.scene
    body = add_box("Body", (3.0, 1.0, 2.0), (-0.6, 0.0, 0.0))
    door = add_box("Door", (1.2, 0.2, 1.4), (0.9, -1.5, 0.0))
    camera = bpy.data.objects.new("Camera", bpy.data.cameras.new("Camera"))
    scene.collection.objects.link(camera)
    camera.location = (0.0, -10.0, 0.0)
    camera.rotation_euler = (Vector((0.0, 1.0, 0.0))).to_track_quat("-Z", "Y").to_euler()
    scene.camera = camera
    scene.render.resolution_x, scene.render.resolution_y = 400, 300
    settings = scene.puppet_master
    settings.capture_resolution = CAPTURE
    settings.steps = 2
    settings.use_random_seed = False
    settings.send_parts = not args.no_parts
    width, height = CAPTURE, CAPTURE * 3 // 4
    report["capture_size"] = [width, height]
    report["rects"] = {obj.name: pixel_rect(scene, obj, width, height) for obj in (body, door)}
    left, top, right, bottom = report["rects"]["Door"]
    start = ((left + right) / 2 / width, (top + bottom) / 2 / height)
    assert bpy.ops.puppet.add_drag(start=start, end=(start[0] + 0.15, start[1] - 0.1)) == {"FINISHED"}
    report["colours_before"] = [list(obj.color) for obj in scene.objects]
    started = time.perf_counter()
    report["generate"] = call(bpy.ops.puppet.generate, auto_import=False)
    report["generate_s"] = time.perf_counter() - started
    report["colours_after"] = [list(obj.color) for obj in scene.objects]
    report["results"] = result_info(scene)


SCENARIOS = {"cabinet": scenario_cabinet}


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-parts", action="store_true", help="Send Parts off")


if __name__ == "__main__":
    sys.exit(run_scenario_script(SCENARIOS, _arguments))
