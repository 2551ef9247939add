"""IterPref's data contracts: tasks in, attempts (trajectories) through the loop, preference pairs out.

Every file is JSON Lines: one JSON object per line, UTF-8. Each record below documents its fields.

Task (``tasks.jsonl``) -- what the model must solve::

    {"task_id": "HumanEval/0",
     "prompt": "from typing import List\n\ndef has_close_elements(...):\n    \"\"\"...\"\"\"\n",
     "tests": [{"kind": "assert", "code": "...\ncheck(has_close_elements)"}],   # executor contract
     "test_file": null,            # or a unittest/pytest module importing `solution`, instead of tests
     "entry_point": "has_close_elements",   # optional
     "reference": "...",           # optional known-good solution
     "limits": null}               # optional sandbox.models.Limits as JSON

Attempt (``trajectories.jsonl``) -- one line per executed attempt, written as soon as it finishes::

    {"task_id": "HumanEval/0", "round": 0, "messages": [...], "response": "raw model text",
     "code": "extracted program", "passed": false, "result": {RunResult as JSON}, "sampler": "hf:..."}

Pair (``pairs.jsonl``) -- one per task whose trajectory ended passing after at least one failing attempt::

    {"task_id": "HumanEval/0", "prompt": "...", "chosen": "passing code", "rejected": "failing code",
     "chosen_round": 2, "rejected_round": 0,
     "rejected_lines": [3, 4],   # 1-based lines of `rejected` outside the line-level LCS with `chosen`
     "chosen_lines": [3]}        # 1-based lines of `chosen` outside that LCS

``prompt`` is the task's prompt text (the user turn); ``chosen`` and ``rejected`` are the completions the
trainer scores, exactly as they appear here.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator, Optional


@dataclass
class Task:
    task_id: str
    prompt: str
    tests: Optional[list[dict[str, Any]]] = None
    test_file: Optional[str] = None
    entry_point: Optional[str] = None
    reference: Optional[str] = None
    limits: Optional[dict[str, Any]] = None


@dataclass
class Attempt:
    task_id: str
    round: int
    code: str
    passed: bool
    result: dict[str, Any]
    response: str = ""
    messages: list[dict[str, str]] = field(default_factory=list)
    sampler: str = ""


@dataclass
class Pair:
    task_id: str
    prompt: str
    chosen: str
    rejected: str
    rejected_lines: list[int]
    chosen_lines: list[int]
    chosen_round: int = -1
    rejected_round: int = -1


def read_jsonl(path: str | Path) -> Iterator[dict[str, Any]]:
    """Yield each JSON object of a JSONL file; a malformed line raises ValueError naming file and line."""
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{number}: not valid JSON ({exc.msg})") from None
            if not isinstance(record, dict):
                raise ValueError(f"{path}:{number}: expected a JSON object, got {type(record).__name__}")
            yield record


def load_records(path: str | Path, cls: type) -> list[Any]:
    """Read a JSONL file into dataclass records; unknown or missing fields raise ValueError naming the line."""
    known = set(cls.__dataclass_fields__)
    records = []
    for number, raw in enumerate(read_jsonl(path), start=1):
        unknown = set(raw) - known
        if unknown:
            raise ValueError(f"{path}: record {number}: unknown field(s) {sorted(unknown)} for {cls.__name__}")
        try:
            records.append(cls(**raw))
        except TypeError as exc:
            raise ValueError(f"{path}: record {number}: {exc}") from None
    return records


def to_json_line(record: Any) -> str:
    return json.dumps(asdict(record), ensure_ascii=False) + "\n"
