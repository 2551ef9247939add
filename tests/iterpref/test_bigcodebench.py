"""BigCodeBench: the loader (splits, the Hard task list, network tasks) and sample-by-sample agreement with the
official `bigcodebench` package's local execution (tests/oracles/bigcodebench_oracle.py)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from iterpref.errors import DataError
from iterpref.evaluate import grade_samples, read_samples
from iterpref.tasks.benchmarks import program_builder
from iterpref.tasks.bigcodebench import bigcodebench_tasks, network_tasks
from sandbox.local import LocalExecutor
from sandbox.models import RunRequest
from tests.oracles import run_oracle

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "bigcodebench"
DATA = FIXTURES / "BigCodeBench-fixture.jsonl"
SECONDS = 10.0  # the per-task limit both graders get here (BigCodeBench's own default is 240 s)


def test_splits_hard_list_and_test_files():
    complete = bigcodebench_tasks(DATA)
    instruct = bigcodebench_tasks(DATA, split="instruct")
    assert len(complete) == len(instruct) == 22
    assert complete[0].prompt.startswith("import itertools\ndef task_func(") and '"""' in complete[0].prompt
    assert instruct[0].prompt.endswith("```") and "self-contained code" in instruct[0].prompt
    assert complete[0].test_file.rstrip().endswith("task_func([1, 2]), float)")
    hard = bigcodebench_tasks(DATA, hard=True, task_list=FIXTURES / "hard-task-ids.txt")
    assert [t.task_id for t in hard] == [f"BigCodeBench/{n}" for n in (1, 5, 10, 18, 20)]
    for task in complete:
        RunRequest(code="", test_file=task.test_file, limits=task.limits)
    assert network_tasks(DATA) == {"BigCodeBench/18"}
    with pytest.raises(DataError, match="instruct"):
        bigcodebench_tasks(DATA, split="other")


def test_a_missing_file_says_where_to_get_it(monkeypatch):
    monkeypatch.delenv("BIGCODEBENCH_OVERRIDE_PATH", raising=False)
    with pytest.raises(DataError, match="BIGCODEBENCH_OVERRIDE_PATH"):
        bigcodebench_tasks()
    monkeypatch.setenv("BIGCODEBENCH_OVERRIDE_PATH", str(DATA))
    assert len(bigcodebench_tasks(limit=2)) == 2


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_verdicts_agree_with_the_official_bigcodebench_on_every_sample(tmp_path):
    pytest.importorskip("bigcodebench.eval", reason="the official grader: pip install --no-deps bigcodebench")
    out = tmp_path / "oracle.jsonl"
    code, log = run_oracle([sys.executable, str(ROOT / "tests" / "oracles" / "bigcodebench_oracle.py"), str(SECONDS),
                            str(DATA), str(FIXTURES / "samples.jsonl"), str(out)], tmp_path,
                           {**os.environ, "XDG_CACHE_HOME": str(tmp_path)})
    assert code == 0, log[-3000:]
    theirs = [json.loads(line)["status"] for line in out.read_text().splitlines()]
    samples = read_samples(FIXTURES / "samples.jsonl")
    ours = grade_samples(bigcodebench_tasks(DATA, time_s=SECONDS), samples, LocalExecutor(workers=2),
                         program=program_builder("bigcodebench", str(DATA)), fail_fast=True, progress=False)
    assert len(ours) == len(theirs) == len(samples) >= 60
    disagreements = [(s["task_id"], s["kind"], mine.tests, their) for (_, s), mine, their in zip(samples, ours, theirs)
                     if mine.passed != (their == "pass")]
    assert not disagreements
    assert {"pass", "fail", "timeout", "error", "crash"} <= {v for s in ours for v in s.tests.values()}
