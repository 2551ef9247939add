"""Services under test for the conformance suite: the HTTP app over the process backend, and over the docker
backend when an engine and the runner image are there; plus the leak checks every case runs."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from sandbox.backends.process import ProcessBackend, confines
from sandbox.server import ServiceSettings, create_app

RUNNER_MARK = "sandbox/runner.py"
CONFINED_UID_FLOOR = 1_000_000  # confined runners pick their uid above this (sandbox/runner.py)


def descendants(root: int | None = None) -> set[int]:
    """Live (non-zombie) processes below ``root`` (default: this test process). Other helpers' runners on the
    same host are not ours to count."""
    root = os.getpid() if root is None else root
    children: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            fields = Path(f"/proc/{name}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] != "Z":
            children.setdefault(int(fields[1]), []).append(int(name))
    found, todo = set(), [root]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def runner_processes(root: int | None = None) -> set[int]:
    """Our runners and what runs inside them: descendants whose command line names the runner or whose uid is a
    confined runner's."""
    found = set()
    for pid in descendants(root):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            uid = int(Path(f"/proc/{pid}/status").read_text().split("\nUid:")[1].split()[0])
        except (OSError, IndexError, ValueError):
            continue
        if RUNNER_MARK.encode() in cmdline or uid >= CONFINED_UID_FLOOR:
            found.add(pid)
    return found


def still_alive(pids: set[int], wait_s: float = 30.0) -> set[int]:
    """Which of ``pids`` are still running (not zombies) after waiting up to ``wait_s``."""
    deadline = time.monotonic() + wait_s
    while True:
        alive = set()
        for pid in pids:
            try:
                if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
                    alive.add(pid)
            except (OSError, IndexError):
                pass
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.2)


def runner_containers(owner: str) -> set[str]:
    """Runner containers made by the pool with this owner label (other helpers' pools may run beside ours)."""
    import docker

    client = docker.from_env()
    labels = ["iterpref.sandbox=runner", f"iterpref.sandbox.owner={owner}"]
    # The low-level call lists without inspecting each one (which races with the pool's removals).
    return {c["Id"] for c in client.api.containers(all=True, filters={"label": labels})}


class Service:
    """One backend behind the real HTTP app, with what the leak checks need to know about it."""

    def __init__(self, name: str, client: TestClient, backend) -> None:
        self.name, self.client, self.backend = name, client, backend

    def post(self, body: dict) -> dict:
        response = self.client.post("/v1/runs", json=body)
        assert response.status_code == 200, response.text
        return response.json()

    def healthy(self, wait_s: float = 30.0) -> tuple[bool, str]:
        """/healthz answers and /readyz turns ready within ``wait_s`` (a used container's replacement may still
        be starting)."""
        if self.client.get("/healthz").status_code != 200:
            return False, "healthz failed"
        deadline = time.monotonic() + wait_s
        while True:
            response = self.client.get("/readyz")
            if response.status_code == 200 or time.monotonic() > deadline:
                return response.status_code == 200, response.text
            time.sleep(0.1)

    def leftovers(self, before_pids: set[int], wait_s: float = 10.0) -> list[str]:
        """What is left of finished runs (waiting a little for asynchronous clean-up): descriptions, or []."""
        deadline = time.monotonic() + wait_s
        while True:
            left = [f"process {pid}" for pid in runner_processes() - before_pids]
            if self.name == "docker":
                pool = self.backend.pool
                tracked = {c.id for c in list(pool._idle._queue)} | set(pool._busy) | set(pool._resetting)
                left += [f"container {cid[:12]}" for cid in runner_containers(self.backend.pool.owner) - tracked]
            if not left or time.monotonic() > deadline:
                return left
            time.sleep(0.1)


def _process_service():
    if not confines():
        pytest.skip("the process backend confines runners only as root with namespaces; the suite's verdicts assume it")
    return ProcessBackend(workers=2)


# What the runner image carries of this checkout: (path in the image, path here).
IMAGE_FILES = (("/opt/sandbox/runner.py", "sandbox/runner.py"),
               ("/opt/sandbox/guard.py", "sandbox/backends/container_guard.py"),
               ("/opt/sandbox/container_reset.py", "sandbox/backends/container_reset.py"))


def stale_image() -> str | None:
    """Why the runner image does not carry this checkout's runner, guard and reset, or None (its verdicts would
    be another's)."""
    import docker

    from sandbox.backends.docker_pool import default_runner_image

    image = default_runner_image()  # SANDBOX_RUNNER_IMAGE, like the service
    inside = docker.from_env().containers.run(image, entrypoint=["cat", *(path for path, _ in IMAGE_FILES)],
                                              network_disabled=True, remove=True)
    here = b"".join((Path(__file__).resolve().parents[2] / local).read_bytes() for _, local in IMAGE_FILES)
    if inside != here:
        return f"{image} holds another runner, guard or reset than this checkout: run images/build-images.sh"
    return None


def _docker_service():
    stale = stale_image()
    if stale:
        pytest.fail(stale)
    from sandbox.backends.docker import DockerBackend, DockerSettings

    # Two workers per container: the neighbour test needs two programs of one batch running at once in one.
    return DockerBackend(DockerSettings(pool_size=2, workers_per_container=2))


BACKENDS = {"process": _process_service, "docker": _docker_service}


@pytest.fixture(scope="module", params=[pytest.param("process"), pytest.param("docker", marks=pytest.mark.docker)])
def service(request):
    if request.param == "docker":
        request.getfixturevalue("needs_docker")  # skips here when there is no engine or runner image
    backend = BACKENDS[request.param]()
    with TestClient(create_app(backend, ServiceSettings(token=None))) as client:
        service = Service(request.param, client, backend)
        assert service.healthy(60) == (True, service.client.get("/readyz").text)
        yield service
