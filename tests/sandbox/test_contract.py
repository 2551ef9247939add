"""What is written down twice agrees: the contract (sandbox/models.py) restates the runner's wire constants (the
runner is stdlib-only and shipped alone, and callers cannot import it), and the runner image's label names the
guard protocol this service speaks."""

from __future__ import annotations

import re
from pathlib import Path

from sandbox import models, runner
from sandbox.backends import container_guard, docker_pool
from sandbox.models import RESULT_FORMAT_VERSION, Limits, RunRequest, RunResult, TestResult

ROOT = Path(__file__).resolve().parents[2]


def test_default_limits_agree_with_the_runner():
    assert Limits().model_dump() == runner.DEFAULT_LIMITS


def test_test_ids_follow_the_runners_rule():
    tests = [{"kind": "assert", "code": "pass"}, {"kind": "assert", "id": "named", "code": "pass"},
             {"kind": "assert", "code": "pass"}]
    request = RunRequest(code="", tests=tests)
    assert [t.id for t in request.tests] == [runner.default_test_id(0), "named", runner.default_test_id(2)]
    assert runner._test_ids(request.model_dump(mode="json")) == [t.id for t in request.tests]
    assert [models.default_test_id(i) for i in range(3)] == [runner.default_test_id(i) for i in range(3)]


def test_what_the_runner_writes_is_a_valid_result_of_the_current_format():
    infra = RunResult.model_validate(runner._infra("broken", retryable=True))
    assert infra.retryable and infra.format_version == RESULT_FORMAT_VERSION
    finished = runner._finish([{"id": runner.TEST_FILE_ID, "verdict": "error", "program_error": False,
                                "message": "no tests"}], started=0.0)
    assert RunResult.model_validate(finished).tests == [
        TestResult(id=runner.TEST_FILE_ID, verdict="error", message="no tests")]


def test_the_runner_image_is_labelled_with_the_guards_protocol():
    dockerfile = (ROOT / "images" / "Dockerfile.runner").read_text()
    labelled = re.search(rf'{re.escape(docker_pool.PROTOCOL_LABEL)}="([^"]*)"', dockerfile)
    assert labelled and labelled.group(1) == container_guard.PROTOCOL


def test_the_checkers_refusals_are_named_in_the_contract():
    raised = {cls.__name__ for cls in (runner.HandleComparison, runner.CannotCross, runner.CandidateDied)}
    assert raised == set(models.CHECKER_ERROR_TYPES)


def test_the_guard_and_the_pool_agree_on_the_guards_capabilities():
    import os

    names = {"KILL": container_guard.CAP_KILL, "SETGID": container_guard.CAP_SETGID, "SETUID": container_guard.CAP_SETUID}
    assert sum(1 << names[cap] for cap in docker_pool.GUARD_CAPABILITIES) == container_guard.ALLOWED_CAPS
    assert docker_pool.ContainerSpec().user == "0:0"
    assert os.environ.get(docker_pool.RUNNER_IMAGE_ENV, docker_pool.DEFAULT_RUNNER_IMAGE) == \
        docker_pool.ContainerSpec().image
