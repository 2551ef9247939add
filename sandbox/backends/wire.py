"""How every backend talks to ``sandbox/runner.py``: the job it reads, the answer it writes, and how long to wait.

The runner reads ``{"runs": [RunRequest as JSON, ...], "workers": N}`` on stdin and writes
``{"results": [RunResult as JSON, ...]}`` (same order) on stdout. A backend trusts that answer only if the runner
exited cleanly and the answer is well formed and matches the requests: as many results as requests, and a
completed result's tests carry exactly its request's test ids in order. Anything else says nothing about the
programs, so the backend decides what to make of it (see each backend).
"""

from __future__ import annotations

import json

from pydantic import ValidationError

from sandbox.models import RunRequest, RunResult, RunStatus

TEST_FILE_TESTS = 50  # a test file's test count is known only once it runs: budget for this many


class UnusableAnswer(ValueError):
    """The runner's answer cannot be trusted; the message says why."""


def encode_job(requests: list[RunRequest], workers: int) -> bytes:
    """The runner's stdin for ``requests``, run at most ``workers`` at a time."""
    return json.dumps({"runs": [r.model_dump(mode="json") for r in requests], "workers": workers}).encode()


def decode_answer(requests: list[RunRequest], exit_status: int | None, stdout: bytes) -> list[RunResult]:
    """The runner's results for ``requests``; raises UnusableAnswer when its answer cannot be trusted."""
    if exit_status != 0:
        raise UnusableAnswer(f"runner exited with status {exit_status}")
    try:
        payload = json.loads(stdout)
    except ValueError as exc:
        raise UnusableAnswer(f"runner output unreadable: {exc}"[:500]) from None
    if not isinstance(payload, dict) or not isinstance(payload.get("results"), list):
        raise UnusableAnswer("runner output unreadable: no list of results")
    if len(payload["results"]) != len(requests):
        raise UnusableAnswer(f"runner returned {len(payload['results'])} results for {len(requests)} requests")
    try:
        results = [RunResult.model_validate(item) for item in payload["results"]]
    except ValidationError as exc:
        raise UnusableAnswer(f"runner output unreadable: {exc}"[:500]) from None
    for index, (request, result) in enumerate(zip(requests, results)):
        if request.tests is not None and result.status == RunStatus.COMPLETED:
            if [t.id for t in result.tests] != [t.id for t in request.tests]:
                raise UnusableAnswer(f"runner's result {index} names tests its request does not have")
    return results


def run_budget_s(request: RunRequest, per_test_slack_s: float = 0.0) -> float:
    """Upper bound on one program's runner time: loading it plus every test at its time limit (each with
    ``per_test_slack_s`` for killing and draining it)."""
    n_tests = len(request.tests) if request.tests is not None else TEST_FILE_TESTS
    return (request.limits.time_s + per_test_slack_s) * (n_tests + 1) + 0.5


def deadline_s(requests: list[RunRequest], workers: int, slack_s: float, per_test_slack_s: float = 0.0) -> float:
    """Host-side seconds for the runner to answer ``requests`` on ``workers``: list scheduling finishes within
    sum/workers + max of the programs' budgets; ``slack_s`` covers starting and answering."""
    budgets = [run_budget_s(r, per_test_slack_s) for r in requests]
    return slack_s + sum(budgets) / max(workers, 1) + max(budgets, default=0.0)
