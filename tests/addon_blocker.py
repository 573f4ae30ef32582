"""Make packages unimportable in this process, as they are in Blender builds that ship without them.

Debian's Blender (and other distribution builds) comes without ``requests`` and ``numpy``, which official
builds bundle. :func:`block` removes the packages from ``sys.modules`` (bpy 5.x imports numpy at start-up)
and puts a finder first on ``sys.meta_path`` that refuses them, so any later ``import numpy`` fails with
``ModuleNotFoundError`` as it would there. Used by the add-on tests in child processes; not collected by pytest.
"""

from __future__ import annotations

import importlib.abc
import sys
from collections.abc import Iterable, Sequence
from types import ModuleType
from typing import Any

# what Debian's Blender lacks; urllib3 and certifi come with requests in the official builds
DISTRIBUTION_MISSING = ("requests", "numpy", "urllib3", "certifi")


class _Refuse(importlib.abc.MetaPathFinder):
    def __init__(self, names: Iterable[str]) -> None:
        self.names = frozenset(names)

    def find_spec(self, fullname: str, path: Sequence[str] | None = None, target: ModuleType | None = None) -> Any:
        if fullname.partition(".")[0] in self.names:
            raise ModuleNotFoundError(f"No module named {fullname!r} (blocked for this test)", name=fullname)
        return None


def block(names: Iterable[str] = DISTRIBUTION_MISSING) -> None:
    """From now on, importing any of ``names`` (or a submodule) fails in this process."""
    names = frozenset(names)
    for loaded in [name for name in sys.modules if name.partition(".")[0] in names]:
        del sys.modules[loaded]
    sys.meta_path.insert(0, _Refuse(names))
