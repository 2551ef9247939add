"""Line-level diff of a failing program against its fix, by exact longest common subsequence.

The error region of a preference pair is the set of ``rejected`` lines that are not part of the line-level
longest common subsequence (LCS) with ``chosen``. A fix that only inserts lines leaves no such line, so the diff
also reports *insertion anchors*: the rejected lines just before and after each point where ``chosen`` inserts
lines, which is where the failing program went wrong by omission.

Lines are the pieces of ``text.split("\\n")``; a trailing newline ends the last line rather than starting an
empty one, so ``"a\\nb\\n"`` has two lines. Every line number in this module is 1-based.

The LCS is exact (dynamic programming over line hashes after trimming the common prefix and suffix); difflib's
matcher is a heuristic and can miss a longer common subsequence.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Hashable, Optional, Sequence

# 1-based, inclusive ``[first, last]`` line ranges of a text: the part of it a diff is restricted to (the code
# inside a reply's fences; see :func:`scoped_line_diff`).
LineRanges = Sequence[Sequence[int]]


@dataclass(frozen=True)
class SeqDiff:
    """Indices (0-based) of a diff between sequences ``a`` (rejected side) and ``b`` (chosen side)."""

    a_only: list[int]
    b_only: list[int]
    anchors: list[int]  # indices of ``a`` bordering a pure insertion into ``a``
    hunks: list[tuple[int, int, int, int]] = field(default_factory=list)  # (a_start, a_end, b_start, b_end)


@dataclass(frozen=True)
class LineDiff:
    """Result of :func:`line_diff`; all numbers are 1-based line numbers."""

    rejected_lines: list[int]  # rejected lines outside the LCS (deleted or replaced by the fix)
    chosen_lines: list[int]  # chosen lines outside the LCS (added or replacing)
    anchors: list[int]  # rejected lines around pure insertions (empty when the fix only inserts nothing)
    hunks: list[tuple[int, int, int, int]]  # (rej_first, rej_last, cho_first, cho_last); last < first if empty

    @property
    def error_lines(self) -> list[int]:
        """Rejected lines that carry the error: changed lines plus anchors of pure insertions."""
        return sorted(set(self.rejected_lines) | set(self.anchors))


def split_lines(text: str) -> list[str]:
    """Split on ``\\n`` only (never ``\\r`` or unicode separators), so lines map back onto character offsets."""
    if not text:
        return []
    lines = text.split("\n")
    if text.endswith("\n"):
        lines.pop()
    return lines


def line_spans(text: str, lines: Optional[list[str]] = None) -> list[tuple[int, int]]:
    """Character span ``[start, end)`` of each line of :func:`split_lines`, excluding its newline.

    An empty line's span is its newline character, so a changed blank line still covers something.
    ``lines`` may pass ``split_lines(text)`` when the caller already has it.
    """
    spans = []
    start = 0
    size = len(text)
    for line in split_lines(text) if lines is None else lines:
        end = start + len(line)
        spans.append((start, end) if line else (start, min(start + 1, size)))
        start = end + 1
    return spans


def _trim(a: Sequence[Hashable], b: Sequence[Hashable]) -> tuple[int, int]:
    """Lengths of the common prefix and (non-overlapping) common suffix of ``a`` and ``b``."""
    n, m = len(a), len(b)
    head = 0
    while head < n and head < m and a[head] == b[head]:
        head += 1
    tail = 0
    while tail < n - head and tail < m - head and a[n - 1 - tail] == b[m - 1 - tail]:
        tail += 1
    return head, tail


def _middle_lcs(mid_a: Sequence[Hashable], mid_b: Sequence[Hashable]) -> list[tuple[int, int]]:
    """Exact LCS of two (trimmed) sequences by an O(n*m) table; ties skip ``mid_a`` first."""
    rows, cols = len(mid_a), len(mid_b)
    if not rows or not cols:
        return []
    # Hash once so the table compares integers, not long strings.
    ids: dict[Hashable, int] = {}
    mid_a = [ids.setdefault(x, len(ids)) for x in mid_a]
    mid_b = [ids.setdefault(x, len(ids)) for x in mid_b]
    if not set(mid_a).intersection(mid_b):  # common for a one-hunk replace: nothing to match
        return []
    # table[i][j] = LCS length of mid_a[i:] and mid_b[j:]
    table = [[0] * (cols + 1) for _ in range(rows + 1)]
    for i in range(rows - 1, -1, -1):
        row, below = table[i], table[i + 1]
        x = mid_a[i]
        for j in range(cols - 1, -1, -1):
            row[j] = below[j + 1] + 1 if x == mid_b[j] else max(below[j], row[j + 1])
    pairs = []
    i = j = 0
    while i < rows and j < cols:
        if mid_a[i] == mid_b[j]:
            pairs.append((i, j))
            i += 1
            j += 1
        elif table[i + 1][j] >= table[i][j + 1]:
            i += 1
        else:
            j += 1
    return pairs


def seq_diff(a: Sequence[Hashable], b: Sequence[Hashable]) -> SeqDiff:
    """Diff two sequences by exact LCS: what only ``a`` has, what only ``b`` has, and insertion anchors in ``a``.

    Common prefix and suffix are matched directly (they are always part of some LCS); the middle is solved by
    an O(n*m) table. Ties prefer matching earlier elements of ``a``, which makes the result deterministic.
    """
    n, m = len(a), len(b)
    head, tail = _trim(a, b)
    a_only: list[int] = []
    b_only: list[int] = []
    anchors: set[int] = set()
    hunks = []
    # Only the middle can hold gaps: walk its matches, then the first suffix match (or the ends) closes the last.
    prev_i = prev_j = head - 1
    middle = _middle_lcs(a[head : n - tail], b[head : m - tail])
    for i, j in [(head + i, head + j) for i, j in middle] + [(n - tail, m - tail)]:
        if i > prev_i + 1 or j > prev_j + 1:
            hunks.append((prev_i + 1, i, prev_j + 1, j))
            a_only.extend(range(prev_i + 1, i))
            b_only.extend(range(prev_j + 1, j))
            if i == prev_i + 1:
                # Pure insertion between a[prev_i] and a[i]: both neighbours border the omission.
                anchors.update(k for k in (prev_i, i) if 0 <= k < n)
        prev_i, prev_j = i, j
    return SeqDiff(a_only=a_only, b_only=b_only, anchors=sorted(anchors), hunks=hunks)


def line_diff(rejected: str, chosen: str) -> LineDiff:
    """Line-level exact-LCS diff of ``rejected`` against ``chosen``.

    Returns the 1-based rejected and chosen lines outside the LCS, the 1-based rejected lines bordering each
    pure insertion (``anchors``), and the hunks. Lines compare exactly, whitespace included: an indentation
    change is a change.

    >>> d = line_diff("a\\nb\\nc\\n", "a\\nB\\nc\\n")
    >>> d.rejected_lines, d.chosen_lines, d.anchors
    ([2], [2], [])
    >>> line_diff("a\\nc\\n", "a\\nb\\nc\\n").anchors
    [1, 2]
    """
    return diff_lines(split_lines(rejected), split_lines(chosen))


def diff_lines(rejected_lines: Sequence[str], chosen_lines: Sequence[str]) -> LineDiff:
    """:func:`line_diff` of texts already split by :func:`split_lines` (saves splitting twice)."""
    diff = seq_diff(rejected_lines, chosen_lines)
    return LineDiff(
        rejected_lines=[i + 1 for i in diff.a_only],
        chosen_lines=[j + 1 for j in diff.b_only],
        anchors=[i + 1 for i in diff.anchors],
        hunks=[(a0 + 1, a1, b0 + 1, b1) for a0, a1, b0, b1 in diff.hunks],
    )


def scope_lines(ranges: Optional[LineRanges], count: int) -> list[int]:
    """Sorted 1-based numbers of the lines in ``ranges`` (clipped to ``1..count``); every line when ``ranges`` is
    None."""
    if ranges is None:
        return list(range(1, count + 1))
    return sorted({k for first, last in ranges for k in range(max(first, 1), min(last, count) + 1)})


def scoped_line_diff(rejected: str, chosen: str, rejected_ranges: Optional[LineRanges] = None,
                     chosen_ranges: Optional[LineRanges] = None) -> LineDiff:
    """:func:`line_diff` of only the lines inside each side's ranges, numbered in the full texts' own lines.

    Lines outside the ranges (prose around a reply's code fences) are neither compared nor reported. ``hunks``
    stay in the numbering of the in-range lines (a hunk may straddle two ranges), so they are left out here.
    """
    r_all, c_all = split_lines(rejected), split_lines(chosen)
    r_keep, c_keep = scope_lines(rejected_ranges, len(r_all)), scope_lines(chosen_ranges, len(c_all))
    diff = diff_lines([r_all[k - 1] for k in r_keep], [c_all[k - 1] for k in c_keep])
    return LineDiff(rejected_lines=[r_keep[i - 1] for i in diff.rejected_lines],
                    chosen_lines=[c_keep[j - 1] for j in diff.chosen_lines],
                    anchors=[r_keep[i - 1] for i in diff.anchors], hunks=[])
