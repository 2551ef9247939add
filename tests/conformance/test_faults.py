"""Faults around the executor: a runner container killed mid-run, Docker unreachable, the executor killed and
restarted mid-load, and retries that must give the same answer."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time

import pytest
from fastapi.testclient import TestClient

from benchmarks.load import drive
from sandbox.backends.process import ProcessBackend
from sandbox.launch import start_service
from sandbox.models import RunRequest
from sandbox.server import ServiceSettings, create_app
from tests.conformance.conftest import runner_processes, still_alive
from tests.sandbox.test_docker_backend import kill_busy_soon

SLOW = {"code": "import time\ndef answer():\n    time.sleep(8)\n    return 42\n",
        "tests": [{"kind": "call", "entry_point": "answer", "expected": 42}], "limits": {"time_s": 10}}
# Asked at setup, once per session (tests/conftest.py): importing this module does not contact Docker.
needs_docker = pytest.mark.usefixtures("needs_docker")


def _docker_service(**settings):
    from sandbox.backends.docker import DockerBackend, DockerSettings

    return DockerBackend(DockerSettings(pool_size=1, **settings))


@pytest.mark.docker
@needs_docker
@pytest.mark.timeout(120)
def test_runner_container_killed_mid_run_is_a_retryable_infra_error():
    import docker

    backend = _docker_service()
    with TestClient(create_app(backend, ServiceSettings(token=None))) as client:
        while client.get("/readyz").status_code != 200:
            time.sleep(0.1)

        killer = kill_busy_soon(backend.pool, docker.from_env().api)
        result = client.post("/v1/runs", json=SLOW).json()  # a hang would be ended by pytest-timeout
        killer.join()
        assert result["status"] == "infra_error" and result["retryable"] is True, result


@pytest.mark.docker
@needs_docker
@pytest.mark.timeout(60)
def test_docker_unreachable_fails_readyz_and_runs_answer_503():
    import docker

    from sandbox.backends.docker import DockerBackend, DockerSettings
    from sandbox.backends.docker_pool import ContainerPool, ContainerSpec

    pool = ContainerPool(ContainerSpec(), 1, reap_interval_s=0.5)
    backend = DockerBackend(DockerSettings(pool_size=1, acquire_timeout_s=5), pool=pool)
    engine = pool.client  # the real engine, made on first use
    with TestClient(create_app(backend, ServiceSettings(token=None))) as client:
        try:
            while client.get("/readyz").status_code != 200:
                time.sleep(0.1)
            # The engine goes away while the service runs (a socket nobody listens on stands in for it).
            pool._client = docker.DockerClient(base_url="unix:///nonexistent/docker.sock", version="1.41", timeout=2)
            deadline = time.monotonic() + 60  # the reaper notices in about a second; 60 s is for a loaded machine
            while client.get("/readyz").status_code == 200 and time.monotonic() < deadline:
                time.sleep(0.1)
            ready = client.get("/readyz")
            assert ready.status_code == 503 and "Docker" in ready.json()["reason"], ready.text
            response = client.post("/v1/runs", json={**SLOW, "limits": {"time_s": 1}})
            assert response.status_code == 503, response.text
            assert "Docker" in response.text
        finally:
            pool._client = engine  # so that shutdown removes our containers


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_executor_killed_mid_load_leaves_no_orphans_after_restart():
    # The process backend: its runners get end-of-input and a broken stdout when the executor dies.
    first = start_service("process", queue=64, workers=2)
    load = threading.Thread(target=lambda: _swallow(asyncio.run, drive(first, runs=400, clients=16, batch=8)))
    load.start()
    deadline = time.monotonic() + 30
    orphans = set()
    while not orphans and time.monotonic() < deadline:
        time.sleep(0.5)
        orphans = runner_processes(first.pid)
    assert orphans, "the load should have runners in flight when the executor is killed"
    first.process.send_signal(signal.SIGKILL)  # no lifespan shutdown: whatever it started is orphaned
    first.stop()  # reaps it and closes its log
    load.join()
    second = start_service("process", queue=64, workers=2)
    try:
        assert still_alive(orphans, wait_s=60) == set()
        after = asyncio.run(drive(second, runs=40, clients=4, batch=8))
        assert after.lost == [] and after.mismatched == []
    finally:
        second.stop()


@pytest.mark.docker
@needs_docker
@pytest.mark.timeout(120)
def test_restarted_docker_executor_reaps_a_started_but_unattached_orphan():
    import subprocess
    import sys

    import docker

    from sandbox.backends.docker_pool import ContainerSpec
    from sandbox.backends.reaper import OWNER_LABEL, OWNER_PROCESS_LABEL, ROLE_LABEL, RUNNER_ROLE, process_identity

    api = docker.from_env().api
    # The executor that made it: a process of this host, SIGKILLed since (its identity label outlives it).
    executor = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    dead_identity = process_identity(executor.pid)
    executor.kill()
    executor.wait()
    made = []
    try:
        for owner, identity in ((f"dead{os.getpid()}", dead_identity), (f"live{os.getpid()}", process_identity(os.getpid()))):
            labels = {ROLE_LABEL: RUNNER_ROLE, OWNER_LABEL: owner, OWNER_PROCESS_LABEL: identity}
            made.append(api.create_container(**ContainerSpec().create_kwargs(api, labels))["Id"])
            api.start(made[-1])  # what an executor leaves when it dies between start and attach
        orphan, live = made
        backend = _docker_service()
        with TestClient(create_app(backend, ServiceSettings(token=None))) as client:
            deadline = time.monotonic() + 150  # covers one periodic reap (every 30 s), on a loaded machine too
            while (orphan[:12] in _ids() or client.get("/readyz").status_code != 200) and time.monotonic() < deadline:
                time.sleep(0.5)
            assert client.get("/readyz").status_code == 200
            assert orphan[:12] not in _ids(), "the orphan runner container is still there"
            # Another instance whose process still runs (here: this one) keeps its container.
            assert live[:12] in _ids(), "a live instance's container was reaped"
    finally:
        for container in made:
            try:
                api.remove_container(container, force=True)
            except docker.errors.NotFound:
                pass


def _swallow(function, *args):
    try:
        function(*args)
    except Exception:  # the executor was killed under this load on purpose
        pass


def _ids() -> set[str]:
    import docker

    items = docker.from_env().api.containers(all=True, filters={"label": "iterpref.sandbox=runner"})
    return {c["Id"][:12] for c in items}


@pytest.mark.timeout(120)
def test_a_retried_request_gets_the_same_result():
    request = RunRequest(code="import random\ndef answer(xs):\n    return sorted(xs)[len(xs) // 2]\n",
                         tests=[{"kind": "call", "entry_point": "answer", "args": [[3, 1, 2]], "expected": 2},
                                {"kind": "call", "entry_point": "answer", "args": [[]], "expected": None},
                                {"kind": "assert", "code": "assert answer([5, 4]) == 4"}])

    async def twice():
        backend = ProcessBackend(workers=2)
        await backend.start()
        return [await backend.run_batch([request]) for _ in range(2)]

    first, second = asyncio.run(twice())
    strip = lambda r: [(t.verdict, t.error_type, t.message, t.line) for t in r[0].tests]  # noqa: E731
    assert strip(first) == strip(second)
    assert [t.verdict.value for t in first[0].tests] == ["pass", "error", "fail"]
