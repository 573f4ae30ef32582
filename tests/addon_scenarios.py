"""Scenarios the add-on tests run inside Blender (the ``bpy`` module) in a child process.

Run as ``python tests/addon_scenarios.py SCENARIO --zip ZIP --report OUT.json [options]`` with
``BLENDER_USER_RESOURCES`` pointing at a temporary folder, so the extension is installed into a
throw-away user configuration and the real one is never touched. Each scenario installs the built
extension zip through Blender's own installer, does its work through the add-on's operators, and
writes what it found to the JSON report, which the pytest side checks. Not collected by pytest.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections.abc import Callable
from typing import Any

import bpy
from addon_blocker import DISTRIBUTION_MISSING, block
from bpy_extras.object_utils import world_to_camera_view
from mathutils import Vector

MODULE = "bl_ext.user_default.puppet_master"
IMPORT_MODES = ("CAMERA_BACKGROUND", "IMAGE_EMPTY", "SEQUENCER")


def all_strips(scene):
    """Every strip of the sequencer: ``strips_all`` in Blender 5.x, ``sequences_all`` in 4.2-4.x."""
    editor = scene.sequence_editor
    return editor.strips_all if hasattr(editor, "strips_all") else editor.sequences_all


def install(zip_path: str) -> dict[str, Any]:
    started = time.perf_counter()
    result = bpy.ops.extensions.package_install_files(filepath=zip_path, repo="user_default", enable_on_install=True)
    return {"install": sorted(result), "install_s": time.perf_counter() - started}


def addon_state() -> dict[str, Any]:
    return {
        "enabled": MODULE in bpy.context.preferences.addons,
        "scene_property": hasattr(bpy.types.Scene, "puppet_master"),
        "panel": hasattr(bpy.types, "VIEW3D_PT_puppet_master"),
        "generate_op": hasattr(bpy.types, "PUPPET_OT_generate"),
        "ulist": hasattr(bpy.types, "PUPPET_UL_results"),
    }


def build_scene(capture_resolution: int = 64) -> bpy.types.Scene:
    """An empty file with a cube, a camera looking at it and a light; one drag on the cube."""
    bpy.ops.wm.read_homefile(use_empty=True)
    scene = bpy.context.scene
    bpy.ops.mesh.primitive_cube_add(size=1.0, location=(0.0, 0.0, 0.0))
    camera = bpy.data.objects.new("Camera", bpy.data.cameras.new("Camera"))
    scene.collection.objects.link(camera)
    camera.location = (3.0, -3.0, 2.0)
    camera.rotation_euler = (math.radians(65.0), 0.0, math.radians(45.0))
    camera.data.shift_x = 0.05  # the image empty must follow a shifted frame too
    scene.camera = camera
    light = bpy.data.objects.new("Light", bpy.data.lights.new("Light", "SUN"))
    scene.collection.objects.link(light)
    scene.render.resolution_x, scene.render.resolution_y = 320, 240
    settings = scene.puppet_master
    settings.capture_resolution = capture_resolution
    settings.steps = 2
    settings.use_random_seed = False
    settings.seed = 11
    assert bpy.ops.puppet.add_drag(start=(0.5, 0.5), end=(0.62, 0.42)) == {"FINISHED"}
    return scene


def set_backend(url: str) -> None:
    prefs = bpy.context.preferences.addons[MODULE].preferences
    prefs.backend_url = url
    prefs.timeout = 10.0


def call(operator: Callable[..., set[str]], **kwargs: Any) -> dict[str, Any]:
    """Run an operator; background mode turns ERROR reports into RuntimeError: keep the message."""
    try:
        return {"result": sorted(operator(**kwargs)), "error": ""}
    except RuntimeError as error:
        return {"result": ["CANCELLED"], "error": str(error)}


def runtime():
    return sys.modules[f"{MODULE}.runtime"]


def job_text(scene: bpy.types.Scene) -> str:
    """The panel's line about the scene's job (runtime state, never saved in the .blend)."""
    line = runtime().job_line(scene)
    return line.text if line is not None else ""


def counts() -> dict[str, int]:
    scene = bpy.context.scene
    return {
        "objects": len(bpy.data.objects),
        # the capture and Blender's render result may appear; any other image is an import
        "images": len(
            [
                image
                for image in bpy.data.images
                if image.type != "RENDER_RESULT" and image.name != "Puppet Master Capture"
            ]
        ),
        "results": len(scene.puppet_master.results),
        "backgrounds": len(scene.camera.data.background_images) if scene.camera else 0,
        "strips": len(all_strips(scene)) if scene.sequence_editor else 0,
    }


def result_info(scene: bpy.types.Scene) -> list[dict[str, Any]]:
    return [
        {
            "job_id": result.job_id,
            "directory": result.directory,
            "abs_directory": bpy.path.abspath(result.directory),
            "engine": result.engine,
            "seed": result.seed,
            "num_frames": result.num_frames,
            "created": result.created,
            "files": sorted(os.listdir(bpy.path.abspath(result.directory))),
        }
        for result in scene.puppet_master.results
    ]


def image_user_info(image_user: bpy.types.ImageUser) -> dict[str, Any]:
    return {
        "frame_duration": image_user.frame_duration,
        "frame_start": image_user.frame_start,
        "frame_offset": image_user.frame_offset,
        "use_auto_refresh": image_user.use_auto_refresh,
    }


def image_info(image: bpy.types.Image) -> dict[str, Any]:
    return {
        "name": image.name,
        "source": image.source,
        "filepath": image.filepath,
        "exists": os.path.isfile(bpy.path.abspath(image.filepath)),
        "size": list(image.size),
    }


def empty_frame_corners(scene: bpy.types.Scene, empty: bpy.types.Object) -> list[list[float]]:
    """Where the image empty's picture corners land in the camera frame (0..1 when it fills it exactly)."""
    width, height = empty.data.size
    size = empty.empty_display_size
    half_w, half_h = (size / 2, size * height / width / 2) if width >= height else (size * width / height / 2, size / 2)
    corners = [Vector((x, y, 0.0)) for x in (-half_w, half_w) for y in (-half_h, half_h)]
    bpy.context.view_layer.update()
    return [list(world_to_camera_view(scene, scene.camera, empty.matrix_world @ corner))[:2] for corner in corners]


def import_all_modes(scene: bpy.types.Scene, report: dict[str, Any]) -> None:
    """Import the newest result in every mode (and once with a frame step), then undo one import."""
    settings = scene.puppet_master
    settings.active_result_index = 0
    settings.import_start_frame = 5
    settings.import_opacity = 0.4
    settings.import_keep_previous = True  # stack the imports to compare them
    for mode in IMPORT_MODES:
        report[f"import_{mode}"] = call(bpy.ops.puppet.import_result, mode=mode)
    camera = scene.camera
    background = camera.data.background_images[-1]
    report["background"] = {
        "count": len(camera.data.background_images),
        "show": camera.data.show_background_images,
        "alpha": background.alpha,
        "frame_method": background.frame_method,
        "image": image_info(background.image),
        "image_user": image_user_info(background.image_user),
    }
    empties = [obj for obj in scene.objects if obj.type == "EMPTY" and obj.empty_display_type == "IMAGE"]
    empty = empties[-1]
    report["empty"] = {
        "count": len(empties),
        "parent": empty.parent.name if empty.parent else None,
        "alpha": empty.color[3],
        "use_alpha": empty.use_empty_image_alpha,
        "image": image_info(empty.data),
        "image_user": image_user_info(empty.image_user),
        "frame_corners": empty_frame_corners(scene, empty),
        "depth": -empty.location.z,
    }
    strip = all_strips(scene)[-1]
    report["strip"] = {
        "type": strip.type,
        "frame_start": strip.frame_final_start,
        "duration": strip.frame_final_duration,
        "elements": len(strip.elements),
        "directory": strip.directory,
        "first": strip.elements[0].filename,
        "blend_alpha": strip.blend_alpha,
    }

    # frame step 3: each frame held for 3 scene frames, in all three modes
    settings.import_frame_step = 3
    for mode in IMPORT_MODES:
        report[f"import_step_{mode}"] = call(bpy.ops.puppet.import_result, mode=mode)
    held = camera.data.background_images[-1]
    report["step"] = {
        "background_duration": held.image_user.frame_duration,
        "background_image": image_info(held.image),
        "empty_duration": [obj for obj in scene.objects if obj.type == "EMPTY"][-1].image_user.frame_duration,
        "strip_duration": all_strips(scene)[-1].frame_final_duration,
        "strip_first": all_strips(scene)[-1].elements[0].filename,
    }
    settings.import_frame_step = 1

    # Keep Previous off: a new import replaces the earlier Puppet imports of its kind, and their images
    settings.import_keep_previous = False
    before_replace = counts()
    report["import_replacing"] = call(bpy.ops.puppet.import_result, mode="CAMERA_BACKGROUND")
    report["replace"] = {"before": before_replace, "after": counts()}
    settings.import_keep_previous = True

    # undo takes an import back. Operators called from Python in background mode push no undo step,
    # so push the one Blender's UI pushes after an operator with the UNDO option, then undo it.
    bpy.ops.ed.undo_push(message="before import")
    before = counts()
    call(bpy.ops.puppet.import_result, mode="IMAGE_EMPTY")
    after_import = counts()
    report["import_has_undo"] = "UNDO" in bpy.types.PUPPET_OT_import_result.bl_options
    bpy.ops.ed.undo_push(message="Import Result")
    bpy.ops.ed.undo()
    scene = bpy.context.scene  # undo replaces the scene's data
    report["undo"] = {"before": before, "after_import": after_import, "after_undo": counts()}


# ------------------------------------------------------------------------------------------------
# scenarios
# ------------------------------------------------------------------------------------------------


class CheckingLayout:
    """Stands in for ``UILayout`` (panels cannot draw in background mode) and checks what panels ask for.

    Every ``prop`` must name a property of its data, every ``operator`` a registered operator, every
    ``icon`` one of Blender's icons, every ``template_list`` a registered UIList and real collections.
    """

    ICONS = set(bpy.types.UILayout.bl_rna.functions["label"].parameters["icon"].enum_items.keys())

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems

    def _check_icon(self, kwargs: dict[str, Any]) -> None:
        icon = kwargs.get("icon")
        if icon is not None and icon not in self.ICONS:
            self.problems.append(f"unknown icon {icon!r}")

    def _child(self, *args: Any, **kwargs: Any) -> CheckingLayout:
        self._check_icon(kwargs)
        return CheckingLayout(self.problems)

    row = column = box = split = _child
    label = _child

    def prop(self, data: Any, name: str, **kwargs: Any) -> None:
        self._check_icon(kwargs)
        if name not in data.bl_rna.properties:
            self.problems.append(f"no property {name!r} on {data.bl_rna.identifier}")

    def operator(self, idname: str, **kwargs: Any) -> Any:
        self._check_icon(kwargs)
        module, _, name = idname.partition(".")
        if not hasattr(bpy.types, f"{module.upper()}_OT_{name}"):
            self.problems.append(f"no operator {idname}")
        return argparse.Namespace()

    def template_list(
        self, list_type: str, list_id: str, data: Any, prop: str, active_data: Any, active: str, **_: Any
    ):
        if not hasattr(bpy.types, list_type):
            self.problems.append(f"no UIList {list_type}")
        for owner, name in ((data, prop), (active_data, active)):
            if name not in owner.bl_rna.properties:
                self.problems.append(f"no property {name!r} on {owner.bl_rna.identifier}")

    def progress(self, **kwargs: Any) -> None:
        if "progress" not in bpy.types.UILayout.bl_rna.functions:
            self.problems.append("UILayout.progress does not exist")

    def template_icon(self, **kwargs: Any) -> None:
        pass

    def __setattr__(self, name: str, value: Any) -> None:
        if name != "problems" and name not in bpy.types.UILayout.bl_rna.properties:
            self.problems.append(f"UILayout has no attribute {name!r}")
        object.__setattr__(self, name, value)


def draw_panels(report: dict[str, Any]) -> None:
    """Draw every panel and list of the tab with a checking layout: idle, with a result, and while a job runs."""
    ui = sys.modules[f"{MODULE}.ui"]
    backend = sys.modules[f"{MODULE}.operators.backend"]
    scene = bpy.context.scene
    settings = scene.puppet_master
    result = settings.results.add()
    result.job_id, result.directory, result.engine, result.created = "J" * 22, "//x/video_1/", "preview", "2025-01-01"
    problems: list[str] = []
    drawn = []
    health = sys.modules[f"{MODULE}.core.client"].Health.parse
    states = (("idle", None, None), ("preview", health({"engine": "preview", "device": "cpu"}), None))
    states += (("running", health({"engine": "puppet-master", "device": "cuda:0"}), argparse.Namespace()),)
    loading = {"status": "loading", "stage": "reading the model from /a/long/path/" + "x" * 60, "load_s": 42.5}
    states += (("loading", health({**loading, "queue_length": 2}), None),)
    states += (("failed", health({"status": "error", "error": "--engine puppet-master needs model weights"}), None),)
    for state, answer, active in states:
        backend.status.health = answer
        runtime().active_job = active
        if active is not None:
            runtime().set_job_line(scene, "Sampling 12/50 " + "and a long status line " * 6, 0.3, running=True)
        for cls in ui.classes:
            layout = CheckingLayout(problems)
            if issubclass(cls, bpy.types.Panel):
                panel = argparse.Namespace(layout=layout)
                cls.draw(panel, bpy.context)
                if hasattr(cls, "draw_header_preset"):
                    cls.draw_header_preset(panel, bpy.context)
            else:
                collection = settings.drags if cls.__name__ == "PUPPET_UL_drags" else settings.results
                cls.draw_item(None, bpy.context, layout, settings, collection[0], 0, settings, "", 0)
            drawn.append(f"{state}:{cls.__name__}")
    runtime().active_job = None
    backend.status.health = None
    settings.results.remove(len(settings.results) - 1)
    report["drawn"] = drawn
    report["draw_problems"] = problems


def scenario_package(args: argparse.Namespace, report: dict[str, Any]) -> None:
    report["after_install"] = addon_state()
    report["cycles"] = []
    for _ in range(2):
        disabled = sorted(bpy.ops.preferences.addon_disable(module=MODULE))
        off = addon_state()
        enabled = sorted(bpy.ops.preferences.addon_enable(module=MODULE))
        report["cycles"].append({"disable": disabled, "off": off, "enable": enabled, "on": addon_state()})
    report["user_folder"] = bpy.utils.extension_path_user(MODULE, path="results", create=True)
    report["operators"] = sorted(f"puppet.{name}" for name in dir(bpy.ops.puppet))
    scene = build_scene()
    report["drags"] = len(scene.puppet_master.drags)
    draw_panels(report)


def use_drag_tools(scene: bpy.types.Scene, report: dict[str, Any]) -> None:
    """The drag tools whose maths needed numpy before issue 12: a curve into a drag, a drag anchored to the cube."""
    bpy.ops.curve.primitive_bezier_curve_add(radius=0.5, location=(0.0, 0.0, 0.6))  # selected, in the camera's view
    report["from_curve"] = call(bpy.ops.puppet.drags_from_curve)
    report["anchor"] = call(bpy.ops.puppet.anchor_drag, index=0)
    drags = scene.puppet_master.drags
    report["drag_tools"] = {
        "drags": len(drags),
        "curve_drag_points": len(drags[-1].points),
        "anchor": drags[0].anchor_object.name if drags[0].anchor_object else None,
    }


def scenario_roundtrip(args: argparse.Namespace, report: dict[str, Any]) -> None:
    set_backend(args.url)
    scene = build_scene()
    if args.without_extras:
        use_drag_tools(scene, report)
    if args.blend:
        bpy.ops.wm.save_as_mainfile(filepath=args.blend)
    report["before"] = counts()
    started = time.perf_counter()
    report["generate"] = call(bpy.ops.puppet.generate, auto_import=args.auto_import)
    report["generate_s"] = time.perf_counter() - started
    report["after"] = counts()
    report["job_status"] = job_text(scene)
    report["results"] = result_info(scene)
    capture = scene.puppet_master.capture_image
    report["capture_image"] = capture.name if capture else None  # Generate sends the render's file, adds no image
    if args.auto_import:
        report["auto_imported"] = counts()
    if args.imports:
        import_all_modes(scene, report)
    if args.blend:  # the results survive saving and reopening, and their relative paths resolve
        bpy.ops.wm.save_mainfile()
        bpy.ops.wm.open_mainfile(filepath=args.blend)
        scene = bpy.context.scene
        report["reopened"] = {
            "stored_job_status": scene.puppet_master.get("job_status"),
            "job_line": job_text(scene),
            "results": result_info(scene),
            "images": [image_info(image) for image in bpy.data.images if image.source == "SEQUENCE"],
        }


def scenario_undo(args: argparse.Namespace, report: dict[str, Any]) -> None:
    """Undo after Generate takes back the import and keeps the result in the history (issue 10, C)."""
    set_backend(args.url)
    build_scene()
    bpy.ops.ed.undo_push(message="before Generate")
    report["generate"] = call(bpy.ops.puppet.generate, auto_import=True)
    bpy.ops.ed.undo_push(message="Generate")  # what the UI pushes after an operator with the UNDO option
    report["after"] = counts()
    bpy.ops.ed.undo()
    report["after_undo"] = counts()
    report["results_after_undo"] = [result.job_id for result in bpy.context.scene.puppet_master.results]
    bpy.ops.ed.redo()
    report["after_redo"] = counts()
    report["swatch_subtype"] = bpy.context.scene.puppet_master.drags[0].bl_rna.properties["color"].subtype


def scenario_backend_down(args: argparse.Namespace, report: dict[str, Any]) -> None:
    set_backend(args.url)
    build_scene()
    report["before"] = counts()
    report["generate"] = call(bpy.ops.puppet.generate)
    report["after"] = counts()
    report["job_status"] = job_text(bpy.context.scene)
    report["check"] = call(bpy.ops.puppet.check_backend)
    # nothing to import from, and no camera: clear refusals that change nothing
    bpy.context.scene.camera = None
    report["no_camera"] = call(bpy.ops.puppet.generate)


def scenario_start_backend(args: argparse.Namespace, report: dict[str, Any]) -> None:
    set_backend(args.url)
    prefs = bpy.context.preferences.addons[MODULE].preferences
    prefs.backend_command = args.command
    prefs.low_vram = args.low_vram
    started_at = time.monotonic()
    report["start"] = call(bpy.ops.puppet.start_backend)
    report["start_s"] = time.monotonic() - started_at
    report["again"] = call(bpy.ops.puppet.start_backend)
    report["check"] = call(bpy.ops.puppet.check_backend)
    backend_ops = sys.modules[f"{MODULE}.operators.backend"]
    started = backend_ops._started
    report["pid"] = started.process.pid if started else None
    report["log"] = started.log_path if started else None
    report["status"] = {"engine": backend_ops.status.engine, "summary": backend_ops.status.summary()}
    health = backend_ops.status.health
    report["health"] = {"status": health.status, "reason": health.reason, "error": health.error} if health else None
    bpy.ops.preferences.addon_disable(module=MODULE)  # stops the backend it started
    report["exit_code"] = started.process.wait(10) if started else None


def _follow_like_the_ui(generate: Any, scene: bpy.types.Scene, on_tick: Callable[[], None] | None = None) -> list[str]:
    """Tick the job as Generate's timer events do (they do not fire in background mode); the statuses seen."""
    seen: list[str] = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        time.sleep(0.05)
        outcome = generate.poll_active_job()
        status = job_text(scene)
        if not seen or seen[-1] != status:
            seen.append(status)
        if outcome is not None:
            return seen
        if on_tick is not None:
            on_tick()
    raise AssertionError(f"the job did not end: {seen}")


def scenario_async(args: argparse.Namespace, report: dict[str, Any]) -> None:
    """Generate as in the UI: worker thread + timer callback; then a second job, cancelled while running."""
    generate = sys.modules[f"{MODULE}.operators.generate"]
    set_backend(args.url)
    scene = build_scene()
    scene.puppet_master.steps = 10
    before = counts()
    job = generate.prepare_job(bpy.context)
    # polled often, and steps enough, that the panel's "Sampling k/n" is seen between the model's other phases
    job.runner.poll_interval = 0.02
    generate.start_job(job)
    report["generate_poll_while_running"] = bpy.ops.puppet.generate.poll()
    report["cancel_poll_while_running"] = bpy.ops.puppet.cancel.poll()
    report["statuses"] = _follow_like_the_ui(generate, scene)
    report["done"] = {
        "counts_before": before,
        "counts_after": counts(),
        "progress": runtime().job_line(scene).progress,
        "active": generate.active_job() is not None,
        "generate_poll_after": bpy.ops.puppet.generate.poll(),
    }

    scene.puppet_master.steps = 60
    before = counts()
    job = generate.prepare_job(bpy.context)
    generate.start_job(job)
    cancelled: list[str] = []

    def cancel_once_running() -> None:
        if not cancelled and job_text(scene).startswith("Sampling"):
            cancelled.append(job_text(scene))
            call(bpy.ops.puppet.cancel)

    report["cancel_statuses"] = _follow_like_the_ui(generate, scene, cancel_once_running)
    snapshot = job.runner.snapshot()
    report["cancel"] = {
        "cancelled_at": cancelled,
        "state": snapshot.state.value,
        "job_id": snapshot.job_id,
        "counts_before": before,
        "counts_after": counts(),
        "status": job_text(scene),
        "progress": runtime().job_line(scene).progress,
    }


SCENARIOS = {
    "async": scenario_async,
    "package": scenario_package,
    "roundtrip": scenario_roundtrip,
    "backend_down": scenario_backend_down,
    "undo": scenario_undo,
    "start_backend": scenario_start_backend,
}


def run_scenario_script(scenarios: dict, add_arguments=None) -> int:
    """The command line every scenario script shares: pick a scenario, install the zip (with requests and numpy
    blocked first when ``--without-extras``), run it, and always write the JSON report."""
    parser = argparse.ArgumentParser()
    parser.add_argument("scenario", choices=sorted(scenarios))
    parser.add_argument("--zip", required=True)
    parser.add_argument("--report", required=True)
    parser.add_argument("--url", default="http://127.0.0.1:8765")
    parser.add_argument(
        "--without-extras", action="store_true", help="requests and numpy unimportable, as in Debian's Blender"
    )
    if add_arguments is not None:
        add_arguments(parser)
    args = parser.parse_args()
    if args.without_extras:  # before the add-on is installed and enabled
        block(DISTRIBUTION_MISSING)
    report: dict[str, Any] = install(args.zip)
    try:
        scenarios[args.scenario](args, report)
    finally:
        report["loaded_extras"] = sorted(name for name in DISTRIBUTION_MISSING if name in sys.modules)
        with open(args.report, "w", encoding="utf-8") as handle:
            json.dump(report, handle, indent=1, default=str)
    return 0


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--blend", default="")
    parser.add_argument("--command", default="")
    parser.add_argument("--low-vram", action="store_true", help="the preference Low VRAM (CPU offload)")
    parser.add_argument("--imports", action="store_true")
    parser.add_argument("--auto-import", action="store_true")


if __name__ == "__main__":
    sys.exit(run_scenario_script(SCENARIOS, _arguments))
