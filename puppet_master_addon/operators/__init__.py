"""Operators, one module per operator family; each module has ``classes`` and register/unregister."""

from . import backend, capture, drags, generate, results

_modules = (backend, capture, drags, generate, results)


def register() -> None:
    for module in _modules:
        module.register()


def unregister() -> None:
    for module in reversed(_modules):
        module.unregister()
