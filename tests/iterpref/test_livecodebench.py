"""LiveCodeBench: the loader (releases, dates, stdin and functional problems, private cases decoded without
unpickling objects) and sample-by-sample agreement with LiveCodeBench's own grader, run locally from the
vendored copy of its testing_util.py (tests/oracles/, MIT licensed)."""

from __future__ import annotations

import base64
import json
import os
import pickle
import sys
import zlib
from pathlib import Path

import pytest

from iterpref.errors import DataError
from iterpref.evaluate import grade_samples, read_samples
from iterpref.tasks.benchmarks import program_builder
from iterpref.tasks.livecodebench import decode_cases, livecodebench_tasks, plain_unpickle, starter_code
from sandbox.local import LocalExecutor
from sandbox.models import RunRequest
from tests.oracles import run_oracle

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "livecodebench"
ORACLE = ROOT / "tests" / "oracles" / "livecodebench_oracle.py"


def test_releases_and_dates_filter_the_problems():
    everything = livecodebench_tasks(FIXTURES)
    assert len(everything) == 22
    assert len(livecodebench_tasks(FIXTURES, release="release_v1")) == 12
    assert len(livecodebench_tasks(FIXTURES, release="release_v2")) == 22
    june_on = livecodebench_tasks(FIXTURES, start_date="2024-06-01")
    assert {t.task_id for t in june_on} == {"abc911_a", "abc912_a", "3007", "3008"}
    assert {t.task_id for t in livecodebench_tasks(FIXTURES, end_date="2024-01-06")} == {
        f"abc9{n:02d}_a" for n in range(1, 11)}
    with pytest.raises(DataError, match="test3.jsonl"):
        livecodebench_tasks(FIXTURES, release="release_v3")
    with pytest.raises(DataError, match="2024-13-01"):
        livecodebench_tasks(FIXTURES, start_date="2024-13-01")


def test_stdin_and_functional_problems_become_tests_of_the_contract():
    tasks = {t.task_id: t for t in livecodebench_tasks(FIXTURES)}
    stdin = tasks["abc901_a"]
    assert [t["kind"] for t in stdin.tests] == ["stdio"] * 3 and stdin.tests[0]["compare"] == "tokens"
    functional = tasks["3001"]
    test = functional.tests[0]
    assert (test["kind"], test["entry_point"], test["on_instance"]) == ("cases", "Solution.twoSum", True)
    assert test["cases"][0] == {"args": "([2, 7, 11, 15], 9)", "expected": "[0, 1]", "time_s": 6.0}
    assert starter_code(functional).startswith("class Solution:\n    def twoSum(")
    for task in tasks.values():
        RunRequest(code="", tests=task.tests, limits=task.limits)


def test_private_cases_decode_only_plain_data():
    cases = [{"input": "1", "output": "2", "testtype": "stdin"}]
    packed = base64.b64encode(zlib.compress(pickle.dumps(json.dumps(cases)))).decode()
    assert decode_cases(packed, "here") == cases

    class Boom:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    hostile = base64.b64encode(zlib.compress(pickle.dumps(Boom()))).decode()
    with pytest.raises(DataError, match="here: private test cases cannot be decoded.*STACK_GLOBAL|GLOBAL"):
        decode_cases(hostile, "here")
    with pytest.raises(ValueError, match="refused"):
        plain_unpickle(pickle.dumps(Boom(), protocol=0))
    assert plain_unpickle(pickle.dumps({"a": [1, 2.5, None, True, "x", b"y", (1,)]})) == {
        "a": [1, 2.5, None, True, "x", b"y", (1,)]}
    with pytest.raises(DataError, match="hold a list"):
        decode_cases(base64.b64encode(zlib.compress(pickle.dumps([1]))).decode(), "here")


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_verdicts_agree_with_livecodebench_on_every_sample(tmp_path):
    pytest.importorskip("numpy", reason="LiveCodeBench's grader (the vendored oracle) imports numpy")
    if not ORACLE.is_file():
        pytest.skip("LiveCodeBench's grading code is not vendored in tests/oracles/")
    files = f"{FIXTURES / 'test.jsonl'},{FIXTURES / 'test2.jsonl'}"
    out = tmp_path / "oracle.jsonl"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    code, log = run_oracle([sys.executable, str(ORACLE), files, str(FIXTURES / "samples.jsonl"), str(out)],
                           tmp_path, env)
    assert code == 0, log[-3000:]
    theirs = [json.loads(line)["passed"] for line in out.read_text().splitlines()]
    samples = read_samples(FIXTURES / "samples.jsonl")
    ours = grade_samples(livecodebench_tasks(FIXTURES), samples, LocalExecutor(workers=2),
                         program=program_builder("livecodebench"), progress=False)
    assert len(ours) == len(theirs) == len(samples) >= 50
    disagreements = [(s["task_id"], s["kind"], mine.passed, their, mine.message)
                     for (_, s), mine, their in zip(samples, ours, theirs) if mine.passed != their]
    assert not disagreements
    assert sum(theirs) >= 25 and len(theirs) - sum(theirs) >= 25  # both outcomes well represented
    assert {"pass", "fail", "timeout", "error", "crash"} <= {v for s in ours for v in s.tests.values()}
