"""Import the add-on's bpy-free ``core`` package without Blender (not collected by pytest).

``puppet_master_addon/__init__.py`` imports bpy, so ``core`` is loaded as a package of its own, under
another name: the tests of its pure logic run where the ``bpy`` module is not installed.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

CORE_DIR = Path(__file__).resolve().parent.parent / "puppet_master_addon" / "core"
PACKAGE = "puppet_master_core_standalone"


def load_addon_core(*modules: str) -> list[ModuleType]:
    """The named modules of ``puppet_master_addon/core``, imported once as ``puppet_master_core_standalone``."""
    if PACKAGE not in sys.modules:
        spec = importlib.util.spec_from_file_location(
            PACKAGE, CORE_DIR / "__init__.py", submodule_search_locations=[str(CORE_DIR)]
        )
        package = importlib.util.module_from_spec(spec)
        sys.modules[PACKAGE] = package
        spec.loader.exec_module(package)
    return [importlib.import_module(f"{PACKAGE}.{module}") for module in modules]
