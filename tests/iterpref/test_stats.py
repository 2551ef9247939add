import json

import pytest

from iterpref.cli import main
from iterpref.errors import DataError
from iterpref.records import Attempt, to_json_line
from iterpref.stats import format_table, run_stats


def _attempts(task_id, passes):
    return [Attempt(task_id=task_id, round=r, code="x = 1\n", passed=ok, result={}) for r, ok in enumerate(passes)]


TRAJECTORIES = {
    "a": _attempts("a", [True]),
    "b": _attempts("b", [False, True]),
    "c": _attempts("c", [False, False, False, True]),
    "d": _attempts("d", [False, False, False, False]),
}


def test_cumulative_pass_rate_by_round():
    stats = run_stats(TRAJECTORIES)
    assert stats.tasks == 4 and stats.attempts == 11 and stats.max_round == 3
    assert stats.passed_at == {0: 1, 1: 1, 3: 1}
    assert stats.cumulative_pass_rate == [0.25, 0.5, 0.5, 0.75]
    table = format_table(stats)
    assert "    0       1    25.0%" in table and "    3       1    75.0%" in table


def test_pair_summary_gives_filter_counts_and_diff_sizes():
    summary = {"pairs": 3, "candidates": 5, "passed_first_try": 1, "never_passed": 1,
               "dropped": {"same_ast": 2, "comment_only": 0}, "rejected_lines": {"1": 2, "4": 1},
               "chosen_lines": {"2": 3}}
    stats = run_stats(TRAJECTORIES, summary)
    assert stats.diff_sizes["rejected_lines"] == {"pairs": 3, "mean": 2.0, "median": 1.0, "max": 4.0}
    table = format_table(stats)
    assert "pairs: 3 kept of 5 candidates" in table and "dropped same_ast" in table


def test_empty_trajectories_are_an_error():
    with pytest.raises(DataError, match="no trajectories"):
        run_stats({})


def test_cli_prints_table_and_writes_png_and_json(tmp_path, capsys):
    path = tmp_path / "traj.jsonl"
    path.write_text("".join(to_json_line(a) for attempts in TRAJECTORIES.values() for a in attempts))
    png, out = tmp_path / "curve.png", tmp_path / "stats.json"
    assert main(["stats", str(path), "--plot", str(png), "--json", str(out)]) == 0
    assert "cumulative pass rate" in capsys.readouterr().out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    assert json.loads(out.read_text())["cumulative_pass_rate"] == [0.25, 0.5, 0.5, 0.75]
    assert main(["stats", str(tmp_path / "none.jsonl")]) == 2
