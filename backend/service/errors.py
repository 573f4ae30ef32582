"""Error responses: every one is ``{"detail": [{"field": ..., "message": ...}]}`` and names the field at fault.

Validation errors become a readable 422, HTTP errors keep their status, faults of the server itself
(a full disk, no file handles, no memory: :mod:`.faults`) become 507/503 saying so, and anything else
is a server bug: a 500 whose details go to the log, never to the client.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from . import faults

logger = logging.getLogger(__name__)

# Where a parameter came from; the client knows its fields by name, not by location.
_LOCATIONS = {"body", "query", "path", "header", "cookie"}
_FASTAPI_BODY_ERROR = "There was an error parsing the body"
_DRAGS_HINT = (
    " (drags: 1 to 5 drags, each a list of 2 or more [x, y] points in normalised image coordinates, "
    "0..1, x right, y down)"
)


class ApiError(Exception):
    """An error for the client: HTTP ``status``, the ``field`` at fault (or None) and a ``message``."""

    def __init__(self, status: int, message: str, field: str | None = None, headers: Mapping[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field
        self.headers = dict(headers or {})


def error_body(problems: Iterable[tuple[str | None, str]]) -> dict[str, Any]:
    """The JSON body for ``(field, message)`` pairs."""
    return {"detail": [{"field": field, "message": message} for field, message in problems]}


def field_name(loc: Sequence[str | int]) -> str | None:
    """``("body", "drags", 2, 0)`` -> ``"drags[2][0]"``; ``("query", "video")`` -> ``"video"``."""
    parts = list(loc)
    if parts and parts[0] in _LOCATIONS:
        where = parts.pop(0)
        if where == "body" and (not parts or isinstance(parts[0], int)):
            return "body"  # the body as a whole (missing, or not JSON: the int is a character offset)
    name = ""
    for part in parts:
        if isinstance(part, int):
            name += f"[{part}]"
        else:
            name += f".{part}" if name else str(part)
    return name or None


def _message(error: Mapping[str, Any]) -> str:
    message = str(error.get("msg", "invalid value"))
    kind = error.get("type", "")
    if kind == "json_invalid":
        reason = (error.get("ctx") or {}).get("error", "")
        return f"the body is not valid JSON ({reason}); send a JSON object" if reason else "the body is not valid JSON"
    if kind == "model_attributes_type" or kind == "dict_type":
        return "expected a JSON object"
    if kind == "extra_forbidden":
        return "unknown field; check its spelling against the API schema (/openapi.json)"
    if kind == "missing":
        return "this field is required"
    if kind == "string_pattern_mismatch" and tuple(error.get("loc", ()))[-1:] == ("job_id",):
        return "not a job id; use the 22-character id that POST /v1/jobs returned"
    message = message[0].lower() + message[1:] if message else message
    if tuple(error.get("loc", ()))[:2] == ("body", "drags"):
        message += _DRAGS_HINT
    return message


async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    problems = [(field_name(error.get("loc", ())), _message(error)) for error in exc.errors()]
    content_type = request.headers.get("content-type", "")
    if problems == [("body", "expected a JSON object")] and "json" not in content_type.lower():
        problems = [
            ("body", f"send the body as a JSON object with Content-Type: application/json, not {content_type!r}")
        ]
    return JSONResponse(status_code=422, content=error_body(problems))


async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
    return JSONResponse(status_code=exc.status, content=error_body([(exc.field, exc.message)]), headers=exc.headers)


async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    message = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
    field = None
    if exc.status_code == 400 and message == _FASTAPI_BODY_ERROR:
        # json.loads failed in a way JSONDecodeError does not cover: nesting too deep, an integer
        # with thousands of digits, bytes that are not UTF-8
        field, message = "body", "the body could not be read as JSON (not UTF-8, nested too deeply, or a huge number)"
    elif exc.status_code == 404 and message == "Not Found":
        message = f"no such endpoint: {request.method} {request.url.path}; see /docs for the API"
    elif exc.status_code == 405:
        message = f"{request.method} is not allowed on {request.url.path}"
    return JSONResponse(status_code=exc.status_code, content=error_body([(field, message)]), headers=exc.headers)


def fault_response(fault: faults.ServiceFault) -> JSONResponse:
    """The response for a fault of the server: its status, reason and Retry-After."""
    return JSONResponse(status_code=fault.status, content=error_body([(None, fault.message)]), headers=fault.headers)


async def _service_fault(request: Request, exc: faults.ServiceFault) -> JSONResponse:
    logger.warning("%s %s: %s", request.method, request.url.path, exc.reason)
    return fault_response(exc)


async def _resource_error(request: Request, exc: Exception) -> JSONResponse:
    """An OSError, MemoryError or sqlite3 error out of a route: the server's storage or resources failed.

    One line in the log, no traceback: a disk that fills up fails every request alike, and a
    traceback each time would flood the log (and fill the disk further).
    """
    fault = faults.classify(exc)
    logger.error("%s %s: %s (%s)", request.method, request.url.path, fault.reason, faults.describe(exc))
    return fault_response(fault)


async def _server_error(request: Request, exc: Exception) -> JSONResponse:
    # Starlette re-raises the error after this response, and uvicorn logs it with its traceback.
    logger.error("unhandled error in %s %s: %s", request.method, request.url.path, type(exc).__name__)
    return JSONResponse(
        status_code=500, content=error_body([(None, "internal server error; the details are in the server's log")])
    )


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers above on ``app``."""
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(faults.ServiceFault, _service_fault)
    for kind in (OSError, MemoryError, sqlite3.Error):
        app.add_exception_handler(kind, _resource_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _server_error)
