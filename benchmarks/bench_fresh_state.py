"""What a fresh state per job costs, for each way the docker backend could give one (issue 13, docs/service.md).

    python benchmarks/bench_fresh_state.py [--jobs 40] [--runtime crun]

One trivial job at a time, each through the guard and runner of the runner image, by:
- single use: create a container, attach, start, wait for the ready line, run the job, remove the container
  (what the pool did before; the baseline);
- restart: one stopped read-only container started again for every job (a fresh tmpfs and IPC namespace each
  start), attached, run, left to exit;
- reuse: one container serving every job, with the guard's verified reset between two (the default now);
- with ``--runtime NAME``: single use under another OCI runtime registered with the engine (e.g. Debian's crun).

For each: host CPU per job (the machine's busy time from /proc/stat, less this process's own and less the
background rate measured while idle just before) and wall time per job (p50), jobs measured back to back.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench_latency import TRIVIAL  # noqa: E402  (same folder)
from bench_throughput import Measured, background_rate  # noqa: E402
from sandbox.backends.docker_pool import ContainerPool, ContainerSpec  # noqa: E402
from sandbox.backends.guard_protocol import await_ready  # noqa: E402

JOB = json.dumps({"runs": [TRIVIAL.model_dump(mode="json")], "workers": 1}).encode()


async def single_use(pool: ContainerPool, jobs: int) -> list[float]:
    walls = []
    for _ in range(jobs):
        started = time.perf_counter()
        container = await asyncio.to_thread(pool._start_one)
        container.jobs = pool.jobs_per_container  # its last job: the guard exits after answering
        exchange = await pool.exchange(container, JOB, 30)
        assert exchange.runner_exit == 0, exchange.stderr_tail
        container.close_socket()
        await asyncio.to_thread(pool._remove, container.id)
        walls.append(time.perf_counter() - started)
    return walls


async def restart(pool: ContainerPool, jobs: int) -> list[float]:
    api = pool.client.api
    container = await asyncio.to_thread(pool._start_one)  # created and started once, then stopped each time
    container.jobs = pool.jobs_per_container
    walls = []
    try:
        for i in range(jobs + 1):
            started = time.perf_counter()
            if i:  # the first start happened in _start_one
                io = await asyncio.to_thread(api.attach_socket, container.id,
                                             params={"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1})
                container.sock, container._io = getattr(io, "_sock", io), io
                await asyncio.to_thread(api.start, container.id)
                await asyncio.to_thread(await_ready, container.sock, 30)
                container.sock.setblocking(False)
            exchange = await pool.exchange(container, JOB, 30)
            assert exchange.runner_exit == 0, exchange.stderr_tail
            container.close_socket()
            await asyncio.to_thread(api.wait, container.id, timeout=30)
            if i:
                walls.append(time.perf_counter() - started)
    finally:
        await asyncio.to_thread(pool._remove, container.id)
    return walls


async def reuse(pool: ContainerPool, jobs: int) -> list[float]:
    container = await asyncio.to_thread(pool._start_one)
    walls = []
    try:
        for _ in range(jobs):
            started = time.perf_counter()
            container.jobs = 1
            exchange = await pool.exchange(container, JOB, 30)
            assert exchange.runner_exit == 0 and exchange.clean, exchange.stderr_tail
            assert await pool._await_reset(container, exchange.rest, exchange.reset_line), "reset failed"
            walls.append(time.perf_counter() - started)
    finally:
        container.close_socket()
        await asyncio.to_thread(pool._remove, container.id)
    return walls


def measure(name: str, method, pool: ContainerPool, jobs: int, background: float) -> tuple[str, float, float]:
    asyncio.run(method(pool, 3))  # warm up the engine's and our code paths
    with Measured(background) as m:
        walls = asyncio.run(method(pool, jobs))
    return name, m.others / jobs * 1000, statistics.median(walls) * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=40)
    parser.add_argument("--runtime", default=None, help="also single use under this OCI runtime (e.g. crun)")
    args = parser.parse_args()
    if args.jobs < 1:
        parser.error("--jobs must be at least 1")
    spec = ContainerSpec()
    pool = ContainerPool(spec, 1, jobs_per_container=2)
    pool.check_engine_and_image()
    background = background_rate()
    rows = [measure("single use (runc): create, start, remove", single_use, pool, args.jobs, background),
            measure("restart a stopped container", restart, pool, args.jobs, background),
            measure("reuse with a verified reset", reuse, pool, args.jobs, background)]
    if args.runtime:
        other = ContainerPool(replace(spec, runtime=args.runtime), 1, jobs_per_container=2)
        try:
            rows.append(measure(f"single use ({args.runtime})", single_use, other, args.jobs, background))
        except Exception as exc:  # an engine that cannot run it says why; that is the result
            print(f"single use ({args.runtime}): not usable here: {exc}")
    print(f"background load {background:.2f} CPU; {args.jobs} jobs each, one at a time")
    print(f"{'fresh state by':42} {'host CPU ms/job':>15} {'wall p50 ms':>12}")
    for name, cpu, wall in rows:
        print(f"{name:42} {cpu:15.1f} {wall:12.1f}")
    base = rows[0][1]
    for name, cpu, _ in rows[1:]:
        print(f"ratio CPU {name} / single use = {cpu / base:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
