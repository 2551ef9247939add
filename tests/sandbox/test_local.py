"""sandbox.local.LocalExecutor retries like the client: programs whose result is a retryable infra_error run
again, alone with the others that failed, for ``retry.infra_attempts`` rounds; final results stay as they are."""

from __future__ import annotations

import pytest

from sandbox import local
from sandbox.local import LocalExecutor
from sandbox.models import RunRequest, RunResult, RunStatus
from sandbox.retry import RetryPolicy

FAST = RetryPolicy(infra_attempts=3, backoff_s=0.001, max_backoff_s=0.002)


def request(i: int) -> RunRequest:
    return RunRequest(code=f"x = {i}", tests=[{"kind": "assert", "code": "pass"}])


def passed() -> RunResult:
    return RunResult.model_validate({"status": "completed", "passed": True, "counts": {"pass": 1},
                                     "tests": [{"id": "test_0", "verdict": "pass"}]})


@pytest.fixture
def runner_calls(monkeypatch):
    """Replaces the runner: each call records the programs it got and answers from a script of rounds."""
    calls: list[list[str]] = []
    script: list[dict[str, RunResult]] = []

    def run_sync(requests, workers, isolate=True):
        calls.append([r.code for r in requests])
        answers = script[len(calls) - 1] if len(calls) <= len(script) else {}
        return [answers.get(r.code, passed()) for r in requests]

    monkeypatch.setattr(local, "run_sync", run_sync)
    return calls, script


def test_only_retryable_infra_errors_run_again(runner_calls):
    calls, script = runner_calls
    script.append({"x = 1": RunResult.infra_error("zygote died", retryable=True),
                   "x = 2": RunResult.infra_error("malformed", retryable=False)})
    results = LocalExecutor(workers=1, retry=FAST).run_batch([request(0), request(1), request(2)])
    assert calls == [["x = 0", "x = 1", "x = 2"], ["x = 1"]]
    assert results[0].passed and results[1].passed
    assert results[2].status == RunStatus.INFRA_ERROR and not results[2].retryable


def test_a_program_runs_at_most_infra_attempts_times(runner_calls):
    calls, script = runner_calls
    flaky = {"x = 0": RunResult.infra_error("zygote died", retryable=True)}
    script.extend([flaky] * 5)
    result = LocalExecutor(workers=1, retry=FAST).run(request(0))
    assert len(calls) == FAST.infra_attempts
    assert result.status == RunStatus.INFRA_ERROR and result.retryable


def test_an_empty_batch_runs_nothing(runner_calls):
    calls, _ = runner_calls
    assert LocalExecutor(retry=FAST).run_batch([]) == [] and calls == []
