"""`sandbox` command line: each subcommand lives in sandbox/commands/<name>.py and exposes register(subparsers)."""

from __future__ import annotations

import argparse
import importlib
import sys

COMMANDS = ["run", "serve"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sandbox", description="Run untrusted Python against tests, safely.")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        importlib.import_module(f"sandbox.commands.{name}").register(subparsers)
    args = parser.parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
