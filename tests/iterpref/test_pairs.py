import json
from collections import Counter

import pytest

from iterpref.cli import main
from iterpref.pairs import build_pairs
from iterpref.records import Attempt, Pair, load_records, to_json_line

GOOD = "def f(x):\n    y = x + 1\n    return y\n"
BAD = "def f(x):\n    y = x - 1\n    return y\n"


def _trajectory(task_id, *codes_and_passes):
    return [Attempt(task_id=task_id, round=r, code=code, passed=ok, result={},
                    messages=[{"role": "system", "content": "s"}, {"role": "user", "content": f"solve {task_id}"}])
            for r, (code, ok) in enumerate(codes_and_passes)]


def _build(trajectories, **options):
    prompts = {t: f"solve {t}" for t in trajectories}
    return build_pairs(trajectories, prompts, **options)


def test_pair_is_final_pass_against_failing_version_with_diff_lines():
    trajectories = {"t": _trajectory("t", (BAD, False), (GOOD, True))}
    pairs, summary = _build(trajectories)
    assert pairs == [Pair(task_id="t", prompt="solve t", chosen=GOOD, rejected=BAD, rejected_lines=[2],
                          chosen_lines=[2], chosen_round=1, rejected_round=0)]
    assert summary.pairs == 1 and summary.candidates == 1 and summary.rejected_lines == {1: 1}


def test_tasks_without_failing_version_or_without_pass_give_no_pair():
    trajectories = {
        "first_try": _trajectory("first_try", (GOOD, True)),
        "never": _trajectory("never", (BAD, False), (BAD.replace("1", "2"), False)),
    }
    pairs, summary = _build(trajectories)
    assert pairs == [] and summary.passed_first_try == 1 and summary.never_passed == 1 and summary.candidates == 0


def test_select_first_last_and_seeded_random():
    bads = [BAD.replace("- 1", f"- {k}") for k in range(1, 5)]
    trajectories = {f"t{i}": _trajectory(f"t{i}", *[(b, False) for b in bads], (GOOD, True)) for i in range(40)}
    first, _ = _build(trajectories, select="first")
    last, _ = _build(trajectories, select="last")
    assert {p.rejected_round for p in first} == {0} and {p.rejected_round for p in last} == {3}
    random_a, _ = _build(trajectories, select="random", seed=1)
    random_b, _ = _build(trajectories, select="random", seed=1)
    random_c, _ = _build(trajectories, select="random", seed=2)
    assert random_a == random_b and random_a != random_c
    # 40 tasks over 4 candidates: every round shows up, so the choice really varies.
    assert set(Counter(p.rejected_round for p in random_a)) == {0, 1, 2, 3}
    # The choice for a task does not depend on which other tasks are present.
    alone, _ = _build({"t7": trajectories["t7"]}, select="random", seed=1)
    assert alone[0] == next(p for p in random_a if p.task_id == "t7")


def test_each_filter_drops_and_counts():
    long_bad = "def f(x):\n" + "".join(f"    a{i} = {i}\n" for i in range(25)) + "    return x\n"
    trajectories = {
        "same_ast": _trajectory("same_ast", ("def f(x):\n    return x\n", False),
                                ("def f(x):\n\n    return (x)\n", True)),
        # The fix replaced a comment with code: the rejected side's changed line is only that comment.
        "comment": _trajectory("comment", ("def f(x):\n    # TODO: negatives\n    return x\n", False),
                               ("def f(x):\n    x = abs(x)\n    return x\n", True)),
        "big": _trajectory("big", (long_bad, False), ("def f(x):\n    return x\n", True)),
        "long": _trajectory("long", (BAD + "#" * 400 + "\n", False), (GOOD + "#" * 400 + "\n", True)),
        "kept": _trajectory("kept", (BAD, False), (GOOD, True)),
    }
    pairs, summary = _build(trajectories, count_tokens=len, max_tokens=300)
    assert [p.task_id for p in pairs] == ["kept"]
    assert summary.dropped == {"same_ast": 1, "comment_only": 1, "too_many_lines": 1, "too_long": 1}
    _, relaxed = _build(trajectories, max_lines=100)
    assert relaxed.pairs == 3 and relaxed.dropped["too_long"] == 0


def test_pure_insertion_fix_is_kept_through_its_anchor_lines():
    missing = "def f(x):\n    return y\n"
    fixed = "def f(x):\n    y = x + 1\n    return y\n"
    pairs, summary = _build({"t": _trajectory("t", (missing, False), (fixed, True))})
    assert summary.pairs == 1 and pairs[0].rejected_lines == [] and pairs[0].chosen_lines == [2]


def test_cli_writes_pairs_that_datasets_loads_and_a_summary(tmp_path, capsys):
    datasets = pytest.importorskip("datasets")
    path = tmp_path / "traj.jsonl"
    with open(path, "w") as handle:
        for task in ("a", "b"):
            for attempt in _trajectory(task, (BAD, False), (GOOD, True)):
                handle.write(to_json_line(attempt))
        for attempt in _trajectory("c", (GOOD, True)):
            handle.write(to_json_line(attempt))
    out = tmp_path / "pairs.jsonl"
    assert main(["pairs", str(path), "-o", str(out), "--select", "last"]) == 0
    assert "2 pairs from 2 candidates" in capsys.readouterr().out
    assert [p.task_id for p in load_records(out, Pair)] == ["a", "b"]
    summary = json.loads((tmp_path / "pairs.summary.json").read_text())
    assert summary["pairs"] == 2 and summary["passed_first_try"] == 1 and summary["settings"]["select"] == "last"
    loaded = datasets.load_dataset("json", data_files=str(out), split="train")
    assert loaded.num_rows == 2 and loaded[0]["chosen"] == GOOD and loaded[0]["rejected_lines"] == [2]
    assert loaded[0]["prompt"] == "solve a"


def test_cli_reports_bad_trajectory_file(tmp_path, capsys):
    assert main(["pairs", str(tmp_path / "missing.jsonl"), "-o", str(tmp_path / "p.jsonl")]) == 2
    assert "no such file" in capsys.readouterr().err
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"task_id": "a", "round": 1, "code": "", "passed": true, "result": {}}\n')
    assert main(["pairs", str(bad), "-o", str(tmp_path / "p.jsonl")]) == 2
    assert "rounds must run 0, 1, 2" in capsys.readouterr().err


def test_pairs_from_a_real_refine_run(tmp_path, capsys):
    from iterpref.refine import refine
    from iterpref.samplers.scripted import ScriptedSampler

    local = pytest.importorskip("sandbox.local")
    from iterpref.records import Task

    task = Task(task_id="clip", prompt="def clip(x, lo, hi): ...", entry_point="clip",
                tests=[{"kind": "call", "entry_point": "clip", "args": [5, 0, 3], "expected": 3},
                       {"kind": "call", "entry_point": "clip", "args": [-1, 0, 3], "expected": 0}])
    versions = ["def clip(x, lo, hi):\n    return x\n",
                "def clip(x, lo, hi):\n    return min(x, hi)\n",
                "def clip(x, lo, hi):\n    return max(lo, min(x, hi))\n"]
    sampler = ScriptedSampler({"clip": [f"```python\n{v}```" for v in versions]})
    trajectories = tmp_path / "traj.jsonl"
    refine([task], sampler, local.LocalExecutor(), trajectories, max_rounds=5, progress=False)
    out = tmp_path / "pairs.jsonl"
    assert main(["pairs", str(trajectories), "-o", str(out), "--select", "first"]) == 0
    (pair,) = load_records(out, Pair)
    assert (pair.rejected, pair.chosen) == (versions[0], versions[2])
    assert (pair.rejected_round, pair.chosen_round, pair.rejected_lines, pair.chosen_lines) == (0, 2, [2], [2])
    assert pair.prompt.startswith("Write the complete Python function `clip`")


def test_cli_token_filter_uses_the_tokenizer(tmp_path, capsys):
    path = tmp_path / "traj.jsonl"
    path.write_text("".join(to_json_line(a) for a in _trajectory("a", (BAD, False), (GOOD, True))))
    out = tmp_path / "pairs.jsonl"
    # "solve a" plus either version is about 20 SmolLM2 tokens: 10 is too few, 64 is enough.
    assert main(["pairs", str(path), "-o", str(out), "--max-tokens", "10"]) == 0
    assert json.loads((tmp_path / "pairs.summary.json").read_text())["dropped"]["too_long"] == 1
    assert main(["pairs", str(path), "-o", str(out), "--max-tokens", "64"]) == 0
    assert json.loads((tmp_path / "pairs.summary.json").read_text())["pairs"] == 1
    assert main(["pairs", str(path), "-o", str(out), "--tokenizer", str(tmp_path / "nope")]) == 2
    assert "cannot load a tokenizer" in capsys.readouterr().err


def _attempt(task_id, round_, sample, parent, code, ok):
    return Attempt(task_id=task_id, round=round_, code=code, passed=ok, result={}, sample=sample, parent=parent,
                   messages=[{"role": "user", "content": f"solve {task_id}"}])


def test_rejected_sides_are_the_passing_attempts_failing_ancestors_only():
    bad = [f"def f(x):\n    y = x - {k}\n    return y\n" for k in range(4)]
    attempts = [
        _attempt("t", 0, 0, None, bad[0], False), _attempt("t", 0, 1, None, bad[1], False),
        _attempt("t", 1, 0, 1, bad[2], False), _attempt("t", 1, 1, 0, bad[3], False),
        _attempt("t", 2, 0, 0, GOOD, True), _attempt("t", 2, 1, 0, GOOD.replace("1", "2"), True),
    ]
    # The lineage of the first pass (2, 0) is (1, 0) <- (0, 1); (0, 0) and (1, 1) are siblings, never used.
    for select, expected in (("first", [bad[1]]), ("last", [bad[2]])):
        pairs, _ = _build({"t": attempts}, select=select)
        assert [p.rejected for p in pairs] == expected and pairs[0].chosen == GOOD
    pairs, summary = _build({"t": attempts}, pairs_per_task=5, select="random", seed=3)
    assert sorted(p.rejected for p in pairs) == sorted([bad[1], bad[2]])
    assert summary.candidates == 2 and summary.pairs == 2 and summary.tasks_with_pairs == 1
    assert summary.settings["pairs_per_task"] == 5
    with pytest.raises(Exception, match="pairs-per-task"):
        _build({"t": attempts}, pairs_per_task=0)
