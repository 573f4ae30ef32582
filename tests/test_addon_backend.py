"""The add-on's Start Backend inside Blender, against backends that take their time to load the engine.

Each test runs the ``start_backend`` scenario of ``tests/addon_scenarios.py`` in a fresh Blender (the
``bpy`` module) with the built extension installed into a temporary user folder. The Start Command is
a real backend process: ``tests/slow_backend.py`` (the service app whose engine takes seconds to load),
or ``puppet-master serve --engine puppet-master`` where no weights were fetched (the load fails).
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import pytest
from addon_support import (  # noqa: F401 - extension_zip is a fixture
    extension_zip,
    free_port,
    run_scenario,
    serve_command,
)

SLOW_BACKEND = Path(__file__).resolve().parent / "slow_backend.py"
LOAD_SECONDS = 6.0


def test_start_backend_waits_while_the_engine_loads_and_adds_cpu_offload(
    extension_zip: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    port = free_port()
    command = [sys.executable, str(SLOW_BACKEND), "--port", str(port), "--results-dir", str(tmp_path / "results")]
    command += ["--load-seconds", str(LOAD_SECONDS)]
    url = f"http://127.0.0.1:{port}"
    report, output = run_scenario(
        "start_backend", extension_zip, tmp_path, "--url", url, "--command", shlex.join(command), "--low-vram"
    )
    # the backend answered "loading" within a second or two; Start kept waiting until it was ready
    assert report["start"]["result"] == ["FINISHED"], (report, output)
    assert report["start_s"] >= LOAD_SECONDS
    assert report["health"] == {"status": "ok", "reason": "slow test backend, started with --cpu-offload", "error": ""}
    assert report["status"] == {"engine": "preview", "summary": "preview on cpu"}
    assert report["again"]["result"] == ["CANCELLED"] and report["check"]["result"] == ["FINISHED"]
    assert f"{shlex.join(command)} --cpu-offload" in Path(report["log"]).read_text()  # the command it ran
    assert report["exit_code"] is not None


def test_start_backend_reports_why_the_model_failed_to_load(
    extension_zip: Path,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PUPPET_MASTER_HOME", str(tmp_path / "home"))  # nothing fetched: the model cannot load
    port = free_port()
    command = shlex.join(serve_command(port, tmp_path / "results", "--engine", "puppet-master"))
    report, output = run_scenario(
        "start_backend", extension_zip, tmp_path, "--url", f"http://127.0.0.1:{port}", "--command", command
    )
    assert report["start"]["result"] == ["CANCELLED"], (report, output)
    error = report["start"]["error"]
    assert "The backend could not load the model: --engine puppet-master needs model weights" in error, error
    assert "puppet-master fetch-weights" in error
    assert report["health"]["status"] == "error" and "needs model weights" in report["health"]["error"]
    assert report["status"]["summary"].startswith("The model failed to load: --engine puppet-master needs")
    assert report["exit_code"] is not None  # the process that could not load is still ended with the add-on
