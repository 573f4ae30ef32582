"""A log filter that keeps one fault from flooding the log.

When something on the server breaks for every request (no file handles left, a full disk), each
request logs the same warning, often with a traceback: tens of thousands of lines a minute, which
fill the very disk that is full and bury the first, useful message. :class:`RepeatFilter` lets the
first of a kind through with its traceback, the next few without, and then only a count per window.
"""

from __future__ import annotations

import logging
import threading
import time


class RepeatFilter(logging.Filter):
    """Rate-limit identical warnings and errors (same logger, level, message template and exception type).

    Parameters:
        burst: records of a kind let through per ``window_s`` seconds (the first keeps its traceback).
        window_s: length of a window; the first record of the next one says how many were held back.
        level: records below this level pass untouched.
    """

    def __init__(self, burst: int = 3, window_s: float = 60.0, level: int = logging.WARNING) -> None:
        super().__init__()
        self.burst = burst
        self.window_s = window_s
        self.level = level
        self._lock = threading.Lock()
        self._seen: dict[tuple, list[float | int]] = {}  # key -> [window start, passed, dropped]

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < self.level:
            return True
        kind = record.exc_info[0].__name__ if record.exc_info and record.exc_info[0] else None
        key = (record.name, record.levelno, str(record.msg), kind)
        now = time.monotonic()
        with self._lock:
            entry = self._seen.get(key)
            if entry is None or now - entry[0] >= self.window_s:
                dropped = int(entry[2]) if entry is not None else 0
                self._seen[key] = [now, 1, 0]
                if len(self._seen) > 1000:  # forget old kinds; a bounded memory for a long-running server
                    self._seen = {k: v for k, v in self._seen.items() if now - v[0] < self.window_s}
                if dropped:
                    record.msg = f"{record.msg} [{dropped} more like this in the last {self.window_s:g} s not shown]"
                return True
            if entry[1] >= self.burst:
                entry[2] += 1
                return False
            entry[1] += 1
        record.exc_info = None  # a repeat: the first one's traceback says it all
        record.exc_text = None
        record.stack_info = None
        return True


def install_repeat_filter(logger: logging.Logger | None = None) -> RepeatFilter:
    """Put one :class:`RepeatFilter` on every handler of ``logger`` (the root logger by default)."""
    target = logger or logging.getLogger()
    repeat = RepeatFilter()
    for handler in target.handlers:
        if not any(isinstance(existing, RepeatFilter) for existing in handler.filters):
            handler.addFilter(repeat)
    return repeat
