#!/usr/bin/env python3
"""The runner container's main process: it stands between the docker backend and ``runner.py``. Stdlib only.

Why it exists: the backend must be able to trust the container's answer although candidate code runs inside.
The guard starts as uid 0 holding exactly CAP_SETUID, CAP_SETGID and CAP_KILL (it refuses anything else); the
runner it starts keeps them for its harness processes and runs every program and every checker under a fresh
unprivileged uid with no capabilities (``--switch-uids``), so a candidate can neither signal nor trace the harness
nor another job. Beyond that, the guard closes the doors to the container's stdout:

- it and the runner (run in a forked child, not exec'd, so the flag survives) are non-dumpable: same-user
  processes can neither ptrace them nor open their /proc files, so only the runner can write into its stdout pipe;
- the backend's job arrives as a line ``<nonce> <key> <length> <again>`` (nonce and key random, fresh per job),
  then the runner's JSON job; the runner never sees nonce or key, and the guard's memory is unreadable to the
  candidate;
- the runner is forked once, before the guard reads any job, and serves job after job (``--serve``); once it
  has started (imports, zygote, a supervisor and its first loader forked) the guard writes ``IPSB1 ready`` on
  stdout: the pool counts a container as warm only then, so no job waits for a runner that is still starting;
- once the runner's answer is complete (or the runner exits), the guard kills every other process in the
  container but the runner's judge and zygote (for an answer that fits one atomic pipe write, right after
  writing it) and writes ``IPSB1 <nonce> <status> <length> <mac>\n`` and the answer, where ``status`` is ``ok``
  for a complete answer, else the runner's exit status, and ``mac`` is HMAC-SHA256 under ``key`` of ``status``
  and the answer.

With ``again`` set and a complete answer, the guard then resets the container (container_reset.py: every process
but init, itself, the judge and the zygote killed, every writable path emptied, System V IPC removed, its own
state checked), tells the runner to start its next supervisor, and once it is ready writes
``IPSB1 ready <nonce> <mac>`` with the MAC of ``ready <nonce>`` under the finished job's key: only then does the
pool hand the container another job. The judge and the zygote never run candidate code and cannot be signalled
or traced by it (other uids, non-dumpable); the zygote, which every later supervisor, loader and checker is
forked from, was forked before the first job, so it holds nothing of any job. A reset that cannot be proven
complete ends the guard, and with it the container. Without ``again`` (single use, or a container's last job)
the guard kills everything and exits after answering.

The backend trusts only an answer whose header carries its nonce and whose MAC checks out. The key never leaves
the guard, so even a process that reads the container's stdout stream (init's pipe can be opened for reading
too) and learns the nonce cannot produce an answer the backend accepts.
"""

import ctypes
import hashlib
import hmac
import os
import select
import signal
import sys
from importlib.machinery import SourceFileLoader, SourcelessFileLoader
from importlib.util import module_from_spec, spec_from_loader

try:  # in the image this file and container_reset.py lie side by side in /opt/sandbox
    import container_reset  # type: ignore[import-not-found]
except ImportError:
    from sandbox.backends import container_reset

# The guard's wire protocol; the docker backend imports these (sandbox/backends/guard_protocol.py). PROTOCOL
# names this framing: images/Dockerfile.runner labels the image with it, and the service refuses an image
# whose label differs, so bump it with any change to what the guard reads or writes.
PROTOCOL = "6"
HEADER = b"IPSB1"
READY = HEADER + b" ready\n"
PR_SET_DUMPABLE = 4
PR_SET_CHILD_SUBREAPER = 36
# What the guard (and the runner's harness processes under it) may hold: switching every program and checker to a
# uid of its own, and killing them. Nothing else; candidate code runs with none (runner.py, --switch-uids).
CAP_KILL, CAP_SETGID, CAP_SETUID = 5, 6, 7
ALLOWED_CAPS = (1 << CAP_KILL) | (1 << CAP_SETGID) | (1 << CAP_SETUID)
RUNNER = os.environ.get("SANDBOX_RUNNER_PATH", "/opt/sandbox/runner.py")
# The image byte-compiles the runner next to it: every container start then skips ~20 ms of compiling it.
RUNNER_CODE = RUNNER[:-3] + ".pyc" if RUNNER.endswith(".py") and os.path.isfile(RUNNER[:-3] + ".pyc") else RUNNER


def load_runner():
    """The runner's code as a module, with the modules it keeps warm for programs imported: the runner is forked
    from this process, before any job, and calls its ``main``."""
    loader_type = SourcelessFileLoader if RUNNER_CODE.endswith(".pyc") else SourceFileLoader
    loader = loader_type("sandbox_runner", RUNNER_CODE)
    spec = spec_from_loader("sandbox_runner", loader)
    if spec is None:
        raise ImportError(f"cannot load the runner from {RUNNER_CODE}")
    module = module_from_spec(spec)
    sys.modules["sandbox_runner"] = module  # dataclasses look their module up there
    loader.exec_module(module)
    for name in module.WARM_MODULES:
        try:
            __import__(name)
        except ImportError:
            pass
    return module


def start_runner(libc, runner) -> tuple:
    """Fork the runner (serving job after job, --serve) with pipes on its stdin and stdout and one it reports
    readiness on; returns (pid, job_w, answer_r, ready_r). Called before the guard reads any job: the runner
    and everything it forks never hold what the guard's memory does."""
    job_r, job_w = os.pipe()
    answer_r, answer_w = os.pipe()
    ready_r, ready_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 70
        try:
            libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)  # inherited over fork; re-asserted for clarity
            os.dup2(job_r, 0)
            os.dup2(answer_w, 1)
            for fd in (job_r, job_w, answer_r, answer_w, ready_r):
                os.close(fd)
            code = runner.main(["--ready-fd", str(ready_w), "--switch-uids", "--serve", *sys.argv[1:]])
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    for fd in (job_r, answer_w, ready_w):
        os.close(fd)
    return pid, job_w, answer_r, ready_r


def await_runner(ready_r: int) -> int:
    """The zygote's pid once the runner says it is ready for a job; 0 if it died instead."""
    message = _read_exact(ready_r, 5)
    return int.from_bytes(message[1:], "big") if len(message) == 5 and message[:1] == b"r" else 0


def _read_exact(fd: int, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = os.read(fd, size - len(data))
        if not chunk:
            break
        data += chunk
    return data


def read_answer(pid: int, answer_r: int) -> tuple:
    """The runner's answer and a status: b"ok" with the answer once it arrived whole (a 4-byte length, then that
    many bytes), else the runner's exit status and whatever it wrote."""
    head = _read_exact(answer_r, 4)
    if len(head) == 4:
        answer = _read_exact(answer_r, int.from_bytes(head, "big"))
        if len(answer) == int.from_bytes(head, "big"):
            return b"ok", answer
    else:
        answer = head
    _, status = os.waitpid(pid, 0)
    return str(os.waitstatus_to_exitcode(status)).encode(), answer


def privileges() -> dict:
    """This process's capability sets and no_new_privs flag, from /proc/self/status."""
    found = {}
    with open("/proc/self/status") as handle:
        for line in handle:
            key, _, value = line.partition(":")
            if key in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs"):
                found[key] = int(value.strip(), 16 if key.startswith("Cap") else 10)
    return found


def refusal() -> str | None:
    """Why this process must not serve, or None: it must be the container's init child, uid 0 holding exactly
    CAP_SETUID, CAP_SETGID and CAP_KILL (bounding set included) with no_new_privs. Root on a host holds more,
    so the guard's kill(-1) can never take down a host session."""
    if os.getppid() != 1:
        return "run only as the main process of a runner container (under its init)"
    caps = privileges()
    if os.getuid() != 0 or os.geteuid() != 0:
        return "start as uid 0 with exactly CAP_SETUID, CAP_SETGID and CAP_KILL (the pool's container spec)"
    if caps.get("CapEff") != ALLOWED_CAPS or caps.get("CapPrm") != ALLOWED_CAPS or caps.get("CapBnd") != ALLOWED_CAPS:
        return (f"holds capabilities {caps.get('CapEff', 0):#x} (bounding {caps.get('CapBnd', 0):#x}); it needs exactly "
                f"CAP_SETUID, CAP_SETGID and CAP_KILL ({ALLOWED_CAPS:#x})")
    if caps.get("CapAmb") or caps.get("CapInh") or caps.get("NoNewPrivs") != 1:
        return "needs no ambient or inheritable capabilities and no_new_privs set (security_opt no-new-privileges)"
    return None


def main() -> int:
    refused = refusal()
    if refused:
        sys.stderr.write(f"guard: {refused}\n")
        return 64
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
        sys.stderr.write("guard: cannot make itself non-dumpable; refusing to serve\n")
        return 70
    libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)  # orphans of the job re-parent here and die below
    pid, job_w, answer_r, ready_r = start_runner(libc, load_runner())
    zygote = await_runner(ready_r)
    baseline = container_reset.snapshot()
    ready = READY
    while True:
        if not zygote:  # a container that cannot serve says so by exiting
            sys.stderr.write("guard: the runner did not start\n")
            kill_the_rest()
            return 70
        write_all(ready)
        job = read_job()
        if job is None:  # the pool closed our stdin: no more jobs
            kill_the_rest()
            return 0
        nonce, key, again, body = job
        if len(nonce) < 16 or len(key) < 32:
            sys.stderr.write("guard: no '<nonce> <key> <length> <again>' line before the job\n")
            kill_the_rest()
            return 2
        keep = (pid, zygote) if again else ()
        if not answer_job(pid, job_w, answer_r, nonce, key, body, keep) or not again:
            return 0
        try:
            container_reset.reset(libc, baseline, keep=keep)
            os.write(job_w, b"g")  # the runner starts its next supervisor only now, in a clean container
        except (container_reset.NotClean, OSError) as exc:
            sys.stderr.write(f"guard: cannot reset the container for another job: {exc}\n")
            kill_the_rest()
            return 75
        if await_runner(ready_r) != zygote:
            zygote = 0
            continue
        # Only the guard can say the reset is done: the ready line is signed with the key of the job just
        # answered, which nothing else in the container ever held.
        ready = reset_line(nonce, key)


def read_job():
    """(nonce, key, another job may follow, job) from ``<nonce> <key> <length> <again>`` and the job; None at
    the end of input. Read from the descriptor, unbuffered: the pool sends nothing past a job before our next
    ready line, and no buffer of ours, which the next runner would inherit, ever holds more than one job."""
    data = bytearray()
    while b"\n" not in data:
        chunk = os.read(0, 1 << 16)
        if not chunk:
            return None if not data else (b"", b"", False, b"")
        data += chunk
    line, _, rest = bytes(data).partition(b"\n")
    try:
        nonce, key, length, again = line.split()
        size = int(length)
    except ValueError:
        return b"", b"", False, b""
    body = bytearray(rest)
    while len(body) < size:
        chunk = os.read(0, min(1 << 20, size - len(body)))
        if not chunk:
            break
        body += chunk
    if len(body) != size:  # cut short, or more than announced: not the pool speaking
        return b"", b"", False, b""
    return nonce, key, again == b"1", bytes(body)


def answer_job(pid: int, job_w: int, answer_r: int, nonce: bytes, key: bytes, job: bytes, spare: tuple) -> bool:
    """Hand ``job`` to the runner, then write the signed frame with its answer; every process but init, the
    guard and ``spare`` is killed around the write. True if the runner answered and lives on."""
    try:
        write_all(len(job).to_bytes(4, "big") + job, job_w)
    except BrokenPipeError:
        pass
    status, answer = read_answer(pid, answer_r)
    frame = b"%s %s %s %d %s\n%s" % (HEADER, nonce, status, len(answer), sign(key, status + b" " + answer), answer)
    # Leftovers of the job die before the answer goes out, so none can write into the middle of it: except for
    # an answer of at most PIPE_BUF bytes, written in one write(), which the kernel never interleaves with
    # another writer's bytes. Those go first, since the dying processes would take the CPU from the answer.
    spare = spare if status == b"ok" else ()
    small = len(frame) <= select.PIPE_BUF
    if not small:
        kill_the_rest(spare)
    write_all(frame)
    if small:
        kill_the_rest(spare)
    return status == b"ok"


def sign(key: bytes, message: bytes) -> bytes:
    """HMAC-SHA256 of ``message`` under ``key``, as hex: the MAC of frames and ready lines (the pool checks it)."""
    return hmac.new(key, message, hashlib.sha256).hexdigest().encode()


def reset_line(nonce: bytes, key: bytes) -> bytes:
    """The ready line after a reset that followed the job sent with ``nonce`` and ``key``."""
    return b"%s ready %s %s\n" % (HEADER, nonce, sign(key, b"ready " + nonce))


def write_all(data: bytes, fd: int = 1) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def kill_the_rest(spare: tuple = ()) -> None:
    """SIGKILL every process in the container but init, the guard and ``spare``, stopped ones included."""
    if spare:
        container_reset.kill_all_but(spare)
        return
    try:
        os.kill(-1, signal.SIGKILL)
    except ProcessLookupError:
        pass


if __name__ == "__main__":
    sys.exit(main())
