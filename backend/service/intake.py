"""How much submission work runs at once: request bodies held in memory, and images being decoded.

One large request is legal (32 MB of base64, a 4096x4096 image), but forty of them at once would take
gigabytes: every body is held whole while it is parsed, and a decoded image is width x height x 4
bytes, more while it is converted. :class:`Intake` bounds both. Waiting for room happens on the event
loop (an ``asyncio`` primitive, holding no thread), and decoding runs on threads of its own
(``anyio`` with a dedicated limiter), so the thread pool that the other routes share, and
``/v1/health``, never wait behind submissions. Who waits longer than ``wait_s`` is told to retry
(503 with Retry-After): the server is busy, the request was fine.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TypeVar

import anyio
import anyio.to_thread

from .faults import ServiceFault

T = TypeVar("T")


class Intake:
    """Bounds on concurrent submission work.

    Parameters:
        max_body_bytes_in_flight: request bodies held at once, in bytes (at least one body of the largest size).
        decode_slots: images decoded at once.
        wait_s: longest wait for room before a 503.
    """

    def __init__(self, max_body_bytes_in_flight: int, decode_slots: int, wait_s: float = 30.0) -> None:
        self.max_body_bytes_in_flight = max_body_bytes_in_flight
        self.decode_slots = decode_slots
        self.wait_s = wait_s
        self.body_bytes = 0  # held now
        self._room: asyncio.Condition | None = None
        self._decoders: asyncio.Semaphore | None = None
        self._threads: anyio.CapacityLimiter | None = None

    def bind(self) -> None:
        """Make the async primitives; call on the server's event loop (the app's lifespan)."""
        self._room = asyncio.Condition()
        self._decoders = asyncio.Semaphore(self.decode_slots)
        self._threads = anyio.CapacityLimiter(self.decode_slots)

    def _busy(self, what: str) -> ServiceFault:
        return ServiceFault(503, f"the server is busy {what}", retry_after=2)

    async def hold_body(self, size: int) -> int:
        """Wait until ``size`` more bytes of request body may be held; the bytes held (give them to
        :meth:`release_body`). ServiceFault 503 when no room came within ``wait_s``."""
        size = min(size, self.max_body_bytes_in_flight)  # one body alone always fits
        room = self._room
        if room is None:
            raise RuntimeError("Intake.bind() was not called")
        async with room:
            try:
                await asyncio.wait_for(
                    room.wait_for(lambda: self.body_bytes + size <= self.max_body_bytes_in_flight), self.wait_s
                )
            except TimeoutError:
                raise self._busy("receiving other uploads") from None
            self.body_bytes += size
        return size

    async def release_body(self, size: int) -> None:
        """Give back what :meth:`hold_body` granted."""
        if self._room is None:
            return
        async with self._room:
            self.body_bytes -= size
            self._room.notify_all()

    async def decode(self, work: Callable[[], T]) -> T:
        """Run ``work`` (decoding an image, writing it to the journal) on a decoding thread, when a slot is free."""
        decoders, threads = self._decoders, self._threads
        if decoders is None or threads is None:
            raise RuntimeError("Intake.bind() was not called")
        try:
            await asyncio.wait_for(decoders.acquire(), self.wait_s)
        except TimeoutError:
            raise self._busy("decoding other images") from None
        try:
            return await anyio.to_thread.run_sync(work, limiter=threads)
        finally:
            decoders.release()
