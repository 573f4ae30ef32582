"""Surface points tracked through an animation, their parts, and their visibility from a camera.

Points are drawn once, at the first frame, area-weighted on the evaluated (deformed, modified)
triangles of every rendered mesh. Each point is remembered as (object, triangle corner vertex ids,
barycentric weights) and re-evaluated on the object's evaluated mesh in every frame, so it follows
object transforms, armatures, shape keys and deforming modifiers, provided the evaluated topology
(vertex count) stays constant. Needs ``bpy``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import bpy
import numpy as np
from mathutils import Vector

from .geometry import interpolate_points, sample_surface_points

logger = logging.getLogger(__name__)


@dataclass
class SurfaceTracks:
    """Where the tracked points sit on the meshes; positions are recomputed per frame from this."""

    object_names: list[str]
    vertex_counts: list[int]  # evaluated vertex count of each object at the first frame
    object_index: np.ndarray  # [N] index into object_names
    vertex_ids: np.ndarray  # [N, 3] triangle corners in that object's evaluated mesh
    barycentric: np.ndarray  # [N, 3]
    part_ids: np.ndarray  # [N] index into part_names
    part_names: list[str]


def _evaluated_mesh(obj: bpy.types.Object, depsgraph: bpy.types.Depsgraph, triangles: bool = False):
    """World-space vertices ``(V, 3)`` and, if asked, triangles ``(L, 3)`` of the evaluated object."""
    evaluated = obj.evaluated_get(depsgraph)
    mesh = evaluated.to_mesh()
    try:
        local = np.empty(len(mesh.vertices) * 3, dtype=np.float64)
        mesh.vertices.foreach_get("co", local)
        matrix = np.array(evaluated.matrix_world)
        vertices = local.reshape(-1, 3) @ matrix[:3, :3].T + matrix[:3, 3]
        faces = None
        if triangles:
            faces = np.empty(len(mesh.loop_triangles) * 3, dtype=np.int64)
            mesh.loop_triangles.foreach_get("vertices", faces)
            faces = faces.reshape(-1, 3)
        return vertices, faces
    finally:
        evaluated.to_mesh_clear()


def _deform_bone_names(obj: bpy.types.Object) -> set[str]:
    """Names of the deforming bones of the armatures that skin ``obj`` (empty if not skinned)."""
    names: set[str] = set()
    for modifier in obj.modifiers:
        if modifier.type == "ARMATURE" and modifier.object is not None and modifier.object.type == "ARMATURE":
            names.update(bone.name for bone in modifier.object.data.bones if bone.use_deform)
    return names


def _dominant_groups(
    obj: bpy.types.Object, vertex_ids: np.ndarray, barycentric: np.ndarray, evaluated_vertex_count: int
) -> list[str | None]:
    """Per point, the deforming vertex group (bone) with the largest barycentric-weighted skin weight."""
    bones = _deform_bone_names(obj)
    groups = {group.index: group.name for group in obj.vertex_groups if group.name in bones}
    if not groups or len(obj.data.vertices) != evaluated_vertex_count:
        return [None] * len(vertex_ids)  # not skinned, or modifiers renumbered the vertices
    weights = {}
    for vertex in np.unique(vertex_ids):
        weights[vertex] = [(g.group, g.weight) for g in obj.data.vertices[int(vertex)].groups if g.group in groups]
    labels: list[str | None] = []
    for corners, bary in zip(vertex_ids, barycentric, strict=True):
        score: dict[int, float] = {}
        for vertex, corner_weight in zip(corners, bary, strict=True):
            for group, weight in weights[vertex]:
                score[group] = score.get(group, 0.0) + corner_weight * weight
        labels.append(groups[max(score, key=score.get)] if score else None)
    return labels


def sample_tracks(
    objects: list[bpy.types.Object], depsgraph: bpy.types.Depsgraph, count: int, rng: np.random.Generator
) -> SurfaceTracks:
    """Draw ``count`` surface points on ``objects`` in the current (first) frame, and label their parts.

    A part is a mesh object; for a skinned mesh (armature modifier) it is the object's dominant
    deforming bone at that point, named ``"Object:Bone"``.
    """
    meshes = [_evaluated_mesh(obj, depsgraph, triangles=True) for obj in objects]
    object_index, vertex_ids, barycentric = sample_surface_points(meshes, count, rng)
    labels: list[str] = [""] * count
    for index, obj in enumerate(objects):
        members = np.flatnonzero(object_index == index)
        if members.size == 0:
            continue
        groups = _dominant_groups(obj, vertex_ids[members], barycentric[members], len(meshes[index][0]))
        for member, group in zip(members, groups, strict=True):
            labels[member] = obj.name if group is None else f"{obj.name}:{group}"
    part_names = sorted(set(labels))
    part_ids = np.array([part_names.index(label) for label in labels], dtype=np.int32)
    return SurfaceTracks(
        object_names=[obj.name for obj in objects],
        vertex_counts=[len(vertices) for vertices, _ in meshes],
        object_index=object_index,
        vertex_ids=vertex_ids,
        barycentric=barycentric,
        part_ids=part_ids,
        part_names=part_names,
    )


def track_positions(
    tracks: SurfaceTracks, objects: list[bpy.types.Object], depsgraph: bpy.types.Depsgraph
) -> np.ndarray:
    """World positions ``(N, 3)`` of the tracked points in the current frame."""
    positions = np.zeros((len(tracks.object_index), 3))
    for index, obj in enumerate(objects):
        members = np.flatnonzero(tracks.object_index == index)
        if members.size == 0:
            continue
        vertices, _ = _evaluated_mesh(obj, depsgraph)
        if len(vertices) != tracks.vertex_counts[index]:
            raise ValueError(
                f"object {obj.name!r} has {len(vertices)} evaluated vertices in frame {depsgraph.scene.frame_current}"
                f" but {tracks.vertex_counts[index]} in the first frame: point tracking needs constant topology"
                " (apply or remove topology-changing modifiers such as Remesh, Decimate or particle instancing)"
            )
        positions[members] = interpolate_points(vertices, tracks.vertex_ids[members], tracks.barycentric[members])
    return positions


def unoccluded(
    scene: bpy.types.Scene,
    depsgraph: bpy.types.Depsgraph,
    origin: np.ndarray,
    points: np.ndarray,
    candidates: np.ndarray,
    epsilon: float,
) -> np.ndarray:
    """Depth test: True where the ray from ``origin`` first meets the scene within ``epsilon`` of the point.

    Only ``candidates`` (e.g. points inside the image) are tested; the rest are False. A ray is cast
    towards each point, stopping ``epsilon`` short of it: any hit means something is in front.
    """
    visible = np.zeros(len(points), dtype=bool)
    start = Vector(origin.tolist())
    offsets = points - origin
    distances = np.linalg.norm(offsets, axis=1)
    for index in np.flatnonzero(candidates):
        distance = float(distances[index])
        if distance <= epsilon:
            visible[index] = True
            continue
        direction = Vector((offsets[index] / distance).tolist())
        hit = scene.ray_cast(depsgraph, start, direction, distance=distance - epsilon)[0]
        visible[index] = not hit
    return visible
