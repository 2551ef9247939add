"""`sandbox run PROGRAM.py --tests TESTS.json | --test-file FILE`: run one program locally, print its RunResult.

Exit status: 0 every test passed, 1 some test did not, 2 bad input (one line on stderr naming the field),
3 the sandbox itself failed (infra_error).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pydantic import ValidationError

from sandbox.models import Limits, RunRequest, RunStatus


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("run", help="run a program against tests with the local process backend")
    parser.add_argument("program", type=Path, help="the candidate program (a .py file)")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--tests", type=Path, help="JSON list of tests (assert/call/stdio), or {\"tests\": [...]}")
    source.add_argument("--test-file", type=Path, help="a unittest/pytest-style module that imports `solution`")
    defaults = Limits()
    parser.add_argument("--time-s", type=float, help=f"wall-clock seconds per test (default {defaults.time_s:g})")
    parser.add_argument("--memory-mb", type=int, help=f"memory per test in MiB (default {defaults.memory_mb})")
    parser.add_argument("--output-bytes", type=int,
                        help=f"stdout+stderr bytes kept per test (default {defaults.output_bytes})")
    parser.add_argument("--fail-fast", action="store_true", help="skip the remaining tests after a non-pass")
    parser.add_argument("--no-isolate", action="store_true", help="do not use network/PID namespaces")
    parser.set_defaults(func=run)


class _BadInput(Exception):
    pass


def _read(path: Path, what: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise _BadInput(f"{what}: cannot read {path}: {exc}") from None


def _request(args: argparse.Namespace) -> RunRequest:
    payload: dict = {"code": _read(args.program, "program"), "fail_fast": args.fail_fast}
    if args.tests is not None:
        try:
            tests = json.loads(_read(args.tests, "tests"))
        except json.JSONDecodeError as exc:
            raise _BadInput(f"tests: {args.tests} is not valid JSON: {exc}") from None
        payload["tests"] = tests["tests"] if isinstance(tests, dict) and "tests" in tests else tests
    else:
        payload["test_file"] = _read(args.test_file, "test_file")
    limits = {"time_s": args.time_s, "memory_mb": args.memory_mb, "output_bytes": args.output_bytes}
    payload["limits"] = {key: value for key, value in limits.items() if value is not None}
    try:
        return RunRequest.model_validate(payload)
    except ValidationError as exc:
        error = exc.errors()[0]
        field = ".".join(str(part) for part in error["loc"]) or "request"
        raise _BadInput(f"{field}: {error['msg']}") from None


def run(args: argparse.Namespace) -> int:
    try:
        request = _request(args)
    except _BadInput as exc:
        print(f"sandbox run: {exc}", file=sys.stderr)
        return 2
    from sandbox.local import LocalExecutor  # after validation: bad input answers fast

    result = LocalExecutor(workers=1, isolate=not args.no_isolate).run(request)
    print(result.model_dump_json(indent=2))
    if result.status is RunStatus.INFRA_ERROR:
        return 3
    return 0 if result.passed else 1
