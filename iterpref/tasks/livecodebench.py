"""LiveCodeBench code generation (Jain et al. 2024, github.com/LiveCodeBench/LiveCodeBench) as tasks.

The released files (``test.jsonl``, ``test2.jsonl``, ... of ``livecodebench/code_generation_lite``; release
``release_vN`` is the first N files, ``release_latest`` all of them) hold one problem per line:
``question_title``, ``question_content``, ``platform``, ``question_id``, ``contest_id``, ``contest_date`` (ISO),
``starter_code``, ``difficulty``, ``public_test_cases`` (a JSON string), ``private_test_cases`` (a JSON string, or
base64 of zlib of a pickle of that JSON string) and ``metadata`` (a JSON string; ``func_name`` for LeetCode).

Private cases are decoded without unpickling objects: the pickle's opcodes are checked against the few that
build strings, numbers, lists and dicts, and the unpickler may load no class or function, so a file carrying
anything else is refused with an error naming the problem.

Grading follows LiveCodeBench's ``testing_util``: every program gets its import preamble (``program``);
``stdin`` problems are one ``stdio`` test per case, compared with ``compare="tokens"`` (stripped lines, numbers
equal as decimals); ``functional`` problems are one ``cases`` test calling ``Solution().<func_name>`` (or a
module-level function of that name) on each case's JSON arguments, one per input line, with a tuple result
compared as a list. Each case has LiveCodeBench's 6 s limit.
"""

from __future__ import annotations

import base64
import io
import json
import os
import pickle
import pickletools
import zlib
from datetime import datetime
from pathlib import Path
from typing import Any, Optional

from iterpref.errors import DataError
from iterpref.records import Task, read_jsonl

TIMEOUT_S = 6.0  # LiveCodeBench's default per-case timeout
ENV = "LIVECODEBENCH_PATH"
HOW = ("download the code_generation_lite files (test.jsonl, test2.jsonl, ...) from the Hugging Face data set "
       "livecodebench/code_generation_lite and pass the file or its folder with --source (or set "
       f"{ENV}); iterpref never downloads at run time")
RELEASE_FILES = {f"release_v{n}": n for n in range(1, 7)}
STARTER_MARK = "\n\n### Starter code (complete it)\n"
# The import preamble LiveCodeBench's grader puts before every program (testing_util.import_string).
PREAMBLE = "\n".join(
    [f"from {m} import *" for m in ("string", "re", "datetime", "collections", "heapq", "bisect", "copy", "math",
                                      "random", "statistics", "itertools", "functools", "operator", "io", "sys",
                                      "json", "builtins", "typing")]
    + [f"import {m}" for m in ("string", "re", "datetime", "collections", "heapq", "bisect", "copy", "math",
                                 "random", "statistics", "itertools", "functools", "operator", "io", "sys", "json")]
    + ["sys.setrecursionlimit(50000)"]) + "\n"

# Opcodes that only build str/bytes/numbers/bool/None/lists/tuples/dicts and manage the memo and framing.
_PLAIN_OPCODES = {
    "PROTO", "FRAME", "STOP", "MARK", "POP", "POP_MARK", "DUP", "MEMOIZE", "PUT", "BINPUT", "LONG_BINPUT", "GET",
    "BINGET", "LONG_BINGET", "NONE", "NEWTRUE", "NEWFALSE", "INT", "BININT", "BININT1", "BININT2", "LONG", "LONG1",
    "LONG4", "FLOAT", "BINFLOAT", "STRING", "BINSTRING", "SHORT_BINSTRING", "UNICODE", "BINUNICODE",
    "SHORT_BINUNICODE", "BINUNICODE8", "BINBYTES", "SHORT_BINBYTES", "BINBYTES8", "EMPTY_LIST", "APPEND", "APPENDS",
    "LIST", "EMPTY_TUPLE", "TUPLE", "TUPLE1", "TUPLE2", "TUPLE3", "EMPTY_DICT", "DICT", "SETITEM", "SETITEMS",
}


class _NoClasses(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"refused to load {module}.{name}: only plain data is accepted")

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError("refused a persistent id: only plain data is accepted")


def plain_unpickle(data: bytes) -> Any:
    """A pickle's value when it holds only plain data (see ``_PLAIN_OPCODES``); ValueError otherwise."""
    try:
        for opcode, _arg, _pos in pickletools.genops(data):
            if opcode.name not in _PLAIN_OPCODES:
                raise ValueError(f"the pickle uses {opcode.name}, which can build objects; refused")
        return _NoClasses(io.BytesIO(data)).load()
    except (pickle.UnpicklingError, EOFError, IndexError, TypeError) as exc:
        raise ValueError(f"not a plain-data pickle: {exc}") from None


def decode_cases(text: str, where: str) -> list[dict[str, str]]:
    """Test cases from a JSON string, or from base64(zlib(pickle(JSON string))) as released; each a dict of
    string ``input``, ``output`` and ``testtype``."""
    try:
        cases = json.loads(text)
    except json.JSONDecodeError:
        try:
            inner = plain_unpickle(zlib.decompress(base64.b64decode(text.encode("utf-8"), validate=True)))
        except (ValueError, zlib.error) as exc:
            raise DataError(f"{where}: private test cases cannot be decoded: {exc}") from None
        if not isinstance(inner, (str, bytes)):
            raise DataError(f"{where}: private test cases hold a {type(inner).__name__}, not the JSON text expected")
        try:
            cases = json.loads(inner)
        except json.JSONDecodeError as exc:
            raise DataError(f"{where}: private test cases are not JSON inside: {exc.msg}") from None
    if not isinstance(cases, list) or not all(
            isinstance(c, dict) and all(isinstance(c.get(k), str) for k in ("input", "output", "testtype"))
            for c in cases):
        raise DataError(f"{where}: test cases must be a list of {{input, output, testtype}} strings")
    return cases


def source_path(source: Optional[str | Path] = None) -> Path:
    chosen = source or os.environ.get(ENV)
    if not chosen:
        raise DataError(f"LiveCodeBench: no data file given; {HOW}")
    path = Path(chosen)
    if not path.exists():
        raise DataError(f"LiveCodeBench: {path} does not exist; {HOW}")
    return path


def _files(path: Path, release: str) -> list[Path]:
    if path.is_file():
        return [path]
    if release == "release_latest":
        files = sorted(path.glob("test*.jsonl"), key=lambda p: int(p.stem[4:] or 1))
    elif release in RELEASE_FILES:
        names = ["test.jsonl"] + [f"test{n}.jsonl" for n in range(2, RELEASE_FILES[release] + 1)]
        files = [path / name for name in names]
        missing = [f.name for f in files if not f.is_file()]
        if missing:
            raise DataError(f"LiveCodeBench {release} needs {', '.join(missing)} in {path}; {HOW}")
    else:
        raise DataError(f"unknown LiveCodeBench release {release!r}; one of {sorted(RELEASE_FILES)} or release_latest")
    if not files:
        raise DataError(f"{path}: no test*.jsonl files; {HOW}")
    return files


def _date(text: Optional[str], option: str) -> Optional[datetime]:
    if text is None:
        return None
    try:
        return datetime.strptime(text, "%Y-%m-%d")
    except ValueError:
        raise DataError(f"{option} must be a date like 2024-05-01, not {text!r}") from None


def starter_code(task: Task) -> str:
    """The starter code a functional problem's prompt carries (empty for stdin problems)."""
    return task.prompt.split(STARTER_MARK, 1)[1].strip("\n") if STARTER_MARK in task.prompt else ""


def program(code: str) -> str:
    """The program LiveCodeBench runs for ``code``: its import preamble first."""
    return PREAMBLE + "\n" + code


def _task(problem: dict[str, Any], where: str) -> Task:
    cases = decode_cases(problem["public_test_cases"], where) + decode_cases(problem["private_test_cases"], where)
    metadata = json.loads(problem.get("metadata") or "{}")
    function = metadata.get("func_name")
    prompt = problem["question_content"]
    limits = {"time_s": TIMEOUT_S, "memory_mb": 2048}
    if function:
        if problem.get("starter_code"):
            prompt += STARTER_MARK + problem["starter_code"]
        test_cases = []
        for case in cases:
            try:
                args = [json.loads(line) for line in case["input"].split("\n")]
                expected = json.loads(case["output"])
            except json.JSONDecodeError as exc:
                raise DataError(f"{where}: a functional case is not JSON ({exc.msg})") from None
            test_cases.append({"args": repr(tuple(args)), "expected": repr(expected), "time_s": TIMEOUT_S})
        tests = [{"kind": "cases", "id": "cases", "entry_point": f"Solution.{function}", "on_instance": True,
                  "compare": "tuple_is_list", "cases": test_cases}]
        limits["time_s"] = min(60.0, (TIMEOUT_S + 1) * len(test_cases) + 5)
    else:
        tests = [{"kind": "stdio", "id": f"case_{i}", "stdin": case["input"], "expected_stdout": case["output"],
                  "compare": "tokens"} for i, case in enumerate(cases)]
    return Task(task_id=problem["question_id"], prompt=prompt, tests=tests, entry_point=function, limits=limits)


def livecodebench_tasks(source: Optional[str | Path] = None, *, release: str = "release_latest",
                        start_date: Optional[str] = None, end_date: Optional[str] = None,
                        limit: Optional[int] = None) -> list[Task]:
    """LiveCodeBench problems as tasks, filtered by release (files) and contest date (inclusive, YYYY-MM-DD)."""
    start, end = _date(start_date, "--start-date"), _date(end_date, "--end-date")
    tasks: list[Task] = []
    for path in _files(source_path(source), release):
        for number, problem in read_jsonl(path):
            where = f"{path}:{number}"
            try:
                date = datetime.fromisoformat(problem["contest_date"])
            except (KeyError, TypeError, ValueError) as exc:
                raise DataError(f"{where}: not a LiveCodeBench problem ({exc})") from None
            if (start and date < start) or (end and date > end):
                continue
            tasks.append(_task(problem, where))
    if limit is not None:
        tasks = tasks[:limit]
    if not tasks:
        raise DataError(f"{source}: no LiveCodeBench problems left after the release and date filters")
    return tasks
