"""The HTTP service (transport only): validates requests, admits them into a bounded queue, hands them to a backend.

    POST /v1/runs    RunRequest   -> RunResult
    POST /v1/batch   BatchRequest -> BatchResult (results in request order)
    GET  /healthz    the process is up          GET /readyz   the backend can serve runs now (else 503)
    GET  /metrics    Prometheus text            GET /openapi.json

Admission (sandbox/admission.py) is fair under backpressure: when the queue is full, a request waits in a bounded line for at most
``max_wait_s``, admitted in order of first arrival (a 429 answer carries an ``X-Queue-Ticket`` that the client shows
when it retries, keeping its place); when that line is full of older requests, or the wait runs out, it is
answered 429 with ``Retry-After`` instead of hanging. While the backend cannot serve (e.g. the Docker engine is
unreachable) runs are answered 503 with ``Retry-After`` and the reason. JSON has no NaN or Infinity: bodies with
them are answered 422 naming the field. With ``SANDBOX_TOKEN`` set, /v1/* and /metrics need ``Authorization: Bearer <token>``.
Every request gets a run id (``X-Run-Id`` header) that keys its structured log line, and counts in /metrics under
its route template, never its raw path (sandbox/metrics.py).

With ``ServiceSettings.cache_bytes`` above 0 (``sandbox serve --cache-mb``), a program identical to one answered
recently, or to an earlier one in the same batch, is answered from memory and marked ``cached``
(sandbox/cache.py says what counts as identical, what is kept, and the bound).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import math
import os
import time
import uuid
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Callable, Optional

from fastapi import Depends, FastAPI, HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.routing import BaseRoute, Match

from sandbox.admission import Admission, QueueFull, Tickets
from sandbox.backends.base import Backend
from sandbox.cache import DEFAULT_MAX_ENTRIES, IDENTITY_REFRESH_S, ResultCache, request_key, runner_identity
from sandbox.logs import RUN_ID, event
from sandbox.metrics import UNMATCHED, Metrics
from sandbox.models import TICKET_HEADER, TOKEN_ENV, BatchRequest, BatchResult, RunRequest, RunResult, RunStatus

log = logging.getLogger("sandbox.service")


@dataclass
class ServiceSettings:
    queue_capacity_runs: int = 2000  # programs admitted (handed to the backend) at once
    wait_queue_runs: Optional[int] = None  # programs that may wait in line for admission; None: 4x the capacity
    max_wait_s: float = 30.0  # longest wait in that line before 429
    retry_after_s: int = 1
    token: Optional[str] = field(default_factory=lambda: os.environ.get(TOKEN_ENV) or None)
    # Result cache (sandbox/cache.py): its bound in bytes, 0 for none (the default: results stay fresh runs
    # unless the operator asks), and in entries.
    cache_bytes: int = 0
    cache_entries: int = DEFAULT_MAX_ENTRIES


class NotReady(Exception):
    pass


def _non_finite_paths(value: Any, path: tuple) -> list[tuple[tuple, str]]:
    """Where ``value`` holds NaN or an infinity, as (location, the number's JSON spelling)."""
    if isinstance(value, float) and not math.isfinite(value):
        return [(path, "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity"))]
    if isinstance(value, dict):
        return [hit for key, item in value.items() for hit in _non_finite_paths(item, path + (key,))]
    if isinstance(value, list):
        return [hit for i, item in enumerate(value) for hit in _non_finite_paths(item, path + (i,))]
    return []


class StrictJSONRequest(Request):
    """A request whose JSON body may not hold NaN or Infinity (Python's parser accepts them, JSON does not):
    such a body is a 422 naming each field, instead of a value that would be clamped or could not be echoed."""

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            seen: list[str] = []

            def constant(name: str) -> float:
                seen.append(name)
                return float(name.replace("Infinity", "inf"))

            def number(text: str) -> float:
                value = float(text)
                if not math.isfinite(value):  # a literal like 1e400 overflows to inf without calling `constant`
                    seen.append(text)
                return value

            body = json.loads(await self.body(), parse_constant=constant, parse_float=number)
            if seen:
                detail = [{"type": "finite_number", "loc": ["body", *loc],
                           "msg": f"{spelling} is not a finite number (NaN, Infinity and numbers beyond a float's "
                                  "range are refused); send a finite number"}
                          for loc, spelling in _non_finite_paths(body, ())]
                raise HTTPException(422, detail=detail)
            self._json = body
        return self._json


class StrictJSONRoute(APIRoute):
    def get_route_handler(self) -> Callable:
        handler = super().get_route_handler()

        async def strict(request: Request) -> Response:
            return await handler(StrictJSONRequest(request.scope, request.receive))

        return strict


def _json_safe(value: Any) -> Any:
    """``value`` with non-finite floats spelled as strings and anything else unknown as its repr."""
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if value is None or isinstance(value, (str, int, bool)):
        return value
    return repr(value)


def route_template(scope: dict, routes: list[BaseRoute]) -> str:
    """The path template of the route that served ``scope`` ("/v1/runs"), or ``UNMATCHED``: a bounded set of
    values the service chose, so a caller's path never becomes a metric label."""
    route = scope.get("route")  # FastAPI's own routes leave themselves here
    path = getattr(route, "path", None)
    if isinstance(path, str):
        return path
    for candidate in routes:  # Starlette routes (/openapi.json, /docs) do not
        if candidate.matches(scope)[0] != Match.NONE:
            return str(getattr(candidate, "path", UNMATCHED))
    return UNMATCHED


class Observe:
    """Every request gets a run id (``X-Run-Id``, and the log context) and a metric under its route template; each
    /v1/ request a log line. Plain ASGI: Starlette's ``@app.middleware("http")`` would run each request in a second
    task (~0.3 ms)."""

    def __init__(self, app, metrics: Metrics, routes: list[BaseRoute]) -> None:
        self.app, self.metrics, self.routes = app, metrics, routes

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        run_id = uuid.uuid4().hex[:16]
        state = scope.setdefault("state", {})  # what handlers see as request.state
        state["run_id"] = run_id
        RUN_ID.set(run_id)  # the handler runs in this task, so it and its children see the id
        status: list[int] = []

        async def send_with_id(message) -> None:
            if message["type"] == "http.response.start":
                status.append(message["status"])
                message = {**message, "headers": [*message.get("headers", ()), (b"x-run-id", run_id.encode())]}
            await send(message)

        await self.app(scope, receive, send_with_id)
        if not status:
            return
        seconds = time.perf_counter() - started
        endpoint = route_template(scope, self.routes)
        self.metrics.observe_request(endpoint, status[0], seconds)
        if scope["path"].startswith("/v1/"):
            event(log, "request", endpoint=endpoint, code=status[0], ms=round(seconds * 1000, 2),
                  **state.get("summary", {}))


def create_app(backend: Backend, settings: Optional[ServiceSettings] = None) -> FastAPI:
    settings = settings or ServiceSettings()
    metrics = Metrics()
    admission = Admission(settings.queue_capacity_runs, settings.wait_queue_runs, settings.max_wait_s)
    tickets = Tickets()
    cache = ResultCache(settings.cache_bytes, settings.cache_entries) if settings.cache_bytes > 0 else None
    identity: list[str] = []  # the backend's runner identity, part of every cache key; empty until known

    async def refresh_identity() -> None:
        # A runner rebuilt or edited while serving gives other results: its old entries must not answer.
        while True:
            await asyncio.sleep(IDENTITY_REFRESH_S)
            try:
                now = await asyncio.to_thread(runner_identity, backend)
            except Exception as exc:  # keep refreshing: a stale identity would keep stale entries
                event(log, "cache_identity_failed", logging.WARNING, error=f"{type(exc).__name__}: {exc}")
                continue
            if now != identity[0]:
                identity[0] = now
                if cache is not None:
                    cache.clear()

    # The backend's long-lived resources (a warm pool) live as long as the application serves.
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await backend.start()
        refresher = None
        if cache is not None:
            identity[:] = [await asyncio.to_thread(runner_identity, backend)]
            refresher = asyncio.create_task(refresh_identity())
        try:
            yield
        finally:
            if refresher is not None:
                refresher.cancel()
                await asyncio.gather(refresher, return_exceptions=True)
            await backend.close()

    app = FastAPI(
        title="sandbox",
        version="1",
        summary="Run untrusted Python against tests in isolation; get a verdict and an error per test.",
        lifespan=lifespan,
    )
    app.router.route_class = StrictJSONRoute
    app.state.backend, app.state.metrics, app.state.admission = backend, metrics, admission
    app.state.cache = cache

    metrics.gauge("sandbox_queue_runs", lambda: {(): admission.admitted}, help_text="Programs admitted now")
    metrics.gauge("sandbox_queue_capacity_runs", lambda: {(): admission.capacity},
                  help_text="Programs that may be admitted at once")
    metrics.gauge("sandbox_waiting_runs", lambda: {(): admission.waiting},
                  help_text="Programs waiting in line for admission")
    metrics.gauge("sandbox_ready", lambda: {(): int(backend.ready()[0])}, help_text="1 when /readyz is 200")
    if hasattr(backend, "pool_stats"):
        metrics.gauge("sandbox_pool_containers", lambda: {(k,): v for k, v in backend.pool_stats().items()},
                      labels=("state",), help_text="Runner containers by state")
    if cache is not None:
        metrics.gauge("sandbox_cache_entries", lambda: {(): len(cache)}, help_text="Results kept in the cache")
        metrics.gauge("sandbox_cache_bytes", lambda: {(): cache.bytes}, help_text="Bytes counted against the bound")
        metrics.gauge("sandbox_cache_capacity_bytes", lambda: {(): cache.max_bytes},
                      help_text="The cache's bound in bytes")

    def authorize(request: Request) -> None:
        if settings.token is None:
            return
        given = request.headers.get("authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {settings.token}".encode()):
            raise HTTPException(401, "missing or wrong bearer token", headers={"WWW-Authenticate": "Bearer"})

    @app.exception_handler(QueueFull)
    async def _queue_full(request: Request, exc: QueueFull) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=429,
                            headers={"Retry-After": str(settings.retry_after_s), TICKET_HEADER: exc.ticket})

    @app.exception_handler(NotReady)
    async def _not_ready(request: Request, exc: NotReady) -> JSONResponse:
        return JSONResponse(
            {"detail": str(exc)}, status_code=503, headers={"Retry-After": str(settings.retry_after_s)}
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI's own answer echoes the input and the validators' exception objects, which need not serialise.
        return JSONResponse({"detail": _json_safe(exc.errors())}, status_code=422)

    app.add_middleware(Observe, metrics=metrics, routes=app.router.routes)

    async def run_admitted(request: Request, runs: list[RunRequest]) -> list[RunResult]:
        ok, reason = backend.serving()  # not ready(): a docker pool that is only refilling still serves
        if not ok:
            raise NotReady(f"executor not ready: {reason}; retry later")
        ticket = tickets.read(request.headers.get(TICKET_HEADER)) or admission.ticket()
        if not await admission.admit(len(runs), ticket):
            raise QueueFull(f"queue full ({admission.admitted}/{admission.capacity} programs admitted, "
                            f"{admission.waiting} waiting); retry later with the {TICKET_HEADER} header",
                            tickets.sign(ticket))
        try:
            return await backend.run_batch(runs)
        except Exception as exc:  # a backend bug must not take the service down; the caller may retry
            event(log, "backend_error", logging.ERROR, error=f"{type(exc).__name__}: {exc}")
            return [RunResult.infra_error(f"backend failure: {type(exc).__name__}: {exc}", retryable=True)
                    for _ in runs]
        finally:
            admission.release(len(runs))

    async def run_cached(request: Request, runs: list[RunRequest], cache: ResultCache) -> list[RunResult]:
        """Answer hits from the cache, run each distinct miss once, keep what may be kept."""
        # The token is part of the key: should the service ever hold several, callers would not share entries.
        credential = request.headers.get("authorization", "") if settings.token else ""
        keys = [request_key(run, identity[0], credential) for run in runs]
        answers: list[Optional[RunResult]] = [cache.get(key) for key in keys]
        first: dict[bytes, int] = {}  # key -> index of the program that runs for every copy in this batch
        for i, key in enumerate(keys):
            if answers[i] is None:
                first.setdefault(key, i)
        todo = sorted(first.values())
        if todo:
            for i, result in zip(todo, await run_admitted(request, [runs[i] for i in todo])):
                answers[i] = result
                cache.put(keys[i], result)
        results: list[RunResult] = []
        for i, answer in enumerate(answers):
            if answer is None:  # a later copy of a program that ran in this batch
                ran = answers[first[keys[i]]]
                assert ran is not None
                # An infra_error is no answer to share as cached: the copy carries it as it is, to be retried.
                answer = ran if ran.status == RunStatus.INFRA_ERROR else ran.model_copy(update={"cached": True})
            results.append(answer)
        metrics.observe_cache(hits=sum(r.cached for r in results), misses=len(todo))
        return results

    async def execute(request: Request, runs: list[RunRequest]) -> list[RunResult]:
        if len(runs) > admission.capacity:
            raise HTTPException(413, f"batch of {len(runs)} programs exceeds the queue capacity "
                                     f"({admission.capacity}); split it")
        if cache is not None and identity:
            results = await run_cached(request, runs, cache)
        else:
            results = await run_admitted(request, runs)
        metrics.observe_results(results)
        request.state.summary = {
            "programs": len(runs),
            "passed": sum(r.passed for r in results),
            "infra_errors": sum(r.status == RunStatus.INFRA_ERROR for r in results),
            "cached": sum(r.cached for r in results),
        }
        return results

    @app.post("/v1/runs", response_model=RunResult, dependencies=[Depends(authorize)])
    async def run(request: Request, body: RunRequest) -> RunResult:
        """Run one program against its tests."""
        return (await execute(request, [body]))[0]

    @app.post("/v1/batch", response_model=BatchResult, dependencies=[Depends(authorize)])
    async def batch(request: Request, body: BatchRequest) -> BatchResult:
        """Run many programs; results come back in request order."""
        return BatchResult(results=await execute(request, body.runs))

    @app.get("/healthz")
    async def healthz() -> dict:
        return {"status": "ok", "backend": backend.name}

    @app.get("/readyz")
    async def readyz(response: Response) -> dict:
        ok, reason = backend.ready()
        if not ok:
            response.status_code = 503
        return {"ready": ok, "backend": backend.name, "reason": reason}

    @app.get("/metrics", response_class=Response, dependencies=[Depends(authorize)])
    async def prometheus() -> Response:
        return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)

    return app
