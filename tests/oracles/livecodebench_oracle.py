"""Runs LiveCodeBench's own grader (the vendored ``livecodebench_testing_util``) on problems and samples, the way
``lcb_runner/evaluation/compute_code_generation_metrics.py`` calls it: each program in its own process with a
global timeout of ``(timeout + 1) * cases + 5`` seconds, passing when every case result is positive.

    python livecodebench_oracle.py PROBLEMS.jsonl[,MORE.jsonl] SAMPLES.jsonl OUT.jsonl
    ->  OUT.jsonl: one JSON line per sample, {"passed": bool} (stdout is left to the grader's own prints)

Problems are code_generation_lite records; private cases are decoded here with iterpref's plain-data decoder.
"""

from __future__ import annotations

import json
import multiprocessing
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.set_int_max_str_digits(50000)

TIMEOUT = 6


def _child(sample, code, results):
    from livecodebench_testing_util import run_test

    outcome, _metadata = run_test(sample, test=code, debug=False, timeout=TIMEOUT)
    results.append(all(bool(r > 0) for r in outcome))  # compute_metrics_from_results: np.all(gen > 0)


def grade(sample: dict, code: str) -> bool:
    manager = multiprocessing.Manager()
    results = manager.list()
    cases = len(json.loads(sample["input_output"])["inputs"])
    process = multiprocessing.Process(target=_child, args=(sample, code, results))
    process.start()
    process.join(timeout=(TIMEOUT + 1) * cases + 5)
    if process.is_alive():
        process.kill()
    return bool(results[0]) if results else False  # a global timeout counts every case as failed


def main() -> int:
    from iterpref.tasks.livecodebench import decode_cases

    problems = {}
    for path in sys.argv[1].split(","):
        for line in open(path):
            problem = json.loads(line)
            cases = decode_cases(problem["public_test_cases"], path) + decode_cases(problem["private_test_cases"], path)
            problems[problem["question_id"]] = {"input_output": json.dumps({
                "inputs": [c["input"] for c in cases], "outputs": [c["output"] for c in cases],
                "fn_name": json.loads(problem["metadata"]).get("func_name")})}
    with open(sys.argv[3], "w") as out:
        for line in open(sys.argv[2]):
            sample = json.loads(line)
            out.write(json.dumps({"passed": grade(problems[sample["task_id"]], sample["solution"])}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
