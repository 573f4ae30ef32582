"""HTTP client for the Puppet-Master backend (``puppet-master serve``), bpy-free and standard library only.

Every failure becomes one :class:`BackendError` whose message says what went wrong and what to do,
so operators can pass it straight to ``self.report``. The HTTP goes through ``urllib.request``, not
``requests``: Blender builds packaged by Linux distributions (Debian's, for one) ship without
``requests``, and the add-on must install and work there. One client is used by one thread at a time
(the job worker or the main thread for a health check).
"""

from __future__ import annotations

import functools
import http.client
import json
import ssl
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

DEFAULT_TIMEOUT_S = 10.0
# Downloads (a zip of all frames) may take longer than a status poll; at least this long.
_MIN_DOWNLOAD_TIMEOUT_S = 60.0


class BackendError(Exception):
    """A request to the backend failed; ``str(error)`` is a sentence a user can act on.

    ``status`` is the HTTP status when the server answered, None when it could not be reached.
    """

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


@dataclass(frozen=True)
class _Answer:
    """One HTTP answer, read in full: ``status`` and the raw ``content``."""

    status: int
    content: bytes

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")

    def json(self) -> Any:
        """The body as JSON; ValueError when it is not JSON."""
        return json.loads(self.content)


def _server_message(response: _Answer) -> str:
    """The messages of an error body ``{"detail": [{"field": ..., "message": ...}]}``, joined."""
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:300]
    detail = body.get("detail") if isinstance(body, dict) else None
    if isinstance(detail, str):
        return detail
    if not isinstance(detail, list):
        return str(body)[:300]
    parts = []
    for problem in detail:
        if not isinstance(problem, dict):
            parts.append(str(problem))
            continue
        field, message = problem.get("field"), problem.get("message") or problem.get("msg") or "invalid"
        parts.append(f"{field}: {message}" if field else str(message))
    return "; ".join(parts)


@dataclass(frozen=True)
class Health:
    """The answer of ``GET /v1/health``, parsed.

    ``status`` is ``loading`` while the backend loads its engine (``stage`` says what it is doing,
    ``load_s`` for how long), ``ok`` once it is ready, ``error`` when loading failed (``error`` says
    why) and ``degraded`` when its worker stopped. A backend from before the loading state answers
    only when ready, without ``stage``, ``load_s`` or ``error``.
    """

    status: str
    engine: str = ""
    device: str = ""
    reason: str = ""
    stage: str = ""
    load_s: float = 0.0
    error: str = ""
    queue_length: int = 0
    auth: bool = False

    @classmethod
    def parse(cls, body: dict[str, Any]) -> Health:
        """From the JSON body; missing or null fields take their defaults."""

        def text(name: str) -> str:
            value = body.get(name)
            return "" if value is None else str(value)

        try:
            load_s = float(body.get("load_s") or 0.0)
            queue_length = int(body.get("queue_length") or 0)
        except (TypeError, ValueError):
            load_s, queue_length = 0.0, 0
        return cls(
            status=text("status") or "ok",
            engine=text("engine"),
            device=text("device"),
            reason=text("reason"),
            stage=text("stage"),
            load_s=load_s,
            error=text("error"),
            queue_length=queue_length,
            auth=bool(body.get("auth")),
        )

    @property
    def loading(self) -> bool:
        return self.status == "loading"

    @property
    def failed(self) -> bool:
        """The engine failed to load: jobs fail until the backend is restarted."""
        return self.status == "error"

    @property
    def is_preview(self) -> bool:
        return self.engine == "preview"

    def loading_text(self) -> str:
        """``Loading the model: reading the model from DIR (42 s)``."""
        return f"Loading the model: {self._progress()}"

    def _progress(self) -> str:
        return f"{self.stage or 'starting'} ({self.load_s:.0f} s)"

    def describe(self) -> str:
        """One sentence for the user: loading (and how far), failed (and why), or which engine runs."""
        if self.loading:
            return f"The backend is up and loading the model: {self._progress()}; jobs sent now wait until it is ready"
        if self.failed:
            return (
                f"The backend could not load the model: {self.error or 'no reason given'}; fix that and start "
                "the backend again (its log has the details)"
            )
        device = self.device or "?"
        if self.is_preview:
            text = f"Backend runs the PREVIEW engine (a rigid draft, not the Puppet-Master model) on {device}"
        else:
            text = f"Backend runs the {self.engine or '?'} model on {device}"
        if self.status != "ok":
            text += f", but its status is {self.status!r} (see the backend's log)"
        return f"{text} ({self.reason})" if self.reason else text


class BackendClient:
    """The backend's ``/v1`` API: health, submit, status, frames, cancel.

    Parameters:
        base_url: e.g. ``http://127.0.0.1:8765`` (a trailing ``/`` or ``/v1`` is accepted).
        token: bearer token (``puppet-master serve --token``); empty for none.
        timeout: seconds to wait for one answer (connect and read).
    """

    def __init__(self, base_url: str, token: str = "", timeout: float = DEFAULT_TIMEOUT_S) -> None:
        url = (base_url or "").strip().rstrip("/")
        if url.endswith("/v1"):
            url = url[: -len("/v1")]
        self.base_url = url
        self.timeout = float(timeout)
        self._headers = {"Accept": "application/json"}
        if token:
            self._headers["Authorization"] = f"Bearer {token.strip()}"
        tls = [urllib.request.HTTPSHandler(context=_tls_context())] if url.lower().startswith("https:") else []
        self._opener = urllib.request.build_opener(*tls)

    # -- API -----------------------------------------------------------------------------------

    def health(self) -> Health:
        """``GET /v1/health``: status (loading, ok, error), engine, device, reason, loading stage, queue."""
        return Health.parse(self._json(self._request("GET", "/v1/health")))

    def submit(self, payload: dict[str, Any]) -> str:
        """``POST /v1/jobs``; the new job's id."""
        body = self._json(self._request("POST", "/v1/jobs", body=payload))
        job_id = body.get("id")
        if not isinstance(job_id, str) or not job_id:
            raise BackendError(f"The backend at {self.base_url} accepted the job but sent no job id; is it up to date?")
        return job_id

    def status(self, job_id: str) -> dict[str, Any]:
        """``GET /v1/jobs/{id}``: status, progress, error and (when succeeded) the result."""
        return self._json(self._request("GET", f"/v1/jobs/{job_id}"))

    def frame_png(self, job_id: str, index: int, video: int = 0) -> bytes:
        """One frame of a succeeded job as PNG bytes."""
        response = self._request("GET", f"/v1/jobs/{job_id}/frames/{int(index)}.png", params={"video": int(video)})
        return response.content

    def frames_zip(self, job_id: str) -> bytes:
        """Every frame of every video plus ``record.json``, as zip bytes."""
        timeout = max(self.timeout, _MIN_DOWNLOAD_TIMEOUT_S)
        return self._request("GET", f"/v1/jobs/{job_id}/frames.zip", timeout=timeout).content

    def tracks(self, job_id: str, points: Sequence[Sequence[float]], video: int = 0) -> dict[str, Any]:
        """``POST /v1/jobs/{id}/tracks``: where ``points`` (frame coordinates on the first frame) are in every
        frame of a succeeded job's video, with a confidence per point and frame."""
        payload = {"points": [[float(x), float(y)] for x, y in points], "video": int(video)}
        timeout = max(self.timeout, _MIN_DOWNLOAD_TIMEOUT_S)  # tracking takes the server a moment
        return self._json(self._request("POST", f"/v1/jobs/{job_id}/tracks", body=payload, timeout=timeout))

    def cancel(self, job_id: str) -> None:
        """``DELETE /v1/jobs/{id}``: cancel a queued or running job (delete a finished one); gone is fine."""
        try:
            self._request("DELETE", f"/v1/jobs/{job_id}")
        except BackendError as error:
            if error.status != 404:
                raise

    def close(self) -> None:
        """Nothing stays open between requests (each one has its own connection); kept for the callers."""

    # -- plumbing ------------------------------------------------------------------------------

    def _request(
        self,
        method: str,
        path: str,
        timeout: float | None = None,
        body: dict[str, Any] | None = None,
        params: dict[str, Any] | None = None,
    ) -> _Answer:
        if not _is_http_url(self.base_url):
            raise self._invalid_url()
        timeout = self.timeout if timeout is None else timeout
        url = self.base_url + path + (f"?{urllib.parse.urlencode(params)}" if params else "")
        headers = dict(self._headers)
        data = None
        if body is not None:
            data = _encode_json(body)
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(url, data=data, headers=headers, method=method)
        try:
            with self._opener.open(request, timeout=timeout) as answer:
                response = _Answer(answer.status, answer.read())
        except urllib.error.HTTPError as error:  # the server answered, with an error status
            with error:
                response = _Answer(error.code, error.read())
        except (TimeoutError, urllib.error.URLError, OSError, http.client.HTTPException, ValueError) as error:
            raise self._unreachable(error, timeout) from None
        if 200 <= response.status < 400:
            return response
        raise self._refused(response)

    def _unreachable(self, error: Exception, timeout: float) -> BackendError:
        """The request got no answer: the backend is down, too slow, or the URL is wrong."""
        reason = error.reason if isinstance(error, urllib.error.URLError) else error
        if isinstance(reason, TimeoutError):
            return BackendError(
                f"The Puppet Master backend at {self.base_url} did not answer within {timeout:g} s: it may be busy "
                "or still loading the model; try again, or raise Request Timeout in the add-on preferences"
            )
        if isinstance(reason, (ValueError, http.client.InvalidURL)):  # e.g. control characters in the URL
            return self._invalid_url()
        if isinstance(reason, OSError):  # refused, reset, no such host, TLS
            return BackendError(
                f"Cannot reach the Puppet Master backend at {self.base_url}: start it with `puppet-master serve` "
                "or set the URL in preferences"
            )
        return BackendError(f"Request to the Puppet Master backend at {self.base_url} failed: {reason}")

    def _invalid_url(self) -> BackendError:
        return BackendError(
            f"The backend URL {self.base_url!r} is not valid: set it in the add-on preferences, e.g. http://127.0.0.1:8765"
        )

    def _refused(self, response: _Answer) -> BackendError:
        """The backend answered with an error status: its own message, and what the user can do about it."""
        status = response.status
        message = _server_message(response)
        if status == 401:
            return BackendError(
                f"The backend at {self.base_url} needs a valid token: set Token in the add-on preferences to the "
                f"one given to `puppet-master serve --token` ({message})",
                status,
            )
        if status >= 500:
            return BackendError(
                f"The backend at {self.base_url} had an internal error (HTTP {status}): {message or 'no details'}; "
                "see the backend's log",
                status,
            )
        return BackendError(f"The backend refused the request (HTTP {status}): {message}", status)

    def _json(self, response: _Answer) -> dict[str, Any]:
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise BackendError(
                f"The server at {self.base_url} did not answer like a Puppet Master backend (no JSON object): "
                "check the URL in the add-on preferences"
            )
        return body


def _is_http_url(url: str) -> bool:
    """``http(s)://host[:port]``: what ``requests`` would have accepted (urllib would also open ``file:``)."""
    parts = urllib.parse.urlsplit(url)
    try:
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number in range
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def _encode_json(body: dict[str, Any]) -> bytes:
    """The request body; NaN and infinity are not JSON, so they fail here with a message, not on the server."""
    try:
        return json.dumps(body, allow_nan=False).encode("utf-8")
    except ValueError as error:
        raise BackendError(
            f"The request could not be sent: {error} (a setting or a drag is not a finite number)"
        ) from None


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """Certificates as ``requests`` checked them: certifi's bundle where Blender ships it, else the system's."""
    try:
        import certifi
    except ImportError:
        return ssl.create_default_context()
    return ssl.create_default_context(cafile=certifi.where())
