"""Helpers for the real-window scenarios: run inside Blender (>= 4.2, a window, --enable-event-simulate).

A scenario is a generator: it yields seconds to wait, and ``run`` drives it from ``bpy.app.timers``
so Blender's event loop (drawing, timers, modal operators) keeps running between steps. Input is
simulated with ``Window.event_simulate`` in window pixel coordinates; screenshots come from
imagemagick's ``import -window root`` (``bpy.ops.screen.screenshot`` is black under Xvfb).
Every check goes into ``$G_OUT/report.json`` at once, so a crash still leaves the checks made so far.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Generator, Iterator
from typing import Any

import bpy

OUT = os.environ.get("G_OUT", "/tmp/gui-out")
MODULE_SUFFIX = "puppet_master"
Steps = Generator[float, None, None]

report: dict[str, Any] = {"checks": {}, "notes": [], "finished": False}


def save_report() -> None:
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, "report.json"), "w", encoding="utf-8") as handle:
        json.dump(report, handle, indent=1, default=str)


def check(name: str, ok: bool, detail: Any = "") -> bool:
    report["checks"][name] = {"ok": bool(ok), "detail": str(detail)}
    save_report()
    return bool(ok)


def note(*parts: Any) -> None:
    report["notes"].append(" ".join(str(part) for part in parts))
    save_report()


def shot(name: str) -> None:
    subprocess.run(["import", "-window", "root", os.path.join(OUT, f"{name}.png")], check=False)


# --- the add-on -----------------------------------------------------------------------------------


def addon_module_name() -> str:
    return next(name for name in bpy.context.preferences.addons.keys() if name.endswith(MODULE_SUFFIX))


def addon(submodule: str) -> Any:
    """A module of the installed add-on, e.g. ``addon("runtime")``; None when it does not exist."""
    return sys.modules.get(f"{addon_module_name()}.{submodule}")


def install(zip_path: str, url: str) -> None:
    bpy.ops.extensions.package_install_files(filepath=zip_path, repo="user_default", enable_on_install=True)
    set_backend(url)


def set_backend(url: str) -> None:
    bpy.context.preferences.addons[addon_module_name()].preferences.backend_url = url


def runtime_job() -> Any:
    """The running Generate job (None when idle), wherever this version of the add-on keeps it."""
    runtime = addon("runtime")
    if runtime is not None:
        return runtime.active_job
    return addon("operators.generate").active_job()


# --- the window -----------------------------------------------------------------------------------


def window() -> bpy.types.Window:
    return bpy.context.window_manager.windows[0]


def view3d() -> tuple[bpy.types.Window, bpy.types.Area, bpy.types.Region]:
    win = window()
    area = next(area for area in win.screen.areas if area.type == "VIEW_3D")
    return win, area, next(region for region in area.regions if region.type == "WINDOW")


def region_of(area: bpy.types.Area, kind: str) -> bpy.types.Region:
    return next(region for region in area.regions if region.type == kind)


def override(area: bpy.types.Area | None = None, region: bpy.types.Region | None = None) -> Any:
    win, view_area, view_region = view3d()
    area = area or view_area
    return bpy.context.temp_override(window=win, area=area, region=region or region_of(area, "WINDOW"))


def move(x: int, y: int) -> None:
    window().event_simulate(type="MOUSEMOVE", value="NOTHING", x=int(x), y=int(y))


def key(name: str, x: int, y: int, **modifiers: bool) -> Steps:
    move(x, y)
    window().event_simulate(type=name, value="PRESS", x=int(x), y=int(y), **modifiers)
    window().event_simulate(type=name, value="RELEASE", x=int(x), y=int(y), **modifiers)
    yield 0.4


def click(x: int, y: int, button: str = "LEFTMOUSE") -> Steps:
    move(x, y)
    yield 0.1
    window().event_simulate(type=button, value="PRESS", x=int(x), y=int(y))
    yield 0.1
    window().event_simulate(type=button, value="RELEASE", x=int(x), y=int(y))
    yield 0.3


def drag(x0: int, y0: int, dx: int, dy: int, steps: int = 10) -> Steps:
    """Press at (x0, y0), move in ``steps`` to (x0 + dx, y0 + dy), release."""
    move(x0, y0)
    yield 0.1
    window().event_simulate(type="LEFTMOUSE", value="PRESS", x=int(x0), y=int(y0))
    yield 0.1
    for index in range(1, steps + 1):
        move(x0 + dx * index // steps, y0 + dy * index // steps)
        yield 0.03
    window().event_simulate(type="LEFTMOUSE", value="RELEASE", x=int(x0 + dx), y=int(y0 + dy))
    yield 0.3


def wait_until(condition: Callable[[], bool], timeout: float, poll: float = 0.2) -> Iterator[float]:
    """Yield until ``condition()`` holds or ``timeout`` seconds pass (then the caller checks again)."""
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        yield poll


def info_area() -> bpy.types.Area:
    """The Timeline at the bottom of the Layout workspace, turned into an Info editor."""
    win = window()
    areas = [area for area in win.screen.areas if area.type in {"INFO", "DOPESHEET_EDITOR"}]
    area = min(areas, key=lambda area: area.y)
    area.type = "INFO"
    return area


def info_log() -> str:
    """Every report in the Info editor (what reached the status bar and the Info log), as text."""
    area = info_area()
    with override(area, region_of(area, "WINDOW")):
        bpy.ops.info.select_all(action="SELECT")
        bpy.ops.info.report_copy()
    return bpy.context.window_manager.clipboard


def prepare_scene() -> Steps:
    """Factory scene plus a lid (a second, flat cube at z = 1.3), viewed through the camera, Sidebar open."""
    win, area, _ = view3d()
    win.event_simulate(type="ESC", value="PRESS", x=800, y=500)  # the splash screen
    win.event_simulate(type="ESC", value="RELEASE", x=800, y=500)
    space = area.spaces.active
    space.region_3d.view_perspective = "CAMERA"
    space.show_region_ui = True
    bpy.ops.mesh.primitive_cube_add(size=1, location=(0, 0, 1.3), scale=(1, 1, 0.15))
    info_area()
    yield 0.5
    with override():
        bpy.ops.view3d.view_center_camera()
    yield 1.0


def run(scenario: Callable[[], Steps]) -> None:
    """Drive ``scenario`` from a timer; write the report and quit Blender when it ends or fails."""
    steps = scenario()

    def tick() -> float | None:
        try:
            return next(steps)
        except StopIteration:
            report["finished"] = True
        except Exception:
            check("scenario ran without a Python error", False, traceback.format_exc())
        save_report()
        bpy.ops.wm.quit_blender()
        return None

    save_report()
    bpy.app.timers.register(tick, first_interval=2.0, persistent=True)  # scenarios load files too
