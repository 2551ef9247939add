"""Property-based fuzzing of the HTTP API from its own OpenAPI schema (schemathesis): whatever the body, the
service answers with a status it documents and never a 500. The process backend runs what validation admits."""

from __future__ import annotations

import pytest

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, settings  # noqa: E402

from sandbox.backends.process import ProcessBackend  # noqa: E402
from sandbox.server import ServiceSettings, create_app  # noqa: E402

app = create_app(ProcessBackend(workers=2), ServiceSettings(token=None))
schema = schemathesis.openapi.from_asgi("/openapi.json", app)


@pytest.mark.timeout(240)
@schema.parametrize()
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_no_request_makes_the_service_fail(case):
    response = case.call()
    assert response.status_code < 500, (response.status_code, response.text[:500])
    if response.status_code == 200 and case.path in ("/v1/runs", "/v1/batch"):
        results = [response.json()] if case.path == "/v1/runs" else response.json()["results"]
        # Whatever validation admitted reached the runner and came back as a verdict, never a sandbox failure.
        assert all(result["status"] == "completed" for result in results), results
