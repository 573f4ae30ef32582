"""The add-on's capture, drag operators and camera maths inside Blender (the ``bpy`` module, headless).

Each test builds a tiny scene in code (cube, camera) and renders with Workbench at 64 px. The
modal drawing tool cannot be driven without a real window; its pure parts are tested in
``test_addon_camera.py`` and here only that it refuses cleanly where it cannot run.
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

import numpy as np
import pytest

bpy = pytest.importorskip("bpy")
from bpy_extras.object_utils import world_to_camera_view  # noqa: E402
from mathutils import Vector  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))  # tests may do this; the add-on itself never does

import puppet_master_addon  # noqa: E402
from puppet_master_addon import overlay  # noqa: E402
from puppet_master_addon.core.camera import CameraParams, world_to_camera_frame  # noqa: E402
from puppet_master_addon.core.drag_paths import distance_to_polyline  # noqa: E402
from puppet_master_addon.operators import capture, drags  # noqa: E402
from puppet_master_addon.properties import MAX_DRAGS  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def addon():
    registered_here = not hasattr(bpy.types.Scene, "puppet_master")
    if registered_here:
        puppet_master_addon.register()
    yield
    if registered_here:
        puppet_master_addon.unregister()


@pytest.fixture
def scene():
    """A new empty scene shown in the window (so ``bpy.context.scene`` is it), removed afterwards."""
    window = bpy.context.window
    previous = window.scene
    new_scene = bpy.data.scenes.new("Puppet Master test")
    window.scene = new_scene
    yield new_scene
    window.scene = previous
    objects = list(new_scene.collection.all_objects)
    data = {obj.data for obj in objects if obj.data is not None}
    bpy.data.batch_remove([new_scene, *objects, *data])


def add_cube(scene, size: float = 2.0, location=(0.0, 0.0, 0.0)):
    h = size / 2
    verts = [(x, y, z) for x in (-h, h) for y in (-h, h) for z in (-h, h)]
    faces = [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)]
    mesh = bpy.data.meshes.new("Cube")
    mesh.from_pydata(verts, [], faces)
    cube = bpy.data.objects.new("Cube", mesh)
    cube.location = location
    scene.collection.objects.link(cube)
    return cube


def add_camera(scene, location=(0.0, -10.0, 0.0), target=(0.0, 0.0, 0.0), **settings):
    camera = bpy.data.objects.new("Camera", bpy.data.cameras.new("Camera"))
    camera.location = location
    camera.rotation_euler = (Vector(target) - Vector(location)).to_track_quat("-Z", "Y").to_euler()
    for name, value in settings.items():
        setattr(camera.data, name, value)
    scene.collection.objects.link(camera)
    scene.camera = camera
    bpy.context.view_layer.update()
    return camera


def camera_view(scene, camera, point) -> tuple[float, float]:
    """Blender's own projection, converted to the add-on's y-down convention."""
    x, y, _ = world_to_camera_view(scene, camera, Vector(point))
    return x, 1.0 - y


def snapshot(struct) -> dict:
    """Every plain property of an RNA struct (render settings, image settings, ...)."""
    values = {}
    for prop in struct.bl_rna.properties:
        if prop.identifier == "rna_type" or prop.type in {"POINTER", "COLLECTION"}:
            continue
        value = getattr(struct, prop.identifier)
        values[prop.identifier] = value if isinstance(value, str | int | float | bool | set) else tuple(value)
    return values


def render_state(scene) -> dict:
    return {
        "render": snapshot(scene.render),
        "image_settings": snapshot(scene.render.image_settings),
        "display": snapshot(scene.display),
        "shading": snapshot(scene.display.shading),
        "objects": sorted(obj.name for obj in scene.objects),
        "frame": scene.frame_current,
    }


USER_OUTPUTS = {
    "jpeg": {"file_format": "JPEG", "color_mode": "RGB"},
    "video": {"media_type": "VIDEO", "file_format": "FFMPEG", "color_mode": "RGB"},
    "exr": {"media_type": "MULTI_LAYER_IMAGE", "file_format": "OPEN_EXR_MULTILAYER", "color_depth": "32"},
}


def customise_render(scene, output: str = "jpeg") -> None:
    """Settings a user might have, all different from what the capture needs."""
    render = scene.render
    render.engine = "CYCLES"
    render.resolution_x, render.resolution_y, render.resolution_percentage = 1200, 900, 50
    render.film_transparent = False
    render.filepath = "//renders/shot_"
    for name, value in USER_OUTPUTS[output].items():
        if hasattr(render.image_settings, name):  # media_type is Blender 5
            setattr(render.image_settings, name, value)
    render.use_compositing = True
    render.use_sequencer = True
    render.use_border = True
    render.border_min_x = 0.25


# --- capture ------------------------------------------------------------------------------------------


def test_capture_renders_rgba_and_restores_settings(scene) -> None:
    add_cube(scene)
    add_camera(scene)
    customise_render(scene)
    before = render_state(scene)

    png_bytes = capture.capture_png_bytes(bpy.context, 64, "FAST")
    assert render_state(scene) == before
    image = capture.render_camera_view(bpy.context, 64, "FAST")

    assert render_state(scene) == before
    assert image.name == capture.CAPTURE_IMAGE_NAME and image.packed_file is not None
    assert tuple(image.size) == (64, 48)  # the 4:3 frame, longer side 64
    pixels = np.empty(64 * 48 * 4, dtype=np.float32)
    image.pixels.foreach_get(pixels)
    pixels = pixels.reshape(48, 64, 4)
    assert pixels[0, 0, 3] == 0.0 and pixels[-1, -1, 3] == 0.0  # transparent film around the cube
    # the cube, opaque and lit: Workbench's anti-aliasing samples may sum to 254/255 inside (Blender 4.5), and the
    # backend's object mask is alpha > 127
    assert pixels[24, 32, 3] >= 253 / 255 and pixels[24, 32, :3].max() > 0.05

    # Generate sends the render's own PNG: the same RGBA pixels, the film's transparency kept
    image_module = pytest.importorskip("PIL.Image")
    decoded = np.asarray(image_module.open(io.BytesIO(png_bytes)))
    assert decoded.shape == (48, 64, 4)
    np.testing.assert_array_equal(decoded, np.round(pixels[::-1] * 255).astype(np.uint8))


def test_capture_operator_replaces_the_previous_capture(scene) -> None:
    add_cube(scene)
    add_camera(scene)
    settings = scene.puppet_master
    settings.capture_resolution = 64
    assert bpy.ops.puppet.capture() == {"FINISHED"}
    first = settings.capture_image
    assert first is not None and first.name == capture.CAPTURE_IMAGE_NAME
    scene.render.resolution_x, scene.render.resolution_y = 100, 200  # portrait now
    assert bpy.ops.puppet.capture() == {"FINISHED"}
    image = settings.capture_image
    assert tuple(image.size) == (32, 64)
    assert [img.name for img in bpy.data.images if img.name.startswith(capture.CAPTURE_IMAGE_NAME)] == [image.name]


@pytest.mark.parametrize("output", sorted(USER_OUTPUTS))
def test_capture_restores_settings_when_the_render_fails(scene, monkeypatch, output) -> None:
    add_cube(scene)
    add_camera(scene)
    customise_render(scene, output)
    before = render_state(scene)
    seen = {}

    def failing_render(context):
        render = context.scene.render
        seen.update(
            engine=render.engine, transparent=render.film_transparent, size=(render.resolution_x, render.resolution_y)
        )
        raise RuntimeError("GPU exploded")

    monkeypatch.setattr(capture, "_render_still", failing_render)
    with pytest.raises(RuntimeError, match="GPU exploded"):
        capture.render_camera_view(bpy.context, 64)
    assert seen == {"engine": "BLENDER_WORKBENCH", "transparent": True, "size": (64, 48)}
    assert render_state(scene) == before

    monkeypatch.setattr(capture, "_render_still", lambda context: {"CANCELLED"})
    with pytest.raises(RuntimeError, match="Rendering the camera view failed"):
        capture.render_camera_view(bpy.context, 64)
    assert render_state(scene) == before


def test_capture_without_camera_is_a_clear_error(scene) -> None:
    add_cube(scene)
    with pytest.raises(ValueError, match="no active camera"):
        capture.render_camera_view(bpy.context, 64)
    with pytest.raises(RuntimeError, match="no active camera"):  # the operator reports it as an error
        bpy.ops.puppet.capture()
    add_camera(scene)
    with pytest.raises(ValueError, match="Unknown capture engine"):
        capture.render_camera_view(bpy.context, 64, "EEVEE")


# --- camera maths against Blender's own projection ----------------------------------------------------


@pytest.mark.parametrize(
    "camera_settings, render_size",
    [
        ({"lens": 35.0, "shift_x": 0.15, "shift_y": -0.1}, (320, 180)),
        ({"lens": 70.0, "sensor_fit": "VERTICAL", "sensor_height": 20.0, "shift_y": 0.2}, (200, 300)),
        ({"lens": 50.0, "sensor_fit": "HORIZONTAL", "shift_x": -0.2}, (150, 250)),
        ({"type": "ORTHO", "ortho_scale": 5.0, "shift_x": 0.1, "shift_y": 0.05}, (400, 240)),
        ({"type": "ORTHO", "ortho_scale": 3.0, "sensor_fit": "VERTICAL"}, (240, 400)),
    ],
)
def test_projection_matches_world_to_camera_view(scene, camera_settings, render_size) -> None:
    scene.render.resolution_x, scene.render.resolution_y = render_size
    scene.render.pixel_aspect_x = 1.2
    camera = add_camera(scene, location=(2.0, -9.0, 3.0), target=(0.3, 0.2, -0.4), **camera_settings)
    camera.scale = (2.0, 2.0, 2.0)  # Blender ignores camera scale; so must we
    bpy.context.view_layer.update()
    params = CameraParams.from_blender(camera.data, scene.render)
    matrix = np.asarray(camera.matrix_world)
    rng = np.random.default_rng(3)
    for point in rng.uniform(-3, 3, size=(20, 3)):
        assert world_to_camera_frame(point, matrix, params) == pytest.approx(
            camera_view(scene, camera, point), abs=1e-5
        )


# --- drags from annotations and curves ----------------------------------------------------------------


def view3d_override():
    window = bpy.context.window
    area = next(area for area in window.screen.areas if area.type == "VIEW_3D")
    region = next(region for region in area.regions if region.type == "WINDOW")
    return bpy.context.temp_override(window=window, area=area, region=region)


def draw_annotation_stroke(mouse_points) -> None:
    """One annotation stroke through region pixels, as the Annotate tool would draw it."""
    stroke = [
        {"name": "", "location": (0, 0, 0), "mouse": p, "mouse_event": p, "pressure": 1.0, "size": 0, "time": float(i),
         "is_start": i == 0, "x_tilt": 0.0, "y_tilt": 0.0}
        for i, p in enumerate(mouse_points)
    ]  # fmt: skip
    # the stroke element's fields differ between versions (Blender 4.2 also requires "pen_flip")
    fields = bpy.ops.gpencil.annotate.get_rna_type().properties["stroke"].fixed_type.properties.keys()
    stroke = [{key: value for key, value in {**point, "pen_flip": False}.items() if key in fields} for point in stroke]
    with view3d_override():
        assert bpy.ops.gpencil.annotate(mode="DRAW", stroke=stroke, wait_for_input=False) == {"FINISHED"}


def stroke_points(scene) -> list[np.ndarray]:
    annotation = drags.scene_annotation(scene)
    layer = annotation.layers[annotation.layers.active_index]
    return [np.array([tuple(p.co) for p in stroke.points]) for frame in layer.frames for stroke in frame.strokes]


def assert_drag_follows(scene, camera, drag, world_points) -> None:
    path = [tuple(p.co) for p in drag.points]
    projected = [camera_view(scene, camera, point) for point in world_points]
    assert path[0] == pytest.approx(projected[0], abs=1e-5)
    assert path[-1] == pytest.approx(projected[-1], abs=1e-5)
    for point in path:  # resampled along the projected stroke
        assert distance_to_polyline(point, projected) < 1e-5


def test_drags_from_annotation(scene) -> None:
    draw_annotation_stroke([(500, 400), (560, 430), (640, 480), (700, 560)])
    draw_annotation_stroke([(900, 300), (1000, 300)])
    strokes = stroke_points(scene)
    assert len(strokes) == 2
    centre = np.concatenate(strokes).mean(axis=0)
    # a camera that sees the strokes from the side, whatever view the annotations were drawn in
    camera = add_camera(scene, location=tuple(centre + (3.0, -25.0, 6.0)), target=tuple(centre), lens=30.0)

    assert bpy.ops.puppet.drags_from_annotation() == {"FINISHED"}
    settings = scene.puppet_master
    assert len(settings.drags) == 2
    for drag, points in zip(settings.drags, strokes, strict=True):
        assert_drag_follows(scene, camera, drag, points)
    assert len(settings.drags[0].points) == 32 and len(settings.drags[1].points) == 2
    assert tuple(settings.drags[0].color) != tuple(settings.drags[1].color)

    # Replace Drags starts over; without it the limit of 5 holds
    assert bpy.ops.puppet.drags_from_annotation(replace=True) == {"FINISHED"}
    assert len(settings.drags) == 2
    bpy.ops.puppet.drags_from_annotation()
    bpy.ops.puppet.drags_from_annotation()
    assert len(settings.drags) == MAX_DRAGS


def test_drags_from_annotation_without_annotations(scene) -> None:
    add_camera(scene)
    with pytest.raises(RuntimeError, match="no annotations"):
        bpy.ops.puppet.drags_from_annotation()


def test_drags_from_curve(scene) -> None:
    camera = add_camera(scene, location=(1.0, -12.0, 2.0), target=(0.0, 0.0, 0.0), lens=40.0)
    curve = bpy.data.curves.new("Path", "CURVE")
    curve.dimensions = "3D"
    bezier = curve.splines.new("BEZIER")
    bezier.bezier_points.add(1)
    for knot, co, left, right in zip(
        bezier.bezier_points, [(-2, 0, 0), (1, 1, 1)], [(-3, 0, -1), (0, 1, 0)], [(-1, 0, 1), (2, 1, 2)], strict=True
    ):
        knot.co, knot.handle_left, knot.handle_right = co, left, right
    poly = curve.splines.new("POLY")
    poly.points.add(2)
    for point, co in zip(poly.points, [(0, 0, -1, 1), (1, 0, -1, 1), (1, 0, -2, 1)], strict=True):
        point.co = co
    obj = bpy.data.objects.new("Path", curve)
    obj.location = (0.5, 1.0, 0.0)
    obj.rotation_euler = (0.0, 0.0, 0.3)
    scene.collection.objects.link(obj)
    bpy.context.view_layer.objects.active = obj
    obj.select_set(True)

    assert bpy.ops.puppet.drags_from_curve() == {"FINISHED"}
    settings = scene.puppet_master
    assert len(settings.drags) == 2
    world = np.asarray(obj.matrix_world)
    knots = [world @ np.array([*knot.co, 1.0]) for knot in bezier.bezier_points]
    drag = settings.drags[0]
    assert tuple(drag.points[0].co) == pytest.approx(camera_view(scene, camera, knots[0][:3]), abs=1e-5)
    assert tuple(drag.points[-1].co) == pytest.approx(camera_view(scene, camera, knots[1][:3]), abs=1e-5)
    corners = [(world @ np.array([*point.co[:3], 1.0]))[:3] for point in poly.points]
    assert_drag_follows(scene, camera, settings.drags[1], corners)

    obj.select_set(False)
    with pytest.raises(RuntimeError, match="Select one or more curve objects"):
        bpy.ops.puppet.drags_from_curve()


# --- anchoring and collect_drags ---------------------------------------------------------------------


def test_anchor_drag_follows_the_object(scene) -> None:
    cube = add_cube(scene)
    camera = add_camera(scene)
    settings = scene.puppet_master
    assert bpy.ops.puppet.add_drag(start=(0.5, 0.5), end=(0.7, 0.4)) == {"FINISHED"}
    assert bpy.ops.puppet.anchor_drag() == {"FINISHED"}
    drag = settings.drags[0]
    assert drag.use_anchor and drag.anchor_object == cube
    assert tuple(drag.anchor_local) == pytest.approx((0.0, -1.0, 0.0), abs=1e-5)  # the face toward the camera
    np.testing.assert_allclose(drags.collect_drags(bpy.context), [[(0.5, 0.5), (0.7, 0.4)]], atol=1e-6)

    cube.location = (1.0, 0.0, 0.5)
    moved = drags.collect_drags(bpy.context)
    start = camera_view(scene, camera, (1.0, -1.0, 0.5))
    np.testing.assert_allclose(moved, [[start, (start[0] + 0.2, start[1] - 0.1)]], atol=1e-6)
    # the stored points are untouched: anchoring is applied when the drags are collected
    assert tuple(drag.points[0].co) == pytest.approx((0.5, 0.5))
    # anchoring again starts from where the drag is now, and stores that
    assert bpy.ops.puppet.anchor_drag() == {"FINISHED"}
    assert tuple(drag.points[0].co) == pytest.approx(start, abs=1e-6)
    assert tuple(drag.anchor_local) == pytest.approx((0.0, -1.0, 0.0), abs=1e-5)
    np.testing.assert_allclose(drags.collect_drags(bpy.context), moved, atol=1e-6)


def test_anchor_drag_misses(scene) -> None:
    add_cube(scene)
    add_camera(scene)
    bpy.ops.puppet.add_drag(start=(0.05, 0.05), end=(0.2, 0.2))
    with pytest.raises(RuntimeError, match="Nothing is under the start of drag 1"):
        bpy.ops.puppet.anchor_drag()
    assert not scene.puppet_master.drags[0].use_anchor


def test_collect_drags_checks(scene) -> None:
    add_camera(scene)
    with pytest.raises(ValueError, match="no enabled drags"):
        drags.collect_drags(bpy.context)
    bpy.ops.puppet.add_drag(start=(0.1, 0.2), end=(0.3, 0.4))
    bpy.ops.puppet.add_drag()
    scene.puppet_master.drags[0].enabled = False
    np.testing.assert_allclose(drags.collect_drags(bpy.context), [[(0.4, 0.5), (0.6, 0.5)]])
    scene.puppet_master.drags[1].points[1].co = (1.5, 0.5)
    with pytest.raises(ValueError, match="Drag 2 leaves the camera frame"):
        drags.collect_drags(bpy.context)


# --- add, remove, clear, limit -----------------------------------------------------------------------


def test_add_remove_clear_and_limit(scene) -> None:
    settings = scene.puppet_master
    for _ in range(MAX_DRAGS):
        assert bpy.ops.puppet.add_drag() == {"FINISHED"}
    assert bpy.ops.puppet.add_drag() == {"CANCELLED"}  # a warning, not an error
    assert len(settings.drags) == MAX_DRAGS
    assert len({tuple(drag.color) for drag in settings.drags}) == MAX_DRAGS
    assert settings.active_drag_index == MAX_DRAGS - 1

    settings.drags[1].points[0].co = (0.11, 0.22)
    assert bpy.ops.puppet.remove_drag(index=0) == {"FINISHED"}
    assert tuple(settings.drags[0].points[0].co) == pytest.approx((0.11, 0.22))
    assert bpy.ops.puppet.remove_drag() == {"FINISHED"}  # the active (last) one
    assert len(settings.drags) == MAX_DRAGS - 2 and settings.active_drag_index == len(settings.drags) - 1
    with pytest.raises(RuntimeError, match="There is no drag 7"):
        bpy.ops.puppet.remove_drag(index=7)
    assert bpy.ops.puppet.clear_drags() == {"FINISHED"}
    assert len(settings.drags) == 0
    assert not bpy.ops.puppet.clear_drags.poll()


# --- the drawing tool and registration ----------------------------------------------------------------


def test_draw_tool_refuses_outside_a_camera_view(scene) -> None:
    # Background mode has no events, so Blender runs execute(), which explains where the tool works.
    with pytest.raises(RuntimeError, match="3D Viewport"):
        bpy.ops.puppet.draw_drags()
    assert "3D Viewport" in drags._drawing_problem(bpy.context)
    with view3d_override():
        assert "no active camera" in drags._drawing_problem(bpy.context)
        add_camera(scene)
        bpy.context.region_data.view_perspective = "PERSP"
        assert drags._drawing_problem(bpy.context).startswith("Look through the scene camera")
        with pytest.raises(RuntimeError, match="Look through the scene camera"):
            bpy.ops.puppet.draw_drags()
    assert len(scene.puppet_master.drags) == 0


class _Recorder:
    """Stands in for ``gpu``/``blf`` (which cannot draw in background mode): records calls, and fails
    like the real module would on a name this Blender does not have."""

    RESULTS = {
        "gpu.state.blend_get": "NONE",
        "gpu.state.line_width_get": 1.0,
        "gpu.state.viewport_get": (0, 0, 800, 600),
        "blf.dimensions": (8.0, 10.0),
    }

    def __init__(self, real, calls: list, prefix: str) -> None:
        self._real, self._calls, self._prefix = real, calls, prefix

    def __getattr__(self, name: str):
        value = getattr(self._real, name) if self._real is not None else None
        if isinstance(value, int | float | str):
            return value  # constants such as blf.SHADOW
        path = f"{self._prefix}.{name}"
        if value is not None and type(value).__name__ == "module":
            return _Recorder(value, self._calls, path)

        def record(*args, **kwargs):
            self._calls.append((path, args, kwargs))
            return self.RESULTS.get(path, _Recorder(None, self._calls, path))

        return record


def test_overlay_draws_enabled_drags_and_restores_gpu_state(scene, monkeypatch) -> None:
    import blf
    import gpu

    calls: list = []
    monkeypatch.setitem(sys.modules, "gpu", _Recorder(gpu, calls, "gpu"))
    monkeypatch.setitem(sys.modules, "blf", _Recorder(blf, calls, "blf"))
    batch_module = type(sys)("gpu_extras.batch")
    batch_module.batch_for_shader = lambda shader, kind, content: (
        calls.append(("batch_for_shader", (kind, content), {})) or _Recorder(None, calls, "batch")
    )
    monkeypatch.setitem(sys.modules, "gpu_extras.batch", batch_module)
    add_camera(scene)
    for start in ((0.1, 0.1), (0.3, 0.3), (0.5, 0.5)):
        bpy.ops.puppet.add_drag(start=start, end=(0.9, 0.9))
    scene.puppet_master.drags[1].enabled = False

    with overlay.gpu_drawing_state():
        overlay.draw_scene_drags(bpy.context, (0.0, 0.0, 400.0, 300.0))

    drawn_labels = [args[1] for name, args, _ in calls if name == "blf.draw"]
    assert drawn_labels == ["1", "3"]
    strips = [args[1]["pos"] for name, args, _ in calls if name == "batch_for_shader" and args[0] == "LINE_STRIP"]
    assert strips[0][0] == pytest.approx((40.0, 270.0))  # frame (0.1, 0.1) in the 400x300 rect, y up
    assert ("gpu.state.blend_set", ("ALPHA",), {}) in calls
    assert calls[-2:] == [("gpu.state.blend_set", ("NONE",), {}), ("gpu.state.line_width_set", (1.0,), {})]


def test_register_unregister_twice() -> None:
    for _ in range(2):
        puppet_master_addon.unregister()
        assert not hasattr(bpy.types.Scene, "puppet_master")
        assert not hasattr(bpy.types, "PUPPET_OT_draw_drags")
        puppet_master_addon.register()
        assert hasattr(bpy.types.Scene, "puppet_master")
        assert bpy.ops.puppet.draw_drags.idname() == "PUPPET_OT_draw_drags"
        assert len(overlay._draw_handles) == 1  # one viewport draw handler, however often registered
