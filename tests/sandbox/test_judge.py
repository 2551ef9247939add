"""The runner's judge (``runner._judge``) on crafted outcomes: the verdict and message each raw outcome of a test
gets, without running any program. An outcome is what a supervisor reports: how the test ended (``killed``,
a wait ``status``), the child's ``report``, and what it printed."""

from __future__ import annotations

import marshal
import signal

import pytest

from sandbox import runner
from sandbox.models import TestResult, Verdict

LIMITS = {"time_s": 2.0, "memory_mb": 128, "output_bytes": 1000}
CALL = {"kind": "call", "entry_point": "f", "args": [], "kwargs": {}, "expected": [1, 2.0, {"a": "b"}]}
STDIO = {"kind": "stdio", "stdin": "", "expected_stdout": "1\n2\n", "normalize_whitespace": True}


def exited(code: int) -> int:
    """A wait status for a normal exit with ``code`` (as os.waitpid reports it)."""
    return code << 8


def killed_by(number: int) -> int:
    return number


def outcome(report=None, status=exited(0), killed=None, stdout="", stderr="", **extra) -> dict:
    return {"killed": killed, "status": status, "report": report, "maxrss": 1234, "stdout": stdout,
            "stderr": stderr, "truncated": False, "duration_ms": 5.0, **extra}


def ok(value) -> tuple:
    return ("ok", marshal.dumps(value))


def judge(test, raw) -> dict:
    verdict = runner._judge(test, raw, LIMITS)
    TestResult.model_validate({"id": "t", **verdict})  # whatever the judge says fits the contract
    return verdict


def test_a_call_that_returns_the_expected_value_passes_and_keeps_what_it_measured():
    verdict = judge(CALL, outcome(ok([1, 2.0, {"a": "b"}]), stdout="hi"))
    assert verdict["verdict"] == "pass" and verdict["message"] is None
    assert (verdict["stdout"], verdict["peak_memory_kb"], verdict["duration_ms"]) == ("hi", 1234, 5.0)


def test_tuples_compare_equal_to_json_lists():
    assert judge(CALL, outcome(ok((1, 2.0, {"a": "b"}))))["verdict"] == "pass"


def test_a_wrong_value_fails_with_both_values_in_the_message():
    verdict = judge(CALL, outcome(ok([1, 3.0, {"a": "b"}])))
    assert verdict["verdict"] == "fail"
    assert verdict["message"] == "expected [1, 2.0, {'a': 'b'}], got [1, 3.0, {'a': 'b'}]"


@pytest.mark.parametrize("got, want, tolerance, verdict", [
    (0.30000000000000004, 0.3, None, "fail"),  # exact comparison without a tolerance
    (0.30000000000000004, 0.3, 1e-9, "pass"),
    ([1.0, {"x": 2.0001}], [1, {"x": 2.0}], 1e-3, "pass"),  # nested in lists and dicts
    (100.5, 100.0, 0.01, "pass"),  # relative: 0.5 <= 0.01 * 100
    (1.5, 1.0, 0.01, "fail"),
    ({1, 2}, [1, 2], None, "fail"),  # a set never equals a JSON list
])
def test_tolerance_compares_numbers_absolutely_or_relatively(got, want, tolerance, verdict):
    test = {**CALL, "expected": want, "tolerance": tolerance}
    assert judge(test, outcome(ok(got)))["verdict"] == verdict


def test_a_value_that_cannot_be_compared_with_json_fails_naming_its_type():
    verdict = judge(CALL, outcome(("opaque", "Widget", "<Widget 1>")))
    assert verdict["verdict"] == "fail" and "returned a Widget (<Widget 1>)" in verdict["message"]


@pytest.mark.parametrize("printed, normalize, verdict, message", [
    ("1\n2\n", True, "pass", None),
    ("1  \n2\n\n\n", True, "pass", None),  # trailing spaces and blank lines do not count
    ("1  \n2\n", False, "fail", "stdout line 1: expected '1', got '1  '"),
    ("1\n3\n", True, "fail", "stdout line 2: expected '2', got '3'"),
    ("1\n", True, "fail", "stdout has 1 lines, expected 2"),
])
def test_stdio_compares_stdout_line_by_line(printed, normalize, verdict, message):
    test = {**STDIO, "normalize_whitespace": normalize}
    result = judge(test, outcome(ok(None), stdout=printed))
    assert (result["verdict"], result["message"]) == (verdict, message)


def test_an_assertion_error_fails_and_any_other_exception_is_an_error_with_its_line():
    failed = judge(None, outcome(("exc", "fail", "AssertionError", "assertion failed: x", "Traceback...", 3)))
    assert (failed["verdict"], failed["error_type"], failed["line"]) == ("fail", "AssertionError", 3)
    error = judge(None, outcome(("exc", "error", "IndexError", "list index out of range", "tb", 7)))
    assert (error["verdict"], error["error_type"], error["message"], error["traceback"], error["line"]) == (
        "error", "IndexError", "list index out of range", "tb", 7)


def test_memory_error_skip_and_exit_reports():
    memory = judge(None, outcome(("exc", "memory", "MemoryError", "", "tb", None)))
    assert memory["verdict"] == "memory" and "128 MiB" in memory["message"]
    assert judge(None, outcome(("exc", "skip", "SkipTest", "later", "tb", None)))["verdict"] == "skipped"
    exit_ = judge(None, outcome(("exc", "exit", "SystemExit", "3", "tb", None)))
    assert exit_["verdict"] == "error" and exit_["message"] == "test exited (SystemExit 3) before reporting a result"


@pytest.mark.parametrize("killed, verdict, words", [
    ("timeout", "timeout", "time limit of 2.0 s"),
    ("output", "output_limit", "output limit of 1000 bytes"),
    ("report", "error", "larger than the runner accepts"),
    ("loader", "error", "remaining tests cannot run"),
])
def test_a_test_the_supervisor_stopped_gets_the_reason(killed, verdict, words):
    result = judge(CALL, outcome(ok([1, 2.0, {"a": "b"}]), killed=killed, status=None))
    assert result["verdict"] == verdict and words in result["message"]


@pytest.mark.parametrize("number, stderr, verdict, error_type", [
    (signal.SIGSEGV, "", "crash", "SIGSEGV"),
    (signal.SIGABRT, "", "crash", "SIGABRT"),
    (signal.SIGXCPU, "", "timeout", None),  # the CPU-time limit
    (signal.SIGKILL, "", "memory", "MemoryError"),  # the kernel's answer to the memory cap
    (signal.SIGSEGV, "MemoryError\n", "memory", "MemoryError"),  # died while out of memory
])
def test_a_test_killed_by_a_signal(number, stderr, verdict, error_type):
    result = judge(None, outcome(None, status=killed_by(number), stderr=stderr))
    assert (result["verdict"], result["error_type"]) == (verdict, error_type)


def test_a_test_that_exits_without_a_trustworthy_report_is_an_error():
    missing = judge(CALL, outcome(None, status=exited(0)))
    assert missing["verdict"] == "error" and "exit status 0" in missing["message"]
    unclean = judge(CALL, outcome(ok([1, 2.0, {"a": "b"}]), status=exited(3)))  # a report, then exit(3)
    assert unclean["verdict"] == "error" and "exit status 3" in unclean["message"]
    forged = judge(CALL, outcome(("corrupt", "the result channel held a report the harness did not write")))
    assert forged["verdict"] == "error" and "did not write" in forged["message"]
    malformed = judge(CALL, outcome(("ok",)))
    assert malformed["verdict"] == "error" and "malformed" in malformed["message"]


def test_every_verdict_the_judge_gives_is_in_the_contract():
    given = {
        judge(CALL, outcome(ok([1, 2.0, {"a": "b"}])))["verdict"],
        judge(CALL, outcome(ok(0)))["verdict"],
        judge(None, outcome(("exc", "error", "E", "", "", None)))["verdict"],
        judge(None, outcome(None, killed="timeout"))["verdict"],
        judge(None, outcome(("exc", "memory", "MemoryError", "", "", None)))["verdict"],
        judge(None, outcome(None, killed="output"))["verdict"],
        judge(None, outcome(None, status=killed_by(signal.SIGSEGV)))["verdict"],
        judge(None, outcome(("exc", "skip", "SkipTest", "", "", None)))["verdict"],
    }
    assert given == {verdict.value for verdict in Verdict}
