"""HTTP client for the Puppet-Master backend (``puppet-master serve``), bpy-free.

Every failure becomes one :class:`BackendError` whose message says what went wrong and what to do,
so operators can pass it straight to ``self.report``. One client is used by one thread at a time
(the job worker or the main thread for a health check), so each gets its own ``requests.Session``.
"""

from __future__ import annotations

from typing import Any

import requests

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


def _server_message(response: requests.Response) -> str:
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
        self._session = requests.Session()
        self._session.headers["Accept"] = "application/json"
        if token:
            self._session.headers["Authorization"] = f"Bearer {token.strip()}"

    # -- API -----------------------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        """``GET /v1/health``: status, engine, device, reason, queue."""
        return self._json(self._request("GET", "/v1/health"))

    def submit(self, payload: dict[str, Any]) -> str:
        """``POST /v1/jobs``; the new job's id."""
        body = self._json(self._request("POST", "/v1/jobs", json=payload))
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

    def cancel(self, job_id: str) -> None:
        """``DELETE /v1/jobs/{id}``: cancel a queued or running job (delete a finished one); gone is fine."""
        try:
            self._request("DELETE", f"/v1/jobs/{job_id}")
        except BackendError as error:
            if error.status != 404:
                raise

    def close(self) -> None:
        self._session.close()

    # -- plumbing ------------------------------------------------------------------------------

    def _request(self, method: str, path: str, timeout: float | None = None, **kwargs: Any) -> requests.Response:
        url = self.base_url + path
        timeout = self.timeout if timeout is None else timeout
        try:
            response = self._session.request(method, url, timeout=timeout, **kwargs)
        except requests.exceptions.Timeout:
            raise BackendError(
                f"The Puppet Master backend at {self.base_url} did not answer within {timeout:g} s: it may be busy "
                "or still loading the model; try again, or raise Request Timeout in the add-on preferences"
            ) from None
        except (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema, requests.exceptions.InvalidSchema):
            raise BackendError(
                f"The backend URL {self.base_url!r} is not valid: set it in the add-on preferences, "
                "e.g. http://127.0.0.1:8765"
            ) from None
        except requests.exceptions.ConnectionError:
            raise BackendError(
                f"Cannot reach the Puppet Master backend at {self.base_url}: start it with `puppet-master serve` "
                "or set the URL in preferences"
            ) from None
        except requests.exceptions.RequestException as error:
            raise BackendError(f"Request to the Puppet Master backend at {self.base_url} failed: {error}") from None
        if response.ok:
            return response
        status = response.status_code
        message = _server_message(response)
        if status == 401:
            raise BackendError(
                f"The backend at {self.base_url} needs a valid token: set Token in the add-on preferences to the "
                f"one given to `puppet-master serve --token` ({message})",
                status,
            )
        if status >= 500:
            raise BackendError(
                f"The backend at {self.base_url} had an internal error (HTTP {status}): {message or 'no details'}; "
                "see the backend's log",
                status,
            )
        raise BackendError(f"The backend refused the request (HTTP {status}): {message}", status)

    def _json(self, response: requests.Response) -> dict[str, Any]:
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
