"""`iterpref pairs`: build preference pairs from trajectories and report what the filters dropped."""

from __future__ import annotations

import argparse
from pathlib import Path

from iterpref.errors import ConfigError, DataError
from iterpref.pairs import FILTERS, SELECTIONS, tokenizer_counter, write_pairs
from iterpref.refine import load_trajectories


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("pairs", help="preference pairs (final passing vs earlier failing version)")
    parser.add_argument("trajectories", help="trajectory JSONL written by `iterpref refine`")
    parser.add_argument("-o", "--output", required=True, help="pairs JSONL to write")
    parser.add_argument("--summary", help="summary JSON to write (default: OUTPUT with .summary.json)")
    parser.add_argument("--select", choices=SELECTIONS, default="random", help="which failing version (default random)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random selection")
    parser.add_argument("--pairs-per-task", type=int, default=1,
                        help="pairs per task, each with a different failing ancestor of the passing attempt as "
                             "rejected (default 1)")
    parser.add_argument("--max-lines", type=int, default=20, help="drop error regions over this many lines")
    parser.add_argument("--max-tokens", type=int, default=2048,
                        help="drop pairs whose prompt+side exceeds this; 0 skips the filter (it needs transformers)")
    parser.add_argument("--tokenizer", help="tokenizer folder for --max-tokens (default: bundled SmolLM2)")
    parser.set_defaults(func=_run)


def summary_path(output: str) -> Path:
    out = Path(output)
    return out.with_name(out.stem + ".summary.json")


def _run(args: argparse.Namespace) -> int:
    if args.max_lines < 1 or args.max_tokens < 0 or args.pairs_per_task < 1:
        raise ConfigError("--max-lines and --pairs-per-task must be at least 1 and --max-tokens at least 0")
    if not Path(args.trajectories).is_file():
        raise DataError(f"{args.trajectories}: no such file")
    trajectories = load_trajectories(args.trajectories)
    count_tokens = tokenizer_counter(args.tokenizer) if args.max_tokens else None
    path = Path(args.summary) if args.summary else summary_path(args.output)
    try:
        _pairs, summary = write_pairs(trajectories, args.output, path, select=args.select, seed=args.seed,
                                      max_lines=args.max_lines, max_tokens=args.max_tokens,
                                      count_tokens=count_tokens, pairs_per_task=args.pairs_per_task)
    except DataError as exc:  # a record the pairs cannot use; the reader has no file name to give it
        raise DataError(f"{args.trajectories}: {exc}") from None
    print(f"{summary.pairs} pairs from {summary.candidates} candidates ({summary.tasks} tasks: "
          f"{summary.passed_first_try} passed first try, {summary.never_passed} never passed; "
          f"{summary.tasks_with_pairs} tasks gave pairs)")
    for name in FILTERS:
        print(f"  dropped {name:<15} {summary.dropped[name]}")
    print(f"wrote {args.output} and {path}")
    return 0
