"""Calibrated time limits for any task file, as EvalPlus sets them: run each task's reference solution, take the
slowest test's time, and give the task ``limits.time_s = max(floor, factor x that time)`` (at most the
executor's maximum), so a slow or loaded machine does not turn correct programs into timeouts. A task without a
reference, or whose reference does not pass, keeps its limits and is reported."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Sequence

from iterpref.executor import Executor, judge_batch
from iterpref.records import Task
from iterpref.tasks.jsonl import to_request
from sandbox.models import MAX_TIME_S, RunStatus


@dataclass
class Calibration:
    tasks: list[Task]
    calibrated: int = 0
    kept: dict[str, str] = field(default_factory=dict)  # task id -> why its limits were kept


def calibrate(tasks: Sequence[Task], executor: Executor, *, factor: float = 4.0, floor: float = 1.0) -> Calibration:
    """Tasks with calibrated ``limits.time_s`` (see the module docstring)."""
    with_reference = [t for t in tasks if t.reference]
    # the reference runs under the executor's maximum, so a slow machine measures instead of timing out
    requests = [to_request(replace(t, limits={**(t.limits or {}), "time_s": MAX_TIME_S}), t.reference or "")
                for t in with_reference]
    results = dict(zip((t.task_id for t in with_reference), judge_batch(executor, requests) if requests else []))
    out = Calibration(tasks=[])
    for task in tasks:
        result = results.get(task.task_id)
        if result is None:
            out.kept[task.task_id] = "no reference solution"
        elif result.status != RunStatus.COMPLETED or not result.passed:
            out.kept[task.task_id] = "its reference solution does not pass"
        else:
            slowest = max(t.duration_ms for t in result.tests) / 1000
            limit = min(MAX_TIME_S, max(floor, factor * slowest))
            task = replace(task, limits={**(task.limits or {}), "time_s": round(limit, 3)})
            out.calibrated += 1
        out.tasks.append(task)
    return out
