"""Mask construction: the trainer's build-once path vs the per-step decode/re-encode approach, on the same pairs.

Ours: ``iterpref.train.data.tokenize_pairs`` with a ``PairTokenizer``, exactly what ``iterpref train`` runs
once before training: render each completion (chat template), tokenize all completions in one batched call
to the Rust tokenizer with offset mappings, diff each pair's lines once, and mark the tokens whose character
spans overlap the error lines.

Baseline, "authors": what the IterPref authors' released trainer does inside every forward pass. Their
``CustomDPOTrainer.concatenated_forward`` (found in the code index next to a ``diff_lib.py``; the index did not
name the repository) loops over the batch, searches each sequence for the token ids of "```python", and calls
``diff_lib.get_line_masks(chosen_ids, rejected_ids, tokenizer)``, which:
  1. decodes both id sequences to text and cuts everything from the EOS token on (``re.sub(eos + '.*$')``);
  2. ``get_precise_line_positions`` for *both* texts: for every line, ``tokenizer.encode(text[:line_start])``
     and ``tokenizer.encode(text[:line_end])`` (lines with their newlines), taking the lengths as the line's
     token range;
  3. ``difflib.ndiff`` over the lines, and sets the token ranges of differing lines in torch bool masks.
The baseline below keeps steps 1-2 as written and makes three substitutions, each making it cheaper, never
dearer, so the ratio is a lower bound: the diff is our exact-LCS ``line_diff`` (the same error lines as ours,
so both sides label the same lines; ``ndiff`` is a slower heuristic without insertion anchors), masks are
Python lists rather than tensors, and there is no fence search (our completions carry no fence). It is
counted once per pair per pass, although TRL's ``compute_ref_log_probs`` runs ``concatenated_forward`` a
second time for the reference model unless reference log-probs are precomputed.

Baseline, "lean": the cheapest per-step variant we could write: decode, diff, and re-encode only the text
prefixes around the rejected error lines. Printed alongside so the gap to a careful per-step implementation
is visible too.

Both baselines run on the trainer's own ids (completion plus end-of-turn tokens). Token labels differ from
ours only at line boundaries (prefix re-encoding gives a newline or newline+indent token to the line before
it; offsets give it to the line whose characters it covers); the script prints how many labels agree.

The issue's target (>= 20x) compares one build with one pass of per-step work: "ratio per pass". The ratio
over an N-epoch run (N passes of per-step work vs one build) is printed for context.

    python benchmarks/bench_masks.py [--pairs 300] [--epochs 3] [--repeat 3]

Times are wall-clock medians of interleaved rounds; CPU-time ratios are printed too.
"""

from __future__ import annotations

import argparse
import inspect
import os
import random
import re
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from iterpref.pairs.diff import line_diff, split_lines  # noqa: E402
from iterpref.records import Pair  # noqa: E402
from iterpref.train.data import PairTokenizer, tokenize_pairs  # noqa: E402


def make_pairs(n: int, seed: int = 0, min_lines: int = 15, max_lines: int = 60) -> list[Pair]:
    """Pairs from min-max line windows of real Python source with 1-3 lines replaced/inserted/deleted;
    about two pairs per prompt, as in refinement data."""
    # Standard-library modules whose source the windows are cut from.
    import argparse as a
    import collections
    import json as j
    import pathlib
    import textwrap

    rng = random.Random(seed)
    lines = []
    for module in (a, collections, j, pathlib, textwrap, random):
        lines += inspect.getsource(module).splitlines()
    pairs = []
    while len(pairs) < n:
        size = rng.randint(min_lines, max_lines)
        start = rng.randrange(0, len(lines) - size)
        chosen = lines[start : start + size]
        rejected = list(chosen)
        for _ in range(rng.randint(1, 3)):
            k = rng.randrange(len(rejected))
            op = rng.choice(["replace", "delete", "insert"])
            if op == "replace":
                rejected[k] = rejected[k].replace("(", "[", 1) + " + 1"
            elif op == "delete" and len(rejected) > 2:
                del rejected[k]
            else:
                rejected.insert(k, "    print('debug')")
        if rejected != chosen:
            task = f"t{len(pairs) // 2}"
            pairs.append(Pair(task, f"Fix the code of task {task}.", "\n".join(chosen) + "\n",
                              "\n".join(rejected) + "\n", [], []))
    return pairs


def ours(tokenizer, pairs: list[Pair]):
    """The trainer's path, from a fresh PairTokenizer (no cached prompts)."""
    kept, dropped = tokenize_pairs(pairs, PairTokenizer(tokenizer, mask="line", max_length=10**6), progress=False)
    assert not dropped, dropped
    return kept


def _strip_eos(tokenizer, text: str) -> str:
    return re.sub(re.escape(tokenizer.eos_token) + ".*$", "", text)


def _line_token_ranges(tokenizer, text: str) -> list[tuple[int, int]]:
    """Token range of every line (newline included) by re-encoding the text before and through it."""
    lines = [line + "\n" for line in text.split("\n")]
    lines[-1] = lines[-1][:-1]
    if not lines[-1]:
        lines.pop()
    ranges, start = [], 0
    for line in lines:
        end = start + len(line)
        ranges.append((len(tokenizer.encode(text[:start], add_special_tokens=False)),
                       len(tokenizer.encode(text[:end], add_special_tokens=False))))
        start = end
    return ranges


def authors_per_step(tokenizer, chosen_ids: list[int], rejected_ids: list[int]) -> list[bool]:
    chosen = _strip_eos(tokenizer, tokenizer.decode(chosen_ids))
    rejected = _strip_eos(tokenizer, tokenizer.decode(rejected_ids))
    chosen_ranges = _line_token_ranges(tokenizer, chosen)
    rejected_ranges = _line_token_ranges(tokenizer, rejected)
    diff = line_diff(rejected, chosen)
    chosen_mask, rejected_mask = [False] * len(chosen_ids), [False] * len(rejected_ids)
    for k in diff.chosen_lines:
        s, e = chosen_ranges[k - 1]
        chosen_mask[s:e] = [True] * (e - s)
    for k in diff.error_lines:
        s, e = rejected_ranges[k - 1]
        rejected_mask[s:e] = [True] * (e - s)
    return rejected_mask[: len(rejected_ids)]


def lean_per_step(tokenizer, chosen_ids: list[int], rejected_ids: list[int]) -> list[bool]:
    rejected = _strip_eos(tokenizer, tokenizer.decode(rejected_ids))
    chosen = _strip_eos(tokenizer, tokenizer.decode(chosen_ids))
    lines = split_lines(rejected)
    mask = [False] * len(rejected_ids)
    for k in line_diff(rejected, chosen).error_lines:
        before = "".join(line + "\n" for line in lines[: k - 1])
        through = before + lines[k - 1]
        start = len(tokenizer.encode(before, add_special_tokens=False)) if before else 0
        end = len(tokenizer.encode(through, add_special_tokens=False))
        for i in range(start, min(end, len(mask))):
            mask[i] = True
    return mask


def interleaved(sides: dict, rounds: int) -> dict:
    """Time each side once per round, rounds interleaved so load from other processes on a shared machine
    falls on all sides alike; returns per side the median wall and CPU seconds and the last result."""
    samples = {name: ([], []) for name in sides}
    results = {}
    for _ in range(rounds):
        for name, fn in sides.items():
            w0, c0 = time.perf_counter(), time.process_time()
            results[name] = fn()
            samples[name][0].append(time.perf_counter() - w0)
            samples[name][1].append(time.process_time() - c0)
    return {name: (statistics.median(w), statistics.median(c), results[name]) for name, (w, c) in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=300)
    parser.add_argument("--epochs", type=int, default=3, help="passes over the data in the simulated run")
    parser.add_argument("--repeat", type=int, default=3, help="interleaved timing rounds; medians are reported")
    args = parser.parse_args()

    from transformers import AutoTokenizer

    from iterpref.bundled import smollm2_dir

    tokenizer = AutoTokenizer.from_pretrained(smollm2_dir())
    pairs = make_pairs(args.pairs)
    # The first build also warms the tokenizer's caches, so every timed call below meets them warm.

    kept = ours(tokenizer, pairs)
    ids = [(p.chosen_ids, p.rejected_ids) for p in kept]
    timing = interleaved({
        "ours": lambda: ours(tokenizer, pairs),
        "authors": lambda: [authors_per_step(tokenizer, c, r) for c, r in ids],
        "lean": lambda: [lean_per_step(tokenizer, c, r) for c, r in ids],
    }, args.repeat)
    (ours_s, ours_cpu, kept), (authors_s, authors_cpu, authors), (lean_s, lean_cpu, lean) = (
        timing["ours"], timing["authors"], timing["lean"])
    built = [[bool(m) for m in p.rejected_mask] for p in kept]
    tokens = sum(len(r) for _, r in ids)
    newline = {i for i in {t for _, r in ids for t in r} if "\n" in tokenizer.decode([i])}
    for name, other in (("authors", authors), ("lean", lean)):
        differ = [r[k] for a, b, (_, r) in zip(built, other, ids) for k, (x, y) in enumerate(zip(a, b)) if x != y]
        boundary = sum(t in newline for t in differ)
        print(f"{name:7s} vs ours: token labels agree on {1 - len(differ) / tokens:.2%}; "
              f"{boundary} of the {len(differ)} differing labels are on tokens holding a newline (line boundary); "
              f"masked tokens {sum(map(sum, other))} vs ours {sum(map(sum, built))}")
    print(f"pairs {len(kept)}, rejected tokens {tokens} (median of {args.repeat} interleaved runs per side)")
    print(f"ours, built once (trainer's tokenize_pairs: render + batch tokenize + diff + masks) {ours_s * 1e3:8.1f} ms")
    print(f"authors' per-step decode/re-encode, one pass over the data                       {authors_s * 1e3:8.1f} ms")
    print(f"lean per-step decode/re-encode (error lines only), one pass                     {lean_s * 1e3:8.1f} ms")
    print(f"ratio per pass vs authors' per-step (the issue's target, >= 20x): {authors_s / ours_s:6.1f}x")
    print(f"ratio per pass vs lean per-step:                                  {lean_s / ours_s:6.1f}x")
    print(f"CPU-time ratios per pass (less sensitive to other load): authors {authors_cpu / ours_cpu:.1f}x, "
          f"lean {lean_cpu / ours_cpu:.1f}x")
    print(f"ratio over a {args.epochs}-epoch run (per-step work every pass, ours once): "
          f"authors {args.epochs * authors_s / ours_s:.1f}x, lean {args.epochs * lean_s / ours_s:.1f}x")


if __name__ == "__main__":
    main()
