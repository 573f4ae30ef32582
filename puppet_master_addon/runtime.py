"""What the add-on knows only while Blender runs: never scene data, never saved into the .blend.

- the running Generate job (one at a time) and each scene's job line for the panel (``Sampling 12/50``,
  then the outcome): a .blend reopened later must not show a job that is long gone;
- the draw handlers of running Draw Drags tools, so whatever ends a tool (Enter, Esc, a file load,
  a closed window) can be checked to have removed its drawing;
- the results generated in this session, per scene: undo must never drop a result that took minutes
  of GPU time, so :func:`restore_results` puts back any that an undo step took out of the history.

Scenes are keyed by ``session_uid``, which survives undo (a scene's memory address may not).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import bpy
from bpy.app.handlers import persistent


@dataclass(frozen=True)
class JobLine:
    """The panel's line about a scene's job: ``text``; ``progress`` 0..1; ``running`` while it is not over."""

    text: str
    progress: float = 0.0
    running: bool = False


# the ActiveJob of operators/generate.py while a job runs
active_job: Any = None
tool_draw_handlers: list[Any] = []
_job_lines: dict[int, JobLine] = {}
_session_results: dict[int, list[dict[str, Any]]] = {}

RESULT_FIELDS = ("job_id", "directory", "engine", "seed", "num_frames", "variation", "created")


def job_line(scene: bpy.types.Scene) -> JobLine | None:
    return _job_lines.get(scene.session_uid)


def set_job_line(scene: bpy.types.Scene, text: str, progress: float = 0.0, running: bool = False) -> None:
    _job_lines[scene.session_uid] = JobLine(text, progress, running)


def scene_by_uid(uid: int) -> bpy.types.Scene | None:
    return next((scene for scene in bpy.data.scenes if scene.session_uid == uid), None)


def remember_result(scene: bpy.types.Scene, result: Any) -> None:
    """Note a result added to ``scene``'s history, so undo cannot take it away (see :func:`restore_results`)."""
    record = {name: getattr(result, name) for name in RESULT_FIELDS}
    _session_results.setdefault(scene.session_uid, []).append(record)


def forget_result(scene: bpy.types.Scene, job_id: str, directory: str) -> None:
    """The user removed a result on purpose: undo steps taken later leave it out."""
    records = _session_results.get(scene.session_uid, [])
    records[:] = [r for r in records if (r["job_id"], r["directory"]) != (job_id, directory)]


def restore_results() -> int:
    """Put back this session's results that an undo (or redo) step dropped from a history; how many."""
    restored = 0
    for uid, records in _session_results.items():
        scene = scene_by_uid(uid)
        if scene is None:
            continue
        history = scene.puppet_master.results
        present = {(result.job_id, result.directory) for result in history}
        for record in records:
            if (record["job_id"], record["directory"]) in present:
                continue
            result = history.add()
            for name, value in record.items():
                setattr(result, name, value)
            restored += 1
    return restored


@persistent
def _after_undo(*_args: Any) -> None:
    restore_results()


@persistent
def _on_load_post(*_args: Any) -> None:
    """Another file: its scenes are not the ones this session's lines and results belong to."""
    _job_lines.clear()
    _session_results.clear()


_HANDLERS = (
    (bpy.app.handlers.undo_post, _after_undo),
    (bpy.app.handlers.redo_post, _after_undo),
    (bpy.app.handlers.load_post, _on_load_post),
)


def register() -> None:
    for handlers, function in _HANDLERS:
        if function not in handlers:
            handlers.append(function)


def unregister() -> None:
    for handlers, function in _HANDLERS:
        if function in handlers:
            handlers.remove(function)
    _job_lines.clear()
