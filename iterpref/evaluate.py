"""Evaluation: sample ``n`` programs per task, judge them with the executor, report pass@k and error types.

pass@k is the unbiased estimator of Chen et al. 2021 (the Codex paper): with ``n`` samples of which ``c``
pass, ``pass@k = 1 - C(n - c, k) / C(n, k)``, averaged over tasks. It is computed as a running product so that
large ``n`` neither overflows nor loses precision.

Every failing sample gets one error type, taken from its first failing test: the exception class name
(``NameError``, ``KeyError``, ...), ``AssertionError`` for a wrong answer, ``SyntaxError`` when the program
does not parse (``IndentationError`` and ``TabError`` included), ``Timeout``, ``MemoryError``, ``OutputLimit``,
``Crash``, or ``InfraError`` when the executor could not judge it. The IterPref paper tracks four of them
(``PAPER_ERROR_TYPES``); all are counted.

Outputs (``output_dir``): ``results.jsonl``, one line per task::

    {"format_version": 1, "task_id": "HumanEval/0", "n": 5, "correct": 2, "pass_at_k": {"1": 0.4},
     "samples": [{"passed": false, "error_type": "NameError", "message": "...", "line": 3, "code": "..."}]}

and ``summary.json`` (:class:`EvalSummary`, with ``format_version`` at the top; see ``iterpref.records``).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Optional, Sequence

from tqdm import tqdm

from iterpref.errors import ConfigError, SamplerError
from iterpref.executor import Executor, judge_batch
from iterpref.records import Task, read_json, to_json_line, write_json
from iterpref.refine.extract import extract_code
from iterpref.refine.feedback import initial_prompt
from iterpref.samplers.base import Prompt, Sampler
from iterpref.tasks import to_request
from sandbox.models import RunResult, RunStatus, Verdict

PAPER_ERROR_TYPES = ("AttributeError", "KeyError", "NameError", "FileNotFoundError")
SYNTAX_ERRORS = {"SyntaxError", "IndentationError", "TabError"}
DEFAULT_KS = (1, 10, 100)
MESSAGE_CHARS = 300


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k for one task: ``1 - C(n-c, k) / C(n, k)``, as ``1 - prod(1 - k/i for i in n-c+1..n)``."""
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass@k needs 0 <= c <= n and 1 <= k <= n, got n={n}, c={c}, k={k}")
    if n - c < k:
        return 1.0  # every k-subset contains a correct sample
    product = 1.0
    for i in range(n - c + 1, n + 1):
        product *= 1.0 - k / i
    return 1.0 - product


def error_type(result: RunResult) -> Optional[str]:
    """The error type of a judged program (see the module docstring); None when it passed."""
    if result.status != RunStatus.COMPLETED:
        return "InfraError"
    if result.passed:
        return None
    failure = result.first_failure()
    if failure is None:
        return "NoTests"  # nothing ran: counted as a failure, never as a pass
    if failure.error_type in SYNTAX_ERRORS:
        return "SyntaxError"
    special = {Verdict.TIMEOUT: "Timeout", Verdict.MEMORY: "MemoryError", Verdict.OUTPUT_LIMIT: "OutputLimit",
               Verdict.CRASH: "Crash"}
    if failure.verdict in special:
        return special[failure.verdict]
    if failure.verdict == Verdict.FAIL:
        return failure.error_type or "AssertionError"
    return failure.error_type or "Error"


@dataclass
class SampleResult:
    passed: bool
    error_type: Optional[str]
    message: Optional[str]
    line: Optional[int]
    code: str
    base_passed: Optional[bool] = None  # tasks with a `base` test (EvalPlus): that test alone passed


@dataclass
class TaskResult:
    task_id: str
    n: int
    correct: int
    pass_at_k: dict[str, float]
    samples: list[SampleResult]
    base_pass_at_k: Optional[dict[str, float]] = None


@dataclass
class EvalSummary:
    tasks: int
    samples_per_task: int
    pass_at_k: dict[str, float]  # "1" -> mean pass@1 over tasks
    solved: int  # tasks with at least one passing sample
    error_types: dict[str, int]  # error type -> failing samples, most frequent first
    infra_errors: int = 0  # samples the executor could not judge (counted as failures)
    settings: dict[str, object] = field(default_factory=dict)
    # EvalPlus benchmarks: pass@k on the original benchmark's inputs alone (the HE and MBPP columns)
    base_pass_at_k: Optional[dict[str, float]] = None
    provenance: dict[str, object] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def load(cls, path: str | Path) -> "EvalSummary":
        return cls(**read_json(path))


def _sample_result(code: str, result: RunResult) -> SampleResult:
    failure = result.first_failure() if result.status == RunStatus.COMPLETED else None
    message = result.infra_message if result.status != RunStatus.COMPLETED else (failure.message if failure else None)
    if message and len(message) > MESSAGE_CHARS:
        message = message[:MESSAGE_CHARS] + "..."
    base = next((t for t in result.tests if t.id == "base"), None)
    return SampleResult(passed=result.status == RunStatus.COMPLETED and result.passed, error_type=error_type(result),
                        message=message, line=failure.line if failure else None, code=code,
                        base_passed=None if base is None else base.verdict == Verdict.PASS)


def summarize(results: Sequence[TaskResult], ks: Sequence[int], settings: Optional[dict] = None) -> EvalSummary:
    if not results:
        raise ValueError("no task results to summarize")
    n = results[0].n
    types = Counter(s.error_type for r in results for s in r.samples if s.error_type is not None)
    return EvalSummary(
        tasks=len(results),
        samples_per_task=n,
        pass_at_k={str(k): sum(r.pass_at_k[str(k)] for r in results) / len(results) for k in ks},
        solved=sum(1 for r in results if r.correct > 0),
        error_types=dict(types.most_common()),
        infra_errors=types.get("InfraError", 0),
        settings=dict(settings or {}),
        base_pass_at_k=({str(k): sum(r.base_pass_at_k[str(k)] for r in results) / len(results) for k in ks}
                        if all(r.base_pass_at_k is not None for r in results) else None),
    )


def evaluate(
    tasks: Sequence[Task],
    sampler: Sampler,
    executor: Executor,
    *,
    samples: int = 1,
    ks: Optional[Sequence[int]] = None,
    output_dir: Optional[str | Path] = None,
    wave_tasks: int = 32,
    settings: Optional[dict] = None,
    progress: bool = True,
    prompt_for: Optional[Callable[[Task], Prompt]] = None,
    program: Optional[Callable[[str, str], str]] = None,
    provenance: Optional[dict] = None,
) -> tuple[EvalSummary, list[TaskResult]]:
    """Sample ``samples`` replies per task (round-0 prompt, the same as ``refine``'s), judge them, summarize.

    ``ks`` defaults to those of 1, 10, 100 that are at most ``samples``. With ``output_dir``, per-task lines
    are appended to ``results.jsonl`` as each wave finishes and ``summary.json`` is written at the end.
    ``prompt_for`` builds a task's prompt (default: refine's first prompt; a benchmark's harness prompt, see
    ``iterpref.tasks.prompts``); ``program`` wraps extracted code as the benchmark's harness does.
    """
    if not tasks:
        raise ConfigError("no tasks to evaluate")
    if samples < 1 or wave_tasks < 1:
        raise ConfigError("samples and wave_tasks must be at least 1")
    ks = sorted(set(ks)) if ks else [k for k in DEFAULT_KS if k <= samples]
    if not ks or ks[0] < 1 or ks[-1] > samples:
        raise ConfigError(f"every k must be between 1 and the number of samples ({samples}); got {list(ks)}")
    out = Path(output_dir) if output_dir is not None else None
    handle = None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        handle = open(out / "results.jsonl", "w", encoding="utf-8")

    results: list[TaskResult] = []
    bar = tqdm(total=len(tasks) * samples, desc="eval", unit="sample", disable=not progress)
    try:
        for start in range(0, len(tasks), wave_tasks):
            wave = tasks[start : start + wave_tasks]
            prompts = [(prompt_for or initial_prompt)(t) for t in wave for _ in range(samples)]
            replies = sampler.generate(prompts)
            if len(replies) != len(prompts):
                raise SamplerError(f"sampler {sampler.name} gave {len(replies)} replies for {len(prompts)} prompts")
            owners = [t for t in wave for _ in range(samples)]
            codes = [extract_code(reply, task.entry_point, task.prompt) for reply, task in zip(replies, owners)]
            programs = [program(t.task_id, c) if program else c for t, c in zip(owners, codes)]
            judged = judge_batch(executor, [to_request(t, c) for t, c in zip(owners, programs)])
            for index, task in enumerate(wave):
                chunk = slice(index * samples, (index + 1) * samples)
                sample_results = [_sample_result(c, r) for c, r in zip(codes[chunk], judged[chunk])]
                correct = sum(s.passed for s in sample_results)
                task_result = TaskResult(task.task_id, samples, correct,
                                         {str(k): pass_at_k(samples, correct, k) for k in ks}, sample_results)
                if all(s.base_passed is not None for s in sample_results):
                    base_correct = sum(bool(s.base_passed) for s in sample_results)
                    task_result.base_pass_at_k = {str(k): pass_at_k(samples, base_correct, k) for k in ks}
                results.append(task_result)
                if handle is not None:
                    handle.write(to_json_line(task_result))
            if handle is not None:
                handle.flush()
            bar.update(len(prompts))
            passed_so_far = sum(r.correct for r in results)
            bar.set_postfix(passed=f"{passed_so_far}/{len(results) * samples}", refresh=False)
    finally:
        bar.close()
        if handle is not None:
            handle.close()
    summary = summarize(results, ks, {"sampler": sampler.name, **(settings or {})})
    summary.provenance = dict(provenance or {})
    if out is not None:
        write_json(out / "summary.json", summary.to_dict())
    return summary, results


def format_summary(summary: EvalSummary) -> str:
    """A short plain-text report: pass@k, then every error type with the paper's four always listed."""
    lines = [f"{summary.tasks} tasks x {summary.samples_per_task} samples; {summary.solved} tasks solved at least once"]
    lines += [f"pass@{k}: {100 * v:.2f}%" for k, v in summary.pass_at_k.items()]
    if summary.base_pass_at_k:
        lines += [f"pass@{k} on the base inputs only: {100 * v:.2f}%" for k, v in summary.base_pass_at_k.items()]
    failing = sum(summary.error_types.values())
    lines.append(f"failing samples by error type ({failing}):")
    shown = dict(summary.error_types)
    for name in PAPER_ERROR_TYPES:
        shown.setdefault(name, 0)
    for name, count in sorted(shown.items(), key=lambda item: (-item[1], item[0])):
        marker = " *" if name in PAPER_ERROR_TYPES else ""
        lines.append(f"  {name:<20} {count:>5}{marker}")
    lines.append("  (* the error types the IterPref paper counts)")
    if summary.infra_errors:
        lines.append(f"warning: {summary.infra_errors} samples could not be judged by the executor and count as failures")
    return "\n".join(lines)


# --- grading samples made elsewhere -------------------------------------------------------------------------------


@dataclass
class GradedSample:
    """One sample of a samples file, judged: the verdict of each test (EvalPlus tasks: ``base`` and ``plus``)."""

    task_id: str
    line: int  # 1-based line in the samples file
    passed: bool
    tests: dict[str, str]  # test id -> verdict
    error_type: Optional[str]
    failing_test: Optional[str] = None
    case: Optional[int] = None  # the failing input of a `cases` test
    message: Optional[str] = None
    base_status: Optional[str] = None  # EvalPlus's names: "pass" or "fail" for the base inputs
    plus_status: Optional[str] = None  # and for the extra inputs


def read_samples(path: str | Path) -> list[tuple[int, dict]]:
    """``(line, record)`` of a samples JSONL file as the official tools read it: ``task_id`` with ``solution``
    (a whole program) or ``completion`` (appended to the task's prompt)."""
    from iterpref.errors import DataError
    from iterpref.records import read_jsonl

    samples = []
    for number, raw in read_jsonl(path):
        if not isinstance(raw.get("task_id"), str):
            raise DataError(f"{path}:{number}: a sample needs a string `task_id`")
        if not isinstance(raw.get("solution", raw.get("completion")), str):
            raise DataError(f"{path}:{number}: a sample needs a string `solution` or `completion`")
        samples.append((number, raw))
    if not samples:
        raise DataError(f"{path}: no samples in the file")
    return samples


def grade_samples(tasks: Sequence[Task], samples: Sequence[tuple[int, dict]], executor: Executor,
                  *, program: Optional[Callable[[str, str], str]] = None, fail_fast: bool = False,
                  batch: int = 64, progress: bool = True) -> list[GradedSample]:
    """Judge each sample's program as given (no sanitising, as EvalPlus's evaluate does): ``solution`` as is,
    else the task's prompt followed by ``completion``; ``program`` is the benchmark's own wrapping of the code
    (LiveCodeBench's import preamble), see ``iterpref.tasks.benchmarks.program_builder``. ``fail_fast`` skips a
    program's remaining tests after its first failure (the verdict is the same; EvalPlus's base and plus
    statuses need it off)."""
    from iterpref.errors import DataError

    by_id = {t.task_id: t for t in tasks}
    unknown = sorted({s["task_id"] for _, s in samples if s["task_id"] not in by_id})
    if unknown:
        raise DataError(f"samples name {len(unknown)} task(s) not in the benchmark: {', '.join(unknown[:5])}")
    graded: list[GradedSample] = []
    bar = tqdm(total=len(samples), desc="grade", unit="sample", disable=not progress)
    try:
        for start in range(0, len(samples), batch):
            chunk = samples[start : start + batch]
            codes = [s["solution"] if "solution" in s else by_id[s["task_id"]].prompt + s["completion"] for _, s in chunk]
            if program is not None:
                codes = [program(s["task_id"], code) for (_, s), code in zip(chunk, codes)]
            results = judge_batch(executor, [to_request(by_id[s["task_id"]], c, fail_fast=fail_fast)
                                             for (_, s), c in zip(chunk, codes)])
            graded += [_graded(number, sample, result) for (number, sample), result in zip(chunk, results)]
            bar.update(len(chunk))
    finally:
        bar.close()
    return graded


def _graded(number: int, sample: dict, result: RunResult) -> GradedSample:
    tests = {t.id: t.verdict.value for t in result.tests}
    failure = result.first_failure() if result.status == RunStatus.COMPLETED else None
    statuses = {name: ("pass" if tests.get(name) == "pass" else "fail") if name in tests else None
                for name in ("base", "plus")}
    return GradedSample(
        task_id=sample["task_id"], line=number, passed=result.status == RunStatus.COMPLETED and result.passed,
        tests=tests, error_type=error_type(result), failing_test=failure.id if failure else None,
        case=failure.case if failure else None,
        message=(failure.message if failure else result.infra_message),
        base_status=statuses["base"], plus_status=statuses["plus"])


def summarize_graded(graded: Sequence[GradedSample]) -> dict:
    """pass@1 over tasks (mean of each task's passing share; pass@k for every k up to the smallest sample count),
    and for EvalPlus tasks also the base-inputs-only figure; error types of failing samples."""
    per_task: dict[str, list[GradedSample]] = {}
    for sample in graded:
        per_task.setdefault(sample.task_id, []).append(sample)
    smallest = min(len(v) for v in per_task.values())
    summary: dict = {"tasks": len(per_task), "samples": len(graded), "pass_at_k": {}, "base_pass_at_k": None}
    for k in [k for k in DEFAULT_KS if k <= smallest]:
        summary["pass_at_k"][str(k)] = sum(pass_at_k(len(v), sum(s.passed for s in v), k)
                                           for v in per_task.values()) / len(per_task)
    if all(s.base_status is not None for s in graded):
        summary["base_pass_at_k"] = {
            str(k): sum(pass_at_k(len(v), sum(s.base_status == "pass" for s in v), k)
                        for v in per_task.values()) / len(per_task)
            for k in [k for k in DEFAULT_KS if k <= smallest]}
    summary["error_types"] = dict(Counter(s.error_type for s in graded if s.error_type).most_common())
    return summary


# --- provenance and contamination ----------------------------------------------------------------------------------


def _runner_identity(executor: str) -> dict[str, Optional[str]]:
    """What judged the programs: the runner program's hash for the local process backend; for a service, the
    runner image's id when Docker on this machine has the image the service starts by default."""
    import hashlib
    import os
    import shutil
    import subprocess

    import sandbox.runner as runner_module

    identity: dict[str, Optional[str]] = {"executor": executor, "runner_sha256": hashlib.sha256(
        Path(runner_module.__file__).read_bytes()).hexdigest(), "runner_image": None, "runner_image_digest": None}
    if executor != "local" and shutil.which("docker"):
        image = os.environ.get("SANDBOX_RUNNER_IMAGE", "iterpref/sandbox-runner:latest")
        try:
            found = subprocess.run(["docker", "image", "inspect", "--format", "{{.Id}}", image], capture_output=True,
                                   text=True, timeout=20)
        except (OSError, subprocess.SubprocessError):
            found = None
        if found is not None and found.returncode == 0:
            identity["runner_image"], identity["runner_image_digest"] = image, found.stdout.strip()
    return identity


def provenance(benchmark: str, source: Optional[str] = None, *, executor: str = "local",
               grader: Optional[dict] = None, model: Optional[str] = None,
               sampling: Optional[dict] = None) -> dict:
    """Where an evaluation's figures come from: iterpref's version, what judged the programs, the data file and
    its SHA-256, the grader's settings, the model and its sampling settings."""
    import platform

    from iterpref import __version__
    from iterpref.tasks.benchmarks import data_file, sha256_of

    path = data_file(benchmark, source)
    return {"iterpref_version": __version__, "python": platform.python_version(), "benchmark": benchmark,
            "data_file": str(path) if path else None, "data_sha256": sha256_of(path) if path and path.is_file()
            else None, "grader": dict(grader or {}), "model": model, "sampling": dict(sampling or {}),
            **_runner_identity(executor)}


def prompt_fingerprint(text: str) -> str:
    """A hash of a problem statement that ignores case, whitespace and punctuation, to spot the same problem in
    two task sets."""
    import hashlib
    import re

    return hashlib.sha256(re.sub(r"[\W_]+", "", text.lower()).encode()).hexdigest()[:20]


def overlapping_tasks(training: Sequence[Task], evaluated: Sequence[Task]) -> list[tuple[str, str]]:
    """(training task id, evaluated task id) for problems whose normalised prompts are the same."""
    seen = {prompt_fingerprint(t.prompt): t.task_id for t in training}
    return [(seen[key], t.task_id) for t in evaluated if (key := prompt_fingerprint(t.prompt)) in seen]


def pairs_containing(prompts: Sequence[tuple[str, str]], evaluated: Sequence[Task]) -> list[tuple[str, str]]:
    """(pair task id, evaluated task id) where a training prompt contains an evaluated problem's statement,
    both normalised as in :func:`prompt_fingerprint`. A pair's prompt wraps the problem in instructions, so the
    test is containment, not equality. ``prompts`` holds (task id, prompt text) per pair."""
    import re

    def normal(text: str) -> str:
        return re.sub(r"[\W_]+", "", text.lower())

    statements = [(t.task_id, normal(t.prompt)) for t in evaluated]
    found: dict[str, str] = {}
    for pair_task, prompt in prompts:
        text = normal(prompt)
        for task_id, statement in statements:
            if statement and task_id not in found and statement in text:
                found[task_id] = pair_task
    return [(found[t.task_id], t.task_id) for t in evaluated if t.task_id in found]


def overlap_warning(overlap: Sequence[tuple[str, str]], what: str, link: str) -> Optional[str]:
    """The one wording of a contamination warning: ``what`` says which problems, ``link`` joins the id pairs."""
    if not overlap:
        return None
    shown = ", ".join(f"{a} {link} {b}" for a, b in overlap[:5])
    return f"warning: {len(overlap)} of {what}: {shown}{' ...' if len(overlap) > 5 else ''}; their scores are contaminated"


def contamination_warning(training: Sequence[Task], evaluated: Sequence[Task]) -> Optional[str]:
    return overlap_warning(overlapping_tasks(training, evaluated), f"the {len(evaluated)} evaluated problems also "
                           "appear among the training tasks (same normalised prompt)", "=")
