"""The HTTP layer: routes, ordering, validation, the bounded queue, auth, metrics. Uses the process backend (no
Docker) for real runs, and a tiny recording backend where a test needs to control what the backend does."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from sandbox.admission import Admission
from sandbox.backends.base import Backend
from sandbox.backends.process import ProcessBackend
from sandbox.models import RunRequest, RunResult
from sandbox.server import ServiceSettings, create_app


class RecordingBackend(Backend):
    """Answers every program with a retryable infra error and records what it was given."""

    name = "recording"

    def __init__(self, ready: bool = True, explode: bool = False) -> None:
        self.batches: list[list[RunRequest]] = []
        self._ready, self._explode = ready, explode
        self.started = self.closed = False

    async def start(self) -> None:
        self.started = True

    async def close(self) -> None:
        self.closed = True

    def ready(self) -> tuple[bool, str]:
        return self._ready, "ready" if self._ready else "pool empty"

    async def run_batch(self, requests):
        if self._explode:
            raise RuntimeError("boom")
        self.batches.append(requests)
        return [RunResult.infra_error("recorded", retryable=True) for _ in requests]


def program(i: int) -> dict:
    return {"code": f"x = {i}\n", "tests": [{"kind": "assert", "code": "assert x % 2 == 0"}]}


@pytest.fixture(scope="module")
def process_client():
    with TestClient(create_app(ProcessBackend(workers=2), ServiceSettings(token=None))) as client:
        yield client


def test_run_returns_verdicts_from_the_runner(process_client):
    body = {"code": "def add(a, b):\n    return a - b\n",
            "tests": [{"kind": "call", "entry_point": "add", "args": [2, 2], "expected": 0},
                      {"kind": "call", "entry_point": "add", "args": [1, 2], "expected": 3}]}
    response = process_client.post("/v1/runs", json=body)
    assert response.status_code == 200
    result = response.json()
    assert [t["verdict"] for t in result["tests"]] == ["pass", "fail"]
    assert result["passed"] is False
    assert response.headers["x-run-id"]


def test_batch_keeps_request_order(process_client):
    response = process_client.post("/v1/batch", json={"runs": [program(i) for i in range(7)]})
    assert response.status_code == 200
    assert [r["passed"] for r in response.json()["results"]] == [i % 2 == 0 for i in range(7)]


def test_invalid_request_names_the_field(process_client):
    response = process_client.post("/v1/runs", json={"code": "x = 1", "tests": [{"kind": "assert", "code": "1"}],
                                                     "limits": {"time_s": -1}})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "limits", "time_s"]
    response = process_client.post("/v1/runs", json={"code": "x = 1", "tests": []})
    assert response.status_code == 422
    assert "`tests` is empty" in json.dumps(response.json())


def test_health_ready_openapi(process_client):
    assert process_client.get("/healthz").json()["status"] == "ok"
    assert process_client.get("/readyz").json()["ready"] is True
    paths = process_client.get("/openapi.json").json()["paths"]
    assert {"/v1/runs", "/v1/batch", "/healthz", "/readyz", "/metrics"} <= set(paths)


def sample(text: str, name: str, **labels: str) -> float | None:
    """The value of the sample ``name`` with exactly ``labels`` in a Prometheus exposition, or None. Parsed, not
    matched as text: the format leaves the order of labels to the writer (prometheus_client sorts them)."""
    for family in text_string_to_metric_families(text):
        for found in family.samples:
            if found.name == name and found.labels == labels:
                return found.value
    return None


def test_metrics_count_requests_and_verdicts(process_client):
    process_client.post("/v1/batch", json={"runs": [program(0), program(1)]})
    text = process_client.get("/metrics").text
    assert sample(text, "sandbox_requests_total", endpoint="/v1/batch", code="200")
    assert sample(text, "sandbox_verdicts_total", verdict="pass") and sample(text, "sandbox_verdicts_total",
                                                                              verdict="fail")
    assert "sandbox_request_seconds_bucket" in text and "sandbox_queue_runs 0" in text


def test_full_queue_answers_429_with_retry_after_without_calling_the_backend():
    backend = RecordingBackend()
    # Room for one waiting program: a batch of two is beyond the line's bound and must not wait at all.
    app = create_app(backend, ServiceSettings(queue_capacity_runs=4, wait_queue_runs=1, retry_after_s=3, token=None))
    with TestClient(app) as client:
        app.state.admission.admitted = 3  # three programs already running
        response = client.post("/v1/batch", json={"runs": [program(0), program(1)]})
        assert response.status_code == 429
        assert response.headers["retry-after"] == "3"
        assert backend.batches == []
        assert client.post("/v1/runs", json=program(0)).status_code == 200  # one more still fits
        assert app.state.admission.admitted == 3  # released after the run
        assert "sandbox_rejected_total 1" in client.get("/metrics").text


async def settle() -> None:
    """Let every task that is ready run until it waits again: the waiters here block on futures, never on I/O
    or timers, so a few passes of the event loop order them without any sleep."""
    for _ in range(10):
        await asyncio.sleep(0)


def test_waiters_are_admitted_in_order_of_first_arrival_and_a_timed_out_waiter_gets_429():
    async def scenario():
        admission = Admission(capacity=2, wait_capacity=3, max_wait_s=5.0)
        assert await admission.admit(2, admission.ticket())  # the queue is now full
        order: list[str] = []
        outcome: dict[str, bool] = {}

        async def wait(name: str, n: int, ticket: int) -> None:
            outcome[name] = await admission.admit(n, ticket)
            if outcome[name]:
                order.append(name)

        early = admission.ticket()  # a request that was answered 429 before and now shows its ticket
        waiters = [asyncio.create_task(wait("big", 2, admission.ticket()))]
        await settle()
        waiters.append(asyncio.create_task(wait("small", 1, admission.ticket())))
        await settle()
        assert admission.waiting == 3
        assert not await admission.admit(1, admission.ticket())  # full of older waiters: 429 at once, no wait
        assert not admission.try_admit(1)  # and nobody overtakes the line
        waiters.append(asyncio.create_task(wait("early", 1, early)))  # older than all: the youngest gives way
        await settle()
        assert outcome == {"small": False} and admission.waiting == 3
        admission.release(1)  # room for "early", the oldest waiter
        await settle()
        assert order == ["early"]
        admission.release(2)  # room for "big" now
        await asyncio.gather(*waiters)
        assert order == ["early", "big"] and admission.admitted == 2 and admission.waiting == 0

        short = Admission(capacity=1, wait_capacity=5, max_wait_s=0.05)
        assert await short.admit(1, short.ticket())
        began = time.monotonic()
        assert not await short.admit(1, short.ticket())  # waited its bounded time, then 429
        assert time.monotonic() - began >= 0.04 and short.waiting == 0  # no upper bound: machines differ

        cancelled = asyncio.create_task(short.admit(1, short.ticket()))
        await settle()
        cancelled.cancel()  # the client went away while waiting: its place is given back
        await asyncio.gather(cancelled, return_exceptions=True)
        assert short.waiting == 0 and short.admitted == 1

    asyncio.run(scenario())


def test_a_429_carries_a_signed_ticket_that_keeps_the_place_in_line():
    backend = RecordingBackend()
    app = create_app(backend, ServiceSettings(queue_capacity_runs=1, wait_queue_runs=0, token=None))
    with TestClient(app) as client:
        app.state.admission.admitted = 1
        first = client.post("/v1/runs", json=program(0))
        assert first.status_code == 429
        ticket = first.headers["x-queue-ticket"]
        again = client.post("/v1/runs", json=program(0), headers={"X-Queue-Ticket": ticket})
        assert again.headers["x-queue-ticket"] == ticket  # the same place, not a new one
        number = ticket.split(".")[0]
        forged = client.post("/v1/runs", json=program(0), headers={"X-Queue-Ticket": f"{number}.0000"})
        assert forged.headers["x-queue-ticket"] != ticket  # an unsigned ticket is ignored: a new one is issued


def test_a_waiting_request_is_served_once_room_frees_up():
    backend = RecordingBackend()
    app = create_app(backend, ServiceSettings(queue_capacity_runs=1, max_wait_s=5.0, token=None))
    with TestClient(app) as client:
        app.state.admission.admitted = 1

        def free_once_waiting() -> None:
            # Release only after the request is seen waiting, so the test covers the wait, whatever the speed.
            while client.portal.call(lambda: app.state.admission.waiting) == 0:
                time.sleep(0.01)
            client.portal.call(app.state.admission.release, 1)

        helper = threading.Thread(target=free_once_waiting)
        helper.start()
        response = client.post("/v1/runs", json=program(0))
        helper.join()
        assert response.status_code == 200 and len(backend.batches) == 1


def test_runs_answer_503_with_retry_after_while_the_backend_cannot_serve():
    backend = RecordingBackend(ready=False)
    with TestClient(create_app(backend, ServiceSettings(retry_after_s=2, token=None))) as client:
        response = client.post("/v1/runs", json=program(0))
        assert response.status_code == 503
        assert response.headers["retry-after"] == "2"
        assert response.json()["detail"] == "executor not ready: pool empty; retry later"
        assert client.post("/v1/batch", json={"runs": [program(0)]}).status_code == 503
        assert backend.batches == []


@pytest.mark.parametrize("raw, where", [
    (b'{"code": "x = 1", "tests": [{"code": "1"}], "limits": {"time_s": NaN}}', ["body", "limits", "time_s"]),
    (b'{"code": "x = 1", "tests": [{"kind": "call", "entry_point": "f", "expected": -Infinity}]}',
     ["body", "tests", 0, "expected"]),
    (b"[Infinity]", ["body", 0]),
    # No NaN/Infinity token at all: the literal overflows to inf in the parser and must not become null.
    (b'{"code": "x = 1", "tests": [{"kind": "call", "entry_point": "f", "expected": 1e400}]}',
     ["body", "tests", 0, "expected"]),
])
def test_non_finite_numbers_are_422_naming_the_field(process_client, raw, where):
    response = process_client.post("/v1/runs", content=raw, headers={"content-type": "application/json"})
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert [d["loc"] for d in detail] == [where]
    assert "finite number" in detail[0]["msg"]


def test_batch_larger_than_the_queue_is_413_not_429():
    app = create_app(RecordingBackend(), ServiceSettings(queue_capacity_runs=2, token=None))
    with TestClient(app) as client:
        response = client.post("/v1/batch", json={"runs": [program(i) for i in range(3)]})
        assert response.status_code == 413
        assert "split" in response.json()["detail"]


def test_lifespan_starts_and_closes_the_backend():
    backend = RecordingBackend()
    with TestClient(create_app(backend, ServiceSettings(token=None))):
        assert backend.started and not backend.closed
    assert backend.closed


def test_not_ready_backend_makes_readyz_503():
    with TestClient(create_app(RecordingBackend(ready=False), ServiceSettings(token=None))) as client:
        response = client.get("/readyz")
        assert response.status_code == 503
        assert response.json()["reason"] == "pool empty"


def test_backend_exception_becomes_retryable_infra_error_and_is_logged(caplog):
    with TestClient(create_app(RecordingBackend(explode=True), ServiceSettings(token=None))) as client:
        with caplog.at_level(logging.INFO, logger="sandbox.service"):
            result = client.post("/v1/runs", json=program(0)).json()
    assert result["status"] == "infra_error" and result["retryable"] is True
    assert "boom" in result["infra_message"]
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.getMessage().startswith("{")]
    assert any(line.get("event") == "request" and line.get("run_id") for line in lines)


def test_bearer_token_guards_runs_and_metrics_but_not_probes():
    with TestClient(create_app(RecordingBackend(), ServiceSettings(token="s3cret"))) as client:
        assert client.post("/v1/runs", json=program(0)).status_code == 401
        assert client.post("/v1/runs", json=program(0), headers={"Authorization": "Bearer nope"}).status_code == 401
        assert client.get("/metrics").status_code == 401
        ok = client.post("/v1/runs", json=program(0), headers={"Authorization": "Bearer s3cret"})
        assert ok.status_code == 200
        assert client.get("/healthz").status_code == 200 and client.get("/readyz").status_code == 200


def test_token_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("SANDBOX_TOKEN", "from-env")
    assert ServiceSettings().token == "from-env"
    monkeypatch.delenv("SANDBOX_TOKEN")
    assert ServiceSettings().token is None


def test_client_resends_its_ticket_after_429_and_names_the_reason_when_503_persists():
    import httpx

    from sandbox.client import Client, RetryPolicy
    from sandbox.errors import ExecutorNotReady

    seen: list[str | None] = []

    def queue_full_once(req: httpx.Request) -> httpx.Response:
        seen.append(req.headers.get("x-queue-ticket"))
        if len(seen) == 1:
            return httpx.Response(429, headers={"Retry-After": "0", "X-Queue-Ticket": "7.abc"}, json={"detail": "full"})
        return httpx.Response(200, json=RunResult.infra_error("x", retryable=False).model_dump(mode="json"))

    fast = RetryPolicy(busy_wait_s=0.3, infra_attempts=1, backoff_s=0.01, max_backoff_s=0.05)
    with Client("http://x", transport=httpx.MockTransport(queue_full_once), retry=fast) as client:
        client.run(RunRequest(**program(0)))
    assert seen == [None, "7.abc"]

    reason = "executor not ready: Docker engine unreachable at unix:///nowhere (refused); retry later"
    down = httpx.MockTransport(lambda req: httpx.Response(503, headers={"Retry-After": "0"}, json={"detail": reason}))
    with Client("http://x", transport=down, retry=fast) as client:
        with pytest.raises(ExecutorNotReady, match="Docker engine unreachable at unix:///nowhere"):
            client.run(RunRequest(**program(0)))
