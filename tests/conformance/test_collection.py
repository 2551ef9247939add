"""Collecting the conformance suite must not contact a Docker engine: the check runs at setup (tests/conftest.py),
so that `pytest -m "not docker"` and a host whose engine hangs collect at once."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Every way the SDK reaches an engine goes through these. Each call is counted, not only raised, because a check
# at import would catch the exception and carry on.
PROBE = """
import sys
import docker
calls = []
def contacted(*args, **kwargs):
    calls.append(args)
    raise docker.errors.DockerException("no engine for this probe")
docker.from_env = contacted
docker.DockerClient.__init__ = contacted
docker.APIClient.__init__ = contacted
import tests.conformance.test_faults, tests.conformance.test_load, tests.conformance.test_hostile
import tests.conformance.test_fuzz_api
sys.exit(f"{len(calls)} Docker client(s) made while importing the suite" if calls else 0)
"""


def test_importing_the_conformance_modules_contacts_no_docker_engine():
    child = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert child.returncode == 0, child.stderr[-3000:]
