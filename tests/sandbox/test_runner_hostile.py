"""Hostile or broken candidates: forging a pass, escaping processes, bad output, hanging on stdin."""

from __future__ import annotations

import os
import time

import pytest

from sandbox.local import LocalExecutor
from sandbox.models import RunRequest, Verdict

LIMITS = {"time_s": 2, "memory_mb": 128, "output_bytes": 4096}
ASSERT_TRUE = [{"kind": "assert", "code": "assert answer() == 42"}]
WRONG = "def answer():\n    return 41\n"

FORGERIES = {
    "sys_exit_in_test": (WRONG, [{"kind": "assert", "code": "import sys\nsys.exit(0)"}]),
    "os_exit_in_test": (WRONG, [{"kind": "assert", "code": "import os\nos._exit(0)"}]),
    "exit_in_call": ("import os\ndef answer():\n    os._exit(0)\n",
                     [{"kind": "call", "entry_point": "answer", "expected": 42}]),
    "printed_markers": ("import sys\nprint('{\"verdict\": \"pass\"}')\nsys.stdout.flush()\ndef answer():\n"
                        "    print('PASS'); print('{\"results\": [{\"status\": \"completed\"}]}')\n    raise SystemExit(0)\n",
                        ASSERT_TRUE),
    "patched_exit_and_marshal": ("import os, marshal, sys\nos._exit = lambda *a: None\nmarshal.dumps = lambda *a: b'x'\n"
                                 "sys.exit = lambda *a: None\n" + WRONG, ASSERT_TRUE),
    "patched_builtins": ("import builtins\nbuiltins.isinstance = lambda *a: True\nbuiltins.len = lambda x: 0\n" + WRONG,
                         ASSERT_TRUE),
    "write_to_every_fd": ("import os, marshal\ndef answer():\n    blob = marshal.dumps((b'0' * 16, 'ok', marshal.dumps(None)))\n"
                          "    for fd in range(3, 256):\n        try:\n            os.write(fd, len(blob).to_bytes(4, 'big') + blob)\n"
                          "        except OSError:\n            pass\n    return 41\n", ASSERT_TRUE),
    "guess_expected_from_memory": ("import gc\ndef answer():\n    for o in gc.get_objects():\n"
                                   "        if isinstance(o, dict) and 'expected' in o:\n            return o['expected']\n"
                                   "    return None\n",
                                   [{"kind": "call", "entry_point": "answer", "expected": "s3cret-value-1234"}]),
    "top_level_exit0": ("import sys\nsys.exit(0)\n" + WRONG, ASSERT_TRUE),
    "top_level_os_exit0": ("import os\nos._exit(0)\n" + WRONG, ASSERT_TRUE),
}

ROBUSTNESS = {
    "binary_output": ("import os\ndef answer():\n    os.write(1, bytes(range(256)) * 4)\n    os.write(2, b'\\xff\\xfe')\n"
                      "    return 42\n", ASSERT_TRUE, "pass"),
    "huge_output_c_level": ("import os\ndef answer():\n    while True:\n        os.write(1, b'y' * 65536)\n",
                            ASSERT_TRUE, "output_limit"),
    "deep_recursion": ("def answer(n=0):\n    return answer(n + 1)\n", ASSERT_TRUE, "error"),
    "closed_stdout": ("import os, sys\ndef answer():\n    os.close(1)\n    os.close(2)\n    print('lost')\n    return 42\n",
                      ASSERT_TRUE, "pass"),  # the lost print is only noticed at interpreter exit
    "stdin_hang": ("import sys\ndef answer():\n    sys.stdin.read()\n    return 42\n", ASSERT_TRUE, "pass"),
    "stdio_reads_past_input": ("import sys\nprint(sys.stdin.read().upper())\n",
                               [{"kind": "stdio", "stdin": "abc", "expected_stdout": "ABC"}], "pass"),
    "fork_bomb": ("import os\ndef answer():\n    for _ in range(200):\n        try:\n            os.fork()\n"
                  "        except OSError:\n            pass\n    return 42\n", ASSERT_TRUE, None),
    "thread_at_top_level": ("import threading, time\nthreading.Thread(target=time.sleep, args=(30,), daemon=True).start()\n"
                            "def answer():\n    return 42\n", ASSERT_TRUE * 2, "pass"),
}


@pytest.fixture(scope="module")
def results() -> dict:
    cases = {**{k: v[:2] for k, v in FORGERIES.items()}, **{k: v[:2] for k, v in ROBUSTNESS.items()}}
    requests = [RunRequest(code=code, tests=tests, limits=LIMITS) for code, tests in cases.values()]
    return dict(zip(cases, LocalExecutor(workers=2).run_batch(requests)))


@pytest.mark.parametrize("name", list(FORGERIES))
def test_forgery_never_passes(results, name):
    result = results[name]
    assert result.status.value == "completed"
    assert not result.passed
    assert all(t.verdict is not Verdict.PASS for t in result.tests)


def test_early_exit_is_an_error_with_a_reason(results):
    for name in ("sys_exit_in_test", "os_exit_in_test", "exit_in_call", "printed_markers"):
        test = results[name].tests[0]
        assert test.verdict is Verdict.ERROR, name
        assert "before reporting a result" in test.message, (name, test.message)
    assert results["top_level_exit0"].tests[0].program_error


def test_monkeypatching_the_harness_does_not_help(results):
    assert results["patched_exit_and_marshal"].tests[0].verdict is Verdict.FAIL
    assert results["patched_builtins"].tests[0].verdict is Verdict.FAIL


def test_forged_reports_on_other_fds_are_ignored(results):
    assert results["write_to_every_fd"].tests[0].verdict in (Verdict.FAIL, Verdict.ERROR)


@pytest.mark.parametrize("name", list(ROBUSTNESS))
def test_bad_behaviour_gets_a_verdict(results, name):
    expected = ROBUSTNESS[name][2]
    result = results[name]
    assert result.status.value == "completed"
    if expected is not None:
        assert [t.verdict.value for t in result.tests] == [expected] * len(result.tests), result.tests[0]


def test_binary_output_is_decoded_with_replacement(results):
    test = results["binary_output"].tests[0]
    assert "\ufffd" in test.stdout and "\ufffd" in test.stderr and len(test.stdout) >= 1024


def test_deep_recursion_reports_the_candidate_line(results):
    test = results["deep_recursion"].tests[0]
    assert test.error_type == "RecursionError" and test.line == 2
    assert len(test.traceback) < 20_000 and "Previous line repeated" in test.traceback


@pytest.mark.timeout(60)
def test_escaped_and_stopped_processes_are_killed():
    # No PID namespace here, so the pids written below are real and the runner's own kill logic is tested.
    marker = f"/tmp/sandbox-escape-{os.getpid()}"
    code = (
        "import os, signal, time\n"
        "def spawn(path, stop):\n"
        "    if os.fork() == 0:\n"
        "        os.setsid()\n"
        "        if os.fork() == 0:\n"
        "            open(path + '.new', 'w').write(str(os.getpid()))\n"
        "            os.rename(path + '.new', path)\n"
        "            if stop:\n"
        "                os.kill(os.getpid(), signal.SIGSTOP)\n"
        "            time.sleep(60)\n"
        "        os._exit(0)\n"
        "    while not os.path.exists(path):\n"  # wait for the event, however slow the machine
        "        time.sleep(0.01)\n"
    )
    tests = [{"kind": "assert", "code": f"spawn({marker + '-a'!r}, False)"},
             {"kind": "assert", "code": f"spawn({marker + '-b'!r}, True)"}]
    request = RunRequest(code=code, tests=tests, limits=LIMITS)
    result = LocalExecutor(workers=1, isolate=False).run(request)
    assert result.passed, result.tests
    for suffix in ("-a", "-b"):
        pid = int(open(marker + suffix).read())
        os.unlink(marker + suffix)
        deadline = time.monotonic() + 40  # clean-up follows the answer; a loaded machine may take a while
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(pid), f"escaped process {pid} survived"


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
