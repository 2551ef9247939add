"""Results say their format version: the service writes the current one, the client reads older ones (or none)
and refuses a newer one with an error that says what to do."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from sandbox.client import AsyncClient, Client, RetryPolicy
from sandbox.errors import ResultFormatTooNew, SandboxError
from sandbox.models import RESULT_FORMAT_VERSION, RunRequest, RunResult

FAST = RetryPolicy(connect_attempts=2, busy_wait_s=1.0, infra_attempts=3, backoff_s=0.01, max_backoff_s=0.02)
REQUEST = RunRequest(code="def f():\n    return 1\n", tests=[{"kind": "call", "entry_point": "f", "expected": 1}])
PASSED = {"status": "completed", "passed": True, "counts": {"pass": 1},
          "tests": [{"id": "test_0", "verdict": "pass"}]}


def serving(result: dict) -> httpx.MockTransport:
    """A service that answers every run with ``result`` (every batch with it once per run)."""

    def answer(req: httpx.Request) -> httpx.Response:
        if req.url.path == "/v1/runs":
            return httpx.Response(200, json=result)
        runs = httpx.Response(200, content=req.content).json()["runs"]
        return httpx.Response(200, json={"results": [result] * len(runs)})

    return httpx.MockTransport(answer)


def test_a_result_says_the_current_format_version():
    assert RunResult.model_validate(PASSED).model_dump(mode="json")["format_version"] == RESULT_FORMAT_VERSION
    assert RunResult.infra_error("x", retryable=True).format_version == RESULT_FORMAT_VERSION


@pytest.mark.parametrize("result", [PASSED, {**PASSED, "format_version": 1}])
def test_the_client_reads_results_without_a_version_or_of_a_version_it_knows(result):
    with Client("http://x", transport=serving(result), retry=FAST) as client:
        assert client.run(REQUEST).passed
        assert [r.passed for r in client.run_batch([REQUEST, REQUEST])] == [True, True]


def test_the_client_refuses_a_newer_result_format_and_says_to_upgrade():
    newer = {**PASSED, "format_version": RESULT_FORMAT_VERSION + 1, "a_field_from_the_future": 1}
    with Client("http://x", transport=serving(newer), retry=FAST) as client:
        for send in (lambda: client.run(REQUEST), lambda: client.run_batch([REQUEST, REQUEST])):
            with pytest.raises(ResultFormatTooNew) as caught:
                send()
            message = str(caught.value)
            assert f"version {RESULT_FORMAT_VERSION + 1}" in message and "upgrade the client" in message
            assert isinstance(caught.value, SandboxError) and caught.value.version == RESULT_FORMAT_VERSION + 1


def test_the_async_client_refuses_a_newer_result_format_too():
    newer = {**PASSED, "format_version": RESULT_FORMAT_VERSION + 1}

    async def go() -> None:
        async with AsyncClient("http://x", transport=serving(newer), retry=FAST) as client:
            await client.run(REQUEST)

    with pytest.raises(ResultFormatTooNew, match="upgrade the client"):
        asyncio.run(go())
