"""Property-based fuzzing of the HTTP API: whatever the body, the service answers with a status it documents and
never a 5xx; whatever validation admits runs to a verdict. Two generators: schemathesis from the service's own
OpenAPI schema (when installed), and hypothesis strategies shaped like RunRequest (always)."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sandbox.backends.process import ProcessBackend
from sandbox.server import ServiceSettings, create_app

app = create_app(ProcessBackend(workers=2), ServiceSettings(token=None))
FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)


def check_response(path: str, response) -> None:
    assert response.status_code < 500, (response.status_code, response.text[:500])
    if response.status_code == 200 and path in ("/v1/runs", "/v1/batch"):
        results = [response.json()] if path == "/v1/runs" else response.json()["results"]
        # What validation admitted reached the runner and came back as a verdict, never a sandbox failure.
        assert all(result["status"] == "completed" for result in results), results


# --- schemathesis: every operation in /openapi.json ---------------------------------------------------------

try:
    import schemathesis
except ImportError:  # optional: the hypothesis test below still fuzzes the run endpoints
    schemathesis = None

if schemathesis is not None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)

    @pytest.mark.timeout(240)
    @schema.parametrize()
    @FUZZ
    def test_no_schema_generated_request_makes_the_service_fail(case):
        check_response(case.path, case.call())
else:
    def test_no_schema_generated_request_makes_the_service_fail():
        pytest.skip("schemathesis is not installed")


# --- hypothesis: bodies shaped like RunRequest, valid and nearly valid ---------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)
programs = st.sampled_from(["def f(x):\n    return x\n", "def f(x):\n    raise ValueError(x)\n", "x = (",
                            "import sys\nsys.exit(3)\n", "print('\\udcff')\n", ""]) | st.text(max_size=30)
tests = st.one_of(
    st.fixed_dictionaries({"kind": st.just("assert"), "code": st.sampled_from(["assert f(1) == 1", "1/0", "x = ("])},
                          optional={"id": st.text(max_size=8)}),
    st.fixed_dictionaries({"kind": st.just("call"), "entry_point": st.sampled_from(["f", "g", "f.x", "1bad", ""]),
                           "args": st.lists(json_values, max_size=2), "expected": json_values},
                          optional={"kwargs": st.dictionaries(st.text(max_size=4), json_values, max_size=2),
                                    "tolerance": st.none() | st.floats(allow_nan=False, allow_infinity=False)}),
    st.fixed_dictionaries({"kind": st.just("stdio"), "stdin": st.text(max_size=12),
                           "expected_stdout": st.text(max_size=12)}),
    json_values,
)
limits = st.fixed_dictionaries({}, optional={"time_s": st.floats(-1, 2) | json_values,
                                             "memory_mb": st.integers(-5, 300), "output_bytes": st.integers(-1, 9999)})
bodies = st.fixed_dictionaries(
    {"code": programs},
    optional={"tests": st.lists(tests, max_size=3), "test_file": st.text(max_size=40), "limits": limits,
              "fail_fast": json_values, "unknown": json_values},
)


# Valid bodies too, so that plenty of examples get past validation and into the runner.
valid_tests = st.one_of(
    st.fixed_dictionaries({"kind": st.just("assert"), "code": st.sampled_from(["assert f(1) == 1", "1/0", "x = ("])}),
    st.fixed_dictionaries({"kind": st.just("call"), "entry_point": st.sampled_from(["f", "g", "f.x"]),
                           "args": st.lists(json_values, min_size=1, max_size=1), "expected": json_values}),
    st.fixed_dictionaries({"kind": st.just("stdio"), "stdin": st.text(max_size=12),
                           "expected_stdout": st.text(max_size=12)}),
)
valid_bodies = st.fixed_dictionaries(
    {"code": programs, "tests": st.lists(valid_tests, min_size=1, max_size=3)},
    optional={"limits": st.fixed_dictionaries({"time_s": st.floats(0.1, 2), "memory_mb": st.integers(16, 256)}),
              "fail_fast": st.booleans()},
)


@pytest.mark.timeout(240)
@FUZZ
@given(body=valid_bodies | bodies | json_values)
def test_no_run_body_makes_the_service_fail(body):
    with TestClient(app, raise_server_exceptions=False) as client:
        for path, payload in (("/v1/runs", body), ("/v1/batch", {"runs": [body, body]})):
            raw = json.dumps(payload, allow_nan=False).encode()  # strict JSON; NaN has its own test below
            check_response(path, client.post(path, content=raw, headers={"content-type": "application/json"}))


@pytest.mark.parametrize("raw", [b"", b"{", b"\xff\xfe", b"[]", b"null", json.dumps({"code": "x" * 2_000_000}).encode()])
def test_unparseable_bodies_are_client_errors(raw):
    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.post("/v1/runs", content=raw, headers={"content-type": "application/json"})
        assert 400 <= response.status_code < 500, response.status_code


@pytest.mark.parametrize("raw", [b"[Infinity]", b'{"code": "x = 1", "tests": [{"code": "1"}], "limits": {"time_s": NaN}}'])
def test_non_finite_json_numbers_are_client_errors(raw):
    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.post("/v1/runs", content=raw, headers={"content-type": "application/json"})
        assert 400 <= response.status_code < 500, response.status_code
