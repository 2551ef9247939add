"""2,000 programs from 32 concurrent clients through the real HTTP server on loopback: nothing lost, duplicated or
swapped, 429 only as backpressure the client retried, executor memory flat. Docker backend when available."""

from __future__ import annotations

import asyncio

import pytest

from tests.conformance.conftest import docker_problem, runner_processes
from tests.conformance.load import Executor, drive


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_2000_runs_from_32_clients_lose_nothing():
    backend = "process" if docker_problem() else "docker"
    before = runner_processes()
    executor = Executor(backend, queue=64)
    executor.start()
    try:
        report = asyncio.run(drive(executor, runs=2000, clients=32, batch=8))
    finally:
        executor.stop()
    print(f"\n[{backend}] {report.summary()}")
    assert report.lost == []
    assert report.mismatched == []
    assert report.infra_errors == 0
    assert report.rejected_429 > 0, "32 clients x 8 programs against a queue of 64 must see backpressure"
    assert max(report.rss_mb) - report.rss_mb[0] < 100, report.rss_mb
    assert runner_processes() - before == set()
