"""Throughput and latency of the executor service under load, against the same programs run directly.

    python benchmarks/bench_load.py [--backend auto|docker|process] [--runs 2000] [--clients 32] [--batch 16]

Load: ``sandbox serve`` on loopback, ``--clients`` concurrent AsyncClients sending batches of ``--batch`` programs
(mostly ordinary, some hostile, every verdict known; see benchmarks/load.py), against a queue small enough
that 429 backpressure happens and is retried. Baseline, measured in the same run: the same programs as one batch
through the process backend in this process (no HTTP, no queue, same 2 workers). Prints p50/p99 request latency,
lost and mismatched results, and ``ratio = service runs/s / direct runs/s``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tqdm import tqdm  # noqa: E402

from benchmarks.load import check, drive, program  # noqa: E402
from sandbox.launch import docker_problem, start_service  # noqa: E402
from sandbox.local import LocalExecutor  # noqa: E402


def direct(runs: int, workers: int) -> tuple[float, int]:
    """Seconds for the same programs as one process-backend batch, and how many came back wrong."""
    pairs = [program(n) for n in range(runs)]
    began = time.perf_counter()
    results = LocalExecutor(workers=workers).run_batch([request for request, _ in pairs])
    seconds = time.perf_counter() - began
    return seconds, sum(check(n, r, verdict) is not None for n, ((_, verdict), r) in enumerate(zip(pairs, results)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=["auto", "docker", "process"], default="auto")
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--queue", type=int, default=64, help="the service's queue capacity in programs")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--pool-size", type=int, default=2, help="warm runner containers (docker backend)")
    args = parser.parse_args()
    if min(args.runs, args.clients, args.batch, args.queue, args.workers, args.pool_size) < 1:
        parser.error("--runs, --clients, --batch, --queue, --workers and --pool-size must be at least 1")
    backend = args.backend
    if backend != "process":
        problem = docker_problem()
        if problem and backend == "docker":
            parser.error(problem)
        backend = "process" if problem else "docker"

    with start_service(backend, queue=args.queue, pool_size=args.pool_size, workers=args.workers) as service:
        with tqdm(total=args.runs, desc=f"load ({backend})", unit="run") as bar:
            report = asyncio.run(drive(service, args.runs, args.clients, args.batch, progress=bar.update))
    print(f"service [{backend}]: {report.summary()}")
    base_s, base_wrong = direct(args.runs, args.workers)
    print(f"baseline [process backend, one direct batch, {args.workers} workers]: {args.runs} runs in {base_s:.1f} s "
          f"({args.runs / base_s:.1f} runs/s), wrong {base_wrong}")
    print(f"p50 {report.percentile(0.5) * 1000:.0f} ms  p99 {report.percentile(0.99) * 1000:.0f} ms")
    print(f"ratio = service runs/s / direct runs/s = {(args.runs / report.seconds) / (args.runs / base_s):.2f}")
    ok = not report.lost and not report.mismatched and not report.infra_errors and not base_wrong
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
