"""Scene data: ``Scene.puppet_master`` holds the drags, the generation settings and the results.

Drags are trajectories in normalised camera-frame coordinates: x to the right, y down, 0..1 over
the active camera's frame (the same convention as the backend's HTTP API).
"""

from __future__ import annotations

import bpy
from bpy.props import (
    BoolProperty,
    CollectionProperty,
    EnumProperty,
    FloatProperty,
    FloatVectorProperty,
    IntProperty,
    PointerProperty,
    StringProperty,
)

MAX_DRAGS = 5
# Result folders are stored as "//puppet_master/<job>/..." next to a saved .blend; newer Blenders warn
# about "//" paths unless the property says it supports them, an option older ones do not know.
_SUPPORTS_RELATIVE = "is_path_supports_blend_relative" in bpy.types.Property.bl_rna.properties
_BLEND_RELATIVE = {"PATH_SUPPORTS_BLEND_RELATIVE"} if _SUPPORTS_RELATIVE else set()
# One colour per drag slot; the backend's overlay palette (backend/pipeline/export.py DRAG_COLORS,
# Okabe-Ito) as display (sRGB) values 0..1: the overlay draws them as they are, and the drag list's
# swatches (subtype COLOR_GAMMA) show the same values, not a linear colour converted for display.
DRAG_COLORS = (
    (0.835, 0.369, 0.0),
    (0.0, 0.447, 0.698),
    (0.0, 0.620, 0.451),
    (0.902, 0.624, 0.0),
    (0.800, 0.475, 0.655),
)


class PUPPET_PG_drag_point(bpy.types.PropertyGroup):
    co: FloatVectorProperty(
        name="Position",
        description="Point in normalised camera-frame coordinates (x right, y down, 0 to 1)",
        size=2,
        min=-1.0,
        max=2.0,
        default=(0.5, 0.5),
    )


class PUPPET_PG_drag(bpy.types.PropertyGroup):
    enabled: BoolProperty(name="Enabled", description="Send this drag to the backend", default=True)
    color: FloatVectorProperty(
        name="Color",
        description="Colour of the drag in the viewport",
        subtype="COLOR_GAMMA",
        size=3,
        min=0.0,
        max=1.0,
    )
    points: CollectionProperty(type=PUPPET_PG_drag_point, name="Points")
    anchor_object: PointerProperty(
        type=bpy.types.Object,
        name="Anchor Object",
        description="Mesh the drag's start is attached to (it follows the object and the camera)",
    )
    anchor_local: FloatVectorProperty(
        name="Anchor Point",
        description="Start point on the anchor object, in the object's local coordinates",
        size=3,
        subtype="XYZ",
    )
    use_anchor: BoolProperty(
        name="Anchored", description="Re-project the start from the anchor point before generating", default=False
    )


class PUPPET_PG_result(bpy.types.PropertyGroup):
    job_id: StringProperty(name="Job", description="Backend job id of this result")
    directory: StringProperty(
        name="Folder", description="Folder holding the frames", subtype="DIR_PATH", options=_BLEND_RELATIVE
    )
    engine: StringProperty(name="Engine", description="Engine that made the result (puppet-master or preview)")
    seed: IntProperty(name="Seed", description="Seed of the result", min=0)
    num_frames: IntProperty(name="Frames", description="Frames in the result", min=0)
    variation: IntProperty(
        name="Variation", description="Which of the job's videos this is (1 for the first)", default=1, min=1
    )
    created: StringProperty(name="Created", description="When the result arrived")


class PUPPET_PG_settings(bpy.types.PropertyGroup):
    # drags
    drags: CollectionProperty(type=PUPPET_PG_drag, name="Drags")
    active_drag_index: IntProperty(name="Active Drag", description="Drag selected in the list", min=0)
    show_drags: BoolProperty(name="Show Drags", description="Draw the drags over the viewport", default=True)

    # capture
    capture_image: PointerProperty(
        type=bpy.types.Image, name="Capture", description="Last render of the camera view sent to the backend"
    )
    capture_resolution: IntProperty(
        name="Capture Size",
        description="Longer side of the captured camera view, in pixels",
        default=512,
        min=64,
        max=2048,
        subtype="PIXEL",
    )
    capture_engine: EnumProperty(
        name="Capture Engine",
        description="Render engine used to capture the camera view",
        items=(
            ("FAST", "Fast", "Workbench: quick, flat shading (default)"),
            ("SCENE", "Scene", "The scene's own render engine and settings (slower, closer to the final look)"),
        ),
        default="FAST",
    )

    # generation
    steps: IntProperty(name="Steps", description="Denoising steps", default=50, min=1, max=200)
    guidance: FloatProperty(
        name="Guidance", description="How strongly the video follows the drags", default=5.0, min=0.0, max=20.0
    )
    seed: IntProperty(name="Seed", description="Random seed (with Random Seed off)", default=0, min=0)
    use_random_seed: BoolProperty(name="Random Seed", description="Pick a new seed each time", default=True)
    num_videos: IntProperty(name="Variations", description="Videos generated together", default=1, min=1, max=4)
    crop_scale: FloatProperty(
        name="Crop Scale",
        description="Object crop size relative to the object's bounding box (the model works on a square crop)",
        default=2.2,
        min=1.0,
        max=10.0,
    )
    num_frames: IntProperty(name="Frames", description="Frames of the video", default=14, min=2, max=32)
    send_parts: BoolProperty(
        name="Send Parts",
        description="Also send which object each pixel shows and its depth (one more quick render), so the "
        "preview engine moves whole objects in depth order; the model itself ignores them",
        default=True,
    )
    ease: EnumProperty(
        name="Timing",
        description="How straight drags and paths move over time",
        items=(("linear", "Linear", "Constant speed"), ("ease-in-out", "Ease In/Out", "Start and stop gently")),
        default="linear",
    )

    # results and import
    results: CollectionProperty(type=PUPPET_PG_result, name="Results")
    active_result_index: IntProperty(name="Active Result", description="Result selected in the history", min=0)
    import_mode: EnumProperty(
        name="Import As",
        description="How to bring a result into the scene",
        items=(
            ("CAMERA_BACKGROUND", "Camera Background", "Image sequence as the camera's background, aligned"),
            ("IMAGE_EMPTY", "Image Empty", "Image sequence on an empty in front of the camera"),
            ("SEQUENCER", "Sequencer Strip", "Image strip in the video sequencer"),
        ),
        default="CAMERA_BACKGROUND",
    )
    import_keep_previous: BoolProperty(
        name="Keep Previous",
        description="Keep earlier Puppet Master imports of the same kind; off: a new import replaces them",
        default=False,
    )
    import_opacity: FloatProperty(
        name="Opacity", description="Opacity of the imported reference", default=0.5, min=0.0, max=1.0
    )
    import_start_frame: IntProperty(name="Start Frame", description="Scene frame of the video's first frame", default=1)
    import_frame_step: IntProperty(
        name="Frame Step", description="Scene frames per video frame (stretches the reference in time)", default=1,
        min=1, max=100,
    )  # fmt: skip

    # Bake Motion
    bake_constraint: EnumProperty(
        name="Bake As",
        description="How the baked parts may move about their pivot (object origin or bone head)",
        items=(
            ("HINGE", "Hinge", "Rotation about the Bake Axis through the pivot (doors, lids)"),
            ("SLIDE", "Slide", "Translation along the Bake Axis (drawers, sliders)"),
            ("ROTATE", "Rotate", "Any rotation about the pivot (ball joints)"),
            ("FREE", "Free", "Rotation about the pivot plus translation"),
        ),
        default="FREE",
    )
    bake_axis: EnumProperty(
        name="Bake Axis",
        description="Local axis of each part to hinge about or slide along (a bone's Y runs along the bone)",
        items=(("X", "X", "Local X axis"), ("Y", "Y", "Local Y axis"), ("Z", "Z", "Local Z axis")),
        default="X",
    )
    bake_smoothing: FloatProperty(
        name="Smoothing",
        description="Temporal smoothing of the baked motion, in video frames (0: none)",
        default=0.5,
        min=0.0,
        max=3.0,
    )
    bake_points: IntProperty(
        name="Points per Part",
        description="Surface points sampled and tracked on each part (more: steadier, slower)",
        default=48,
        min=8,
        max=200,
    )


classes = (PUPPET_PG_drag_point, PUPPET_PG_drag, PUPPET_PG_result, PUPPET_PG_settings)


_register_classes, _unregister_classes = bpy.utils.register_classes_factory(classes)


def register() -> None:
    _register_classes()
    bpy.types.Scene.puppet_master = PointerProperty(type=PUPPET_PG_settings)


def unregister() -> None:
    del bpy.types.Scene.puppet_master
    _unregister_classes()
