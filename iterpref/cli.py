"""`iterpref` command line: each subcommand lives in iterpref/commands/<name>.py and exposes register(subparsers).

Errors a user can fix (bad input, unreachable executor or sampler) are raised as ``UserError`` and printed as
one line, never as a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys

COMMANDS = ["tasks", "refine", "pairs", "stats", "train", "eval", "demo"]


class UserError(Exception):
    """A problem the user can fix; its message says how."""


def main(argv: list[str] | None = None) -> int:
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
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except UserError as exc:
        print(f"iterpref {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"iterpref {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    # Re-import so `python -m iterpref.cli` uses the same classes (UserError) as the installed script.
    from iterpref.cli import main as _main

    sys.exit(_main())
