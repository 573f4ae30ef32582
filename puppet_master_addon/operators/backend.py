"""Backend operators: check the connection, and start a local backend from the preferences' command.

The last health answer is kept in this module (runtime state, not saved in the .blend) for the panel.
"""

from __future__ import annotations

import atexit
import functools
import logging
import os
import shlex
import subprocess
import threading
import time
from dataclasses import dataclass, field

import bpy

from ..core.client import BackendClient, BackendError
from ..preferences import get_preferences
from .common import PUPPET_OT_notify, notify, tag_redraw, user_folder

logger = logging.getLogger(__name__)

# How long Start Backend waits for the new server to answer (it may load a model first).
START_TIMEOUT_S = 30.0
_START_POLL_S = 0.5
# Health checks from a button press (on a worker thread): never longer than this, whatever the preference says.
_CHECK_TIMEOUT_S = 5.0


@dataclass
class BackendStatus:
    """What the panel shows about the backend."""

    url: str = ""
    health: dict | None = None
    error: str = ""
    checked_at: float = 0.0
    starting: bool = False

    @property
    def engine(self) -> str:
        return str((self.health or {}).get("engine") or "")

    @property
    def is_preview(self) -> bool:
        return self.engine == "preview"

    def summary(self) -> str:
        """``puppet-master on cuda:0`` / ``preview on cpu`` / the error."""
        if self.health is None:
            return self.error or "Not checked"
        device = self.health.get("device")
        return f"{self.engine} on {device}" if device else self.engine


@dataclass
class _StartedBackend:
    process: subprocess.Popen
    log_path: str
    url: str
    started: float = field(default_factory=time.monotonic)
    result: dict | None = None  # health, once it answers
    error: str = ""
    done: threading.Event = field(default_factory=threading.Event)


status = BackendStatus()
_started: _StartedBackend | None = None


def _client(context: bpy.types.Context, timeout: float | None = None) -> BackendClient:
    prefs = get_preferences(context)
    return BackendClient(prefs.backend_url, prefs.token, min(prefs.timeout, timeout or _CHECK_TIMEOUT_S))


def _record_health(url: str, health: dict | None, error: str = "") -> None:
    status.url, status.health, status.error, status.checked_at = url, health, error, time.time()


def describe_health(health: dict) -> str:
    """One sentence about a healthy backend, saying clearly when it is only the preview engine."""
    engine = health.get("engine", "?")
    device = health.get("device") or "?"
    reason = health.get("reason") or ""
    if engine == "preview":
        text = f"Backend runs the PREVIEW engine (image warping, not the Puppet-Master model) on {device}"
    else:
        text = f"Backend runs the {engine} model on {device}"
    return f"{text} ({reason})" if reason else text


@dataclass
class _HealthCheck:
    client: BackendClient
    result: dict | None = None
    error: str = ""
    done: threading.Event = field(default_factory=threading.Event)


def _run_check(check: _HealthCheck) -> None:
    """Worker thread (or, in background mode, the caller): one health request; never touches bpy."""
    try:
        check.result = check.client.health()
    except BackendError as error:
        check.error = error.message
    finally:
        check.client.close()
        check.done.set()


def _check_outcome(check: _HealthCheck) -> tuple[str, str]:
    """Record a finished check for the panel; ``(level, message)``."""
    _record_health(check.client.base_url, check.result, check.error)
    if check.result is None:
        return "ERROR", check.error
    preview_or_unwell = check.result.get("engine") == "preview" or check.result.get("status") != "ok"
    return ("WARNING" if preview_or_unwell else "INFO"), describe_health(check.result)


def _poll_check(check: _HealthCheck) -> float | None:
    """Timer: report the check once the worker thread has its answer."""
    if not check.done.is_set():
        return 0.1
    level, message = _check_outcome(check)
    notify(level, message)
    tag_redraw(bpy.context)
    return None


class PUPPET_OT_check_backend(bpy.types.Operator):
    bl_idname = "puppet.check_backend"
    bl_label = "Check Backend"
    bl_description = "Ask the backend whether it runs, and which engine and device it uses"
    bl_options = {"REGISTER", "INTERNAL"}

    def execute(self, context: bpy.types.Context) -> set[str]:
        check = _HealthCheck(_client(context))
        if bpy.app.background:  # no event loop delivers timers: answer now (scripts, tests)
            _run_check(check)
            level, message = _check_outcome(check)
            tag_redraw(context)
            self.report({level}, message)
            return {"CANCELLED"} if level == "ERROR" else {"FINISHED"}
        # the request runs on a worker thread so a slow backend never freezes the UI; a timer reports
        threading.Thread(target=_run_check, args=(check,), name="puppet-master-health", daemon=True).start()
        bpy.app.timers.register(functools.partial(_poll_check, check), first_interval=0.1)
        self.report({"INFO"}, f"Checking the backend at {check.client.base_url}")
        return {"FINISHED"}


def _wait_for_health(started: _StartedBackend, client: BackendClient) -> None:
    """Worker thread: poll the new server until it answers, exits, or the time is up."""
    deadline = started.started + START_TIMEOUT_S
    try:
        while time.monotonic() < deadline:
            if started.process.poll() is not None:
                code = started.process.returncode
                started.error = f"The backend command exited with code {code}; see its log: {started.log_path}"
                return
            try:
                started.result = client.health()
                return
            except BackendError:
                time.sleep(_START_POLL_S)
        started.error = (
            f"The backend did not answer at {started.url} within {START_TIMEOUT_S:g} s; "
            f"check that the command serves that URL, and its log: {started.log_path}"
        )
    finally:
        client.close()
        started.done.set()


def _start_finished(started: _StartedBackend) -> tuple[str, str]:
    """Record the outcome of a start; ``(level, message)``."""
    status.starting = False
    if started.result is not None:
        _record_health(started.url, started.result)
        return "INFO", f"Started the backend (pid {started.process.pid}). {describe_health(started.result)}"
    _record_health(started.url, None, started.error)
    return "ERROR", started.error


def _poll_start() -> float | None:
    """Timer: report once the started backend answers (or gave up)."""
    started = _started
    if started is None:
        return None
    if not started.done.is_set():
        return 0.25
    level, message = _start_finished(started)
    notify(level, message)
    tag_redraw(bpy.context)
    return None


class PUPPET_OT_start_backend(bpy.types.Operator):
    bl_idname = "puppet.start_backend"
    bl_label = "Start Backend"
    bl_description = "Run the Start Command from the add-on preferences (e.g. puppet-master serve) and wait for it"
    bl_options = {"REGISTER", "INTERNAL"}

    def execute(self, context: bpy.types.Context) -> set[str]:
        global _started
        prefs = get_preferences(context)
        if _started is not None and _started.process.poll() is None:
            self.report(
                {"INFO"},
                f"The backend started from Blender is running (pid {_started.process.pid}); log: {_started.log_path}",
            )
            return {"CANCELLED"}
        try:
            argv = shlex.split(prefs.backend_command)
        except ValueError as error:
            self.report({"ERROR"}, f"Cannot read the Start Command {prefs.backend_command!r}: {error}")
            return {"CANCELLED"}
        if not argv:
            self.report(
                {"ERROR"},
                "No Start Command: set one in the add-on preferences, e.g. `puppet-master serve --engine preview`",
            )
            return {"CANCELLED"}

        client = _client(context, timeout=1.0)
        try:  # something may be serving the URL already
            health = client.health()
        except BackendError:
            health = None
        if health is not None:
            client.close()
            _record_health(client.base_url, health)
            self.report({"INFO"}, f"A backend already answers at {client.base_url}. {describe_health(health)}")
            return {"CANCELLED"}

        log_path = os.path.join(user_folder("logs"), "backend.log")
        try:
            with open(log_path, "ab") as log:
                log.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} {prefs.backend_command}\n".encode())
                log.flush()
                process = subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=os.name != "nt",
                )
        except OSError as error:
            client.close()
            self.report({"ERROR"}, f"Could not run the Start Command {argv[0]!r}: {error.strerror or error}")
            return {"CANCELLED"}
        _started = _StartedBackend(process=process, log_path=log_path, url=client.base_url)
        status.starting = True
        waiter = threading.Thread(
            target=_wait_for_health, args=(_started, client), name="puppet-master-start", daemon=True
        )
        waiter.start()

        if bpy.app.background:  # no event loop for timers: wait here
            started = _started
            started.done.wait(START_TIMEOUT_S + 5)
            level, message = _start_finished(started)
            self.report({level}, message)
            return {"FINISHED"} if level == "INFO" else {"CANCELLED"}
        bpy.app.timers.register(_poll_start, first_interval=0.25)
        self.report({"INFO"}, f"Starting the backend (pid {process.pid}); log: {log_path}")
        tag_redraw(context)
        return {"FINISHED"}


def stop_started_backend() -> None:
    """End the backend process this session started (only that one), if it still runs."""
    global _started
    started, _started = _started, None
    if started is None or started.process.poll() is not None:
        return
    logger.info("stopping the backend started from Blender (pid %d)", started.process.pid)
    started.process.terminate()
    try:
        started.process.wait(5)
    except subprocess.TimeoutExpired:
        started.process.kill()


# PUPPET_OT_notify is shared by every operator module; it is registered here, with the first of them.
classes = (PUPPET_OT_notify, PUPPET_OT_check_backend, PUPPET_OT_start_backend)


_register_classes, _unregister_classes = bpy.utils.register_classes_factory(classes)


def register() -> None:
    _register_classes()
    atexit.register(stop_started_backend)


def unregister() -> None:
    atexit.unregister(stop_started_backend)
    if bpy.app.timers.is_registered(_poll_start):
        bpy.app.timers.unregister(_poll_start)
    stop_started_backend()
    _unregister_classes()
