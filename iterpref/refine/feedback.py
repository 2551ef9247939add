"""Prompts: the first request for a task, and the repair request built from the executor's results.

A repair prompt is rebuilt from three things only -- the task, the current code and its ``RunResult`` -- so it
stays the same size every round and a resumed job can rebuild it from the last line of the trajectory file.

Two styles of repair prompt (``REPAIR_PROMPTS``):

- ``full`` (the paper's loop): the first request, the failing program as the model's reply, then every failing
  test's error, failing line and traceback, and the program with line numbers.
- ``brief``: the first request again, with one sentence saying how a previous attempt failed (the first failing
  test's error and message), and no code. Small models cannot read their own program back: from the full prompt
  the bundled 135M model repaired 0 of 900 HumanEval failures, often copying the code or degenerating; from the
  brief one 5 of 894, about as often as fresh samples solve those tasks (docs/data.md has the figures).
"""

from __future__ import annotations

import json
from typing import Any

from iterpref.errors import ConfigError
from iterpref.records import Task
from iterpref.refine.extract import defines
from iterpref.samplers.base import Prompt
from sandbox.models import RunResult, TestResult, Verdict, default_test_id

SYSTEM = "You are an expert Python programmer. Reply with one complete Python program in a ```python block."
MAX_FAILURES_SHOWN = 3
MAX_FIELD_CHARS = 1200
REPAIR_PROMPTS = ("full", "brief")
BRIEF_MESSAGE_CHARS = 200


def _instruction(task: Task) -> str:
    if task.entry_point:
        return f"Write the complete Python function `{task.entry_point}` (with any imports it needs)."
    if task.tests and all(t.get("kind") == "stdio" for t in task.tests):
        return "Write a complete Python program that reads standard input and writes the answer to standard output."
    return "Write a complete Python solution."


def user_prompt(task: Task) -> str:
    """The user turn of round 0; pairs use it as their ``prompt``."""
    return f"{_instruction(task)}\n\n```python\n{task.prompt.rstrip()}\n```"


def initial_messages(task: Task) -> list[dict[str, str]]:
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user_prompt(task)}]


def initial_code_start(task: Task) -> str:
    """Code the first reply may begin with: the prompt itself when it is the entry point's signature and docstring
    (HumanEval style); nothing for other tasks."""
    if task.entry_point and defines(task.prompt, task.entry_point):
        return task.prompt
    return ""


def initial_prompt(task: Task) -> Prompt:
    return Prompt(task.task_id, 0, initial_messages(task), code_start=initial_code_start(task))


def _clip(text: str, limit: int = MAX_FIELD_CHARS) -> str:
    text = text.rstrip()
    return text if len(text) <= limit else text[: limit // 2] + "\n...\n" + text[-limit // 2 :]


def _with_line_numbers(code: str) -> str:
    lines = code.rstrip("\n").splitlines()
    width = len(str(len(lines)))
    return "\n".join(f"{i:>{width}} | {line}" for i, line in enumerate(lines, start=1))


def describe_failure(test: TestResult, task_test: dict[str, Any] | None, code_lines: list[str]) -> str:
    """One failing test as the model will read it: what ran, what happened, where in its code."""
    load_note = " (the program failed to load)" if test.program_error else ""
    parts = [f"Test `{test.id}`: {test.verdict.value}{load_note}"]
    if task_test and task_test.get("kind") == "call":
        call = f"{task_test['entry_point']}(*{json.dumps(task_test.get('args', []))}"
        call += f", **{json.dumps(task_test['kwargs'])})" if task_test.get("kwargs") else ")"
        parts.append(f"Call: {_clip(call, 300)}\nExpected: {_clip(json.dumps(task_test.get('expected')), 300)}")
    if task_test and task_test.get("kind") == "stdio":
        parts.append(f"Input:\n{_clip(task_test.get('stdin', ''), 300)}\nExpected output:\n"
                     f"{_clip(task_test.get('expected_stdout', ''), 300)}\nYour output:\n{_clip(test.stdout, 300)}")
    if test.error_type or test.message:
        parts.append(f"Error: {test.error_type or ''}{': ' if test.error_type and test.message else ''}"
                     f"{_clip(test.message or '', 400)}")
    if test.line is not None and 1 <= test.line <= len(code_lines):
        parts.append(f"At line {test.line} of your code: {code_lines[test.line - 1].strip()}")
    if test.traceback:
        parts.append(f"Traceback:\n{_clip(test.traceback)}")
    elif test.stderr and not test.message:
        parts.append(f"Stderr:\n{_clip(test.stderr, 400)}")
    if test.verdict == Verdict.TIMEOUT:
        parts.append("The test ran past its time limit: look for an infinite loop or a slow algorithm.")
    return "\n".join(parts)


def _failing(result: RunResult) -> list[TestResult]:
    return [t for t in result.tests if t.verdict not in (Verdict.PASS, Verdict.SKIPPED)]


def feedback_text(task: Task, code: str, result: RunResult) -> str:
    failing = _failing(result)
    by_id = {t.get("id") or default_test_id(i): t for i, t in enumerate(task.tests or [])}
    code_lines = code.splitlines()
    total = len(result.tests)
    head = f"Your code failed {len(failing)} of {total} tests." if total else "Your code produced no test results."
    shown = [describe_failure(t, by_id.get(t.id), code_lines) for t in failing[:MAX_FAILURES_SHOWN]]
    more = len(failing) - len(shown)
    tail = f"\n\n({more} more failing tests not shown.)" if more > 0 else ""
    return head + "\n\n" + "\n\n".join(shown) + tail


def repair_messages(task: Task, code: str, result: RunResult) -> list[dict[str, str]]:
    """The prompt for the next round: the task, the failing code (numbered in the feedback) and what failed."""
    feedback = feedback_text(task, code, result)
    return initial_messages(task) + [
        {"role": "assistant", "content": f"```python\n{code.rstrip()}\n```"},
        {
            "role": "user",
            "content": f"{feedback}\n\nYour code with line numbers:\n{_with_line_numbers(code)}\n\n"
            "Fix the code. Reply with the complete corrected program in one ```python block.",
        },
    ]


def check_repair_style(style: str, name: str = "repair prompt") -> None:
    if style not in REPAIR_PROMPTS:
        raise ConfigError(f"{name} must be one of {', '.join(REPAIR_PROMPTS)}, not {style!r}")


def brief_failure(result: RunResult) -> str:
    """How the first failing test failed, in one line: ``ErrorType: message`` (the verdict when there is no error)."""
    failing = _failing(result)
    if not failing:
        return "no test result"
    test = failing[0]
    message = " ".join((test.message or "").split())[:BRIEF_MESSAGE_CHARS]
    return f"{test.error_type or test.verdict.value}" + (f": {message}" if message else "")


def brief_repair_messages(task: Task, result: RunResult) -> list[dict[str, str]]:
    """The first request again, plus how a previous attempt failed; the failing code itself is not shown."""
    system, user = initial_messages(task)
    note = f"\n\nA previous attempt failed with {brief_failure(result)}\nWrite a correct version."
    return [system, {**user, "content": user["content"] + note}]


def repair_prompt(task: Task, code: str, result: RunResult, round: int, style: str = "full") -> Prompt:
    """The prompt of repair round ``round`` in the given style (``REPAIR_PROMPTS``). A brief prompt is the first
    request plus a note, so it may start the reply with the same code as the first attempt."""
    check_repair_style(style)
    if style == "brief":
        return Prompt(task.task_id, round, brief_repair_messages(task, result), code_start=initial_code_start(task))
    return Prompt(task.task_id, round, repair_messages(task, code, result))
