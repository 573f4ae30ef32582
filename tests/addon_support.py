"""Shared by the add-on tests that need Blender: build the extension zip, start real backends, run scenarios.

Blender runs in child processes (``tests/addon_scenarios.py``) with ``BLENDER_USER_RESOURCES`` set to a
temporary folder: the extension is installed through Blender's own installer into a throw-away user
configuration, and the user's real Blender configuration is never touched.
"""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import requests

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = Path(__file__).resolve().parent / "addon_scenarios.py"
BUILD_SCRIPT = ROOT / "scripts" / "build_extension.py"
# The backend's Python: this one, unless the Blender version matrix runs these tests from a bpy-only
# environment (scripts/test_blender_matrix.py points this at the project's main environment).
BACKEND_PYTHON = os.environ.get("PUPPET_MASTER_TEST_BACKEND_PYTHON", sys.executable)

# Only looked up, not imported: Blender runs in the child processes, never in pytest's.
if importlib.util.find_spec("bpy") is None:
    pytest.skip("the add-on tests need the bpy module (pip install -e '.[dev]')", allow_module_level=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def build_zip(output_dir: Path) -> Path:
    """Run the build script as a user would; the zip path it prints."""
    completed = subprocess.run(
        [sys.executable, str(BUILD_SCRIPT), "--output-dir", str(output_dir)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    return Path(completed.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def extension_zip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_zip(tmp_path_factory.mktemp("dist"))


def serve_command(port: int, results_dir: Path, *extra: str) -> list[str]:
    return [
        BACKEND_PYTHON,
        "-m",
        "backend.cli",
        "serve",
        "--port",
        str(port),
        "--results-dir",
        str(results_dir),
        *extra,
    ]


@contextmanager
def backend_server(results_dir: Path, *extra: str, timeout: float = 90.0) -> Iterator[str]:
    """``puppet-master serve`` in a child process on a free port; its URL once it answers."""
    port = free_port()
    log_path = results_dir.parent / f"serve-{port}.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(serve_command(port, results_dir, *extra), stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise AssertionError(f"the backend exited ({process.returncode}):\n{log_path.read_text()}")
            try:
                if requests.get(url + "/v1/health", timeout=1).ok:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"the backend did not answer within {timeout} s:\n{log_path.read_text()}")
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def run_scenario(
    scenario: str, zip_path: Path, workdir: Path, *args: str, timeout: float = 300.0, script: Path = SCENARIOS
) -> tuple[dict[str, Any], str]:
    """Run one scenario of ``script`` in a fresh Blender process with its own user folder; (report, the output)."""
    workdir.mkdir(parents=True, exist_ok=True)
    report_path = workdir / f"{scenario}.json"
    env = dict(os.environ, BLENDER_USER_RESOURCES=str(workdir / "blender-user"))
    completed = subprocess.run(
        [sys.executable, str(script), scenario, "--zip", str(zip_path), "--report", str(report_path), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=workdir,
        check=False,
    )
    output = completed.stdout + completed.stderr
    assert completed.returncode == 0, output
    return json.loads(report_path.read_text()), output
