"""The extension zip: built by scripts/build_extension.py (standard library), accepted by Blender's
validator, installed and enabled by Blender's installer, and registered/unregistered cleanly twice."""

from __future__ import annotations

import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from addon_support import ROOT, extension_zip, run_scenario  # noqa: F401 - extension_zip is a fixture

MODULE = "bl_ext.user_default.puppet_master"


def test_zip_holds_the_manifest_and_the_add_on(extension_zip: Path) -> None:  # noqa: F811
    assert extension_zip.name == "puppet_master-0.1.0.zip"
    names = zipfile.ZipFile(extension_zip).namelist()
    assert "blender_manifest.toml" in names and "__init__.py" in names
    assert {"ui.py", "operators/generate.py", "core/client.py", "core/jobs.py"} <= set(names)
    assert not [name for name in names if "__pycache__" in name or name.endswith(".pyc")]
    sources = sorted(
        path.relative_to(ROOT / "puppet_master_addon").as_posix()
        for path in (ROOT / "puppet_master_addon").rglob("*.py")
        if "__pycache__" not in path.parts
    )
    assert sorted(name for name in names if name.endswith(".py")) == sources


def test_blenders_validator_accepts_the_zip(extension_zip: Path) -> None:  # noqa: F811
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        from build_extension import find_validator
    finally:
        sys.path.pop(0)
    tool, note = find_validator()
    assert tool is not None, note
    completed = subprocess.run([*tool, "validate", str(extension_zip)], capture_output=True, text=True, check=False)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "Success" in completed.stdout


# Official builds bundle requests and numpy; Debian's Blender has neither (issue 12).
@pytest.mark.parametrize("extras", [(), ("--without-extras",)], ids=["official", "without-requests-numpy"])
def test_install_enable_and_reregister_twice(extension_zip: Path, tmp_path: Path, extras: tuple[str, ...]) -> None:  # noqa: F811
    report, output = run_scenario("package", extension_zip, tmp_path, *extras)
    assert report["install"] == ["FINISHED"], output
    if extras:
        assert report["loaded_extras"] == []
    registered = {"enabled": True, "scene_property": True, "panel": True, "generate_op": True, "ulist": True}
    assert report["after_install"] == registered
    assert len(report["cycles"]) == 2
    for cycle in report["cycles"]:
        assert cycle["disable"] == ["FINISHED"] and cycle["enable"] == ["FINISHED"]
        assert cycle["off"] == dict.fromkeys(registered, False)
        assert cycle["on"] == registered
    # installed into the temporary user folder, not the real one
    assert report["user_folder"].startswith(str(tmp_path / "blender-user"))
    assert report["drags"] == 1
    assert "Traceback" not in output, output
    # every operator the panels draw exists
    drawn = set(re.findall(r'"(puppet\.[a-z_]+)"', (ROOT / "puppet_master_addon" / "ui.py").read_text()))
    assert drawn and drawn <= set(report["operators"]), drawn - set(report["operators"])
    # the panels and lists draw (with a layout stand-in that checks properties, operators and icons)
    # in 5 states (idle, preview, a job running, the backend loading its engine, its load failed) x 8 classes
    assert len(report["drawn"]) == 5 * 8
    assert report["draw_problems"] == []
