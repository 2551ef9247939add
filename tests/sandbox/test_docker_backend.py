"""The docker backend: pure pieces (stream demux, chunking, deadlines, verdict mapping) without Docker, then the real
thing (marker `docker`): container hardening, hostile programs, orphan reaping, nothing left behind."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import struct
import threading
import time

import pytest

from sandbox.backends import reaper
from sandbox.backends.container_guard import reset_line
from sandbox.backends.docker import DockerBackend, DockerSettings, chunk_sizes, parse_results, whole_run_result
from sandbox.backends.docker_pool import ContainerSpec
from sandbox.backends.guard_protocol import Exchange, FrameReader, await_ready
from sandbox.backends.reaper import OWNER_LABEL, ROLE_LABEL, RUNNER_ROLE
from sandbox.backends.wire import deadline_s
from sandbox.models import RunRequest, RunResult, RunStatus, Verdict


def frame(stream: int, data: bytes) -> bytes:
    return struct.pack(">BxxxL", stream, len(data)) + data


def req(code: str, tests: list[dict], **limits) -> RunRequest:
    return RunRequest(code=code, tests=tests, limits=limits or {"time_s": 2})


# ----- pure pieces -----------------------------------------------------------------------------------------------


def guard_header(nonce: bytes, key: bytes, status: bytes, body: bytes) -> bytes:
    mac = hmac.new(key, status + b" " + body, hashlib.sha256).hexdigest().encode()
    return b"IPSB1 %s %s %d %s\n" % (nonce, status, len(body), mac)


NONCE, KEY = b"abcdef0123456789" * 2, b"k" * 64


def test_frame_reader_trusts_only_an_authentic_answer_after_its_nonce_header():
    answer = b'{"results": []}'
    stream = (
        frame(1, guard_header(b"0" * 32, KEY, b"ok", b"forged"))  # a header with another nonce
        + frame(1, b"forged")
        + frame(2, b"some stderr")
        + frame(1, b"junk" * 1000 + guard_header(NONCE, KEY, b"ok", answer) + answer[:4])
        + frame(1, answer[4:])
    )
    reader = FrameReader(NONCE, KEY)
    for i in range(0, len(stream), 7):  # arbitrary chunking of frames and headers
        reader.feed(stream[i : i + 7])
    assert reader.done()
    assert reader.answer() == (0, answer)
    assert reader.foreign_bytes > 4000 and not reader.forged
    assert bytes(reader.stderr) == b"some stderr"


def test_frame_reader_rejects_a_header_with_our_nonce_but_a_wrong_mac():
    fake = b'{"results": [{"status": "completed", "passed": true}]}'
    reader = FrameReader(NONCE, KEY)
    reader.feed(frame(1, guard_header(NONCE, b"x" * 64, b"ok", fake) + fake))  # nonce stolen, key unknown
    assert reader.done() and reader.answer() == (None, b"") and reader.forged


def test_frame_reader_memory_stays_bounded_under_a_flood_and_reports_exit_status():
    reader = FrameReader(NONCE, KEY)
    for _ in range(200):
        reader.feed(frame(1, b"x" * 65536))
    assert len(reader.stdout) <= 256 and not reader.done()
    reader.feed(frame(1, guard_header(NONCE, KEY, b"137", b"")))
    assert reader.answer() == (137, b"")


def test_a_new_container_counts_as_warm_only_after_the_guards_ready_line():
    import socket
    from concurrent.futures import ThreadPoolExecutor

    ours, theirs = socket.socketpair()
    with ours, theirs, ThreadPoolExecutor(1) as pool:
        theirs.sendall(frame(2, b"starting\n"))
        ready_line = frame(1, b"IPSB1 ready\n")
        waiter = pool.submit(await_ready, ours, 10)
        time.sleep(0.05)
        assert not waiter.done()  # stderr alone is not readiness
        theirs.sendall(ready_line[:5])
        theirs.sendall(ready_line[5:])
        assert waiter.result(5) is None  # returned, not raised (a raise would end a plain thread just the same)


@pytest.mark.parametrize("stream, error", [
    (frame(2, b"guard: the runner did not start\n"), "exited before its runner started: guard: the runner did"),
    (frame(1, b"IPSB1 ready\nIPSB1 forged"), "more than its ready line"),
    (b"", "not ready within"),
])
def test_a_container_that_does_not_announce_its_runner_is_not_used(stream, error):
    import socket

    ours, theirs = socket.socketpair()
    with ours, theirs:
        theirs.sendall(stream)
        if stream:
            theirs.shutdown(socket.SHUT_WR)
        with pytest.raises(RuntimeError, match=error):
            await_ready(ours, 0.3)


def test_what_follows_an_answer_is_kept_for_the_signed_ready_line_of_the_reset():
    answer = b'{"results": []}'
    line = reset_line(NONCE, KEY)
    both = frame(1, guard_header(NONCE, KEY, b"ok", answer) + answer + line[:9]) + frame(1, line[9:])
    reader = FrameReader(NONCE, KEY)
    reader.feed(both[:-5])
    assert reader.answer() == (0, answer)
    rest = reader.rest()
    rest.feed(both[-5:])  # the rest of a frame that was cut in the middle
    assert bytes(rest.stdout) == line and not rest.partial


def reset_pool_and_container(size: int = 1):
    """A pool that never talks to an engine, and a container whose socket is one end of a socketpair."""
    import socket

    from sandbox.backends.docker_pool import ContainerPool, WarmContainer

    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    pool = ContainerPool(ContainerSpec(), size, ready_timeout_s=5)
    return pool, WarmContainer(id="c" * 64, memory_mb=1024, sock=ours, _io=None), theirs


@pytest.mark.parametrize("sent, clean", [
    (lambda line: frame(1, line), True),
    (lambda line: frame(1, reset_line(NONCE, b"x" * 64)), False),  # signed with another key: not the guard's
    (lambda line: frame(1, line + b"x"), False),  # more than the ready line
    (lambda line: frame(1, b"IPSB1 ready\n"), False),  # the unsigned first-start line does not count here
    (lambda line: frame(2, b"guard: cannot reset the container for another job\n"), False),  # the guard exits
])
def test_a_reused_container_returns_only_on_its_guards_signed_ready_line(sent, clean):
    from sandbox.backends.guard_protocol import AttachStream

    pool, container, theirs = reset_pool_and_container()
    line = reset_line(NONCE, KEY)

    async def scenario() -> bool:
        theirs.sendall(sent(line))
        theirs.shutdown(__import__("socket").SHUT_WR)
        return await pool._await_reset(container, AttachStream(), line)

    with theirs:
        assert asyncio.run(scenario()) is clean
    container.close_socket()


def test_only_a_container_whose_job_ended_cleanly_is_reset_for_another():
    pool, container, theirs = reset_pool_and_container()
    destroyed: list[str] = []
    pool._destroy_soon = lambda c, delay_s=0.0: destroyed.append(c.id)  # type: ignore[method-assign]
    line = reset_line(NONCE, KEY)

    async def scenario() -> None:
        container.jobs = 1
        pool._busy[container.id] = container
        dirty = Exchange(runner_exit=0, foreign_bytes=10, reset_line=line)  # something else wrote to stdout
        pool.release(container, dirty)
        assert destroyed == [container.id] and pool.idle == 0
        destroyed.clear()
        pool._busy[container.id] = container
        theirs.sendall(frame(1, line))
        pool.release(container, Exchange(runner_exit=0, reset_line=line))
        assert pool.resetting == 1
        await asyncio.gather(*pool._background)
        assert pool.idle == 1 and pool.resetting == 0 and not destroyed
        container.jobs = pool.jobs_per_container  # its last job: destroyed, never reset
        pool._busy[container.id] = await pool.acquire(1)
        pool.release(container, Exchange(runner_exit=0, reset_line=line))
        assert destroyed == [container.id]

    with theirs:
        asyncio.run(scenario())
    container.close_socket()


def test_a_container_taken_from_the_idle_queue_is_busy_at_once():
    """An acquire that waited for a container marks it busy in the same step that takes it off the queue: were
    it in no state for a moment (as with ``wait_for(queue.get())``, which takes it in a task of its own), the
    refill loop would count it missing and start one container too many."""
    pool, container, theirs = reset_pool_and_container(size=1)

    async def scenario() -> None:
        waiter = asyncio.ensure_future(pool.acquire(30))
        await asyncio.sleep(0)  # the waiter now waits on an empty pool
        assert pool.idle == 0 and pool.busy == 0
        pool._put_idle(container)
        steps = 0
        while not waiter.done():
            assert pool.idle + pool.busy == 1, f"the container was in no state after {steps} steps"
            await asyncio.sleep(0)
            steps += 1
        assert waiter.result() is container and pool.busy == 1 and pool.idle == 0

    with theirs:
        asyncio.run(scenario())
    container.close_socket()


def test_acquire_gives_up_after_its_timeout_on_an_empty_pool():
    pool, container, theirs = reset_pool_and_container(size=1)

    async def scenario() -> None:
        with pytest.raises(asyncio.TimeoutError):
            await pool.acquire(0.05)
        pool._put_idle(container)  # a container that comes later is taken by the next acquire
        assert await pool.acquire(0.05) is container

    with theirs:
        asyncio.run(scenario())
    container.close_socket()


def test_chunking_uses_few_containers_for_small_batches():
    assert chunk_sizes(1, 4, 8) == [1]
    assert chunk_sizes(7, 4, 8) == [7]
    assert chunk_sizes(16, 4, 8) == [8, 8]
    assert chunk_sizes(164, 4, 8) == [41, 41, 41, 41]
    assert sum(chunk_sizes(1000, 3, 8)) == 1000


def test_deadline_covers_list_scheduling_of_every_test_at_its_limit():
    runs = [req("x=1", [{"kind": "assert", "code": "pass"}] * 3, time_s=2.0)] * 4
    # each run: 2 s x (3 tests + load) + 0.5 = 8.5 s; 4 runs on 2 workers: 17 + 8.5 + slack
    assert deadline_s(runs, workers=2, slack_s=5) == pytest.approx(5 + 17 + 8.5)


def _exchange(results: list[dict], exit_status: int = 0) -> Exchange:
    return Exchange(runner_exit=exit_status, runner_stdout=json.dumps({"results": results}).encode())


def test_parse_results_rejects_answers_that_do_not_match_the_request():
    request = req("x=1", [{"kind": "assert", "id": "a", "code": "pass"}])
    good = {"status": "completed", "passed": True, "counts": {"pass": 1}, "tests": [{"id": "a", "verdict": "pass"}]}
    assert parse_results(_exchange([good]), [request])[0].passed
    assert parse_results(_exchange([good], exit_status=1), [request]) is None  # runner did not exit cleanly
    assert parse_results(_exchange([good, good]), [request]) is None  # wrong count
    renamed = {**good, "tests": [{"id": "b", "verdict": "pass"}]}
    assert parse_results(_exchange([renamed]), [request]) is None  # ids the request never had
    assert parse_results(Exchange(runner_exit=0, runner_stdout=b"{not json"), [request]) is None


def test_broken_container_verdicts():
    request = req("x=1", [{"kind": "assert", "id": "a", "code": "pass"}, {"kind": "assert", "id": "b", "code": "1"}])
    verdict = DockerBackend._verdict_for_broken_container
    oom = verdict(request, Exchange(), {"OOMKilled": True, "ExitCode": 137})
    assert [t.verdict for t in oom.tests] == [Verdict.MEMORY, Verdict.MEMORY] and oom.counts == {Verdict.MEMORY: 2}
    late = verdict(request, Exchange(timed_out=True), {"OOMKilled": False, "ExitCode": 137})
    assert {t.verdict for t in late.tests} == {Verdict.TIMEOUT}
    killed = verdict(request, Exchange(), {"OOMKilled": False, "ExitCode": 137})
    assert {t.error_type for t in killed.tests} == {"HarnessSubverted"} and not killed.passed
    gone = verdict(request, Exchange(), {})
    assert gone.status == RunStatus.INFRA_ERROR and gone.retryable


def test_owner_liveness_is_known_only_inside_our_pid_namespace():
    import os
    import subprocess
    import sys

    from sandbox.backends.reaper import owner_alive, process_identity

    mine = process_identity(os.getpid())
    assert mine and owner_alive(mine) is True
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    identity = process_identity(child.pid)
    child.kill()
    child.wait()
    assert owner_alive(identity) is False
    boot, namespace, pid, ticks = mine.split("|")
    assert owner_alive(f"{boot}|{namespace}|{pid}|{int(ticks) + 1}") is False  # a reused pid is another process
    assert owner_alive(f"{boot}|pid:[1]|{pid}|{ticks}") is None  # another namespace: cannot tell
    assert owner_alive("") is None and owner_alive("a|b|c|d") is None


def test_whole_run_result_for_a_test_file_has_one_entry():
    result = whole_run_result(RunRequest(code="", test_file="def test_a(): pass"), Verdict.TIMEOUT, "T", "m")
    assert [t.id for t in result.tests] == ["test_file"] and result.status == RunStatus.COMPLETED


# ----- with Docker -----------------------------------------------------------------------------------------------


def _docker_or_skip():
    docker = pytest.importorskip("docker")
    try:
        client = docker.from_env()
        client.ping()
    except Exception as exc:  # any failure to talk to an engine
        pytest.skip(f"no Docker engine reachable ({type(exc).__name__}); start one with .ci/docker-engine.sh")
    try:
        client.images.get(ContainerSpec().image)
    except docker.errors.ImageNotFound:
        pytest.skip(f"runner image {ContainerSpec().image} missing; build it with images/build-images.sh")
    return client


class LoopThread:
    """An event loop in a thread, so synchronous tests can drive the async backend."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro, timeout: float = 120):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@pytest.fixture(scope="module")
def docker_client():
    return _docker_or_skip()


@pytest.fixture(scope="module")
def backend(docker_client):
    loop = LoopThread()
    settings = DockerSettings(pool_size=3, spec=ContainerSpec(memory_mb=512), deadline_slack_s=1.0)
    backend = DockerBackend(settings)
    loop.run(backend.start())
    deadline = time.monotonic() + 60
    while backend.pool.idle < 1:
        assert time.monotonic() < deadline, f"pool never warmed: {backend.pool.last_error}"
        time.sleep(0.05)
    backend.loop = loop
    yield backend
    loop.run(backend.close())
    loop.stop()
    left = docker_client.api.containers(all=True, filters={"label": f"{OWNER_LABEL}={backend.pool.owner}"})
    assert left == [], f"containers left behind: {[c['Id'][:12] for c in left]}"


def run(backend, *requests: RunRequest) -> list[RunResult]:
    return backend.loop.run(backend.run_batch(list(requests)))


def call(name: str, expected) -> dict:
    return {"kind": "call", "id": name, "entry_point": name, "expected": expected}


@pytest.mark.docker
@pytest.mark.timeout(120)
def test_pool_containers_are_hardened(backend, docker_client):
    deadline = time.monotonic() + 30
    while backend.pool.idle < 1 or backend.pool.removing or backend.pool.busy:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    listed = docker_client.api.containers(filters={"label": f"{OWNER_LABEL}={backend.pool.owner}"})
    assert listed
    attrs = docker_client.api.inspect_container(listed[0]["Id"])  # idle: nothing removes it meanwhile
    host, config = attrs["HostConfig"], attrs["Config"]
    assert host["NetworkMode"] == "none"
    assert host["ReadonlyRootfs"] is True
    # The guard's three capabilities, nothing else (it refuses to serve otherwise); candidates get none.
    assert host["CapDrop"] == ["ALL"] and sorted(host["CapAdd"]) == ["KILL", "SETGID", "SETUID"]
    assert host["SecurityOpt"] == ["no-new-privileges"]
    assert host["Privileged"] is False
    assert host["Memory"] == 512 * 2**20 and host["MemorySwap"] == host["Memory"]
    assert host["PidsLimit"] == 256 and host["NanoCpus"] == 10**9
    assert host["Init"] is True and host["LogConfig"]["Type"] == "none"
    assert "/work" in host["Tmpfs"] and "noexec" in host["Tmpfs"]["/work"] and "mode=1733" in host["Tmpfs"]["/work"]
    assert not attrs["Mounts"]  # nothing from the host, the Docker socket least of all
    assert config["User"] == "0:0"
    assert config["Labels"][ROLE_LABEL] == RUNNER_ROLE


@pytest.mark.docker
@pytest.mark.timeout(120)
def test_batch_verdicts_in_request_order(backend):
    requests = [req(f"def f():\n    return {i}\n", [call("f", 0 if i % 2 else i)]) for i in range(20)]
    results = run(backend, *requests)
    assert [r.passed for r in results] == [i % 2 == 0 for i in range(20)]
    assert results[1].tests[0].verdict == Verdict.FAIL


CONFINEMENT = r'''
import os, socket
def network():
    try:
        socket.create_connection(("1.1.1.1", 53), timeout=1)
        return "open"
    except OSError:
        return "blocked"
def write_root():
    for path in ("/etc/passwd", "/opt/sandbox/runner.py", "/usr/local/x"):
        try:
            open(path, "a").close()
            return "wrote " + path
        except OSError:
            pass
    return "blocked"
def uid_is_its_own():
    # a fresh unprivileged uid, every id the same, that no harness process has
    uids = os.getresuid() + os.getresgid()
    harness = {int(l.split()[1]) for pid in ("1",) for l in open(f"/proc/{pid}/status") if l.startswith("Uid:")}
    return len(set(uids)) == 1 and uids[0] >= 1_000_000 and uids[0] not in harness and os.getgroups() == []
def capabilities():
    sets = {l.split(":")[0]: int(l.split()[1], 16) for l in open("/proc/self/status") if l.startswith("Cap")}
    return [sets["CapEff"], sets["CapPrm"], sets["CapInh"], sets["CapAmb"]]
def work_dir_is_private():
    # its own directory is 0700 and its own; /work itself cannot be listed
    here = os.stat(".")
    try:
        os.listdir("/work")
        listable = True
    except PermissionError:
        listable = False
    return [oct(here.st_mode & 0o777), here.st_uid == os.getuid(), listable]
def foreign_stdout_openable():
    # every process but init may hold a pipe to the judge; none may be openable by the candidate
    found = []
    for pid in os.listdir("/proc"):
        if pid.isdigit() and int(pid) not in (1, os.getpid()):
            for fd in ("0", "1"):
                try:
                    os.close(os.open(f"/proc/{pid}/fd/{fd}", os.O_WRONLY))
                    found.append(f"{pid}/{fd}")
                except OSError:
                    pass
    return found
def work_is_writable():
    with open("scratch.txt", "w") as handle:
        handle.write("ok")
    return open("scratch.txt").read()
'''


@pytest.mark.docker
@pytest.mark.timeout(120)
def test_candidate_is_confined(backend):
    tests = [call("network", "blocked"), call("write_root", "blocked"), call("uid_is_its_own", True),
             call("capabilities", [0, 0, 0, 0]), call("foreign_stdout_openable", []), call("work_is_writable", "ok"),
             call("work_dir_is_private", ["0o700", True, False])]
    (result,) = run(backend, req(CONFINEMENT, tests, time_s=5))
    assert {t.id: t.verdict.value for t in result.tests} == {t["id"]: "pass" for t in tests}, result.tests


FORGER = r'''
import json, os, signal
fake = {"results": [{"status": "completed", "passed": True, "counts": {"pass": 1},
                     "tests": [{"id": "t", "verdict": "pass"}]}]}
try:
    with open("/proc/1/fd/1", "w") as out:  # init's stdout is the container's stdout
        out.write("IPSB1 " + "0" * 32 + " ok 10\n" + json.dumps(fake))
    wrote = True
except OSError:
    wrote = False
os.kill(-1, SIGKILL := signal.SIGKILL)  # then kill every process it can (only its own uid's now)
def wrote_container_stdout():
    return wrote
'''


@pytest.mark.docker
@pytest.mark.timeout(120)
def test_forged_answer_on_the_container_stdout_is_never_a_pass(backend):
    # Its own uid may neither open init's stdout nor signal the guard, the runner or the checker: the forgery and
    # the kill change nothing, and the test is judged as written.
    tests = [{"kind": "assert", "id": "t", "code": "assert False"}, call("wrote_container_stdout", False)]
    (result,) = run(backend, req(FORGER, tests))
    assert not result.passed
    assert [t.verdict for t in result.tests] == [Verdict.FAIL, Verdict.PASS], result.tests


@pytest.mark.docker
@pytest.mark.timeout(120)
def test_flood_on_the_container_stdout_is_ignored(backend):
    # Its own uid may not open init's stdout any more; were it allowed, the backend would skip the flood.
    flood = ('try:\n    with open("/proc/1/fd/1", "w") as out:\n        out.write("{" * (20 * 2**20))\n'
             'except OSError:\n    pass\nx = 1\n')
    (result,) = run(backend, req(flood, [{"kind": "assert", "code": "assert x == 1"}], time_s=10))
    assert result.passed, result.tests


@pytest.mark.docker
@pytest.mark.timeout(120)
def test_sigstop_of_every_process_it_may_signal_stops_only_its_own(backend):
    # Under a uid of its own it may signal no harness process: the guard, runner and checker run on, and the
    # test is judged as written (pytest-timeout bounds a hang).
    code = "import os, signal\nos.kill(-1, signal.SIGSTOP)\nx = 1\n"
    (result,) = run(backend, req(code, [{"kind": "assert", "code": "assert x == 1"}], time_s=1))
    assert result.tests[0].verdict == Verdict.PASS, result.tests


@pytest.mark.docker
@pytest.mark.timeout(120)
def test_a_hostile_program_does_not_decide_its_neighbours(backend):
    good = req("x = 1\n", [{"kind": "assert", "code": "assert x == 1"}])
    killer = req("import os, signal\nos.kill(-1, signal.SIGKILL)\n", [{"kind": "assert", "code": "assert False"}])
    results = run(backend, good, killer, good, good)
    assert [r.passed for r in results] == [True, False, True, True]
    assert results[1].tests[0].verdict == Verdict.FAIL  # it killed only processes of its own uid


@pytest.mark.docker
@pytest.mark.timeout(120)
def test_fork_bomb_and_memory_hog_are_contained(backend):
    bomb = req("import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n",
               [{"kind": "assert", "code": "pass"}], time_s=2)
    hog = req("def f():\n    return len(bytearray(900 * 2**20))\n", [call("f", 0)], time_s=5, memory_mb=128)
    results = run(backend, bomb, hog)
    assert not results[0].passed and results[0].status == RunStatus.COMPLETED
    assert results[1].tests[0].verdict == Verdict.MEMORY
    after = run(backend, req("x = 1\n", [{"kind": "assert", "code": "assert x == 1"}]))
    assert after[0].passed  # the service carries on


def kill_busy_soon(pool, api, after_s: float = 1.0) -> threading.Thread:
    """A started thread that, once ``pool`` hands out a container, kills the busy ones through the engine's API
    ``after_s`` later (as an operator or the OOM killer would); join it after the request."""
    def kill() -> None:
        deadline = time.monotonic() + 20
        while not pool._busy and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(after_s)
        for container_id in list(pool._busy):
            api.kill(container_id)

    killer = threading.Thread(target=kill)
    killer.start()
    return killer


@pytest.mark.docker
@pytest.mark.timeout(60)
def test_a_batch_in_a_container_stopped_from_outside_is_retryable_infra_error(backend, docker_client):
    slow = [req(f"import time\ntime.sleep(3)\nx = {i}\n", [{"kind": "assert", "code": "assert x >= 0"}], time_s=5)
            for i in range(8)]

    killer = kill_busy_soon(backend.pool, docker_client.api)
    results = run(backend, *slow)
    killer.join()
    # Nothing the programs did: no verdict for any of them, and no halving into fresh containers either.
    assert [(r.status, r.retryable) for r in results] == [(RunStatus.INFRA_ERROR, True)] * 8
    assert "stopped from outside" in results[0].infra_message


@pytest.mark.docker
@pytest.mark.timeout(90)
def test_containers_of_a_killed_owner_stop_by_themselves_and_are_reaped(backend, docker_client):
    import os
    import signal
    import subprocess
    import sys

    script = ("import asyncio, sys\n"
              "from sandbox.backends.docker_pool import ContainerPool, ContainerSpec\n"
              "async def main():\n"
              "    pool = ContainerPool(ContainerSpec(memory_mb=256), 1)\n"
              "    await pool.start()\n"
              "    while pool.idle < 1:\n"
              "        await asyncio.sleep(0.05)\n"
              "    print(list(pool._idle._queue)[0].id, flush=True)\n"
              "    await asyncio.sleep(120)\n"
              "asyncio.run(main())\n")
    owner = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        container_id = owner.stdout.readline().strip()
        assert container_id, "the owner process did not start a container"
        os.kill(owner.pid, signal.SIGKILL)  # no clean-up: its attach socket closes with it
        owner.wait()
        deadline = time.monotonic() + 30
        while docker_client.api.inspect_container(container_id)["State"]["Running"]:
            assert time.monotonic() < deadline, "the guard of a dead owner's container kept waiting for a job"
            time.sleep(0.2)
        assert backend.pool.reap(False) >= 1  # its owner process is gone: reaped at once, no grace period
        with pytest.raises(Exception, match="No such container|404"):
            docker_client.api.inspect_container(container_id)
    finally:
        owner.kill()


@pytest.mark.docker
@pytest.mark.timeout(120)
def test_orphans_are_reaped_but_other_live_instances_are_not(backend, docker_client, monkeypatch):
    from docker import errors as docker_errors

    image, pool = ContainerSpec().image, backend.pool
    base = {ROLE_LABEL: RUNNER_ROLE}

    def stopped(owner: str):
        container = docker_client.containers.create(image, labels={**base, OWNER_LABEL: owner})
        docker_client.api.start(container.id)
        try:
            docker_client.api.wait(container.id, timeout=20)  # outside its role the guard refuses and exits
        except docker_errors.NotFound:
            pass  # another live instance's reaper got there first
        return container

    def sleeping(owner: str):
        return docker_client.containers.run(image, entrypoint=["sleep", "60"], detach=True,
                                            labels={**base, OWNER_LABEL: owner})

    mine_stopped, other_stopped = stopped(pool.owner), stopped("other-instance")
    leaked, other_running = sleeping(pool.owner), sleeping("other-instance")
    made = (mine_stopped, other_stopped, leaked, other_running)
    try:
        def remaining() -> set[str]:
            return {c["Id"] for c in docker_client.api.containers(all=True, filters={"label": ROLE_LABEL})}

        pool.reap(False)
        left = remaining()
        assert mine_stopped.id not in left and leaked.id not in left  # ours and untracked: gone at once
        assert other_running.id in left  # a live instance's container is never touched
        assert other_stopped.id in left  # another instance's stopped one: within its grace period
        monkeypatch.setattr(reaper, "_stopped_for", lambda api, container_id: 3600.0)  # an hour later
        pool.reap(False)
        left = remaining()
        assert other_stopped.id not in left and other_running.id in left
    finally:
        for container in made:
            try:
                container.remove(force=True)
            except Exception:
                pass


@pytest.mark.docker
@pytest.mark.timeout(180)
def test_service_over_http_survives_every_hostile_program(docker_client, caplog):
    from fastapi.testclient import TestClient

    from sandbox.server import ServiceSettings, create_app

    hostile = [
        req(FORGER, [{"kind": "assert", "id": "t", "code": "assert False"}]),
        req("import os, signal\nos.kill(-1, signal.SIGKILL)\n", [{"kind": "assert", "code": "assert False"}]),
        req("import os, signal\nos.kill(-1, signal.SIGSTOP)\n", [{"kind": "assert", "code": "assert False"}],
            time_s=1),
        req("while True:\n    pass\n", [{"kind": "assert", "code": "pass"}], time_s=1),
        req("import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n",
            [{"kind": "assert", "code": "pass"}], time_s=1),
        req("x = bytearray(2**31)\n", [{"kind": "assert", "code": "pass"}], memory_mb=64),
        req('print("x" * 10**7)\n', [{"kind": "assert", "code": "pass"}], output_bytes=1000),
    ]
    good = req("x = 1\n", [{"kind": "assert", "code": "assert x == 1"}])
    backend = DockerBackend(DockerSettings(pool_size=2, deadline_slack_s=1.0))
    with TestClient(create_app(backend, ServiceSettings(token=None))) as client:
        body = {"runs": [r.model_dump(mode="json") for r in [*hostile, good]]}
        with caplog.at_level(logging.INFO, logger="sandbox"):
            response = client.post("/v1/batch", json=body)
        assert response.status_code == 200
        results = [RunResult.model_validate(r) for r in response.json()["results"]]
        # The backend's account of any broken container is logged under the request's run id (under uids of their
        # own these programs can no longer break one, so there may be none).
        events = [json.loads(r.getMessage()) for r in caplog.records if r.getMessage().startswith("{")]
        failures = [e for e in events if e["event"] == "runner_failed"]
        assert {e["run_id"] for e in failures} <= {response.headers["x-run-id"]}
        assert [r.passed for r in results] == [False] * len(hostile) + [True]
        assert all(r.status == RunStatus.COMPLETED for r in results)
        assert client.post("/v1/runs", json=good.model_dump(mode="json")).json()["passed"] is True
        deadline = time.monotonic() + 30
        while client.get("/readyz").status_code != 200:
            assert time.monotonic() < deadline, "service never became ready again"
            time.sleep(0.1)
    assert docker_client.api.containers(all=True, filters={"label": f"{OWNER_LABEL}={backend.pool.owner}"}) == []


@pytest.mark.docker
def test_an_image_with_another_guard_protocol_is_refused_with_advice(docker_client):
    from sandbox.backends.docker_pool import ContainerPool

    other = "iterpref/sandbox-executor:latest"  # any image without the runner's protocol label
    try:
        docker_client.images.get(other)
    except Exception:
        pytest.skip(f"{other} not built")
    with pytest.raises(RuntimeError, match="protocol.*build-images.sh"):
        ContainerPool(ContainerSpec(image=other), 1).check_engine_and_image()


@pytest.mark.docker
@pytest.mark.timeout(120)
def test_every_program_and_every_checker_runs_under_a_uid_of_its_own(backend):
    # RLIMIT_NPROC counts per uid across the host: one uid shared by all containers let a fork bomb in one make
    # fork fail in every other. Each program (and each test's checker) now has a fresh unprivileged uid.
    code = "import os\ndef ids():\n    return os.getresuid() + os.getresgid()\n"
    test = ("import os\nmine = os.getresuid() + os.getresgid()\ntheirs = ids()\n"
            "assert len(set(mine)) == 1 and len(set(theirs)) == 1 and mine != theirs\n"
            "assert min(mine + theirs) >= 1_000_000 and os.getgroups() == []\n"
            "print(mine[0], theirs[0])")
    results = run(backend, *[req(code, [{"kind": "assert", "code": test}] * 2) for _ in range(3)])
    assert all(r.passed for r in results), [r.tests for r in results]
    uids = [int(uid) for r in results for t in r.tests for uid in t.stdout.split()]
    assert len(uids) == 12
    checkers, candidates = uids[0::2], uids[1::2]
    assert len(set(checkers)) == 6  # a fresh one per test
    assert len(set(candidates)) == 3 and set(candidates).isdisjoint(checkers)  # one per program


def _busiest_candidate_uid() -> tuple[int, int]:
    """(uid, process count) of the host's most numerous uid in the candidates' range (container processes are
    visible from the host)."""
    from collections import Counter
    from pathlib import Path

    counts: Counter = Counter()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                uid = int((entry / "status").read_text().split("\nUid:")[1].split()[0])
            except (OSError, IndexError, ValueError):
                continue
            if uid >= 1_000_000:
                counts[uid] += 1
    return counts.most_common(1)[0] if counts else (0, 0)


@pytest.mark.docker
@pytest.mark.timeout(120)
def test_a_fork_bomb_in_one_container_leaves_fork_working_in_another(backend):
    # RLIMIT_NPROC (256 per test) counts a uid's processes across the host: with one uid for every container, a
    # bomb holding ~250 processes made fork fail in every other container. Each program now has its own uid.
    bomb = req("import os, signal\ndef hold():\n    while True:\n        try:\n            if os.fork() == 0:\n"
               "                signal.pause()\n        except OSError:\n            signal.pause()\n",
               [{"kind": "call", "id": "hold", "entry_point": "hold", "expected": None}], time_s=20)
    forks = req("import os\ndef forks():\n    for _ in range(20):\n        pid = os.fork()\n        if pid == 0:\n"
                "            os._exit(0)\n        os.waitpid(pid, 0)\n    return 20\n", [call("forks", 20)], time_s=10)
    held = asyncio.run_coroutine_threadsafe(backend.run_batch([bomb]), backend.loop.loop)
    deadline = time.monotonic() + 60
    while _busiest_candidate_uid()[1] < 200:  # the bomb holds its processes: an event seen from the host
        assert time.monotonic() < deadline and not held.done(), "the bomb never filled its uid"
        time.sleep(0.05)
    (result,) = run(backend, forks)
    assert result.tests[0].verdict == Verdict.PASS, result.tests[0]
    (bombed,) = held.result(120)
    assert bombed.tests[0].verdict == Verdict.TIMEOUT


ALLOWED = {"CapInh": 0, "CapPrm": 0xE0, "CapEff": 0xE0, "CapBnd": 0xE0, "CapAmb": 0, "NoNewPrivs": 1}


@pytest.mark.parametrize("ppid, uid, changes, refused", [
    (1, 0, {}, None),
    (7, 0, {}, "main process of a runner container"),
    (1, 10001, {}, "start as uid 0"),
    (1, 0, {"CapEff": 0x1FF, "CapPrm": 0x1FF}, "holds capabilities 0x1ff"),
    (1, 0, {"CapBnd": 0x1FFFFFFFFFF}, "bounding 0x1ffffffffff"),
    (1, 0, {"CapAmb": 0x20}, "no ambient"),
    (1, 0, {"NoNewPrivs": 0}, "no_new_privs"),
])
def test_the_guard_serves_only_as_root_with_exactly_its_three_capabilities(monkeypatch, ppid, uid, changes, refused):
    from sandbox.backends import container_guard

    monkeypatch.setattr(container_guard, "privileges", lambda: {**ALLOWED, **changes})
    monkeypatch.setattr(container_guard.os, "getppid", lambda: ppid)
    monkeypatch.setattr(container_guard.os, "getuid", lambda: uid)
    monkeypatch.setattr(container_guard.os, "geteuid", lambda: uid)
    found = container_guard.refusal()
    assert (found is None) if refused is None else (found is not None and refused in found), found


@pytest.mark.docker
@pytest.mark.timeout(120)
def test_a_runner_container_with_one_capability_too_many_refuses_to_serve(docker_client):
    import docker

    with pytest.raises(docker.errors.ContainerError) as refused:
        docker_client.containers.run(
            ContainerSpec().image, user="0:0", cap_drop=["ALL"], cap_add=["SETUID", "SETGID", "KILL", "CHOWN"],
            security_opt=["no-new-privileges"], init=True, network_disabled=True, remove=True, stderr=True)
    assert refused.value.exit_status == 64 and b"guard: holds capabilities 0xe1" in refused.value.stderr
