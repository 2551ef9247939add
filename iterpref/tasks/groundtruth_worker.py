"""Runs a data set's canonical solutions on their inputs and reports the outputs as Python literals.

Started by :func:`iterpref.tasks.evalplus.expected_outputs` as a separate process under resource limits: the
canonical solutions are the data set's trusted code, but they still run apart from iterpref. Reads one marshal
blob on stdin, ``[{"task_id", "code", "entry_point", "inputs": {"base": [...], "plus": [...]},
"not_none": bool}, ...]``, and writes one JSON object on stdout: per task either ``{"error": text}`` or, per
input group, the outputs as ``repr`` literals, whether each is a float (or a list/tuple of floats), and the
seconds each call took. Kept stdlib-only apart from ``sandbox.models.read_literal``, which checks that each
literal reads back to the same value.
"""

from __future__ import annotations

import copy
import io
import json
import marshal
import signal
import sys
import time
from contextlib import redirect_stderr, redirect_stdout

from sandbox.models import read_literal

PROBLEM_SECONDS = 120  # one problem's canonical solution on all its inputs


class _Overtime(Exception):
    pass


def _alarm(_signum, _frame):
    raise _Overtime()


def _is_floats(value) -> bool:
    # EvalPlus's rule for enforcing a float tolerance: a float, or a non-empty list/tuple of floats only
    if isinstance(value, float):
        return True
    return isinstance(value, (list, tuple)) and bool(value) and all(isinstance(v, float) for v in value)


def _literal(value) -> str:
    text = repr(value)
    if repr(read_literal(text)) != text:
        raise ValueError(f"a {type(value).__name__} has no literal that reads back to it")
    return text


def solve(problem: dict) -> dict:
    namespace: dict = {"__name__": "__groundtruth__"}
    exec(compile(problem["code"], f"<{problem['task_id']}>", "exec"), namespace)  # noqa: S102 - trusted data set code
    function = namespace[problem["entry_point"]]
    answer: dict = {}
    for group, inputs in problem["inputs"].items():
        outputs, floats, seconds = [], [], []
        for args in inputs:
            args = copy.deepcopy(args)
            start = time.perf_counter()
            value = function(*args)
            seconds.append(time.perf_counter() - start)
            if problem["not_none"]:
                value = value is not None
            outputs.append(_literal(value))
            floats.append(_is_floats(value))
        answer[group] = {"expected": outputs, "floats": floats, "seconds": seconds}
    return answer


def main() -> int:
    problems = marshal.loads(sys.stdin.buffer.read())
    signal.signal(signal.SIGALRM, _alarm)
    results = {}
    for problem in problems:
        sink = io.StringIO()
        signal.alarm(PROBLEM_SECONDS)
        try:
            with redirect_stdout(sink), redirect_stderr(sink):
                results[problem["task_id"]] = solve(problem)
        except _Overtime:
            results[problem["task_id"]] = {"error": f"the canonical solution ran over {PROBLEM_SECONDS} s"}
        except BaseException as exc:  # noqa: BLE001 - one broken problem is reported, the others still run
            results[problem["task_id"]] = {"error": f"the canonical solution failed: {type(exc).__name__}: {exc}"}
        finally:
            signal.alarm(0)
    sys.stdout.write(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
