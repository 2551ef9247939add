"""What is written down twice agrees: the contract (sandbox/models.py) restates the runner's wire constants (the
runner is stdlib-only and shipped alone, and callers cannot import it), and the runner image's label names the
guard protocol this service speaks."""

from __future__ import annotations

import re
from pathlib import Path

from sandbox import literals, models, runner
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


def _without_docstring(function) -> str:
    import ast
    import inspect

    tree = ast.parse(inspect.getsource(function)).body[0]
    if ast.get_docstring(tree) is not None:
        tree.body = tree.body[1:]
    return ast.dump(tree)


def test_the_literal_reader_is_the_runners_own_code():
    # sandbox.literals restates the runner's reader so callers need not import the Linux-only runner.
    assert _without_docstring(literals.read_literal) == _without_docstring(runner.read_literal)
    assert literals._LITERAL_NAMES.keys() == runner._LITERAL_NAMES.keys()
    assert models.read_literal is literals.read_literal
    for text in ("[1, (2, 3), {'a': b'x'}]", "nan", "[-inf, 1e999, 2**3]", "{1, 2}", "1+2j", "print(1)"):
        try:
            want = repr(runner.read_literal(text))
        except ValueError:
            want = "ValueError"
        try:
            got = repr(literals.read_literal(text))
        except ValueError:
            got = "ValueError"
        assert got == want, text


def test_the_contract_does_not_import_the_runner():
    import subprocess
    import sys

    probe = "import sys, sandbox.models, sandbox.client; print('sandbox.runner' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "False"
