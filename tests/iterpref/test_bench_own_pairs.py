"""benchmarks/bench_own_pairs.py: both loops on the same tasks, their pairs, times and resume."""

import json

import pytest

from iterpref.records import Task
from iterpref.samplers.scripted import ScriptedSampler
from tests.iterpref.scripts import load_benchmark

LocalExecutor = pytest.importorskip("sandbox.local").LocalExecutor


def load_bench():
    return load_benchmark("bench_own_pairs")


def fence(code):
    return f"```python\n{code}```\n"


def task(name, body):
    return Task(task_id=name, prompt=f"def {name}(x): ...", entry_point=name,
                tests=[{"kind": "assert", "code": f"assert {name}(3) == {body.replace('x', '3')}"}])


TASKS = [task("sq", "x * x"), task("inc", "x + 1"), task("neg", "-x")]
SCRIPT = {  # the reply of each round: repaired at round 1, right at once, never right
    "sq": [fence("def sq(x):\n    return x + x\n"), fence("def sq(x):\n    return x * x\n")],
    "inc": [fence("def inc(x):\n    return x + 1\n")],
    "neg": [fence("def neg(x):\n    return x\n")],
}


@pytest.mark.timeout(300)
def test_both_loops_count_pairs_and_time_and_a_rerun_resumes(tmp_path):
    bench = load_bench()
    made = []

    def sampler():
        made.append(ScriptedSampler(SCRIPT))
        return made[-1]

    executor = LocalExecutor()
    result = bench.compare(TASKS, sampler, executor, tmp_path, rounds=2, samples=3, repair_style="brief")
    again = bench.compare(TASKS, sampler, executor, tmp_path, rounds=2, samples=3, repair_style="brief")
    single, many = result["single"], result["repair_sampling"]
    assert (single["samples"], many["samples"]) == (1, 3)
    for loop in (single, many):
        assert loop["tasks"] == 3 and loop["passed"] == 2 and loop["passed_first_round"] == 1
        assert loop["pairs"] == 1 and loop["pairs_per_100_tasks"] == pytest.approx(33.33)
        assert loop["seconds"] > 0 and loop["pairs_per_minute"] == pytest.approx(60 / loop["seconds"], rel=1e-2)
    rows = [json.loads(line) for line in (tmp_path / "samples-3.trajectories.jsonl").read_text().splitlines()]
    assert sorted({r["sample"] for r in rows}) == [0, 1, 2]  # three candidates per round, every round
    # Both loops asked for repairs with the brief prompt: the first request plus a note, no failing code.
    repairs = [r for r in rows if r["round"] == 1]
    assert repairs and all("A previous attempt failed with AssertionError" in r["messages"][-1]["content"]
                           and "return x + x" not in json.dumps(r["messages"]) for r in repairs)
    assert result["time_ratio"] == pytest.approx(many["seconds"] / single["seconds"], rel=1e-2)
    assert result["target_met"] is False  # one pair, not ten
    # The rerun sampled nothing (two samplers were made, one per loop, on the first call) and kept the times.
    assert len(made) == 2 and again == result
    text = bench.markdown(result, {"tasks": 3})
    assert "| 3, then 3 | 3 | 2 (1 at round 0) | 1 | 33.33 |" in text and "not met" in text


def test_repair_sampling_with_one_first_candidate_has_its_own_loop_and_row(tmp_path):
    bench = load_bench()
    executor = LocalExecutor()
    result = bench.compare(TASKS, lambda: ScriptedSampler(SCRIPT), executor, tmp_path, rounds=1, samples=2,
                           repair_style="brief", first_samples=1)
    many = result["repair_sampling"]
    assert (many["first_samples"], many["samples"], many["pairs"]) == (1, 2, 1)
    rows = [json.loads(line) for line in
            (tmp_path / "samples-1-then-2.trajectories.jsonl").read_text().splitlines()]
    assert sorted((r["task_id"], r["round"], r["sample"]) for r in rows) == [
        ("inc", 0, 0), ("neg", 0, 0), ("neg", 1, 0), ("neg", 1, 1), ("sq", 0, 0), ("sq", 1, 0), ("sq", 1, 1)]
    assert "| 1, then 2 | 3 | 2 (1 at round 0) | 1 |" in bench.markdown(result, {"tasks": 3})
    assert bench.main(["--output", str(tmp_path / "bad"), "--first-samples", "0"]) == 2


def test_bad_settings_are_one_line_errors(tmp_path, capsys):
    bench = load_bench()
    assert bench.main(["--output", str(tmp_path), "--samples", "1"]) == 2
    assert bench.main(["--output", str(tmp_path), "--temperature", "0"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and all(line.startswith("bench_own_pairs: ") for line in err)
