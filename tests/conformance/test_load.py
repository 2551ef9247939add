"""2,000 programs from 32 concurrent clients through the real HTTP server on loopback: nothing lost, duplicated or
swapped, 429 only as backpressure the client retried, executor memory flat. Docker backend when available."""

from __future__ import annotations

import asyncio

import pytest

from benchmarks.load import drive
from sandbox.launch import start_service
from tests.conformance.conftest import runner_processes, still_alive


@pytest.mark.slow
@pytest.mark.timeout(420)
def test_2000_runs_from_32_clients_lose_nothing(docker_unusable):
    backend = "process" if docker_unusable else "docker"
    # Batches of 16 over 2 warm containers: each container serves 8 programs (the docker backend's chunk size).
    with start_service(backend, queue=64, pool_size=2, workers=2) as service:
        report = asyncio.run(drive(service, runs=2000, clients=32, batch=16))
        runners = runner_processes(service.pid)
    print(f"\n[{backend}] {report.summary()}")
    assert report.lost == []
    assert report.mismatched == []
    assert report.infra_errors == 0
    assert report.rejected_429 > 0, "32 clients x 16 programs against a queue of 64 must see backpressure"
    assert max(report.rss_mb) - report.rss_mb[0] < 100, report.rss_mb
    assert still_alive(runners) == set()
