"""uvicorn, configured from the service's settings (deadlines, connection cap); and a background server for
tests, benchmarks and embedding."""

from __future__ import annotations

import logging
import socket
import threading
import time
from types import TracebackType
from typing import Any

import uvicorn
from fastapi import FastAPI

from .protocol import ConnectionLimits, guarded_protocol
from .settings import ServiceSettings

logger = logging.getLogger(__name__)

# Open files the service needs besides its connections: the journal, frames being written in parallel,
# downloads being read, ffmpeg's pipes, the engine's files, Python's own imports.
FILES_RESERVED = 48
# Largest request head (request line and headers) read into memory; h11's own default.
MAX_HEAD_BYTES = 16 * 1024


def open_file_limit() -> int | None:
    """The process's soft limit on open files, or None where there is none to read (Windows)."""
    try:
        import resource
    except ImportError:
        return None
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return None if soft == resource.RLIM_INFINITY else int(soft)


def connection_limits(settings: ServiceSettings) -> ConnectionLimits:
    """The deadlines and the connection cap, lowered so connections cannot use up the open-file limit."""
    cap = settings.max_connections
    limit = open_file_limit()
    if limit is not None and cap > limit - FILES_RESERVED:
        cap = max(4, limit - FILES_RESERVED)
        logger.warning(
            "serving at most %d connections: the open-file limit is %d (raise it with `ulimit -n` for more)",
            cap,
            limit,
        )
    return ConnectionLimits(
        head_timeout_s=settings.head_timeout_s,
        body_timeout_s=settings.body_timeout_s,
        send_timeout_s=settings.send_timeout_s,
        max_connections=cap,
    )


def uvicorn_options(settings: ServiceSettings) -> dict[str, Any]:
    """The uvicorn options every way of running the service uses."""
    return {
        "http": guarded_protocol(connection_limits(settings)),
        "timeout_keep_alive": settings.keep_alive_s,
        "h11_max_incomplete_event_size": MAX_HEAD_BYTES,
        "timeout_graceful_shutdown": 5,  # event streams of queued jobs must not hold up Ctrl+C
    }


class BackgroundServer:
    """A real uvicorn server on ``host`` and a free port, in a daemon thread.

    Use as a context manager: ``with BackgroundServer(app) as server: requests.get(server.url + "/v1/health")``.
    The socket is bound before the thread starts, so the port is known at once and cannot be taken.
    """

    def __init__(self, app: FastAPI, host: str = "127.0.0.1", port: int = 0, startup_timeout: float = 30.0) -> None:
        self.app = app
        self.startup_timeout = startup_timeout
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind((host, port))
        self.host, self.port = self._socket.getsockname()[:2]
        settings: ServiceSettings = getattr(app.state, "settings", None) or ServiceSettings()
        config = uvicorn.Config(app, log_level="warning", lifespan="on", **uvicorn_options(settings))
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, name="uvicorn", daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> BackgroundServer:
        """Start serving; returns once the app has started (lifespan done), RuntimeError if it did not."""
        self._thread.start()
        deadline = time.monotonic() + self.startup_timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the server on {self.url} did not start (see the log above)")
            time.sleep(0.01)
        return self

    def stop(self, timeout: float = 15.0) -> None:
        """Shut down (lifespan shutdown included) and wait for the thread."""
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout)
        self._socket.close()

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()
