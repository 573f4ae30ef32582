"""A service whose engine loads slowly, for the loading-state tests (not collected by pytest).

In-process tests give :class:`HeldFactory` to ``create_app(engine_factory=...)`` and release it when
they have looked at the service while it loads. Tests that need a backend *process* (the add-on's Start
Backend in Blender) run this file as the Start Command: the real service app under uvicorn, with an
engine that takes ``--load-seconds`` to load and is then the real preview engine::

    python tests/slow_backend.py --port 8765 --results-dir DIR --load-seconds 4 [--cpu-offload]

``--cpu-offload`` is accepted as ``puppet-master serve`` accepts it, and shows in the engine's reason.
"""

from __future__ import annotations

import argparse
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

FIRST_STAGE = "reading the model from /models/slow"
LAST_STAGE = "moving the model to cpu"


class HeldFactory:
    """An engine factory that loads "slowly": it reports :data:`FIRST_STAGE`, holds until ``release`` is set,
    reports :data:`LAST_STAGE` and returns ``engine`` (or raises ``error``).
    """

    def __init__(self, engine: Any = None, error: BaseException | None = None, reason: str = "loaded slowly") -> None:
        self.engine, self.error, self.reason = engine, error, reason
        self.release = threading.Event()

    def __call__(self, report: Callable[[str], None]) -> tuple[Any, str]:
        report(FIRST_STAGE)
        if not self.release.wait(120):
            raise TimeoutError("nobody released the engine within 120 s")
        report(LAST_STAGE)
        if self.error is not None:
            raise self.error
        return self.engine, self.reason


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--results-dir", type=Path, required=True)
    parser.add_argument("--load-seconds", type=float, default=3.0)
    parser.add_argument("--cpu-offload", action="store_true")
    args = parser.parse_args(argv)

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the backend package, run from anywhere
    import uvicorn

    from backend.engines.preview import PreviewEngine
    from backend.service import ServiceSettings, create_app

    reason = "slow test backend" + (", started with --cpu-offload" if args.cpu_offload else "")
    factory = HeldFactory(PreviewEngine(reason=reason), reason=reason)
    loaded = threading.Timer(args.load_seconds, factory.release.set)
    loaded.daemon = True  # a backend stopped while it loads must not wait for it
    loaded.start()
    app = create_app(ServiceSettings(port=args.port, results_dir=args.results_dir), engine_factory=factory)
    print(f"slow test backend on port {args.port}, loading for {args.load_seconds:g} s", flush=True)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")
    return 0


if __name__ == "__main__":
    sys.exit(main())
