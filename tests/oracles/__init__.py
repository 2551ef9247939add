"""Official graders run as oracles by the agreement tests (see each module's docstring)."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path


def run_oracle(argv: list[str], cwd: Path, env: dict[str, str], timeout: float = 1100) -> tuple[int, str]:
    """Run an official grader in its own process group; (exit status, its output). Graders that start
    multiprocessing managers leave them behind: they write to a file, not to a pipe of ours, so waiting ends
    with the grader itself, and the whole group is killed afterwards."""
    log = cwd / "oracle.log"
    with open(log, "w") as sink:
        process = subprocess.Popen(argv, stdout=sink, stderr=subprocess.STDOUT, cwd=cwd, env=env,
                                   start_new_session=True)
        try:
            code = process.wait(timeout=timeout)
        finally:
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    return code, log.read_text(errors="replace")
