"""In-process stand-in for the HTTP client: the same two methods as ``sandbox.client.Client``, no server.

    from sandbox.local import LocalExecutor
    result = LocalExecutor().run(RunRequest(code=..., tests=[...]))

Like the client it retries programs whose result is a retryable ``infra_error`` (the runner failed, not the
program), for ``retry.infra_attempts`` rounds (``sandbox.retry``), so a caller can use either without retrying.
"""

from __future__ import annotations

import os
import time

from sandbox.backends.process import run_sync
from sandbox.models import RunRequest, RunResult
from sandbox.retry import InfraRounds, RetryPolicy


class LocalExecutor:
    """Runs requests through the process backend (one runner subprocess per round of a call)."""

    def __init__(self, workers: int | None = None, isolate: bool = True, retry: RetryPolicy = RetryPolicy()) -> None:
        self.workers = workers or os.cpu_count() or 1
        self.isolate = isolate
        self.retry = retry

    def run(self, request: RunRequest) -> RunResult:
        return self.run_batch([request])[0]

    def run_batch(self, requests: list[RunRequest]) -> list[RunResult]:
        requests = list(requests)
        rounds = InfraRounds(len(requests), self.retry)
        for todo, wait in rounds:
            time.sleep(wait)
            rounds.record(todo, run_sync([requests[i] for i in todo], self.workers, self.isolate))
        return rounds.results
