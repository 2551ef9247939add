"""The one retry policy of the executor's Python entry points (``sandbox.client`` and ``sandbox.local``).

Runs are pure, so a program whose result is a retryable ``infra_error`` (the sandbox failed, not the program) is
sent again, alone with the others that failed, for up to ``infra_attempts`` rounds. Callers above these entry
points (the refine loop, evaluation) do not retry again: one program is sent at most ``infra_attempts`` times.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Iterator, Optional

from sandbox.models import RunResult, RunStatus


@dataclass(frozen=True)
class RetryPolicy:
    connect_attempts: int = 4  # tries before a refused/dropped connection becomes ExecutorUnreachable
    busy_wait_s: float = 120.0  # total time to keep retrying 429/503 before ExecutorBusy
    infra_attempts: int = 3  # rounds for programs whose result is a retryable infra_error
    backoff_s: float = 0.25
    max_backoff_s: float = 5.0

    def backoff(self, attempt: int) -> float:
        return min(self.max_backoff_s, self.backoff_s * 2**attempt) * (0.5 + random.random() / 2)


def needs_retry(result: Optional[RunResult]) -> bool:
    """Whether a program has no result yet, or one that sending it again may improve."""
    return result is None or (result.status == RunStatus.INFRA_ERROR and result.retryable)


class InfraRounds:
    """The rounds of one batch: iterating yields (the indices to send, seconds to wait first); ``record`` takes
    their results. After the last round ``results`` holds every program's latest result."""

    def __init__(self, n_requests: int, policy: RetryPolicy) -> None:
        self.policy = policy
        self._results: list[Optional[RunResult]] = [None] * n_requests

    def __iter__(self) -> Iterator[tuple[list[int], float]]:
        for round_ in range(self.policy.infra_attempts):
            todo = [i for i, result in enumerate(self._results) if needs_retry(result)]
            if not todo:
                return
            yield todo, self.policy.backoff(round_) if round_ else 0.0

    def record(self, todo: list[int], results: list[RunResult]) -> None:
        for index, result in zip(todo, results):
            self._results[index] = result

    @property
    def results(self) -> list[RunResult]:
        missing = [i for i, result in enumerate(self._results) if result is None]
        if missing:  # only with infra_attempts < 1: nothing was ever sent
            raise ValueError(f"no result for runs {missing}: RetryPolicy.infra_attempts must be at least 1")
        return [result for result in self._results if result is not None]
