"""Single-run latency over HTTP from a warm pool of runner containers, against a cold container per run.

Starts `sandbox serve --backend docker` on a free port, sends one trivial program at a time to POST /v1/runs and
reports p50/p99 end to end (client send to parsed reply). Baseline, in the same run: the same job through a fresh
container per run (create, start, attach, answer), which is what a pool-less executor pays.
Arrivals are paced to the pool's refill rate (each run starts with the pool full and no container being started or
removed), which is what "from a warm pool" means; --back-to-back also measures an unpaced stream, where every run
competes with the engine's work of replacing the previous container.

--checker also measures the checker's cost: the same trivial function judged by an ``assert`` test (a checker
process per test, the candidate answering over a socket) and by a ``call`` test (no checker), alternating in one
run through the same warm pool.

    python benchmarks/bench_latency.py [--runs 200] [--cold-runs 15] [--pool-size 4] [--checker]
Targets: warm p50 <= 15 ms, p99 <= 50 ms; the checker adds at most 3 ms of p50.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from pathlib import Path

import httpx
from tqdm import tqdm

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench_service_humaneval import engine_cpu_s, pool_full, process_cpu_s, wait_pool_full  # noqa: E402  (same folder)
from sandbox.backends.docker_pool import ContainerPool, ContainerSpec  # noqa: E402
from sandbox.launch import start_service  # noqa: E402
from sandbox.models import RunRequest  # noqa: E402

TRIVIAL = RunRequest(code="def f(x):\n    return x + 1\n",
                     tests=[{"kind": "call", "entry_point": "f", "args": [1], "expected": 2}])
TRIVIAL_ASSERT = RunRequest(code="def f(x):\n    return x + 1\n", tests=[{"kind": "assert", "code": "assert f(1) == 2"}])


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


def warm_latencies(url: str, runs: int, pool_size: int, paced: bool, runner_ms: list | None = None,
                   request: RunRequest = TRIVIAL) -> list[float]:
    """End-to-end milliseconds per run; ``runner_ms`` collects the runner's own time for each (its duration_ms)."""
    body = request.model_dump(mode="json")
    out = []
    with httpx.Client(base_url=url, timeout=60) as http:
        for _ in tqdm(range(runs), desc="warm pool" + (" (paced)" if paced else " (back to back)"), leave=False):
            while paced and not pool_full(http, pool_size):
                time.sleep(0.005)
            started = time.perf_counter()
            reply = http.post("/v1/runs", json=body)
            answer = reply.json()
            out.append((time.perf_counter() - started) * 1000)
            assert answer["passed"], answer
            if runner_ms is not None:
                runner_ms.append(answer["duration_ms"])
    return out


async def cold_latencies(runs: int) -> list[float]:
    """A fresh container per run: the pool with size 1 and nothing pre-started when the clock starts."""
    import json

    job = json.dumps({"runs": [TRIVIAL.model_dump(mode="json")], "workers": 1}).encode()
    pool = ContainerPool(ContainerSpec(), 1, jobs_per_container=1)  # single use: its guard exits after the job
    pool.check_engine_and_image()
    out = []
    for _ in tqdm(range(runs), desc="cold container", leave=False):
        started = time.perf_counter()
        container = await asyncio.to_thread(pool._start_one)  # create, start, attach: no warm pool
        container.jobs = 1
        exchange = await pool.exchange(container, job, 30)
        out.append((time.perf_counter() - started) * 1000)
        assert exchange.runner_exit == 0
        container.close_socket()
        await asyncio.to_thread(pool._remove, container.id)
    return out


def checker_cost(url: str, runs: int, pool_size: int) -> dict[str, tuple[list[float], list[float]]]:
    """End-to-end and runner milliseconds of a call test and of an assert test of the same function, alternating
    one run of each so that both see the same machine."""
    out: dict[str, tuple[list[float], list[float]]] = {"call": ([], []), "assert": ([], [])}
    for _ in tqdm(range(runs), desc="call vs assert", leave=False):
        for name, request in (("call", TRIVIAL), ("assert", TRIVIAL_ASSERT)):
            total, runner = out[name]
            total += warm_latencies(url, 1, pool_size, paced=True, runner_ms=runner, request=request)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--cold-runs", type=int, default=15)
    parser.add_argument("--pool-size", type=int, default=4)
    parser.add_argument("--back-to-back", action="store_true", help="also measure unpaced arrivals")
    parser.add_argument("--checker", action="store_true", help="also measure an assert test against a call test")
    args = parser.parse_args()

    with start_service("docker", pool_size=args.pool_size) as server:
        url = server.url
        with httpx.Client(base_url=url, timeout=5) as http:
            wait_pool_full(http, args.pool_size, server, timeout=60)
        warm_latencies(url, 10, args.pool_size, paced=True)  # warm up HTTP and code paths
        runner_ms: list[float] = []
        cpu_before = engine_cpu_s() + process_cpu_s(server.pid)
        warm = warm_latencies(url, args.runs, args.pool_size, paced=True, runner_ms=runner_ms)
        with httpx.Client(base_url=url, timeout=5) as http:
            while not pool_full(http, args.pool_size):  # count replacing the last containers too
                time.sleep(0.01)
        cpu_per_run_ms = (engine_cpu_s() + process_cpu_s(server.pid) - cpu_before) / args.runs * 1000
        unpaced = warm_latencies(url, args.runs, args.pool_size, paced=False) if args.back_to_back else None
        checker = checker_cost(url, args.runs, args.pool_size) if args.checker else None
    cold = asyncio.run(cold_latencies(args.cold_runs))

    p50, p99 = percentile(warm, 50), percentile(warm, 99)
    cold50 = statistics.median(cold)
    print(f"cpus={os.cpu_count()} pool_size={args.pool_size} runs={args.runs}")
    print(f"warm pool over HTTP   : p50 {p50:6.1f} ms  p99 {p99:6.1f} ms  mean {statistics.mean(warm):6.1f} ms")
    overhead = [w - r for w, r in zip(warm, runner_ms)]
    print(f"  of which the runner : p50 {percentile(runner_ms, 50):6.1f} ms; the rest (HTTP, container stream, guard): "
          f"p50 {percentile(overhead, 50):6.1f} ms  p99 {percentile(overhead, 99):6.1f} ms")
    if unpaced:
        print(f"back to back over HTTP: p50 {percentile(unpaced, 50):6.1f} ms  p99 {percentile(unpaced, 99):6.1f} ms")
    print(f"CPU per warm run: {cpu_per_run_ms:.0f} ms (every container on the host + engine + service, the reset "
          f"between jobs included); load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    if checker:
        for name, (total, runner) in checker.items():
            print(f"{name:6} test, warm pool : p50 {percentile(total, 50):6.1f} ms  p99 {percentile(total, 99):6.1f} ms;"
                  f" runner p50 {percentile(runner, 50):6.1f} ms")
        added = percentile(checker["assert"][0], 50) - percentile(checker["call"][0], 50)
        print(f"checker's added p50: {added:+.1f} ms end to end, "
              f"{percentile(checker['assert'][1], 50) - percentile(checker['call'][1], 50):+.1f} ms in the runner "
              f"(target <= 3 ms: {'MET' if added <= 3 else 'MISSED'})")
    print(f"cold container (base) : p50 {cold50:6.1f} ms  p99 {percentile(cold, 99):6.1f} ms")
    print(f"ratio warm p50 / cold p50 = {p50 / cold50:.3f}")
    print(f"targets: p50 <= 15 ms {'MET' if p50 <= 15 else 'MISSED'}; p99 <= 50 ms {'MET' if p99 <= 50 else 'MISSED'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
