"""sandbox.client: against a real server (`sandbox serve --backend process` on a free port) and, for the retry
policy, against scripted HTTP answers."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from sandbox.client import AsyncClient, Client, RetryPolicy
from sandbox.errors import ExecutorBusy, ExecutorRejected, ExecutorUnreachable
from sandbox.launch import free_port, start_service
from sandbox.models import RunRequest, RunResult, RunStatus

FAST = RetryPolicy(connect_attempts=2, busy_wait_s=1.0, infra_attempts=3, backoff_s=0.01, max_backoff_s=0.02)


@pytest.fixture(scope="module")
def server_url():
    with start_service("process", workers=2, token="tok") as service:
        yield service.url


def request(i: int) -> RunRequest:
    return RunRequest(code=f"def f():\n    return {i}\n",
                      tests=[{"kind": "call", "entry_point": "f", "expected": 0 if i % 3 else i}])


def test_sync_client_run_and_batch(server_url):
    with Client(server_url, token="tok") as client:
        assert client.health()["ready"] is True
        assert client.run(request(0)).passed is True
        results = client.run_batch([request(i) for i in range(6)])
    assert [r.passed for r in results] == [i % 3 == 0 for i in range(6)]


def test_async_client_run_and_batch(server_url):
    async def go():
        async with AsyncClient(server_url, token="tok") as client:
            single, batch = await asyncio.gather(client.run(request(1)), client.run_batch([request(3), request(4)]))
            return single, batch

    single, batch = asyncio.run(go())
    assert single.passed is False and single.tests[0].verdict.value == "fail"
    assert [r.passed for r in batch] == [True, False]


def test_wrong_token_is_rejected_without_retries(server_url):
    with Client(server_url, token="wrong", retry=FAST) as client:
        with pytest.raises(ExecutorRejected) as caught:
            client.run(request(0))
    assert caught.value.status_code == 401


def test_unreachable_server_names_the_url_and_how_to_start_it():
    url = f"http://127.0.0.1:{free_port()}"
    with Client(url, retry=FAST) as client:
        with pytest.raises(ExecutorUnreachable) as caught:
            client.run(request(0))
    assert url in str(caught.value) and "sandbox serve" in str(caught.value)

    async def go():
        async with AsyncClient(url, retry=FAST) as client:
            await client.run_batch([request(0), request(1)])

    with pytest.raises(ExecutorUnreachable):
        asyncio.run(go())


def _ok(n: int) -> dict:
    ok = RunResult(status=RunStatus.COMPLETED, passed=True).model_dump(mode="json")
    return {"results": [ok] * n}


def test_retries_429_honouring_retry_after_then_succeeds():
    calls = []

    def answer(req: httpx.Request) -> httpx.Response:
        calls.append(time.monotonic())
        if len(calls) < 3:
            return httpx.Response(429, headers={"Retry-After": "0.05"}, json={"detail": "queue full"})
        return httpx.Response(200, json=_ok(2))

    with Client("http://x", transport=httpx.MockTransport(answer), retry=FAST) as client:
        results = client.run_batch([request(0), request(1)])
    assert len(calls) == 3 and all(r.passed for r in results)
    assert calls[1] - calls[0] >= 0.04  # waited as told


def test_gives_up_with_executor_busy_after_the_busy_budget():
    transport = httpx.MockTransport(lambda req: httpx.Response(503, headers={"Retry-After": "0.2"}, json={}))
    with Client("http://x", transport=transport, retry=FAST) as client:
        with pytest.raises(ExecutorBusy, match="stayed busy"):
            client.run(request(0))


def test_only_retryable_infra_errors_are_sent_again():
    sent: list[int] = []

    def answer(req: httpx.Request) -> httpx.Response:
        runs = httpx.Response(200, content=req.content).json()["runs"]
        sent.append(len(runs))
        if len(sent) == 1:  # first round: program 1 hits a retryable infra error, program 2 a final one
            flaky = RunResult.infra_error("container died", retryable=True).model_dump(mode="json")
            final = RunResult.infra_error("bad", retryable=False).model_dump(mode="json")
            return httpx.Response(200, json={"results": [_ok(1)["results"][0], flaky, final]})
        return httpx.Response(200, json=_ok(1))

    def route(req: httpx.Request) -> httpx.Response:
        if req.url.path == "/v1/runs":  # a single program goes to /v1/runs
            sent.append(1)
            return httpx.Response(200, json=_ok(1)["results"][0])
        return answer(req)

    with Client("http://x", transport=httpx.MockTransport(route), retry=FAST) as client:
        results = client.run_batch([request(0), request(1), request(2)])
    assert sent == [3, 1]
    assert results[0].passed and results[1].passed
    assert results[2].status == RunStatus.INFRA_ERROR and not results[2].retryable


def test_async_client_retries_dropped_connections():
    attempts = []

    async def answer(req: httpx.Request) -> httpx.Response:
        attempts.append(1)
        if len(attempts) == 1:
            raise httpx.RemoteProtocolError("server disconnected", request=req)
        return httpx.Response(200, json=_ok(1)["results"][0])

    async def go():
        async with AsyncClient("http://x", transport=httpx.MockTransport(answer), retry=FAST) as client:
            return await client.run(request(0))

    assert asyncio.run(go()).passed and len(attempts) == 2
