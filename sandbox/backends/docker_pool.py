"""A warm pool of pre-started, hardened runner containers (isolation and scheduling for the docker backend).

Each container's main process is the guard (container_guard.py), which has already started the runner; both
wait for a job on stdin, and the pool holds a socket attached to the container's stdin, stdout and stderr.
Serving a job is then only: write a line with a nonce, a MAC key and the job's length, then the job, and read the
demultiplexed stream until the guard's answer is complete (guard_protocol.py).

A container serves up to ``jobs_per_container`` jobs (1: single use). Between two, its guard kills every process
of the job, empties every writable path, removes System V IPC objects and checks the result (container_reset.py),
then has its runner start the next job's supervisor and writes a ready line signed with the finished job's key; the container goes back
to the idle queue only on that line. A job that did not end exactly as the protocol says (deadline, exit status,
foreign output, a bad answer), a reset that failed, or the last allowed job: the container is destroyed and the
pool starts a replacement in the background. docs/service.md compares this with the other ways of getting a
fresh state per job.

Orphans: the pool attaches to a container before starting it, so there is no moment when a container runs with
nobody attached, and labels each with its owner (reaper.py), which finds and removes orphans at start-up and
every ``reap_interval_s``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from dataclasses import dataclass, field
from typing import Optional

import docker
import docker.errors
from docker.types import LogConfig

from sandbox.backends.container_guard import PROTOCOL, reset_line
from sandbox.backends.guard_protocol import AttachStream, Exchange, FrameReader, await_ready, job_message
from sandbox.backends.reaper import orphans, owner_labels, process_identity
from sandbox.logs import event

log = logging.getLogger("sandbox.docker")

DEFAULT_RUNNER_IMAGE = "iterpref/sandbox-runner:latest"
RUNNER_IMAGE_ENV = "SANDBOX_RUNNER_IMAGE"  # overrides the default image (the service's --image reads it too)
# The guard's privileges, and no more: switch programs and checkers to uids of their own, and kill them.
GUARD_CAPABILITIES = ("SETUID", "SETGID", "KILL")


def default_runner_image() -> str:
    return os.environ.get(RUNNER_IMAGE_ENV) or DEFAULT_RUNNER_IMAGE
PROTOCOL_LABEL = "iterpref.sandbox.protocol"  # the image's label naming the guard protocol it speaks


@dataclass(frozen=True)
class ContainerSpec:
    """How every runner container is confined. Defaults suit a small host; the service exposes them as flags."""

    image: str = field(default_factory=default_runner_image)
    cpus: float = 1.0
    memory_mb: int = 1024
    pids_limit: int = 256
    tmpfs_mb: int = 64
    # uid 0 with only GUARD_CAPABILITIES: the guard refuses to serve with any other set, and the runner drops every
    # program and checker to a fresh unprivileged uid with no capabilities (docs/security.md).
    user: str = "0:0"
    runtime: Optional[str] = None  # an OCI runtime registered with the engine (None: the engine's default, runc)

    def create_kwargs(self, api: docker.APIClient, labels: dict[str, str]) -> dict:
        """Arguments for the low-level ``create_container``: stdin open and closed after the one attach."""
        uid, _, gid = self.user.partition(":")
        gid = gid or uid
        host_config = api.create_host_config(
            network_mode="none",
            read_only=True,
            # Only the work directory is writable. Each program makes its own 0700 directory there as its own uid;
            # 1733 (sticky, not listable) lets it create one without seeing or removing another's. noexec keeps
            # dropped binaries from running.
            tmpfs={"/work": f"size={self.tmpfs_mb}m,uid={uid},gid={gid},mode=1733,noexec,nosuid,nodev"},
            cap_drop=["ALL"],
            cap_add=list(GUARD_CAPABILITIES),
            security_opt=["no-new-privileges"],
            pids_limit=self.pids_limit,
            mem_limit=f"{self.memory_mb}m",
            memswap_limit=f"{self.memory_mb}m",  # equal: no swap, so going over is an OOM kill
            nano_cpus=int(self.cpus * 1e9),
            init=True,
            log_config=LogConfig(type=LogConfig.types.NONE),
            ipc_mode="private",
            runtime=self.runtime,
        )
        return dict(
            image=self.image,
            user=self.user,
            stdin_open=True,
            detach=False,  # with stdin_open this sets StdinOnce: the runner sees EOF when our attach closes
            environment={"TMPDIR": "/work", "HOME": "/work", "PYTHONDONTWRITEBYTECODE": "1"},
            working_dir="/work",
            labels=labels,
            host_config=host_config,
        )


@dataclass
class WarmContainer:
    """A started runner container with our socket attached to its stdin, stdout and stderr."""

    id: str
    memory_mb: int
    sock: socket.socket
    _io: object = field(repr=False)  # the SDK's socket wrapper; kept so the socket stays open
    jobs: int = 0  # jobs handed to it so far
    started_wall: float = field(default_factory=time.time)  # for looking up the engine's events about it

    def close_socket(self) -> None:
        for closer in (getattr(self._io, "close", None), self.sock.close):
            try:
                if closer:
                    closer()
            except OSError:
                pass


class ContainerPool:
    """Keeps ``size`` runner containers started and attached; hands each out for up to ``jobs_per_container``
    jobs, with a verified reset between two (container_reset.py), then replaces it."""

    def __init__(
        self,
        spec: ContainerSpec,
        size: int,
        *,
        client: Optional[docker.DockerClient] = None,
        owner: Optional[str] = None,
        parallel_starts: int = 2,
        reap_interval_s: float = 30.0,
        ping_interval_s: float = 2.0,
        refill_delay_s: float = 0.1,
        remove_delay_s: float = 0.02,
        ready_timeout_s: float = 60.0,
        jobs_per_container: int = 1000,
    ) -> None:
        if size < 1:
            raise ValueError(f"pool size must be at least 1, got {size}")
        if jobs_per_container < 1:
            raise ValueError(f"jobs per container must be at least 1, got {jobs_per_container}")
        self.jobs_per_container = jobs_per_container
        self.spec = spec
        self.size = size
        self.owner = owner or uuid.uuid4().hex[:12]
        self._client = client
        self._parallel_starts = parallel_starts
        self._reap_interval_s = reap_interval_s
        self._ping_interval_s = min(ping_interval_s, reap_interval_s)
        # Creating and removing a container costs the engine ~0.1-0.2 s of CPU: done while a short job runs, it
        # takes the CPU from that job's runner and from its answer. So a replacement starts when the job is over
        # (or after refill_delay_s for long jobs, or at once when no idle container is left), and a used one is
        # removed remove_delay_s after its answer came, once the reply to the client is out.
        self._refill_delay_s = refill_delay_s
        self._ready_timeout_s = ready_timeout_s
        self._remove_delay_s = remove_delay_s
        self.identity = process_identity(os.getpid()) or ""
        # Last in, first out: the container that served most recently has its processes' memory still in the
        # CPU's caches, and the others stay cold in reserve (a busy pool uses them all anyway).
        self._idle: asyncio.Queue[WarmContainer] = asyncio.LifoQueue()
        self._starting = 0
        self._busy: dict[str, WarmContainer] = {}
        self._resetting: dict[str, WarmContainer] = {}  # answered, waiting for the guard's signed ready line
        self._known: set[str] = set()  # every container of ours not yet removed, whatever its state
        self._background: set[asyncio.Task] = set()
        self._wake = asyncio.Event()
        self._idle_added = asyncio.Event()  # set whenever a container joins _idle (acquire waits on it)
        self._closing = False
        self.last_error: Optional[str] = None
        self.docker_reachable = False

    # ----- lifecycle -------------------------------------------------------------------------------------------

    @property
    def client(self) -> docker.DockerClient:
        if self._client is None:
            self._client = docker.from_env(max_pool_size=32)
        return self._client

    async def start(self) -> None:
        """Reap orphans, check the image, then fill the pool in the background."""
        await asyncio.to_thread(self.check_engine_and_image)
        await asyncio.to_thread(self.reap, False)
        self._spawn(self._fill_forever(), name="fill")
        self._spawn(self._maintain_forever(), name="maintain")

    def check_engine_and_image(self) -> None:
        try:
            self.client.ping()
        except Exception as exc:  # the SDK raises several types for "no engine"
            raise RuntimeError(f"cannot reach the Docker engine ({exc}); start it (e.g. .ci/docker-engine.sh)") from exc
        self.docker_reachable = True
        try:
            image = self.client.images.get(self.spec.image)
        except docker.errors.ImageNotFound:
            raise RuntimeError(
                f"runner image {self.spec.image!r} not found; build it with images/build-images.sh"
            ) from None
        found = (image.labels or {}).get(PROTOCOL_LABEL)
        if found != PROTOCOL:
            raise RuntimeError(
                f"runner image {self.spec.image!r} speaks guard protocol {found!r}, this service {PROTOCOL!r}; "
                f"rebuild it with images/build-images.sh"
            )

    async def close(self) -> None:
        """Stop refilling, destroy every container this pool made (idle, busy, or still starting)."""
        self._closing = True
        self._wake.set()
        for task in list(self._background):
            if task.get_name() == "maintain":
                task.cancel()
        # The filler is not cancelled: a start running in a thread would finish unseen and leak its container.
        await asyncio.gather(*self._background, return_exceptions=True)
        for task in list(self._background):
            if task.get_name().startswith("reset"):
                task.cancel()  # a container waiting for its reset is destroyed below like an idle one
        while not self._idle.empty():
            self._destroy_soon(self._idle.get_nowait())
        for container in list(self._resetting.values()):
            self._destroy_soon(container)
        self._resetting.clear()
        for container in list(self._busy.values()):
            self._destroy_soon(container)
        await asyncio.gather(*self._background, return_exceptions=True)
        # Anything a cancelled start left behind still carries our owner label.
        await asyncio.to_thread(self.reap, True)

    def _spawn(self, coro, name: str = "pool") -> asyncio.Task:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    # ----- state for /readyz and /metrics ----------------------------------------------------------------------

    @property
    def idle(self) -> int:
        return self._idle.qsize()

    @property
    def busy(self) -> int:
        return len(self._busy)

    @property
    def starting(self) -> int:
        return self._starting

    @property
    def resetting(self) -> int:
        return len(self._resetting)

    @property
    def removing(self) -> int:
        return sum(1 for task in self._background if task.get_name().startswith("destroy"))

    def ready(self) -> tuple[bool, str]:
        if not self.docker_reachable:
            return False, f"Docker engine unreachable: {self.last_error or 'not checked yet'}"
        if self.idle == 0 and self.busy == 0:
            return False, f"no runner container started yet ({self.last_error or 'warming up'})"
        return True, (f"{self.idle} idle, {self.busy} busy, {self.resetting} resetting, {self.starting} starting, "
                      f"{self.removing} removing")

    # ----- handing out containers ------------------------------------------------------------------------------

    def serves_again(self, container: WarmContainer) -> bool:
        """Whether ``container``'s current job is not its last (its guard then resets it after answering)."""
        return container.jobs < self.jobs_per_container and not self._closing

    async def acquire(self, timeout_s: float) -> WarmContainer:
        """The next warm container (waiting up to ``timeout_s``). On its last job its replacement starts when it
        is released, ``refill_delay_s`` from now if that comes first, or at once if it was the last idle one."""
        container = await self._take_idle(timeout_s)
        self._busy[container.id] = container
        container.jobs += 1
        if self.serves_again(container):
            pass  # it comes back after its reset; nothing to start
        elif self._idle.empty() or self._refill_delay_s <= 0:
            self._wake.set()
        else:
            asyncio.get_running_loop().call_later(self._refill_delay_s, self._wake.set)
        return container

    async def _take_idle(self, timeout_s: float) -> WarmContainer:
        """Take an idle container off the queue in this coroutine, with nothing awaited between taking it and
        marking it busy: ``wait_for(queue.get())`` takes it in a task of its own, and for a moment the container
        is in no state at all, so the refill loop counts it missing and starts one too many."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            try:
                return self._idle.get_nowait()
            except asyncio.QueueEmpty:
                pass
            left = deadline - loop.time()
            if left <= 0:
                raise asyncio.TimeoutError
            self._idle_added.clear()
            await asyncio.wait_for(self._idle_added.wait(), left)

    def _put_idle(self, container: WarmContainer) -> None:
        self._idle.put_nowait(container)
        self._idle_added.set()

    def release(self, container: WarmContainer, exchange: Optional[Exchange] = None) -> None:
        """Back to the pool after its guard's signed ready line if the job went exactly as the protocol says
        and it serves again; otherwise destroy it in the background."""
        self._busy.pop(container.id, None)
        if exchange is not None and exchange.clean and exchange.reset_line and self.serves_again(container):
            self._resetting[container.id] = container
            self._spawn(self._reset_then_idle(container, exchange), name=f"reset-{container.id[:12]}")
            return
        self._wake.set()
        self._destroy_soon(container, self._remove_delay_s)

    async def _reset_then_idle(self, container: WarmContainer, exchange: Exchange) -> None:
        clean = False
        try:
            clean = await self._await_reset(container, exchange.rest, exchange.reset_line)
        finally:
            if self._resetting.pop(container.id, None) is not None:  # close() has not taken it over
                if clean and not self._closing:
                    self._put_idle(container)
                else:
                    if not self._closing:
                        event(log, "reset_failed", logging.WARNING, container=container.id[:12],
                              jobs=container.jobs, stderr_tail=exchange.rest.stderr.decode("utf-8", "replace")[-500:])
                    self._destroy_soon(container)
                self._wake.set()

    async def _await_reset(self, container: WarmContainer, stream: AttachStream, expected: bytes) -> bool:
        """True once exactly ``expected`` (the guard's signed ready line) and nothing else has come on stdout;
        False if anything else comes, the stream ends (the guard refused the reset and exited) or time runs out."""
        loop = asyncio.get_running_loop()

        async def read() -> bool:
            while len(stream.stdout) < len(expected):
                chunk = await loop.sock_recv(container.sock, 1 << 16)
                if not chunk:
                    return False
                stream.feed(chunk)
            return bytes(stream.stdout) == expected and not stream.partial

        try:
            return await asyncio.wait_for(read(), self._ready_timeout_s)
        except (asyncio.TimeoutError, OSError):
            return False

    def _destroy_soon(self, container: WarmContainer, delay_s: float = 0.0) -> None:
        container.close_socket()
        self._spawn(self._remove_later(container.id, delay_s), name=f"destroy-{container.id[:12]}")

    async def _remove_later(self, container_id: str, delay_s: float) -> None:
        if delay_s > 0 and not self._closing:
            await asyncio.sleep(delay_s)
        await asyncio.to_thread(self._remove, container_id)

    def _remove(self, container_id: str) -> None:
        self._known.discard(container_id)
        try:
            self.client.api.remove_container(container_id, force=True)
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as exc:
            if "already in progress" not in str(exc):
                event(log, "remove_failed", logging.WARNING, container=container_id[:12], error=str(exc))

    # ----- one job ---------------------------------------------------------------------------------------------

    async def exchange(self, container: WarmContainer, job: bytes, deadline_s: float) -> Exchange:
        """Send ``job`` to the runner (through the guard) and read its answer; past ``deadline_s`` the container
        is killed."""
        loop = asyncio.get_running_loop()
        again = self.serves_again(container)
        nonce, key, message = job_message(job, again)
        reader = FrameReader(nonce, key)

        async def talk() -> None:
            await loop.sock_sendall(container.sock, message)
            if not again:
                container.sock.shutdown(socket.SHUT_WR)  # nothing more will come; the guard does not wait for it
            while not reader.done():
                chunk = await loop.sock_recv(container.sock, 1 << 18)
                if not chunk:
                    return
                reader.feed(chunk)

        result = Exchange()
        try:
            await asyncio.wait_for(talk(), deadline_s)
        except asyncio.TimeoutError:
            result.timed_out = True
            await asyncio.to_thread(self._kill, container.id)
        except OSError as exc:  # the engine dropped the connection: reported like a missing answer
            reader.stderr += f"\n[attach connection failed: {exc}]".encode()
            result.connection_failed = True
        result.runner_exit, result.runner_stdout = reader.answer()
        result.stderr_tail = reader.stderr.decode("utf-8", "replace")
        result.foreign_bytes = reader.foreign_bytes
        result.forged = reader.forged
        if again and result.answered:
            result.rest, result.reset_line = reader.rest(), reset_line(nonce, key)
        return result

    def stopped_from_outside(self, container: WarmContainer) -> Optional[str]:
        """How the engine was told to stop ``container`` (a kill, stop or removal through its API, which a
        program inside cannot do), or None. Only this pool's deadline kill does that otherwise, and that case
        is known before this is asked."""
        try:
            # The engine takes fractional seconds as text; the SDK's stubs know only int and datetime.
            events = self.client.api.events(  # type: ignore[call-overload]
                since=int(container.started_wall) - 1, until=f"{time.time() + 0.5:.3f}", decode=True,
                filters={"type": "container", "container": container.id, "event": ["kill", "stop", "destroy"]},
            )
            for item in events:
                signal = (item.get("Actor") or {}).get("Attributes", {}).get("signal")
                return f"{item.get('Action') or item.get('status')}" + (f" (signal {signal})" if signal else "")
        except docker.errors.DockerException:
            return None
        return None

    @property
    def engine_address(self) -> str:
        adapter = getattr(self.client.api, "_custom_adapter", None)
        path = getattr(adapter, "socket_path", None)
        return f"unix://{path}" if path else str(getattr(self.client.api, "base_url", "?"))

    def _kill(self, container_id: str) -> None:
        try:
            self.client.api.kill(container_id)
        except docker.errors.APIError:
            pass  # already gone

    def final_state(self, container_id: str, wait_s: int = 5) -> dict:
        """The container's State after it stopped (OOMKilled, ExitCode); {} if it is gone."""
        try:
            self.client.api.wait(container_id, timeout=wait_s)
        except Exception:  # still running after wait_s, or gone: inspect tells which
            pass
        try:
            return self.client.api.inspect_container(container_id)["State"]
        except docker.errors.NotFound:
            return {}

    def set_memory(self, container: WarmContainer, memory_mb: int) -> None:
        """Raise a warm container's memory cap (and swap cap, equal) before a job that needs more."""
        self.client.api.update_container(container.id, mem_limit=f"{memory_mb}m", memswap_limit=f"{memory_mb}m")
        container.memory_mb = memory_mb

    # ----- keeping the pool full -------------------------------------------------------------------------------

    async def _fill_forever(self) -> None:
        failures = 0
        while not self._closing:
            # Busy containers that serve again and those being reset come back by themselves.
            returning = self.resetting + sum(1 for c in self._busy.values() if self.serves_again(c))
            deficit = self.size - (self.idle + self._starting + returning)
            if deficit <= 0:
                self._wake.clear()
                await self._wake.wait()
                continue
            batch = min(deficit, self._parallel_starts)
            self._starting += batch
            outcomes = await asyncio.gather(
                *(asyncio.to_thread(self._start_one) for _ in range(batch)), return_exceptions=True
            )
            self._starting -= batch
            for outcome in outcomes:
                if isinstance(outcome, WarmContainer):
                    if self._closing:
                        self._destroy_soon(outcome)
                    else:
                        self._put_idle(outcome)
                    failures = 0
                elif isinstance(outcome, BaseException):
                    failures += 1
                    self.last_error = str(outcome)
                    event(log, "runner_start_failed", logging.ERROR, error=str(outcome))
            if failures and not self._closing:
                # Back off when the engine or image is broken instead of spinning on errors; close() wakes us.
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), min(5.0, 0.2 * 2 ** min(failures, 5)))
                except asyncio.TimeoutError:
                    pass

    def _start_one(self) -> WarmContainer:
        api = self.client.api
        labels = owner_labels(self.owner, self.identity)
        created = api.create_container(**self.spec.create_kwargs(api, labels))
        container_id = created["Id"]
        self._known.add(container_id)
        try:
            # Attach first, then start: a container never runs unattached, so if we die at any point its guard
            # reads end-of-input and exits instead of waiting for a job forever.
            io = api.attach_socket(container_id, params={"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1})
            sock = getattr(io, "_sock", io)
            api.start(container_id)
            await_ready(sock, self._ready_timeout_s)
            sock.setblocking(False)
        except BaseException:
            self._remove(container_id)
            raise
        self.docker_reachable = True
        return WarmContainer(id=container_id, memory_mb=self.spec.memory_mb, sock=sock, _io=io)

    async def _maintain_forever(self) -> None:
        """Check the engine often (readiness follows it) and reap orphans periodically."""
        last_reap = time.monotonic()
        while not self._closing:
            await asyncio.sleep(self._ping_interval_s)
            try:
                await asyncio.to_thread(self.client.ping)
                self.docker_reachable = True
                if time.monotonic() - last_reap >= self._reap_interval_s:
                    last_reap = time.monotonic()
                    await asyncio.to_thread(self.reap, False)
            except Exception as exc:
                self.docker_reachable = False
                self.last_error = str(exc)

    def reap(self, everything_of_ours: bool) -> int:
        """Remove orphaned runner containers (see reaper.orphans; with ``everything_of_ours``, every container
        of this pool too). Returns how many."""
        found = orphans(self.client.api, self.owner, self._known, self._busy, everything_of_ours)
        for container_id in found:
            self._remove(container_id)
        if found:
            event(log, "reaped", containers=len(found))
        return len(found)
