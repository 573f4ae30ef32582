"""Dependencies as ``Annotated`` aliases, so routes read clearly and tests can override them.

They are ``async def`` although they do not wait: FastAPI runs a plain ``def`` dependency on the shared
thread pool, and ``/v1/health`` must answer even while every thread of it is busy.
"""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Depends, Path, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from .errors import ApiError
from .intake import Intake
from .loading import EngineLoader
from .registry import JOB_ID_PATTERN, Job, JobRegistry
from .settings import ServiceSettings
from .storage import ResultStore
from .worker import Worker


async def get_settings(request: Request) -> ServiceSettings:
    return request.app.state.settings


async def get_worker(request: Request) -> Worker:
    return request.app.state.worker


async def get_registry(request: Request) -> JobRegistry:
    return request.app.state.registry


async def get_store(request: Request) -> ResultStore:
    return request.app.state.store


async def get_loader(request: Request) -> EngineLoader:
    return request.app.state.loader


async def get_intake(request: Request) -> Intake:
    return request.app.state.intake


SettingsDep = Annotated[ServiceSettings, Depends(get_settings)]
WorkerDep = Annotated[Worker, Depends(get_worker)]
RegistryDep = Annotated[JobRegistry, Depends(get_registry)]
StoreDep = Annotated[ResultStore, Depends(get_store)]
LoaderDep = Annotated[EngineLoader, Depends(get_loader)]
IntakeDep = Annotated[Intake, Depends(get_intake)]

_bearer = HTTPBearer(auto_error=False, description="The token given to `puppet-master serve --token`.")


def token_accepted(settings: ServiceSettings, given: str | None) -> bool:
    """Whether ``given`` (the credentials of ``Authorization: Bearer ...``, None when absent) is let in."""
    expected = settings.token_value
    if expected is None:
        return True
    # compare_digest: the time taken does not reveal how much of the token was right
    return given is not None and secrets.compare_digest(given.encode(), expected.encode())


async def require_token(
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """401 unless the server has no token or the request carries ``Authorization: Bearer <token>``."""
    if not token_accepted(settings, credentials.credentials if credentials is not None else None):
        raise ApiError(
            401,
            "missing or wrong token; send the header 'Authorization: Bearer <token>' with the server's --token",
            field="Authorization",
            headers={"WWW-Authenticate": "Bearer"},
        )


JobIdPath = Annotated[
    str, Path(pattern=JOB_ID_PATTERN, description="A job id as returned by POST /v1/jobs (22 URL-safe characters).")
]


async def get_job(job_id: JobIdPath, registry: RegistryDep) -> Job:
    """The job named in the path; 404 when there is none (never ran, deleted, or pruned)."""
    job = registry.get(job_id)
    if job is None:
        raise ApiError(404, f"no job {job_id}; it never existed, was deleted, or was pruned", field="job_id")
    return job


JobDep = Annotated[Job, Depends(get_job)]
