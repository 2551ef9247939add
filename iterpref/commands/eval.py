"""`iterpref eval`: pass@k of a model on a benchmark or a task file, judged by the executor, with error types;
`iterpref eval --combine DIR ...` puts several evaluations into the paper's table."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from iterpref.commands.refine import add_sampler_arguments, sampler_from_args
from iterpref.commands.tasks import add_benchmark_options, loader_options
from iterpref.errors import ConfigError
from iterpref.evaluate import contamination_warning, evaluate, format_summary, provenance
from iterpref.executor import close_executor, make_executor
from iterpref.records import Task
from iterpref.tasks import humaneval_tasks, load_tasks
from iterpref.tasks.benchmarks import NAMES, benchmark_tasks, program_builder
from iterpref.tasks.prompts import harness_prompt
from iterpref.tasks.table import combined_table


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("eval", help="pass@k (unbiased estimator) and error types of a model's programs")
    parser.add_argument("--tasks", default="humaneval",
                        help=f"{', '.join(NAMES)}, or a tasks JSONL file (default humaneval)")
    parser.add_argument("--samples", type=int, default=1, help="programs sampled per task, n (default 1)")
    parser.add_argument("--k", default=None, help="comma-separated k values (default: those of 1,10,100 <= samples)")
    parser.add_argument("--limit", type=int, default=None, help="only the first N tasks")
    parser.add_argument("--task-ids", default=None, help="comma-separated task ids to evaluate (after --limit)")
    parser.add_argument("-o", "--output", required=True, help="folder for results.jsonl and summary.json")
    parser.add_argument("--executor", default="local", help="`local` or the URL of `sandbox serve` (default local)")
    parser.add_argument("--workers", type=int, default=None, help="local executor: parallel programs")
    parser.add_argument("--wave-tasks", type=int, default=32, help="tasks sampled and judged together (default 32)")
    parser.add_argument("--prompt", default=None, choices=["harness", "refine"],
                        help="the benchmark harness's own prompt (the default for humaneval+, mbpp+, bigcodebench*, "
                             "livecodebench) or refine's first prompt (the default for humaneval and task files)")
    parser.add_argument("--train-tasks", default=None,
                        help="the training tasks JSONL: warn when evaluated problems appear among them")
    parser.add_argument("--combine", nargs="+", default=None, metavar="DIR",
                        help="instead of evaluating: put these evaluation folders into one table (the paper's "
                             "columns), written to --output as table.md and table.json")
    add_benchmark_options(parser)
    add_sampler_arguments(parser)
    # Greedy decoding is the usual pass@1 setting; sampling several programs needs a temperature.
    parser.set_defaults(func=_run, temperature=0.0)


def select_tasks(source: str, limit: int | None = None, task_ids: list[str] | None = None,
                 args: argparse.Namespace | None = None) -> list[Task]:
    """A benchmark or a task file, cut to ``limit`` and then to ``task_ids`` (unknown ids are an error)."""
    if source == "humaneval":
        tasks = humaneval_tasks()
    elif source in NAMES:
        tasks = benchmark_tasks(source, args.source if args else None, split=args.split if args else "complete",
                                options=loader_options(source, args) if args else None)
    else:
        tasks = load_tasks(source)
    tasks = tasks[:limit]
    if task_ids:
        known = {t.task_id for t in tasks}
        missing = [i for i in task_ids if i not in known]
        if missing:
            raise ConfigError(f"--task-ids: {', '.join(missing)} not among the {len(tasks)} tasks of {source}")
        wanted = set(task_ids)
        tasks = [t for t in tasks if t.task_id in wanted]
    return tasks


def _parse_ks(text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ConfigError(f"--k must be comma-separated integers, e.g. 1,10; got {text!r}") from None


def _combine(args: argparse.Namespace) -> int:
    markdown, table = combined_table(args.combine)
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    (out / "table.md").write_text(markdown + "\n", encoding="utf-8")
    from iterpref.records import write_json

    write_json(out / "table.json", table)
    print(markdown)
    print(f"wrote {out / 'table.md'} and {out / 'table.json'}")
    return 0


def _run(args: argparse.Namespace) -> int:
    if args.combine:
        return _combine(args)
    if args.samples < 1 or (args.limit is not None and args.limit < 1) or args.wave_tasks < 1:
        raise ConfigError("--samples, --limit and --wave-tasks must be at least 1")
    if args.samples > 1 and args.temperature == 0:
        raise ConfigError(f"--samples {args.samples} with --temperature 0 gives {args.samples} identical greedy "
                        "programs; set --temperature (e.g. 0.8) for pass@k with k > 1")
    ks = _parse_ks(args.k)
    if ks and (min(ks) < 1 or max(ks) > args.samples):
        raise ConfigError(f"--k values must be between 1 and --samples ({args.samples}); got {args.k}")
    if args.source and args.tasks not in NAMES:
        raise ConfigError("--source is for a named benchmark; a tasks JSONL file is its own source")
    ids = [i.strip() for i in args.task_ids.split(",") if i.strip()] if args.task_ids else None
    tasks = select_tasks(args.tasks, args.limit, ids, args)
    if args.train_tasks:
        warning = contamination_warning(load_tasks(args.train_tasks), tasks)
        if warning:
            print(warning, file=sys.stderr)
    named = args.tasks in NAMES
    if args.prompt is None:
        args.prompt = "harness" if named and args.tasks != "humaneval" else "refine"
    if args.prompt == "harness" and not named:
        raise ConfigError("--prompt harness needs a named benchmark; a task file has refine's prompt")
    prompt_for = harness_prompt(args.tasks, args.split) if args.prompt == "harness" else None
    program = program_builder(args.tasks, args.source) if named else None
    executor = make_executor(args.executor, workers=args.workers)
    sampler = sampler_from_args(args)
    sampling = {"temperature": args.temperature, "top_p": args.top_p, "max_new_tokens": args.max_new_tokens,
                "seed": args.seed, "samples": args.samples, "prompt": args.prompt}
    settings = {"tasks": args.tasks, "split": args.split, **sampling, "executor": args.executor}
    grader = {"split": args.split, **(loader_options(args.tasks, args) if named else {})}
    if args.tasks in ("bigcodebench", "bigcodebench-hard"):
        from iterpref.tasks.bigcodebench import network_tasks

        # reported apart: they pass in the sandbox (no network) only when their tests mock the network
        grader["network_tasks"] = sorted(network_tasks(args.source) & {t.task_id for t in tasks})
    try:
        summary, _ = evaluate(tasks, sampler, executor, samples=args.samples, ks=ks, output_dir=args.output,
                              wave_tasks=args.wave_tasks, settings=settings, prompt_for=prompt_for, program=program,
                              provenance=provenance(args.tasks, args.source, executor=args.executor, grader=grader,
                                                    model=sampler.name, sampling=sampling))
    finally:
        sampler.close()
        close_executor(executor)
    print(format_summary(summary))
    print(f"wrote {Path(args.output) / 'results.jsonl'} and {Path(args.output) / 'summary.json'}")
    return 0
