"""Grades samples with the official ``bigcodebench`` package (PyPI), local execution only, composed as
``bigcodebench.evaluate.evaluate(..., execution="local")`` composes it with its defaults: the ground-truth time
from ``gen.util.trusted_check`` on the canonical solution, the "calibrated" program (``code_prompt`` with a
``pass`` body, then the sample), and ``eval.untrusted_check`` with 30 GiB memory and 10 MiB stack limits.
(``bigcodebench.evaluate`` itself cannot be imported without its remote-execution clients, gradio and e2b.)

The per-task limit is the package's TIMEOUT_LIMIT (240 s), set here to the first argument so that the fixture's
endless programs take seconds, not minutes; iterpref's tasks get the same limit in the agreement test.

    python bigcodebench_oracle.py SECONDS PROBLEMS.jsonl SAMPLES.jsonl OUT.jsonl   ->  {"status": ...} per sample
"""

from __future__ import annotations

import json
import sys


def main() -> int:
    import bigcodebench.eval as evaluation
    import bigcodebench.gen.util as generation

    seconds = float(sys.argv[1])
    evaluation.TIMEOUT_LIMIT = generation.TIMEOUT_LIMIT = seconds
    problems = {p["task_id"]: p for p in map(json.loads, open(sys.argv[2]))}
    limits = (30 * 1024, 30 * 1024, 10)  # evaluate()'s max_as_limit, max_data_limit, max_stack_limit
    expected_time = {}
    for task_id, p in problems.items():
        expected_time[task_id] = generation.trusted_check(
            p["complete_prompt"] + "\n" + p["canonical_solution"], p["test"], task_id, *limits, 1)["time"]
    with open(sys.argv[4], "w") as out:
        for line in open(sys.argv[3]):
            sample = json.loads(line)
            p = problems[sample["task_id"]]
            solution = p["code_prompt"] + "\n    pass\n" + sample["solution"]
            status, details = evaluation.untrusted_check(solution, p["test"], p["entry_point"], *limits,
                                                         1, expected_time[sample["task_id"]] or 20)
            out.write(json.dumps({"status": status, "details": sorted(details)}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
