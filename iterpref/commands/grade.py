"""`iterpref grade`: judge samples made elsewhere (vLLM, another harness) on a benchmark, as its harness would.

Samples are the JSONL the official tools read: ``task_id`` with ``solution`` (a whole program) or
``completion`` (appended to the task's prompt), used as given. Writes one line per sample (``GradedSample``:
each test's verdict, the failing test and input, EvalPlus's base and plus status) and a summary with pass@k.
"""

from __future__ import annotations

import argparse
from dataclasses import asdict
from pathlib import Path

from iterpref.commands.tasks import add_benchmark_options, loader_options
from iterpref.errors import ConfigError
from iterpref.evaluate import grade_samples, provenance, read_samples, summarize_graded
from iterpref.executor import close_executor, make_executor
from iterpref.records import to_json_line, write_json
from iterpref.tasks import load_tasks
from iterpref.tasks.benchmarks import NAMES, benchmark_tasks, program_builder


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("grade", help="grade a samples JSONL (task_id + solution|completion) made elsewhere")
    parser.add_argument("samples", help="samples JSONL: task_id with solution or completion")
    parser.add_argument("--tasks", required=True, help=f"one of {', '.join(NAMES)}, or a tasks JSONL file")
    parser.add_argument("-o", "--output", default=None,
                        help="per-sample verdicts JSONL (default: SAMPLES with _graded.jsonl); the summary goes "
                             "beside it as .summary.json")
    parser.add_argument("--executor", default="local", help="`local` or the URL of `sandbox serve` (default local)")
    parser.add_argument("--workers", type=int, default=None, help="local executor: parallel programs")
    add_benchmark_options(parser)
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    named = args.tasks in NAMES
    if named:
        tasks = benchmark_tasks(args.tasks, args.source, split=args.split, options=loader_options(args.tasks, args))
    elif args.source:
        raise ConfigError("--source is for a named benchmark; a tasks JSONL file is its own source")
    else:
        tasks = load_tasks(args.tasks)
    samples = read_samples(args.samples)
    output = Path(args.output) if args.output else Path(args.samples).with_name(Path(args.samples).stem + "_graded.jsonl")
    executor = make_executor(args.executor, workers=args.workers)
    evalplus = args.tasks in ("humaneval+", "mbpp+")
    try:
        graded = grade_samples(tasks, samples, executor, program=program_builder(args.tasks, args.source) if named else None,
                               fail_fast=not evalplus)
    finally:
        close_executor(executor)
    with open(output, "w", encoding="utf-8") as handle:
        for sample in graded:
            handle.write(to_json_line(asdict(sample)))
    summary = summarize_graded(graded)
    if args.tasks in ("bigcodebench", "bigcodebench-hard"):
        # tasks that reach the network cannot pass in the sandbox unless their tests mock it: reported apart
        from iterpref.tasks.bigcodebench import network_tasks

        network = network_tasks(args.source) & {g.task_id for g in graded}
        summary["network_tasks"] = sorted(network)
        offline = [g for g in graded if g.task_id not in network]
        summary["pass_at_k_without_network"] = summarize_graded(offline)["pass_at_k"] if offline else None
    summary["provenance"] = provenance(args.tasks, args.source, executor=args.executor,
                                       grader={"split": args.split, **loader_options(args.tasks, args)} if named else {})
    summary_path = output.with_suffix(".summary.json")
    write_json(summary_path, summary)
    for k, value in summary["pass_at_k"].items():
        base = summary["base_pass_at_k"]
        extra = f"  (base inputs only: {100 * base[k]:.2f}%)" if base else ""
        print(f"pass@{k}: {100 * value:.2f}%{extra}")
    print(f"{summary['samples']} samples of {summary['tasks']} tasks; wrote {output} and {summary_path}")
    return 0
