"""`iterpref stats`: cumulative pass rate by round, filter counts and diff sizes, as a table and a plot."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from iterpref.cli import UserError
from iterpref.refine import load_trajectories
from iterpref.stats import format_table, plot, run_stats


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("stats", help="pass rate by round, pair filter counts, diff sizes")
    parser.add_argument("trajectories", help="trajectory JSONL written by `iterpref refine`")
    parser.add_argument("--pairs-summary", help="summary JSON written by `iterpref pairs`")
    parser.add_argument("--plot", help="PNG to write the pass-rate curve to")
    parser.add_argument("--json", help="write the statistics as JSON here")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    if not Path(args.trajectories).is_file():
        raise UserError(f"{args.trajectories}: no such file")
    pair_summary = None
    if args.pairs_summary:
        try:
            pair_summary = json.loads(Path(args.pairs_summary).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise UserError(f"cannot read {args.pairs_summary}: {exc}") from None
    try:
        stats = run_stats(load_trajectories(args.trajectories), pair_summary)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    print(format_table(stats))
    if args.plot:
        plot(stats, args.plot)
        print(f"wrote {args.plot}")
    if args.json:
        Path(args.json).write_text(json.dumps(stats.to_dict(), indent=2) + "\n", encoding="utf-8")
        print(f"wrote {args.json}")
    return 0
