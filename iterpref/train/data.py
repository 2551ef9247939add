"""Pairs JSONL -> token ids with error-region masks (built once here), and the collator that batches them.

A pair becomes three id lists sharing one prompt: ``prompt_ids``, ``chosen_ids`` and ``rejected_ids`` (each
completion followed by its end-of-turn tokens), plus ``rejected_mask`` (1 for tokens in the error region; with
a soft mask, ``w`` for the rejected tokens outside it). Held-out pairs also get ``chosen_fix_mask`` (1 for the
chosen tokens on the fix lines), which the mechanism metrics of :mod:`iterpref.train.heldout` need.

Two layouts, chosen per tokenizer:

* ``chat``  -- the tokenizer's chat template renders a user turn (the prompt) and an assistant turn (the
  completion); the completion's end-of-turn text is scored as part of it;
* ``plain`` -- prompt then completion, concatenated; the tokenizer's EOS token ends the completion.

Prompt and completion are tokenized separately, so both completions of a pair see identical prompt ids and
no token straddles the boundary. Pairs are dropped, never truncated: too long, identical, an empty mask, or a
chat template that rewrites the completion; the counts are reported.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any, Iterable, Optional

import torch
from tqdm.auto import tqdm

from iterpref.errors import ConfigError, ModelError
from iterpref.records import Pair
from iterpref.train.masks import error_spans, fix_spans, region_weights, token_mask

DROP_REASONS = ("identical", "empty_mask", "too_long", "template_mismatch")


@dataclass
class TokenizedPair:
    task_id: str
    prompt_ids: list[int]
    chosen_ids: list[int]
    rejected_ids: list[int]
    rejected_mask: list[int] | list[float]
    chosen_fix_mask: Optional[list[int]] = None

    def as_dict(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        if out["chosen_fix_mask"] is None:
            del out["chosen_fix_mask"]
        return out


def resolve_layout(tokenizer, layout: str = "auto") -> str:
    """``auto`` picks ``chat`` when the tokenizer has a chat template, else ``plain``."""
    if layout == "auto":
        return "chat" if getattr(tokenizer, "chat_template", None) else "plain"
    if layout not in ("chat", "plain"):
        raise ConfigError(f"unknown layout {layout!r}; choose auto, chat or plain")
    if layout == "chat" and not getattr(tokenizer, "chat_template", None):
        raise ConfigError("layout 'chat' needs a tokenizer with a chat template")
    return layout


class PairTokenizer:
    """Turns :class:`Pair` records into :class:`TokenizedPair`; needs a fast tokenizer (offset mappings).

    :meth:`batch` is the fast path: it renders each completion's text in Python, then tokenizes all of them in
    one call to the Rust tokenizer (ids and character offsets together), and builds every mask from those
    offsets. Calling the object on one pair is the same computation on a batch of one.
    """

    def __init__(self, tokenizer, mask: str = "line", context_lines: int = 0, max_length: int = 1024,
                 layout: str = "auto", outside_weight: float = 0.0, fix_mask: bool = False):
        if not getattr(tokenizer, "is_fast", False):
            raise ModelError("error-region masks need a fast tokenizer (one that returns offset mappings)")
        if not 0.0 <= outside_weight <= 1.0:
            raise ConfigError(f"outside_weight must be in [0, 1], got {outside_weight}")
        self.tokenizer = tokenizer
        self.mask = mask
        self.context_lines = context_lines
        self.outside_weight = outside_weight
        self.fix_mask = fix_mask
        # line+trace pairs that carried no trace record and were masked as `line`; the summary reports it.
        self.trace_fallbacks = 0
        self.max_length = max_length
        self.layout = resolve_layout(tokenizer, layout)
        self._prompt_cache: dict[str, list[int]] = {}
        self._head_cache: dict[str, str] = {}  # chat layout: rendered user turn + assistant header, per prompt

    def _render(self, messages, add_generation_prompt=False) -> str:
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)

    def _head(self, prompt: str) -> str:
        if prompt not in self._head_cache:
            self._head_cache[prompt] = self._render([{"role": "user", "content": prompt}], add_generation_prompt=True)
        return self._head_cache[prompt]

    def _encode(self, texts: list[str], add_special_tokens: bool = False):
        """One batched call into the Rust tokenizer: ids and offsets for every text."""
        if not texts:
            return [], []
        enc = self.tokenizer(texts, add_special_tokens=add_special_tokens, return_offsets_mapping=True,
                             return_attention_mask=False)
        return enc["input_ids"], enc["offset_mapping"]

    def _cache_prompts(self, prompts: Iterable[str]) -> None:
        new = list(dict.fromkeys(p for p in prompts if p not in self._prompt_cache))
        if self.layout == "chat":
            ids, _ = self._encode([self._head(p) for p in new], add_special_tokens=False)
        else:
            ids, _ = self._encode(new, add_special_tokens=True)
        self._prompt_cache.update(zip(new, ids))

    def completion_text(self, prompt: str, completion: str) -> Optional[str]:
        """The text scored for ``completion``: itself plus the end-of-turn text in the chat layout (the EOS id
        is appended after tokenization in the plain layout); None if the chat template alters the completion."""
        if self.layout != "chat":
            return completion
        head = self._head(prompt)
        full = self._render([{"role": "user", "content": prompt}, {"role": "assistant", "content": completion}])
        if not full.startswith(head) or not full[len(head):].startswith(completion):
            return None
        return full[len(head):]

    def _finish(self, completion: str, ids, offsets) -> tuple[list[int], list[tuple[int, int]]]:
        ids, offsets = list(ids), list(offsets)  # the tokenizer already gives (start, end) tuples
        if self.layout != "chat" and self.tokenizer.eos_token_id is not None:
            ids.append(self.tokenizer.eos_token_id)
            offsets.append((len(completion), len(completion)))
        return ids, offsets

    def batch(self, pairs: list[Pair]) -> list[TokenizedPair | str]:
        """Tokenize many pairs at once; each result is a :class:`TokenizedPair` or a drop reason from
        :data:`DROP_REASONS`."""
        results: list[Optional[TokenizedPair | str]] = [None] * len(pairs)
        texts: list[str] = []
        todo: list[int] = []  # pairs whose chosen and rejected texts are texts[2k], texts[2k + 1]
        for index, pair in enumerate(pairs):
            if pair.chosen == pair.rejected:
                results[index] = "identical"
                continue
            chosen = self.completion_text(pair.prompt, pair.chosen)
            rejected = self.completion_text(pair.prompt, pair.rejected)
            if chosen is None or rejected is None:
                results[index] = "template_mismatch"
                continue
            todo.append(index)
            texts += [chosen, rejected]
        self._cache_prompts(pairs[i].prompt for i in todo)
        all_ids, all_offsets = self._encode(texts)
        for k, index in enumerate(todo):
            pair = pairs[index]
            chosen_ids, chosen_offsets = self._finish(pair.chosen, all_ids[2 * k], all_offsets[2 * k])
            rejected_ids, offsets = self._finish(pair.rejected, all_ids[2 * k + 1], all_offsets[2 * k + 1])
            results[index] = self._assemble(pair, chosen_ids, rejected_ids, offsets, chosen_offsets)
        return results

    def _assemble(self, pair: Pair, chosen_ids: list[int], rejected_ids: list[int],
                  offsets: list[tuple[int, int]], chosen_offsets: list[tuple[int, int]]) -> TokenizedPair | str:
        prompt_ids = self._prompt_cache[pair.prompt]
        if len(prompt_ids) + max(len(chosen_ids), len(rejected_ids)) > self.max_length:
            return "too_long"
        if self.mask == "none":
            region = [True] * len(rejected_ids)  # vanilla DPO: every completion token, end-of-turn included
        else:
            if self.mask == "line+trace" and pair.rejected_trace_lines is None:
                self.trace_fallbacks += 1
            spans = error_spans(pair.rejected, pair.chosen, self.mask, self.context_lines, pair.rejected_trace_lines,
                                rejected_scope=pair.rejected_code_ranges, chosen_scope=pair.chosen_code_ranges)
            region = token_mask(offsets, spans)
        if not any(region):  # judged on the region itself: a soft weight outside it does not make it non-empty
            return "empty_mask"
        fix = [int(m) for m in token_mask(chosen_offsets, fix_spans(
            pair.chosen, pair.rejected, chosen_scope=pair.chosen_code_ranges,
            rejected_scope=pair.rejected_code_ranges))] if self.fix_mask else None
        return TokenizedPair(pair.task_id, prompt_ids, chosen_ids, rejected_ids,
                             region_weights(region, self.outside_weight), fix)

    def __call__(self, pair: Pair) -> TokenizedPair | str:
        """Tokenize one pair; returns a drop reason from :data:`DROP_REASONS` instead when it is unusable."""
        return self.batch([pair])[0]


def tokenize_pairs(pairs: Iterable[Pair], pair_tokenizer: PairTokenizer, progress: bool = True,
                   chunk_size: int = 512) -> tuple[list[TokenizedPair], Counter]:
    """Tokenize every pair, ``chunk_size`` pairs per tokenizer call; returns the usable ones and a Counter of
    drop reasons."""
    kept, dropped = [], Counter()
    pairs = list(pairs)
    with tqdm(total=len(pairs), desc="tokenize pairs", unit="pair", disable=not progress) as bar:
        for first in range(0, len(pairs), chunk_size):
            chunk = pairs[first : first + chunk_size]
            for out in pair_tokenizer.batch(chunk):
                if isinstance(out, str):
                    dropped[out] += 1
                else:
                    kept.append(out)
            bar.update(len(chunk))
    return kept, dropped


@dataclass
class PairCollator:
    """Pads a list of tokenized pairs into one ``[chosen; rejected]`` batch along dim 0.

    Returns ``input_ids`` and ``attention_mask`` of shape ``(2B, T)`` and ``loss_mask`` ``(2B, T)``, which marks
    the tokens whose log-probs are scored and their weights (every chosen completion token at 1; the rejected
    error region at 1 and, with a soft mask, the rest of the rejected completion at ``w``). Reference log-prob
    sums, when the features carry them, pass through as ``ref_chosen_logps`` and ``ref_rejected_logps`` ``(B,)``.
    Held-out features with ``chosen_fix_mask`` add ``fix_mask`` ``(2B, T)``: the chosen fix lines in the chosen
    rows, the rejected error region (weights of 1 only) in the rejected rows.
    """

    pad_token_id: int
    pad_to_multiple_of: Optional[int] = None

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        rows, masks = [], []
        for f in features:
            rows.append(f["prompt_ids"] + f["chosen_ids"])
            masks.append([0] * len(f["prompt_ids"]) + [1] * len(f["chosen_ids"]))
        for f in features:
            rows.append(f["prompt_ids"] + f["rejected_ids"])
            masks.append([0] * len(f["prompt_ids"]) + list(f["rejected_mask"]))
        width = max(len(r) for r in rows)
        if self.pad_to_multiple_of:
            width = -(-width // self.pad_to_multiple_of) * self.pad_to_multiple_of
        input_ids = torch.full((len(rows), width), self.pad_token_id, dtype=torch.long)
        attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
        # Float, since a soft mask weights tokens; 0/1 masks give exactly the sums they always gave.
        loss_mask = torch.zeros((len(rows), width), dtype=torch.float32)
        for i, (row, mask) in enumerate(zip(rows, masks)):
            input_ids[i, : len(row)] = torch.tensor(row)
            attention_mask[i, : len(row)] = 1
            loss_mask[i, : len(row)] = torch.tensor(mask, dtype=torch.float32)
        batch = {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "loss_mask": loss_mask,
        }
        if all(f.get("chosen_fix_mask") is not None for f in features):
            fix_mask = torch.zeros((len(rows), width), dtype=torch.float32)
            fix_rows = [f["chosen_fix_mask"] for f in features] + [
                [1 if m == 1 else 0 for m in f["rejected_mask"]] for f in features]
            for i, (f_row, row) in enumerate(zip(fix_rows, rows)):
                start = len(row) - len(f_row)  # after the prompt
                fix_mask[i, start : len(row)] = torch.tensor(f_row, dtype=torch.float32)
            batch["fix_mask"] = fix_mask
        if all("ref_chosen_logps" in f for f in features):
            batch["ref_chosen_logps"] = torch.tensor([float(f["ref_chosen_logps"]) for f in features])
            batch["ref_rejected_logps"] = torch.tensor([float(f["ref_rejected_logps"]) for f in features])
        return batch
