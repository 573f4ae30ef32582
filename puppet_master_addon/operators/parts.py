"""The parts Bake Motion and Drags from Animation work on: selected objects, or selected pose bones.

A part's *own geometry* is what moves with it and with nothing more specific:

- an object part: the object itself, and its descendants up to (not including) another part;
- a bone part: meshes parented to the bone (and their descendants), and the faces of skinned meshes
  (Armature modifier) whose vertices are weighted most to that bone.

Points are sampled by casting rays from the scene camera over a grid covering the part's projected
bounds: a hit counts when it lands on the part's own geometry, so what covers the part (another part,
the rest of the model) is left out. Hits well inside the part are preferred, since a tracker window
on the outline sees the background slide under it; farthest-point sampling spreads them.
numpy is used through the bpy-free ``core`` modules, imported by the operators after checking for it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import bpy
from mathutils import Matrix, Vector

# Grid cells across the longer side of a part's projected bounds: ~1,600 rays per part at most.
GRID_CELLS = 40
# Never finer than this share of the frame (a part far away is sampled at this spacing).
MIN_SPACING = 1.0 / 512
AXES = {"X": (1.0, 0.0, 0.0), "Y": (0.0, 1.0, 0.0), "Z": (0.0, 0.0, 1.0)}
_GEOMETRY_TYPES = {"MESH", "CURVE", "SURFACE", "META", "FONT"}


@dataclass(eq=False)
class Part:
    """A selected object, or a selected pose bone of an armature object (``bone`` is its name)."""

    obj: bpy.types.Object
    bone: str = ""

    @property
    def name(self) -> str:
        return f"{self.obj.name}: {self.bone}" if self.bone else self.obj.name

    @property
    def pose_bone(self) -> bpy.types.PoseBone | None:
        return self.obj.pose.bones.get(self.bone) if self.bone else None

    def world_matrix(self) -> Matrix:
        """Where the part is now: the object's world matrix, or the bone's pose matrix in world space."""
        if self.bone:
            return self.obj.matrix_world @ self.pose_bone.matrix
        return self.obj.matrix_world.copy()

    def pivot(self) -> Vector:
        """The point the part turns about: the object's origin, or the bone's head."""
        return self.world_matrix().to_translation()

    def axis(self, name: str) -> Vector:
        """A local axis (``X``, ``Y``, ``Z``: a bone's Y runs along it) as a world direction."""
        return (self.world_matrix().to_3x3() @ Vector(AXES[name])).normalized()

    def depth(self) -> int:
        """How many parents (objects and bones) are above it: parents are keyed before their children."""
        count, obj = 0, self.obj
        if self.bone:
            count += len(self.pose_bone.parent_recursive)
        while obj.parent is not None:
            count, obj = count + 1, obj.parent
        return count

    def key_prefix(self) -> str:
        """The F-curve data-path prefix of the part's own channels."""
        return f'pose.bones["{bpy.utils.escape_identifier(self.bone)}"].' if self.bone else ""


def selected_parts(context: bpy.types.Context) -> list[Part]:
    """Selected pose bones in Pose Mode, else the selected objects that are not cameras or lights."""
    if context.mode == "POSE":
        bones = context.selected_pose_bones or []
        return [Part(bone.id_data, bone.name) for bone in bones]
    return [Part(obj) for obj in context.selected_objects if obj.type not in {"CAMERA", "LIGHT", "LIGHT_PROBE"}]


# --- which part a hit belongs to -----------------------------------------------------------------


@dataclass
class Ownership:
    """Which part each ray hit belongs to (see the module docstring)."""

    parts: list[Part]
    _object_parts: dict[str, int] = field(default_factory=dict)
    _bone_parts: dict[tuple[str, str], int] = field(default_factory=dict)
    _face_groups: dict[str, list[str] | None] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for index, part in enumerate(self.parts):
            if part.bone:
                self._bone_parts[(part.obj.name, part.bone)] = index
            else:
                self._object_parts[part.obj.name] = index

    def by_hierarchy(self, obj: bpy.types.Object) -> int | None:
        """The part an object moves with: itself or its nearest ancestor that is a part (object or bone)."""
        while obj is not None:
            if obj.name in self._object_parts:
                return self._object_parts[obj.name]
            if obj.parent is not None and obj.parent_type == "BONE":
                bone = self._bone_parts.get((obj.parent.name, obj.parent_bone))
                if bone is not None:
                    return bone
            obj = obj.parent
        return None

    def skinning_armatures(self, obj: bpy.types.Object) -> list[str]:
        """Names of the armatures with bone parts that deform ``obj`` through an Armature modifier."""
        armatures = {armature for armature, _bone in self._bone_parts}
        return [
            modifier.object.name
            for modifier in getattr(obj, "modifiers", ())
            if modifier.type == "ARMATURE" and modifier.object is not None and modifier.object.name in armatures
        ]

    def owner(self, obj: bpy.types.Object, face_index: int, evaluated_faces: int) -> int | None:
        """The part whose own geometry face ``face_index`` of ``obj`` (original object) is, or None."""
        found = self.by_hierarchy(obj)
        if found is not None:
            return found
        for armature in self.skinning_armatures(obj):
            groups = self._dominant_groups(obj, evaluated_faces)
            if groups is not None and 0 <= face_index < len(groups):
                found = self._bone_parts.get((armature, groups[face_index]))
                if found is not None:
                    return found
        return None

    def _dominant_groups(self, obj: bpy.types.Object, evaluated_faces: int) -> list[str] | None:
        """Per face of a skinned mesh, the vertex group (bone) with the largest summed weight; None when the
        evaluated mesh has other faces than the original (a modifier changed the topology)."""
        if obj.name not in self._face_groups:
            mesh = obj.data
            groups = None
            if obj.type == "MESH" and len(mesh.polygons) == evaluated_faces:
                names = [group.name for group in obj.vertex_groups]
                per_vertex = [{g.group: g.weight for g in vertex.groups} for vertex in mesh.vertices]
                groups = []
                for polygon in mesh.polygons:
                    totals: dict[int, float] = {}
                    for vertex in polygon.vertices:
                        for group, weight in per_vertex[vertex].items():
                            totals[group] = totals.get(group, 0.0) + weight
                    best = max(totals, key=totals.get) if totals else None
                    groups.append(names[best] if best is not None and best < len(names) else "")
            self._face_groups[obj.name] = groups
        return self._face_groups[obj.name]

    def geometry_objects(self, scene: bpy.types.Scene, index: int) -> Iterator[bpy.types.Object]:
        """Objects holding some of part ``index``'s own geometry (skinned meshes of its armature included)."""
        part = self.parts[index]
        for obj in scene.objects:
            if obj.type not in _GEOMETRY_TYPES:
                continue
            if self.by_hierarchy(obj) == index or (part.bone and part.obj.name in self.skinning_armatures(obj)):
                yield obj


# --- sampling visible points ---------------------------------------------------------------------


@dataclass
class SampledPoints:
    """Visible surface points of one part: frame coordinates and world positions (same order)."""

    frame_points: list[tuple[float, float]]
    world_points: list[tuple[float, float, float]]


def _projected_bounds(
    objects: list[bpy.types.Object], camera_matrix: Any, params: Any
) -> tuple[float, float, float, float] | None:
    """Frame-coordinate bounds ``(xmin, ymin, xmax, ymax)`` of the objects' bounding boxes, None when
    nothing lies in front of the camera."""
    from ..core.camera import project_to_camera_frame

    corners = [tuple(obj.matrix_world @ Vector(corner)) for obj in objects for corner in obj.bound_box]
    if not corners:
        return None
    frame, depth = project_to_camera_frame(corners, camera_matrix, params)
    if params.projection == "PERSP":  # orthographic cameras see both ways along their axis
        if not (depth > 0).any():
            return None
        if not (depth > 0).all():  # a box reaching behind the camera: it may cover all of the frame
            return 0.0, 0.0, 1.0, 1.0
    (xmin, ymin), (xmax, ymax) = frame.min(axis=0), frame.max(axis=0)
    return float(xmin), float(ymin), float(xmax), float(ymax)


def sample_visible_points(
    context: bpy.types.Context, parts: list[Part], camera_matrix: Any, params: Any, count: int
) -> list[SampledPoints]:
    """Up to ``count`` visible, well-spread points on each part's own geometry, as the camera sees it now."""
    from ..core.camera import camera_frame_ray
    from ..core.point_picking import interior_cells, ray_grid, spread_indices

    scene = context.scene
    depsgraph = context.evaluated_depsgraph_get()
    ownership = Ownership(parts)
    sampled = []
    for index in range(len(parts)):
        bounds = _projected_bounds(list(ownership.geometry_objects(scene, index)), camera_matrix, params)
        if bounds is None:
            sampled.append(SampledPoints([], []))
            continue
        spacing = max(MIN_SPACING, max(bounds[2] - bounds[0], bounds[3] - bounds[1]) / GRID_CELLS)
        grid, shape = ray_grid(bounds, spacing)
        hits: list[tuple[float, float, float] | None] = []
        for x, y in grid:
            origin, direction = camera_frame_ray(x, y, camera_matrix, params)
            origin = origin + direction * params.clip_start  # the camera does not see what is nearer
            hit, location, _normal, face, obj, _matrix = scene.ray_cast(
                depsgraph, Vector(origin), Vector(direction), distance=params.clip_end - params.clip_start
            )
            mine = False
            if hit and obj is not None:
                faces = len(obj.data.polygons) if obj.type == "MESH" else 0
                mine = ownership.owner(obj.original, face, faces) == index
            hits.append(tuple(location) if mine else None)
        found = [point is not None for point in hits]
        inside = interior_cells(found, shape)
        chosen = [i for i, keep in enumerate(inside) if keep]
        if len(chosen) < count // 2:  # a thin part: take its outline too
            chosen = [i for i, keep in enumerate(found) if keep]
        picked = [chosen[i] for i in spread_indices([grid[i] for i in chosen], count)]
        sampled.append(SampledPoints([grid[i] for i in picked], [hits[i] for i in picked]))
    return sampled


# --- keys ----------------------------------------------------------------------------------------


def _channels(action: bpy.types.Action, anim_data: Any) -> Any:
    """The F-curves of an action as the object uses it: its slot's channel bag (Blender 4.4+) or all."""
    if hasattr(action, "layers") and len(action.layers) > 0:
        from bpy_extras import anim_utils

        bag = anim_utils.action_get_channelbag_for_slot(action, getattr(anim_data, "action_slot", None))
        return bag.fcurves if bag is not None else ()
    return getattr(action, "fcurves", ())


def keyed_frames(part: Part) -> set[float]:
    """Frames at which the part's own location, rotation or scale channels have keys."""
    anim_data = part.obj.animation_data
    if anim_data is None or anim_data.action is None:
        return set()
    prefix = part.key_prefix()
    frames = set()
    for curve in _channels(anim_data.action, anim_data):
        path = curve.data_path
        if not path.startswith(prefix):
            continue
        channel = path[len(prefix) :]
        if channel in ("location", "rotation_euler", "rotation_quaternion", "rotation_axis_angle", "scale"):
            frames.update(point.co[0] for point in curve.keyframe_points)
    return frames


def _rotation_channel(owner: Any) -> str:
    mode = owner.rotation_mode
    return {"QUATERNION": "rotation_quaternion", "AXIS_ANGLE": "rotation_axis_angle"}.get(mode, "rotation_euler")


def set_world_matrix(part: Part, matrix: Matrix, previous: Any = None) -> Any:
    """Put the part at world ``matrix`` (its parents as they are now); returns its rotation for the next call.

    Euler rotations stay continuous with ``previous`` (no 180-degree flips between keys); quaternions
    stay in the same hemisphere. Scale is left as it was.
    """
    owner = part.pose_bone if part.bone else part.obj
    scale = owner.scale.copy()
    if part.bone:
        owner.matrix = part.obj.matrix_world.inverted_safe() @ matrix
    else:
        part.obj.matrix_world = matrix
    location, rotation, _scale = owner.matrix_basis.decompose()
    owner.location, owner.scale = location, scale
    channel = _rotation_channel(owner)
    if channel == "rotation_euler":
        euler = rotation.to_euler(owner.rotation_mode, *(() if previous is None else (previous,)))
        owner.rotation_euler = euler
        return euler.copy()
    if channel == "rotation_quaternion":
        if previous is not None:
            rotation.make_compatible(previous)
        owner.rotation_quaternion = rotation
        return rotation.copy()
    axis, angle = rotation.to_axis_angle()
    owner.rotation_axis_angle = (angle, *axis)
    return None


def insert_keys(part: Part, frame: int) -> None:
    """Key the part's location and rotation (in its rotation mode) at ``frame``."""
    owner = part.pose_bone if part.bone else part.obj
    group = part.bone or "Object Transforms"
    owner.keyframe_insert("location", frame=frame, group=group)
    owner.keyframe_insert(_rotation_channel(owner), frame=frame, group=group)
