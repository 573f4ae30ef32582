"""Operators, one module per operator family; each module has ``classes`` and register/unregister."""

from . import backend, bake_motion, capture, drags, drags_from_animation, generate, results

_modules = (backend, capture, drags, drags_from_animation, generate, results, bake_motion)


def register() -> None:
    for module in _modules:
        module.register()


def unregister() -> None:
    for module in reversed(_modules):
        module.unregister()
