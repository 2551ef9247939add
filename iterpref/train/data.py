"""Pairs JSONL -> token ids with error-region masks (built once here), and the collator that batches them.

A pair becomes three id lists sharing one prompt: ``prompt_ids``, ``chosen_ids`` and ``rejected_ids`` (each
completion followed by its end-of-turn tokens), plus ``rejected_mask`` (1 for tokens in the error region).

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

from iterpref.masks import error_spans, token_mask
from iterpref.records import Pair

DROP_REASONS = ("identical", "empty_mask", "too_long", "template_mismatch")


@dataclass
class TokenizedPair:
    task_id: str
    prompt_ids: list[int]
    chosen_ids: list[int]
    rejected_ids: list[int]
    rejected_mask: list[int]

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def resolve_layout(tokenizer, layout: str = "auto") -> str:
    """``auto`` picks ``chat`` when the tokenizer has a chat template, else ``plain``."""
    if layout == "auto":
        return "chat" if getattr(tokenizer, "chat_template", None) else "plain"
    if layout not in ("chat", "plain"):
        raise ValueError(f"unknown layout {layout!r}; choose auto, chat or plain")
    if layout == "chat" and not getattr(tokenizer, "chat_template", None):
        raise ValueError("layout 'chat' needs a tokenizer with a chat template")
    return layout


class PairTokenizer:
    """Turns :class:`Pair` records into :class:`TokenizedPair`; needs a fast tokenizer (offset mappings)."""

    def __init__(self, tokenizer, mask: str = "line", context_lines: int = 0, max_length: int = 1024,
                 layout: str = "auto"):
        if not getattr(tokenizer, "is_fast", False):
            raise ValueError("error-region masks need a fast tokenizer (one that returns offset mappings)")
        self.tokenizer = tokenizer
        self.mask = mask
        self.context_lines = context_lines
        self.max_length = max_length
        self.layout = resolve_layout(tokenizer, layout)
        self._prompt_cache: dict[str, list[int]] = {}

    def prompt_ids(self, prompt: str) -> list[int]:
        if prompt not in self._prompt_cache:
            if self.layout == "chat":
                text = self._render([{"role": "user", "content": prompt}], add_generation_prompt=True)
                ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
            else:
                ids = self.tokenizer(prompt, add_special_tokens=True)["input_ids"]
            self._prompt_cache[prompt] = ids
        return self._prompt_cache[prompt]

    def _render(self, messages, add_generation_prompt=False) -> str:
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)

    def completion(self, prompt: str, completion: str) -> Optional[tuple[list[int], list[tuple[int, int]]]]:
        """Ids and character offsets of ``completion`` plus its end-of-turn; None if the template alters it."""
        if self.layout == "chat":
            head = self._render([{"role": "user", "content": prompt}], add_generation_prompt=True)
            full = self._render([{"role": "user", "content": prompt}, {"role": "assistant", "content": completion}])
            if not full.startswith(head) or not full[len(head):].startswith(completion):
                return None
            text = full[len(head):]
            enc = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
            return list(enc["input_ids"]), [tuple(o) for o in enc["offset_mapping"]]
        enc = self.tokenizer(completion, add_special_tokens=False, return_offsets_mapping=True)
        ids, offsets = list(enc["input_ids"]), [tuple(o) for o in enc["offset_mapping"]]
        if self.tokenizer.eos_token_id is not None:
            ids.append(self.tokenizer.eos_token_id)
            offsets.append((len(completion), len(completion)))
        return ids, offsets

    def __call__(self, pair: Pair) -> TokenizedPair | str:
        """Tokenize one pair; returns a drop reason from :data:`DROP_REASONS` instead when it is unusable."""
        if pair.chosen == pair.rejected:
            return "identical"
        prompt_ids = self.prompt_ids(pair.prompt)
        chosen = self.completion(pair.prompt, pair.chosen)
        rejected = self.completion(pair.prompt, pair.rejected)
        if chosen is None or rejected is None:
            return "template_mismatch"
        if len(prompt_ids) + max(len(chosen[0]), len(rejected[0])) > self.max_length:
            return "too_long"
        rejected_ids, offsets = rejected
        if self.mask == "none":
            mask = [1] * len(rejected_ids)  # vanilla DPO: every completion token, end-of-turn included
        else:
            spans = error_spans(pair.rejected, pair.chosen, self.mask, self.context_lines)
            mask = [int(m) for m in token_mask(offsets, spans)]
        if not any(mask):
            return "empty_mask"
        return TokenizedPair(pair.task_id, prompt_ids, chosen[0], rejected_ids, mask)


def tokenize_pairs(pairs: Iterable[Pair], pair_tokenizer: PairTokenizer, progress: bool = True
                   ) -> tuple[list[TokenizedPair], Counter]:
    """Tokenize every pair; returns the usable ones and a Counter of drop reasons."""
    kept, dropped = [], Counter()
    pairs = list(pairs)
    for pair in tqdm(pairs, desc="tokenize pairs", unit="pair", disable=not progress):
        out = pair_tokenizer(pair)
        if isinstance(out, str):
            dropped[out] += 1
        else:
            kept.append(out)
    return kept, dropped


@dataclass
class PairCollator:
    """Pads a list of tokenized pairs into one ``[chosen; rejected]`` batch along dim 0.

    Returns ``input_ids`` and ``attention_mask`` of shape ``(2B, T)`` and ``loss_mask`` ``(2B, T)``, which marks
    the tokens whose log-probs are scored (every chosen completion token; the error region of the rejected
    one). Reference log-prob sums, when
    the features carry them, pass through as ``ref_chosen_logps`` and ``ref_rejected_logps`` ``(B,)``.
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
        loss_mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, (row, mask) in enumerate(zip(rows, masks)):
            input_ids[i, : len(row)] = torch.tensor(row)
            attention_mask[i, : len(row)] = 1
            loss_mask[i, : len(row)] = torch.tensor(mask)
        batch = {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "loss_mask": loss_mask,
        }
        if all("ref_chosen_logps" in f for f in features):
            batch["ref_chosen_logps"] = torch.tensor([float(f["ref_chosen_logps"]) for f in features])
            batch["ref_rejected_logps"] = torch.tensor([float(f["ref_rejected_logps"]) for f in features])
        return batch
