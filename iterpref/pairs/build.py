"""Preference pairs from trajectories: the final passing version against one earlier failing version.

The chosen side is a task's first passing attempt (earliest round, then lowest sample index). The rejected side
is one of that attempt's failing ancestors -- the attempt it repaired, the one that one repaired, back to round
0 -- chosen ``random`` (seeded per task, the paper's best), ``last`` or ``first``. With repair sampling, other
candidates of a round (siblings that are not ancestors) are never used. One pair per task by default;
``pairs_per_task`` k takes up to k distinct ancestors. The paper's filters then drop a candidate pair, counted
under the first that applies:

``same_ast``        chosen and rejected have equal syntax trees (the "fix" changed only formatting/comments)
``comment_only``    the rejected side's error region (changed lines, or the lines around a pure insertion) is
                    only comments and blank lines -- nothing there for the focal loss to push down
``too_many_lines``  the error region has more than ``max_lines`` lines (20)
``too_long``        prompt plus chosen, or prompt plus rejected, is over ``max_tokens`` tokens (2048)
"""

from __future__ import annotations

import ast
import random
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Optional

from iterpref.errors import ConfigError, DataError, ModelError
from iterpref.pairs.diff import line_diff, split_lines
from iterpref.records import Attempt, Pair, to_json_line, write_json

SELECTIONS = ("random", "last", "first")
FILTERS = ("same_ast", "comment_only", "too_many_lines", "too_long")


@dataclass
class PairSummary:
    tasks: int = 0
    passed_first_try: int = 0  # passing at round 0: no failing version to pair with
    never_passed: int = 0
    candidates: int = 0
    pairs: int = 0
    dropped: dict[str, int] = field(default_factory=lambda: {name: 0 for name in FILTERS})
    rejected_lines: dict[int, int] = field(default_factory=dict)  # error-region size -> kept pairs
    chosen_lines: dict[int, int] = field(default_factory=dict)
    settings: dict[str, object] = field(default_factory=dict)
    tasks_with_pairs: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


def _same_ast(a: str, b: str) -> bool:
    try:
        return ast.dump(ast.parse(a)) == ast.dump(ast.parse(b))
    except (SyntaxError, ValueError):
        return False


def _is_comment_or_blank(line: str) -> bool:
    stripped = line.strip()
    return not stripped or stripped.startswith("#")


def select_rejected(failing: list[Attempt], how: str, rng: random.Random) -> Attempt:
    if how == "random":
        return rng.choice(failing)
    if how == "last":
        return failing[-1]
    if how == "first":
        return failing[0]
    raise ConfigError(f"--select must be one of {', '.join(SELECTIONS)}, not {how!r}")


def select_many(failing: list[Attempt], how: str, rng: random.Random, k: int) -> list[Attempt]:
    """Up to ``k`` distinct attempts of ``failing`` (round order): a seeded sample, the last k or the first k.
    ``k == 1`` is exactly :func:`select_rejected`."""
    if k == 1:
        return [select_rejected(failing, how, rng)]
    if how == "random":
        return rng.sample(failing, min(k, len(failing)))
    if how in ("last", "first"):
        return failing[::-1][:k] if how == "last" else failing[:k]
    raise ConfigError(f"--select must be one of {', '.join(SELECTIONS)}, not {how!r}")


def passing_lineage(attempts: list[Attempt]) -> tuple[Optional[Attempt], list[Attempt]]:
    """A task's first passing attempt and its failing ancestors in round order (round 0 first); ``(None, [])``
    when nothing passed. An attempt without a ``parent`` (files written before repair sampling) repairs the
    previous round's sample 0."""
    by_key = {(a.round, a.sample): a for a in attempts}
    passing = sorted((a for a in attempts if a.passed), key=lambda a: (a.round, a.sample))
    if not passing:
        return None, []
    ancestors: list[Attempt] = []
    node = passing[0]
    while node.round > 0:
        parent = by_key.get((node.round - 1, node.parent if node.parent is not None else 0))
        if parent is None:
            raise DataError(f"task {node.task_id!r}: round {node.round} sample {node.sample} repairs a missing "
                            f"attempt (round {node.round - 1} sample {node.parent})")
        ancestors.append(parent)
        node = parent
    return passing[0], [a for a in reversed(ancestors) if not a.passed]


def trace_lines(attempt: Attempt) -> Optional[list[int]]:
    """Lines of the attempt's code where its failing tests stopped (the executor's ``TestResult.line``); None
    when the attempt holds no per-test results to read them from."""
    if "tests" not in attempt.result:
        return None
    n = len(split_lines(attempt.code))
    lines = {t.get("line") for t in attempt.result.get("tests", []) if t.get("verdict") not in ("pass", "skipped")}
    return sorted(k for k in lines if isinstance(k, int) and 1 <= k <= n)


def build_pairs(
    trajectories: dict[str, list[Attempt]],
    prompts: dict[str, str],
    *,
    select: str = "random",
    seed: int = 0,
    max_lines: int = 20,
    max_tokens: int = 2048,
    count_tokens: Optional[Callable[[str], int]] = None,
    pairs_per_task: int = 1,
) -> tuple[list[Pair], PairSummary]:
    """Pairs and the counts behind them. ``prompts`` maps task_id to the pair's prompt text; ``count_tokens``
    (None to skip the length filter) counts a text's tokens; ``pairs_per_task`` caps the pairs of one task."""
    if select not in SELECTIONS:
        raise ConfigError(f"--select must be one of {', '.join(SELECTIONS)}, not {select!r}")
    if pairs_per_task < 1:
        raise ConfigError("--pairs-per-task must be at least 1")
    summary = PairSummary(settings={"select": select, "seed": seed, "max_lines": max_lines,
                                    "max_tokens": max_tokens if count_tokens else None,
                                    "pairs_per_task": pairs_per_task})
    drops: Counter[str] = Counter()
    pairs: list[Pair] = []
    for task_id in sorted(trajectories):
        summary.tasks += 1
        final, failing = passing_lineage(trajectories[task_id])
        if final is None:
            summary.never_passed += 1
            continue
        if not failing:
            summary.passed_first_try += 1
            continue
        # A per-task generator: the choice for one task does not depend on which other tasks are in the file.
        chosen_ones = select_many(failing, select, random.Random(f"{seed}:{task_id}"), pairs_per_task)
        before = len(pairs)
        for rejected in chosen_ones:
            summary.candidates += 1
            _add_pair(pairs, drops, summary, task_id, prompts[task_id], final, rejected, max_lines, max_tokens,
                      count_tokens)
        summary.tasks_with_pairs += len(pairs) > before
    summary.dropped.update(drops)
    summary.pairs = len(pairs)
    return pairs, summary


def _add_pair(pairs: list[Pair], drops: Counter, summary: PairSummary, task_id: str, prompt: str, final: Attempt,
              rejected: Attempt, max_lines: int, max_tokens: int, count_tokens: Optional[Callable[[str], int]]) -> None:
    """Append the pair of ``final`` and ``rejected`` unless a filter drops it (counted in ``drops``)."""
    diff = line_diff(rejected.code, final.code)
    region = diff.error_lines
    rejected_text = split_lines(rejected.code)
    if _same_ast(rejected.code, final.code):
        drops["same_ast"] += 1
    elif all(_is_comment_or_blank(rejected_text[i - 1]) for i in region):
        drops["comment_only"] += 1
    elif len(region) > max_lines:
        drops["too_many_lines"] += 1
    elif count_tokens and max(count_tokens(prompt + final.code), count_tokens(prompt + rejected.code)) > max_tokens:
        drops["too_long"] += 1
    else:
        pairs.append(Pair(task_id=task_id, prompt=prompt, chosen=final.code, rejected=rejected.code,
                          rejected_lines=diff.rejected_lines, chosen_lines=diff.chosen_lines,
                          chosen_round=final.round, rejected_round=rejected.round,
                          rejected_trace_lines=trace_lines(rejected)))
        for histogram, lines in ((summary.rejected_lines, diff.rejected_lines),
                                 (summary.chosen_lines, diff.chosen_lines)):
            histogram[len(lines)] = histogram.get(len(lines), 0) + 1


def tokenizer_counter(path: Optional[str] = None) -> Callable[[str], int]:
    """Token counts from a Hugging Face tokenizer folder; the default is the bundled SmolLM2's."""
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        from transformers import AutoTokenizer
    except ImportError:
        raise ModelError("counting tokens (the too_long filter, --max-tokens) needs transformers: "
                         "pip install 'iterpref[train]', or pass --max-tokens 0 to skip that filter") from None

    if path is None:
        from iterpref.bundled import smollm2_dir

        path = str(smollm2_dir())
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot load a tokenizer from {path}: {exc}") from None
    return lambda text: len(tokenizer(text, add_special_tokens=False)["input_ids"])


def round0_prompts(trajectories: dict[str, list[Attempt]]) -> dict[str, str]:
    """Each task's prompt for its pairs: the first user turn of its round-0 attempt."""
    prompts = {}
    for task_id, attempts in trajectories.items():
        users = [m["content"] for m in attempts[0].messages if m.get("role") == "user"]
        if not users:
            raise DataError(f"task {task_id!r} round 0 has no user message to use as prompt")
        prompts[task_id] = users[0]
    return prompts


def write_pairs(trajectories: dict[str, list[Attempt]], pairs_path: str | Path, summary_path: str | Path,
                **build_options) -> tuple[list[Pair], PairSummary]:
    """Build pairs (see :func:`build_pairs` for the options) and write the pairs JSONL and the summary JSON."""
    pairs, summary = build_pairs(trajectories, round0_prompts(trajectories), **build_options)
    with open(pairs_path, "w", encoding="utf-8") as handle:
        handle.writelines(to_json_line(pair) for pair in pairs)
    write_json(summary_path, summary.to_dict())
    return pairs, summary
