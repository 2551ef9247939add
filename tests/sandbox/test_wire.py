"""The runner's wire format as every backend reads it (sandbox/backends/wire.py), and the run budgets."""

from __future__ import annotations

import json

import pytest

from sandbox.backends import process
from sandbox.backends.wire import UnusableAnswer, deadline_s, decode_answer, encode_job, run_budget_s
from sandbox.models import RunRequest, RunStatus

REQUEST = RunRequest(code="x = 1", tests=[{"kind": "assert", "id": "a", "code": "pass"}], limits={"time_s": 2})
GOOD = {"status": "completed", "passed": True, "counts": {"pass": 1}, "tests": [{"id": "a", "verdict": "pass"}]}


def answer(*results: dict) -> bytes:
    return json.dumps({"results": list(results)}).encode()


def test_the_job_carries_every_request_and_the_worker_count():
    job = json.loads(encode_job([REQUEST, REQUEST], workers=3))
    assert job["workers"] == 3 and job["runs"] == [REQUEST.model_dump(mode="json")] * 2


@pytest.mark.parametrize("exit_status, stdout, why", [
    (1, answer(GOOD), "exited with status 1"),
    (None, b"", "exited with status None"),
    (0, b"{not json", "unreadable"),
    (0, b"[]", "no list of results"),
    (0, answer(GOOD, GOOD), "2 results for 1 requests"),
    (0, answer({"status": "weird"}), "unreadable"),
    (0, answer({**GOOD, "tests": [{"id": "b", "verdict": "pass"}]}), "names tests its request does not have"),
    (0, answer({**GOOD, "tests": []}), "names tests its request does not have"),
])
def test_an_answer_that_cannot_be_trusted_is_refused_with_the_reason(exit_status, stdout, why):
    with pytest.raises(UnusableAnswer, match=why):
        decode_answer([REQUEST], exit_status, stdout)


def test_a_trustworthy_answer_is_read():
    [result] = decode_answer([REQUEST], 0, answer(GOOD))
    assert result.passed
    infra = {"status": "infra_error", "retryable": True, "infra_message": "zygote died"}
    assert decode_answer([REQUEST], 0, answer(infra))[0].status == RunStatus.INFRA_ERROR  # no tests to check


def test_the_process_backend_checks_test_ids_too():
    renamed = answer({**GOOD, "tests": [{"id": "b", "verdict": "pass"}]})
    [result] = process.decode([REQUEST], 0, renamed, b"")
    assert result.status == RunStatus.INFRA_ERROR and result.retryable and "names tests" in result.infra_message


def test_the_process_backend_reports_the_runners_stderr_when_it_failed():
    [result] = process.decode([REQUEST], 2, b"", b"runner: bad input: boom\n")
    assert result.infra_message == "runner exited with status 2: runner: bad input: boom"


def test_budgets_cover_every_test_at_its_limit():
    assert run_budget_s(REQUEST) == pytest.approx(2 * 2 + 0.5)  # load + one test
    assert run_budget_s(REQUEST, per_test_slack_s=1.0) == pytest.approx(3 * 2 + 0.5)
    test_file = RunRequest(code="", test_file="def test_x(): pass", limits={"time_s": 1})
    assert run_budget_s(test_file) == pytest.approx(51 + 0.5)  # a test file counts as 50 tests


def test_the_process_deadline_is_never_shorter_than_its_old_rule():
    requests = [REQUEST] * 5
    old = sum((len(r.tests) + 1) * (r.limits.time_s + 2.5) for r in requests) / 2 + 30.0
    assert process.batch_deadline(requests, 2) >= old
    assert deadline_s(requests, workers=2, slack_s=30.0, per_test_slack_s=2.5) == process.batch_deadline(requests, 2)
