"""The ``process`` backend: the runner as a local subprocess, in fresh network and PID namespaces when allowed.

Weaker than containers (same filesystem, same user, no cgroup memory accounting); it serves development and
tests. See docs/runner.md for what it does and does not isolate.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import py_compile
import resource
import shutil
import signal
import subprocess
import sys
from functools import lru_cache
from pathlib import Path

from sandbox.backends.base import Backend
from sandbox.backends.wire import UnusableAnswer, deadline_s, decode_answer, encode_job
from sandbox.models import RunRequest, RunResult

log = logging.getLogger(__name__)

RUNNER = Path(__file__).resolve().parent.parent / "runner.py"
_NAMESPACE_COMMANDS = (
    ["unshare", "--net", "--pid", "--fork", "--kill-child", "--mount-proc"],
    ["unshare", "--user", "--map-root-user", "--net", "--pid", "--fork", "--kill-child", "--mount-proc"],
)


@lru_cache(maxsize=None)
def namespace_prefix() -> tuple[str, ...]:
    """The first ``unshare`` invocation this kernel permits, or () with a logged warning."""
    if shutil.which("unshare") is None:
        log.warning("process backend: `unshare` not found; running without network/PID namespaces")
        return ()
    for command in _NAMESPACE_COMMANDS:
        try:
            probe = subprocess.run([*command, "true"], capture_output=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if probe.returncode == 0:
            return tuple(command)
    log.warning("process backend: the kernel refused new network/PID namespaces; running without them")
    return ()


def confines() -> bool:
    """Whether runners start confined: root on the host and fresh mount/PID namespaces without a user namespace
    (the runner then remounts everything read-only, takes a private /tmp and drops to an unprivileged uid)."""
    return os.geteuid() == 0 and namespace_prefix() == tuple(_NAMESPACE_COMMANDS[0])


@lru_cache(maxsize=None)
def _compiled(source: str, mtime_ns: int) -> str:
    """``source`` byte-compiled once into the user's cache (a script is otherwise compiled at every start, ~20 ms
    of a runner's ~100 ms), named by a hash of its text and of this Python; the source itself if that fails."""
    try:
        digest = hashlib.sha256(Path(source).read_bytes() + sys.version.encode()).hexdigest()[:20]
        directory = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "sandbox"
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = directory.stat()
        if info.st_uid != os.geteuid() or info.st_mode & 0o022:  # someone else could swap the bytecode
            raise OSError(f"{directory} is not private to this user")
        target = directory / f"runner-{digest}.pyc"
        if not target.is_file():
            partial = directory / f".runner-{digest}.{os.getpid()}"
            py_compile.compile(source, cfile=str(partial), doraise=True)
            os.replace(partial, target)  # atomic: a concurrent start sees the whole file or none
        return str(target)
    except (OSError, RuntimeError, py_compile.PyCompileError) as exc:  # RuntimeError: no home directory
        log.warning("process backend: cannot precompile the runner (%s); running it from source", exc)
        return source


def runner_script(python: str = sys.executable) -> str:
    """What ``python`` should run: the precompiled runner (only our own interpreter reads our bytecode)."""
    if python != sys.executable:
        return str(RUNNER)
    try:
        path = _compiled(str(RUNNER), RUNNER.stat().st_mtime_ns)
        if not os.path.exists(path):  # removed under us: compile again
            _compiled.cache_clear()
            path = _compiled(str(RUNNER), RUNNER.stat().st_mtime_ns)
        return path
    except OSError:
        return str(RUNNER)


def runner_command(isolate: bool = True, python: str = sys.executable) -> list[str]:
    # -I: no PYTHONPATH, no user site, and the runner's directory is not importable by the candidate.
    prefix = list(namespace_prefix()) if isolate else []
    confine = ["--confine"] if isolate and confines() else []
    return [*prefix, python, "-I", runner_script(python), *confine]


# The runner's deadline here only guards against a runner that hangs (the runner enforces every limit itself and
# a miss is a retryable infra_error, not a verdict), so it is generous: each test may take its kill and drain too.
_DEADLINE_SLACK_S = 30.0
_PER_TEST_SLACK_S = 2.5


def batch_deadline(requests: list[RunRequest], workers: int) -> float:
    """Host-side seconds for a whole batch: every test at its limit, plus slack for kills and start-up."""
    return deadline_s(requests, workers, _DEADLINE_SLACK_S, _PER_TEST_SLACK_S)


def decode(requests: list[RunRequest], returncode: int | None, stdout: bytes, stderr: bytes) -> list[RunResult]:
    """The runner's answer, or one retryable infra_error per request when there is no trustworthy answer."""
    try:
        return decode_answer(requests, returncode, stdout)
    except UnusableAnswer as exc:
        reason = str(exc)
    if returncode != 0:
        reason += f": {stderr.decode(errors='replace')[-500:].strip()}"
    return [RunResult.infra_error(reason, retryable=True) for _ in requests]


def _limit_runner() -> None:
    # Runs in the runner's process before exec: no core files; the runner sets per-test limits itself.
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _environment() -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key in ("PATH", "LANG", "LC_ALL", "TMPDIR", "HOME")}
    env["MALLOC_ARENA_MAX"] = "2"  # per-thread arenas reserve address space that RLIMIT_AS counts
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def run_sync(requests: list[RunRequest], workers: int, isolate: bool = True) -> list[RunResult]:
    """Blocking version for LocalExecutor (usable whether or not an event loop is running)."""
    if not requests:
        return []
    process = subprocess.Popen(
        runner_command(isolate), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env=_environment(), preexec_fn=_limit_runner, start_new_session=True,
    )
    try:
        stdout, stderr = process.communicate(encode_job(requests, workers), timeout=batch_deadline(requests, workers))
    except subprocess.TimeoutExpired:
        _kill_group(process.pid)
        process.communicate()
        return [RunResult.infra_error("the runner missed the batch deadline", retryable=True) for _ in requests]
    finally:
        _kill_group(process.pid)
    return decode(requests, process.returncode, stdout, stderr)


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


class ProcessBackend(Backend):
    """One runner subprocess per batch; the runner parallelises programs up to ``workers``."""

    name = "process"

    def __init__(self, workers: int | None = None, isolate: bool = True) -> None:
        self.workers = workers or os.cpu_count() or 1
        self.isolate = isolate

    async def start(self) -> None:
        if self.isolate:
            await asyncio.to_thread(namespace_prefix)  # probe once, off the event loop

    def ready(self) -> tuple[bool, str]:
        if not RUNNER.is_file():
            return False, f"runner not found at {RUNNER}"
        return True, "ready"

    async def run_batch(self, requests: list[RunRequest]) -> list[RunResult]:
        if not requests:
            return []
        command = await asyncio.to_thread(runner_command, self.isolate)  # the first call probes unshare
        try:
            process = await asyncio.create_subprocess_exec(
                *command, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE, env=_environment(), preexec_fn=_limit_runner,
                start_new_session=True,
            )
        except OSError as exc:
            return [RunResult.infra_error(f"cannot start the runner: {exc}", retryable=True) for _ in requests]
        try:
            stdout, stderr = await asyncio.wait_for(
                process.communicate(encode_job(requests, self.workers)), timeout=batch_deadline(requests, self.workers)
            )
        except asyncio.TimeoutError:
            _kill_group(process.pid)
            await process.wait()
            return [RunResult.infra_error("the runner missed the batch deadline", retryable=True) for _ in requests]
        except asyncio.CancelledError:
            _kill_group(process.pid)
            raise
        finally:
            _kill_group(process.pid)
        return decode(requests, process.returncode, stdout, stderr)
