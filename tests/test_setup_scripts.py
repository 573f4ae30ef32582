"""The stdlib-only setup: the PyTorch build chosen per machine, and the extension zip built without bpy."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def load_script(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the file runs
    spec.loader.exec_module(module)
    return module


bootstrap = load_script("bootstrap")
build_extension = load_script("build_extension")

# (system, machine, NVIDIA driver) -> (extra index or None, words in the reason)
PLATFORMS = [
    (("Linux", "x86_64", True), None, "CUDA"),
    (("Linux", "x86_64", False), bootstrap.CPU_INDEX, "CPU"),
    (("Linux", "aarch64", False), None, "CPU"),  # PyPI's ARM Linux torch is the CPU build
    (("Linux", "aarch64", True), None, "CUDA"),  # ARM GPU servers (GH200): PyPI's CUDA build
    (("Windows", "amd64", True), bootstrap.WINDOWS_CUDA_INDEX, "CUDA"),
    (("Windows", "amd64", False), None, "CPU"),  # PyPI's Windows torch is the CPU build
    (("Darwin", "arm64", False), None, "MPS"),
]


@pytest.mark.parametrize(
    ("machine", "index", "reason"), PLATFORMS, ids=[" ".join(map(str, m)) for m, _, _ in PLATFORMS]
)
def test_the_torch_build_fits_the_machine(machine, index, reason) -> None:
    plan = bootstrap.torch_plan(bootstrap.Machine(*machine))
    assert plan.requirement == bootstrap.TORCH
    assert plan.pip_args == (("--extra-index-url", index) if index else ())
    assert reason in plan.why


def test_intel_macs_are_told_why_and_an_override_index_wins() -> None:
    with pytest.raises(bootstrap.BootstrapError, match="Intel Macs"):
        bootstrap.torch_plan(bootstrap.Machine("Darwin", "x86_64", False))
    plan = bootstrap.torch_plan(bootstrap.Machine("Linux", "x86_64", False), "https://example.invalid/whl/rocm")
    assert plan.pip_args == ("--extra-index-url", "https://example.invalid/whl/rocm")


def test_the_torch_pin_matches_pyproject() -> None:
    import tomllib

    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert bootstrap.TORCH in dependencies


def fake_blender(folder: Path, version: str) -> Path:
    """A ``blender`` on PATH that only answers ``--version`` (as Debian 12's 3.4 would) and fails otherwise."""
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / "blender"
    script.write_text(f'#!/bin/sh\n[ "$1" = "--version" ] && echo "Blender {version}" && exit 0\nexit 127\n')
    script.chmod(0o755)
    return folder


@pytest.mark.skipif(os.name == "nt", reason="a POSIX shell script stands in for blender")
def test_a_python_without_bpy_and_an_old_blender_still_build_a_zip_blender_accepts(tmp_path) -> None:
    base_python = getattr(sys, "_base_executable", sys.executable)  # outside the venv: no bpy, no packages
    probe = subprocess.run([base_python, "-c", "import bpy"], capture_output=True)
    assert probe.returncode != 0, "the base interpreter has bpy; this test needs one without"
    environment = dict(os.environ, PATH=f"{fake_blender(tmp_path / 'bin', '3.4.1')}{os.pathsep}{os.environ['PATH']}")
    done = subprocess.run(
        [base_python, str(ROOT / "scripts" / "build_extension.py"), "--output-dir", str(tmp_path / "dist")],
        capture_output=True, text=True, env=environment, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "Blender 3.4" in done.stderr and "extensions need 4.2" in done.stderr  # skipped with a note
    zip_path = Path(done.stdout.strip())
    names = zipfile.ZipFile(zip_path).namelist()
    assert "blender_manifest.toml" in names and "__init__.py" in names
    assert not [name for name in names if "__pycache__" in name or name.endswith(".pyc")]

    # Blender's own validator (from the bpy wheel in this test's environment) accepts that zip
    tool, note = build_extension.find_validator(blender=None)
    assert tool is not None and "bpy" in note
    build_extension.validate(zip_path, tool)


def test_the_zip_matches_blenders_own_build(tmp_path) -> None:
    """Same files as Blender's builder packs from the same sources (its include/exclude rules)."""
    tool, _ = build_extension.find_validator(blender=None)
    staged = tmp_path / "staged"
    ignore = lambda _folder, names: [n for n in names if n == "__pycache__" or n.endswith(".pyc")]  # noqa: E731
    import shutil

    shutil.copytree(build_extension.ADDON_DIR, staged, ignore=ignore)
    shutil.copy2(build_extension.MANIFEST, staged / "blender_manifest.toml")
    (tmp_path / "theirs").mkdir()
    subprocess.run([*tool, "build", "--source-dir", str(staged), "--output-dir", str(tmp_path / "theirs")],
                   check=True, capture_output=True)  # fmt: skip
    ours = build_extension.pack(tmp_path / "ours")
    (theirs,) = (tmp_path / "theirs").glob("*.zip")
    assert sorted(zipfile.ZipFile(ours).namelist()) == sorted(zipfile.ZipFile(theirs).namelist())


def test_manifest_problems_are_named() -> None:
    problems = build_extension.check_manifest({"id": "9bad", "version": "1.0", "tagline": "Ends with a dot."})
    text = "; ".join(problems)
    assert "missing required field 'name'" in text and "id '9bad'" in text
    assert "version '1.0'" in text and "tagline" in text
    assert build_extension.excluded("core/__pycache__", True, ["__pycache__/"])
    assert not build_extension.excluded("core/__pycache__", False, ["__pycache__/"])
    assert build_extension.excluded("tests", True, ["tests/"]) and build_extension.excluded("a/b.pyc", False, ["*.pyc"])
    assert build_extension.excluded(".git", True, ["/.git/"]) and not build_extension.excluded(
        "x/.git", True, ["/.git/"]
    )
