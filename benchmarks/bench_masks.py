"""Mask construction: offsets-once (iterpref.masks) vs per-step decode/re-encode, on the same pairs.

Baseline (what a trainer without offset mappings does inside every forward pass): decode the chosen and
rejected token ids back to text, diff the lines, then re-encode the text prefix before and through each error
line to find which token indices the line occupies.
Ours: tokenize each completion once with the fast tokenizer's offset mapping, diff once, and mark tokens whose
character spans overlap the error lines; the mask is then reused by every step.

Both produce a token mask per pair; the script checks they agree on most pairs (they differ only where a BPE
token straddles a line boundary) and prints the time per pass over the data and the ratio.

    python benchmarks/bench_masks.py [--pairs 300] [--epochs 3]
"""

from __future__ import annotations

import argparse
import inspect
import os
import random
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from iterpref.diff import line_diff, split_lines  # noqa: E402
from iterpref.masks import error_spans, token_mask  # noqa: E402


def make_pairs(n: int, seed: int = 0, min_lines: int = 15, max_lines: int = 60) -> list[tuple[str, str]]:
    """(rejected, chosen) pairs: min-max line windows of real Python source with 1-3 lines replaced/inserted/deleted."""
    import argparse as a, collections, json as j, pathlib, textwrap  # noqa: E401 (sources to sample from)

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
            pairs.append(("\n".join(rejected) + "\n", "\n".join(chosen) + "\n"))
    return pairs


def ours(tokenizer, rejected: str, chosen: str) -> list[bool]:
    enc = tokenizer(rejected, add_special_tokens=False, return_offsets_mapping=True)
    return token_mask(enc["offset_mapping"], error_spans(rejected, chosen, "line"))


def per_step(tokenizer, rejected_ids: list[int], chosen_ids: list[int]) -> list[bool]:
    rejected = tokenizer.decode(rejected_ids)
    chosen = tokenizer.decode(chosen_ids)
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=300)
    parser.add_argument("--epochs", type=int, default=3, help="passes over the data in the simulated run")
    args = parser.parse_args()

    from transformers import AutoTokenizer

    from iterpref.bundled import smollm2_dir

    tokenizer = AutoTokenizer.from_pretrained(smollm2_dir())
    pairs = make_pairs(args.pairs)
    ids = [(tokenizer.encode(r, add_special_tokens=False), tokenizer.encode(c, add_special_tokens=False)) for r, c in pairs]

    t0 = time.perf_counter()
    built = [ours(tokenizer, r, c) for r, c in pairs]
    ours_s = time.perf_counter() - t0
    # The tokenization itself is shared: the baseline also needs the ids, produced once before training.
    t0 = time.perf_counter()
    for r, _ in pairs:
        tokenizer(r, add_special_tokens=False, return_offsets_mapping=True)
    tok_s = time.perf_counter() - t0
    mask_s = max(ours_s - tok_s, 1e-9)

    t0 = time.perf_counter()
    baseline = [per_step(tokenizer, r, c) for r, c in ids]
    pass_s = time.perf_counter() - t0

    tokens = sum(len(r) for r, _ in ids)
    same = sum(x == y for a, b in zip(built, baseline) for x, y in zip(a, b)) / tokens
    print(f"pairs {len(pairs)}, rejected tokens {tokens}, token labels agree on {same:.1%} "
          "(differences: tokens straddling a line boundary)")
    print(f"ours, once: tokenize+offsets+diff+mask {ours_s * 1e3:8.1f} ms (of which mask work {mask_s * 1e3:.1f} ms)")
    print(f"per-step decode/re-encode, one pass    {pass_s * 1e3:8.1f} ms")
    run_s = pass_s * args.epochs
    print(f"ratio per pass, including tokenization:  {pass_s / ours_s:6.1f}x")
    print(f"ratio per pass, mask work only:          {pass_s / mask_s:6.1f}x")
    print(f"ratio over a {args.epochs}-epoch run, incl. tokenization: {run_s / ours_s:6.1f}x (target >= 20x)")


if __name__ == "__main__":
    main()
