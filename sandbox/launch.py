"""Starting the executor service from a program: the demo, the benchmarks and the tests all come here.

- ``free_port()``: a loopback port nobody listens on.
- ``docker_problem()``: why the docker backend cannot serve here (no SDK, no engine, no or stale runner image), or
  None; the same check ``sandbox serve --backend docker`` makes before it starts.
- ``start_service(backend, **options)``: ``sandbox serve`` as a child process on a free port, returned once
  ``/readyz`` answers 200; a ``Service`` handle that stops it (also as a ``with`` block). If it exits or never
  becomes ready, ``ServiceDidNotStart`` carries the end of its log.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import IO, Optional

import httpx

# The directory that holds the `sandbox` package: the child imports the same code as its parent, whether this is
# a checkout run from elsewhere or an installed copy.
PACKAGE_PARENT = Path(__file__).resolve().parent.parent
LOG_TAIL_CHARS = 2000


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` that was free a moment ago. Another process may take it before the caller binds it;
    on loopback, between one call and the next, that is rare enough for tests and tools."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port


def docker_problem(image: Optional[str] = None, timeout_s: float = 5.0) -> Optional[str]:
    """Why the docker backend cannot run here, in one line that says what to do, or None when an engine answers
    and the runner image (``image``, else ``SANDBOX_RUNNER_IMAGE``, else the default) is there and speaks this
    service's guard protocol."""
    try:
        import docker
    except ImportError:
        return "the Docker SDK for Python is not installed (pip install docker)"
    from sandbox.backends.docker_pool import DEFAULT_RUNNER_IMAGE, ContainerPool, ContainerSpec

    image = image or os.environ.get("SANDBOX_RUNNER_IMAGE", DEFAULT_RUNNER_IMAGE)
    try:
        # A short timeout: an engine that hangs must not hang the caller, which only wants to choose a backend.
        client = docker.from_env(timeout=int(max(1, timeout_s)))
    except Exception as exc:  # the SDK asks the engine its API version here: no engine, bad DOCKER_HOST, TLS files
        where = os.environ.get("DOCKER_HOST") or "the default socket"
        return _one_line(f"cannot reach the Docker engine at {where}: start it (e.g. .ci/docker-engine.sh) or point "
                         f"DOCKER_HOST at one ({type(exc).__name__}: {exc})")
    try:
        # The pool's own check, so that this answer and `sandbox serve --backend docker` never disagree.
        ContainerPool(ContainerSpec(image=image), 1, client=client).check_engine_and_image()
    except RuntimeError as exc:
        return _one_line(str(exc))
    except Exception as exc:  # an engine that answers the ping but fails the image query
        return _one_line(f"Docker engine error ({type(exc).__name__}: {exc})")
    finally:
        client.close()
    return None


def _one_line(text: str, limit: int = 400) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


class ServiceDidNotStart(RuntimeError):
    """``sandbox serve`` exited, or did not answer /readyz in time; the message ends with its log's last lines."""


class Service:
    """A running ``sandbox serve`` child process. ``stop()`` (or leaving a ``with`` block) ends it: SIGTERM, so
    that its lifespan removes what it started (runner containers, the process backend's zygote), then SIGKILL
    if it does not exit in time."""

    def __init__(self, url: str, process: subprocess.Popen[bytes], log_path: Path, log: IO[bytes],
                 own_log: bool) -> None:
        self.url = url
        self.process = process
        self.log_path = log_path
        self._log = log
        self._own_log = own_log  # a temporary log is deleted on stop; one the caller named is kept

    @property
    def pid(self) -> int:
        return self.process.pid

    def log_tail(self, chars: int = LOG_TAIL_CHARS) -> str:
        """The last ``chars`` characters the service wrote to stdout and stderr."""
        try:
            self._log.flush()
            return self.log_path.read_text(encoding="utf-8", errors="replace")[-chars:].strip()
        except (OSError, ValueError):  # already closed and removed
            return ""

    def log_note(self) -> str:
        """Where the whole log stays, for messages; nothing for a temporary log that stop() deletes."""
        return "" if self._own_log else f" (log: {self.log_path})"

    def stop(self, timeout_s: float = 30.0) -> None:
        """End the service and wait for it; safe to call twice, and after the process died on its own."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if not self._log.closed:
            self._log.close()
            if self._own_log:
                self.log_path.unlink(missing_ok=True)

    def __enter__(self) -> Service:
        return self

    def __exit__(self, kind: Optional[type[BaseException]], error: Optional[BaseException],
                 trace: Optional[TracebackType]) -> None:
        self.stop()


def start_service(
    backend: str = "process",
    *,
    port: Optional[int] = None,
    token: str = "",
    log_path: Optional[Path] = None,
    log_level: str = "warning",
    ready_s: float = 60.0,
    env: Optional[dict[str, str]] = None,
    **options: object,
) -> Service:
    """Start ``sandbox serve --backend BACKEND`` on 127.0.0.1 and return once ``/readyz`` answers 200.

    ``options`` become serve's flags (``pool_size=2`` -> ``--pool-size 2``; see ``sandbox serve --help``).
    ``token`` is the bearer token the service requires; "" (the default) requires none, whatever
    ``SANDBOX_TOKEN`` says in the caller's environment. ``log_path``: where its output goes (kept); by default a
    temporary file, deleted on stop. ``env``: more environment variables for the child. Raises
    ``ServiceDidNotStart`` with the log's last lines if the service exits or is not ready within ``ready_s``.
    """
    port = port or free_port()
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "sandbox.cli", "serve", "--backend", backend, "--port", str(port),
               "--log-level", log_level]
    for name, value in options.items():
        command += [f"--{name.replace('_', '-')}", str(value)]
    python_path = os.pathsep.join(p for p in (str(PACKAGE_PARENT), os.environ.get("PYTHONPATH", "")) if p)
    child_env = {**os.environ, "PYTHONPATH": python_path, "SANDBOX_TOKEN": token, **(env or {})}

    own_log = log_path is None
    if log_path is None:
        handle, name = tempfile.mkstemp(prefix="sandbox-serve-", suffix=".log")
        os.close(handle)
        log_path = Path(name)
    log = open(log_path, "wb")
    process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                               env=child_env)
    service = Service(url, process, Path(log_path), log, own_log)
    try:
        _wait_ready(service, ready_s)
    except BaseException:  # also Ctrl-C while waiting: never leave the child behind
        service.stop()
        raise
    return service


def _wait_ready(service: Service, ready_s: float) -> None:
    deadline = time.monotonic() + ready_s
    with httpx.Client(timeout=2.0) as http:
        while True:
            if service.process.poll() is not None:
                raise ServiceDidNotStart(f"`sandbox serve` exited with status {service.process.returncode} before "
                                         f"it was ready{service.log_note()}; its log ends:\n{service.log_tail()}")
            try:
                if http.get(f"{service.url}/readyz").status_code == 200:
                    return
            except httpx.TransportError:  # not listening yet
                pass
            if time.monotonic() > deadline:
                raise ServiceDidNotStart(f"`sandbox serve` was not ready at {service.url}/readyz after {ready_s:.0f} s"
                                         f"{service.log_note()}; its log ends:\n{service.log_tail()}")
            time.sleep(0.2)
