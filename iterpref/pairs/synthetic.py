"""Synthetic debugging pairs, for when a model repairs too little to train on.

Each pair is a task's reference solution with one injected bug (a misspelt name, which raises NameError, or a
``return`` that returns None) as the failing attempt, and the reference itself as the repair. Both go through
the real debugging loop and executor, so a mutant that still passes gives no pair, and the usual pair filters
run. They exercise training and evaluation end to end; they are not model-generated and not the paper's data.
"""

from __future__ import annotations

import random
import re
from pathlib import Path
from typing import Callable, Optional, Sequence

from iterpref.executor import Executor
from iterpref.pairs.build import PairSummary, write_pairs
from iterpref.records import Pair, Task
from iterpref.refine import load_trajectories, refine
from iterpref.samplers.scripted import ScriptedSampler

SAMPLER_NAME = "synthetic-bugs"
KEYWORDS = {"return", "for", "in", "if", "else", "elif", "not", "and", "or", "while", "is", "None", "True", "False",
            "def", "lambda", "import", "from", "as", "with", "try", "except", "break", "continue", "pass", "yield"}


def inject_bug(reference: str, prompt: str, rng: random.Random) -> Optional[str]:
    """The reference with one line broken after the prompt's lines, or None when no line can be broken."""
    lines = reference.splitlines()
    options = []
    for index in range(len(prompt.splitlines()), len(lines)):
        code = lines[index].split("#")[0]
        names = [n for n in re.findall(r"\b[a-z_][a-z0-9_]*\b", code) if n not in KEYWORDS]
        options += [(index, "name", n) for n in names]
        if code.strip().startswith("return ") and code.strip() != "return None":
            options.append((index, "return", None))
    if not options:
        return None
    index, kind, name = rng.choice(options)
    line = lines[index]
    if kind == "name":
        lines[index] = re.sub(rf"\b{name}\b", name + "_x", line, count=1)
    else:
        lines[index] = line[: len(line) - len(line.lstrip())] + "return None"
    return "\n".join(lines) + "\n"


def synthetic_pairs(tasks: Sequence[Task], executor: Executor, out_dir: str | Path, *, seed: int = 0,
                    limit: Optional[int] = None, count_tokens: Optional[Callable[[str], int]] = None,
                    progress: bool = True, prefix: str = "synthetic_") -> tuple[list[Pair], PairSummary, Path]:
    """Pairs from at most ``limit`` of ``tasks`` (those with a reference); writes ``<prefix>trajectories.jsonl``,
    ``<prefix>pairs.jsonl`` and its summary into ``out_dir`` and returns (pairs, summary, pairs path).

    A rerun resumes the trajectory file, so the same arguments give the same pairs."""
    out = Path(out_dir)
    rng = random.Random(seed)
    script: dict[str, list[str]] = {}
    for task in tasks:
        if limit is not None and len(script) >= limit:
            break
        bug = inject_bug(task.reference, task.prompt, rng) if task.reference else None
        if bug:
            script[task.task_id] = [f"```python\n{bug}```", f"```python\n{task.reference}```"]
    chosen = [t for t in tasks if t.task_id in script]
    trajectories = out / f"{prefix}trajectories.jsonl"
    pairs_path = out / f"{prefix}pairs.jsonl"
    if chosen:
        refine(chosen, ScriptedSampler(script, name=SAMPLER_NAME), executor, trajectories, max_rounds=1,
               progress=progress)
    pairs, summary = write_pairs(load_trajectories(trajectories), pairs_path, out / f"{prefix}pairs.summary.json",
                                 seed=seed, count_tokens=count_tokens)
    return pairs, summary, pairs_path
