"""A loader template hands its loaders to its supervisor: cloned with CLONE_PARENT where the kernel allows,
through a middle process elsewhere (runner._LoaderTemplate). Both give the supervisor a child of its own, and
every loader of one template draws its own random numbers."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from sandbox import runner
from sandbox.local import LocalExecutor
from sandbox.models import RunRequest

RUNNER_DIR = Path(__file__).resolve().parents[2] / "sandbox"

pytestmark = [pytest.mark.timeout(60),
              pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the runner is Linux-only")]


def _in_fresh_python(body: str) -> dict:
    script = f"import json, os, sys\nsys.path.insert(0, {str(RUNNER_DIR)!r})\nimport runner\n{body}"
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=50)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.splitlines()[-1])



def test_fork_sibling_makes_a_child_of_the_callers_parent():
    if _in_fresh_python("print(json.dumps(runner._SYS_CLONE))") is None:
        pytest.skip("clone's syscall number is not known on this architecture; the template forks a middle")
    got = _in_fresh_python(
        "me = os.getpid()\n"
        "middle = os.fork()\n"
        "if middle == 0:\n"
        "    sibling = runner._fork_sibling()\n"
        "    if sibling == 0:\n"
        "        os._exit(7 if os.getppid() == me else 8)\n"
        "    os._exit(0)\n"
        "codes = {}\n"
        "for _ in range(2):\n"
        "    pid, status = os.waitpid(-1, 0)\n"
        "    codes[pid] = os.waitstatus_to_exitcode(status)\n"
        "print(json.dumps({'middle': codes.pop(middle), 'sibling': list(codes.values())}))\n")
    # We reaped both: the middle process (exit 0) and, as its parent, the process it cloned (which saw us as its
    # parent).
    assert got == {"middle": 0, "sibling": [7]}


@pytest.mark.parametrize("clone", ["as-is", "None"])
def test_template_loaders_and_checkers_are_children_of_the_supervisor_either_way(tmp_path, clone):
    got = _in_fresh_python(
        ("" if clone == "as-is" else f"runner._SYS_CLONE = {clone}\n")
        + "runner._prctl(runner.PR_SET_CHILD_SUBREAPER, 1)\n"
        f"template = runner._LoaderTemplate({str(tmp_path)!r})\n"
        "made = [template.make_loader(), template.make_checker(), template.make_loader(), template.make_checker()]\n"
        "parents = [int(open(f'/proc/{m.pid}/stat').read().rsplit(')', 1)[1].split()[1]) for m in made]\n"
        "pids = [m.pid for m in made]\n"
        "for m in made:\n"
        "    m.discard()\n"
        "print(json.dumps({'me': os.getpid(), 'parents': parents, 'pids': pids, 'cloning': template.cloning}))\n")
    # Loaders and checkers alike are our own children, whether cloned or adopted after a middle process exited
    # (checkers are then forked by the supervisor itself).
    assert got["parents"] == [got["me"]] * 4
    assert len(set(got["pids"])) == 4
    assert got["cloning"] is (clone == "as-is" and runner._SYS_CLONE is not None)


def test_loaders_of_one_supervisor_draw_different_random_numbers():
    # One worker: the first program goes to the supervisor started before the batch, the others to one that
    # serves several and makes their loaders through its template.
    draw = RunRequest(code="import random\ndef draw():\n    print(random.getrandbits(64))\n",
                      tests=[{"kind": "call", "entry_point": "draw", "args": [], "expected": None}])
    results = LocalExecutor(workers=1).run_batch([draw] * 5)
    values = [r.tests[0].stdout.strip() for r in results]
    assert all(r.passed for r in results), results
    assert len(set(values)) == 5, values
