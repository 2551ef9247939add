"""Python clients for the executor service, sync and async; the same methods as ``sandbox.local.LocalExecutor``.

    from sandbox.client import Client
    with Client("http://127.0.0.1:8000") as executor:
        result = executor.run(RunRequest(code=..., tests=[...]))

Retries: 429 (queue full; waits ``Retry-After`` and keeps its place in line with the ``X-Queue-Ticket`` it got), 502/503/504 (not ready; exponential backoff, at least
``Retry-After``; ``ExecutorNotReady`` once ``busy_wait_s`` is spent), dropped connections (with backoff), and results
that came back as a retryable ``infra_error`` (only those programs are sent again). A server that never answers
raises ``ExecutorUnreachable`` naming the URL; a refused request (bad token, invalid body) ``ExecutorRejected``.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from dataclasses import dataclass
from typing import Optional

import httpx

from sandbox.errors import ExecutorBusy, ExecutorNotReady, ExecutorRejected, ExecutorUnreachable, SandboxError
from sandbox.models import BatchRequest, BatchResult, RunRequest, RunResult, RunStatus

URL_ENV = "SANDBOX_URL"
DEFAULT_URL = "http://127.0.0.1:8000"
_RETRY_STATUS = {502, 503, 504}
# Connection-level failures where the server did not (or may not have) processed the request; runs are pure,
# so sending them again is safe.
_TRANSPORT_RETRY = (httpx.ConnectError, httpx.ConnectTimeout, httpx.RemoteProtocolError, httpx.ReadError,
                    httpx.WriteError, httpx.PoolTimeout)


@dataclass(frozen=True)
class RetryPolicy:
    connect_attempts: int = 4  # tries before a refused/dropped connection becomes ExecutorUnreachable
    busy_wait_s: float = 120.0  # total time to keep retrying 429/503 before ExecutorBusy
    infra_attempts: int = 3  # rounds for programs whose result is a retryable infra_error
    backoff_s: float = 0.25
    max_backoff_s: float = 5.0

    def backoff(self, attempt: int) -> float:
        return min(self.max_backoff_s, self.backoff_s * 2**attempt) * (0.5 + random.random() / 2)


def _retry_after(response: httpx.Response, fallback: float) -> float:
    try:
        return max(0.0, min(30.0, float(response.headers.get("retry-after", fallback))))
    except ValueError:
        return fallback


def _detail(response: httpx.Response) -> object:
    try:
        return response.json().get("detail", response.text)
    except ValueError:
        return response.text


class _Attempts:
    """The retry bookkeeping for one HTTP exchange, shared by both clients: each failure says how long to wait
    before the next try, or raises when the policy is exhausted."""

    def __init__(self, url: str, policy: RetryPolicy) -> None:
        self.url, self.policy = url, policy
        self.transport_failures = 0
        self.busy_deadline: Optional[float] = None
        self.busy_tries = 0
        self.ticket: Optional[str] = None  # our place in the server's line, kept across 429 retries

    def headers(self) -> dict[str, str]:
        return {"X-Queue-Ticket": self.ticket} if self.ticket else {}

    def after_transport_error(self, exc: Exception) -> float:
        self.transport_failures += 1
        if self.transport_failures >= self.policy.connect_attempts:
            raise ExecutorUnreachable(self.url, f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
        return self.policy.backoff(self.transport_failures)

    def after_response(self, response: httpx.Response) -> Optional[float]:
        """None when ``response`` is the answer; else seconds to wait before retrying."""
        if response.status_code == 200:
            return None
        if response.status_code == 429 or response.status_code in _RETRY_STATUS:
            now = time.monotonic()
            self.busy_tries += 1
            if self.busy_deadline is None:
                self.busy_deadline = now + self.policy.busy_wait_s
            if now >= self.busy_deadline:
                if response.status_code == 429:
                    raise ExecutorBusy(
                        f"executor at {self.url} stayed busy (HTTP 429: {_detail(response)}) "
                        f"for {self.policy.busy_wait_s:.0f}s; add capacity or send less at once"
                    )
                raise ExecutorNotReady(
                    f"executor at {self.url} stayed busy/unavailable (HTTP {response.status_code}: "
                    f"{_detail(response)}) through {self.busy_tries} tries over {self.policy.busy_wait_s:.0f}s; "
                    f"check its GET /readyz (is its Docker engine up?) and its logs"
                )
            if response.status_code == 429:  # the queue drains at its own pace: wait as told
                self.ticket = response.headers.get("x-queue-ticket", self.ticket)
                return _retry_after(response, self.policy.backoff(1))
            # Not ready: back off exponentially (at least as long as told) so a down executor is not hammered.
            return max(_retry_after(response, 0.0), self.policy.backoff(self.busy_tries))
        raise ExecutorRejected(response.status_code, _detail(response))


def _headers(token: Optional[str]) -> dict[str, str]:
    token = token if token is not None else os.environ.get("SANDBOX_TOKEN")
    return {"Authorization": f"Bearer {token}"} if token else {}


def _pending(results: list[Optional[RunResult]]) -> list[int]:
    return [i for i, r in enumerate(results) if r is None or (r.status == RunStatus.INFRA_ERROR and r.retryable)]


def _as_batch(requests: list[RunRequest]) -> dict:
    return BatchRequest(runs=requests).model_dump(mode="json")


class Client:
    """Blocking client. ``timeout`` bounds each HTTP exchange (a big batch may need a larger one)."""

    def __init__(self, base_url: Optional[str] = None, token: Optional[str] = None, timeout: float = 600.0,
                 retry: RetryPolicy = RetryPolicy(), transport: Optional[httpx.BaseTransport] = None) -> None:
        self.base_url = (base_url or os.environ.get(URL_ENV) or DEFAULT_URL).rstrip("/")
        self.retry = retry
        self._http = httpx.Client(base_url=self.base_url, headers=_headers(token), transport=transport,
                                  timeout=httpx.Timeout(timeout, connect=5.0))

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _post(self, path: str, body: dict) -> dict:
        attempts = _Attempts(self.base_url, self.retry)
        while True:
            try:
                response = self._http.post(path, json=body, headers=attempts.headers())
            except _TRANSPORT_RETRY as exc:
                time.sleep(attempts.after_transport_error(exc))
                continue
            except httpx.TimeoutException as exc:
                raise SandboxError(f"executor at {self.base_url} did not answer within the client timeout "
                                   f"({exc.__class__.__name__}); raise Client(timeout=...)") from exc
            wait = attempts.after_response(response)
            if wait is None:
                return response.json()
            time.sleep(wait)

    def run(self, request: RunRequest) -> RunResult:
        return self.run_batch([request])[0]

    def run_batch(self, requests: list[RunRequest]) -> list[RunResult]:
        if not requests:
            return []
        results: list[Optional[RunResult]] = [None] * len(requests)
        for round_ in range(self.retry.infra_attempts):
            todo = _pending(results)
            if not todo:
                break
            if round_:
                time.sleep(self.retry.backoff(round_))
            if len(todo) == 1:
                answer = [RunResult.model_validate(self._post("/v1/runs", requests[todo[0]].model_dump(mode="json")))]
            else:
                body = _as_batch([requests[i] for i in todo])
                answer = BatchResult.model_validate(self._post("/v1/batch", body)).results
            for i, result in zip(todo, answer):
                results[i] = result
        return results  # type: ignore[return-value]

    def health(self) -> dict:
        """``/readyz``'s answer; raises ExecutorUnreachable when nothing listens."""
        try:
            return self._http.get("/readyz").json()
        except httpx.TransportError as exc:
            raise ExecutorUnreachable(self.base_url, exc) from exc


class AsyncClient:
    """The asyncio version of ``Client``, for samplers that keep many requests in flight."""

    def __init__(self, base_url: Optional[str] = None, token: Optional[str] = None, timeout: float = 600.0,
                 retry: RetryPolicy = RetryPolicy(), max_connections: int = 64,
                 transport: Optional[httpx.AsyncBaseTransport] = None) -> None:
        self.base_url = (base_url or os.environ.get(URL_ENV) or DEFAULT_URL).rstrip("/")
        self.retry = retry
        self._http = httpx.AsyncClient(base_url=self.base_url, headers=_headers(token), transport=transport,
                                       timeout=httpx.Timeout(timeout, connect=5.0),
                                       limits=httpx.Limits(max_connections=max_connections))

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    async def close(self) -> None:
        await self._http.aclose()

    async def _post(self, path: str, body: dict) -> dict:
        attempts = _Attempts(self.base_url, self.retry)
        while True:
            try:
                response = await self._http.post(path, json=body, headers=attempts.headers())
            except _TRANSPORT_RETRY as exc:
                await asyncio.sleep(attempts.after_transport_error(exc))
                continue
            except httpx.TimeoutException as exc:
                raise SandboxError(f"executor at {self.base_url} did not answer within the client timeout "
                                   f"({exc.__class__.__name__}); raise AsyncClient(timeout=...)") from exc
            wait = attempts.after_response(response)
            if wait is None:
                return response.json()
            await asyncio.sleep(wait)

    async def run(self, request: RunRequest) -> RunResult:
        return (await self.run_batch([request]))[0]

    async def run_batch(self, requests: list[RunRequest]) -> list[RunResult]:
        if not requests:
            return []
        results: list[Optional[RunResult]] = [None] * len(requests)
        for round_ in range(self.retry.infra_attempts):
            todo = _pending(results)
            if not todo:
                break
            if round_:
                await asyncio.sleep(self.retry.backoff(round_))
            if len(todo) == 1:
                body = requests[todo[0]].model_dump(mode="json")
                answer = [RunResult.model_validate(await self._post("/v1/runs", body))]
            else:
                body = _as_batch([requests[i] for i in todo])
                answer = BatchResult.model_validate(await self._post("/v1/batch", body)).results
            for i, result in zip(todo, answer):
                results[i] = result
        return results  # type: ignore[return-value]

    async def health(self) -> dict:
        try:
            return (await self._http.get("/readyz")).json()
        except httpx.TransportError as exc:
            raise ExecutorUnreachable(self.base_url, exc) from exc
