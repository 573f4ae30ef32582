"""A pure ASGI middleware that refuses request bodies above a size limit with 413, before they are parsed,
and holds each accepted body against the server's budget of bodies in memory (:class:`.intake.Intake`)."""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import error_body
from .faults import ServiceFault
from .intake import Intake

# Refused bodies up to this multiple of the limit are read to the end before answering.
_DRAIN_FACTOR = 4


class BodySizeLimitMiddleware:
    """Reject bodies larger than ``max_bytes`` (by ``Content-Length``, or by counting a chunked body).

    The body is read here, up to the limit, and replayed to the app: FastAPI reads it whole anyway,
    and this way an oversized upload is cut off without buffering more than the limit. Before reading,
    the body's size (declared, or the limit when chunked) is held against ``intake``'s budget until
    the response is sent; while there is no room the body stays unread (in the client's socket).
    """

    def __init__(self, app: ASGIApp, max_bytes: int, intake: Intake | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.intake = intake

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS", "DELETE"):
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None:
            try:
                too_large = int(declared) > self.max_bytes
            except ValueError:
                too_large = False  # the server rejects a malformed Content-Length itself
            if too_large:
                await self._drain(receive, int(declared))
                await self._refuse(send, int(declared))
                return
        if self.intake is None:
            await self._read_and_call(scope, receive, send)
            return
        try:
            expected = int(declared) if declared is not None else self.max_bytes
        except ValueError:
            expected = self.max_bytes
        try:
            held = await self.intake.hold_body(max(expected, 0))
        except ServiceFault as fault:
            await _send_json(send, fault.status, error_body([(None, fault.message)]), fault.headers)
            return
        try:
            await self._read_and_call(scope, receive, send)
        finally:
            await self.intake.release_body(held)

    async def _read_and_call(self, scope: Scope, receive: Receive, send: Send) -> None:
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                if message.get("more_body", False):
                    await self._drain(receive, None)
                await self._refuse(send, None)
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _drain(self, receive: Receive, declared: int | None) -> None:
        """Read and discard the rest of a refused body (up to a cap), so the client sees the 413.

        A client still uploading when the server answers and closes gets a broken pipe instead of
        the response; reading a modest excess on is cheaper than that confusion.
        """
        cap = _DRAIN_FACTOR * self.max_bytes
        if declared is not None and declared > cap:
            return
        drained = 0
        while drained <= cap:
            message = await receive()
            if message["type"] != "http.request":
                return
            drained += len(message.get("body", b""))
            if not message.get("more_body", False):
                return

    async def _refuse(self, send: Send, size: int | None) -> None:
        limit_mb = self.max_bytes / 1024**2
        actual = f" ({size / 1024**2:.1f} MB)" if size is not None else ""
        message = f"the request body{actual} is larger than the {limit_mb:g} MB limit; send a smaller image"
        await _send_json(send, 413, error_body([("body", message)]))


async def _send_json(send: Send, status: int, content: dict, headers: dict[str, str] | None = None) -> None:
    """Send a whole JSON response from middleware (outside FastAPI's handlers)."""
    body = json.dumps(content).encode()
    extra = [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in (headers or {}).items()]
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *extra],
        }
    )
    await send({"type": "http.response.body", "body": body})
