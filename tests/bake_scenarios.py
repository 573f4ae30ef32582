"""Bake Motion and Drags from Animation scenarios, run inside Blender (the ``bpy`` module) in a child process.

Run as ``python tests/bake_scenarios.py SCENARIO --zip ZIP --report OUT.json [options]`` (see
``tests/addon_support.run_scenario``). The scenes have ground truth:

- ``hinge``: a box whose lid (origin on the hinge, local X along it) opens from 0 to 65 degrees;
- ``drawer``: a cabinet whose drawer (origin at its front, local Y along its depth) slides out by
  60 % of its 0.9 m depth.

Both are textured (Workbench shows image textures) so points can be tracked, and are seen by
cameras from several angles. ``render`` renders the animation to 14 frames per case, ``bake``
rebuilds each case with the part at rest (animation removed), registers the frames as a result
and runs Bake Motion, ``blocking`` makes drags from a two-key blocking pass, generates with the
preview engine and bakes the result. Not collected by pytest.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import bpy
import numpy as np
from mathutils import Matrix, Vector

sys.path.insert(0, str(Path(__file__).resolve().parent))
from addon_scenarios import call, run_scenario_script, set_backend  # noqa: E402

FRAMES = 14
HINGE_BONE = "hinge"
RESOLUTION = (320, 240)
LID_OPEN_DEGREES = 65.0
DRAWER_DEPTH = 0.9
DRAWER_TRAVEL = 0.6 * DRAWER_DEPTH
# Cameras (location, point looked at) per scene: the lid's top stays in view as it opens backwards,
# the drawer's front as it comes out.
CAMERAS = {
    "hinge": [
        ((3.0, 1.2, 2.6), (0.0, 0.0, 0.5)),
        ((1.2, 3.2, 2.4), (0.0, 0.0, 0.6)),
        ((-2.6, 2.2, 3.0), (0.0, 0.0, 0.5)),
        ((3.6, 1.6, 2.8), (0.0, 0.0, 0.9)),  # -1: the tall box of the blocking round trip
    ],
    "drawer": [
        ((2.2, -3.2, 2.2), (0.0, 0.0, 0.4)),
        ((-2.8, -2.4, 1.4), (0.0, 0.0, 0.4)),
        ((0.6, -3.4, 1.6), (0.0, 0.0, 0.4)),
    ],
}


# --- scene -----------------------------------------------------------------------------------------


def smoothstep(u: float) -> float:
    return u * u * (3 - 2 * u)


def truth_values(scene_kind: str) -> list[float]:
    """Per video frame: the lid's signed angle about its hinge (degrees) or the drawer's travel (metres)."""
    total = -LID_OPEN_DEGREES if scene_kind == "hinge" else -DRAWER_TRAVEL
    return [total * smoothstep(index / (FRAMES - 1)) for index in range(FRAMES)]


def noise_material(
    name: str, tint: tuple[float, float, float], seed: int, contrast: float = 0.55
) -> bpy.types.Material:
    """A material with a tinted, smooth random texture (32 x 32 texels, linear filtering): trackable detail."""
    rng = np.random.default_rng(seed)
    size = 32
    noise = rng.random((size, size))
    shade = 1.0 - contrast + contrast * noise
    pixels = np.ones((size, size, 4))
    pixels[..., :3] = shade[..., None] * np.asarray(tint)
    image = bpy.data.images.new(f"{name} texture", size, size)
    image.pixels.foreach_set(pixels.ravel().astype(np.float32))
    image.pack()
    material = bpy.data.materials.new(name)
    material.use_nodes = True
    nodes = material.node_tree.nodes
    texture = nodes.new("ShaderNodeTexImage")
    texture.image = image
    texture.interpolation = "Linear"
    bsdf = next(node for node in nodes if node.type == "BSDF_PRINCIPLED")
    material.node_tree.links.new(texture.outputs["Color"], bsdf.inputs["Base Color"])
    return material


def box(name: str, size: tuple[float, float, float], offset: tuple[float, float, float], material) -> bpy.types.Object:
    """A box of ``size`` whose mesh is shifted by ``offset`` from the object's origin (so the origin can be a hinge)."""
    bpy.ops.mesh.primitive_cube_add(size=1.0)
    obj = bpy.context.active_object
    obj.name = name
    obj.data.transform(Matrix.Translation(offset) @ Matrix.Diagonal((*size, 1.0)))
    obj.data.materials.append(material)
    return obj


def look_from(location: tuple[float, float, float], target: tuple[float, float, float]) -> bpy.types.Object:
    camera = bpy.data.objects.new("Camera", bpy.data.cameras.new("Camera"))
    bpy.context.scene.collection.objects.link(camera)
    camera.location = location
    direction = Vector(target) - Vector(location)
    camera.rotation_euler = direction.to_track_quat("-Z", "Y").to_euler()
    camera.data.lens = 40.0
    return camera


def build(
    scene_kind: str, camera_index: int, contrast: float = 0.55, box_height: float = 0.6
) -> tuple[bpy.types.Object, str]:
    """The scene with its part animated over frames 1..14; (the part, its axis name).

    ``contrast`` of the textures; ``box_height`` of the hinged box (camera ``-1``: a low side view of a tall box).
    """
    bpy.ops.wm.read_homefile(use_empty=True)
    scene = bpy.context.scene
    scene.render.engine = "BLENDER_WORKBENCH"
    scene.display.shading.light = "STUDIO"
    scene.display.shading.color_type = "TEXTURE"
    scene.render.resolution_x, scene.render.resolution_y = RESOLUTION
    scene.render.film_transparent = True
    scene.frame_start, scene.frame_end = 1, FRAMES
    if scene_kind == "hinge":
        body = noise_material("Box", (0.35, 0.5, 0.9), 1, contrast)
        box("Box", (1.0, 1.0, box_height), (0.0, 0.0, box_height / 2), body)
        part = box("Lid", (1.0, 1.0, 0.06), (0.0, -0.5, 0.03), noise_material("Lid", (0.95, 0.45, 0.3), 2, contrast))
        part.location = (0.0, 0.5, box_height)  # the hinge: the box's top back edge
        axis, channel = "X", "rotation_euler"
    else:
        box("Cabinet", (1.2, 1.0, 0.8), (0.0, 0.0, 0.4), noise_material("Cabinet", (0.4, 0.75, 0.45), 3))
        material = noise_material("Drawer", (0.95, 0.8, 0.35), 4)
        part = box("Drawer", (0.9, DRAWER_DEPTH, 0.3), (0.0, DRAWER_DEPTH / 2, 0.0), material)
        part.location = (0.0, -0.52, 0.45)  # its front, just proud of the cabinet's front
        axis, channel = "Y", "location"
    scene.camera = look_from(*CAMERAS[scene_kind][camera_index])
    rest = tuple(getattr(part, channel))
    for index, value in enumerate(truth_values(scene_kind)):
        moved = list(rest)
        moved[0 if scene_kind == "hinge" else 1] += math.radians(value) if scene_kind == "hinge" else value
        setattr(part, channel, moved)
        part.keyframe_insert(channel, frame=1 + index)
    scene.frame_set(1)
    return part, axis


def rig_lid(lid: bpy.types.Object) -> bpy.types.Object:
    """Move the lid's animation onto a bone: an armature with bone ``hinge`` along the hinge (its Y axis is
    world X), the lid parented to the bone. Returns the armature."""
    data = bpy.data.armatures.new("Rig")
    rig = bpy.data.objects.new("Rig", data)
    bpy.context.scene.collection.objects.link(rig)
    rig.location = lid.location
    bpy.context.view_layer.objects.active = rig
    bpy.ops.object.mode_set(mode="EDIT")
    bone = data.edit_bones.new(HINGE_BONE)
    bone.head, bone.tail = (0.0, 0.0, 0.0), (0.3, 0.0, 0.0)
    bpy.ops.object.mode_set(mode="OBJECT")
    lid.animation_data_clear()
    lid.rotation_euler = (0.0, 0.0, 0.0)
    bpy.context.view_layer.update()
    placed = lid.matrix_world.copy()
    lid.parent, lid.parent_type, lid.parent_bone = rig, "BONE", HINGE_BONE
    bpy.context.view_layer.update()
    lid.matrix_world = placed
    pose_bone = rig.pose.bones[HINGE_BONE]
    pose_bone.rotation_mode = "XYZ"
    for index, value in enumerate(truth_values("hinge")):
        pose_bone.rotation_euler = (0.0, math.radians(value), 0.0)  # about the bone's Y: world X
        pose_bone.keyframe_insert("rotation_euler", frame=1 + index)
    bpy.context.scene.frame_set(1)
    return rig


def select_bone(rig: bpy.types.Object, name: str) -> None:
    """Pose Mode on ``rig`` with only bone ``name`` selected."""
    select_only(rig)
    bpy.ops.object.mode_set(mode="POSE")
    for pose_bone in rig.pose.bones:  # Blender 5 selects pose bones, 4.x their bones
        owner = pose_bone if hasattr(pose_bone, "select") else pose_bone.bone
        owner.select = pose_bone.name == name


def at_rest(part: bpy.types.Object, scene_kind: str) -> None:
    """Remove the part's animation and put it where it starts."""
    part.animation_data_clear()
    if scene_kind == "hinge":
        part.rotation_euler = (0.0, 0.0, 0.0)
    else:
        part.location = (0.0, -0.52, 0.45)
    bpy.context.view_layer.update()


def measured_values(part: bpy.types.Object, scene_kind: str, axis_name: str) -> list[float]:
    """The part's angle (degrees) or travel (metres) relative to frame 1, per frame, as keyed."""
    scene = bpy.context.scene
    scene.frame_set(1)
    rest = part.matrix_world.copy()
    axis = (rest.to_3x3() @ Vector({"X": (1, 0, 0), "Y": (0, 1, 0)}[axis_name])).normalized()
    values = []
    for frame in range(1, FRAMES + 1):
        scene.frame_set(frame)
        current = part.matrix_world
        if scene_kind == "hinge":
            relative = (current.to_3x3() @ rest.to_3x3().inverted()).to_quaternion()
            angle, rotation_axis = relative.angle, relative.axis
            values.append(math.degrees(angle) * (1 if rotation_axis.dot(axis) >= 0 else -1))
        else:
            values.append((current.to_translation() - rest.to_translation()).dot(axis))
    scene.frame_set(1)
    return values


def register_result(job_id: str, directory: str) -> None:
    settings = bpy.context.scene.puppet_master
    result = settings.results.add()
    result.job_id, result.directory, result.engine = job_id, directory, "preview"
    result.num_frames, result.variation, result.created = FRAMES, 1, time.strftime("%Y-%m-%d %H:%M:%S")
    settings.active_result_index = len(settings.results) - 1
    settings.import_start_frame, settings.import_frame_step = 1, 1


def select_only(obj: bpy.types.Object) -> None:
    for other in bpy.context.view_layer.objects:
        other.select_set(False)
    obj.select_set(True)
    bpy.context.view_layer.objects.active = obj


def bake(
    part: bpy.types.Object, scene_kind: str, axis_name: str, constraint: str, rig: bpy.types.Object | None = None
) -> dict[str, Any]:
    """Bake Motion on ``part`` (or, with ``rig``, on its hinge bone); the outcome and the part's keyed values."""
    settings = bpy.context.scene.puppet_master
    settings.bake_constraint, settings.bake_axis = constraint, "Y" if rig is not None else axis_name
    if rig is None:
        select_only(part)
    else:
        select_bone(rig, HINGE_BONE)
    started = time.perf_counter()
    outcome = call(bpy.ops.puppet.bake_motion)
    outcome["seconds"] = time.perf_counter() - started
    if rig is not None:
        bpy.ops.object.mode_set(mode="OBJECT")
        outcome["bone_keys"] = sorted({int(key.co[0]) for curve in action_curves(rig) for key in curve.keyframe_points})
    outcome["values"] = measured_values(part, scene_kind, axis_name)
    return outcome


def action_curves(obj: bpy.types.Object) -> list:
    """The F-curves of an object's action (its slot's channel bag in Blender 4.4+)."""
    animation = obj.animation_data
    if animation is None or animation.action is None:
        return []
    if hasattr(animation.action, "fcurves"):
        return list(animation.action.fcurves)
    from bpy_extras import anim_utils

    bag = anim_utils.action_get_channelbag_for_slot(animation.action, animation.action_slot)
    return list(bag.fcurves) if bag is not None else []


# --- scenarios -------------------------------------------------------------------------------------


def scenario_render(args: argparse.Namespace, report: dict[str, Any]) -> None:
    """Render every case in ``--cases`` (``[{"name", "scene", "camera"}]``) into ``--out/<name>/``."""
    cases = json.loads(Path(args.cases).read_text())
    for case in cases:
        part, _axis = build(case["scene"], case["camera"])
        if case.get("rig"):
            rig_lid(part)
        scene = bpy.context.scene
        folder = Path(args.out) / case["name"]
        folder.mkdir(parents=True, exist_ok=True)
        for index in range(FRAMES):
            scene.frame_set(1 + index)
            scene.render.filepath = str(folder / f"frame_{index:04d}.png")
            bpy.ops.render.render(write_still=True)
        case["frames"] = str(folder)
        case["truth"] = truth_values(case["scene"])
    report["cases"] = cases


def scenario_bake(args: argparse.Namespace, report: dict[str, Any]) -> None:
    """Bake each case of ``--cases`` (with ``job_id`` and ``frames``) from its rest pose."""
    set_backend(args.url)
    results = []
    for case in json.loads(Path(args.cases).read_text()):
        part, axis_name = build(case["scene"], case["camera"])
        rig = rig_lid(part) if case.get("rig") else None
        if rig is not None:
            rig.animation_data_clear()
            rig.pose.bones[HINGE_BONE].rotation_euler = (0.0, 0.0, 0.0)
        else:
            at_rest(part, case["scene"])
        register_result(case["job_id"], case["frames"])
        constraint = case.get("constraint") or ("HINGE" if case["scene"] == "hinge" else "SLIDE")
        results.append({**case, "constraint": constraint, **bake(part, case["scene"], axis_name, constraint, rig)})
    report["cases"] = results


def scenario_refusals(args: argparse.Namespace, report: dict[str, Any]) -> None:
    """Clear refusals that change nothing: no selection, a part the camera cannot see, the backend down."""
    set_backend(args.url)
    part, _axis = build("hinge", 0)
    at_rest(part, "hinge")
    report["no_result"] = call(bpy.ops.puppet.bake_motion)
    register_result("J" * 22, args.frames)
    for obj in bpy.context.view_layer.objects:
        obj.select_set(False)
    report["nothing_selected"] = call(bpy.ops.puppet.bake_motion)
    select_only(part)
    part.location.z += 50.0  # far above the camera's view
    report["unseen"] = call(bpy.ops.puppet.bake_motion)
    part.location.z -= 50.0
    report["unknown_job"] = call(bpy.ops.puppet.bake_motion)
    report["keys_after"] = part.animation_data is not None and part.animation_data.action is not None
    report["drags_unanimated"] = call(bpy.ops.puppet.drags_from_animation)


def blocking_scene(degrees: float, contrast: float) -> tuple[bpy.types.Object, str]:
    """The loop's starting point: the lid keyed at two frames only (closed at 1, open ``degrees`` at 14).

    A tall box seen from the side: the lid is a clear part (a seam all round, a fifth of the object),
    which the preview engine, cutting parts by their edges, moves whole.
    """
    part, axis_name = build("hinge", -1, contrast, box_height=1.2)
    part.animation_data_clear()
    part.rotation_euler = (0.0, 0.0, 0.0)
    part.keyframe_insert("rotation_euler", frame=1)
    part.rotation_euler = (math.radians(-degrees), 0.0, 0.0)
    part.keyframe_insert("rotation_euler", frame=FRAMES)
    settings = bpy.context.scene.puppet_master
    settings.num_frames, settings.steps, settings.use_random_seed, settings.seed = FRAMES, 2, False, 5
    settings.capture_resolution = max(RESOLUTION)
    settings.import_start_frame, settings.import_frame_step = 1, 1
    select_only(part)
    return part, axis_name


def scenario_blocking(args: argparse.Namespace, report: dict[str, Any]) -> None:
    """Two-key blocking -> Drags from Animation -> Generate (preview engine) -> Bake Motion, on the lid."""
    set_backend(args.url)
    part, axis_name = blocking_scene(args.blocking_degrees, args.contrast)
    scene = bpy.context.scene
    settings = scene.puppet_master
    report["blocking"] = measured_values(part, "hinge", axis_name)
    report["drags_op"] = call(bpy.ops.puppet.drags_from_animation)
    report["drags"] = [[tuple(point.co) for point in drag.points] for drag in settings.drags]
    scene.frame_set(1)
    report["generate"] = call(bpy.ops.puppet.generate, auto_import=False)
    report["results"] = [(result.job_id, result.num_frames) for result in settings.results]
    at_rest(part, "hinge")
    report["bake"] = bake(part, "hinge", axis_name, "HINGE")


SCENARIOS = {
    "render": scenario_render,
    "bake": scenario_bake,
    "refusals": scenario_refusals,
    "blocking": scenario_blocking,
}


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cases", default="")
    parser.add_argument("--out", default="")
    parser.add_argument("--frames", default="")
    parser.add_argument("--blocking-degrees", type=float, default=60.0)
    parser.add_argument("--contrast", type=float, default=0.3, help="texture contrast of the blocking scene")


if __name__ == "__main__":
    sys.exit(run_scenario_script(SCENARIOS, _arguments))
