"""The IterPref / Target-DPO released pair file as our pairs format.

The released file is one JSON array of objects with ``prompt``, ``chosen`` and ``rejected``: the replies are
the model's completions as trained on, code fences included, and nothing names a task. Each becomes a ``Pair``
(``iterpref.records``) whose ``chosen`` / ``rejected`` are those replies unchanged. The error region comes from
the code alone:

* each reply's code is the lines inside its fences (backticks or tildes, three or more, any language tag),
  all of its fenced blocks in order; a fence left open runs to the end of the reply. The fence lines and the
  prose around and between blocks are not code;
* ``rejected_code_ranges`` / ``chosen_code_ranges`` store those lines as ``[first, last]`` ranges of the reply,
  and ``rejected_lines`` / ``chosen_lines`` the line diff (``iterpref.pairs.diff``) of the code lines alone, in
  the replies' own line numbers. The trainer's masks read the ranges (``iterpref.train.masks``), so prose that
  differs between the replies is never in the error region: with the focal loss its rejected tokens are not
  scored (with ``--outside-weight w`` they weigh ``w``, like any rejected token outside the region), and the
  chosen fix lines of the held-out metrics are code lines;
* a reply without any fence is taken whole as code (range null, as for pairs from ``iterpref pairs``); the
  summary counts such replies so that a file of prose-only replies does not pass unnoticed.

Records whose two replies hold the same code (ignoring leading and trailing blank space) are skipped
(``same_code``), and so are those whose rejected reply has fences with no code in them (``no_rejected_code``):
neither has an error region to train on.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from iterpref.errors import DataError
from iterpref.pairs.diff import scope_lines, scoped_line_diff, split_lines
from iterpref.records import Pair

_OPENING = re.compile(r"^[ \t]*(`{3,}|~{3,})")


def fence_ranges(reply: str) -> Optional[list[list[int]]]:
    """1-based ``[first, last]`` line ranges of the code inside each of the reply's fenced blocks, in order;
    None when the reply has no fence at all. Empty blocks give no range; an unclosed fence runs to the end.

    A block closes at a line of only the opening fence's character, at least as many of them, as in Markdown.
    """
    lines = split_lines(reply)
    ranges: list[list[int]] = []
    fenced = False
    closing: Optional[re.Pattern[str]] = None
    first = 0
    for number, line in enumerate(lines, start=1):
        if closing is None:
            opening = _OPENING.match(line)
            # As in Markdown, a backtick fence's info string holds no backtick (```x``` is inline code).
            if opening and not (opening.group(1)[0] == "`" and "`" in line[opening.end():]):
                fence = opening.group(1)
                closing = re.compile(rf"^[ \t]*{re.escape(fence[0])}{{{len(fence)},}}[ \t]*$")
                fenced, first = True, number + 1
        elif closing.match(line):
            if number > first:
                ranges.append([first, number - 1])
            closing = None
    if closing is not None and len(lines) >= first:
        ranges.append([first, len(lines)])
    return ranges if fenced else None


def code_region(reply: str) -> tuple[str, int]:
    """(code, number of reply lines before it) of the reply's longest fenced block; the whole reply when it
    has no fence."""
    ranges = fence_ranges(reply)
    if ranges is None:
        return reply, 0
    lines = split_lines(reply)
    blocks = [("".join(line + "\n" for line in lines[first - 1 : last]), first - 1) for first, last in ranges]
    return max(blocks, key=lambda block: len(block[0]), default=("", 0))


def _code(reply: str, ranges: Optional[list[list[int]]]) -> str:
    lines = split_lines(reply)
    return "\n".join(lines[k - 1] for k in scope_lines(ranges, len(lines)))


@dataclass
class ImportSummary:
    records: int = 0
    pairs: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    unfenced: int = 0  # replies (of kept pairs) without a fence, taken whole as code


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

    def skip(reason: str) -> None:
        summary.skipped[reason] = summary.skipped.get(reason, 0) + 1

    for index, record in enumerate(data):
        where = f"{path}: record {index}"
        if not isinstance(record, dict):
            raise DataError(f"{where}: not an object")
        for key in ("prompt", "chosen", "rejected"):
            if not isinstance(record.get(key), str) or not record[key].strip():
                raise DataError(f"{where}: field `{key}` must be a non-empty string")
        chosen, rejected = record["chosen"], record["rejected"]
        chosen_ranges, rejected_ranges = fence_ranges(chosen), fence_ranges(rejected)
        chosen_code, rejected_code = _code(chosen, chosen_ranges), _code(rejected, rejected_ranges)
        if chosen_code.strip() == rejected_code.strip():
            skip("same_code")
            continue
        if not rejected_code.strip():
            skip("no_rejected_code")
            continue
        summary.unfenced += (chosen_ranges is None) + (rejected_ranges is None)
        diff = scoped_line_diff(rejected, chosen, rejected_ranges, chosen_ranges)
        digest = hashlib.sha256(record["prompt"].encode()).hexdigest()[:12]
        pairs.append(Pair(task_id=f"imported/{index}-{digest}", prompt=record["prompt"], chosen=chosen,
                          rejected=rejected, rejected_lines=diff.rejected_lines, chosen_lines=diff.chosen_lines,
                          rejected_code_ranges=rejected_ranges, chosen_code_ranges=chosen_ranges))
    summary.pairs = len(pairs)
    return pairs, summary
