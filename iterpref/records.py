"""IterPref's data contracts: tasks in, attempts (trajectories) through the loop, preference pairs out.

Every file is JSON Lines: one JSON object per line, UTF-8. Each record below documents its fields. This module
also holds the one reader and writer of those files (:func:`read_jsonl`, :func:`load_records`,
:func:`to_json_line`) and of the JSON files iterpref writes (:func:`read_json`, :func:`write_json`).

Format version: every record iterpref writes starts with ``"format_version": 1``, and every JSON file it writes
(``pairs.summary.json``, ``summary.json``, ...) has it at the top. Readers accept a record or file without the
field (written before formats were versioned; the same fields as version 1) and refuse a version newer than
:data:`FORMAT_VERSION` with a DataError that names the file and line and says to upgrade iterpref.

Task (``tasks.jsonl``) -- what the model must solve::

    {"format_version": 1,          # optional in files written by hand
     "task_id": "HumanEval/0",
     "prompt": "from typing import List\n\ndef has_close_elements(...):\n    \"\"\"...\"\"\"\n",
     "tests": [{"kind": "assert", "code": "...\ncheck(has_close_elements)"}],   # executor contract
     "test_file": null,            # or a unittest/pytest module importing `solution`, instead of tests
     "entry_point": "has_close_elements",   # optional
     "reference": "...",           # optional known-good solution
     "limits": null}               # optional sandbox.models.Limits as JSON

Attempt (``trajectories.jsonl``) -- one line per executed attempt, written as soon as it finishes::

    {"format_version": 1, "task_id": "HumanEval/0", "round": 0, "messages": [...], "response": "raw model text",
     "code": "extracted program", "passed": false, "result": {RunResult as JSON}, "sampler": "hf:...",
     "sample": 0,      # which of the round's candidates for this task (refine --repair-samples n: 0..n-1)
     "parent": null}   # sample index, in the previous round, of the attempt this one repairs (null in round 0)

``sample`` and ``parent`` were added without a version change: a file without them (one candidate per round)
reads as sample 0 whose parent is the previous round's sample 0.

Pair (``pairs.jsonl``) -- one per task whose trajectory ended passing after at least one failing attempt::

    {"format_version": 1, "task_id": "HumanEval/0", "prompt": "...", "chosen": "passing code",
     "rejected": "failing code", "chosen_round": 2, "rejected_round": 0,
     "rejected_lines": [3, 4],   # 1-based lines of `rejected` outside the line-level LCS with `chosen`
     "chosen_lines": [3],        # 1-based lines of `chosen` outside that LCS
     "rejected_trace_lines": [4],   # 1-based lines of `rejected` where its failing tests stopped
                                    # (TestResult.line); null when not recorded (imported pairs)
     "rejected_code_ranges": null,  # [[first, last], ...]: the lines of `rejected` that are code (inside its
     "chosen_code_ranges": null}    # fences); the error region comes from those lines only; null: all of it

``prompt`` is the task's prompt text (the user turn); ``chosen`` and ``rejected`` are the completions the
trainer scores, exactly as they appear here. The two code-range fields were added without a version change:
only ``iterpref import-pairs`` fills them (replies with prose around fenced code), and a file without them reads
as null.
"""

from __future__ import annotations

import gzip
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator, Optional, TypeVar

from iterpref.errors import DataError

# Every JSONL record and JSON file iterpref writes carries this; bump it when a format changes, and keep reading
# the older versions (see check_version).
FORMAT_VERSION = 1
VERSION_FIELD = "format_version"

R = TypeVar("R")


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
    sample: int = 0  # index among the candidates drawn for this task in this round (--repair-samples)
    parent: Optional[int] = None  # sample index, in round - 1, of the attempt this one repairs; None in round 0


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
    rejected_trace_lines: Optional[list[int]] = None  # rejected lines where its failing tests stopped; None: unknown
    # [first, last] line ranges of each side's code (inside its fences); None: the whole completion is code.
    rejected_code_ranges: Optional[list[list[int]]] = None
    chosen_code_ranges: Optional[list[list[int]]] = None


def check_version(found: Any, where: str) -> None:
    """Accept a record or file of a format version this iterpref reads; refuse a newer one, saying what to do."""
    if found is None:
        return  # written before formats carried a version: the same fields as version 1
    if isinstance(found, bool) or not isinstance(found, int) or found < 1:
        raise DataError(f"{where}: {VERSION_FIELD} must be a positive integer, got {found!r}")
    if found > FORMAT_VERSION:
        raise DataError(f"{where}: {VERSION_FIELD} {found} was written by a newer iterpref (this one reads versions "
                        f"up to {FORMAT_VERSION}); upgrade iterpref (pip install -U iterpref) to read it")


def read_jsonl(path: str | Path, *, complete_lines_only: bool = False) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(line number, object)`` for each JSON object of a JSONL file, its ``format_version`` checked and
    removed; any problem raises DataError naming file and line.

    With ``complete_lines_only`` a last line without its newline is left out: a writer may still be appending it
    (or a kill tore it), so it is not a record yet."""
    opener: Any = gzip.open if str(path).endswith(".gz") else open  # data sets ship gzipped too
    try:
        with opener(path, "rt", encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                if complete_lines_only and not line.endswith("\n"):
                    return
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise DataError(f"{path}:{number}: not valid JSON ({exc.msg})") from None
                if not isinstance(record, dict):
                    raise DataError(f"{path}:{number}: expected a JSON object, got {type(record).__name__}")
                check_version(record.pop(VERSION_FIELD, None), f"{path}:{number}")
                yield number, record
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except (OSError, EOFError) as exc:  # a broken or truncated .gz, a folder, no permission
        raise DataError(f"{path}: cannot read it ({exc})") from None


def from_dict(cls: type[R], raw: dict[str, Any], where: str) -> R:
    """One record of dataclass ``cls`` from its JSON object; unknown or missing fields raise DataError at ``where``."""
    unknown = set(raw) - set(cls.__dataclass_fields__)  # type: ignore[attr-defined]
    if unknown:
        raise DataError(f"{where}: unknown field(s) {sorted(unknown)} for {cls.__name__}")
    try:
        return cls(**raw)
    except TypeError as exc:
        raise DataError(f"{where}: {exc}") from None


def load_records(path: str | Path, cls: type[R]) -> list[R]:
    """Every record of a JSONL file as dataclass ``cls``."""
    return [from_dict(cls, raw, f"{path}:{number}") for number, raw in read_jsonl(path)]


def to_json_line(record: Any) -> str:
    """A dataclass record (or a dict) as one JSONL line, led by its format version."""
    data = record if isinstance(record, dict) else asdict(record)
    return json.dumps({VERSION_FIELD: FORMAT_VERSION, **data}, ensure_ascii=False) + "\n"


def write_json(path: str | Path, data: dict[str, Any]) -> None:
    """A JSON file iterpref writes (a summary, settings): the object with its format version at the top."""
    Path(path).write_text(json.dumps({VERSION_FIELD: FORMAT_VERSION, **data}, indent=2) + "\n", encoding="utf-8")


def read_json(path: str | Path) -> dict[str, Any]:
    """A JSON object file written by :func:`write_json` (or before formats carried a version), version checked
    and removed; a missing, unreadable or newer file raises DataError naming it."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a JSON object, got {type(data).__name__}")
    check_version(data.pop(VERSION_FIELD, None), str(path))
    return data
