"""Build the installable Blender extension zip with Blender's own tooling, then validate it.

``blender_manifest.toml`` and ``puppet_master_addon/`` (without caches) are staged into one folder,
which Blender's extension builder packs into ``<output-dir>/<id>-<version>.zip``; Blender's
validator then checks the zip. Prints the zip's path.

The tooling is a ``blender`` binary on PATH (``blender --command extension ...``) or, without one,
``blender_ext.py`` from the ``bpy`` wheel (the dev extras), which runs with plain Python.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ADDON_DIR = ROOT / "puppet_master_addon"
MANIFEST = ROOT / "blender_manifest.toml"
_EXT_TOOL = Path("scripts", "addons_core", "bl_pkg", "cli", "blender_ext.py")

logger = logging.getLogger("build-extension")


def find_extension_tool(blender: str | None = None) -> list[str]:
    """The command prefix that runs Blender's extension tooling (``... build``, ``... validate``)."""
    blender = blender or shutil.which("blender")
    if blender:
        return [blender, "--factory-startup", "--command", "extension"]
    for entry in sys.path:  # the bpy wheel: <site-packages>/bpy/<version>/scripts/addons_core/...
        for candidate in sorted(Path(entry or ".").glob(f"bpy/*/{_EXT_TOOL.as_posix()}"), reverse=True):
            return [sys.executable, str(candidate)]
    raise SystemExit(
        "Blender's extension tooling was not found: install the dev extras (pip install -e '.[dev]', "
        "which brings the bpy wheel) or put a `blender` binary on PATH"
    )


def stage(staging: Path) -> Path:
    """Copy the manifest and the add-on package into ``staging/puppet_master``; that folder."""
    source = staging / "puppet_master"
    shutil.copytree(ADDON_DIR, source, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".*"))
    shutil.copy2(MANIFEST, source / "blender_manifest.toml")
    return source


def _run(command: list[str], what: str) -> str:
    completed = subprocess.run(command, capture_output=True, text=True)
    output = (completed.stdout + completed.stderr).strip()
    if completed.returncode != 0:
        raise SystemExit(f"{what} failed (exit {completed.returncode}):\n{output}")
    logger.info("%s:\n%s", what, output)
    return output


def build(output_dir: Path, blender: str | None = None) -> Path:
    """Build and validate the zip; its path."""
    manifest = tomllib.loads(MANIFEST.read_text(encoding="utf-8"))
    output_dir = output_dir.resolve()
    output_dir.mkdir(parents=True, exist_ok=True)  # Blender's builder needs an existing folder
    target = output_dir / f"{manifest['id']}-{manifest['version']}.zip"
    target.unlink(missing_ok=True)
    tool = find_extension_tool(blender)
    with tempfile.TemporaryDirectory(prefix="puppet-master-extension-") as temp:
        source = stage(Path(temp))
        _run([*tool, "build", "--source-dir", str(source), "--output-dir", str(output_dir)], "Blender's build")
    if not target.is_file():
        raise SystemExit(f"Blender's build finished but {target} is missing")
    _run([*tool, "validate", str(target)], "Blender's validation")
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output-dir", default=str(ROOT / "dist"), help="where the zip goes (default: dist/)")
    parser.add_argument("--blender", help="a Blender binary to use instead of the bpy wheel's tooling")
    parser.add_argument("-v", "--verbose", action="store_true", help="show the tools' output")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")
    zip_path = build(Path(args.output_dir), args.blender)
    sys.stdout.write(f"{zip_path}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
