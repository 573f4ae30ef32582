"""Backend operators: check the connection, and start a local backend from the preferences' command.

A backend answers before its engine has loaded (minutes for the model on a first start): its health
then says ``loading``, with the stage. Check and Start follow the loading on a worker thread; a timer
copies each answer into :data:`status`, so the panel shows "Loading the model: <stage> (42 s)", and
reports once the backend is ready, or why its engine failed to load.

The last health answer is kept in this module (runtime state, not saved in the .blend) for the panel.
"""

from __future__ import annotations

import atexit
import logging
import os
import shlex
import subprocess
import threading
import time
from dataclasses import dataclass, field

import bpy

from ..core.client import BackendClient, BackendError, Health
from ..core.start_command import start_argv
from ..preferences import get_preferences
from .common import PUPPET_OT_notify, notify, tag_redraw, user_folder

logger = logging.getLogger(__name__)

# How long a started backend may take to open its port (Python and torch start up first) and, once it
# answered, how long it may then stay silent before Start gives up on it.
PORT_TIMEOUT_S = 120.0
# How long the add-on follows a backend that is loading its engine: a first start may read several GB.
LOAD_TIMEOUT_S = 30 * 60.0
_POLL_S = 0.5
# Health requests: never longer than this, whatever the preference says (the UI is waiting for them).
_CHECK_TIMEOUT_S = 5.0
# A backend that answered once may miss an answer while it loads (a busy CPU); this long is tolerated.
_QUIET_S = 30.0


@dataclass
class BackendStatus:
    """What the panel shows about the backend."""

    url: str = ""
    health: Health | None = None
    error: str = ""
    checked_at: float = 0.0
    starting: bool = False

    @property
    def engine(self) -> str:
        return self.health.engine if self.health is not None else ""

    @property
    def is_preview(self) -> bool:
        return self.health is not None and self.health.is_preview

    def summary(self) -> str:
        """``puppet-master on cuda:0`` / ``preview on cpu`` / ``Loading the model: ...`` / the error."""
        if self.health is None:
            return self.error or "Not checked"
        if self.health.loading:
            return self.health.loading_text()
        if self.health.failed:
            return f"The model failed to load: {self.health.error}"
        device = self.health.device
        return f"{self.engine} on {device}" if device else self.engine


@dataclass
class _StartedBackend:
    process: subprocess.Popen
    log_path: str
    url: str


@dataclass
class _Watch:
    """Health answers from a worker thread, until the backend is ready (or failed, or went away).

    ``follow_loading`` False stops at the first answer. ``port_timeout``: how long an unanswered
    request is retried before the first answer (a started backend is still coming up).
    """

    client: BackendClient
    follow_loading: bool = True
    port_timeout: float = 0.0
    started: _StartedBackend | None = None
    health: Health | None = None  # the latest answer
    error: str = ""
    done: threading.Event = field(default_factory=threading.Event)


status = BackendStatus()
_started: _StartedBackend | None = None
_watch: _Watch | None = None


def _client(context: bpy.types.Context, timeout: float | None = None) -> BackendClient:
    prefs = get_preferences(context)
    return BackendClient(prefs.backend_url, prefs.token, min(prefs.timeout, timeout or _CHECK_TIMEOUT_S))


def _record_health(url: str, health: Health | None, error: str = "") -> None:
    status.url, status.health, status.error, status.checked_at = url, health, error, time.time()


def _follow(watch: _Watch) -> None:
    """Worker thread (or, in background mode, the caller): ask for health until the backend is ready, failed
    to load, stopped answering or exited, or :data:`LOAD_TIMEOUT_S` has passed. Never touches bpy."""
    began = last_answer = time.monotonic()
    stage = ""
    try:
        while True:
            started = watch.started
            if started is not None and started.process.poll() is not None:
                watch.error = (
                    f"The backend command exited with code {started.process.returncode}; see its log: "
                    f"{started.log_path}"
                )
                return
            try:
                health = watch.client.health()
            except BackendError as error:
                quiet_limit = watch.port_timeout if watch.health is None else max(watch.port_timeout, _QUIET_S)
                if time.monotonic() - last_answer >= quiet_limit:
                    watch.error = error.message
                    if started is not None:
                        watch.error = (
                            f"The backend did not answer at {started.url} within {quiet_limit:g} s ({error.message}); "
                            f"check that the Start Command serves that URL, and its log: {started.log_path}"
                        )
                    return
            else:
                watch.health, last_answer = health, time.monotonic()
                if not (health.loading and watch.follow_loading) or last_answer - began >= LOAD_TIMEOUT_S:
                    return
                if health.stage != stage:
                    stage = health.stage
                    logger.info("backend at %s: %s", watch.client.base_url, health.loading_text())
            time.sleep(_POLL_S)
    finally:
        watch.client.close()
        watch.done.set()


def _outcome(watch: _Watch) -> tuple[str, str]:
    """Record a finished watch for the panel; ``(level, message)`` for the user."""
    status.starting = False
    url = watch.client.base_url
    health = watch.health
    if watch.error or health is None:
        _record_health(url, None, watch.error)
        return "ERROR", watch.error
    _record_health(url, health)
    message = health.describe()
    if watch.started is not None:
        pid = watch.started.process.pid
        loaded = f" and it loaded its engine in {health.load_s:.0f} s" if health.status == "ok" else ""
        message = f"Started the backend (pid {pid}){loaded}. {message}"
    if health.failed:
        return "ERROR", message
    if health.loading and watch.follow_loading:
        message += f"; stopped waiting after {LOAD_TIMEOUT_S / 60:g} minutes: press Check to look again"
    return ("WARNING" if health.is_preview or health.status != "ok" else "INFO"), message


def _poll_watch() -> float | None:
    """Timer: show each answer of the watch in the panel; report once it is over."""
    watch = _watch
    if watch is None:
        return None
    if watch.health is not None and watch.health is not status.health and not watch.done.is_set():
        _record_health(watch.client.base_url, watch.health)  # loading progress for the panel
        tag_redraw(bpy.context)
    if not watch.done.is_set():
        return 0.25
    level, message = _outcome(watch)
    notify(level, message)
    tag_redraw(bpy.context)
    return None


def _run(watch: _Watch) -> tuple[str, str] | None:
    """Follow ``watch``: here in background mode (no event loop runs timers), returning the outcome; else
    on a worker thread with a timer reporting it later (None)."""
    global _watch
    if bpy.app.background:
        _follow(watch)
        return _outcome(watch)
    _watch = watch
    threading.Thread(target=_follow, args=(watch,), name="puppet-master-health", daemon=True).start()
    if not bpy.app.timers.is_registered(_poll_watch):
        # persistent: the backend outlives the open file; opening another must not stop the panel following it
        bpy.app.timers.register(_poll_watch, first_interval=0.1, persistent=True)
    return None


def _report_outcome(operator: bpy.types.Operator, context: bpy.types.Context, outcome: tuple[str, str]) -> set[str]:
    """Background mode: the operator reports the watch's outcome itself, and fails on an error."""
    level, message = outcome
    tag_redraw(context)
    operator.report({level}, message)
    return {"CANCELLED"} if level == "ERROR" else {"FINISHED"}


def _following() -> bool:
    return _watch is not None and not _watch.done.is_set()


class PUPPET_OT_check_backend(bpy.types.Operator):
    bl_idname = "puppet.check_backend"
    bl_label = "Check Backend"
    bl_description = (
        "Ask the backend whether it runs, and which engine and device it uses (while it loads the model, "
        "keep asking until it is ready)"
    )
    bl_options = {"REGISTER", "INTERNAL"}

    def execute(self, context: bpy.types.Context) -> set[str]:
        if _following():
            self.report({"INFO"}, f"Following the backend at {status.url}: {status.summary()}")
            return {"FINISHED"}
        # scripts (background mode) get one answer; the UI follows a loading backend until it is ready
        outcome = _run(_Watch(_client(context), follow_loading=not bpy.app.background))
        if outcome is None:
            self.report({"INFO"}, f"Checking the backend at {get_preferences(context).backend_url}")
            return {"FINISHED"}
        return _report_outcome(self, context, outcome)


class PUPPET_OT_start_backend(bpy.types.Operator):
    bl_idname = "puppet.start_backend"
    bl_label = "Start Backend"
    bl_description = (
        "Run the Start Command from the add-on preferences (e.g. puppet-master serve) and wait until it has "
        "loaded its engine"
    )
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
            argv = start_argv(prefs.backend_command, cpu_offload=prefs.low_vram)
        except ValueError as error:
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}

        probe = _client(context, timeout=1.0)
        try:  # something may be serving the URL already
            health = probe.health()
        except BackendError:
            health = None
        finally:
            probe.close()
        if health is not None:
            _record_health(probe.base_url, health)
            if health.loading and not bpy.app.background and not _following():
                _run(_Watch(_client(context)))  # the panel follows its loading
            self.report({"INFO"}, f"A backend already answers at {probe.base_url}. {health.describe()}")
            return {"CANCELLED"}

        log_path = os.path.join(user_folder("logs"), "backend.log")
        try:
            with open(log_path, "ab") as log:
                log.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} {shlex.join(argv)}\n".encode())
                log.flush()
                process = subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=os.name != "nt",
                )
        except OSError as error:
            self.report({"ERROR"}, f"Could not run the Start Command {argv[0]!r}: {error.strerror or error}")
            return {"CANCELLED"}
        _started = _StartedBackend(process=process, log_path=log_path, url=probe.base_url)
        status.starting = True
        watch = _Watch(_client(context), port_timeout=PORT_TIMEOUT_S, started=_started)
        outcome = _run(watch)
        if outcome is None:
            self.report({"INFO"}, f"Starting the backend (pid {process.pid}); log: {log_path}")
            tag_redraw(context)
            return {"FINISHED"}
        return _report_outcome(self, context, outcome)


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
    if bpy.app.timers.is_registered(_poll_watch):
        bpy.app.timers.unregister(_poll_watch)
    stop_started_backend()
    _unregister_classes()
