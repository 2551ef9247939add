"""`sandbox run`: JSON result on stdout, exit status by outcome, one-line errors naming the field."""

from __future__ import annotations

import argparse
import json

import pytest

from sandbox.commands import run as run_command


def sandbox_run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="sandbox")
    run_command.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["run", *argv])
    return args.func(args)


@pytest.fixture
def program(tmp_path):
    path = tmp_path / "prog.py"
    path.write_text("def add(a, b):\n    return a + b\n")
    return path


def write_json(path, value):
    path.write_text(json.dumps(value))
    return path


def test_passing_run_prints_json(program, tmp_path, capsys):
    tests = write_json(tmp_path / "t.json", [{"kind": "call", "entry_point": "add", "args": [1, 2], "expected": 3}])
    assert sandbox_run([str(program), "--tests", str(tests), "--time-s", "2"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["passed"] and result["tests"][0]["verdict"] == "pass"


def test_failing_run_and_test_file(program, tmp_path, capsys):
    tests = write_json(tmp_path / "t.json", {"tests": [{"kind": "assert", "code": "assert add(1, 1) == 3"}]})
    assert sandbox_run([str(program), "--tests", str(tests)]) == 1
    assert json.loads(capsys.readouterr().out)["tests"][0]["verdict"] == "fail"
    test_file = tmp_path / "test_prog.py"
    test_file.write_text("from solution import add\n\ndef test_add():\n    assert add(2, 2) == 4\n")
    assert sandbox_run([str(program), "--test-file", str(test_file)]) == 0
    assert json.loads(capsys.readouterr().out)["tests"][0]["id"] == "test_add"


@pytest.mark.parametrize("tests, flags, field", [
    ([{"kind": "call", "entry_point": "add"}], ["--time-s", "1000"], "limits.time_s"),
    ([{"kind": "stdio"}], [], "tests.0.stdio.expected_stdout"),
    ([], [], "tests"),
    ([{"kind": "call", "entry_point": "add"}], ["--memory-mb", "1"], "limits.memory_mb"),
])
def test_bad_input_is_one_line_exit_2(program, tmp_path, capsys, tests, flags, field):
    path = write_json(tmp_path / "t.json", tests)
    assert sandbox_run([str(program), "--tests", str(path), *flags]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and field in err and "Traceback" not in err


def test_unreadable_files_are_one_line_errors(program, tmp_path, capsys):
    assert sandbox_run([str(tmp_path / "missing.py"), "--tests", str(tmp_path / "t.json")]) == 2
    assert "program: cannot read" in capsys.readouterr().err
    bad = tmp_path / "bad.json"
    bad.write_text("{nope")
    assert sandbox_run([str(program), "--tests", str(bad)]) == 2
    assert "tests:" in capsys.readouterr().err
