"""The IterPref / Target-DPO released pair file as our pairs format.

The released file is one JSON array of objects with ``prompt``, ``chosen`` and ``rejected``: the replies are
the model's completions as trained on, code fences included, and nothing names a task. Each becomes a ``Pair``
(``iterpref.records``) whose ``chosen`` / ``rejected`` are those replies unchanged, and whose error region is the
line diff (``iterpref.pairs.diff``) of the code inside the fences, expressed in the replies' own line numbers.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from iterpref.errors import DataError
from iterpref.pairs.diff import line_diff
from iterpref.records import Pair

_FENCE = re.compile(r"^[ \t]*(`{3,}|~{3,})[ \t]*([\w+.-]*)[^\n]*\n", re.MULTILINE)


def code_region(reply: str) -> tuple[str, int]:
    """(code, number of reply lines before it) of the reply's longest fenced block; the whole reply when it
    has no fence."""
    best: tuple[str, int] | None = None
    for opening in _FENCE.finditer(reply):
        fence = opening.group(1)
        closing = re.compile(rf"^[ \t]*{re.escape(fence[0])}{{{len(fence)},}}[ \t]*$", re.MULTILINE)
        end = closing.search(reply, opening.end())
        body = reply[opening.end() : end.start() if end else len(reply)]
        if best is None or len(body) > len(best[0]):
            best = (body, reply[: opening.end()].count("\n"))
    return best if best is not None else (reply, 0)


@dataclass
class ImportSummary:
    records: int = 0
    pairs: int = 0
    skipped: dict[str, int] = field(default_factory=dict)


def import_pairs(path: str | Path) -> tuple[list[Pair], ImportSummary]:
    """Validate the released file and turn each usable record into a Pair (see the module docstring)."""
    try:
        data: Any = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: not JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(data, list):
        raise DataError(f"{path}: expected a JSON array of {{prompt, chosen, rejected}} objects")
    pairs: list[Pair] = []
    summary = ImportSummary(records=len(data))
    for index, record in enumerate(data):
        where = f"{path}: record {index}"
        if not isinstance(record, dict):
            raise DataError(f"{where}: not an object")
        for key in ("prompt", "chosen", "rejected"):
            if not isinstance(record.get(key), str) or not record[key].strip():
                raise DataError(f"{where}: field `{key}` must be a non-empty string")
        (chosen_code, chosen_offset), (rejected_code, rejected_offset) = (code_region(record["chosen"]),
                                                                          code_region(record["rejected"]))
        if chosen_code.strip() == rejected_code.strip():
            summary.skipped["same_code"] = summary.skipped.get("same_code", 0) + 1
            continue
        diff = line_diff(rejected_code, chosen_code)
        digest = hashlib.sha256(record["prompt"].encode()).hexdigest()[:12]
        pairs.append(Pair(task_id=f"imported/{index}-{digest}", prompt=record["prompt"], chosen=record["chosen"],
                          rejected=record["rejected"],
                          rejected_lines=[n + rejected_offset for n in diff.rejected_lines],
                          chosen_lines=[n + chosen_offset for n in diff.chosen_lines]))
    summary.pairs = len(pairs)
    return pairs, summary
