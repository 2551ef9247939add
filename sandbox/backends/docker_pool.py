"""A warm pool of pre-started, hardened runner containers (isolation and scheduling for the docker backend).

Each container's main process is the guard (container_guard.py), which has already started the runner; both
wait for a job on stdin, and the pool holds a socket attached to the container's stdin, stdout and stderr.
Serving a job is then only: write a line with a nonce, a MAC key and the job's length, then the job, and read the
demultiplexed stream until the guard's answer (a header with the nonce, then the runner's output) is complete.
A container serves one job and is destroyed; the pool starts its replacement in the background. Containers are
labelled so orphans can be reaped.

Orphans: the pool attaches to a container before starting it, so there is no moment when a container runs with
nobody attached. If the owning process dies, its attach sockets close, the guards read end-of-input and exit, and
the next reaper pass (this or another instance's) removes the stopped containers; one created but never started
is removed after a grace period. Each container also carries its owner process's identity (boot id, pid
namespace, pid, start time): a reaper that shares that pid namespace removes at once every container, running or
not, whose owner process is gone. Reaping runs at start-up and every ``reap_interval_s``.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import os
import secrets
import socket
import struct
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Optional

import docker
import docker.errors

from sandbox.logs import event

log = logging.getLogger("sandbox.docker")

ROLE_LABEL = "iterpref.sandbox"
OWNER_LABEL = "iterpref.sandbox.owner"
RUNNER_ROLE = "runner"
DEFAULT_RUNNER_IMAGE = "iterpref/sandbox-runner:latest"
HEADER = b"IPSB1"  # must match sandbox/backends/container_guard.py
READY = HEADER + b" ready\n"  # the guard's line once its runner waits for the job
OWNER_PROCESS_LABEL = "iterpref.sandbox.owner.process"  # "<boot id>|<pid namespace>|<pid>|<start ticks>"
ORPHAN_GRACE_S = 60.0  # another instance's stopped or 'created' container is left alone this long
PROTOCOL_LABEL = "iterpref.sandbox.protocol"
PROTOCOL = "4"  # the guard's stdin/stdout framing; images/Dockerfile.runner sets the same label


def process_identity(pid: int) -> Optional[str]:
    """Who process ``pid`` is, unambiguously on this kernel (pids are reused; pid and start time together are
    not), or None if it is gone or /proc cannot tell."""
    try:
        boot = open("/proc/sys/kernel/random/boot_id").read().strip()
        namespace = os.readlink(f"/proc/{pid}/ns/pid")
        stat = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    if stat[0] == "Z":  # a zombie has finished: as good as gone
        return None
    return f"{boot}|{namespace}|{pid}|{stat[19]}"  # field 22 of stat: start time in clock ticks since boot


def owner_alive(identity: str) -> Optional[bool]:
    """Whether the process named by ``identity`` still runs: None when this process cannot tell (another host,
    another boot, another pid namespace, or a malformed label)."""
    parts = identity.split("|")
    mine = process_identity(os.getpid())
    if len(parts) != 4 or mine is None or not parts[2].isdigit() or mine.split("|")[:2] != parts[:2]:
        return None
    return process_identity(int(parts[2])) == identity


@dataclass(frozen=True)
class ContainerSpec:
    """How every runner container is confined. Defaults suit a small host; the service exposes them as flags."""

    image: str = DEFAULT_RUNNER_IMAGE
    cpus: float = 1.0
    memory_mb: int = 1024
    pids_limit: int = 256
    tmpfs_mb: int = 64
    user: str = "10001:10001"

    def create_kwargs(self, api: docker.APIClient, labels: dict[str, str]) -> dict:
        """Arguments for the low-level ``create_container``: stdin open and closed after the one attach."""
        uid, _, gid = self.user.partition(":")
        gid = gid or uid
        host_config = api.create_host_config(
            network_mode="none",
            read_only=True,
            # Only the work directory is writable, owned by the runner's user (a mode option alone is not applied
            # over the image's directory); noexec keeps dropped binaries from running.
            tmpfs={"/work": f"size={self.tmpfs_mb}m,uid={uid},gid={gid},mode=0700,noexec,nosuid,nodev"},
            cap_drop=["ALL"],
            security_opt=["no-new-privileges"],
            pids_limit=self.pids_limit,
            mem_limit=f"{self.memory_mb}m",
            memswap_limit=f"{self.memory_mb}m",  # equal: no swap, so going over is an OOM kill
            nano_cpus=int(self.cpus * 1e9),
            init=True,
            log_config={"type": "none"},
            ipc_mode="private",
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
    created_at: float = field(default_factory=time.monotonic)
    started_wall: float = field(default_factory=time.time)  # for looking up the engine's events about it

    def close_socket(self) -> None:
        for closer in (getattr(self._io, "close", None), self.sock.close):
            try:
                if closer:
                    closer()
            except OSError:
                pass


@dataclass
class Exchange:
    """What came back from one job: the runner's exit status and stdout as vouched for by the guard, or how
    the exchange failed (no guard header: the guard was killed, the container died, or the deadline hit)."""

    runner_exit: Optional[int] = None
    runner_stdout: bytes = b""
    timed_out: bool = False
    stderr_tail: str = ""
    foreign_bytes: int = 0  # stdout bytes before the guard's header: written by something else in the container
    forged: bool = False  # a header with our nonce came with an answer whose MAC was wrong
    connection_failed: bool = False  # the engine dropped our attach connection: nothing the program did

    @property
    def answered(self) -> bool:
        return self.runner_exit is not None


class FrameReader:
    """Demultiplexes Docker's non-tty attach stream (8-byte header: stream id, size; then the payload) and finds
    the guard's answer: ``IPSB1 <nonce> <ok|exit status> <length> <mac>\n``, then ``length`` bytes of the runner's
    stdout, accepted only if ``mac`` is HMAC-SHA256 under our key of ``<status> <body>``."""

    _FRAME = struct.Struct(">BxxxL")
    _KEEP_SCANNING = 256  # bytes kept while looking for the header; more than a header line

    def __init__(self, nonce: bytes, key: bytes) -> None:
        self._marker = HEADER + b" " + nonce + b" "
        self._key = key
        self._mac = b""
        self._status = b""
        self.forged = False  # a header with our nonce whose MAC did not check out
        self._buffer = bytearray()
        self.stdout = bytearray()
        self.stderr = bytearray()
        self.foreign_bytes = 0
        self._body_start: Optional[int] = None
        self.runner_exit: Optional[int] = None
        self._length = 0

    def feed(self, chunk: bytes) -> None:
        self._buffer += chunk
        while len(self._buffer) >= 8:
            stream, size = self._FRAME.unpack_from(self._buffer)
            if len(self._buffer) < 8 + size:
                return
            data = bytes(self._buffer[8 : 8 + size])
            del self._buffer[: 8 + size]
            if stream == 2:
                self.stderr += data
                del self.stderr[: max(0, len(self.stderr) - 4096)]  # only the tail is ever reported
            else:
                self._stdout(data)

    def _stdout(self, data: bytes) -> None:
        self.stdout += data
        if self._body_start is not None:
            return
        at = self.stdout.find(self._marker)
        newline = self.stdout.find(b"\n", at) if at >= 0 else -1
        if at < 0 or newline < 0:
            # Keep memory bounded whatever a candidate floods the stream with.
            drop = max(0, len(self.stdout) - self._KEEP_SCANNING)
            self.foreign_bytes += drop
            del self.stdout[:drop]
            return
        try:
            status_text, length_text, self._mac = self.stdout[at + len(self._marker) : newline].split()
            self.runner_exit = 0 if status_text == b"ok" else int(status_text)
            self._length, self._status = int(length_text), bytes(status_text)
        except ValueError:
            return
        self.foreign_bytes += at
        del self.stdout[: newline + 1]
        self._body_start = 0

    def done(self) -> bool:
        return self._body_start is not None and len(self.stdout) >= self._length

    def answer(self) -> tuple[Optional[int], bytes]:
        """(runner exit status, runner stdout) once complete and authentic; (None, b"") otherwise."""
        if not self.done():
            return None, b""
        body = bytes(self.stdout[: self._length])
        expected = hmac.new(self._key, self._status + b" " + body, hashlib.sha256).hexdigest().encode()
        if not hmac.compare_digest(expected, bytes(self._mac)):
            self.forged = True
            return None, b""
        return self.runner_exit, body


def _await_ready(sock: socket.socket, timeout_s: float) -> None:
    """Block until the guard's ready line arrives on a freshly started container's stream (its runner has
    started and waits for the job); raises RuntimeError with the container's stderr if it exits or stalls."""
    frame = struct.Struct(">BxxxL")
    buffer, stdout, stderr = bytearray(), bytearray(), bytearray()
    deadline = time.monotonic() + timeout_s
    while READY not in stdout:
        left = deadline - time.monotonic()
        try:
            if left <= 0:
                raise TimeoutError
            sock.settimeout(left)
            chunk, why = sock.recv(1 << 16), "exited"
        except TimeoutError:
            chunk, why = b"", f"was not ready within {timeout_s:g} s"
        if not chunk:
            tail = stderr.decode("utf-8", "replace")[-300:].strip()
            raise RuntimeError(f"runner container {why} before its runner started" + (f": {tail}" if tail else ""))
        buffer += chunk
        while len(buffer) >= 8:
            stream, size = frame.unpack_from(buffer)
            if len(buffer) < 8 + size:
                break
            (stderr if stream == 2 else stdout).extend(buffer[8 : 8 + size])
            del buffer[: 8 + size]
    if buffer or stdout.index(READY) + len(READY) != len(stdout):
        raise RuntimeError("runner container wrote more than its ready line before the job")


class ContainerPool:
    """Keeps ``size`` runner containers started and attached; hands each out once."""

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
    ) -> None:
        if size < 1:
            raise ValueError(f"pool size must be at least 1, got {size}")
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
        self._idle: asyncio.Queue[WarmContainer] = asyncio.Queue()
        self._starting = 0
        self._busy: dict[str, WarmContainer] = {}
        self._known: set[str] = set()  # every container of ours not yet removed, whatever its state
        self._background: set[asyncio.Task] = set()
        self._wake = asyncio.Event()
        self._closing = False
        self.last_error: Optional[str] = None
        self.docker_reachable = False
        self.started_total = 0

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
        while not self._idle.empty():
            self._destroy_soon(self._idle.get_nowait())
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
    def removing(self) -> int:
        return sum(1 for task in self._background if task.get_name().startswith("destroy"))

    def ready(self) -> tuple[bool, str]:
        if not self.docker_reachable:
            return False, f"Docker engine unreachable: {self.last_error or 'not checked yet'}"
        if self.idle == 0 and self.busy == 0:
            return False, f"no runner container started yet ({self.last_error or 'warming up'})"
        return True, f"{self.idle} idle, {self.busy} busy, {self.starting} starting, {self.removing} removing"

    # ----- handing out containers ------------------------------------------------------------------------------

    async def acquire(self, timeout_s: float) -> WarmContainer:
        """The next warm container (waiting up to ``timeout_s``). Its replacement starts when it is released,
        ``refill_delay_s`` from now if that comes first, or at once if it was the last idle one."""
        container = await asyncio.wait_for(self._idle.get(), timeout_s)
        self._busy[container.id] = container
        if self._idle.empty() or self._refill_delay_s <= 0:
            self._wake.set()
        else:
            asyncio.get_running_loop().call_later(self._refill_delay_s, self._wake.set)
        return container

    def release(self, container: WarmContainer) -> None:
        """A used container is never reused: destroy it in the background."""
        self._busy.pop(container.id, None)
        self._wake.set()
        self._destroy_soon(container, self._remove_delay_s)

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
        nonce, key = secrets.token_hex(16).encode(), secrets.token_hex(32).encode()
        reader = FrameReader(nonce, key)

        async def talk() -> None:
            await loop.sock_sendall(container.sock, b"%s %s %d\n%s" % (nonce, key, len(job), job))
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
        return result

    def stopped_from_outside(self, container: WarmContainer) -> Optional[str]:
        """How the engine was told to stop ``container`` (a kill, stop or removal through its API, which a
        program inside cannot do), or None. Only this pool's deadline kill does that otherwise, and that case
        is known before this is asked."""
        try:
            events = self.client.api.events(
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

    def final_state(self, container_id: str, wait_s: float = 5.0) -> dict:
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
            deficit = self.size - (self.idle + self._starting)
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
                        self._idle.put_nowait(outcome)
                        self.started_total += 1
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
        labels = {ROLE_LABEL: RUNNER_ROLE, OWNER_LABEL: self.owner, OWNER_PROCESS_LABEL: self.identity}
        created = api.create_container(**self.spec.create_kwargs(api, labels))
        container_id = created["Id"]
        self._known.add(container_id)
        try:
            # Attach first, then start: a container never runs unattached, so if we die at any point its guard
            # reads end-of-input and exits instead of waiting for a job forever.
            io = api.attach_socket(container_id, params={"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1})
            sock = getattr(io, "_sock", io)
            api.start(container_id)
            _await_ready(sock, self._ready_timeout_s)
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
        """Remove orphaned runner containers: any whose owner process is known to be gone (same pid namespace),
        stopped ones (another live instance's only after a grace period, since it may still be reading why one
        stopped), running ones of ours we do not track (all of ours when closing), and ones stuck in 'created'
        for over a minute. A container of another instance this process cannot check stays until its guard
        exits (see the module's docstring). Returns how many."""
        removed = 0
        for info in self.client.api.containers(all=True, filters={"label": f"{ROLE_LABEL}={RUNNER_ROLE}"}):
            ours = info["Labels"].get(OWNER_LABEL) == self.owner
            if not ours and owner_alive(info["Labels"].get(OWNER_PROCESS_LABEL, "")) is False:
                self._remove(info["Id"])
                removed += 1
                continue
            if ours and info["Id"] in self._busy and not everything_of_ours:
                continue  # its job's outcome is still being read
            state = info.get("State", "")
            stale_created = state == "created" and time.time() - info.get("Created", 0) > ORPHAN_GRACE_S
            stopped = state in ("exited", "dead") and (ours or self._stopped_for(info["Id"]) > ORPHAN_GRACE_S)
            leaked = ours and (everything_of_ours or info["Id"] not in self._known)
            if stopped or stale_created or leaked:
                self._remove(info["Id"])
                removed += 1
        if removed:
            event(log, "reaped", containers=removed)
        return removed

    def _stopped_for(self, container_id: str) -> float:
        """Seconds since the container stopped (0 if unknown or gone)."""
        try:
            finished = self.client.api.inspect_container(container_id)["State"]["FinishedAt"]
            stamp = datetime.fromisoformat(finished[:26].rstrip("Z") + "+00:00")  # Docker gives nanoseconds
        except (docker.errors.APIError, KeyError, ValueError):
            return 0.0
        return (datetime.now(timezone.utc) - stamp).total_seconds()
