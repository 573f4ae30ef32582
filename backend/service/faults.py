"""Server faults (a full disk, a read-only folder, no file handles left) as what they are, never as the client's fault.

An ``OSError`` from the results folder or the job journal becomes a :class:`ServiceFault`: HTTP 507 when
the disk is full, 503 (with ``Retry-After`` when waiting helps) for everything else, with a message
that says what went wrong on the server and what its operator can do. Messages never contain the
server's paths: ``OSError.strerror`` is used, never ``str(error)``, which names the file.
"""

from __future__ import annotations

import errno
import sqlite3

# errno -> (HTTP status, what happened, seconds worth waiting or None when only the operator can fix it)
_DISK_FULL = (507, "the server's results disk is full", None)
_READ_ONLY = (503, "the server's results folder is read-only", None)
_NO_ACCESS = (503, "the server may not write its results folder (permission denied)", None)
_OUT_OF_FILES = (503, "the server has run out of open file handles", 5)
_OUT_OF_MEMORY = (503, "the server is out of memory", 10)
_IO_ERROR = (503, "the server's results disk reported an I/O error", None)
_BY_ERRNO = {
    errno.ENOSPC: _DISK_FULL,
    errno.EDQUOT: _DISK_FULL,
    errno.EFBIG: _DISK_FULL,
    errno.EROFS: _READ_ONLY,
    errno.EACCES: _NO_ACCESS,
    errno.EPERM: _NO_ACCESS,
    errno.EMFILE: _OUT_OF_FILES,
    errno.ENFILE: _OUT_OF_FILES,
    errno.ENOMEM: _OUT_OF_MEMORY,
    errno.EIO: _IO_ERROR,
}
# sqlite3 primary result codes (the low byte of an extended code)
_BY_SQLITE_CODE = {
    13: _DISK_FULL,  # SQLITE_FULL
    8: _READ_ONLY,  # SQLITE_READONLY
    3: _NO_ACCESS,  # SQLITE_PERM
    23: _NO_ACCESS,  # SQLITE_AUTH
    7: _OUT_OF_MEMORY,  # SQLITE_NOMEM
    10: _IO_ERROR,  # SQLITE_IOERR
    14: (503, "the server cannot open its job journal", None),  # SQLITE_CANTOPEN
    5: (503, "the server's job journal is busy", 2),  # SQLITE_BUSY
    11: (503, "the server's job journal is damaged", None),  # SQLITE_CORRUPT
}
_WHAT_TO_DO = {
    507: "free space on that disk or lower --keep-gb on the server, then retry",
    503: "this is a problem on the server, not with the request; its log has the details",
}


class ServiceFault(Exception):
    """A fault of the server itself, with the HTTP ``status`` to answer, a path-free ``reason`` and ``retry_after``."""

    def __init__(self, status: int, reason: str, retry_after: int | None = None) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.retry_after = retry_after

    @property
    def message(self) -> str:
        """What the client is told: the reason and what helps."""
        hint = f"retry in about {self.retry_after} s" if self.retry_after else _WHAT_TO_DO.get(self.status, "")
        return f"{self.reason}; {hint}" if hint else self.reason

    @property
    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)} if self.retry_after else {}


def is_server_fault(error: BaseException) -> bool:
    """True for the errors :func:`classify` turns into a :class:`ServiceFault` with a known cause."""
    if isinstance(error, ServiceFault | MemoryError):
        return True
    if isinstance(error, sqlite3.Error):
        return getattr(error, "sqlite_errorcode", None) is not None
    return isinstance(error, OSError) and error.errno in _BY_ERRNO


def classify(error: BaseException, doing: str | None = None) -> ServiceFault:
    """The :class:`ServiceFault` for an error of the server's own storage or resources.

    ``doing`` ("saving the results", ...) is put in front of the reason. Errors of unknown kind
    become a generic 503 that still names no path.
    """
    if isinstance(error, ServiceFault):
        fault = error
    elif isinstance(error, MemoryError):
        fault = ServiceFault(*_OUT_OF_MEMORY)
    elif isinstance(error, sqlite3.Error):
        code = getattr(error, "sqlite_errorcode", None)
        known = _BY_SQLITE_CODE.get(code & 0xFF) if isinstance(code, int) else None
        fault = ServiceFault(*known) if known else ServiceFault(503, "the server's job journal failed")
    elif isinstance(error, OSError) and error.errno in _BY_ERRNO:
        fault = ServiceFault(*_BY_ERRNO[error.errno])
    elif isinstance(error, OSError):
        detail = error.strerror or type(error).__name__
        fault = ServiceFault(503, f"the server's storage failed ({detail})")
    else:
        fault = ServiceFault(503, f"the server failed ({type(error).__name__})")
    if doing:
        return ServiceFault(fault.status, f"{doing} failed: {fault.reason}", fault.retry_after)
    return fault


def describe(error: BaseException) -> str:
    """A one-line, path-free description of an OS-level error, for logs and job errors."""
    if isinstance(error, OSError) and error.strerror:
        return f"{type(error).__name__}: [Errno {error.errno}] {error.strerror}"
    if isinstance(error, sqlite3.Error):
        return f"{type(error).__name__}: {error}"
    return f"{type(error).__name__}: {error}".rstrip(": ")
