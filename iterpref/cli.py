"""`iterpref` command line: each subcommand lives in iterpref/commands/<name>.py and exposes register(subparsers).

The library raises :class:`iterpref.errors.IterprefError` for problems a user can fix (bad input, an unreachable
executor or sampler, a missing model); this is the one place that turns them into one line and exit status 2,
never a traceback. Registering the commands imports no torch: the training code loads when `train` runs.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from iterpref.errors import IterprefError

COMMANDS = ["tasks", "refine", "pairs", "stats", "train", "eval", "grade", "import_pairs", "demo"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="iterpref", description="Focal preference learning from debugging.")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"iterpref.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"iterpref.commands.{name}":
                continue  # command not built into this install
            raise
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except IterprefError as exc:
        print(f"iterpref {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"iterpref {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
