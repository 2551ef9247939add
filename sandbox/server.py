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
Every request gets a run id (``X-Run-Id`` header) that keys its structured log line.
"""

from __future__ import annotations

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
from fastapi.responses import JSONResponse, PlainTextResponse
from fastapi.routing import APIRoute

from sandbox.admission import Admission, QueueFull, Tickets
from sandbox.backends.base import Backend
from sandbox.logs import RUN_ID, event
from sandbox.metrics import Metrics
from sandbox.models import TICKET_HEADER, TOKEN_ENV, BatchRequest, BatchResult, RunRequest, RunResult, RunStatus

log = logging.getLogger("sandbox.service")


@dataclass
class ServiceSettings:
    queue_capacity_runs: int = 2000  # programs admitted (handed to the backend) at once
    wait_queue_runs: Optional[int] = None  # programs that may wait in line for admission; None: 4x the capacity
    max_wait_s: float = 30.0  # longest wait in that line before 429
    retry_after_s: int = 1
    token: Optional[str] = field(default_factory=lambda: os.environ.get(TOKEN_ENV) or None)


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


class Observe:
    """Every request gets a run id (``X-Run-Id``, and the log context); each /v1/ request a metric and a log line.
    Plain ASGI: Starlette's ``@app.middleware("http")`` would run each request in a second task (~0.3 ms)."""

    def __init__(self, app, metrics: Metrics) -> None:
        self.app, self.metrics = app, metrics

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
        endpoint = scope["path"]
        if endpoint.startswith("/v1/") and status:
            seconds = time.perf_counter() - started
            self.metrics.observe_request(endpoint, status[0], seconds)
            event(log, "request", endpoint=endpoint, code=status[0], ms=round(seconds * 1000, 2),
                  **state.get("summary", {}))


def create_app(backend: Backend, settings: Optional[ServiceSettings] = None) -> FastAPI:
    settings = settings or ServiceSettings()
    metrics = Metrics()
    admission = Admission(settings.queue_capacity_runs, settings.wait_queue_runs, settings.max_wait_s)
    tickets = Tickets()

    # The backend's long-lived resources (a warm pool) live as long as the application serves.
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await backend.start()
        try:
            yield
        finally:
            await backend.close()

    app = FastAPI(
        title="sandbox",
        version="1",
        summary="Run untrusted Python against tests in isolation; get a verdict and an error per test.",
        lifespan=lifespan,
    )
    app.router.route_class = StrictJSONRoute
    app.state.backend, app.state.metrics, app.state.admission = backend, metrics, admission

    metrics.gauge("sandbox_queue_runs", lambda: {(): admission.admitted})
    metrics.gauge("sandbox_queue_capacity_runs", lambda: {(): admission.capacity})
    metrics.gauge("sandbox_waiting_runs", lambda: {(): admission.waiting})
    metrics.gauge("sandbox_ready", lambda: {(): int(backend.ready()[0])})
    if hasattr(backend, "pool_stats"):
        metrics.gauge(
            "sandbox_pool_containers", lambda: {(("state", k),): v for k, v in backend.pool_stats().items()}
        )

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

    app.add_middleware(Observe, metrics=metrics)

    async def execute(request: Request, runs: list[RunRequest]) -> list[RunResult]:
        if len(runs) > admission.capacity:
            raise HTTPException(413, f"batch of {len(runs)} programs exceeds the queue capacity "
                                     f"({admission.capacity}); split it")
        ok, reason = backend.serving()  # not ready(): a docker pool that is only refilling still serves
        if not ok:
            raise NotReady(f"executor not ready: {reason}; retry later")
        ticket = tickets.read(request.headers.get(TICKET_HEADER)) or admission.ticket()
        if not await admission.admit(len(runs), ticket):
            raise QueueFull(f"queue full ({admission.admitted}/{admission.capacity} programs admitted, "
                            f"{admission.waiting} waiting); retry later with the {TICKET_HEADER} header",
                            tickets.sign(ticket))
        try:
            results = await backend.run_batch(runs)
        except Exception as exc:  # a backend bug must not take the service down; the caller may retry
            event(log, "backend_error", logging.ERROR, error=f"{type(exc).__name__}: {exc}")
            results = [RunResult.infra_error(f"backend failure: {type(exc).__name__}: {exc}", retryable=True)
                       for _ in runs]
        finally:
            admission.release(len(runs))
        metrics.observe_results(results)
        request.state.summary = {
            "programs": len(runs),
            "passed": sum(r.passed for r in results),
            "infra_errors": sum(r.status == RunStatus.INFRA_ERROR for r in results),
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

    @app.get("/metrics", response_class=PlainTextResponse, dependencies=[Depends(authorize)])
    async def prometheus() -> str:
        return metrics.render()

    return app
