"""Build the installable Blender extension zip with nothing but Python's standard library, then validate it.

Runs with any Python >= 3.11 and no third-party packages (Windows, macOS, ARM servers alike): the zip is
packed here as Blender's own builder packs it — ``blender_manifest.toml`` and the package's files at the
zip's root, the manifest's ``[build] paths_exclude_pattern`` applied gitignore-style, deflate level 9 —
and the manifest's required fields are checked. When Blender's own tooling is at hand it validates the
zip too: a ``blender`` 4.2 or newer on PATH (an older one is skipped with a note; extensions need 4.2),
or ``blender_ext.py`` from the ``bpy`` wheel of the dev extras. Prints the zip's path.
"""

from __future__ import annotations

import argparse
import fnmatch
import logging
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ADDON_DIR = ROOT / "puppet_master_addon"
MANIFEST = ROOT / "blender_manifest.toml"
MANIFEST_NAME = "blender_manifest.toml"
MINIMUM_BLENDER = (4, 2)
# Blender's builder excludes these when the manifest declares no patterns of its own
DEFAULT_EXCLUDES = ["__pycache__/", ".*", "/*.zip", "*.blend[1-9]"]
REQUIRED_FIELDS = ("schema_version", "id", "version", "name", "tagline", "maintainer", "type",
                   "blender_version_min", "license")  # fmt: skip
_EXT_TOOL = Path("scripts", "addons_core", "bl_pkg", "cli", "blender_ext.py")

logger = logging.getLogger("build-extension")


class BuildError(RuntimeError):
    """The extension cannot be built or does not validate; the message says why."""


# ------------------------------------------------------------------ manifest


def check_manifest(manifest: dict) -> list[str]:
    """The problems with the manifest's required fields (empty when it is fine)."""
    problems = [f"missing required field {name!r}" for name in REQUIRED_FIELDS if name not in manifest]
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", str(manifest.get("id", "x"))):
        problems.append(f"id {manifest.get('id')!r} must be a Python identifier (letters, digits, underscores)")
    for name in ("version", "schema_version", "blender_version_min"):
        if name in manifest and not re.fullmatch(r"\d+\.\d+\.\d+([-+].*)?", str(manifest[name])):
            problems.append(f"{name} {manifest[name]!r} must be a semantic version such as 1.2.3")
    tagline = str(manifest.get("tagline", ""))
    if len(tagline) > 64 or tagline.endswith((".", "!", "?")):
        problems.append(f"tagline {tagline!r} must be at most 64 characters and not end in punctuation")
    if manifest.get("type") not in (None, "add-on", "theme"):
        problems.append(f"type {manifest.get('type')!r} must be 'add-on' or 'theme'")
    licenses = manifest.get("license", ["SPDX:x"])
    if not isinstance(licenses, list) or not all(str(item).startswith("SPDX:") for item in licenses):
        problems.append(f"license {licenses!r} must be a list of 'SPDX:<identifier>' strings")
    return problems


# ------------------------------------------------------------------ files


def excluded(relative: str, is_dir: bool, patterns: list[str]) -> bool:
    """Whether ``relative`` (a POSIX path inside the package) matches a gitignore-style pattern: a trailing ``/``
    matches directories only, a leading ``/`` anchors at the package root, a pattern without ``/`` matches a
    name at any depth."""
    name = relative.rsplit("/", 1)[-1]
    for pattern in patterns:
        directory_only = pattern.endswith("/")
        body = pattern.rstrip("/")
        if directory_only and not is_dir:
            continue
        if body.startswith("/"):
            if fnmatch.fnmatchcase(relative, body[1:]):
                return True
        elif "/" in body:
            if fnmatch.fnmatchcase(relative, body):
                return True
        elif fnmatch.fnmatchcase(name, body):
            return True
    return False


def package_files(source: Path, patterns: list[str]) -> list[tuple[Path, str]]:
    """``(path, name in the zip)`` for every file of ``source`` the patterns keep, sorted."""
    kept: list[tuple[Path, str]] = []

    def walk(folder: Path) -> None:
        for entry in sorted(folder.iterdir()):
            relative = entry.relative_to(source).as_posix()
            if excluded(relative, entry.is_dir(), patterns):
                continue
            if entry.is_dir():
                walk(entry)
            elif entry.is_file():
                kept.append((entry, relative))

    walk(source)
    return kept


def pack(output_dir: Path) -> Path:
    """Write ``<output_dir>/<id>-<version>.zip`` (atomically) and return its path."""
    try:
        manifest = tomllib.loads(MANIFEST.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise BuildError(f"cannot read {MANIFEST.name}: {error}") from None
    if problems := check_manifest(manifest):
        raise BuildError(f"{MANIFEST.name}: " + "; ".join(problems))
    patterns = manifest.get("build", {}).get("paths_exclude_pattern") or DEFAULT_EXCLUDES
    files = package_files(ADDON_DIR, patterns)
    if not any(name == "__init__.py" for _, name in files):
        raise BuildError(f"{ADDON_DIR} has no __init__.py: an add-on extension must be a Python package")
    output_dir.mkdir(parents=True, exist_ok=True)
    target = output_dir / f"{manifest['id']}-{manifest['version']}.zip"
    partial = target.with_suffix(".zip.partial")
    with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        archive.write(MANIFEST, MANIFEST_NAME)
        for path, name in files:
            archive.write(path, name)
    partial.replace(target)
    return target


# ------------------------------------------------------------------ Blender's validator, when it is here


def blender_version(blender: str) -> tuple[int, int] | None:
    """``(major, minor)`` that ``blender --version`` prints, or None when it does not run."""
    try:
        completed = subprocess.run([blender, "--version"], capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.SubprocessError):
        return None
    found = re.search(r"Blender (\d+)\.(\d+)", completed.stdout)
    return (int(found.group(1)), int(found.group(2))) if found else None


def find_validator(blender: str | None = None) -> tuple[list[str] | None, str]:
    """The command prefix that runs Blender's extension tooling, and a note on what was chosen or skipped."""
    notes = []
    blender = blender or shutil.which("blender")
    if blender:
        version = blender_version(blender)
        if version is not None and version >= MINIMUM_BLENDER:
            return [blender, "--factory-startup", "--command", "extension"], f"Blender {version[0]}.{version[1]}"
        shown = "an unknown version" if version is None else f"Blender {version[0]}.{version[1]}"
        notes.append(f"skipped {blender} ({shown}; extensions need 4.2 or newer)")
    for entry in sys.path:  # the bpy wheel: <site-packages>/bpy/<version>/scripts/addons_core/...
        for candidate in sorted(Path(entry or ".").glob(f"bpy/*/{_EXT_TOOL.as_posix()}"), reverse=True):
            return [sys.executable, str(candidate)], "; ".join([*notes, "the bpy wheel's blender_ext.py"])
    notes.append("Blender's validator is not available (no blender >= 4.2 on PATH, no bpy wheel)")
    return None, "; ".join(notes)


def validate(zip_path: Path, tool: list[str]) -> None:
    completed = subprocess.run([*tool, "validate", str(zip_path)], capture_output=True, text=True)
    output = (completed.stdout + completed.stderr).strip()
    if completed.returncode != 0:
        raise BuildError(f"Blender's validator rejected {zip_path.name} (exit {completed.returncode}):\n{output}")
    logger.info("Blender's validator:\n%s", output)


def build(output_dir: Path, blender: str | None = None, validate_with_blender: bool = True) -> Path:
    """Pack the zip and, when Blender's tooling is found, validate it; the zip's path."""
    target = pack(output_dir.resolve())
    if validate_with_blender:
        tool, note = find_validator(blender)
        if tool is None or "skipped" in note:
            logger.warning("validation: %s", note)
        else:
            logger.info("validation with %s", note)
        if tool is not None:
            validate(target, tool)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output-dir", default=str(ROOT / "dist"), help="where the zip goes (default: dist/)")
    parser.add_argument("--blender", help="a Blender (4.2 or newer) whose validator to use")
    parser.add_argument("--no-validate", action="store_true", help="only pack, even if Blender's tooling is there")
    parser.add_argument("-v", "--verbose", action="store_true", help="show the validator's output")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")
    try:
        zip_path = build(Path(args.output_dir), args.blender, not args.no_validate)
    except BuildError as error:
        print(f"build-extension: {error}", file=sys.stderr)
        return 2
    sys.stdout.write(f"{zip_path}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
