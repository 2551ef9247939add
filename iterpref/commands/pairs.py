"""`iterpref pairs`: build preference pairs from trajectories and report what the filters dropped."""

from __future__ import annotations

import argparse
from pathlib import Path

from iterpref.cli import UserError
from iterpref.pairs import FILTERS, SELECTIONS, tokenizer_counter, write_pairs
from iterpref.refine import load_trajectories


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("pairs", help="preference pairs (final passing vs earlier failing version)")
    parser.add_argument("trajectories", help="trajectory JSONL written by `iterpref refine`")
    parser.add_argument("-o", "--output", required=True, help="pairs JSONL to write")
    parser.add_argument("--summary", help="summary JSON to write (default: OUTPUT with .summary.json)")
    parser.add_argument("--select", choices=SELECTIONS, default="random", help="which failing version (default random)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random selection")
    parser.add_argument("--max-lines", type=int, default=20, help="drop error regions over this many lines")
    parser.add_argument("--max-tokens", type=int, default=2048, help="drop pairs whose prompt+side exceeds this")
    parser.add_argument("--tokenizer", help="tokenizer folder for --max-tokens (default: bundled SmolLM2)")
    parser.set_defaults(func=_run)


def summary_path(output: str) -> Path:
    out = Path(output)
    return out.with_name(out.stem + ".summary.json")


def _run(args: argparse.Namespace) -> int:
    if args.max_lines < 1 or args.max_tokens < 1:
        raise UserError("--max-lines and --max-tokens must be at least 1")
    if not Path(args.trajectories).is_file():
        raise UserError(f"{args.trajectories}: no such file")
    try:
        trajectories = load_trajectories(args.trajectories)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    try:
        count_tokens = tokenizer_counter(args.tokenizer)
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot load a tokenizer from {args.tokenizer}: {exc}") from None
    path = Path(args.summary) if args.summary else summary_path(args.output)
    try:
        _pairs, summary = write_pairs(trajectories, args.output, path, select=args.select, seed=args.seed,
                                      max_lines=args.max_lines, max_tokens=args.max_tokens,
                                      count_tokens=count_tokens)
    except ValueError as exc:
        raise UserError(f"{args.trajectories}: {exc}") from None
    print(f"{summary.pairs} pairs from {summary.candidates} candidates ({summary.tasks} tasks: "
          f"{summary.passed_first_try} passed first try, {summary.never_passed} never passed)")
    for name in FILTERS:
        print(f"  dropped {name:<15} {summary.dropped[name]}")
    print(f"wrote {args.output} and {path}")
    return 0
