"""Batched decoding that keeps the batch full: a finished row leaves at once and a waiting prompt takes its place.

transformers' ``generate`` keeps every row of a batch in the forward pass until the longest one ends. The debugging
loop's replies vary a lot in length (the bundled model's median reply is ~120 tokens, while a fifth run into the
256-token limit), so about half of a batch's row-steps went to rows that had already closed their fence. On a CPU
a decoding step costs nearly as much for a few rows as for a full batch (the weights are read once per step
either way), so dropping finished rows alone saved little; refilling their places is what pays.

All rows share one key/value cache, aligned at its right end (for models with full attention in every layer;
with sliding-window layers a batch is refilled only once it is empty): a row's prompt is left-padded (masked) to the
cache's length when it joins, or the cache is left-padded when the newcomer is longer, and columns no row needs
any more are cut off the left. Each row carries its own positions, so padding never shifts them.

Identical prompts (repair sampling draws several candidates from one prompt) are encoded once: the prompt runs
through the model a single time and its cache rows are copied for every candidate before the first token is drawn.

Sampling follows ``generate``'s defaults for a model whose generation config sets nothing: temperature, then
top-k 50, then top-p (nucleus), then one draw per row from a generator seeded by the caller, so a call with the
same seed and the same prompts gives the same replies. ``temperature == 0`` is greedy.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, Callable, Optional

TOP_K = 50  # generate's default when the model's generation config leaves top_k unset


@dataclass(frozen=True)
class Decoding:
    max_new_tokens: int
    temperature: float
    top_p: float
    seed: int


def _stop_tokens(tokenizer: Any, stop: Optional[str]) -> set[int]:
    """Token ids whose text holds a character of ``stop``: only a row whose newest token is one of them can have
    just completed the stop text, so only those rows are decoded to check."""
    if not stop:
        return set()
    chars = set(stop)
    return {i for i in range(len(tokenizer)) if chars & set(tokenizer.decode([i]))}


def _eos_ids(model: Any, tokenizer: Any) -> set[int]:
    configured = model.generation_config.eos_token_id
    ids = set(configured if isinstance(configured, list) else [configured] if configured is not None else [])
    if tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    return ids


class RowDecoder:
    """Decodes batches of rendered prompts with one model and tokenizer; see the module's docstring. A reply ends
    at an end-of-sequence token or at the first token that completes ``stop`` (kept in the reply)."""

    def __init__(self, model: Any, tokenizer: Any, stop: Optional[str]):
        import torch

        self.torch = torch
        self.model = model
        self.tokenizer = tokenizer
        self.stop = stop
        self.stop_ids = _stop_tokens(tokenizer, stop)
        self.eos_ids = _eos_ids(model, tokenizer)
        # transformers 5 renamed the forward's cache argument; the old name still works there, with a warning.
        parameters = inspect.signature(model.forward).parameters
        self.cache_arg = "cache" if "cache" in parameters else "past_key_values"
        # Only the last position's logits are needed after a prompt; the vocabulary projection of every other
        # position would be a fifth of the prefill's work, and its output gigabytes for a full batch.
        self.last_logits_only = {"logits_to_keep": 1} if "logits_to_keep" in parameters else {}

    def _pick(self, logits: Any, decoding: Decoding, generator: Any) -> Any:
        torch = self.torch
        if decoding.temperature == 0:
            return logits.argmax(dim=-1)
        scores = logits.float() / decoding.temperature
        top_k = min(TOP_K, scores.shape[-1])
        kth = torch.topk(scores, top_k, dim=-1).values[:, -1:]
        scores = scores.masked_fill(scores < kth, float("-inf"))
        if decoding.top_p < 1:
            ordered, order = torch.sort(scores, descending=True, dim=-1)
            probs = ordered.softmax(dim=-1)
            # Drop a token once the ones ranked above it already hold top_p of the mass; the first always stays.
            drop_sorted = (probs.cumsum(dim=-1) - probs) > decoding.top_p
            drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
            scores = scores.masked_fill(drop, float("-inf"))
        probs = scores.softmax(dim=-1)
        return torch.multinomial(probs, 1, generator=generator).squeeze(-1)

    def _finished(self, tokens: list[int]) -> bool:
        last = tokens[-1]
        if last in self.eos_ids:
            return True
        if last not in self.stop_ids or self.stop is None:
            return False
        # The stop text may span the last few tokens; a fence is at most three of them.
        tail = self.tokenizer.decode(tokens[-len(self.stop) :], skip_special_tokens=True)
        return self.stop in tail

    def _prefill(self, texts: list[str]) -> "_Rows":
        """Rows for ``texts``, each distinct prompt run through the model once."""
        torch = self.torch
        from transformers import DynamicCache

        distinct = list(dict.fromkeys(texts))
        device = self.model.device
        # The chat template already holds the special tokens; adding them again would double the BOS.
        batch = self.tokenizer(distinct, return_tensors="pt", padding=True, add_special_tokens=False).to(device)
        mask = batch["attention_mask"]
        positions = (mask.cumsum(dim=-1) - 1).clamp(min=0)
        cache = DynamicCache(config=self.model.config)
        out = self.model(input_ids=batch["input_ids"], attention_mask=mask, position_ids=positions,
                         use_cache=True, **{self.cache_arg: cache}, **self.last_logits_only)
        slot = {text: i for i, text in enumerate(distinct)}
        copies = torch.tensor([slot[text] for text in texts], device=device)
        rows = _Rows(cache, self.cache_arg, mask, positions[:, -1], out.logits[:, -1, :])
        rows.select(copies)
        return rows

    def generate(self, texts: list[str], decoding: Decoding, batch_size: int,
                 on_done: Optional[Callable[[int], None]] = None) -> list[str]:
        """The reply to each rendered prompt (special tokens dropped, the stop text kept), at most ``batch_size``
        rows in flight; ``on_done(n)`` is called as n more replies finish."""
        torch = self.torch
        generator = torch.Generator(device=self.model.device).manual_seed(decoding.seed)
        replies: list[list[int]] = [[] for _ in texts]
        waiting = list(range(len(texts)))  # indices not yet admitted, in order
        live: list[int] = []  # the index of the prompt each batch row belongs to
        rows: Optional[_Rows] = None
        # A refill costs a pass over the weights of its own, so wait until a few places are free.
        refill_at = max(1, batch_size // 8)
        with torch.no_grad():
            while live or waiting:
                free = batch_size - len(live)
                if waiting and (not live or (rows is not None and rows.joinable and free >= refill_at)):
                    admitted, waiting = waiting[:free], waiting[free:]
                    joined = self._prefill([texts[i] for i in admitted])
                    rows = joined if rows is None or not live else rows.extend(joined)
                    live += admitted
                assert rows is not None
                chosen = self._pick(rows.logits, decoding, generator)
                keep = []
                for slot, (index, token) in enumerate(zip(live, chosen.tolist())):
                    replies[index].append(token)
                    if len(replies[index]) < decoding.max_new_tokens and not self._finished(replies[index]):
                        keep.append(slot)
                if len(keep) < len(live):
                    if on_done:
                        on_done(len(live) - len(keep))
                    live = [live[slot] for slot in keep]
                    if not keep:
                        continue
                    kept = torch.tensor(keep, device=chosen.device)
                    rows.select(kept)
                    chosen = chosen[kept]
                rows.step(self.model, chosen)
        return self.tokenizer.batch_decode(replies, skip_special_tokens=True)


class _Rows:
    """The rows in flight: their shared cache (right-aligned), attention mask, last positions and next-token
    logits."""

    def __init__(self, cache: Any, cache_arg: str, mask: Any, position: Any, logits: Any):
        from transformers.cache_utils import DynamicLayer

        self.cache, self.cache_arg = cache, cache_arg
        self.mask, self.position, self.logits = mask, position, logits
        # Padding a newcomer into the cache, or cutting columns off it, needs every layer to hold one key per
        # column. A sliding-window layer holds only the window (Mistral, Gemma): there rows still leave when they
        # finish, but new ones join only once the batch is empty, as with generate.
        self.joinable = all(type(layer) is DynamicLayer for layer in cache.layers)

    def select(self, indices: Any) -> None:
        """Keep (or repeat) the rows at ``indices``, then cut the cache columns no kept row attends to."""
        self.cache.batch_select_indices(indices)
        self.mask, self.position, self.logits = self.mask[indices], self.position[indices], self.logits[indices]
        if not self.joinable:
            return
        used = self.mask.any(dim=0).nonzero()
        first = int(used[0]) if len(used) else 0
        if first:
            self.mask = self.mask[:, first:]
            for layer in self.cache.layers:
                layer.keys, layer.values = layer.keys[:, :, first:], layer.values[:, :, first:]

    def extend(self, other: "_Rows") -> "_Rows":
        """These rows followed by ``other``'s, the shorter cache left-padded (masked) to the longer."""
        import torch

        width = max(self.mask.shape[1], other.mask.shape[1])

        def pad(tensor: Any, dim: int) -> Any:
            missing = width - tensor.shape[dim]
            if not missing:
                return tensor
            shape = list(tensor.shape)
            shape[dim] = missing
            return torch.cat([tensor.new_zeros(shape), tensor], dim=dim)

        for mine, theirs in zip(self.cache.layers, other.cache.layers):
            mine.keys = torch.cat([pad(mine.keys, 2), pad(theirs.keys, 2)])
            mine.values = torch.cat([pad(mine.values, 2), pad(theirs.values, 2)])
        self.mask = torch.cat([pad(self.mask, 1), pad(other.mask, 1)])
        self.position = torch.cat([self.position, other.position])
        self.logits = torch.cat([self.logits, other.logits])
        return self

    def step(self, model: Any, tokens: Any) -> None:
        """Feed each row its chosen token; the logits for the next one replace the old."""
        import torch

        self.mask = torch.cat([self.mask, self.mask.new_ones((self.mask.shape[0], 1))], dim=-1)
        self.position = self.position + 1
        out = model(input_ids=tokens[:, None], attention_mask=self.mask, position_ids=self.position[:, None],
                    use_cache=True, **{self.cache_arg: self.cache})
        self.logits = out.logits[:, -1, :]

