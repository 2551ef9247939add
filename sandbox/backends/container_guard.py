#!/usr/bin/env python3
"""The runner container's main process: it stands between the docker backend and ``runner.py``. Stdlib only.

Why it exists: a candidate runs as the same user as every process in its container, so it can write into the
container's stdout (``/proc/1/fd/1`` belongs to the init process) and then kill the runner, leaving a forged
answer as the only output. The guard makes the answer unforgeable without trusting the runner's process tree:

- it makes itself non-dumpable, so same-user processes can neither read its memory nor open its /proc files;
- it reads the job from stdin: a first line with a random nonce, then the runner's JSON job;
- it hands the job to a runner it started at container start (already blocked on its stdin), waits for it,
  kills every process left in the container (kill(-1) spares only init and the guard itself), then writes
  ``HEADER nonce exit_status length\\n`` followed by the runner's stdout.

The backend trusts only bytes after a header with its nonce; anything before it was written by someone else.
"""

import ctypes
import os
import signal
import subprocess
import sys
import threading

HEADER = b"IPSB1"
PR_SET_DUMPABLE = 4
PR_SET_CHILD_SUBREAPER = 36
RUNNER = os.environ.get("SANDBOX_RUNNER_PATH", "/opt/sandbox/runner.py")


def main() -> int:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
        sys.stderr.write("guard: cannot make itself non-dumpable; refusing to serve\n")
        return 70
    libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)  # orphans of the job re-parent here and die below
    runner = subprocess.Popen(
        [sys.executable, RUNNER, *sys.argv[1:]], stdin=subprocess.PIPE, stdout=subprocess.PIPE, close_fds=True
    )
    nonce = sys.stdin.buffer.readline().strip()
    job = sys.stdin.buffer.read()
    if len(nonce) < 16:
        runner.kill()
        sys.stderr.write("guard: no nonce line before the job\n")
        return 2
    chunks: list = []
    reader = threading.Thread(target=lambda: chunks.append(runner.stdout.read()), daemon=True)
    reader.start()
    try:
        runner.stdin.write(job)
        runner.stdin.close()
    except BrokenPipeError:
        pass
    runner.wait()
    try:
        os.kill(-1, signal.SIGKILL)  # every leftover of the job, stopped ones included; a held pipe closes too
    except ProcessLookupError:
        pass
    reader.join()
    out = chunks[0] if chunks else b""
    stdout = sys.stdout.buffer
    stdout.write(b"%s %s %d %d\n" % (HEADER, nonce, runner.returncode, len(out)))
    stdout.write(out)
    stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
