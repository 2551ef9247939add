"""The process backend: the async Backend contract, namespaces, and infra errors instead of exceptions."""

from __future__ import annotations

import asyncio
import os

from sandbox.backends import process
from sandbox.backends.process import ProcessBackend, decode
from sandbox.models import RunRequest, RunStatus

ECHO_PID = RunRequest(code="import os, socket\n", tests=[
    {"kind": "assert", "code": "print(os.getpid())"},
    {"kind": "assert", "code": "socket.create_connection(('1.1.1.1', 53), timeout=1)"},
])


def test_run_batch_keeps_order_and_validates():
    requests = [RunRequest(code=f"def f():\n    return {i}\n",
                           tests=[{"kind": "call", "entry_point": "f", "expected": i}]) for i in range(5)]

    async def go():
        backend = ProcessBackend(workers=2)
        await backend.start()
        assert backend.ready() == (True, "ready")
        try:
            return await backend.run_batch(requests)
        finally:
            await backend.close()

    results = asyncio.run(go())
    assert [r.passed for r in results] == [True] * 5
    assert asyncio.run(ProcessBackend().run_batch([])) == []


def test_namespaces_hide_the_network_and_host_pids():
    if not process.namespace_prefix():
        import pytest

        pytest.skip("this kernel refuses network/PID namespaces")
    result = asyncio.run(ProcessBackend(workers=1).run_batch([ECHO_PID]))[0]
    pid_test, net_test = result.tests
    assert int(pid_test.stdout) < 100  # a fresh PID namespace numbers from 1
    assert net_test.verdict.value == "error" and net_test.error_type in ("OSError", "ConnectionRefusedError")


def test_broken_runner_output_becomes_retryable_infra_error():
    requests = [ECHO_PID, ECHO_PID]
    for code, out, err in ((1, b"", b"boom"), (0, b"not json", b""), (0, b'{"results": []}', b""),
                           (0, b'{"results": [{"status": "weird"}, {}]}', b"")):
        results = decode(requests, code, out, err)
        assert [r.status for r in results] == [RunStatus.INFRA_ERROR] * 2
        assert all(r.retryable and r.infra_message for r in results)


def test_unreadable_input_exits_at_once_and_leaves_no_work_directory(tmp_path):
    import subprocess
    import sys

    # The runner starts a supervisor and its first loader before it reads its input; bad input must still
    # let them finish at once (no waiting out the zygote's grace period) and remove the loader's directory.
    # "At once" is asserted as an event, not a duration: the grace period is made far longer than the test's
    # timeout, so a runner that waited it out would fail the test on any machine, however fast.
    done = subprocess.run([sys.executable, "-I", str(process.RUNNER), "--workdir", str(tmp_path)],
                          input=b"not json", capture_output=True, timeout=30,
                          env={**os.environ, "SANDBOX_RUNNER_EXIT_GRACE_S": "3600"})
    assert done.returncode == 2 and b"runner: bad input" in done.stderr
    assert list(tmp_path.iterdir()) == []


def test_the_runner_runs_from_bytecode_compiled_once():
    first, second = process.runner_script(), process.runner_script()
    assert first == second and first.endswith(".pyc")
    assert process.runner_script(python="/some/other/python") == str(process.RUNNER)


def test_a_confined_runner_works_with_an_interpreter_in_a_closed_folder_under_tmp(tmp_path):
    """A venv in pytest's tmp_path (0700 folders under /tmp): the private /tmp would hide it; its prefix is bound
    back, read-only, and programs run (once: "cannot confine: mount /tmp/1: No such file or directory")."""
    import json
    import subprocess
    import sys

    import pytest

    if not process.confines():
        pytest.skip("confinement needs root and namespaces")
    assert str(tmp_path).startswith("/tmp/")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(tmp_path / "venv")], check=True)
    python = str(tmp_path / "venv" / "bin" / "python")
    request = RunRequest(code="import json, sys\ndef where():\n    return sys.prefix\n", tests=[
        {"kind": "call", "entry_point": "where", "expected": os.path.realpath(tmp_path / "venv")},
        {"kind": "assert", "code": "import json\nassert json.loads('[1]') == [1]"},
        {"kind": "assert", "code": "open(sys.prefix + '/written', 'w')"}])
    job = {"runs": [request.model_dump(mode="json")], "workers": 1}
    done = subprocess.run(process.runner_command(True, python=python), input=json.dumps(job).encode(),
                          capture_output=True, timeout=120, env={"PATH": os.environ.get("PATH", "")})
    assert done.returncode == 0, done.stderr.decode()
    tests = json.loads(done.stdout)["results"][0]["tests"]
    assert [t["verdict"] for t in tests] == ["pass", "pass", "error"], tests
    assert tests[2]["error_type"] in ("OSError", "PermissionError")  # read-only, or not ours: never writable
