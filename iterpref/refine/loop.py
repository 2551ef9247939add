"""The debugging loop: sample, execute, feed the failures back, repeat until the tests pass or rounds run out.

Round 0 is the first attempt; rounds 1..max_rounds are repairs (the paper allows at most 5). Tasks are worked
on in waves; within a wave, each round samples every active task in one ``generate`` call and executes all the
programs in one ``run_batch`` call, so the sampler and the executor both see full batches.

Repair sampling (``samples`` > 1, ``--repair-samples``): every round, round 0 included, draws ``samples``
candidates per task from the same prompt (sampling must not be greedy, or they are copies); ``first_samples``
(``--first-samples``) sets round 0's count apart. One candidate at round 0 keeps more pairs: a task that passes
at round 0 has no failing ancestor to pair with, and several first candidates make such a pass likelier.
Every candidate is executed and written, with its round, its sample index and its parent (the sample index, in the previous round,
of the attempt it repairs). A task stops at the round where any candidate first passes. Otherwise the next round
repairs one failing candidate of this round: the one that passed the most tests, ties going to the lowest sample
index (:func:`continuation`). With ``samples == 1`` this is the single-sample loop, attempt for attempt.

Every attempt is appended to the trajectory file as soon as its round's batch finishes (flushed and fsynced
before the progress bar counts it). Rerunning on the same file resumes: finished tasks are skipped, a task
whose last round failed with rounds left continues from that round's :func:`continuation`, and a line torn by a
kill is dropped (a round a kill cut short resumes with the candidates it wrote).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from tqdm import tqdm

from iterpref.errors import ConfigError, DataError, ExecutorUnavailable, SamplerError
from iterpref.executor import Executor, judge_batch
from iterpref.records import Attempt, Task, from_dict, read_jsonl, to_json_line
from iterpref.refine.extract import extract_code
from iterpref.refine.feedback import check_repair_style, initial_prompt, repair_prompt
from iterpref.samplers.base import Prompt, Sampler
from iterpref.tasks import to_request
from sandbox.models import MAX_TESTS, RunResult, RunStatus


@dataclass
class RefineSummary:
    tasks: int = 0
    already_done: int = 0  # finished before this run (resume)
    passed: int = 0  # tasks whose trajectory ends passing (including already done)
    failed: int = 0  # tasks that used every round without passing
    unfinished: int = 0  # tasks skipped this run because the executor could not judge them
    attempts_written: int = 0
    pass_round: dict[str, int] = field(default_factory=dict)  # task_id -> round of its passing attempt


def _repair_torn_tail(path: Path) -> None:
    """Cut a last line that a kill left without its newline: it was never reported, so dropping it loses nothing."""
    with open(path, "rb+") as handle:
        data = handle.read()
        if data and not data.endswith(b"\n"):
            handle.truncate(data.rfind(b"\n") + 1)


def load_trajectories(path: str | Path, *, repair: bool = False) -> dict[str, list[Attempt]]:
    """Attempts per task, in file order: rounds run 0, 1, 2, ... without gaps, each round's candidates
    (``sample``) once each. Files written before repair sampling (no ``sample``/``parent``) read as one
    candidate per round, each repairing the one before.

    A last line without its newline is ignored (``repair=True`` also cuts it from the file)."""
    path = Path(path)
    if not path.exists():
        return {}
    if repair:
        _repair_torn_tail(path)
    by_task: dict[str, list[Attempt]] = {}
    for number, raw in read_jsonl(path, complete_lines_only=True):
        attempt = from_dict(Attempt, raw, f"{path}:{number}")
        attempts = by_task.setdefault(attempt.task_id, [])
        current = attempts[-1].round if attempts else -1
        seen = {a.sample for a in attempts if a.round == attempt.round}
        if attempt.round not in (current, current + 1) or attempt.sample in seen:
            raise DataError(
                f"{path}:{number}: task {attempt.task_id!r} round {attempt.round} sample {attempt.sample} follows "
                f"round {current}; rounds must run 0, 1, 2, ... and each candidate of a round appear once"
            )
        attempts.append(attempt)
    return by_task


def last_round(attempts: list[Attempt]) -> list[Attempt]:
    """The candidates of a task's latest round."""
    return [a for a in attempts if a.round == attempts[-1].round] if attempts else []


def continuation(candidates: list[Attempt]) -> Attempt:
    """Which failing candidate of a round the next round repairs: the one that passed the most tests (the
    closest to working), ties to the lowest sample index, so a resumed run picks the same one."""
    def passed_tests(attempt: Attempt) -> int:
        return sum(t.get("verdict") == "pass" for t in attempt.result.get("tests", []))

    return min(candidates, key=lambda a: (-passed_tests(a), a.sample))


class _AttemptWriter:
    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.handle = open(path, "a", encoding="utf-8")

    def write(self, attempts: list[Attempt]) -> None:
        for attempt in attempts:
            self.handle.write(to_json_line(attempt))
        self.handle.flush()
        os.fsync(self.handle.fileno())

    def close(self) -> None:
        self.handle.close()


@dataclass
class _State:
    task: Task
    last: Optional[Attempt] = None

    def next_prompt(self, style: str) -> Prompt:
        if self.last is None:
            return initial_prompt(self.task)
        result = RunResult.model_validate(self.last.result)
        return repair_prompt(self.task, self.last.code, result, self.last.round + 1, style)

    @property
    def parent(self) -> Optional[int]:
        return self.last.sample if self.last is not None else None


def _repair_style_of(attempt: Attempt) -> str:
    """The style a repair attempt was asked for in: a brief prompt is two messages (system, user), a full one
    four (the first request, the failing code as the reply, the feedback)."""
    return "brief" if len(attempt.messages) == 2 else "full"


def _check_repair_style(path: Path, done_before: dict[str, list[Attempt]], style: str) -> None:
    """A resumed file keeps the repair prompt it was started with, so its trajectories never mix the two."""
    for attempts in done_before.values():
        first_repair = next((a for a in attempts if a.round > 0), None)
        found = _repair_style_of(first_repair) if first_repair else style
        if found != style:
            raise ConfigError(f"{path} holds repairs asked for with the {found} repair prompt; resume it with "
                              f"--repair-prompt {found}, or write to another file")


def check_sample_counts(samples: int, first_samples: Optional[int] = None, *, greedy: bool = False) -> None:
    """The front ends' check of ``--repair-samples`` and ``--first-samples``, before any model is loaded: at least
    one candidate each, and more than one only when sampling (``greedy``: temperature 0 with a real sampler)."""
    if samples < 1 or (first_samples is not None and first_samples < 1):
        raise ConfigError("--repair-samples and --first-samples must be at least 1")
    if greedy and max(samples, first_samples or 1) > 1:
        raise ConfigError("--repair-samples or --first-samples above 1 needs --temperature above 0: greedy decoding "
                          "would draw the same candidate every time; pass e.g. --temperature 0.8")


def _execute(executor: Executor, requests: list) -> list[Optional[RunResult]]:
    """Results of a batch (see judge_batch); an infra error comes back as None, for a later run."""
    results: list[RunResult] = []
    for start in range(0, len(requests), MAX_TESTS):  # one batch holds at most MAX_TESTS programs
        results += judge_batch(executor, requests[start : start + MAX_TESTS])
    if results and all(r.status != RunStatus.COMPLETED for r in results):
        raise ExecutorUnavailable(f"the executor could not judge any program of a batch: "
                                  f"{results[-1].infra_message or 'infra error'}")
    return [r if r.status == RunStatus.COMPLETED else None for r in results]


def refine(
    tasks: list[Task],
    sampler: Sampler,
    executor: Executor,
    out_path: str | Path,
    max_rounds: int = 5,
    *,
    wave_size: int = 256,
    samples: int = 1,
    first_samples: Optional[int] = None,
    repair_style: str = "full",
    progress: bool = True,
) -> RefineSummary:
    """Run the loop over ``tasks``, appending attempts to ``out_path``; resumes from what the file holds.
    ``samples`` candidates are drawn per task and round, ``first_samples`` (default ``samples``) in round 0 (see
    the module's docstring); ``repair_style`` is the repair prompt's style (``full`` or ``brief``,
    :mod:`iterpref.refine.feedback`)."""
    if max_rounds < 0:
        raise ConfigError("max_rounds must be 0 or more")
    first_samples = samples if first_samples is None else first_samples
    if samples < 1 or first_samples < 1:
        raise ConfigError("samples (--repair-samples) and first_samples (--first-samples) must be at least 1")
    check_repair_style(repair_style)
    if not 1 <= wave_size <= MAX_TESTS:
        raise ConfigError(f"wave_size must be between 1 and {MAX_TESTS} (the most programs one batch may hold)")
    ids = [task.task_id for task in tasks]
    if len(set(ids)) != len(ids):
        raise DataError("task ids repeat; each task must appear once")
    out_path = Path(out_path)
    done_before = load_trajectories(out_path, repair=True)
    _check_repair_style(out_path, done_before, repair_style)
    summary = RefineSummary(tasks=len(tasks))
    active: list[_State] = []
    for task in tasks:
        attempts = done_before.get(task.task_id, [])
        latest = last_round(attempts)
        passing = [a for a in latest if a.passed]
        if passing:
            summary.passed += 1
            summary.pass_round[task.task_id] = passing[0].round
        elif latest and latest[0].round >= max_rounds:
            summary.failed += 1
        else:
            active.append(_State(task, continuation(latest) if latest else None))
    summary.already_done = summary.passed + summary.failed

    writer = _AttemptWriter(out_path)
    bar = tqdm(total=len(tasks), initial=summary.already_done, desc="refine", unit="task", disable=not progress)
    try:
        for start in range(0, len(active), wave_size):
            wave = active[start : start + wave_size]
            while wave:
                # Copies of each task's prompt, one per candidate, side by side: one sampler call, one executor
                # batch. A resumed wave may hold tasks of different rounds, so the count is per task.
                own = [state.next_prompt(repair_style) for state in wave]
                counts = [first_samples if prompt.round == 0 else samples for prompt in own]
                prompts = [prompt for prompt, count in zip(own, counts) for _ in range(count)]
                owners = [state for state, count in zip(wave, counts) for _ in range(count)]
                replies = sampler.generate(prompts)
                if len(replies) != len(prompts):
                    raise SamplerError(f"sampler {sampler.name} gave {len(replies)} replies for {len(prompts)} prompts")
                codes = [extract_code(reply, state.task.entry_point, state.task.prompt)
                         for reply, state in zip(replies, owners)]
                requests = [to_request(state.task, code) for state, code in zip(owners, codes)]
                results = _execute(executor, requests)

                written, still_active, settled, offset = [], [], 0, 0
                for state, prompt, count in zip(wave, own, counts):
                    candidates = []
                    for sample in range(count):
                        i = offset + sample
                        if results[i] is None:
                            continue  # an infra error: no attempt written for this candidate
                        result = results[i]
                        candidates.append(Attempt(
                            task_id=state.task.task_id, round=prompt.round, code=codes[i], passed=result.passed,
                            result=result.model_dump(mode="json"), response=replies[i], messages=prompt.messages,
                            sampler=sampler.name, sample=sample, parent=state.parent,
                        ))
                    offset += count
                    written += candidates
                    if not candidates:
                        summary.unfinished += 1  # nothing judged: a later run tries this round again
                        settled += 1
                        continue
                    if any(a.passed for a in candidates):
                        summary.passed += 1
                        summary.pass_round[state.task.task_id] = prompt.round
                    elif prompt.round >= max_rounds:
                        summary.failed += 1
                    else:
                        state.last = continuation(candidates)
                        still_active.append(state)
                        continue
                    settled += 1
                writer.write(written)
                summary.attempts_written += len(written)
                bar.update(settled)
                bar.set_postfix(passed=summary.passed, failed=summary.failed, round=max(p.round for p in own),
                                refresh=False)
                wave = still_active
    finally:
        bar.close()
        writer.close()
    return summary
