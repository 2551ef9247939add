"""The benchmark commands end to end on the fixtures: `tasks <benchmark>`, `grade`, `eval --combine`,
`import-pairs`, provenance and the contamination warning."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from iterpref.cli import main
from iterpref.evaluate import contamination_warning, overlapping_tasks, prompt_fingerprint, provenance
from iterpref.records import Task, read_json
from iterpref.tasks import load_tasks
from iterpref.tasks.paper_pairs import code_region, import_pairs
from iterpref.tasks.prompts import EVALPLUS_INSTRUCTION, LCB_SYSTEM, harness_prompt

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def test_tasks_command_exports_each_benchmark(tmp_path, capsys):
    cases = {"humaneval+": FIXTURES / "evalplus" / "HumanEvalPlus-fixture.jsonl",
             "mbpp+": FIXTURES / "evalplus" / "MbppPlus-fixture.jsonl",
             "bigcodebench": FIXTURES / "bigcodebench" / "BigCodeBench-fixture.jsonl",
             "livecodebench": FIXTURES / "livecodebench"}
    for name, source in cases.items():
        out = tmp_path / f"{name}.jsonl"
        assert main(["tasks", name, "--source", str(source), "-o", str(out), "--limit", "4"]) == 0
        assert len(load_tasks(out)) == 4
    assert main(["tasks", "bigcodebench", "--source", str(cases["bigcodebench"]), "--time-factor", "2",
                 "-o", str(tmp_path / "x.jsonl")]) == 2
    assert "--time-factor do not apply to bigcodebench" in capsys.readouterr().err
    assert main(["tasks", "mbpp+", "--source", str(tmp_path / "missing.jsonl"), "-o", str(tmp_path / "y.jsonl")]) == 2
    assert "MbppPlus.jsonl.gz" in capsys.readouterr().err


def test_grade_writes_per_sample_verdicts_and_a_summary(tmp_path, capsys):
    samples = tmp_path / "samples.jsonl"
    problems = [json.loads(line) for line in (FIXTURES / "evalplus" / "HumanEvalPlus-fixture.jsonl").open()]
    by_id = {p["task_id"]: p for p in problems}
    lines = [{"task_id": "HumanEval/0", "completion": by_id["HumanEval/0"]["canonical_solution"]},
             {"task_id": "HumanEval/0", "solution": "def has_close_elements(numbers, threshold):\n    return False\n"},
             {"task_id": "HumanEval/7", "solution": by_id["HumanEval/7"]["prompt"] + "    return [s for s in strings if substring.lower() in s.lower()]\n"}]
    samples.write_text("".join(json.dumps(line) + "\n" for line in lines))
    source = FIXTURES / "evalplus" / "HumanEvalPlus-fixture.jsonl"
    assert main(["grade", str(samples), "--tasks", "humaneval+", "--source", str(source)]) == 0
    graded = [json.loads(line) for line in (tmp_path / "samples_graded.jsonl").read_text().splitlines()]
    assert [(g["base_status"], g["plus_status"]) for g in graded] == [("pass", "pass"), ("fail", "fail"),
                                                                       ("pass", "fail")]
    assert graded[1]["failing_test"] == "base" and graded[1]["case"] is not None
    summary = read_json(tmp_path / "samples_graded.summary.json")
    assert summary["pass_at_k"]["1"] == pytest.approx(0.25) and summary["base_pass_at_k"]["1"] == pytest.approx(0.75)
    assert summary["provenance"]["data_sha256"] and summary["provenance"]["runner_sha256"]
    assert "pass@1: 25.00%  (base inputs only: 75.00%)" in capsys.readouterr().out


def test_grade_refuses_samples_of_unknown_tasks(tmp_path, capsys):
    samples = tmp_path / "s.jsonl"
    samples.write_text(json.dumps({"task_id": "Nope/1", "solution": "x = 1"}) + "\n")
    source = FIXTURES / "livecodebench"
    assert main(["grade", str(samples), "--tasks", "livecodebench", "--source", str(source)]) == 2
    assert "Nope/1" in capsys.readouterr().err


def _summary(folder: Path, tasks: str, split: str, all_: float, base: float | None, errors: dict) -> None:
    folder.mkdir()
    (folder / "summary.json").write_text(json.dumps({
        "format_version": 1, "tasks": 3, "samples_per_task": 1, "pass_at_k": {"1": all_}, "solved": 1,
        "error_types": errors, "settings": {"tasks": tasks, "split": split, "sampler": "scripted"},
        "base_pass_at_k": {"1": base} if base is not None else None, "provenance": {"model": "m"}}))


def test_combine_puts_evaluations_in_the_papers_columns(tmp_path, capsys):
    _summary(tmp_path / "he", "humaneval+", "complete", 0.5, 0.75, {"AssertionError": 2})
    _summary(tmp_path / "bcbi", "bigcodebench", "instruct", 0.25, None, {"NameError": 1})
    _summary(tmp_path / "lcb", "livecodebench", "complete", 0.1, None, {})
    out = tmp_path / "table"
    assert main(["eval", "--combine", str(tmp_path / "he"), str(tmp_path / "bcbi"), str(tmp_path / "lcb"),
                 "-o", str(out)]) == 0
    table = read_json(out / "table.json")
    assert table["columns"] == ["HE", "HE+", "MBPP", "MBPP+", "BCB-Full Complete", "BCB-Full Instruct",
                                "BCB-Hard Complete", "BCB-Hard Instruct", "LCB"]
    assert table["values"]["HE"] == 75.0 and table["values"]["HE+"] == 50.0
    assert table["values"]["BCB-Full Instruct"] == 25.0 and table["values"]["BCB-Full Complete"] is None
    assert table["average"] == pytest.approx((75 + 50 + 25 + 10) / 4)
    markdown = (out / "table.md").read_text()
    assert "| m | 75.0 | 50.0 | - | - | - | 25.0 | - | - | 10.0 | 40.0 |" in markdown
    assert "AssertionError 2" in markdown
    _summary(tmp_path / "he2", "humaneval+", "complete", 0.5, 0.75, {})
    assert main(["eval", "--combine", str(tmp_path / "he"), str(tmp_path / "he2"), "-o", str(out)]) == 2
    assert "already filled" in capsys.readouterr().err


def test_each_harness_has_its_own_prompt():
    task = Task(task_id="t", prompt="def f():\n    pass\n", tests=[])
    assert harness_prompt("humaneval+")(task).messages[0]["content"].startswith(EVALPLUS_INSTRUCTION)
    assert harness_prompt("bigcodebench", "instruct")(task).messages[0]["content"] == task.prompt
    lcb = harness_prompt("livecodebench")(Task(task_id="x", prompt="Read N.", tests=[]))
    assert lcb.messages[0]["content"] == LCB_SYSTEM and "Read the inputs from stdin" in lcb.messages[1]["content"]
    assert harness_prompt("my_tasks.jsonl") is None


def test_contamination_is_found_by_normalised_prompt():
    train = [Task(task_id="a", prompt="Write  a function   ADD(x, y)!", tests=[])]
    evaluated = [Task(task_id="b", prompt="write a function add(x,y)", tests=[]),
                 Task(task_id="c", prompt="something else", tests=[])]
    assert prompt_fingerprint(train[0].prompt) == prompt_fingerprint(evaluated[0].prompt)
    assert overlapping_tasks(train, evaluated) == [("a", "b")]
    assert "1 of the 2 evaluated problems" in contamination_warning(train, evaluated)
    assert contamination_warning(train, evaluated[1:]) is None


def test_provenance_names_version_data_hash_and_runner():
    record = provenance("mbpp+", str(FIXTURES / "evalplus" / "MbppPlus-fixture.jsonl"), grader={"split": "complete"},
                        model="hf:x", sampling={"temperature": 0})
    assert record["iterpref_version"] and len(record["data_sha256"]) == 64 and len(record["runner_sha256"]) == 64
    assert record["model"] == "hf:x" and record["grader"] == {"split": "complete"}


def test_import_pairs_keeps_replies_and_diffs_the_code(tmp_path, capsys):
    source = FIXTURES / "paper_pairs" / "iterpref_pairs.json"
    pairs, summary = import_pairs(source)
    assert (summary.records, summary.pairs, summary.skipped) == (4, 3, {"same_code": 1})
    first = pairs[0]
    assert first.chosen.startswith("Here is the fixed function:") and first.rejected.endswith("```")
    assert first.rejected.split("\n")[first.rejected_lines[0] - 1] == "    return a - b"
    assert first.chosen.split("\n")[first.chosen_lines[0] - 1] == "    return a + b"
    assert pairs[1].rejected_lines == [] and len(pairs[1].chosen_lines) == 2  # a fix that only inserts
    assert code_region("no fences here") == ("no fences here", 0)
    out = tmp_path / "pairs.jsonl"
    assert main(["import-pairs", str(source), "-o", str(out)]) == 0
    assert len(out.read_text().splitlines()) == 3
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"prompt": "p", "chosen": "c"}]))
    assert main(["import-pairs", str(bad), "-o", str(out)]) == 2
    assert "record 0: field `rejected`" in capsys.readouterr().err


def test_calibrate_sets_limits_from_the_reference(tmp_path, capsys):
    tasks = tmp_path / "tasks.jsonl"
    rows = [{"task_id": "ok", "prompt": "p", "reference": "def f():\n    return 1\n",
             "tests": [{"kind": "call", "entry_point": "f", "expected": 1}]},
            {"task_id": "wrong", "prompt": "p", "reference": "def f():\n    return 2\n",
             "tests": [{"kind": "call", "entry_point": "f", "expected": 1}], "limits": {"time_s": 7}},
            {"task_id": "none", "prompt": "p", "tests": [{"kind": "call", "entry_point": "f", "expected": 1}]}]
    tasks.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "calibrated.jsonl"
    assert main(["tasks", "calibrate", str(tasks), "-o", str(out), "--factor", "4", "--floor", "1.5"]) == 0
    calibrated = {t.task_id: t for t in load_tasks(out)}
    assert calibrated["ok"].limits["time_s"] == 1.5  # a trivial reference: the floor
    assert calibrated["wrong"].limits == {"time_s": 7} and calibrated["none"].limits is None
    assert "kept the limits of wrong: its reference solution does not pass" in capsys.readouterr().out


def test_eval_on_a_benchmark_uses_its_prompt_and_reports_both_evalplus_figures(tmp_path, capsys):
    source = FIXTURES / "evalplus" / "HumanEvalPlus-fixture.jsonl"
    problems = {p["task_id"]: p for p in map(json.loads, source.open())}
    replies = {"HumanEval/0": "```python\n" + problems["HumanEval/0"]["prompt"] + problems["HumanEval/0"]["canonical_solution"] + "```",
               "HumanEval/2": "```python\ndef truncate_number(number):\n    return round(number - int(number), 2)\n```"}
    script = tmp_path / "script.jsonl"
    script.write_text("".join(json.dumps({"task_id": k, "responses": [v]}) + "\n" for k, v in replies.items()))
    train = tmp_path / "train.jsonl"
    train.write_text(json.dumps({"task_id": "mine", "prompt": problems["HumanEval/2"]["prompt"],
                                 "tests": [{"kind": "assert", "code": "pass"}]}) + "\n")
    out = tmp_path / "eval"
    assert main(["eval", "--tasks", "humaneval+", "--source", str(source), "--task-ids", "HumanEval/0,HumanEval/2",
                 "--sampler", "scripted", "--script", str(script), "--train-tasks", str(train), "-o", str(out)]) == 0
    captured = capsys.readouterr()
    assert "1 of the 2 evaluated problems also appear among the training tasks" in captured.err
    summary = read_json(out / "summary.json")
    assert summary["pass_at_k"]["1"] == 0.5 and summary["base_pass_at_k"]["1"] == 0.5
    assert summary["provenance"]["benchmark"] == "humaneval+" and summary["provenance"]["model"].startswith("scripted")
    assert summary["settings"]["prompt"] == "harness"
    lines = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert lines[1]["samples"][0]["base_passed"] is False and "case" in lines[1]["samples"][0]["message"]


def test_grade_reports_network_tasks_apart(tmp_path):
    data = FIXTURES / "bigcodebench" / "BigCodeBench-fixture.jsonl"
    problems = {p["task_id"]: p for p in map(json.loads, data.open())}
    samples = tmp_path / "s.jsonl"
    samples.write_text("".join(json.dumps({"task_id": t, "solution": problems[t]["complete_prompt"] + body}) + "\n"
                               for t, body in (("BigCodeBench/18", "    return '0.0.0.0'\n"),
                                               ("BigCodeBench/3", problems["BigCodeBench/3"]["canonical_solution"]))))
    assert main(["grade", str(samples), "--tasks", "bigcodebench", "--source", str(data)]) == 0
    summary = read_json(tmp_path / "s_graded.summary.json")
    assert summary["network_tasks"] == ["BigCodeBench/18"]
    assert summary["pass_at_k"]["1"] == 0.5 and summary["pass_at_k_without_network"]["1"] == 1.0
