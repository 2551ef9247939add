"""sandbox.launch: the free port, the Docker check and `sandbox serve` as a child process, started and stopped."""

from __future__ import annotations

import socket

import pytest

from sandbox.client import Client
from sandbox.launch import ServiceDidNotStart, docker_problem, free_port, start_service
from sandbox.models import RunRequest
from tests.conformance.conftest import descendants, still_alive


def test_free_port_can_be_bound():
    port = free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))
        sock.listen()
        assert sock.getsockname()[1] == port


def test_docker_problem_names_an_engine_that_is_not_there(monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    problem = docker_problem()
    assert isinstance(problem, str) and "Docker engine" in problem
    assert "\n" not in problem and len(problem) <= 400


@pytest.mark.timeout(120)
def test_process_service_answers_a_run_and_stops_leaving_no_process():
    request = RunRequest(code="def f(x):\n    return 2 * x\n",
                         tests=[{"kind": "call", "entry_point": "f", "args": [4], "expected": 8}])
    with start_service("process", workers=1, token="secret") as service:
        with Client(service.url, token="secret") as client:
            assert client.run(request).passed
        started = descendants(service.pid) | {service.pid}  # the server and what it runs (the runners' zygote)
        log_path = service.log_path
        assert log_path.exists()
    assert service.process.returncode is not None
    assert still_alive(started) == set()
    assert not log_path.exists(), "a temporary log is removed with the service"


@pytest.mark.timeout(60)
def test_a_service_that_exits_at_once_raises_with_its_log_tail(tmp_path):
    log = tmp_path / "serve.log"
    with pytest.raises(ServiceDidNotStart) as caught:
        start_service("process", queue=0, log_path=log)  # serve refuses --queue 0 and exits with status 2
    message = str(caught.value)
    assert "exited with status 2" in message
    assert "--queue must be at least 1" in message and str(log) in message
    assert log.exists(), "a log the caller named is kept"
