"""`iterpref stats`: cumulative pass rate by round, filter counts and diff sizes, as a table and a plot."""

from __future__ import annotations

import argparse
from pathlib import Path

from iterpref.errors import DataError
from iterpref.records import read_json, write_json
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
        raise DataError(f"{args.trajectories}: no such file")
    pair_summary = read_json(args.pairs_summary) if args.pairs_summary else None
    stats = run_stats(load_trajectories(args.trajectories), pair_summary)
    print(format_table(stats))
    if args.plot:
        plot(stats, args.plot)
        print(f"wrote {args.plot}")
    if args.json:
        write_json(args.json, stats.to_dict())
        print(f"wrote {args.json}")
    return 0
