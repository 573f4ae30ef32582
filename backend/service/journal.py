"""The job journal: every accepted job is written here, durably, before its 202 is sent.

A job table in SQLite (the standard library's embedded database) in the results folder, in WAL mode
with ``synchronous=FULL``: a committed row survives ``kill -9`` and power loss. A row holds what it
takes to run the job again: its settings and the submitted image's bytes (with the part map's and the
depth's, when they were sent). It lives from submission
until the job's ``record.json`` is durable in its folder (then the record is the truth), so after a
crash every accepted job is either finished on disk or still here, where the restarted service
finds it and runs it again, as durable task queues do.

States: ``queued`` (waiting), ``running`` (``attempts`` counts the starts, so a job that keeps killing
the server is not retried forever) and ``failed``/``cancelled`` for a finished job whose record could
not be written (a full disk): the row is its only trace, so it is kept, without the image.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

JOURNAL_NAME = "jobs.sqlite3"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    created_at REAL NOT NULL,
    settings TEXT NOT NULL,
    image BLOB,
    part_map BLOB,
    depth BLOB,
    state TEXT NOT NULL DEFAULT 'queued',
    attempts INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    updated_at REAL NOT NULL
)
"""
# Columns added after the first release: a journal written before them gets them when it is opened.
_ADDED_COLUMNS = ("part_map", "depth")
# The WAL file is cut back to this size after a checkpoint (a 24 MB image passes through it).
_WAL_LIMIT_BYTES = 8 * 1024 * 1024


@dataclass(frozen=True)
class JournalEntry:
    """One unfinished job as the journal has it (without the image bytes)."""

    id: str
    created_at: float
    settings: str
    state: str
    attempts: int
    error: str | None
    has_image: bool


class JobJournal:
    """The ``jobs`` table of ``<results-dir>/jobs.sqlite3``; every write is committed (fsync'd) before it returns.

    One connection, shared by the request threads and the worker under a lock: writes are small
    (the image once, then a state change), and SQLite serialises writers anyway.
    """

    def __init__(self, folder: Path) -> None:
        self.path = Path(folder) / JOURNAL_NAME
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=10)
        try:
            self._db.execute("PRAGMA auto_vacuum=INCREMENTAL")  # takes effect on a new file only
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute(f"PRAGMA journal_size_limit={_WAL_LIMIT_BYTES}")
            self._db.execute(_SCHEMA)
            columns = {row[1] for row in self._db.execute("PRAGMA table_info(jobs)")}
            for column in _ADDED_COLUMNS:
                if column not in columns:
                    self._db.execute(f"ALTER TABLE jobs ADD COLUMN {column} BLOB")
        except sqlite3.Error:
            self._db.close()
            raise

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _write(self, sql: str, parameters: tuple) -> int:
        with self._lock:
            return self._db.execute(sql, parameters).rowcount

    # -- the life of a job -----------------------------------------------------------------------

    def add(
        self,
        job_id: str,
        created_at: float,
        settings: str,
        image: bytes,
        part_map: bytes | None = None,
        depth: bytes | None = None,
    ) -> None:
        """Record an accepted job (durable when this returns); sqlite3.Error when it could not be written."""
        self._write(
            "INSERT INTO jobs (id, created_at, settings, image, part_map, depth, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (job_id, created_at, settings, sqlite3.Binary(image), _blob(part_map), _blob(depth), time.time()),
        )

    def start(self, job_id: str) -> tuple[bytes | None, int]:
        """Mark the job running and count the attempt; its image bytes (None when gone) and the attempt number."""
        with self._lock:
            self._db.execute(
                "UPDATE jobs SET state='running', attempts=attempts+1, updated_at=? WHERE id=?", (time.time(), job_id)
            )
            row = self._db.execute("SELECT image, attempts FROM jobs WHERE id=?", (job_id,)).fetchone()
        if row is None:
            return None, 0
        return (None if row[0] is None else bytes(row[0])), int(row[1])

    def part_inputs(self, job_id: str) -> tuple[bytes | None, bytes | None]:
        """The job's part map and depth bytes, as submitted (None for each one not sent)."""
        with self._lock:
            row = self._db.execute("SELECT part_map, depth FROM jobs WHERE id=?", (job_id,)).fetchone()
        if row is None:
            return None, None
        return tuple(None if value is None else bytes(value) for value in row)  # type: ignore[return-value]

    def requeue(self, job_id: str) -> None:
        """Put a job interrupted by a clean shutdown back to ``queued``; that start does not count as an attempt."""
        self._write(
            "UPDATE jobs SET state='queued', attempts=MAX(attempts-1, 0), updated_at=? WHERE id=?",
            (time.time(), job_id),
        )

    def keep_finished(self, job_id: str, state: str, error: str | None) -> None:
        """Keep a finished job whose record could not be written, without its inputs (no longer needed)."""
        self._write(
            "UPDATE jobs SET state=?, error=?, image=NULL, part_map=NULL, depth=NULL, updated_at=? WHERE id=?",
            (state, error, time.time(), job_id),
        )

    def remove(self, job_id: str) -> None:
        """Forget a job: its record is durable (or it was refused after all).

        When no job is left, the pages the images took are given back to the file system.
        """
        with self._lock:
            self._db.execute("DELETE FROM jobs WHERE id=?", (job_id,))
            if self._db.execute("SELECT NOT EXISTS (SELECT 1 FROM jobs)").fetchone()[0]:
                self._db.execute("PRAGMA incremental_vacuum")

    # -- reading -----------------------------------------------------------------------------------

    def entries(self) -> list[JournalEntry]:
        """Every unfinished job, in the order they were accepted."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, created_at, settings, state, attempts, error, image IS NOT NULL FROM jobs ORDER BY seq"
            ).fetchall()
        return [
            JournalEntry(
                id=row[0],
                created_at=float(row[1]),
                settings=row[2],
                state=row[3],
                attempts=int(row[4]),
                error=row[5],
                has_image=bool(row[6]),
            )
            for row in rows
        ]

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM jobs").fetchone()[0])


def _blob(data: bytes | None) -> sqlite3.Binary | None:
    return None if data is None else sqlite3.Binary(data)
