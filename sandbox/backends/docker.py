"""The docker backend: each batch goes to warm, hardened runner containers (see docker_pool.py).

A batch is split into a few chunks, one container per chunk; inside a container the runner gives every program
its own process and work directory. A container whose runner did not answer properly (host deadline, OOM kill,
died, or printed something that is not a valid answer) says nothing trustworthy about the programs it held:
when it held several, they run again in halves, each in a fresh container, until the culprit runs alone, so one
hostile program cannot decide its neighbours' verdicts; the program alone gets the verdict for what happened.
What happened to the container from outside (killed, stopped or removed through the engine's API, or the engine
dropped our connection) is no verdict on its programs: they get a retryable ``infra_error`` instead.
"""

from __future__ import annotations

import asyncio
import logging
import math
from dataclasses import dataclass
from typing import Optional

import docker.errors

from sandbox.backends.base import Backend
from sandbox.backends.docker_pool import ContainerPool, ContainerSpec, WarmContainer
from sandbox.backends.guard_protocol import Exchange
from sandbox.backends.wire import UnusableAnswer, deadline_s, decode_answer, encode_job
from sandbox.logs import event
from sandbox.models import RunRequest, RunResult, RunStatus, TestResult, Verdict
from sandbox.runner import TEST_FILE_ID

log = logging.getLogger("sandbox.docker")

# Memory the runner itself and the container's init need besides the programs' own limits.
_RUNNER_OVERHEAD_MB = 96


@dataclass(frozen=True)
class DockerSettings:
    pool_size: int = 4
    jobs_per_container: int = 1000  # 1: single use (a new container for every job)
    spec: ContainerSpec = ContainerSpec()
    workers_per_container: int = 0  # 0: one per CPU of the container's quota
    min_runs_per_container: int = 2  # a chunk costs one exchange and one reset (~ms); single use costs ~0.2 s more
    acquire_timeout_s: float = 60.0
    deadline_slack_s: float = 5.0


def chunk_sizes(n_runs: int, pool_size: int, min_per_chunk: int) -> list[int]:
    """Split ``n_runs`` into at most ``pool_size`` nearly equal chunks of at least ``min_per_chunk`` runs."""
    chunks = max(1, min(pool_size, n_runs // max(1, min_per_chunk)))
    base, extra = divmod(n_runs, chunks)
    return [base + (1 if i < extra else 0) for i in range(chunks)]


def whole_run_result(request: RunRequest, verdict: Verdict, error_type: str, message: str) -> RunResult:
    """A completed result giving every test of ``request`` the same verdict (for a test file: one entry)."""
    ids = [t.id or "" for t in request.tests] if request.tests is not None else [TEST_FILE_ID]
    tests = [TestResult(id=i, verdict=verdict, error_type=error_type, message=message) for i in ids]
    return RunResult(status=RunStatus.COMPLETED, passed=False, counts={verdict: len(tests)}, tests=tests)


def parse_results(exchange: Exchange, requests: list[RunRequest]) -> Optional[list[RunResult]]:
    """The runner's answer if the guard vouched for it and it is trustworthy (see wire.decode_answer), else
    None: anything else means the answer cannot be trusted."""
    try:
        return decode_answer(requests, exchange.runner_exit, exchange.runner_stdout)
    except UnusableAnswer:
        return None


class DockerBackend(Backend):
    name = "docker"

    def __init__(self, settings: DockerSettings = DockerSettings(), *, pool: Optional[ContainerPool] = None):
        self.settings = settings
        self.pool = pool or ContainerPool(settings.spec, settings.pool_size,
                                          jobs_per_container=settings.jobs_per_container)
        self.workers = settings.workers_per_container or max(1, math.ceil(settings.spec.cpus))

    async def start(self) -> None:
        await self.pool.start()

    async def close(self) -> None:
        await self.pool.close()

    def ready(self) -> tuple[bool, str]:
        return self.pool.ready()

    def serving(self) -> tuple[bool, str]:
        """Whether a run sent now can be served: only an unreachable engine says no (a pool that is refilling
        after a burst still serves, its requests wait for the next container)."""
        if not self.pool.docker_reachable:
            return False, (f"Docker engine unreachable at {self.pool.engine_address} "
                           f"({self.pool.last_error or 'not checked yet'})")
        return True, "serving"

    def pool_stats(self) -> dict[str, int]:
        pool = self.pool
        return {"idle": pool.idle, "busy": pool.busy, "resetting": pool.resetting, "starting": pool.starting,
                "removing": pool.removing, "size": pool.size}

    async def run_batch(self, requests: list[RunRequest]) -> list[RunResult]:
        sizes = chunk_sizes(len(requests), self.pool.size, self.settings.min_runs_per_container)
        starts = [sum(sizes[:i]) for i in range(len(sizes))]
        parts = await asyncio.gather(*(self._run_chunk(requests[s : s + n]) for s, n in zip(starts, sizes)))
        return [result for part in parts for result in part]

    async def _run_chunk(self, requests: list[RunRequest]) -> list[RunResult]:
        try:
            container = await self.pool.acquire(self.settings.acquire_timeout_s)
        except asyncio.TimeoutError:
            reason = self.pool.last_error or "all busy"
            message = f"no runner container became free within {self.settings.acquire_timeout_s:.0f}s ({reason})"
            return [RunResult.infra_error(message, retryable=True) for _ in requests]
        reusable: Optional[Exchange] = None
        try:
            results, reusable = await self._serve(container, requests)
        except docker.errors.DockerException as exc:  # the engine failed us, not the program
            message = f"Docker engine error while serving the run: {exc}"
            return [RunResult.infra_error(message, retryable=True) for _ in requests]
        finally:
            self.pool.release(container, reusable)
        if results is not None:
            return results
        # The container held several programs and broke: no verdict from it is trusted. Halves run again in
        # fresh containers, down to the culprit alone (about 2 log2(n) containers for one hostile program).
        half = len(requests) // 2
        parts = await asyncio.gather(self._run_chunk(requests[:half]), self._run_chunk(requests[half:]))
        return parts[0] + parts[1]

    async def _serve(self, container: WarmContainer,
                     requests: list[RunRequest]) -> tuple[Optional[list[RunResult]], Optional[Exchange]]:
        """The results of ``requests`` from ``container`` (None when it broke while holding several programs),
        and the exchange when it went exactly as the protocol says (the container may then serve again)."""
        workers = min(self.workers, len(requests))
        need_mb = max(r.limits.memory_mb for r in requests) * workers + _RUNNER_OVERHEAD_MB
        if need_mb > container.memory_mb:
            await asyncio.to_thread(self.pool.set_memory, container, need_mb)
        deadline = deadline_s(requests, workers, self.settings.deadline_slack_s)
        exchange = await self.pool.exchange(container, encode_job(requests, workers), deadline)
        results = parse_results(exchange, requests)
        if results is not None:
            return results, exchange if exchange.clean else None
        state = await asyncio.to_thread(self.pool.final_state, container.id)
        outside = None
        if state and not exchange.answered and not exchange.timed_out and not state.get("OOMKilled"):
            outside = await asyncio.to_thread(self.pool.stopped_from_outside, container)
        self._log_failure(container, exchange, state, len(requests), outside)
        if outside or exchange.connection_failed or state.get("Running"):
            # Not the programs' doing: say so, for every program it held, and let the caller retry.
            why = (f"the runner container was stopped from outside mid-run ({outside} through the engine's API)"
                   if outside else "the engine dropped the connection to the runner container mid-run")
            return [RunResult.infra_error(why, retryable=True) for _ in requests], None
        if len(requests) > 1 and state:
            return None, None
        return [self._verdict_for_broken_container(r, exchange, state) for r in requests], None

    @staticmethod
    def _verdict_for_broken_container(request: RunRequest, exchange: Exchange, state: dict) -> RunResult:
        """The verdict when a container held one program and broke with nobody outside to blame: the program
        ran out of memory or time, or killed or subverted the harness."""
        if not state:
            message = "the runner container vanished mid-run (removed, or the engine restarted)"
            return RunResult.infra_error(message, retryable=True)
        if state.get("OOMKilled"):
            return whole_run_result(
                request, Verdict.MEMORY, "MemoryError", "the container's memory limit was hit (OOM kill)"
            )
        if exchange.timed_out:
            return whole_run_result(
                request, Verdict.TIMEOUT, "TimeoutError", "the runner stopped answering; the host deadline killed it"
            )
        if exchange.answered:
            why = f"the runner exited with status {exchange.runner_exit} and no valid answer"
        else:
            why = f"the container's guard was stopped (container exit status {state.get('ExitCode')})"
        return whole_run_result(
            request, Verdict.ERROR, "HarnessSubverted", f"{why}; the program killed or subverted the harness"
        )

    @staticmethod
    def _log_failure(container: WarmContainer, exchange: Exchange, state: dict, n_runs: int,
                     outside: Optional[str]) -> None:
        event(log, "runner_failed", logging.WARNING, container=container.id[:12], runs=n_runs, outside=outside,
              connection_failed=exchange.connection_failed,
              timed_out=exchange.timed_out, oom_killed=bool(state.get("OOMKilled")), exit_code=state.get("ExitCode"),
              runner_exit=exchange.runner_exit, foreign_stdout_bytes=exchange.foreign_bytes, forged=exchange.forged,
              stderr_tail=exchange.stderr_tail[-500:])
