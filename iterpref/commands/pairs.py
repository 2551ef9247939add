"""`iterpref pairs`: build preference pairs from trajectories and report what the filters dropped."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from iterpref.cli import UserError
from iterpref.pairs import FILTERS, SELECTIONS, build_pairs, tokenizer_counter
from iterpref.records import to_json_line
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
    prompts = {}
    for task_id, attempts in trajectories.items():
        users = [m["content"] for m in attempts[0].messages if m.get("role") == "user"]
        if not users:
            raise UserError(f"{args.trajectories}: task {task_id!r} round 0 has no user message to use as prompt")
        prompts[task_id] = users[0]
    try:
        count_tokens = tokenizer_counter(args.tokenizer)
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot load a tokenizer from {args.tokenizer}: {exc}") from None
    pairs, summary = build_pairs(trajectories, prompts, select=args.select, seed=args.seed,
                                 max_lines=args.max_lines, max_tokens=args.max_tokens, count_tokens=count_tokens)
    with open(args.output, "w", encoding="utf-8") as handle:
        for pair in pairs:
            handle.write(to_json_line(pair))
    path = Path(args.summary) if args.summary else summary_path(args.output)
    path.write_text(json.dumps(summary.to_dict(), indent=2) + "\n", encoding="utf-8")
    print(f"{summary.pairs} pairs from {summary.candidates} candidates ({summary.tasks} tasks: "
          f"{summary.passed_first_try} passed first try, {summary.never_passed} never passed)")
    for name in FILTERS:
        print(f"  dropped {name:<15} {summary.dropped[name]}")
    print(f"wrote {args.output} and {path}")
    return 0
