"""Real-window scenarios of the Puppet Master extension; run by ``scripts/test-gui`` inside Blender 4.3.

``blender --factory-startup --enable-event-simulate --python scenarios.py -- NAME`` with G_OUT (output
folder), G_ZIP (the extension zip), G_URL (a running backend) and G_DEAD_URL (a port nobody serves).
Each scenario is a generator of waits (see ``gui_support.run``) and records named checks.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import bpy  # noqa: E402
import requests  # noqa: E402
from bpy_extras.view3d_utils import location_3d_to_region_2d  # noqa: E402
from gui_support import (  # noqa: E402
    Steps,
    addon,
    check,
    click,
    drag,
    info_log,
    install,
    key,
    move,
    note,
    override,
    prepare_scene,
    region_of,
    report,
    run,
    runtime_job,
    set_backend,
    shot,
    view3d,
    wait_until,
)
from mathutils import Vector  # noqa: E402

URL = os.environ.get("G_URL", "http://127.0.0.1:8765")
DRAG_TOLERANCE_PX = 2.0


def settings() -> bpy.types.PropertyGroup:
    return bpy.context.scene.puppet_master


def lid_corner() -> Vector:
    """A point on the lid (world space) that the camera sees: where the drags start."""
    lid = bpy.data.objects.get("Cube.001") or bpy.context.active_object
    return lid.matrix_world @ Vector((0.5, -0.5, 0.0))


def window_point(world: Vector) -> tuple[int, int]:
    _, area, region = view3d()
    point = location_3d_to_region_2d(region, area.spaces.active.region_3d, world)
    return int(region.x + point.x), int(region.y + point.y)


def frame_error_px(frame_point: tuple[float, float], window_xy: tuple[int, int]) -> float:
    """Pixels between a stored drag point (camera frame, y down) and where the pointer was (window)."""
    _, area, region = view3d()
    scene = bpy.context.scene
    frame = scene.camera.data.view_frame(scene=scene)
    corners = [
        location_3d_to_region_2d(region, area.spaces.active.region_3d, scene.camera.matrix_world @ corner)
        for corner in frame
    ]
    left, right = min(c.x for c in corners), max(c.x for c in corners)
    bottom, top = min(c.y for c in corners), max(c.y for c in corners)
    x = region.x + left + frame_point[0] * (right - left)
    y = region.y + top - frame_point[1] * (top - bottom)
    return max(abs(x - window_xy[0]), abs(y - window_xy[1]))


def counts() -> dict[str, int]:
    scene = bpy.context.scene
    camera = scene.camera
    return {
        "results": len(scene.puppet_master.results),
        "backgrounds": len(camera.data.background_images) if camera else 0,
        "sequence_images": len([image for image in bpy.data.images if image.source == "SEQUENCE"]),
        "objects": len(bpy.data.objects),
    }


def backgrounds_valid() -> bool:
    """Every camera background points at a real Image (a freed one shows up as a bare ``ID``)."""
    camera = bpy.context.scene.camera
    return all(bg.image is None or isinstance(bg.image, bpy.types.Image) for bg in camera.data.background_images)


def draw_two_drags() -> Steps:
    """Start Draw Drags and draw two drags from the lid; check both ends of each against the pointer."""
    with override():
        bpy.ops.puppet.draw_drags("INVOKE_DEFAULT")
    yield 0.5
    x0, y0 = window_point(lid_corner())
    strokes = ((x0, y0, 80, 100), (x0 - 250, y0 - 140, -70, 150))
    for stroke in strokes:
        yield from drag(*stroke)
    drags = settings().drags
    check("two drawn drags", len(drags) == 2, f"{len(drags)} drags")
    errors = []
    for drag_data, (x, y, dx, dy) in zip(drags, strokes, strict=False):
        points = drag_data.points
        errors.append(frame_error_px(tuple(points[0].co), (x, y)))
        errors.append(frame_error_px(tuple(points[-1].co), (x + dx, y + dy)))
    worst = max(errors) if errors else float("inf")
    check(f"drawn drags within {DRAG_TOLERANCE_PX:g} px of the pointer", worst <= DRAG_TOLERANCE_PX, f"{worst:.2f} px")


def press_generate() -> None:
    with override():
        bpy.ops.puppet.generate("INVOKE_DEFAULT")


def wait_for_job_end(timeout: float = 120.0) -> Steps:
    yield 0.5
    yield from wait_until(lambda: runtime_job() is None, timeout)


def scenario_generate_undo() -> Steps:
    """Item 0 and C: generate, let it import, Ctrl+Z twice; Blender survives and the result stays."""
    yield from prepare_scene()
    backend = addon("operators.backend")
    yield from wait_until(lambda: backend.status.health is not None, 5.0)
    check("backend status shown without pressing Check", backend.status.health is not None, backend.status.summary())
    yield from draw_two_drags()
    _, area, region = view3d()
    sidebar = region_of(area, "UI")
    x, y = window_point(lid_corner())
    yield from drag(sidebar.x + sidebar.width // 2, sidebar.y + sidebar.height // 2, 0, -80)
    check("a drag on the Sidebar while drawing makes no drag", len(settings().drags) == 2, len(settings().drags))
    shot("overlay")
    yield from key("RET", x, y)
    before = counts()
    press_generate()
    yield from wait_for_job_end()
    after = counts()
    check(
        "generate adds a result and imports it",
        after["results"] == before["results"] + 1 and after["backgrounds"] == 1,
        f"{before} -> {after}",
    )
    log = info_log()
    check("'Generated ...' reaches the Info log", "Generated" in log, log[-400:])
    yield 1.0
    shot("imported")
    yield from key("Z", x, y, ctrl=True)
    yield 1.0
    first_undo = counts()
    check("Ctrl+Z after Generate keeps the result", first_undo["results"] == after["results"], first_undo)
    check("Ctrl+Z after Generate takes back the import", first_undo["backgrounds"] == 0, first_undo)
    check("camera backgrounds point at real images after undo", backgrounds_valid())
    yield from key("Z", x, y, ctrl=True)
    yield 1.0
    second_undo = counts()
    check("a second Ctrl+Z still keeps the result", second_undo["results"] == after["results"], second_undo)
    check("camera backgrounds point at real images after the second undo", backgrounds_valid())
    shot("after_undo")
    move(x, y)
    yield 1.0


def _probe_classes() -> tuple[type, type]:
    """A panel with one tall button at the top of the Sidebar's shown tab: a widget to click at a known place."""

    class PROBE_OT_click(bpy.types.Operator):
        bl_idname = "probe.click"
        bl_label = "Probe"
        count = 0

        def execute(self, context: bpy.types.Context) -> set[str]:
            type(self).count += 1
            return {"FINISHED"}

    _, area, _ = view3d()
    category = region_of(area, "UI").active_panel_category or "Puppet Master"

    class PROBE_PT_panel(bpy.types.Panel):
        bl_space_type = "VIEW_3D"
        bl_region_type = "UI"
        bl_category = category
        bl_label = "Probe"
        bl_options = {"HIDE_HEADER"}
        bl_order = 0

        def draw(self, context: bpy.types.Context) -> None:
            self.layout.scale_y = 6.0
            self.layout.operator("probe.click")

    return PROBE_OT_click, PROBE_PT_panel


def scenario_drawing() -> Steps:
    """B, right-click remove and J: the Sidebar works while drawing; Blender ending the tool cleans up."""
    yield from prepare_scene()
    probe_op, probe_panel = _probe_classes()
    bpy.utils.register_class(probe_op)
    bpy.utils.register_class(probe_panel)
    yield 1.0
    _, area, region = view3d()
    sidebar = region_of(area, "UI")
    button = (sidebar.x + sidebar.width // 2, sidebar.y + sidebar.height - 45)
    yield from click(*button)
    calibrated = probe_op.count == 1
    check("the probe button in the Sidebar answers a click (no tool running)", calibrated, probe_op.count)
    shot("probe")
    yield from draw_two_drags()
    yield from click(*button)
    check("a Sidebar button answers a click while drawing", probe_op.count == 2, probe_op.count)
    yield from drag(button[0], button[1], 0, -60)
    check("a drag on the Sidebar while drawing makes no drag", len(settings().drags) == 2, len(settings().drags))
    first = settings().drags[0]
    start = window_point_of_frame(tuple(first.points[0].co))
    yield from click(start[0] + 3, start[1] - 3, button="RIGHTMOUSE")
    check("right-click near a drag removes it", len(settings().drags) == 1, len(settings().drags))
    x, y = window_point(lid_corner())
    yield from key("ESC", x, y)
    runtime = addon("runtime")
    check(
        "Esc ends the tool and removes its drawing",
        runtime is not None and not runtime.tool_draw_handlers,
        getattr(runtime, "tool_draw_handlers", "no runtime module"),
    )
    with override():
        bpy.ops.puppet.draw_drags("INVOKE_DEFAULT")
    yield 0.5
    check(
        "Draw Drags runs again",
        runtime is not None and len(runtime.tool_draw_handlers) == 1,
        getattr(runtime, "tool_draw_handlers", "no runtime module"),
    )
    with override():
        bpy.ops.wm.read_homefile()  # Blender ends the modal tool: cancel() must clean up
    yield 1.0
    check(
        "loading a file ends the tool and removes its drawing",
        runtime is not None and not runtime.tool_draw_handlers,
        getattr(runtime, "tool_draw_handlers", "no runtime module"),
    )
    move(x, y)
    yield 1.0


def window_point_of_frame(frame_point: tuple[float, float]) -> tuple[int, int]:
    _, area, region = view3d()
    scene = bpy.context.scene
    corners = [
        location_3d_to_region_2d(region, area.spaces.active.region_3d, scene.camera.matrix_world @ corner)
        for corner in scene.camera.data.view_frame(scene=scene)
    ]
    left, right = min(c.x for c in corners), max(c.x for c in corners)
    bottom, top = min(c.y for c in corners), max(c.y for c in corners)
    return int(region.x + left + frame_point[0] * (right - left)), int(region.y + top - frame_point[1] * (top - bottom))


def backend_job(job_id: str) -> dict:
    return requests.get(f"{URL}/v1/jobs/{job_id}", timeout=5).json()


def cancel_in_phase(phases: set[str], label: str) -> Steps:
    """Generate; press Cancel once the backend reports one of ``phases``: it must end cancelled, the scene unchanged."""
    before = counts()
    press_generate()
    job_id, seen = "", []
    while runtime_job() is not None and not job_id:
        job_id = runtime_job().runner.snapshot().job_id
        yield 0.01
    while runtime_job() is not None:
        state = backend_job(job_id)
        now = state.get("phase") or state.get("status")
        if not seen or seen[-1] != now:
            seen.append(now)
        if state.get("phase") in phases:
            with override():
                bpy.ops.puppet.cancel()
            break
        yield 0.01
    yield from wait_for_job_end()
    final = backend_job(job_id) if job_id else {}
    check(f"cancel while {label}: pressed in that phase", seen and seen[-1] in phases, seen)
    check(f"cancel while {label}: the backend ends cancelled", final.get("status") == "cancelled", final.get("status"))
    check(f"cancel while {label}: the scene is unchanged", counts() == before, f"{before} -> {counts()}")
    log = info_log()
    check(f"cancel while {label}: 'cancelled' reaches the Info log", "cancelled" in log.lower(), log[-300:])


def scenario_cancel() -> Steps:
    """D and E: Cancel while the backend samples and while it writes the files."""
    yield from prepare_scene()
    bpy.ops.puppet.add_drag(start=(0.5, 0.3), end=(0.6, 0.2))
    s = settings()
    s.num_frames, s.capture_resolution = 32, 1024
    # the preview engine samples for a fraction of a second; its un-crop ("decoding") lasts seconds
    yield from cancel_in_phase({"encoding", "sampling", "decoding"}, "the engine runs")
    # the largest job the service accepts by default (2048^2 x 16 frames): writing its PNGs takes seconds
    s.num_frames, s.capture_resolution = 16, 2048
    yield from cancel_in_phase({"writing"}, "writing the files")
    shot("cancelled")


def scenario_backend_down() -> Steps:
    """A and M: with nothing at the backend URL, Generate and Check end in an error the user sees."""
    yield from prepare_scene()
    set_backend(os.environ["G_DEAD_URL"])
    bpy.ops.puppet.add_drag(start=(0.5, 0.3), end=(0.6, 0.2))
    before = counts()
    press_generate()
    yield from wait_for_job_end(30)
    log = info_log()
    check("Generate with the backend down: the reason reaches the Info log", "Cannot reach" in log, log[-400:])
    check("Generate with the backend down changes nothing", counts() == before, f"{before} -> {counts()}")
    backend = addon("operators.backend")
    check("the Backend panel says why it is unreachable", "Cannot reach" in backend.status.error, backend.status.error)
    shot("backend_down")
    _, area, _ = view3d()
    with override():
        bpy.ops.puppet.check_backend()
    yield 1.5
    log = info_log()
    check("Check with the backend down: the reason reaches the Info log", log.count("Cannot reach") >= 2, log[-400:])


def scenario_pictures() -> Steps:
    """The pictures in docs/images: the panel with two drags drawn, the overlay, the imported result."""
    yield from prepare_scene()
    _, area, region = view3d()
    sidebar = region_of(area, "UI")
    # the tabs run down the Sidebar's right edge: Item, Tool, View, then this add-on's
    for y in range(sidebar.y + sidebar.height - 200, sidebar.y + sidebar.height - 400, -20):
        yield from click(sidebar.x + sidebar.width - 10, y)
        if sidebar.active_panel_category == "Puppet Master":
            break
    check("the Puppet Master tab is shown", sidebar.active_panel_category == "Puppet Master",
          sidebar.active_panel_category)  # fmt: skip
    yield from draw_two_drags()
    x, y = window_point(lid_corner())
    yield from key("RET", x, y)
    move(region.x + 40, region.y + 40)
    yield 1.0
    report["rects"] = {
        "window": [0, 0, window_size()[0], window_size()[1]],
        "view": [region.x, region.y, region.width, region.height],
        "sidebar": [sidebar.x, sidebar.y, sidebar.width, sidebar.height],
    }
    shot("drags")
    settings().import_opacity = 0.8
    press_generate()
    yield 1.0
    shot("generating")
    yield from wait_for_job_end()
    check("the result was imported", counts()["backgrounds"] == 1, counts())
    bpy.context.scene.frame_set(14)
    yield 1.5
    shot("result")


def window_size() -> tuple[int, int]:
    win = bpy.context.window_manager.windows[0]
    return win.width, win.height


SCENARIOS = {
    "generate_undo": scenario_generate_undo,
    "drawing": scenario_drawing,
    "cancel": scenario_cancel,
    "backend_down": scenario_backend_down,
    "pictures": scenario_pictures,
}


def main() -> None:
    name = sys.argv[sys.argv.index("--") + 1]
    install(os.environ["G_ZIP"], URL)
    note("blender", bpy.app.version_string, "scenario", name)
    run(SCENARIOS[name])


main()
