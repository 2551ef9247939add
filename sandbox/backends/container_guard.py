#!/usr/bin/env python3
"""The runner container's main process: it stands between the docker backend and ``runner.py``. Stdlib only.

Why it exists: the backend must be able to trust the container's answer although candidate code runs inside.
The guard starts as uid 0 holding exactly CAP_SETUID, CAP_SETGID and CAP_KILL (it refuses anything else); the
runner it starts keeps them for its harness processes and runs every program and every checker under a fresh
unprivileged uid with no capabilities (``--switch-uids``), so a candidate can neither signal nor trace the harness
nor another job. Beyond that, the guard closes the doors to the container's stdout:

- it and the runner (run in a forked child, not exec'd, so the flag survives) are non-dumpable: same-user
  processes can neither ptrace them nor open their /proc files, so only the runner can write into its stdout pipe;
- the backend's job arrives as a line ``<nonce> <key> <length>`` (random, fresh per job), then the runner's JSON
  job; the runner never sees nonce or key, and the guard's memory is unreadable to the candidate;
- once the runner has started (imports, zygote, a supervisor and its first loader forked), the guard writes
  ``IPSB1 ready`` on stdout: the pool counts a container as warm only then, so no job waits for a runner that
  is still starting;
- once the runner's answer is complete (or the runner exits), the guard kills every other process in the
  container (kill(-1) spares only init and the caller; for an answer that fits one atomic pipe write, right
  after writing it) and writes ``IPSB1 <nonce> <status> <length> <mac>\n``
  and the answer, where ``status`` is ``ok`` for a complete answer, else the runner's exit status, and ``mac`` is
  HMAC-SHA256 under ``key`` of ``status`` and the answer.

The backend trusts only an answer whose header carries its nonce and whose MAC checks out. The key never leaves
the guard, so even a process that reads the container's stdout stream (init's pipe can be opened for reading
too) and learns the nonce cannot produce an answer the backend accepts.
"""

import ctypes
import hashlib
import hmac
import json
import os
import runpy
import select
import signal
import sys

# The guard's wire protocol; the docker backend imports these (sandbox/backends/guard_protocol.py). PROTOCOL
# names this framing: images/Dockerfile.runner labels the image with it, and the service refuses an image
# whose label differs, so bump it with any change to what the guard reads or writes.
PROTOCOL = "5"
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
PARSE_ATTEMPTS = 8  # early-completion checks per answer; past that, wait for the runner to exit


def start_runner(libc) -> tuple:
    """Fork the runner with pipes on its stdin and stdout and one it reports readiness on; returns
    (pid, job_w, answer_r, ready_r)."""
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
            sys.argv = [RUNNER, "--ready-fd", str(ready_w), "--switch-uids", *sys.argv[1:]]
            runpy.run_path(RUNNER_CODE, run_name="__main__")
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        finally:
            sys.stdout.flush()
            os._exit(code)
    os.close(job_r)
    os.close(answer_w)
    os.close(ready_w)
    return pid, job_w, answer_r, ready_r


def read_answer(pid: int, answer_r: int) -> tuple:
    """The runner's stdout and a status: b"ok" once it holds one complete JSON value, else the exit status."""
    data = bytearray()
    attempts = 0
    while True:
        chunk = os.read(answer_r, 1 << 20)
        if not chunk:
            break
        data += chunk
        caught_up = not select.select([answer_r], [], [], 0)[0]
        if data.endswith(b"}") and caught_up and attempts < PARSE_ATTEMPTS:
            attempts += 1
            try:
                json.loads(data)
                return b"ok", bytes(data)
            except ValueError:
                pass
    _, status = os.waitpid(pid, 0)
    return str(os.waitstatus_to_exitcode(status)).encode(), bytes(data)


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
    pid, job_w, answer_r, ready_r = start_runner(libc)  # the runner loads now and blocks on its stdin
    if os.read(ready_r, 1) != b"r":  # it died while starting: a container that cannot serve says so by exiting
        sys.stderr.write("guard: the runner did not start\n")
        os.kill(-1, signal.SIGKILL)
        return 70
    os.close(ready_r)
    sys.stdout.buffer.write(READY)
    sys.stdout.buffer.flush()

    # "<nonce> <key> <job length>\n" then the job: reading exactly that much does not wait for the end of stdin.
    try:
        nonce, key, length = sys.stdin.buffer.readline().split()
        job = sys.stdin.buffer.read(int(length))
    except ValueError:
        nonce, key, job = b"", b"", b""
    if len(nonce) < 16 or len(key) < 32:
        sys.stderr.write("guard: no '<nonce> <key> <length>' line before the job\n")
        os.kill(-1, signal.SIGKILL)
        return 2
    try:
        view = memoryview(job)
        while view:  # the runner reads all of its stdin before it writes anything
            view = view[os.write(job_w, view) :]
    except BrokenPipeError:
        pass
    os.close(job_w)
    status, answer = read_answer(pid, answer_r)
    mac = hmac.new(key, status + b" " + answer, hashlib.sha256).hexdigest().encode()
    frame = b"%s %s %s %d %s\n%s" % (HEADER, nonce, status, len(answer), mac, answer)
    # Leftovers of the job die before the answer goes out, so none can write into the middle of it: except for
    # an answer of at most PIPE_BUF bytes, written in one write(), which the kernel never interleaves with
    # another writer's bytes. Those go first, since the dying processes would take the CPU from the answer.
    small = len(frame) <= select.PIPE_BUF
    if not small:
        kill_the_rest()
    view = memoryview(frame)
    while view:
        view = view[os.write(1, view) :]
    if small:
        kill_the_rest()
    return 0


def kill_the_rest() -> None:
    """SIGKILL every process in the container but init and the guard, stopped ones included."""
    try:
        os.kill(-1, signal.SIGKILL)
    except ProcessLookupError:
        pass


if __name__ == "__main__":
    sys.exit(main())
