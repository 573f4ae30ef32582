"""Bones as parts in the part pass: the pixels of a mesh that an armature deforms, split by bone.

The part pass renders each object in one colour, so a character skinned to an armature would be one
part. For such a mesh (an Armature modifier whose armature has deform bones) each pixel is sent back
into the scene: the depth pass gives the point it shows, the nearest face of the evaluated (posed)
mesh is found in a BVH tree, and the pixel takes the id of that face's bone, the vertex group with
the largest summed weight over the face's vertices (as Bake Motion decides which bone a face moves
with, :class:`.parts.Ownership`). Faces without bone weights, and meshes whose modifiers change the
face count, keep the object's id.
"""

from __future__ import annotations

from array import array

import bpy
from mathutils import Vector
from mathutils.bvhtree import BVHTree

from ..core.camera import scene_camera
from ..core.part_pass import MAX_PART_ID, Splitter, camera_point
from .parts import Ownership, Part


def _deforming_armatures(obj: bpy.types.Object) -> list[bpy.types.Object]:
    """Armature objects that deform ``obj`` through an Armature modifier shown in renders."""
    return [
        modifier.object
        for modifier in getattr(obj, "modifiers", ())
        if modifier.type == "ARMATURE" and modifier.object is not None and modifier.show_render
    ]


def bone_splitter(context: bpy.types.Context, part_ids: dict[str, int]) -> Splitter | None:
    """A splitter for :func:`..core.part_pass.part_pass_from_exr` that gives each deform bone of the
    view layer's skinned meshes a part id of its own (after the objects' ``part_ids``); None when no
    mesh is skinned."""
    skinned = {
        part_ids[obj.name]: obj
        for obj in context.view_layer.objects
        if obj.type == "MESH" and obj.name in part_ids and _deforming_armatures(obj)
    }
    if not skinned:
        return None
    armatures = {armature for obj in skinned.values() for armature in _deforming_armatures(obj)}
    bones = [Part(armature, bone.name) for armature in armatures for bone in armature.data.bones if bone.use_deform]
    ownership = Ownership(bones)
    camera_matrix, params = scene_camera(context.scene)
    camera_matrix = camera_matrix.normalized()  # Blender renders through the unscaled camera
    depsgraph = context.evaluated_depsgraph_get()
    bounds = params.frame_bounds()
    perspective = params.projection == "PERSP"

    def split(ids: array, depth: array, width: int, height: int) -> None:
        bone_ids: dict[int, int] = {}  # index into ``bones`` -> part id
        next_id = max(part_ids.values()) + 1
        pixels: dict[int, list[int]] = {}
        for index, part in enumerate(ids):
            if part in skinned:
                pixels.setdefault(part, []).append(index)
        for object_id, indices in pixels.items():
            obj = skinned[object_id]
            evaluated = obj.evaluated_get(depsgraph)
            tree = BVHTree.FromObject(evaluated, depsgraph)
            faces = len(evaluated.data.polygons)
            to_local = evaluated.matrix_world.inverted() @ camera_matrix
            face_bones: dict[int | None, int | None] = {None: None}  # many pixels show one face
            for index in indices:
                point = camera_point(index, depth[index], width, height, bounds, perspective)
                face = tree.find_nearest(to_local @ Vector(point))[2]
                if face not in face_bones:
                    face_bones[face] = ownership.owner(obj, face, faces)
                bone = face_bones[face]
                if bone is None:
                    continue
                if bone not in bone_ids:
                    if next_id > MAX_PART_ID:
                        return  # no ids left: the rest keep their objects' ids
                    bone_ids[bone], next_id = next_id, next_id + 1
                ids[index] = bone_ids[bone]

    return split
