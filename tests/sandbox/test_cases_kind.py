"""The `cases` test kind: many inputs of one function in one process, each with its own time limit and
tolerance, judged in order on the trusted side; the first case that does not pass is named in the result."""

from __future__ import annotations

import math

import pytest
from pydantic import ValidationError

from sandbox import runner
from sandbox.local import LocalExecutor
from sandbox.models import MAX_TESTS, CasesTest, RunRequest, RunResult, read_literal


@pytest.fixture(scope="module")
def executor():
    return LocalExecutor(workers=2)


def run(executor, code: str, cases: list[dict], time_s: float = 10.0, **test) -> RunResult:
    test = {"entry_point": "f", **test}
    request = RunRequest(code=code, tests=[{"kind": "cases", "cases": cases, **test}],
                         limits={"time_s": time_s})
    return executor.run(request)


@pytest.mark.parametrize("text", [
    "(1, {2, 3}, None)",
    "[nan, inf, -inf, (1+2j), b'x', True]",
    str(10**200), "{'a': (1, [2.5])}", "set()", "()", "''",
])
def test_literals_read_the_same_in_the_contract_and_the_runner(text):
    # The contract's reader is a checked copy of the runner's (test_contract.py): both read the text alike.
    assert repr(read_literal(text)) == repr(runner.read_literal(text))
    # What it reads equals what Python itself makes of the text (evaluated here only because the text is ours).
    mine, theirs = read_literal(text), eval(text, {"__builtins__": {"set": set}, "nan": float("nan"), "inf": float("inf")})
    assert repr(mine) == repr(theirs) and type(mine) is type(theirs)


@pytest.mark.parametrize("text", ["__import__('os')", "f(1)", "1 +", "x", "[1, y]"])
def test_anything_but_a_literal_is_refused_by_both(text):
    with pytest.raises(ValueError):
        read_literal(text)
    with pytest.raises(ValueError):
        runner.read_literal(text)


def test_values_travel_losslessly_and_tuples_are_not_lists(executor):
    code = "def f(x):\n    return x\n"
    values = ["(1, 2)", "{1, 2}", "nan", "-inf", str(3**300), "(1+2j)", "{'k': (b'v', None)}", "[(), [()]]"]
    result = run(executor, code, [{"args": f"({v},)", "expected": v if v != "nan" else "0"} for v in values])
    # nan never equals itself: the only failing case is the third (index 2), and the runner names it
    assert not result.passed and result.tests[0].case == 2 and result.tests[0].verdict == "fail"
    result = run(executor, code, [{"args": "((1, 2),)", "expected": "[1, 2]"}])
    assert result.tests[0].verdict == "fail" and "returned (1, 2), expected [1, 2]" in result.tests[0].message


def test_all_cases_pass_and_many_inputs_are_not_many_tests(executor):
    cases = [{"args": f"({i}, {i + 1})", "expected": str(2 * i + 1)} for i in range(3 * MAX_TESTS)]
    result = run(executor, "def f(a, b):\n    return a + b\n", cases)
    assert result.passed and len(result.tests) == 1 and result.tests[0].case is None


def test_the_first_wrong_case_is_reported_with_its_call(executor):
    cases = [{"args": f"({i},)", "expected": str(i * i)} for i in range(10)]
    result = run(executor, "def f(x):\n    return x * x if x != 6 else -1\n", cases)
    test = result.tests[0]
    assert test.verdict == "fail" and test.case == 6
    assert test.message.startswith("case 6 of 10: f(6,) returned -1, expected 36")


def test_an_exception_stops_the_cases_and_names_the_line(executor):
    code = "def f(x):\n    if x == 3:\n        raise KeyError(x)\n    return x\n"
    result = run(executor, code, [{"args": f"({i},)", "expected": str(i)} for i in range(6)])
    test = result.tests[0]
    assert (test.verdict, test.case, test.error_type, test.line) == ("error", 3, "KeyError", 3)


def test_a_case_over_its_own_time_limit_is_a_timeout_of_that_case(executor):
    code = "def f(x):\n    while x == 2:\n        pass\n    return x\n"
    cases = [{"args": f"({i},)", "expected": str(i), "time_s": 0.5} for i in range(5)]
    result = run(executor, code, cases, time_s=30)
    assert result.tests[0].verdict == "timeout" and result.tests[0].case == 2
    assert "exceeded its time limit of 0.5 s" in result.tests[0].message


def test_a_case_that_ignores_its_timer_is_stopped_by_the_tests_limit(executor):
    code = ("def f(x):\n    while x == 1:\n        try:\n            while True:\n                pass\n"
            "        except BaseException:\n            pass\n    return x\n")
    cases = [{"args": f"({i},)", "expected": str(i), "time_s": 0.2} for i in range(3)]
    result = run(executor, code, cases, time_s=2)
    assert result.tests[0].verdict == "timeout" and result.tests[0].case == 1


def test_a_crash_names_the_running_case(executor):
    code = "import os, signal\ndef f(x):\n    if x == 4:\n        os.kill(os.getpid(), signal.SIGSEGV)\n    return x\n"
    result = run(executor, code, [{"args": f"({i},)", "expected": str(i)} for i in range(6)])
    assert result.tests[0].verdict == "crash" and result.tests[0].case == 4


def test_tolerance_is_per_case_and_follows_allclose(executor):
    code = "def f(x):\n    return x + 1e-7\n"
    cases = [{"args": "(1.0,)", "expected": "1.0", "tolerance": 1e-6},
             {"args": "([1.0, 2.0],)", "expected": "[1.0, 2.0]", "tolerance": 1e-6}]
    assert not run(executor, code, cases).passed  # list + float is a TypeError in the candidate
    assert run(executor, code, cases[:1]).passed
    assert run(executor, code, [{"args": "(1.0,)", "expected": "1.0"}]).tests[0].verdict == "fail"
    # relative tolerance scales with the expected value
    big = [{"args": "(1e9,)", "expected": "1000000000.5", "tolerance": 1e-9}]
    assert not run(executor, code, big).passed
    assert run(executor, code, big, rel_tolerance=1e-7).passed


def test_compare_rules(executor):
    sets = [{"args": "([3, 1, 2, 1],)", "expected": "[1, 2, 3]"}]
    assert run(executor, "def f(x):\n    return x\n", sets, compare="set").passed
    assert not run(executor, "def f(x):\n    return x\n", sets).passed
    root = [{"args": "([-6, 11, -6, 1],)", "expected": "None", "tolerance": 1e-6}]  # (x-1)(x-2)(x-3)
    assert run(executor, "def f(xs):\n    return 2.0\n", root, compare="polynomial_root").passed
    assert not run(executor, "def f(xs):\n    return 2.5\n", root, compare="polynomial_root").passed
    not_none = [{"args": "('ab',)", "expected": "True"}, {"args": "('',)", "expected": "False"}]
    assert run(executor, "def f(s):\n    return s or None\n", not_none, compare="not_none").passed
    assert not run(executor, "def f(s):\n    return s\n", not_none, compare="not_none").passed
    assert run(executor, "def f(s):\n    return 7\n", not_none[:1], compare="returns").passed
    assert not run(executor, "def f(s):\n    raise ValueError\n", not_none[:1], compare="returns").passed


def test_an_unmarshallable_return_fails_without_reaching_the_judge(executor):
    result = run(executor, "def f():\n    return object()\n", [{"args": "()", "expected": "None"}])
    assert result.tests[0].verdict == "fail" and "cannot equal a literal" in result.tests[0].message


def test_the_child_never_sees_expected_values():
    request = RunRequest(code="", tests=[{"kind": "cases", "entry_point": "f",
                                          "cases": [{"args": "(1,)", "expected": "'secret'", "time_s": 1}]}])
    job = runner._prepare_job(request.model_dump(mode="json"))
    assert "secret" not in repr(job) and job["tests"][0]["args"] == [(1,)]


def test_bad_cases_are_refused_by_the_contract():
    with pytest.raises(ValidationError, match="list or tuple"):
        CasesTest(entry_point="f", cases=[{"args": "1", "expected": "1"}])
    with pytest.raises(ValidationError, match="not a Python literal"):
        CasesTest(entry_point="f", cases=[{"args": "(1,)", "expected": "open('x')"}])
    with pytest.raises(ValidationError):
        CasesTest(entry_point="f", cases=[])


def test_the_cases_kind_is_in_the_openapi_schema_and_runs_over_http():
    from fastapi.testclient import TestClient

    from sandbox.backends.process import ProcessBackend
    from sandbox.server import ServiceSettings, create_app

    with TestClient(create_app(ProcessBackend(workers=1), ServiceSettings(token=None))) as client:
        schemas = client.get("/openapi.json").json()["components"]["schemas"]
        assert "CasesTest" in schemas and "Case" in schemas
        assert math.isfinite(schemas["Case"]["properties"]["time_s"]["anyOf"][0]["maximum"])
        body = {"code": "def f(x):\n    return {x}\n",
                "tests": [{"kind": "cases", "entry_point": "f", "cases": [{"args": "(1,)", "expected": "{1}"},
                                                                         {"args": "(2,)", "expected": "{3}"}]}]}
        test = client.post("/v1/runs", json=body).json()["tests"][0]
        assert (test["verdict"], test["case"]) == ("fail", 1)


def test_alternatives_are_accepted_values_too(executor):
    cases = [{"args": "(5,)", "expected": "10", "alternatives": ["0"]}]
    assert run(executor, "def f(x):\n    return 0\n", cases).passed
    assert run(executor, "def f(x):\n    return 10\n", cases).passed
    assert not run(executor, "def f(x):\n    return 1\n", cases).passed


def test_an_object_that_is_not_plain_data_still_counts_as_not_none(executor):
    code = "import re\ndef f(s):\n    return re.match('a', s)\n"
    cases = [{"args": "('abc',)", "expected": "True"}, {"args": "('xbc',)", "expected": "False"}]
    assert run(executor, code, cases, compare="not_none").passed
    wrong = [{"args": "('abc',)", "expected": "False"}]
    assert run(executor, code, wrong, compare="not_none").tests[0].case == 0
    assert run(executor, code, wrong, compare="returns").passed


def test_on_instance_calls_a_method_of_one_instance_or_a_plain_function(executor):
    cases = [{"args": "([1, 2],)", "expected": "[2, 1]"}, {"args": "([3],)", "expected": "[3]"}]
    code = "class Solution:\n    calls = 0\n    def rev(self, xs):\n        Solution.calls += 1\n        return xs[::-1]\n"
    test = {"entry_point": "Solution.rev", "on_instance": True}
    assert run(executor, code, cases, **test).passed
    assert run(executor, "def rev(xs):\n    return xs[::-1]\n", cases, **test).passed
    assert run(executor, "def other(xs):\n    return xs\n", cases, **test).tests[0].verdict == "error"


def test_tuple_is_list_compares_a_tuple_result_as_a_list(executor):
    cases = [{"args": "()", "expected": "[1, 2]"}]
    assert run(executor, "def f():\n    return (1, 2)\n", cases, compare="tuple_is_list").passed
    assert not run(executor, "def f():\n    return (1, 2)\n", cases).passed


def test_stdout_tokens_compare_like_livecodebench(executor):
    def stdio(code, expected):
        request = RunRequest(code=code, tests=[{"kind": "stdio", "stdin": "", "expected_stdout": expected,
                                                "compare": "tokens"}])
        return executor.run(request).passed

    assert stdio("print('  1.0 2  ')\nprint('x')\n", "\n1 2.00\nx\n\n")
    assert not stdio("print('1 2')\n", "1 3\n")
    assert not stdio("print('1')\nprint()\nprint('2')\n", "1\n2\n")
    assert not stdio("print('abc')\n", "ABC\n")
