"""Schema-driven fuzzing: every operation of the published OpenAPI, against a real server, never a 5xx.

schemathesis builds request strategies from the server's own ``/openapi.json`` — schema-conforming
requests and, in negative mode, requests that break the schema — and each is sent to a real uvicorn
server on 127.0.0.1 running the preview engine. (schemathesis' pytest plugin does not support
pytest 9, so its strategies drive plain hypothesis tests here.) The hand-written bad bodies and
fuzzing in ``test_service.py`` cover the POST body in depth; this covers every path, parameter and
method the API publishes.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

from backend.engines.preview import PreviewEngine
from backend.service.main import create_app
from backend.service.server import BackgroundServer
from backend.service.settings import ServiceSettings

EXAMPLES_PER_OPERATION = 25


@pytest.fixture(scope="module")
def openapi_schema(tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    results = Path(tmp_path_factory.mktemp("openapi")) / "results"
    app = create_app(ServiceSettings(results_dir=results, max_queue=2), engine=PreviewEngine(), engine_reason="test")
    with BackgroundServer(app) as server:
        yield schemathesis.openapi.from_url(f"{server.url}/openapi.json")


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=["valid", "invalid"])
def test_no_request_the_api_publishes_makes_a_server_error(openapi_schema, mode: GenerationMode) -> None:
    operations = [result.ok() for result in openapi_schema.get_all_operations()]
    assert len(operations) >= 9, [operation.label for operation in operations]
    exercised = []
    for operation in operations:

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def check(case) -> None:
            response = case.call(timeout=30)
            case.validate_response(response, checks=[not_a_server_error])

        try:
            check()
        except Unsatisfiable:
            # negative mode has nothing to break in an operation without inputs (GET /v1/health, ...)
            assert mode is GenerationMode.NEGATIVE, operation.label
            continue
        exercised.append(operation.label)
    assert len(exercised) >= len(operations) - 3, exercised
