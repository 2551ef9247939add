"""Refine loop overhead: trajectories per second of `iterpref.refine` with an instant scripted sampler, against
the executor's own throughput on exactly the same programs sent as one batch.

    python benchmarks/bench_refine_throughput.py [--tasks 120] [--max-rounds 3] [--executor local]

Prints both rates and ratio = executor rate / refine rate (target: <= 1.5). The loop cannot overlap rounds of a
task, so the gap is what round-by-round batching costs plus extraction, prompts and fsynced writes.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without installing

from iterpref.executor import close_executor, make_executor
from iterpref.records import Task
from iterpref.refine import refine
from iterpref.refine.extract import extract_code
from iterpref.samplers.scripted import ScriptedSampler
from iterpref.tasks import to_request


def make_workload(count: int, max_rounds: int) -> tuple[list[Task], dict[str, list[str]]]:
    """Tasks that pass at round i % (max_rounds + 2): some first try, some after repairs, some never."""
    tasks, script = [], {}
    for i in range(count):
        task_id = f"bench/{i}"
        tasks.append(Task(task_id=task_id, prompt=f"def f{i}(xs): ...", entry_point=f"f{i}",
                          tests=[{"kind": "call", "entry_point": f"f{i}", "args": [[k, i, 3]], "expected": k + i + 3}
                                 for k in range(5)]))
        good = f"```python\ndef f{i}(xs):\n    total = 0\n    for x in xs:\n        total += x\n    return total\n```"
        bad = [f"```python\ndef f{i}(xs):\n    return sum(xs) - {r + 1}\n```" for r in range(max_rounds + 1)]
        pass_round = i % (max_rounds + 2)  # == max_rounds + 1 means it never passes
        script[task_id] = bad[:pass_round] + ([good] if pass_round <= max_rounds else [])
    return tasks, script


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=120)
    parser.add_argument("--max-rounds", type=int, default=3)
    parser.add_argument("--executor", default="local")
    args = parser.parse_args()
    tasks, script = make_workload(args.tasks, args.max_rounds)
    executor = make_executor(args.executor)
    try:
        by_id = {t.task_id: t for t in tasks}
        programs = [to_request(by_id[tid], extract_code(reply, by_id[tid].entry_point))
                    for tid, replies in script.items() for reply in replies[: args.max_rounds + 1]]
        executor.run_batch(programs[:8])  # warm up: start worker processes before timing either side

        start = time.perf_counter()
        results = executor.run_batch(programs)
        executor_s = time.perf_counter() - start
        assert len(results) == len(programs)

        with tempfile.TemporaryDirectory() as folder:
            start = time.perf_counter()
            summary = refine(tasks, ScriptedSampler(script), executor, Path(folder) / "t.jsonl",
                             max_rounds=args.max_rounds, progress=False)
            refine_s = time.perf_counter() - start
        assert summary.attempts_written == len(programs), (summary.attempts_written, len(programs))
    finally:
        close_executor(executor)
    executor_rate = len(programs) / executor_s
    refine_rate = len(programs) / refine_s
    print(f"programs: {len(programs)} in {len(tasks)} trajectories, up to {args.max_rounds + 1} rounds")
    print(f"baseline executor.run_batch (one batch): {executor_rate:.1f} programs/s ({executor_s:.2f} s)")
    print(f"refine loop (scripted sampler):        {refine_rate:.1f} programs/s ({refine_s:.2f} s), "
          f"{len(tasks) / refine_s:.1f} trajectories/s")
    print(f"ratio executor/refine: {executor_rate / refine_rate:.2f}x (target <= 1.5x)")


if __name__ == "__main__":
    main()
