"""Keep the service's memory and pauses small: freed buffers go back to the system, and the garbage
collector leaves the long-lived objects alone.

The service handles buffers of tens of megabytes that live for a moment: a request body, the decoded
image, a job's frames. glibc serves allocations above a threshold with ``mmap`` and returns them to the
system when freed, but it raises that threshold to the size of the largest block freed so far (up to
32 MB), after which such buffers come from the heap, whose freed space the process keeps: after a
burst of large submissions the server held a gigabyte it no longer used (docs/reliability.md). Fixing
the threshold at 1 MiB keeps every large buffer returnable; :func:`trim` hands back the rest after a job.
Elsewhere (macOS, Windows, musl) both do nothing.

The process holds about half a million Python objects once torch and diffusers are imported, and a
full collection walks them all, holding the GIL for a quarter of a second: the event loop, and
``/v1/health``, stood still meanwhile. :func:`freeze_long_lived` moves what exists after start-up
(and after the engine loads) out of the collector's sight (``gc.freeze``); later collections only
walk what requests and jobs create.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging
import sys
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

logger = logging.getLogger(__name__)

_M_MMAP_THRESHOLD = -3  # mallopt parameter numbers from glibc's malloc.h
_MMAP_THRESHOLD_BYTES = 1024 * 1024


def _glibc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None
    except OSError:
        return None


_LIBC = _glibc()


def return_large_buffers_to_the_system() -> bool:
    """Serve every allocation of 1 MiB or more with mmap, so freeing it returns it; True where that applies."""
    if _LIBC is None:
        return False
    return bool(_LIBC.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_BYTES))


def trim() -> None:
    """Return the free parts of the heap to the system (after a job: its frames are gone)."""
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


def freeze_long_lived() -> None:
    """Collect once, then exclude every object alive now from later collections (imports, the engine)."""
    gc.collect()
    gc.freeze()


def freezing(factory: Callable[..., T]) -> Callable[..., T]:
    """``factory`` that freezes the long-lived objects once it has returned (for the engine factory)."""

    def build(*args: object, **kwargs: object) -> T:
        built = factory(*args, **kwargs)
        freeze_long_lived()
        return built

    return build
