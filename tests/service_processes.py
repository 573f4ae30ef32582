"""Real ``puppet-master serve`` processes for the fault-injection tests and ``benchmarks/reliability.py``.

A :class:`ServerProcess` runs ``python -m backend.cli serve`` on 127.0.0.1 and a free port, with its
output in a log file; it can be killed with SIGKILL (as a crash, the out-of-memory killer or a
power cut would end it) and started again on the same results folder. Not collected by pytest.
"""

from __future__ import annotations

import base64
import io
import os
import resource
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import requests
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
TERMINAL = ("succeeded", "failed", "cancelled")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def object_png(side: int, noise: bool = False, seed: int = 0) -> bytes:
    """A square RGBA image: an opaque square object on a transparent background (noise: incompressible)."""
    pixels = np.zeros((side, side, 4), dtype=np.uint8)
    inner = slice(side // 4, 3 * side // 4)
    if noise:
        pixels[..., :3] = np.random.default_rng(seed).integers(0, 256, (side, side, 3), dtype=np.uint8)
    else:
        pixels[inner, inner, :3] = 120
    pixels[inner, inner, 3] = 255
    buffer = io.BytesIO()
    Image.fromarray(pixels, "RGBA").save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def job_body(image: bytes, **settings: Any) -> dict[str, Any]:
    """A valid ``POST /v1/jobs`` body for ``image`` (one drag); ``settings`` override the defaults."""
    body: dict[str, Any] = {
        "image": base64.b64encode(image).decode("ascii"),
        "drags": [[[0.5, 0.4], [0.6, 0.3]]],
        "frames": 4,
        "steps": 2,
        "seed": 1,
    }
    return body | settings


class ServerProcess:
    """``puppet-master serve --engine preview`` in a child process (see the module docstring).

    Parameters:
        results_dir: the results folder (kept across restarts).
        log_dir: where ``serve-<n>.log`` files go, one per start.
        flags: more command-line flags.
        env: more environment variables (``PUPPET_MASTER_*`` settings without a flag).
        open_files: an RLIMIT_NOFILE for the child, set before it starts.
    """

    def __init__(
        self,
        results_dir: Path,
        log_dir: Path,
        *flags: str,
        env: dict[str, str] | None = None,
        open_files: int | None = None,
    ) -> None:
        self.results_dir = Path(results_dir)
        self.log_dir = Path(log_dir)
        self.flags = flags
        self.env = dict(os.environ, **(env or {}))
        self.open_files = open_files
        self.process: subprocess.Popen | None = None
        self.port = 0
        self.starts = 0
        self.log_path = self.log_dir / "serve-0.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        """The command line that starts this server."""
        command = [sys.executable, "-m", "backend.cli", "serve", "--engine", "preview", "--port", str(self.port)]
        return command + ["--results-dir", str(self.results_dir), *self.flags]

    def _limit_open_files(self) -> None:  # runs in the child, before exec
        resource.setrlimit(resource.RLIMIT_NOFILE, (self.open_files, self.open_files))

    def start(self, timeout: float = 90.0) -> ServerProcess:
        """Start the server and wait until its engine is ready; AssertionError with its log if it is not."""
        self.port = free_port()
        self.starts += 1
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.log_dir / f"serve-{self.starts}.log"
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                self.command(),
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
                env=self.env,
                preexec_fn=self._limit_open_files if self.open_files else None,
            )
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise AssertionError(f"the server exited ({self.process.returncode}):\n{self.log()}")
            try:
                if requests.get(f"{self.url}/v1/health", timeout=1).json()["status"] == "ok":
                    return self
            except (requests.RequestException, ValueError, KeyError):
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"the server was not ready within {timeout} s:\n{self.log()}")
            time.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, as in a crash."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(30)

    def stop(self) -> None:
        """SIGTERM (a clean shutdown), SIGKILL after 15 s."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def logs(self) -> str:
        """The logs of every start so far."""
        return "".join(path.read_text(errors="replace") for path in sorted(self.log_dir.glob("serve-*.log")))

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def post_job(url: str, body: dict[str, Any], timeout: float = 60.0) -> requests.Response:
    return requests.post(f"{url}/v1/jobs", json=body, timeout=timeout)


def job_states(url: str, job_ids: list[str]) -> dict[str, str]:
    """Each job's status, or ``missing`` for a 404 (an accepted job must never be missing)."""
    states = {}
    for job_id in job_ids:
        response = requests.get(f"{url}/v1/jobs/{job_id}", timeout=10)
        states[job_id] = (
            response.json()["status"] if response.status_code == 200 else f"missing ({response.status_code})"
        )
    return states


def wait_until_finished(url: str, job_ids: list[str], timeout: float = 120.0) -> dict[str, str]:
    """Poll until every job is finished (or missing); their states."""
    deadline = time.monotonic() + timeout
    while True:
        states = job_states(url, job_ids)
        if all(state in TERMINAL or state.startswith("missing") for state in states.values()):
            return states
        if time.monotonic() > deadline:
            raise AssertionError(f"jobs still unfinished after {timeout} s: {states}")
        time.sleep(0.1)
