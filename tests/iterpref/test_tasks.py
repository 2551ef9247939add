import json

import pytest

from iterpref.cli import main
from iterpref.errors import DataError
from iterpref.tasks import humaneval_tasks, load_tasks, to_request, write_tasks


def _write(path, *records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def test_humaneval_export_round_trips_and_builds_requests(tmp_path):
    tasks = humaneval_tasks()
    assert len(tasks) == 164
    first = tasks[0]
    assert first.task_id == "HumanEval/0" and first.entry_point == "has_close_elements"
    assert first.tests[0]["code"].rstrip().endswith("check(has_close_elements)")
    request = to_request(first, first.reference)
    assert request.tests[0].kind == "assert" and request.limits.time_s == 5.0
    path = tmp_path / "tasks.jsonl"
    assert write_tasks(tasks, path) == 164
    assert load_tasks(path) == tasks


def test_cli_exports_humaneval(tmp_path, capsys):
    out = tmp_path / "he.jsonl"
    assert main(["tasks", "humaneval", "-o", str(out), "--limit", "3"]) == 0
    assert [t.task_id for t in load_tasks(out)] == ["HumanEval/0", "HumanEval/1", "HumanEval/2"]


def test_every_test_kind_and_test_file_are_accepted(tmp_path):
    path = _write(
        tmp_path / "t.jsonl",
        {"task_id": "mbpp", "prompt": "p", "tests": [{"kind": "assert", "code": "assert f(1) == 2"}]},
        {"task_id": "call", "prompt": "p", "entry_point": "f",
         "tests": [{"kind": "call", "entry_point": "f", "args": [1], "expected": 2}]},
        {"task_id": "io", "prompt": "p", "tests": [{"kind": "stdio", "stdin": "1\n", "expected_stdout": "2\n"}]},
        {"task_id": "file", "prompt": "p",
         "test_file": "import solution\ndef test_f():\n    assert solution.f(1) == 2\n"},
    )
    assert [t.task_id for t in load_tasks(path)] == ["mbpp", "call", "io", "file"]


@pytest.mark.parametrize(
    "record, message",
    [
        ({"task_id": "a", "prompt": "p", "tests": [{"kind": "call", "args": []}]}, "field `tests[0].entry_point`"),
        ({"task_id": "a", "prompt": "p", "tests": [{"kind": "sql", "code": ""}]}, "field `tests[0]`"),
        ({"task_id": "a", "prompt": "p", "tests": []}, "`tests` is empty"),
        ({"task_id": "a", "prompt": "p"}, "exactly one of `tests`"),
        ({"task_id": "a", "prompt": "p", "tests": [{"kind": "assert", "code": "x"}], "limits": {"time_s": 0}},
         "field `limits.time_s`"),
        ({"task_id": "", "prompt": "p", "tests": [{"kind": "assert", "code": "x"}]}, "field `task_id`"),
        ({"task_id": "a", "prompt": "p", "tests": [{"kind": "assert", "code": "x"}], "solution": "x"},
         "unknown field(s) ['solution']"),
    ],
)
def test_bad_task_names_file_line_and_field(tmp_path, record, message):
    good = {"task_id": "ok", "prompt": "p", "tests": [{"kind": "assert", "code": "pass"}]}
    path = _write(tmp_path / "t.jsonl", good, record)
    with pytest.raises(DataError) as info:
        load_tasks(path)
    assert str(info.value).startswith(f"{path}:2: ")
    assert message in str(info.value)


def test_duplicate_ids_bad_json_and_empty_files(tmp_path):
    good = {"task_id": "ok", "prompt": "p", "tests": [{"kind": "assert", "code": "pass"}]}
    with pytest.raises(DataError, match=r":2: task_id 'ok' repeats line 1"):
        load_tasks(_write(tmp_path / "dup.jsonl", good, good))
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(good) + "\n{not json\n")
    with pytest.raises(DataError, match=r"bad.jsonl:2: not valid JSON"):
        load_tasks(bad)
    with pytest.raises(DataError, match="no tasks"):
        load_tasks(_write(tmp_path / "empty.jsonl"))


def test_cli_check_prints_one_line_error(tmp_path, capsys):
    path = _write(tmp_path / "t.jsonl", {"task_id": "a", "prompt": "p", "tests": [{"kind": "call"}]})
    assert main(["tasks", "check", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "t.jsonl:1: field `tests[0].entry_point`" in err
