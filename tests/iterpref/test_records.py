import json

import pytest

from iterpref.cli import main
from iterpref.errors import DataError
from iterpref.records import (
    FORMAT_VERSION,
    Attempt,
    Pair,
    Task,
    load_records,
    read_json,
    read_jsonl,
    to_json_line,
    write_json,
)
from iterpref.refine import load_trajectories

PAIR = Pair(task_id="t", prompt="p", chosen="a = 1\n", rejected="a = 2\n", rejected_lines=[1], chosen_lines=[1])


def _lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_written_records_lead_with_the_format_version_and_read_back_without_it(tmp_path):
    line = to_json_line(PAIR)
    assert line.startswith('{"format_version": 1, "task_id": "t"') and line.endswith("}\n")
    path = tmp_path / "pairs.jsonl"
    path.write_text(line + "\n" + line)  # a blank line between records is allowed
    assert [(number, record) for number, record in read_jsonl(path)][1][0] == 3
    assert load_records(path, Pair) == [PAIR, PAIR]


def test_records_from_before_versioning_are_read(tmp_path):
    path = tmp_path / "old.jsonl"
    path.write_text(json.dumps(PAIR.__dict__) + "\n")
    assert load_records(path, Pair) == [PAIR]
    summary = tmp_path / "old.summary.json"
    summary.write_text(json.dumps({"pairs": 1}))
    assert read_json(summary) == {"pairs": 1}


def test_a_newer_version_is_refused_naming_file_line_version_and_what_to_do(tmp_path):
    path = tmp_path / "pairs.jsonl"
    newer = dict(json.loads(to_json_line(PAIR)), format_version=FORMAT_VERSION + 1)
    path.write_text(to_json_line(PAIR) + json.dumps(newer) + "\n")
    with pytest.raises(DataError) as info:
        load_records(path, Pair)
    message = str(info.value)
    assert message.startswith(f"{path}:2: format_version {FORMAT_VERSION + 1} was written by a newer iterpref")
    assert "upgrade iterpref" in message
    summary = tmp_path / "summary.json"
    summary.write_text(json.dumps({"format_version": FORMAT_VERSION + 1, "pairs": 1}))
    with pytest.raises(DataError, match=rf"{summary}: format_version {FORMAT_VERSION + 1} .*upgrade iterpref"):
        read_json(summary)


@pytest.mark.parametrize("version", ["1", 0, -1, True, 1.5])
def test_a_version_that_is_no_positive_integer_is_an_error(tmp_path, version):
    path = tmp_path / "x.jsonl"
    path.write_text(json.dumps({"format_version": version, "task_id": "a"}) + "\n")
    with pytest.raises(DataError, match=r"x.jsonl:1: format_version must be a positive integer"):
        list(read_jsonl(path))


def test_reader_errors_name_file_and_line(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text(to_json_line(PAIR) + '{"task_id": "t", "color": 1}\n')
    with pytest.raises(DataError, match=r"p.jsonl:2: unknown field\(s\) \['color'\] for Pair"):
        load_records(path, Pair)
    path.write_text("[1, 2]\n")
    with pytest.raises(DataError, match=r"p.jsonl:1: expected a JSON object, got list"):
        load_records(path, Pair)
    path.write_bytes(b'{"task_id": "\xff"}\n')
    with pytest.raises(DataError, match="p.jsonl: not UTF-8 text"):
        load_records(path, Pair)
    with pytest.raises(DataError, match="missing.jsonl: no such file"):
        load_records(tmp_path / "missing.jsonl", Pair)
    with pytest.raises(DataError, match="missing.json: no such file"):
        read_json(tmp_path / "missing.json")


def test_complete_lines_only_leaves_out_a_last_line_being_written(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_text(to_json_line(PAIR) + '{"task_id": "t", "pro')
    assert len(list(read_jsonl(path, complete_lines_only=True))) == 1
    with pytest.raises(DataError, match=r"t.jsonl:2: not valid JSON"):
        list(read_jsonl(path))  # a file that is not being appended to has no excuse for a torn line


def test_json_files_carry_the_version_at_the_top(tmp_path):
    path = tmp_path / "s.json"
    write_json(path, {"pairs": 3})
    assert json.loads(path.read_text()) == {"format_version": FORMAT_VERSION, "pairs": 3}
    assert read_json(path) == {"pairs": 3}


def test_every_file_the_cli_writes_carries_the_version(tmp_path, capsys):
    tasks = tmp_path / "tasks.jsonl"
    assert main(["tasks", "humaneval", "-o", str(tasks), "--limit", "2"]) == 0
    assert {line["format_version"] for line in _lines(tasks)} == {FORMAT_VERSION}
    trajectories = tmp_path / "traj.jsonl"
    attempts = [Attempt(task_id="a", round=r, code=f"x = {r}\n", passed=r == 1, result={},
                        messages=[{"role": "user", "content": "solve a"}]) for r in range(2)]
    trajectories.write_text("".join(to_json_line(a) for a in attempts))
    pairs = tmp_path / "pairs.jsonl"
    assert main(["pairs", str(trajectories), "-o", str(pairs), "--max-tokens", "0"]) == 0
    assert [line["format_version"] for line in _lines(pairs)] == [FORMAT_VERSION]
    summary = tmp_path / "pairs.summary.json"
    assert json.loads(summary.read_text())["format_version"] == FORMAT_VERSION
    stats = tmp_path / "stats.json"
    assert main(["stats", str(trajectories), "--pairs-summary", str(summary), "--json", str(stats)]) == 0
    written = json.loads(stats.read_text())
    assert written["format_version"] == FORMAT_VERSION and "format_version" not in written["pairs"]


def test_the_cli_refuses_newer_files_in_one_line(tmp_path, capsys):
    trajectories = tmp_path / "traj.jsonl"
    attempt = json.loads(to_json_line(Attempt(task_id="a", round=0, code="", passed=True, result={})))
    trajectories.write_text(json.dumps({**attempt, "format_version": 99}) + "\n")
    assert main(["stats", str(trajectories)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith(f"iterpref stats: error: {trajectories}:1: format_version 99 was written by a newer")
    with pytest.raises(DataError, match="format_version 99"):
        load_trajectories(trajectories)
    tasks = tmp_path / "tasks.jsonl"
    tasks.write_text(to_json_line(Task(task_id="a", prompt="p", tests=[{"kind": "assert", "code": "pass"}]))
                     .replace('"format_version": 1', '"format_version": 99'))
    assert main(["tasks", "check", str(tasks)]) == 2
    assert "format_version 99 was written by a newer iterpref" in capsys.readouterr().err
