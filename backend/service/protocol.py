"""uvicorn's HTTP/1.1 protocol with the deadlines and the connection cap it lacks.

uvicorn 0.54 closes an idle kept-alive connection (``timeout_keep_alive``) but sets no deadline on a
request being received: a client that opens a connection and sends nothing, or sends its headers a
byte at a time (slowloris), or stops half-way through its body, holds the connection, its file
handle and its buffers forever. Nor does it bound the open connections (``limit_concurrency``
answers a bare-text 503 only once a request has arrived). :class:`GuardedH11Protocol` adds:

* a head deadline: the request line and headers must be complete within ``head_timeout_s`` of the
  connection opening or the previous response ending (408, then close);
* a body deadline: the body must be complete within ``body_timeout_s`` of the headers, counting only
  the time the server was ready to read (a server that stops reading while it is busy does not use
  up the client's time);
* a send deadline: a client that stops reading a response for ``send_timeout_s`` is dropped;
* a connection cap: past ``max_connections`` open connections, the connection that has waited longest
  for a request head (a second or more: idle, or a slowloris) is closed to make room for the new one,
  so slow clients cannot lock out quick ones; when there is none (every connection is busy with a
  request, or just opened) the new one is answered 503 with ``Retry-After`` (as soon as its request
  head is in, within a short deadline).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass
from typing import Any

import h11
from uvicorn.protocols.http.flow_control import FlowControl
from uvicorn.protocols.http.h11_impl import H11Protocol

from .logs import RepeatFilter

logger = logging.getLogger(__name__)
# A slowloris attack closes hundreds of connections a minute: say so a few times, then count.
logger.addFilter(RepeatFilter(level=logging.INFO))

# How long a connection over the cap gets to send its request head before it is closed unanswered.
_OVER_CAP_HEAD_S = 2.0
# A connection waiting this long for a request head may be closed for a new one at the cap: a client
# sends its head within milliseconds of connecting; an idle or slowloris connection does not.
_EVICTABLE_AFTER_S = 1.0


@dataclass(frozen=True)
class ConnectionLimits:
    """Deadlines (seconds) and the cap on open connections; see the module's docstring."""

    head_timeout_s: float = 10.0
    body_timeout_s: float = 60.0
    send_timeout_s: float = 60.0
    max_connections: int = 128


def _raw_json_response(status: int, reason: str, message: str, headers: dict[str, str] | None = None) -> bytes:
    """A complete HTTP/1.1 response, written straight to the socket (no request was parsed, or it is abandoned)."""
    body = json.dumps({"detail": [{"field": None, "message": message}]}).encode()
    lines = [
        f"HTTP/1.1 {status} {reason}",
        "content-type: application/json",
        f"content-length: {len(body)}",
        "connection: close",
        *(f"{name}: {value}" for name, value in (headers or {}).items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


class _TimedFlowControl(FlowControl):
    """uvicorn's flow control, counting how long reading was paused (the server's time, not the client's)."""

    def __init__(self, transport: asyncio.Transport) -> None:
        super().__init__(transport)
        self.paused_s = 0.0
        self._paused_at: float | None = None

    def pause_reading(self) -> None:
        if not self.read_paused:
            self._paused_at = time.monotonic()
        super().pause_reading()

    def resume_reading(self) -> None:
        if self.read_paused and self._paused_at is not None:
            self.paused_s += time.monotonic() - self._paused_at
            self._paused_at = None
        super().resume_reading()

    def paused_total(self) -> float:
        extra = time.monotonic() - self._paused_at if self._paused_at is not None else 0.0
        return self.paused_s + extra


class GuardedH11Protocol(H11Protocol):
    """H11Protocol with read and send deadlines and a connection cap (:class:`ConnectionLimits`)."""

    limits = ConnectionLimits()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None
        self._send_deadline: asyncio.TimerHandle | None = None
        self._body_started: float | None = None
        self._body_paused_at_start = 0.0
        self._waiting_since: float | None = None  # waiting for a request head since (None: a request is under way)

    # -- connection life -----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.flow = _TimedFlowControl(transport)
        self._waiting_since = time.monotonic()
        if len(self.connections) > self.limits.max_connections and not self._evict_longest_waiting():
            self.app = _over_capacity  # answers the request, whatever it is, once its head is in
            self._arm(_OVER_CAP_HEAD_S, self._head_timed_out)
        else:
            self._arm(self.limits.head_timeout_s, self._head_timed_out)

    def _evict_longest_waiting(self) -> bool:
        """Close the connection that has waited longest for a request head (a second at least), for this new
        one; False if there is none."""
        cutoff = time.monotonic() - _EVICTABLE_AFTER_S
        waiting = [
            other
            for other in self.connections
            if isinstance(other, GuardedH11Protocol) and (other._waiting_since or cutoff + 1) <= cutoff
        ]
        if not waiting:
            return False
        oldest = min(waiting, key=lambda other: other._waiting_since or 0.0)
        logger.info("closed a connection waiting for a request head: the connection cap is reached")
        received, _closed = oldest.conn.trailing_data
        if received:  # part of a request came: say why it ends; an idle kept-alive connection just closes
            oldest._abort(408, "Request Timeout", "the server needed this connection; send the whole request at once")
        else:
            oldest._abort(None, "", "")
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        self._disarm_send()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._follow_request()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self.transport.is_closing():
            return
        if self.conn.their_state is h11.IDLE:
            # the next request's head must arrive in time too (the keep-alive timeout is shorter and
            # closes an idle connection first; this one catches a slow next request)
            self._waiting_since = time.monotonic()
            self._arm(self.limits.head_timeout_s, self._head_timed_out)
        else:  # a pipelined request is under way
            self._follow_request()

    def _follow_request(self) -> None:
        """Switch deadlines as the request moves on: head -> body -> handled by the app."""
        state = self.conn.their_state
        if state is not h11.IDLE:
            self._waiting_since = None
        if state is h11.SEND_BODY:
            if self._body_started is None:
                self._body_started = time.monotonic()
                self._body_paused_at_start = self._flow_paused()
                self._arm(self.limits.body_timeout_s, self._body_check)
        elif state is not h11.IDLE:  # the request is complete (or the connection is ending): the app has it
            self._body_started = None
            self._disarm()

    # -- deadlines -----------------------------------------------------------------------------

    def _arm(self, seconds: float, callback: Any) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, callback)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _flow_paused(self) -> float:
        return self.flow.paused_total() if isinstance(self.flow, _TimedFlowControl) else 0.0

    def _head_timed_out(self) -> None:
        self._deadline = None
        if self.transport.is_closing() or self.conn.their_state is not h11.IDLE:
            return
        if self.cycle is not None and not self.cycle.response_complete:
            return  # a response is on its way; its own deadlines apply
        logger.info("closed a connection that sent no complete request within %g s", self.limits.head_timeout_s)
        self._abort(
            408,
            "Request Timeout",
            f"the request's headers did not arrive within {self.limits.head_timeout_s:g} s; send the whole request "
            "at once",
        )

    def _body_check(self) -> None:
        """The body deadline: fire once the client had ``body_timeout_s`` of the server's attention."""
        self._deadline = None
        if self._body_started is None or self.transport.is_closing() or self.conn.their_state is not h11.SEND_BODY:
            return
        used = time.monotonic() - self._body_started - (self._flow_paused() - self._body_paused_at_start)
        left = self.limits.body_timeout_s - used
        if left > 0.05:
            self._deadline = self.loop.call_later(left, self._body_check)
            return
        logger.info("closed a connection whose request body did not arrive within %g s", self.limits.body_timeout_s)
        started = self.cycle is not None and self.cycle.response_started
        self._abort(
            None if started else 408,
            "Request Timeout",
            f"the request body did not arrive within {self.limits.body_timeout_s:g} s; "
            "send it faster, or a smaller one",
        )

    def _abort(self, status: int | None, reason: str, message: str) -> None:
        """End the connection, answering ``status`` first when no response was started; the app sees a disconnect."""
        if self.cycle is not None and not self.cycle.response_complete:
            self.cycle.disconnected = True  # the app's further sends are dropped, its receive says disconnect
            self.cycle.message_event.set()
        if status is not None:
            self.transport.write(_raw_json_response(status, reason, message))
        self.transport.close()

    # -- sending -------------------------------------------------------------------------------

    def pause_writing(self) -> None:
        super().pause_writing()
        if self._send_deadline is None:
            self._send_deadline = self.loop.call_later(self.limits.send_timeout_s, self._send_timed_out)

    def resume_writing(self) -> None:
        super().resume_writing()
        self._disarm_send()

    def _disarm_send(self) -> None:
        if self._send_deadline is not None:
            self._send_deadline.cancel()
            self._send_deadline = None

    def _send_timed_out(self) -> None:
        self._send_deadline = None
        if not self.transport.is_closing():
            logger.info("dropped a client that read nothing for %g s", self.limits.send_timeout_s)
            self.transport.abort()


async def _over_capacity(scope: dict, receive: Any, send: Any) -> None:
    """The app a connection over the cap gets: 503 with Retry-After, and the connection closes."""
    body = json.dumps(
        {
            "detail": [
                {
                    "field": None,
                    "message": "the server has too many open connections; retry in about 1 s, "
                    "and reuse one connection for several requests",
                }
            ]
        }
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 503,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"retry-after", b"1"),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def guarded_protocol(limits: ConnectionLimits) -> type[GuardedH11Protocol]:
    """The protocol class to give uvicorn (``Config(http=...)``) for ``limits``."""
    return type("GuardedH11Protocol", (GuardedH11Protocol,), {"limits": limits})
