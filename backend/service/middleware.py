"""Pure ASGI middlewares that answer before a request body is read: a submission the server cannot take
now (:class:`EarlyRefusalMiddleware`), and bodies above the size limit (:class:`BodySizeLimitMiddleware`,
which also holds each accepted body against the budget of bodies in memory, :class:`.intake.Intake`)."""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .deps import token_accepted
from .errors import error_body
from .faults import ServiceFault
from .intake import Intake

# Refused bodies up to this multiple of the limit are read to the end before answering.
_DRAIN_FACTOR = 4


class EarlyRefusalMiddleware:
    """Refuse a job submission the server cannot take now (queue full: 429; engine failed: 503) from its
    headers alone, before the body (up to 32 MB of base64) is received and parsed.

    When forty clients send large jobs at once and eight fit in the queue, parsing the other 32 bodies
    only to refuse them took the event loop (and ``/v1/health``) a second. An admitted submission holds
    a place in the queue while it is received (:meth:`.worker.Worker.admit`), so the forty are sorted
    out at once; the route asks again after parsing. Only requests that carry the right token are
    asked, so an unauthenticated client still gets its 401 and learns nothing of the queue.
    """

    def __init__(self, app: ASGIApp, path: str = "/v1/jobs") -> None:
        self.app = app
        self.path = path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and scope["path"] == self.path:
            state = scope["app"].state
            worker = getattr(state, "worker", None)
            if worker is not None and token_accepted(state.settings, _bearer_token(scope)):
                refused = worker.admit()
                if refused is not None:  # uvicorn reads and drops the unread body, so the client sees this
                    await _send_error(send, refused.status, refused.field, refused.message, refused.headers)
                    return
                try:
                    await self.app(scope, receive, send)
                finally:
                    worker.release_admission()
                return
        await self.app(scope, receive, send)


def _bearer_token(scope: Scope) -> str | None:
    """The credentials of the request's ``Authorization: Bearer ...`` header, or None."""
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, credentials = value.decode("latin-1").partition(" ")
            return credentials.strip() if scheme.lower() == "bearer" else None
    return None


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
            await _send_error(send, fault.status, None, fault.message, fault.headers)
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
        await _send_error(send, 413, "body", message)


async def _send_error(
    send: Send, status: int, field: str | None, message: str, headers: dict[str, str] | None = None
) -> None:
    """Send a whole error response, in the API's one error shape, from middleware (outside FastAPI's handlers)."""
    body = json.dumps(error_body([(field, message)])).encode()
    extra = [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in (headers or {}).items()]
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *extra],
        }
    )
    await send({"type": "http.response.body", "body": body})
