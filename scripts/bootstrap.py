"""Set up and run the project on any machine, with nothing but Python (3.11 or newer) and its standard library.

    python3 scripts/bootstrap.py run [serve flags]      # build the extension zip, start the backend (engine auto)
    python3 scripts/bootstrap.py test [pytest args]     # ruff + the test suite
    python3 scripts/bootstrap.py build-extension        # the extension zip alone (no environment needed)

On Windows: ``py -3.11 scripts\\bootstrap.py run`` (or ``scripts\\run.cmd``). ``./scripts/run`` and
``./scripts/test`` call this file.

``run`` and ``test`` create the virtual environment ``.venv`` (``VENV`` moves it) with Python 3.11 — the
backend's Python; this file finds one (``py -3.11`` on Windows, ``python3.11`` elsewhere) if it was not
started with it — then install the PyTorch build that fits the machine and the pinned rest from
``pyproject.toml``. A stamp in the environment records what was installed, so later runs start at once.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BACKEND_PYTHON = (3, 11)
TORCH = "torch==2.13.0"  # keep in step with pyproject.toml
CPU_INDEX = "https://download.pytorch.org/whl/cpu"
# PyPI's Windows torch is the CPU build; the CUDA builds live on PyTorch's index (override when a newer
# driver or torch needs another CUDA: PUPPET_MASTER_TORCH_INDEX)
WINDOWS_CUDA_INDEX = "https://download.pytorch.org/whl/cu130"


class BootstrapError(RuntimeError):
    """Setup cannot go on; the message says what to do."""


# ------------------------------------------------------------------ which PyTorch fits this machine


@dataclass(frozen=True)
class Machine:
    system: str  # platform.system(): Linux, Windows, Darwin
    arch: str  # platform.machine(), lower case: x86_64, amd64, arm64, aarch64
    nvidia: bool  # an NVIDIA driver answers (nvidia-smi)


@dataclass(frozen=True)
class TorchPlan:
    requirement: str
    pip_args: tuple[str, ...]  # extra pip options (an index)
    why: str


def detect_machine() -> Machine:
    return Machine(platform.system(), platform.machine().lower(), has_nvidia_driver())


def has_nvidia_driver() -> bool:
    """Whether an NVIDIA driver is installed and answers (``nvidia-smi -L`` lists a GPU)."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return False
    try:
        listed = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return False
    return listed.returncode == 0 and "GPU" in listed.stdout


def torch_plan(machine: Machine, index_override: str | None = None) -> TorchPlan:
    """The PyTorch build for ``machine``: CUDA with an NVIDIA driver (Linux, Windows), the standard build on
    Apple Silicon (it has MPS), the CPU build anywhere else — never a multi-GB CUDA build without a GPU."""
    if index_override:
        return TorchPlan(TORCH, ("--extra-index-url", index_override), f"from {index_override} (as asked)")
    if machine.system == "Darwin":
        if machine.arch not in ("arm64", "aarch64"):
            raise BootstrapError(
                "PyTorch no longer publishes builds for Intel Macs, so the backend cannot be installed here; run "
                "it on another machine and point the add-on's Backend URL at it"
            )
        return TorchPlan(TORCH, (), "the standard macOS build (Apple Silicon GPU through MPS)")
    if machine.nvidia:
        if machine.system == "Windows":
            return TorchPlan(TORCH, ("--extra-index-url", WINDOWS_CUDA_INDEX), "the CUDA build (NVIDIA driver found)")
        return TorchPlan(TORCH, (), "PyPI's CUDA build (NVIDIA driver found)")
    if machine.system == "Linux" and machine.arch in ("x86_64", "amd64"):
        # PyPI's Linux x86-64 torch is the CUDA build (several GB); the CPU build carries a +cpu label
        return TorchPlan(TORCH, ("--extra-index-url", CPU_INDEX), "the CPU build (no NVIDIA driver found)")
    return TorchPlan(TORCH, (), "the CPU build (no NVIDIA driver found)")


# ------------------------------------------------------------------ the environment


def venv_dir() -> Path:
    return (ROOT / os.environ.get("VENV", ".venv")).resolve()


def venv_python(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def find_backend_python() -> list[str]:
    """A command that starts Python 3.11 (the backend's version)."""
    if sys.version_info[:2] == BACKEND_PYTHON:
        return [sys.executable]
    wanted = ".".join(map(str, BACKEND_PYTHON))
    candidates = [["py", f"-{wanted}"]] if os.name == "nt" else []
    candidates += [[f"python{wanted}"], ["python3"], ["python"]]
    for command in candidates:
        if shutil.which(command[0]) is None:
            continue
        try:
            probe = subprocess.run(
                [*command, "-c", "import sys; print(sys.version_info[:2])"], capture_output=True, text=True, timeout=60
            )
        except (OSError, subprocess.SubprocessError):
            continue
        if probe.returncode == 0 and probe.stdout.strip() == str(BACKEND_PYTHON):
            return command
    raise BootstrapError(
        f"the backend needs Python {wanted} and none was found: install it (python.org, pyenv, or your package "
        f"manager), then run this again"
    )


def ensure_environment(extras: str | None, machine: Machine | None = None) -> Path:
    """Create/refresh the environment for ``extras``; the environment's Python."""
    venv = venv_dir()
    python = venv_python(venv)
    if not python.exists():
        print(f"creating the environment {venv} ...", flush=True)
        subprocess.run([*find_backend_python(), "-m", "venv", str(venv)], check=True)
    machine = machine or detect_machine()
    plan = torch_plan(machine, os.environ.get("PUPPET_MASTER_TORCH_INDEX"))
    settings = "\n".join([(ROOT / "pyproject.toml").read_text(encoding="utf-8"), str(extras),
                          plan.requirement, *plan.pip_args, os.environ.get("EXTRA_PACKAGES", "")])  # fmt: skip
    stamp = venv / f".installed-{hashlib.sha256(settings.encode()).hexdigest()[:16]}"
    if stamp.exists():
        return python
    pip = [str(python), "-m", "pip", "install", "--disable-pip-version-check", "--quiet"]
    print(f"installing PyTorch: {plan.why} (first run: this takes a few minutes)", flush=True)
    # torch alone from the chosen index (its dependencies come from PyPI with the rest): an unreachable extra
    # index then costs pip's retries for one package, not for every package
    run_checked([*pip, "--no-deps", plan.requirement, *plan.pip_args], "installing PyTorch")
    target = f".[{extras}]" if extras else "."
    print(f"installing the project ({target}) and its pinned dependencies ...", flush=True)
    run_checked([*pip, "-e", target, *os.environ.get("EXTRA_PACKAGES", "").split()], "installing")
    for old in venv.glob(".installed-*"):
        old.unlink()
    stamp.touch()
    return python


def run_checked(command: list[str], what: str) -> None:
    if subprocess.run(command, cwd=ROOT).returncode != 0:
        raise BootstrapError(f"{what} failed (see pip's messages above); fix the cause and run this again")


# ------------------------------------------------------------------ commands


def build_extension(python: str, extra: list[str]) -> str:
    completed = subprocess.run(
        [python, str(ROOT / "scripts" / "build_extension.py"), *extra], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    if completed.returncode != 0:
        raise BootstrapError("building the Blender extension failed (see above)")
    return completed.stdout.strip()


def command_run(arguments: list[str]) -> int:
    python = ensure_environment(None)
    zip_path = build_extension(str(python), ["--output-dir", str(ROOT / "dist")])
    print(f"Blender extension: {zip_path}")
    print("  install it in Blender: Edit > Preferences > Get Extensions > Install from Disk", flush=True)
    return subprocess.call([str(python), "-m", "backend.cli", "serve", "--engine", "auto", *arguments], cwd=ROOT)


def command_test(arguments: list[str]) -> int:
    python = ensure_environment("dev")
    if subprocess.call([str(python), "-m", "ruff", "check", "."], cwd=ROOT) != 0:
        return 1
    return subprocess.call([str(python), "-m", "pytest", "-q", *arguments], cwd=ROOT)


def command_build_extension(arguments: list[str]) -> int:
    print(build_extension(sys.executable, arguments))
    return 0


COMMANDS = {"run": command_run, "test": command_test, "build-extension": command_build_extension}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=sorted(COMMANDS))
    parser.add_argument("arguments", nargs=argparse.REMAINDER, help="passed on (serve flags, pytest args ...)")
    args = parser.parse_args(argv)
    try:
        return COMMANDS[args.command](args.arguments)
    except BootstrapError as error:
        print(f"bootstrap: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    if sys.version_info < (3, 11):  # noqa: UP036 - an older Python may start this file; say so clearly
        sys.exit(f"bootstrap needs Python 3.11 or newer; this is {platform.python_version()}")
    sys.exit(main())
