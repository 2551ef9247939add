"""Every test kind and every verdict, through the real runner (one batch for the whole module, for speed)."""

from __future__ import annotations

import pytest

from sandbox.local import LocalExecutor
from sandbox.models import RunRequest, RunStatus, Verdict

ADD = "def add(a, b):\n    return a + b\n"
LIMITS = {"time_s": 2, "memory_mb": 64, "output_bytes": 2000}

CASES: dict[str, dict] = {
    "call_pass": {"code": ADD, "tests": [{"kind": "call", "entry_point": "add", "args": [1, 2], "expected": 3}]},
    "call_fail": {"code": ADD, "tests": [{"kind": "call", "entry_point": "add", "args": [1, 2], "expected": 4}]},
    "call_tuple_is_list": {"code": "def f():\n    return (1, [2, (3,)])\n",
                           "tests": [{"kind": "call", "entry_point": "f", "expected": [1, [2, [3]]]}]},
    "call_tolerance": {"code": "def f():\n    return [0.1 + 0.2, {'x': 1.0000001}]\n",
                       "tests": [{"kind": "call", "entry_point": "f", "expected": [0.3, {"x": 1.0}], "tolerance": 1e-6},
                                 {"kind": "call", "entry_point": "f", "expected": [0.3, {"x": 1.0}]}]},
    "call_kwargs_dotted": {"code": "class K:\n    @staticmethod\n    def f(a, b=0):\n        return a - b\n",
                           "tests": [{"kind": "call", "entry_point": "K.f", "args": [5], "kwargs": {"b": 2},
                                      "expected": 3}]},
    "call_raises": {"code": "def f(xs):\n    y = 1\n    return xs[10]\n",
                    "tests": [{"kind": "call", "entry_point": "f", "args": [[1]], "expected": 1}]},
    "call_rigged_eq": {"code": "class A:\n    def __eq__(self, o):\n        return True\ndef f():\n    return A()\n",
                       "tests": [{"kind": "call", "entry_point": "f", "expected": 3}]},
    "call_int_subclass": {"code": "class I(int):\n    pass\ndef f():\n    return I(3)\n",
                          "tests": [{"kind": "call", "entry_point": "f", "expected": 3}]},
    "assert_pass_fail": {"code": ADD, "tests": [{"kind": "assert", "code": "assert add(2, 2) == 4"},
                                                {"kind": "assert", "code": "x = 1\nassert add(2, 2) == 5"}]},
    "assert_message": {"code": ADD, "tests": [{"kind": "assert", "code": "assert add(1, 1) == 3, 'one plus one'"}]},
    "stdio": {"code": "n = int(input())\nprint(str(n * 2) + '  ')\nprint()\n",
              "tests": [{"kind": "stdio", "stdin": "21\n", "expected_stdout": "42\n"},
                        {"kind": "stdio", "stdin": "2\n", "expected_stdout": "5\n"},
                        {"kind": "stdio", "stdin": "21\n", "expected_stdout": "42\n", "normalize_whitespace": False}]},
    "stdio_exit0": {"code": "import sys\nprint('ok')\nsys.exit(0)\n",
                    "tests": [{"kind": "stdio", "expected_stdout": "ok"}]},
    "stdio_big_stdin": {"code": "import sys\nprint(len(sys.stdin.read()))\n",
                        "tests": [{"kind": "stdio", "stdin": "x" * 300_000, "expected_stdout": "300000"}]},
    "timeout": {"code": "def f():\n    while True:\n        pass\n",
                "tests": [{"kind": "assert", "code": "f()"}], "limits": {**LIMITS, "time_s": 0.5}},
    "sleep_timeout": {"code": "import time\n", "tests": [{"kind": "assert", "code": "time.sleep(30)"}],
                      "limits": {**LIMITS, "time_s": 0.5}},
    "memory": {"code": "def f():\n    return bytearray(512 * 1024 * 1024)\n",
               "tests": [{"kind": "assert", "code": "f()"}]},
    "output_limit": {"code": ADD, "tests": [{"kind": "assert", "code": "print('x' * 10_000)"}]},
    "crash": {"code": "import os, signal\n", "tests": [{"kind": "assert", "code": "os.kill(os.getpid(), signal.SIGSEGV)"}]},
    "syntax_error": {"code": "def f(:\n    pass\n", "tests": [{"kind": "assert", "code": "f()"},
                                                           {"kind": "call", "entry_point": "f", "expected": 1}]},
    "top_level_raise": {"code": "x = 1\nraise ValueError('boom')\n", "tests": [{"kind": "assert", "code": "pass"}]},
    "import_error": {"code": "import no_such_module_here\n", "tests": [{"kind": "assert", "code": "pass"}]},
    "top_level_timeout": {"code": "while True:\n    pass\n", "tests": [{"kind": "assert", "code": "pass"}],
                          "limits": {**LIMITS, "time_s": 0.5}},
    "fail_fast": {"code": ADD, "fail_fast": True,
                  "tests": [{"kind": "assert", "code": "assert add(1, 1) == 2"},
                            {"kind": "assert", "code": "assert add(1, 1) == 3"},
                            {"kind": "assert", "code": "assert add(1, 1) == 2"}]},
    "isolated_state": {"code": "seen = []\n",
                       "tests": [{"kind": "assert", "code": "seen.append(1)\nassert seen == [1]"},
                                 {"kind": "assert", "code": "seen.append(1)\nassert seen == [1]"}]},
    # Assert tests run in the checker: what the candidate's process does is seen through its own functions.
    "last_test_in_loader": {"code": "import os\nTOP = os.getpid()\ndef pid():\n    return os.getpid()\n",
                            "tests": [{"kind": "assert", "code": "assert pid() != TOP"},
                                      {"kind": "assert", "code": "assert pid() == TOP"}]},
    "thread_forks_last_test": {"code": "import os, threading, time\nTOP = os.getpid()\n"
                                       "threading.Thread(target=time.sleep, args=(5,), daemon=True).start()\n"
                                       "def pid():\n    return os.getpid()\n",
                               "tests": [{"kind": "assert", "code": "assert pid() != TOP"}]},
    "both_paths_crash": {"code": "import os, signal\ndef crash():\n    os.kill(os.getpid(), signal.SIGABRT)\n",
                         "tests": [{"kind": "assert", "code": "crash()"}] * 2},
    "both_paths_exit": {"code": "import os\ndef bye():\n    print('bye', flush=True)\n    os._exit(3)\n",
                        "tests": [{"kind": "assert", "code": "bye()"}] * 2},
    "both_paths_timeout": {"code": "import time\ndef slow():\n    time.sleep(30)\n",
                           "tests": [{"kind": "assert", "code": "slow()"}] * 2,
                           "limits": {**LIMITS, "time_s": 0.4}},
    "test_file": {"code": ADD, "test_file": (
        "import unittest\nfrom solution import add\n\n"
        "def test_ok():\n    assert add(1, 2) == 3\n\n"
        "def test_bad():\n    assert add(1, 2) == 4\n\n"
        "STATE = []\n\ndef test_order_a():\n    STATE.append(1)\n\ndef test_order_b():\n    assert STATE == [1]\n\n"
        "class TestAdd(unittest.TestCase):\n"
        "    def setUp(self):\n        self.x = 2\n"
        "    def test_eq(self):\n        self.assertEqual(add(self.x, 2), 4)\n"
        "    def test_ne(self):\n        self.assertEqual(add(self.x, 2), 5)\n"
        "    def test_skip(self):\n        self.skipTest('later')\n")},
    "test_file_import_error": {"code": "raise RuntimeError('no')\n", "test_file": "import solution\ndef test_a():\n    pass\n"},
    "test_file_empty": {"code": ADD, "test_file": "import solution\n"},
}


@pytest.fixture(scope="module")
def results() -> dict:
    names = list(CASES)
    requests = [RunRequest.model_validate({"limits": LIMITS, **CASES[name]}) for name in names]
    return dict(zip(names, LocalExecutor(workers=2).run_batch(requests)))


def verdicts(result) -> list[str]:
    return [t.verdict.value for t in result.tests]


def test_every_result_is_completed_and_in_order(results):
    for name, result in results.items():
        assert result.status is RunStatus.COMPLETED, (name, result.infra_message)
        expected_len = len(CASES[name].get("tests") or []) or len(result.tests)
        assert len(result.tests) == expected_len


def test_call(results):
    assert results["call_pass"].passed and results["call_pass"].counts == {Verdict.PASS: 1}
    fail = results["call_fail"].tests[0]
    assert fail.verdict is Verdict.FAIL and fail.message == "expected 4, got 3"
    assert verdicts(results["call_tuple_is_list"]) == ["pass"]
    assert verdicts(results["call_tolerance"]) == ["pass", "fail"]
    assert verdicts(results["call_kwargs_dotted"]) == ["pass"]


def test_call_exception_points_into_candidate(results):
    test = results["call_raises"].tests[0]
    assert (test.verdict, test.error_type, test.line) == (Verdict.ERROR, "IndexError", 3)
    assert 'File "<candidate>", line 3, in f' in test.traceback
    assert "runner.py" not in test.traceback


def test_call_only_exact_builtin_values_can_pass(results):
    assert verdicts(results["call_rigged_eq"]) == ["fail"]
    assert verdicts(results["call_int_subclass"]) == ["fail"]
    assert "cannot equal a JSON value" in results["call_rigged_eq"].tests[0].message


def test_assert(results):
    passed, failed = results["assert_pass_fail"].tests
    assert passed.verdict is Verdict.PASS
    assert (failed.verdict, failed.error_type, failed.line) == (Verdict.FAIL, "AssertionError", None)
    assert failed.message == "assertion failed: assert add(2, 2) == 5"
    assert 'File "<test>", line 2' in failed.traceback
    assert results["assert_message"].tests[0].message == "one plus one"


def test_stdio(results):
    assert verdicts(results["stdio"]) == ["pass", "fail", "fail"]
    assert results["stdio"].tests[1].message == "stdout line 1: expected '5', got '4'"
    assert results["stdio"].tests[0].stdout == "42  \n\n"
    assert verdicts(results["stdio_exit0"]) == ["pass"]
    assert verdicts(results["stdio_big_stdin"]) == ["pass"]


def test_limits(results):
    for name in ("timeout", "sleep_timeout"):
        test = results[name].tests[0]
        assert test.verdict is Verdict.TIMEOUT, name
        assert test.duration_ms >= 400  # no upper bound: a loaded machine may notice a timeout late
    assert verdicts(results["memory"]) == ["memory"]
    out = results["output_limit"].tests[0]
    assert out.verdict is Verdict.OUTPUT_LIMIT and out.truncated and len(out.stdout) == LIMITS["output_bytes"]
    crash = results["crash"].tests[0]
    assert (crash.verdict, crash.error_type) == (Verdict.CRASH, "SIGSEGV")


def test_program_errors_mark_every_test(results):
    syntax = results["syntax_error"]
    assert verdicts(syntax) == ["error", "error"]
    assert all(t.program_error and t.error_type == "SyntaxError" and t.line == 1 for t in syntax.tests)
    raised = results["top_level_raise"].tests[0]
    assert (raised.program_error, raised.error_type, raised.message, raised.line) == (True, "ValueError", "boom", 2)
    assert results["import_error"].tests[0].error_type == "ModuleNotFoundError"
    slow = results["top_level_timeout"].tests[0]
    assert slow.program_error and slow.verdict is Verdict.TIMEOUT


def test_fail_fast_skips_the_rest(results):
    assert verdicts(results["fail_fast"]) == ["pass", "fail", "skipped"]


def test_each_test_starts_from_the_loaded_state(results):
    assert verdicts(results["isolated_state"]) == ["pass", "pass"]


def test_test_file(results):
    result = results["test_file"]
    got = {t.id: t.verdict.value for t in result.tests}
    assert got == {"test_ok": "pass", "test_bad": "fail", "test_order_a": "pass", "test_order_b": "fail",
                   "TestAdd.test_eq": "pass", "TestAdd.test_ne": "fail", "TestAdd.test_skip": "skipped"}
    assert [t.id for t in result.tests][:4] == ["test_ok", "test_bad", "test_order_a", "test_order_b"]
    bad = next(t for t in result.tests if t.id == "test_bad")
    assert 'File "test_solution.py", line 8, in test_bad' in bad.traceback
    broken = results["test_file_import_error"].tests
    assert len(broken) == 1 and broken[0].program_error and broken[0].error_type == "RuntimeError"
    assert broken[0].line == 1
    assert verdicts(results["test_file_empty"]) == ["error"]


def test_durations_and_memory_are_reported(results):
    test = results["call_pass"].tests[0]
    assert test.duration_ms > 0 and test.peak_memory_kb and test.peak_memory_kb > 1000
    assert results["call_pass"].duration_ms >= test.duration_ms


def test_the_last_test_runs_in_the_loader_unless_the_program_started_threads(results):
    # A program's last test needs no pristine copy left behind, so it runs in the loaded process (no fork);
    # a program with threads of its own still gets a fresh child, which has none of them.
    assert verdicts(results["last_test_in_loader"]) == ["pass", "pass"]
    assert verdicts(results["thread_forks_last_test"]) == ["pass"]


def test_verdicts_are_the_same_in_a_forked_child_and_in_the_loader(results):
    crash, exited, slow = results["both_paths_crash"], results["both_paths_exit"], results["both_paths_timeout"]
    assert [(t.verdict.value, t.error_type) for t in crash.tests] == [("crash", "SIGABRT")] * 2
    assert verdicts(exited) == ["error", "error"]
    assert all("exit status 3" in t.message and t.stdout == "bye\n" for t in exited.tests)
    assert verdicts(slow) == ["timeout", "timeout"]
    assert all(t.duration_ms >= 300 for t in slow.tests)


def test_a_program_cannot_read_the_tests_of_an_earlier_program_of_its_batch():
    """One worker: both programs go through one supervisor, one after the other. The later one scans its own
    memory for the earlier one's assert test (it must not have inherited it; see runner._LoaderTemplate)."""
    import secrets

    from tests.conformance.test_reuse import SCAN

    token = secrets.token_hex(12)
    earlier = RunRequest(code="def f():\n    return 1\n", limits=LIMITS,
                         tests=[{"kind": "assert", "code": f"assert f() == 'SECRET-{token}'"}])
    later = RunRequest(code=SCAN, limits={**LIMITS, "output_bytes": 10_000},
                       tests=[{"kind": "call", "entry_point": "scan", "args": [token], "expected": True}])
    # The first program goes to the supervisor started before the batch (one program is its lot); the next two
    # share one that serves several, the case the template exists for.
    opener = RunRequest(code=ADD, tests=[{"kind": "call", "entry_point": "add", "args": [1, 2], "expected": 3}])
    _, first, second = LocalExecutor(workers=1).run_batch([opener, earlier, later])
    assert first.tests[0].verdict == Verdict.FAIL and second.tests[0].verdict == Verdict.PASS, second
    _host, follows, plain, _scanned = second.tests[0].stdout.split()
    assert int(plain) >= 1 and int(follows) == 0
