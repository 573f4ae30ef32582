"""Run the add-on's headless tests on every Blender the extension supports, each in its own cached environment.

    python scripts/test_blender_matrix.py                 # 4.2 LTS, 4.5 LTS, 5.0, 5.2 LTS
    python scripts/test_blender_matrix.py 4.2 5.2 -- -x   # some versions; pytest arguments after --

Each version gets ``.venv-blender-<version>`` with only that ``bpy`` wheel and the test tools (Blender 5.1 and
newer need Python 3.13: ``python3.13`` must be on PATH, e.g. from pyenv). The backend the round-trip tests talk
to runs from the project's main environment (``.venv``, made by ``scripts/bootstrap.py test``), so the bpy
environments stay small and may use another Python. Prints one line per version and exits non-zero if any
failed. Not part of CI (several GB of wheels); CI runs Blender 5.0.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# version label -> (bpy pin, Python it needs)
BLENDERS = {
    "4.2": ("bpy==4.2.23", "3.11"),
    "4.5": ("bpy==4.5.15", "3.11"),
    "5.0": ("bpy==5.0.1", "3.11"),
    "5.2": ("bpy==5.2.3", "3.13"),
}
TEST_TOOLS = ("pytest==9.2.0", "hypothesis==6.170.17", "requests==2.34.2", "pillow==13.0.0")
# the tests that need Blender itself (the add-on's bpy-free core is tested in the main suite)
ADDON_TESTS = ("tests/test_addon_camera.py", "tests/test_addon_drags.py", "tests/test_addon_package.py",
               "tests/test_addon_roundtrip.py", "tests/test_bake_motion.py", "tests/test_addon_parts.py")  # fmt: skip


def bin_dir(venv: Path) -> Path:
    return venv / ("Scripts" if os.name == "nt" else "bin")


def find_python(version: str) -> str | None:
    """A Python ``version`` interpreter that runs: this one, ``python<version>`` on PATH, or pyenv's."""
    if f"{sys.version_info.major}.{sys.version_info.minor}" == version:
        return sys.executable
    candidates = [shutil.which(f"python{version}")]
    pyenv_root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    candidates += sorted(str(path) for path in pyenv_root.glob(f"versions/{version}*/bin/python{version}"))
    for candidate in filter(None, candidates):
        probe = subprocess.run([candidate, "-c", "import sys; print(sys.version_info[:2])"], capture_output=True,
                               text=True)  # fmt: skip
        if probe.returncode == 0 and probe.stdout.strip() == str(tuple(map(int, version.split(".")))):
            return candidate
    return None


def environment_for(label: str) -> Path:
    """Create or reuse ``.venv-blender-<label>``; its Python."""
    requirement, python_version = BLENDERS[label]
    venv = ROOT / f".venv-blender-{label}"
    python = bin_dir(venv) / ("python.exe" if os.name == "nt" else "python")
    if not python.exists():
        interpreter = find_python(python_version)
        if interpreter is None:
            raise SystemExit(f"Blender {label} needs Python {python_version}: put python{python_version} on PATH")
        subprocess.run([interpreter, "-m", "venv", str(venv)], check=True)
    wanted = " ".join([requirement, *TEST_TOOLS])
    stamp = venv / f".installed-{hashlib.sha256(wanted.encode()).hexdigest()[:12]}"
    if not stamp.exists():
        print(f"[{label}] installing {wanted} ...", flush=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                        requirement, *TEST_TOOLS], check=True)  # fmt: skip
        stamp.touch()
    return python


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    pytest_args = argv[argv.index("--") + 1 :] if "--" in argv else []
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("versions", nargs="*", help=f"some of {', '.join(BLENDERS)} (default: all)")
    args = parser.parse_args(argv[: argv.index("--")] if "--" in argv else argv)
    if unknown := [label for label in args.versions if label not in BLENDERS]:
        parser.error(f"unknown Blender version(s) {', '.join(unknown)}; choose from {', '.join(BLENDERS)}")
    backend_python = bin_dir(ROOT / ".venv") / ("python.exe" if os.name == "nt" else "python")
    if not backend_python.exists():
        raise SystemExit("the backend environment .venv is missing: run ./scripts/test once first")
    results: dict[str, int] = {}
    for label in args.versions or list(BLENDERS):
        python = environment_for(label)
        environment = dict(os.environ, PUPPET_MASTER_TEST_BACKEND_PYTHON=str(backend_python))
        environment["PYTHONPATH"] = str(ROOT)  # the tests import their helpers as the package `tests`
        print(f"[{label}] {BLENDERS[label][0]}: running the add-on tests", flush=True)
        results[label] = subprocess.call(
            # --noconftest: tests/conftest.py builds torch models; these tests need Blender, not torch
            [str(python), "-m", "pytest", "-q", "--noconftest", "-p", "no:cacheprovider", *ADDON_TESTS, *pytest_args],
            cwd=ROOT, env=environment,
        )  # fmt: skip
    print("\nBlender | result")
    for label, code in results.items():
        print(f"{label:7} | {'passed' if code == 0 else f'FAILED (pytest exit {code})'}")
    return 0 if all(code == 0 for code in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
