"""2,000 programs from 32 concurrent clients through the real HTTP server on loopback: nothing lost, duplicated or
swapped, 429 only as backpressure the client retried, executor memory flat. Docker backend when available."""

from __future__ import annotations

import asyncio

import pytest

from tests.conformance.conftest import docker_problem, runner_processes, still_alive
from tests.conformance.load import Executor, drive


@pytest.mark.slow
@pytest.mark.timeout(420)
def test_2000_runs_from_32_clients_lose_nothing():
    backend = "process" if docker_problem() else "docker"
    # Batches of 16 over 2 warm containers: each container serves 8 programs (the docker backend's chunk size).
    executor = Executor(backend, queue=64, pool_size=2)
    executor.start()
    try:
        report = asyncio.run(drive(executor, runs=2000, clients=32, batch=16))
        runners = runner_processes(executor.process.pid)
    finally:
        executor.stop()
    print(f"\n[{backend}] {report.summary()}")
    assert report.lost == []
    assert report.mismatched == []
    assert report.infra_errors == 0
    assert report.rejected_429 > 0, "32 clients x 16 programs against a queue of 64 must see backpressure"
    assert max(report.rss_mb) - report.rss_mb[0] < 100, report.rss_mb
    assert still_alive(runners) == set()
