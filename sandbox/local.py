"""In-process stand-in for the HTTP client: the same two methods as ``sandbox.client.Client``, no server.

    from sandbox.local import LocalExecutor
    result = LocalExecutor().run(RunRequest(code=..., tests=[...]))
"""

from __future__ import annotations

import os

from sandbox.backends.process import run_sync
from sandbox.models import RunRequest, RunResult


class LocalExecutor:
    """Runs requests through the process backend (one runner subprocess per call)."""

    def __init__(self, workers: int | None = None, isolate: bool = True) -> None:
        self.workers = workers or os.cpu_count() or 1
        self.isolate = isolate

    def run(self, request: RunRequest) -> RunResult:
        return self.run_batch([request])[0]

    def run_batch(self, requests: list[RunRequest]) -> list[RunResult]:
        return run_sync(list(requests), self.workers, self.isolate)
