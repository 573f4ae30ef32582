"""The part pass inside Blender (the ``bpy`` module, headless): the ids and depth Generate sends, and a round
trip through a real ``puppet-master serve`` with the preview engine that moves only the dragged part.

The scenes are built in code; the pass renders with Workbench at 64 to 128 px. The PNGs are decoded
with Pillow, as any client would (the backend's own decoders are tested in ``test_service_parts.py``).
"""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

bpy = pytest.importorskip("bpy")
from addon_support import backend_server, extension_zip, run_scenario  # noqa: E402, F401 - a fixture
from mathutils import Quaternion, Vector  # noqa: E402
from test_addon_drags import add_camera, add_cube, addon, camera_view, customise_render, render_state  # noqa: E402, F401
from test_addon_drags import scene as new_scene  # noqa: E402, F401 - the fixture, used by name below

from puppet_master_addon.core.part_pass import DEPTH_CODES, NO_SURFACE, assign_part_ids  # noqa: E402
from puppet_master_addon.operators import capture  # noqa: E402

PARTS_SCENARIOS = Path(__file__).resolve().parent / "parts_scenarios.py"


def decode(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)))


def blender_state() -> dict:
    """What the part pass changes for its render and must put back: render settings, object colours, passes."""
    scene = bpy.context.scene
    return {
        **render_state(scene),
        "colours": {obj.name: tuple(obj.color) for obj in scene.objects},
        "pass_z": bpy.context.view_layer.use_pass_z,
    }


def two_cubes():
    """A near cube on the left and a far one on the right, in front of the camera at y = -10, and the user's
    own settings (a colour, Cycles, a JPEG output) that the pass must leave as they were."""
    scene = bpy.context.scene
    near = add_cube(scene, location=(-2.0, -3.0, 0.5))  # front face at y = -4: 6 units in front of the camera
    near.name = "Near"
    near.color = (0.2, 0.3, 0.4, 1.0)
    far = add_cube(scene, location=(2.0, 4.0, -0.5))  # front face at y = 3: 13 units
    far.name = "Far"
    camera = add_camera(scene)
    customise_render(scene)
    bpy.context.view_layer.use_pass_z = False
    return near, far, camera


@pytest.mark.usefixtures("new_scene")
def test_the_part_pass_tells_the_cubes_apart_and_how_far_they_are() -> None:
    near, far, camera = two_cubes()
    before = blender_state()
    parts = capture.render_part_pass(bpy.context, 64)
    assert blender_state() == before

    ids, codes = decode(parts.part_map), decode(parts.depth)
    assert ids.shape == codes.shape == (48, 64) and codes.dtype == np.uint16
    expected = assign_part_ids(obj.name for obj in bpy.context.view_layer.objects)
    assert parts.parts == 2 and set(np.unique(ids)) == {0, expected["Near"], expected["Far"]}
    near_depth, far_depth = parts.depth_range
    depth = near_depth + codes / (DEPTH_CODES - 1) * (far_depth - near_depth)
    for cube, distance in ((near, 6.0), (far, 13.0)):
        x, y = camera_view(bpy.context.scene, camera, cube.location)
        row, column = int(y * 48), int(x * 64)
        assert ids[row, column] == expected[cube.name], (cube.name, ids[row - 2 : row + 3, column - 2 : column + 3])
        assert depth[row, column] == pytest.approx(distance, abs=0.01)
    assert ids[0, 0] == ids[-1, -1] == 0 and codes[0, 0] == NO_SURFACE
    # the near cube is on the left, the far one on the right: each id sits where its object is
    columns = {name: np.nonzero((ids == expected[name]).any(axis=0))[0] for name in ("Near", "Far")}
    assert columns["Near"].max() < 32 < columns["Far"].min()


@pytest.mark.usefixtures("new_scene")
def test_the_part_map_covers_every_object_pixel_of_the_capture() -> None:
    two_cubes()
    rgba = decode(capture.capture_png_bytes(bpy.context, 64, "FAST"))
    ids = decode(capture.render_part_pass(bpy.context, 64).part_map)
    # the capture is antialiased and the pass is not: its ids reach one pixel past the hard edge
    assert (ids[rgba[..., 3] > 127] > 0).all()
    assert (ids[rgba[..., 3] == 0] == 0).mean() > 0.9


@pytest.mark.usefixtures("new_scene")
def test_the_part_pass_puts_everything_back_when_the_render_fails(monkeypatch) -> None:
    two_cubes()
    before = blender_state()
    seen = {}

    def failing_render(context):
        seen.update(
            engine=context.scene.render.engine,
            pass_z=context.view_layer.use_pass_z,
            colours=len({tuple(obj.color) for obj in context.scene.objects}),
        )
        raise RuntimeError("GPU exploded")

    monkeypatch.setattr(capture, "_render_still", failing_render)
    with pytest.raises(RuntimeError, match="GPU exploded"):
        capture.render_part_pass(bpy.context, 64)
    assert seen == {"engine": "BLENDER_WORKBENCH", "pass_z": True, "colours": 3}  # each object its own colour
    assert blender_state() == before


# --- a round trip through a real backend ---------------------------------------------------------------


@pytest.fixture(scope="module")
def preview_url(tmp_path_factory: pytest.TempPathFactory):
    with backend_server(tmp_path_factory.mktemp("parts-backend"), "--engine", "preview") as url:
        yield url


def _frames(result: dict) -> np.ndarray:
    folder = Path(result["abs_directory"])
    return np.stack([np.asarray(Image.open(folder / name)) for name in result["files"] if name.endswith(".png")])


def _record(result: dict) -> dict:
    return json.loads((Path(result["abs_directory"]).parent / "record.json").read_text())


@pytest.mark.parametrize("extras", [(), ("--without-extras",)], ids=["official", "without-requests-numpy"])
def test_generate_with_parts_moves_the_dragged_box_only(
    extension_zip: Path,  # noqa: F811
    preview_url: str,
    tmp_path: Path,
    extras: tuple[str, ...],
) -> None:
    report, output = run_scenario(
        "cabinet", extension_zip, tmp_path, "--url", preview_url, *extras, script=PARTS_SCENARIOS
    )
    assert report["generate"] == {"result": ["FINISHED"], "error": ""}, output
    assert report["colours_after"] == report["colours_before"]
    assert report["loaded_extras"] == ([] if extras else report["loaded_extras"])
    (result,) = report["results"]
    settings = _record(result)["settings"]
    assert settings["has_part_map"] and settings["has_depth"], settings
    assert [settings["image_width"], settings["image_height"]] == report["capture_size"]

    frames = _frames(result)
    assert frames.shape[0] == 14
    body, door = report["rects"]["Body"], report["rects"]["Door"]
    # the body left of the door (3 px in from every edge): the same pixels in every frame
    body_only = (slice(body[1] + 3, body[3] - 3), slice(body[0] + 3, door[0] - 3))
    assert frames[0][body_only].size > 0 and (frames[0][body_only][..., 3] > 127).all()  # on the body
    for frame in frames[1:]:
        np.testing.assert_array_equal(frame[body_only], frames[0][body_only])
    # the door moved: its rectangle changed by the last frame
    door_box = (slice(door[1], door[3]), slice(door[0], door[2]))
    assert np.abs(frames[-1][door_box].astype(int) - frames[0][door_box].astype(int)).mean() > 10


def test_send_parts_off_sends_the_image_alone(extension_zip: Path, preview_url: str, tmp_path: Path) -> None:  # noqa: F811
    report, output = run_scenario(
        "cabinet", extension_zip, tmp_path, "--url", preview_url, "--no-parts", script=PARTS_SCENARIOS
    )
    assert report["generate"] == {"result": ["FINISHED"], "error": ""}, output
    (result,) = report["results"]
    settings = _record(result)["settings"]
    assert not settings["has_part_map"] and not settings["has_depth"]


def skinned_strip():
    """A flat strip from x = -2 to 2 facing the camera, skinned to two bones (Root: x < 0, Tip: x > 0), with
    the tip bent 40 degrees in the camera's view; a cube beside it. The bones' posed middles, in the frame."""
    scene = bpy.context.scene
    rig = bpy.data.objects.new("Rig", bpy.data.armatures.new("Rig"))
    scene.collection.objects.link(rig)
    bpy.context.view_layer.objects.active = rig
    bpy.ops.object.mode_set(mode="EDIT")
    root = rig.data.edit_bones.new("Root")
    root.head, root.tail = (-2.0, 0.0, 0.0), (0.0, 0.0, 0.0)
    tip = rig.data.edit_bones.new("Tip")
    tip.head, tip.tail, tip.parent = (0.0, 0.0, 0.0), (2.0, 0.0, 0.0), root
    bpy.ops.object.mode_set(mode="OBJECT")

    xs = [-2.0 + 0.5 * step for step in range(9)]
    vertices = [(x, 0.0, z) for x in xs for z in (-0.4, 0.4)]
    faces = [(2 * i, 2 * i + 2, 2 * i + 3, 2 * i + 1) for i in range(len(xs) - 1)]
    mesh = bpy.data.meshes.new("Strip")
    mesh.from_pydata(vertices, [], faces)
    strip = bpy.data.objects.new("Strip", mesh)
    scene.collection.objects.link(strip)
    groups = {name: strip.vertex_groups.new(name=name) for name in ("Root", "Tip")}
    for index, (x, _, _) in enumerate(vertices):
        for name, weight in (("Root", x < 0), ("Tip", x > 0)) if x else (("Root", 0.5), ("Tip", 0.5)):
            groups[name].add([index], float(weight), "REPLACE")
    strip.modifiers.new("Armature", "ARMATURE").object = rig
    strip.parent = rig

    bend = rig.pose.bones["Tip"]
    bend.rotation_mode = "QUATERNION"
    axis = bend.bone.matrix_local.to_3x3().inverted() @ Vector((0.0, 1.0, 0.0))  # the camera's view axis
    bend.rotation_quaternion = Quaternion(axis, math.radians(40.0))
    cube = add_cube(scene, size=1.0, location=(0.0, 0.0, -2.0))
    camera = add_camera(scene)
    bpy.context.view_layer.update()
    middles = {
        name: camera_view(scene, camera, rig.matrix_world @ ((bone.head + bone.tail) / 2))
        for name, bone in rig.pose.bones.items()
    }
    return strip, cube, middles


@pytest.mark.usefixtures("new_scene")
def test_a_skinned_mesh_is_split_by_bone() -> None:
    strip, cube, middles = skinned_strip()
    parts = capture.render_part_pass(bpy.context, 128)
    ids = decode(parts.part_map)
    height, width = ids.shape
    objects = assign_part_ids(obj.name for obj in bpy.context.view_layer.objects)

    def around(point: tuple[float, float]) -> set[int]:
        row, column = int(point[1] * height), int(point[0] * width)
        return set(np.unique(ids[row - 1 : row + 2, column - 1 : column + 2]).tolist())

    root, tip = around(middles["Root"]), around(middles["Tip"])
    assert len(root) == len(tip) == 1 and root != tip, (root, tip)
    assert not (root | tip) & set(objects.values())  # bones get ids of their own, after the objects'
    assert around(camera_view(bpy.context.scene, bpy.context.scene.camera, cube.location)) == {objects[cube.name]}
    assert objects[strip.name] not in set(np.unique(ids).tolist())  # every strip pixel went to a bone
    assert parts.parts == 3
