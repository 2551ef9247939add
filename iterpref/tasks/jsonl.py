"""The task format every benchmark feeds: load and validate ``tasks.jsonl``, write it, and turn a task into the
executor request that judges a program.

A task's ``tests`` (or ``test_file``) and ``limits`` follow the executor's contract (``sandbox.models``), so a
task is checked here by building the ``RunRequest`` it will produce; a bad task fails at load time with its
file, line and field named, not halfway through a long refine job.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

from pydantic import ValidationError

from iterpref.errors import DataError
from iterpref.records import Task, read_jsonl, to_json_line
from sandbox.models import RunRequest


def _field_path(location: tuple[Any, ...]) -> str:
    text = ""
    for index, part in enumerate(location):
        if index and isinstance(location[index - 1], int) and part in ("assert", "call", "stdio"):
            continue  # pydantic names the test kind it tried; the user wrote tests[i].field
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def validate_task(raw: dict[str, Any], where: str) -> Task:
    """Turn one JSON object into a Task, or raise DataError saying where and which field is wrong."""
    known = set(Task.__dataclass_fields__)
    unknown = sorted(set(raw) - known)
    if unknown:
        raise DataError(f"{where}: unknown field(s) {unknown}; a task has {sorted(known)}")
    for name in ("task_id", "prompt"):
        if not isinstance(raw.get(name), str) or not raw[name]:
            raise DataError(f"{where}: field `{name}` must be a non-empty string")
    for name in ("entry_point", "reference", "test_file"):
        if raw.get(name) is not None and not isinstance(raw[name], str):
            raise DataError(f"{where}: field `{name}` must be a string or null")
    task = Task(**raw)
    try:
        to_request(task, code="")
    except ValidationError as exc:
        error = exc.errors()[0]
        field = _field_path(tuple(error["loc"])) or "tests"
        raise DataError(f"{where}: field `{field}`: {error['msg']}") from None
    return task


def to_request(task: Task, code: str, *, fail_fast: bool = False) -> RunRequest:
    """The executor request that checks ``code`` against this task's tests."""
    payload: dict[str, Any] = {"code": code, "tests": task.tests, "test_file": task.test_file, "fail_fast": fail_fast}
    if task.limits is not None:
        payload["limits"] = task.limits
    return RunRequest.model_validate(payload)


def load_tasks(path: str | Path) -> list[Task]:
    """Read and validate a tasks JSONL file; task ids must be unique."""
    tasks: list[Task] = []
    seen: dict[str, int] = {}
    for number, raw in read_jsonl(path):
        task = validate_task(raw, f"{path}:{number}")
        if task.task_id in seen:
            raise DataError(f"{path}:{number}: task_id {task.task_id!r} repeats line {seen[task.task_id]}")
        seen[task.task_id] = number
        tasks.append(task)
    if not tasks:
        raise DataError(f"{path}: no tasks in the file")
    return tasks


def write_tasks(tasks: Iterable[Task], path: str | Path) -> int:
    count = 0
    with open(path, "w", encoding="utf-8") as handle:
        for task in tasks:
            handle.write(to_json_line(task))
            count += 1
    return count
