"""`iterpref import-pairs`: the IterPref / Target-DPO released pair file (a JSON array of prompt, chosen and
rejected replies) as our pairs JSONL, with each pair's error region from the code inside the fences only
(iterpref.tasks.paper_pairs says what happens to prose and to replies without fences)."""

from __future__ import annotations

import argparse

from iterpref.errors import DataError
from iterpref.records import to_json_line
from iterpref.tasks.paper_pairs import import_pairs


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("import-pairs", help="convert the paper's released pair file to pairs.jsonl")
    parser.add_argument("path", help="the released JSON array of {prompt, chosen, rejected}")
    parser.add_argument("-o", "--output", required=True, help="pairs JSONL to write")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    pairs, summary = import_pairs(args.path)
    try:
        with open(args.output, "w", encoding="utf-8") as handle:
            for pair in pairs:
                handle.write(to_json_line(pair))
    except OSError as exc:
        raise DataError(f"cannot write {args.output}: {exc.strerror}") from None
    skipped = ", ".join(f"{count} {reason}" for reason, count in summary.skipped.items()) or "none"
    print(f"{summary.records} records: wrote {summary.pairs} pairs to {args.output}; skipped: {skipped}")
    if summary.unfenced:
        # Such a reply's prose, if it has any, is diffed as code: say so rather than train on it silently.
        print(f"note: {summary.unfenced} replies without a code fence were taken whole as code")
    return 0
