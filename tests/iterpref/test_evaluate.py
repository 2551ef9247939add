import json
from fractions import Fraction
from math import comb

import pytest
from hypothesis import given
from hypothesis import strategies as st

from iterpref.cli import main
from iterpref.errors import ConfigError
from iterpref.evaluate import EvalSummary, error_type, evaluate, format_summary, pass_at_k
from iterpref.records import Task
from iterpref.samplers.base import Sampler
from iterpref.tasks import write_tasks

LocalExecutor = pytest.importorskip("sandbox.local").LocalExecutor


def exact_pass_at_k(n, c, k):
    return float(1 - Fraction(comb(n - c, k), comb(n, k)))


@given(st.integers(1, 60).flatmap(lambda n: st.tuples(st.just(n), st.integers(0, n), st.integers(1, n))))
def test_pass_at_k_matches_the_binomial_formula(nck):
    n, c, k = nck
    assert pass_at_k(n, c, k) == pytest.approx(exact_pass_at_k(n, c, k), abs=1e-12)


def test_pass_at_k_edge_cases_and_large_n():
    assert pass_at_k(1, 1, 1) == 1.0
    assert pass_at_k(1, 0, 1) == 0.0
    assert pass_at_k(10, 3, 1) == pytest.approx(0.3)
    assert pass_at_k(5, 3, 3) == 1.0  # fewer than k failures: every subset holds a pass
    # C(1000, 500) overflows a float; the product form must still be exact to many digits.
    assert pass_at_k(1000, 7, 500) == pytest.approx(exact_pass_at_k(1000, 7, 500), rel=1e-12)
    for bad in [(3, 4, 1), (3, 1, 0), (3, 1, 4), (3, -1, 1)]:
        with pytest.raises(ValueError):
            pass_at_k(*bad)


TASK = Task(task_id="add", prompt="def add(a, b):\n", entry_point="add",
            tests=[{"kind": "assert", "code": "assert add(1, 2) == 3"}], limits={"time_s": 1.0})
PROGRAMS = {
    "passed": "def add(a, b):\n    return a + b\n",
    "AssertionError": "def add(a, b):\n    return a - b\n",
    "SyntaxError": "def add(a, b)\n    return a + b\n",
    "NameError": "def add(a, b):\n    return a + c\n",
    "KeyError": "def add(a, b):\n    return {}['x']\n",
    "AttributeError": "def add(a, b):\n    return a.nope\n",
    "FileNotFoundError": "def add(a, b):\n    return open('/nonexistent/file').read()\n",
    "Timeout": "def add(a, b):\n    while True:\n        pass\n",
    "ZeroDivisionError": "def add(a, b):\n    return a / 0\n",
}


@pytest.fixture(scope="module")
def executor():
    return LocalExecutor()


@pytest.mark.timeout(120)
def test_error_types_from_the_real_executor(executor):
    from iterpref.tasks import to_request

    names = list(PROGRAMS)
    results = executor.run_batch([to_request(TASK, PROGRAMS[name]) for name in names])
    got = {name: error_type(result) for name, result in zip(names, results)}
    assert got == {name: (None if name == "passed" else name) for name in names}


class CyclingSampler(Sampler):
    """Replies for each task in turn from a list, so that several samples of one task differ."""

    name = "cycling"

    def __init__(self, replies):
        self.replies = replies
        self.seen = {}
        self.batches = []

    def generate(self, prompts):
        self.batches.append(len(prompts))
        out = []
        for prompt in prompts:
            index = self.seen.get(prompt.task_id, 0)
            self.seen[prompt.task_id] = index + 1
            options = self.replies[prompt.task_id]
            out.append(f"```python\n{options[index % len(options)]}```")
        return out


MUL = Task(task_id="mul", prompt="def mul(a, b):\n", entry_point="mul",
           tests=[{"kind": "assert", "code": "assert mul(2, 3) == 6"}])


@pytest.mark.timeout(120)
def test_evaluate_writes_per_task_results_and_summary(executor, tmp_path):
    sampler = CyclingSampler({
        "add": [PROGRAMS["passed"], PROGRAMS["NameError"], PROGRAMS["passed"], PROGRAMS["KeyError"]],
        "mul": ["def mul(a, b):\n    return a + b\n"],
    })
    summary, results = evaluate([TASK, MUL], sampler, executor, samples=4, ks=[1, 2], output_dir=tmp_path,
                                wave_tasks=1, progress=False)
    assert sampler.batches == [4, 4]  # one generate call per wave, all samples of its tasks together
    assert [r.correct for r in results] == [2, 0]
    expected_p1 = (pass_at_k(4, 2, 1) + 0) / 2
    assert summary.pass_at_k == {"1": pytest.approx(expected_p1), "2": pytest.approx(pass_at_k(4, 2, 2) / 2)}
    assert summary.solved == 1
    assert summary.error_types == {"AssertionError": 4, "NameError": 1, "KeyError": 1}

    lines = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert [line["task_id"] for line in lines] == ["add", "mul"]
    assert [s["error_type"] for s in lines[0]["samples"]] == [None, "NameError", None, "KeyError"]
    assert "c" in lines[0]["samples"][1]["message"]  # NameError names the missing variable
    assert EvalSummary.load(tmp_path / "summary.json") == summary

    text = format_summary(summary)
    assert "pass@1: 25.00%" in text and "FileNotFoundError" in text  # the paper's four are always listed


def test_evaluate_rejects_bad_k(executor):
    with pytest.raises(ConfigError, match="between 1 and the number of samples"):
        evaluate([TASK], CyclingSampler({"add": ["x"]}), executor, samples=2, ks=[5], progress=False)


@pytest.mark.timeout(120)
def test_eval_command_with_a_script(tmp_path, capsys):
    tasks = tmp_path / "tasks.jsonl"
    write_tasks([TASK, MUL], tasks)
    script = tmp_path / "script.jsonl"
    script.write_text(
        json.dumps({"task_id": "add", "responses": [f"```python\n{PROGRAMS['passed']}```"]}) + "\n"
        + json.dumps({"task_id": "mul", "responses": [f"```python\n{PROGRAMS['SyntaxError']}```"]}) + "\n"
    )
    out = tmp_path / "eval"
    code = main(["eval", "--tasks", str(tasks), "--sampler", "scripted", "--script", str(script), "-o", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "pass@1: 50.00%" in printed and "SyntaxError" in printed
    assert json.loads((out / "summary.json").read_text())["error_types"] == {"SyntaxError": 1}

    code = main(["eval", "--tasks", str(tasks), "--sampler", "scripted", "--script", str(script),
                 "-o", str(out), "--task-ids", "mul"])
    assert code == 0
    assert json.loads((out / "summary.json").read_text())["tasks"] == 1


@pytest.mark.parametrize("extra, message", [
    (["--samples", "3"], "identical greedy"),
    (["--samples", "2", "--temperature", "0.5", "--k", "3"], "between 1 and --samples"),
    (["--task-ids", "nope"], "nope not among"),
    (["--k", "one"], "comma-separated integers"),
])
def test_eval_command_errors_are_one_line(tmp_path, capsys, extra, message):
    tasks = tmp_path / "tasks.jsonl"
    write_tasks([TASK], tasks)
    code = main(["eval", "--tasks", str(tasks), "--sampler", "scripted", "--script", str(tmp_path / "none.jsonl"),
                 "-o", str(tmp_path / "out"), *extra])
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err
