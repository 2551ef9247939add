"""Python clients for the executor service, sync and async; the same methods as ``sandbox.local.LocalExecutor``.

    from sandbox.client import Client
    with Client("http://127.0.0.1:8000") as executor:
        result = executor.run(RunRequest(code=..., tests=[...]))

Retries: 429 (queue full; waits ``Retry-After`` and keeps its place in line with the ``X-Queue-Ticket`` it got), 502/503/504 (not ready; exponential backoff, at least
``Retry-After``; ``ExecutorNotReady`` once ``busy_wait_s`` is spent), dropped connections (with backoff), and results
that came back as a retryable ``infra_error`` (only those programs are sent again, see ``sandbox.retry``). This
is the one layer that retries: callers pass its errors through. A server that never answers raises
``ExecutorUnreachable`` naming the URL; a refused request (bad token, invalid body) ``ExecutorRejected``; a
result in a format newer than this client knows ``ResultFormatTooNew``.

Both clients run the same exchange, written once as a generator (``_exchange``) that says what to do next, a
POST or a pause, and is told what came back; each client only carries out those steps, blocking or awaiting.
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass
from typing import Any, Generator, Optional, Union

import httpx

from sandbox.errors import (
    ExecutorBusy,
    ExecutorNotReady,
    ExecutorRejected,
    ExecutorUnreachable,
    ResultFormatTooNew,
    SandboxError,
)
from sandbox.models import (
    RESULT_FORMAT_VERSION,
    TICKET_HEADER,
    TOKEN_ENV,
    BatchRequest,
    BatchResult,
    RunRequest,
    RunResult,
)
from sandbox.retry import InfraRounds, RetryPolicy

URL_ENV = "SANDBOX_URL"
DEFAULT_URL = "http://127.0.0.1:8000"
_RETRY_STATUS = {502, 503, 504}
# Connection-level failures where the server did not (or may not have) processed the request; runs are pure,
# so sending them again is safe.
_TRANSPORT_RETRY = (httpx.ConnectError, httpx.ConnectTimeout, httpx.RemoteProtocolError, httpx.ReadError,
                    httpx.WriteError, httpx.PoolTimeout)


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
    """The retry bookkeeping for one HTTP exchange: each failure says how long to wait before the next try, or
    raises when the policy is exhausted."""

    def __init__(self, url: str, policy: RetryPolicy) -> None:
        self.url, self.policy = url, policy
        self.transport_failures = 0
        self.busy_deadline: Optional[float] = None
        self.busy_tries = 0
        self.ticket: Optional[str] = None  # our place in the server's line, kept across 429 retries

    def headers(self) -> dict[str, str]:
        return {TICKET_HEADER: self.ticket} if self.ticket else {}

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
                self.ticket = response.headers.get(TICKET_HEADER, self.ticket)
                return _retry_after(response, self.policy.backoff(1))
            # Not ready: back off exponentially (at least as long as told) so a down executor is not hammered.
            return max(_retry_after(response, 0.0), self.policy.backoff(self.busy_tries))
        raise ExecutorRejected(response.status_code, _detail(response))


def _headers(token: Optional[str]) -> dict[str, str]:
    token = token if token is not None else os.environ.get(TOKEN_ENV)
    return {"Authorization": f"Bearer {token}"} if token else {}


def _refuse_newer(result: Any, url: str) -> None:
    """Raise ResultFormatTooNew for a result (JSON) in a format newer than this client knows. Checked before the
    model reads it: a newer format may hold fields this version's model rejects, which would say less."""
    version = result.get("format_version", 1) if isinstance(result, dict) else 1
    if isinstance(version, int) and version > RESULT_FORMAT_VERSION:
        raise ResultFormatTooNew(url, version, RESULT_FORMAT_VERSION)


# ----- the exchange both clients run ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Post:
    path: str
    body: dict
    headers: dict[str, str]


@dataclass(frozen=True)
class _Pause:
    seconds: float


# What the exchange yields, and what it is sent back for a _Post: the response, or the transport error.
_Step = Union[_Post, _Pause]
_Reply = Union[httpx.Response, Exception, None]


def _post(path: str, body: dict, url: str, policy: RetryPolicy) -> Generator[_Step, _Reply, Any]:
    """POST ``body`` until the service answers 200 (its JSON is returned), retrying as ``policy`` allows."""
    attempts = _Attempts(url, policy)
    while True:
        reply = yield _Post(path, body, attempts.headers())
        if isinstance(reply, httpx.Response):
            wait = attempts.after_response(reply)
            if wait is None:
                return reply.json()
        else:
            assert isinstance(reply, Exception), "a _Post is answered with its response or its transport error"
            wait = attempts.after_transport_error(reply)
        yield _Pause(wait)


def _exchange(requests: list[RunRequest], url: str, policy: RetryPolicy) -> Generator[_Step, _Reply, list[RunResult]]:
    """Every request's result: one call for all, then rounds for the programs that got a retryable infra_error."""
    rounds = InfraRounds(len(requests), policy)
    for todo, wait in rounds:
        if wait:
            yield _Pause(wait)
        if len(todo) == 1:  # /v1/runs: one program needs no batch around it
            payload = yield from _post("/v1/runs", requests[todo[0]].model_dump(mode="json"), url, policy)
            _refuse_newer(payload, url)
            answer = [RunResult.model_validate(payload)]
        else:
            body = BatchRequest(runs=[requests[i] for i in todo]).model_dump(mode="json")
            payload = yield from _post("/v1/batch", body, url, policy)
            results = payload.get("results") if isinstance(payload, dict) else None
            for result in results if isinstance(results, list) else []:
                _refuse_newer(result, url)
            answer = BatchResult.model_validate(payload).results
        rounds.record(todo, answer)
    return rounds.results


class _Steps:
    """Runs ``_exchange`` for a client: ``next()`` is the next step, or None once ``results`` are in; a client
    sets ``reply`` to what each _Post got before asking for the next step."""

    def __init__(self, requests: list[RunRequest], url: str, policy: RetryPolicy) -> None:
        self._steps = _exchange(list(requests), url, policy)
        self.reply: _Reply = None
        self.results: list[RunResult] = []

    def next(self) -> Optional[_Step]:
        reply, self.reply = self.reply, None
        try:
            return self._steps.send(reply)
        except StopIteration as done:
            self.results = done.value
            return None


def _too_slow(url: str, client: str, exc: httpx.TimeoutException) -> SandboxError:
    return SandboxError(f"executor at {url} did not answer within the client timeout ({exc.__class__.__name__}); "
                        f"raise {client}(timeout=...)")


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

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def run(self, request: RunRequest) -> RunResult:
        return self.run_batch([request])[0]

    def run_batch(self, requests: list[RunRequest]) -> list[RunResult]:
        steps = _Steps(requests, self.base_url, self.retry)
        while (step := steps.next()) is not None:
            if isinstance(step, _Pause):
                time.sleep(step.seconds)
            else:
                steps.reply = self._send(step)
        return steps.results

    def _send(self, post: _Post) -> _Reply:
        try:
            return self._http.post(post.path, json=post.body, headers=post.headers)
        except _TRANSPORT_RETRY as exc:
            return exc
        except httpx.TimeoutException as exc:
            raise _too_slow(self.base_url, "Client", exc) from exc

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

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self._http.aclose()

    async def run(self, request: RunRequest) -> RunResult:
        return (await self.run_batch([request]))[0]

    async def run_batch(self, requests: list[RunRequest]) -> list[RunResult]:
        steps = _Steps(requests, self.base_url, self.retry)
        while (step := steps.next()) is not None:
            if isinstance(step, _Pause):
                await asyncio.sleep(step.seconds)
            else:
                steps.reply = await self._send(step)
        return steps.results

    async def _send(self, post: _Post) -> _Reply:
        try:
            return await self._http.post(post.path, json=post.body, headers=post.headers)
        except _TRANSPORT_RETRY as exc:
            return exc
        except httpx.TimeoutException as exc:
            raise _too_slow(self.base_url, "AsyncClient", exc) from exc

    async def health(self) -> dict:
        try:
            return (await self._http.get("/readyz")).json()
        except httpx.TransportError as exc:
            raise ExecutorUnreachable(self.base_url, exc) from exc
