"""Puppet Master: draw drags over the camera view, get a video of part-level motion to animate over.

This module only registers; see ``properties.py`` (scene data), ``preferences.py``, ``ui.py`` and
``operators/``. Pure logic lives in bpy-free modules under ``core/``.
"""

from . import operators, preferences, properties, runtime, ui

_modules = (preferences, properties, runtime, operators, ui)


def register() -> None:
    for module in _modules:
        module.register()


def unregister() -> None:
    for module in reversed(_modules):
        module.unregister()
