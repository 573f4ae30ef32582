"""The engine loads on a thread of its own, so the port opens at once and ``/v1/health`` can say how far it got.

Building the Puppet-Master engine reads gigabytes of weights and moves them to the GPU: minutes on
a first start. The service does not wait for it: :class:`EngineLoader` runs the engine factory on a
background thread and keeps what it reports (the stage, the seconds so far, the engine once ready,
or the error), which the health route shows and the worker waits for.
"""

from __future__ import annotations

import enum
import logging
import threading
import time
from collections.abc import Callable

from ..engines import Engine
from ..engines.factory import LoadReport

logger = logging.getLogger(__name__)

# Builds the engine, reporting its stages; returns the engine and why it was chosen (as create_engine).
EngineFactory = Callable[[LoadReport], tuple[Engine, str]]

# Errors the factory raises for a cause the user can fix (no weights, a missing file, no such device):
# their message is the whole story. Anything else is a bug, logged with its traceback.
_EXPECTED_ERRORS = (ValueError, OSError, RuntimeError, ImportError)


class LoadState(enum.Enum):
    """Where loading the engine stands."""

    loading = "loading"
    ready = "ready"
    failed = "failed"


def describe_engine(engine: Engine, reason: str) -> str:
    """``preview (requested with --engine preview); device cpu`` for the log."""
    info = engine.describe()
    where = ", ".join(f"{key} {info[key]}" for key in ("device", "dtype", "model") if info.get(key))
    return f"{engine.name} ({reason}){'; ' + where if where else ''}"


class EngineLoader:
    """The engine, once ``factory`` has built it on a background thread; meanwhile the stage it is at.

    Parameters:
        factory: builds the engine; receives a callback for short stage texts ("reading the model from DIR").
        first_stage: the stage shown before the factory reports one.
    """

    def __init__(self, factory: EngineFactory, first_stage: str = "starting") -> None:
        self._factory = factory
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._started = time.monotonic()
        self._finished: float | None = None
        self.state = LoadState.loading
        self.stage = first_stage
        self.engine: Engine | None = None
        self.reason: str | None = None
        self.error: str | None = None

    @classmethod
    def loaded(cls, engine: Engine, reason: str) -> EngineLoader:
        """A loader that is done already: for an engine built elsewhere (tests, embedding)."""
        loader = cls(lambda report: (engine, reason))
        loader._load()
        return loader

    def start(self) -> None:
        """Begin loading on a daemon thread (a server stopped mid-load does not wait for it)."""
        threading.Thread(target=self._load, name="puppet-master-engine-load", daemon=True).start()

    def wait(self, timeout: float | None = None) -> bool:
        """Whether loading has ended (ready or failed) within ``timeout`` seconds."""
        return self._done.wait(timeout)

    @property
    def seconds(self) -> float:
        """Seconds spent loading so far, or in all once it ended."""
        with self._lock:
            end = self._finished if self._finished is not None else time.monotonic()
            return end - self._started

    def _report(self, stage: str) -> None:
        with self._lock:
            self.stage = str(stage)
        logger.info("loading the engine: %s", stage)

    def _load(self) -> None:
        try:
            engine, reason = self._factory(self._report)
        except Exception as error:  # noqa: BLE001 - any failure becomes the service's readable error state
            message = str(error).strip() or type(error).__name__
            if not isinstance(error, _EXPECTED_ERRORS):
                message = f"{type(error).__name__}: {message}"
                logger.exception("the engine failed to load")
            with self._lock:
                self.state, self.error, self._finished = LoadState.failed, message, time.monotonic()
            logger.error(
                "the engine failed to load after %.1f s: %s; jobs will fail until the service is restarted",
                self.seconds,
                message,
            )
        else:
            with self._lock:
                self.engine, self.reason = engine, reason
                self.state, self._finished = LoadState.ready, time.monotonic()
            logger.info("engine ready after %.1f s: %s", self.seconds, describe_engine(engine, reason))
        finally:
            self._done.set()

    def failure_message(self) -> str:
        """What a job submitted to a service whose engine failed to load is told."""
        return (
            f"the engine failed to load: {self.error}; fix that and restart `puppet-master serve` "
            "(GET /v1/health shows this error too)"
        )
