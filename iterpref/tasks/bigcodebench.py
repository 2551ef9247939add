"""BigCodeBench (Zhuo et al. 2024, github.com/bigcode-project/bigcodebench) as tasks.

The released file (``BigCodeBench.jsonl``, the Hard subset's ``BigCodeBench-Hard.jsonl``, or an export of the
Hugging Face sets ``bigcode/bigcodebench[-hard]``) holds one problem per line: ``task_id``, ``complete_prompt``,
``instruct_prompt``, ``canonical_solution``, ``code_prompt``, ``test`` (a ``unittest.TestCase`` class named
``TestCases``), ``entry_point`` and ``libs``. ``--split complete|instruct`` picks the prompt; the Hard subset is
its own file, or Full cut by a list of task ids (``task_list``).

Grading follows ``bigcodebench.eval.untrusted_check`` with the evaluator's defaults:

- the program is ``code_prompt + "\\n    pass\\n" + solution`` ("calibrated": the prompt's imports are there
  even when the solution left them out) -- see :func:`program`;
- the test class runs as a ``test_file`` that takes every name the program defines, as BigCodeBench runs both
  in one module; a test that skips itself counts as passed, as in ``unittest.TestResult`` (only failures and
  errors fail a sample);
- the test class runs as BigCodeBench runs it: all its tests in one process, in order, so that state one test
  leaves behind (pyplot's current figure, a module attribute) reaches the next, under one time limit for the
  whole suite (``time_s``, default 60 s, the executor's maximum; BigCodeBench's own default is 240 s). The
  sample's one result fails with every failing test's traceback.

Problems whose libraries or tests reach the network (``NETWORK_LIBS``) are listed by :func:`network_tasks`, so
evaluation can report them apart: they cannot pass in the sandbox, which has no network.
"""

from __future__ import annotations

import ast
import os
from pathlib import Path
from typing import Any, Optional

from iterpref.errors import DataError
from iterpref.records import Task, read_jsonl

ENV = "BIGCODEBENCH_OVERRIDE_PATH"
REQUIRED = ("task_id", "complete_prompt", "instruct_prompt", "canonical_solution", "code_prompt", "test",
            "entry_point")
HOW = ("export bigcode/bigcodebench (or bigcodebench-hard) from Hugging Face to JSONL, or take the release's "
       f"BigCodeBench.jsonl, and pass it with --source FILE (or set {ENV}); iterpref never downloads at run time")
NETWORK_LIBS = {"requests", "urllib", "urllib3", "socket", "http", "smtplib", "ftplib", "mechanize", "bs4",
                "aiohttp", "httpx", "ssl", "ipaddress", "wikipedia", "geopy", "flask_mail", "python_http_client",
                "sendgrid", "email", "cgi", "requests_mock"}
# Run before the test class: its module sees every name of the candidate's module (BigCodeBench runs both in
# one namespace), and a skipped test counts as passed (unittest.TestResult counts only failures and errors).
TEST_PRELUDE = '''import unittest as _unittest
import solution as _solution
globals().update({_k: _v for _k, _v in vars(_solution).items() if not _k.startswith("__")})


def _skip_is_pass(method):
    def run(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except _unittest.SkipTest:
            return None
    return run


class _PassSkips(type(_unittest.TestCase)):
    def __new__(mcs, name, bases, namespace):
        cls = super().__new__(mcs, name, bases, namespace)
        for key in list(vars(cls)):
            if key.startswith("test") and callable(getattr(cls, key)):
                setattr(cls, key, _skip_is_pass(getattr(cls, key)))
        return cls


_unittest.TestCase = _PassSkips("TestCase", (_unittest.TestCase,), {})
'''
# Run after the test class: BigCodeBench runs the whole class in one process, one test after another (what one
# test leaves behind, such as pyplot's current figure, reaches the next), under one time limit. So the classes
# are taken out of the module, where the runner would find them and run each test from a fresh fork, and one
# test runs them all in order, failing with every failure and error the suite had.
TEST_EPILOGUE = '''

_SUITE = []
for _name, _case in list(globals().items()):
    if (isinstance(_case, type) and issubclass(_case, _unittest.TestCase)
            and _unittest.defaultTestLoader.getTestCaseNames(_case)):
        _SUITE.append(_case)
        del globals()[_name]


def test_suite_in_one_process():
    _result = _unittest.TestResult()
    for _case in _SUITE:
        _unittest.defaultTestLoader.loadTestsFromTestCase(_case).run(_result)
    _problems = _result.failures + _result.errors
    if _problems:
        _report = "\\n".join(f"{_test.id()}:\\n{_text}" for _test, _text in _problems)
        raise AssertionError(f"{len(_problems)} of {_result.testsRun} tests failed or raised:\\n{_report}")
'''


def source_path(source: Optional[str | Path] = None) -> Path:
    chosen = source or os.environ.get(ENV)
    if not chosen:
        raise DataError(f"BigCodeBench: no data file given; {HOW}")
    path = Path(chosen)
    if not path.is_file():
        raise DataError(f"BigCodeBench: {path} does not exist; {HOW}")
    return path


def read_problems(path: Path) -> list[dict[str, Any]]:
    problems = []
    for number, problem in read_jsonl(path):
        missing = [key for key in REQUIRED if key not in problem]
        if missing:
            raise DataError(f"{path}:{number}: not a BigCodeBench problem, missing {missing}")
        problems.append(problem)
    if not problems:
        raise DataError(f"{path}: no problems in the file")
    return problems


def _libs(problem: dict[str, Any]) -> set[str]:
    libs = problem.get("libs") or []
    if isinstance(libs, str):
        try:
            libs = ast.literal_eval(libs)
        except (ValueError, SyntaxError):
            libs = []
    return {str(lib).split(".")[0] for lib in libs}


def is_network(problem: dict[str, Any]) -> bool:
    return bool(_libs(problem) & NETWORK_LIBS)


def _select(problems: list[dict[str, Any]], task_list: Optional[str | Path]) -> list[dict[str, Any]]:
    if task_list is None:
        return problems
    try:
        wanted = [line.strip() for line in Path(task_list).read_text().splitlines() if line.strip()]
    except OSError as exc:
        raise DataError(f"cannot read the task list {task_list}: {exc.strerror}") from None
    known = {p["task_id"] for p in problems}
    missing = [t for t in wanted if t not in known]
    if missing:
        raise DataError(f"{task_list}: {len(missing)} task ids are not in the data file, e.g. {missing[0]}")
    chosen = set(wanted)
    return [p for p in problems if p["task_id"] in chosen]


def bigcodebench_tasks(source: Optional[str | Path] = None, *, hard: bool = False, split: str = "complete",
                       task_list: Optional[str | Path] = None, time_s: float = 60.0, memory_mb: int = 4096,
                       limit: Optional[int] = None) -> list[Task]:
    """BigCodeBench problems as tasks with their test class as ``test_file``. ``hard`` only names the subset
    (its file, or ``task_list``); the records read the same."""
    del hard  # the Hard subset is a file of its own (or a task list): nothing else differs
    if split not in ("complete", "instruct"):
        raise DataError(f"BigCodeBench split must be complete or instruct, not {split!r}")
    problems = _select(read_problems(source_path(source)), task_list)[:limit]
    return [Task(task_id=p["task_id"], prompt=p[f"{split}_prompt"],
                 test_file=TEST_PRELUDE + "\n" + p["test"] + TEST_EPILOGUE,
                 entry_point=p["entry_point"], reference=p["complete_prompt"] + "\n" + p["canonical_solution"],
                 limits={"time_s": time_s, "memory_mb": memory_mb, "output_bytes": 1024 * 1024})
            for p in problems]


def network_tasks(source: Optional[str | Path] = None) -> set[str]:
    """Task ids whose libraries reach the network."""
    return {p["task_id"] for p in read_problems(source_path(source)) if is_network(p)}


def code_prompts(source: Optional[str | Path] = None) -> dict[str, str]:
    return {p["task_id"]: p["code_prompt"] for p in read_problems(source_path(source))}


def program(code_prompt: str, code: str) -> str:
    """The program BigCodeBench's evaluator runs (``calibrated``): the prompt's imports and signature with a
    ``pass`` body, then the sample's code."""
    return code_prompt + "\n    pass\n" + code
