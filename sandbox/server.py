"""The HTTP service (transport only): validates requests, admits them into a bounded queue, hands them to a backend.

    POST /v1/runs    RunRequest   -> RunResult
    POST /v1/batch   BatchRequest -> BatchResult (results in request order)
    GET  /healthz    the process is up          GET /readyz   the backend can serve runs now (else 503)
    GET  /metrics    Prometheus text            GET /openapi.json

When more programs are waiting or running than the queue holds, a request is answered 429 with ``Retry-After``
at once instead of hanging. With ``SANDBOX_TOKEN`` set, /v1/* and /metrics need ``Authorization: Bearer <token>``.
Every request gets a run id (``X-Run-Id`` header) that keys its structured log line.
"""

from __future__ import annotations

import hmac
import logging
import os
import time
import uuid
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Optional

from fastapi import Depends, FastAPI, HTTPException, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse

from sandbox.backends.base import Backend
from sandbox.logs import RUN_ID, event
from sandbox.metrics import Metrics
from sandbox.models import BatchRequest, BatchResult, RunRequest, RunResult, RunStatus

log = logging.getLogger("sandbox.service")

TOKEN_ENV = "SANDBOX_TOKEN"


@dataclass
class ServiceSettings:
    queue_capacity_runs: int = 2000  # programs waiting or running at once; more are answered 429
    retry_after_s: int = 1
    token: Optional[str] = field(default_factory=lambda: os.environ.get(TOKEN_ENV) or None)


class Admission:
    """A bounded count of admitted programs. Admission never waits: full means 429 now."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.admitted = 0

    def try_admit(self, n: int) -> bool:
        if self.admitted + n > self.capacity:
            return False
        self.admitted += n
        return True

    def release(self, n: int) -> None:
        self.admitted -= n


class QueueFull(Exception):
    pass


def create_app(backend: Backend, settings: Optional[ServiceSettings] = None) -> FastAPI:
    settings = settings or ServiceSettings()
    metrics = Metrics()
    admission = Admission(settings.queue_capacity_runs)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
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
    app.state.backend, app.state.metrics, app.state.admission = backend, metrics, admission

    metrics.gauge("sandbox_queue_runs", lambda: {(): admission.admitted})
    metrics.gauge("sandbox_queue_capacity_runs", lambda: {(): admission.capacity})
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
        return JSONResponse(
            {"detail": str(exc)}, status_code=429, headers={"Retry-After": str(settings.retry_after_s)}
        )

    @app.middleware("http")
    async def observe(request: Request, call_next):
        started = time.perf_counter()
        run_id = uuid.uuid4().hex[:16]
        request.state.run_id = run_id
        RUN_ID.set(run_id)
        response = await call_next(request)
        response.headers["X-Run-Id"] = run_id
        endpoint = request.url.path
        if endpoint.startswith("/v1/"):
            seconds = time.perf_counter() - started
            metrics.observe_request(endpoint, response.status_code, seconds)
            event(log, "request", endpoint=endpoint, code=response.status_code, ms=round(seconds * 1000, 2),
                  **getattr(request.state, "summary", {}))
        return response

    async def execute(request: Request, runs: list[RunRequest]) -> list[RunResult]:
        if not admission.try_admit(len(runs)):
            if len(runs) > admission.capacity:
                raise HTTPException(413, f"batch of {len(runs)} programs exceeds the queue capacity "
                                         f"({admission.capacity}); split it")
            raise QueueFull(f"queue full ({admission.admitted}/{admission.capacity} programs); retry later")
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
