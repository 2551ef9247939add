"""Error-region masks: which tokens of a rejected completion the focal preference loss pushes down.

Masks are built once, at tokenization time, in two pure steps:

1. :func:`error_spans` -- character spans of ``rejected`` that form the error region, from the line-level
   exact-LCS diff with ``chosen`` (:mod:`iterpref.pairs.diff`);
2. :func:`token_mask` -- a token is in the region when its character span (the fast tokenizer's offset
   mapping) overlaps one of those spans.

Nothing here looks for a code fence or depends on a particular tokenizer. A pair whose completions hold prose
around their code (imported replies, :mod:`iterpref.tasks.paper_pairs`) passes each side's code line ranges
(``rejected_scope`` / ``chosen_scope``): the diff, every mode below and the fix lines then see only those lines,
so prose and fence lines are never in the region, and the spans are mapped back onto the full completion.

Modes:

``line``           rejected lines outside the LCS, plus the lines around a pure insertion (the paper's default)
``token``          within each changed hunk, only the word/punctuation/whitespace pieces the fix changed
``prefix_suffix``  every line between the common prefix and the common suffix of lines
``augmented``      the ``line`` region plus ``context_lines`` lines either side (the paper's ablation)
``line+trace``     the ``line`` region plus the rejected lines where its failing tests stopped (``TestResult.line``,
                   stored in the pair as ``rejected_trace_lines``); without that record it is ``line``
``none``           the whole rejected completion (vanilla DPO)

Soft masks: :func:`region_weights` turns the 0/1 region into per-token weights, giving rejected tokens outside
the region weight ``w`` in [0, 1] (0 is the paper's focal loss; 1 with alpha 0 is vanilla DPO).
"""

from __future__ import annotations

import re
from typing import Optional, Sequence

from iterpref.pairs.diff import LineDiff, LineRanges, diff_lines, line_spans, scope_lines, seq_diff, split_lines

MASK_MODES = ("line", "token", "prefix_suffix", "augmented", "line+trace", "none")

Span = tuple[int, int]

# Pieces compared inside a changed hunk in `token` mode: identifiers/numbers, runs of whitespace, single symbols.
_PIECE = re.compile(r"\w+|\s+|[^\w\s]", re.UNICODE)


def _error_lines(diff: LineDiff, n: int, mode: str, context_lines: int,
                 trace_lines: Optional[Sequence[int]] = None) -> list[int]:
    if mode == "line":
        return diff.error_lines
    if mode == "line+trace":
        # Lines outside the rejected text (a trace into code the prompt prepended) cannot be marked.
        return sorted(set(diff.error_lines) | {k for k in trace_lines or () if 1 <= k <= n})
    if mode == "augmented":
        if context_lines < 0:
            raise ValueError(f"context_lines must be >= 0, got {context_lines}")
        around = {k for line in diff.error_lines for k in range(line - context_lines, line + context_lines + 1)}
        return sorted(k for k in around if 1 <= k <= n)
    if mode == "prefix_suffix":
        if not diff.hunks:
            return []
        first = diff.hunks[0][0]
        last = diff.hunks[-1][1]
        if last < first:  # only insertions at one point: fall back to the lines around it
            return diff.error_lines
        return list(range(first, last + 1))
    raise ValueError(f"unknown mask mode {mode!r}; choose one of {', '.join(MASK_MODES)}")


class _Scope:
    """The lines of ``text`` inside ``ranges``, joined into one text of their own, and the way back from
    character offsets in that text to offsets in ``text``."""

    def __init__(self, text: str, ranges: Optional[LineRanges]):
        self.full = text
        lines = split_lines(text)
        starts = [start for start, _ in line_spans(text, lines)]
        self.numbers = scope_lines(ranges, len(lines))  # full-text line number of each scoped line
        pieces = [lines[k - 1] for k in self.numbers]
        self.text = "".join(piece + "\n" for piece in pieces)
        self._lines: list[tuple[int, int, int, bool]] = []  # (scoped start, length, full start, keep newline)
        position = 0
        for i, (k, piece) in enumerate(zip(self.numbers, pieces)):
            # The newline after a line belongs to the region only when the next scoped line follows it in the full
            # text too; otherwise it precedes a fence or prose. An empty line's newline is all it has: keep it.
            joined = i + 1 < len(self.numbers) and self.numbers[i + 1] == k + 1
            self._lines.append((position, len(piece), starts[k - 1], joined or not piece))
            position += len(piece) + 1

    def trace(self, lines: Optional[Sequence[int]]) -> Optional[list[int]]:
        """Full-text line numbers as scoped ones; lines outside the scope are dropped."""
        if lines is None:
            return None
        index = {k: i + 1 for i, k in enumerate(self.numbers)}
        return [index[k] for k in lines if k in index]

    def to_full(self, spans: Sequence[Span]) -> list[Span]:
        """Spans of the scoped text as spans of the full text, split where the scoped lines are not adjacent."""
        out: list[Span] = []
        for start, end in spans:
            for scoped, length, full, keep_newline in self._lines:
                stop = scoped + length + (1 if keep_newline else 0)
                a, b = max(start, scoped), min(end, stop)
                if a < b:
                    out.append((full + a - scoped, min(full + b - scoped, len(self.full))))
        return _merge(out)


def error_spans(rejected: str, chosen: str, mode: str = "line", context_lines: int = 0,
                trace_lines: Optional[Sequence[int]] = None, *, rejected_scope: Optional[LineRanges] = None,
                chosen_scope: Optional[LineRanges] = None) -> list[Span]:
    """Sorted, non-overlapping character spans ``[start, end)`` of ``rejected`` forming the error region.

    Args:
        rejected: the failing completion, exactly as it will be tokenized.
        chosen: the passing completion it is compared with.
        mode: one of :data:`MASK_MODES`.
        context_lines: extra lines either side of the region, ``augmented`` mode only.
        trace_lines: 1-based rejected lines where its failing tests stopped, ``line+trace`` mode only (None or
            empty: the ``line`` region).
        rejected_scope, chosen_scope: 1-based inclusive ``[first, last]`` line ranges of each side's code (the
            insides of its fences); None, the whole completion. Every mode but ``none`` then works on those lines
            alone: lines outside them are never in the region, and ``augmented`` counts context in code lines.

    Returns an empty list when the texts do not differ (such a pair should be dropped).
    """
    if mode not in MASK_MODES:
        raise ValueError(f"unknown mask mode {mode!r}; choose one of {', '.join(MASK_MODES)}")
    if mode == "none":
        return [(0, len(rejected))] if rejected else []
    if rejected_scope is not None or chosen_scope is not None:
        r_view, c_view = _Scope(rejected, rejected_scope), _Scope(chosen, chosen_scope)
        return r_view.to_full(error_spans(r_view.text, c_view.text, mode, context_lines, r_view.trace(trace_lines)))
    # Split each text once; the diff, the line spans and the token pieces all reuse it.
    rejected_lines, chosen_lines = split_lines(rejected), split_lines(chosen)
    diff = diff_lines(rejected_lines, chosen_lines)
    spans = line_spans(rejected, rejected_lines)
    if mode != "token":
        return _merge(_runs(spans, _error_lines(diff, len(rejected_lines), mode, context_lines, trace_lines)))
    return _merge(_token_mode_spans(rejected, chosen, spans, diff, line_spans(chosen, chosen_lines)))


def _runs(spans: list[Span], lines: list[int]) -> list[Span]:
    """Spans of runs of consecutive 1-based lines, so the newlines between error lines are inside the region."""
    out: list[Span] = []
    previous = None
    for k in sorted(lines):
        if previous is not None and k == previous + 1:
            out[-1] = (out[-1][0], max(out[-1][1], spans[k - 1][1]))
        else:
            out.append(spans[k - 1])
        previous = k
    return out


def _token_mode_spans(rejected: str, chosen: str, spans: list[Span], diff: LineDiff,
                      chosen_spans: list[Span]) -> list[Span]:
    out: list[Span] = []
    for r_first, r_last, c_first, c_last in diff.hunks:
        if r_last < r_first:  # pure insertion: nothing on the rejected side changed, use the neighbours
            out.extend(_runs(spans, [k for k in (r_first - 1, r_first) if 1 <= k <= len(spans)]))
            continue
        r_start, r_end = spans[r_first - 1][0], spans[r_last - 1][1]
        if c_last < c_first:  # pure deletion: every piece of the deleted lines is wrong
            out.append((r_start, r_end))
            continue
        c_start, c_end = chosen_spans[c_first - 1][0], chosen_spans[c_last - 1][1]
        r_pieces = [(m.start() + r_start, m.end() + r_start, m.group()) for m in _PIECE.finditer(rejected[r_start:r_end])]
        c_pieces = [m.group() for m in _PIECE.finditer(chosen[c_start:c_end])]
        pieces = seq_diff([p[2] for p in r_pieces], c_pieces)
        changed = sorted(set(pieces.a_only) | set(pieces.anchors))
        if not changed:  # hunk differs only by blank-line content, e.g. "" vs "\n": keep the whole hunk
            out.append((r_start, r_end))
        out.extend((r_pieces[k][0], r_pieces[k][1]) for k in changed)
    return out


def _merge(spans: Sequence[Span]) -> list[Span]:
    merged: list[list[int]] = []
    for start, end in sorted(s for s in spans if s[1] > s[0]):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return [(s, e) for s, e in merged]


def token_mask(offsets: Sequence[Span], spans: Sequence[Span]) -> list[bool]:
    """For each token's character span ``(start, end)``, whether it overlaps any of the sorted ``spans``.

    Tokens with an empty span (special tokens) are never in the region. Offsets need not be sorted. One
    vectorised binary search over the span ends: O(tokens * log spans) without a Python loop per token.

    Args:
        offsets: ``(T,)`` list of token character spans, in text order (a fast tokenizer's offset mapping).
        spans: sorted, non-overlapping character spans from :func:`error_spans`.
    """
    # numpy comes with the train extra; importing it here keeps MASK_MODES importable by the CLI without it.
    import numpy as np

    if not len(offsets):
        return []
    if not spans:
        return [False] * len(offsets)
    tokens = np.asarray(offsets, dtype=np.int64).reshape(-1, 2)
    region = np.asarray(spans, dtype=np.int64).reshape(-1, 2)
    starts, ends = tokens[:, 0], tokens[:, 1]
    # First span ending after the token starts; spans are sorted and disjoint, so it is the only candidate.
    k = np.searchsorted(region[:, 1], starts, side="right")
    found = k < len(region)
    candidate_start = region[np.minimum(k, len(region) - 1), 0]
    return ((ends > starts) & found & (candidate_start < ends)).tolist()


def fix_spans(chosen: str, rejected: str, *, chosen_scope: Optional[LineRanges] = None,
              rejected_scope: Optional[LineRanges] = None) -> list[Span]:
    """Character spans of ``chosen``'s fix lines: its lines outside the line-level LCS with ``rejected``.

    Unlike the rejected side's region, a fix that only deletes lines has no fix lines here (empty list): there
    is nothing on the chosen side that the fix wrote. The scopes restrict both sides to their code lines, as in
    :func:`error_spans`.
    """
    if rejected_scope is not None or chosen_scope is not None:
        c_view, r_view = _Scope(chosen, chosen_scope), _Scope(rejected, rejected_scope)
        return c_view.to_full(fix_spans(c_view.text, r_view.text))
    chosen_lines = split_lines(chosen)
    diff = diff_lines(split_lines(rejected), chosen_lines)
    return _merge(_runs(line_spans(chosen, chosen_lines), diff.chosen_lines))


def region_weights(region: Sequence[bool], outside_weight: float = 0.0) -> list[float] | list[int]:
    """Per-token weights of the rejected side: 1 inside the error region, ``outside_weight`` outside.

    With ``outside_weight == 0`` the result is the plain 0/1 integer mask, so data (and the reference cache key
    that hashes it) is exactly what it was before soft masks existed.
    """
    if not 0.0 <= outside_weight <= 1.0:
        raise ValueError(f"outside_weight must be in [0, 1], got {outside_weight}")
    if outside_weight == 0.0:
        return [int(m) for m in region]
    return [1.0 if m else float(outside_weight) for m in region]
