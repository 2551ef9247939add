"""EvalPlus's HumanEval+ and MBPP+ (Liu et al. 2023, github.com/evalplus/evalplus) as tasks.

A problem of either file (``HumanEvalPlus.jsonl[.gz]``, ``MbppPlus.jsonl[.gz]``, one JSON object per line) has
``task_id``, ``prompt``, ``entry_point``, ``canonical_solution``, ``base_input`` (the original benchmark's
inputs), ``plus_input`` (EvalPlus's extra inputs) and ``atol``. It becomes a task with two ``cases`` tests of the
executor's contract: ``base`` (what tables call HE / MBPP) and ``plus`` (HE+ / MBPP+ need both to pass).

Grading follows EvalPlus's ``untrusted_check``:

- expected outputs come from the canonical solution, run on a deep copy of each input in a separate process
  with limits (:mod:`.groundtruth_worker`), cached on disk by a hash of the data file;
- each input's time limit is ``max(min_time_s, time_factor * canonical seconds)`` (EvalPlus: 1 s and 4x), the
  test's overall limit ``min(60, sum of them) + 1`` s;
- values compare with ``==``; where they differ and a tolerance applies, numbpy's ``allclose`` rule with the
  problem's ``atol`` and a relative 1e-7, with ``atol`` raised to 1e-6 from the first float output on (EvalPlus
  keeps that raise for the rest of the inputs);
- special oracles: HumanEval/32 (``find_zero``) passes when the result is a root of the input polynomial within
  ``atol``; MBPP+ compares some tasks' outputs as sets, checks three only for ``None``, accepts any output of
  one, and a second accepted value for three others; MBPP+ turns some inputs' lists into tuples, sets or complex
  numbers as EvalPlus's loader does.
"""

from __future__ import annotations

import hashlib
import json
import marshal
import math
import os
import resource
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any, Callable, Optional

from iterpref.errors import DataError
from iterpref.records import Task, read_jsonl

MIN_TIME_S = 1.0  # EvalPlus's DEFAULT_MIN_TIME_LIMIT
TIME_FACTOR = 4.0  # EvalPlus's DEFAULT_GT_TIME_LIMIT_FACTOR
TEST_TIME_CAP_S = 60.0  # EvalPlus's per-task budget (EVALPLUS_TIMEOUT_PER_TASK), also the executor's maximum
RELATIVE_TOLERANCE = 1e-7  # numpy.testing.assert_allclose's default, which EvalPlus passes to allclose
FLOAT_TOLERANCE = 1e-6  # EvalPlus enforces it once a float output is seen and atol is 0
GROUNDTRUTH_VERSION = 1  # raise when the cached outputs' meaning changes
REQUIRED = ("task_id", "prompt", "entry_point", "canonical_solution", "base_input", "plus_input", "atol")

BENCHMARKS = {
    "humaneval+": {
        "dataset": "humaneval", "env": "HUMANEVAL_OVERRIDE_PATH", "name": "HumanEval+",
        "url": "https://github.com/evalplus/humanevalplus_release/releases/download/v0.1.10/HumanEvalPlus.jsonl.gz",
    },
    "mbpp+": {
        "dataset": "mbpp", "env": "MBPP_OVERRIDE_PATH", "name": "MBPP+",
        "url": "https://github.com/evalplus/mbppplus_release/releases/download/v0.2.0/MbppPlus.jsonl.gz",
    },
}

# MBPP+ special oracles, by entry point (EvalPlus keys them the same way).
MBPP_SET_COMPARED = {"similar_elements", "find_char_long", "common_in_nested_lists", "extract_singly", "larg_nnum",
                     "intersection_array", "find_dissimilar", "Diff"}
MBPP_NOT_NONE = {"check_str", "text_match_three", "text_starta_endb"}
MBPP_ANY_OUTPUT = {"are_equivalent"}


def _surface_area(base_edge: float, height: float) -> int:
    # Mbpp/581 also accepts the area with the height read as the pyramid's perpendicular height
    slant = math.sqrt((base_edge / 2) ** 2 + height**2)
    return round(base_edge**2 + 2 * base_edge * slant)


def _digit_distance(a: int, b: int) -> int:
    # Mbpp/558 also accepts the distance with the shorter number left-padded with zeros
    left, right = str(a), str(b)
    width = max(len(left), len(right))
    return sum(abs(int(x) - int(y)) for x, y in zip(left.zfill(width), right.zfill(width)))


MBPP_ALSO_ACCEPTED: dict[str, Callable[..., Any]] = {
    "sum_div": lambda *args: 0, "surface_Area": _surface_area, "digit_distance_nums": _digit_distance}


# --- MBPP+ inputs: JSON has no tuples, sets or complex numbers; these problems need them back ------------------
def _tuples(value: Any) -> Any:
    return tuple(_tuples(v) for v in value) if isinstance(value, list) else value


def _each_arg_tuple(inp: list) -> list:
    return [tuple(arg) for arg in inp]


def _nested_tuples(inp: list) -> list:
    return [[tuple(item) for item in arg] for arg in inp]


_MBPP_INPUT_FIXES: dict[int, Callable[[list], Any]] = {}
for _number in (2, 116, 132, 143, 222, 261, 273, 394, 399, 421, 424, 429, 470, 560, 579, 596, 616, 630, 726, 740,
                744, 809):
    _MBPP_INPUT_FIXES[_number] = _each_arg_tuple
for _number in (63, 64, 70, 94, 120, 237, 272, 299, 400, 409, 417, 438, 473, 614, 780):
    _MBPP_INPUT_FIXES[_number] = _nested_tuples
for _number in (75, 413, 444, 753):
    _MBPP_INPUT_FIXES[_number] = lambda inp: [[tuple(item) for item in inp[0]], inp[1]]
for _number in (106, 750):
    _MBPP_INPUT_FIXES[_number] = lambda inp: [inp[0], tuple(inp[1])]
for _number in (250, 405, 446, 617, 720, 763, 808):
    _MBPP_INPUT_FIXES[_number] = lambda inp: [tuple(inp[0]), inp[1]]
for _number in (259, 401, 445):
    _MBPP_INPUT_FIXES[_number] = lambda inp: [tuple(tuple(item) for item in arg) for arg in inp]
for _number in (580, 615, 791):
    _MBPP_INPUT_FIXES[_number] = _tuples
_MBPP_INPUT_FIXES[115] = lambda inp: [[set(item) if isinstance(item, list) and item else {} for item in inp[0]]]
_MBPP_INPUT_FIXES[124] = lambda inp: (float(inp[0]), complex(inp[1]))
_MBPP_INPUT_FIXES[252] = lambda inp: [complex(inp[0])]
_MBPP_INPUT_FIXES[278] = lambda inp: [tuple(tuple(item) if isinstance(item, list) else item for item in inp[0])]
_MBPP_INPUT_FIXES[307] = lambda inp: [tuple(inp[0]), inp[1], inp[2]]
_MBPP_INPUT_FIXES[722] = lambda inp: [{key: tuple(value) for key, value in inp[0].items()}, *inp[1:]]


def mbpp_inputs(task_id: str, inputs: list) -> list:
    """MBPP+ inputs as EvalPlus's loader hands them to the function (lists turned back into tuples, ...)."""
    try:
        fix = _MBPP_INPUT_FIXES.get(int(task_id.rsplit("/", 1)[-1]))
    except ValueError:
        fix = None
    return [fix(inp) for inp in inputs] if fix else inputs


# --- files ------------------------------------------------------------------------------------------------------
def source_path(benchmark: str, source: Optional[str | Path] = None) -> Path:
    """The data file: ``source``, else the benchmark's EvalPlus variable; a clear error when neither exists."""
    spec = BENCHMARKS[benchmark]
    chosen = source or os.environ.get(spec["env"])
    how = (f"download {spec['url']} and pass it with --source FILE (or set {spec['env']}); "
           "iterpref reads the .jsonl or .jsonl.gz as released and never downloads at run time")
    if not chosen:
        raise DataError(f"{spec['name']}: no data file given; {how}")
    path = Path(chosen)
    if not path.is_file():
        raise DataError(f"{spec['name']}: {path} does not exist; {how}")
    return path


def file_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read_problems(benchmark: str, path: Path) -> list[dict[str, Any]]:
    """The file's problems in file order, MBPP+ inputs fixed up; DataError naming the line of a bad one."""
    problems: list[dict[str, Any]] = []
    for number, problem in read_jsonl(path):
        missing = [key for key in REQUIRED if key not in problem]
        if missing:
            raise DataError(f"{path}:{number}: not an EvalPlus problem, missing {missing}")
        if BENCHMARKS[benchmark]["dataset"] == "mbpp":
            problem["base_input"] = mbpp_inputs(problem["task_id"], problem["base_input"])
            problem["plus_input"] = mbpp_inputs(problem["task_id"], problem["plus_input"])
        problems.append(problem)
    if not problems:
        raise DataError(f"{path}: no problems in the file")
    return problems


def cache_dir() -> Path:
    from iterpref.bundled import cache_root

    return cache_root() / "evalplus"


def _limit_worker() -> None:
    gib = 4 * 1024**3  # EvalPlus's own memory cap for the code it runs
    resource.setrlimit(resource.RLIMIT_AS, (gib, gib))
    os.setsid()


def expected_outputs(benchmark: str, problems: list[dict[str, Any]], path: Path,
                     cache: Optional[Path] = None) -> dict[str, dict[str, Any]]:
    """Per task: each input group's expected literals, float flags and canonical seconds (see the worker).

    Computed once per data file (by its SHA-256) and kept under ``cache`` (default ``~/.cache/iterpref/evalplus``).
    """
    dataset = BENCHMARKS[benchmark]["dataset"]
    where = (cache or cache_dir()) / f"{dataset}-{file_hash(path)[:32]}-v{GROUNDTRUTH_VERSION}.json"
    if where.is_file():
        try:
            return json.loads(where.read_text())["problems"]
        except (ValueError, KeyError):
            pass  # a damaged cache is recomputed
    payload = [{"task_id": p["task_id"], "code": p["prompt"] + p["canonical_solution"],
                "entry_point": p["entry_point"], "inputs": {"base": p["base_input"], "plus": p["plus_input"]},
                "not_none": dataset == "mbpp" and p["entry_point"] in MBPP_NOT_NONE} for p in problems]
    try:
        blob = marshal.dumps(payload)
    except ValueError as exc:
        raise DataError(f"{path}: inputs that are not plain data ({exc})") from None
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(Path(__file__).resolve().parents[2]),
                                                                    os.environ.get("PYTHONPATH")]))}
    done = subprocess.run([sys.executable, "-m", "iterpref.tasks.groundtruth_worker"], input=blob,
                          capture_output=True, preexec_fn=_limit_worker, env=env,
                          timeout=max(600, 130 * len(problems)))
    if done.returncode != 0:
        raise DataError(f"{path}: computing expected outputs failed (exit {done.returncode}): "
                        f"{done.stderr.decode(errors='replace')[-2000:]}")
    results = json.loads(done.stdout)
    where.parent.mkdir(parents=True, exist_ok=True)
    partial = where.with_suffix(".tmp")
    partial.write_text(json.dumps({"format_version": 1, "source_sha256": file_hash(path), "problems": results}))
    partial.replace(where)
    return results


# --- tasks ------------------------------------------------------------------------------------------------------
def _cases_test(test_id: str, problem: dict[str, Any], inputs: list, outputs: dict[str, Any], dataset: str,
                min_time_s: float, time_factor: float) -> tuple[dict[str, Any], float]:
    entry, atol = problem["entry_point"], float(problem["atol"] or 0)
    compare = "equal"
    if dataset == "humaneval" and entry == "find_zero":
        compare = "polynomial_root"
    elif dataset == "mbpp" and entry in MBPP_SET_COMPARED:
        compare = "set"
    elif dataset == "mbpp" and entry in MBPP_NOT_NONE:
        compare = "not_none"
    elif dataset == "mbpp" and entry in MBPP_ANY_OUTPUT:
        compare = "returns"
    also = MBPP_ALSO_ACCEPTED.get(entry) if dataset == "mbpp" else None
    cases, running, total = [], atol, 0.0
    for args, expected, is_float, seconds in zip(inputs, outputs["expected"], outputs["floats"], outputs["seconds"]):
        if compare != "polynomial_root" and running == 0 and is_float:
            running = FLOAT_TOLERANCE  # EvalPlus raises atol once and keeps it for later inputs
        limit = max(min_time_s, time_factor * seconds)
        total += limit
        case: dict[str, Any] = {"args": repr(tuple(args)), "expected": expected, "time_s": min(limit, TEST_TIME_CAP_S)}
        if running:
            case["tolerance"] = running
        if also is not None:
            try:
                case["alternatives"] = [repr(also(*args))]
            except Exception:  # noqa: BLE001 - an input the extra oracle cannot take has no second answer
                pass
        cases.append(case)
    test = {"kind": "cases", "id": test_id, "entry_point": entry, "cases": cases, "compare": compare,
            "rel_tolerance": RELATIVE_TOLERANCE}
    return test, min(TEST_TIME_CAP_S, total) + 1


def evalplus_tasks(benchmark: str, source: Optional[str | Path] = None, *, base_only: bool = False,
                   min_time_s: float = MIN_TIME_S, time_factor: float = TIME_FACTOR, memory_mb: int = 4096,
                   cache: Optional[Path] = None, limit: Optional[int] = None) -> list[Task]:
    """HumanEval+ (``benchmark="humaneval+"``) or MBPP+ (``"mbpp+"``) as tasks with ``base`` and ``plus`` tests."""
    if benchmark not in BENCHMARKS:
        raise DataError(f"unknown EvalPlus benchmark {benchmark!r}; one of {sorted(BENCHMARKS)}")
    path = source_path(benchmark, source)
    problems = read_problems(benchmark, path)[:limit]
    outputs = expected_outputs(benchmark, problems, path, cache)
    dataset = BENCHMARKS[benchmark]["dataset"]
    tasks = []
    for problem in problems:
        answer = outputs.get(problem["task_id"], {"error": "no expected outputs were computed"})
        if "error" in answer:
            warnings.warn(f"{path}: {problem['task_id']} left out: {answer['error']}", stacklevel=2)
            continue
        tests, budget = [], 0.0
        for group in ("base",) if base_only else ("base", "plus"):
            if problem[f"{group}_input"]:
                test, seconds = _cases_test(group, problem, problem[f"{group}_input"], answer[group], dataset,
                                            min_time_s, time_factor)
                tests.append(test)
                budget = max(budget, seconds)
        tasks.append(Task(task_id=problem["task_id"], prompt=problem["prompt"], tests=tests,
                          entry_point=problem["entry_point"],
                          reference=problem["prompt"] + problem["canonical_solution"],
                          limits={"time_s": min(budget, TEST_TIME_CAP_S), "memory_mb": memory_mb,
                                  "output_bytes": 1024 * 1024}))
    return tasks
