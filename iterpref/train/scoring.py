"""One forward pass over a ``[chosen; rejected]`` batch -> the masked log-prob sums the focal loss needs, and the
sums the held-out mechanism metrics need (the same pass, more masks)."""

from __future__ import annotations

import torch

from iterpref.train.loss import masked_sum, token_logps


def _label_logps(model, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """``(2B, T-1)`` log-probability of each next token; row t of the logits predicts token t + 1."""
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    return token_logps(logits[:, :-1], batch["input_ids"][:, 1:])


def score_batch(model, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Run ``model`` once on the ``(2B, T)`` batch from :class:`~iterpref.train.data.PairCollator`.

    Returns ``(B,)`` tensors: ``chosen_logps`` (sum over chosen completion tokens), ``rejected_logps`` (sum over
    the rejected error region, each token times its mask weight), ``chosen_nll`` (mean NLL per chosen token) and
    ``rejected_tokens`` (mask size: the sum of the weights).
    """
    logps = _label_logps(model, batch)
    mask = batch["loss_mask"][:, 1:]
    chosen_logps, rejected_logps = masked_sum(logps, mask).chunk(2)
    chosen_counts, rejected_counts = mask.sum(-1).chunk(2)
    return {
        "chosen_logps": chosen_logps,
        "rejected_logps": rejected_logps,
        "chosen_nll": -chosen_logps / chosen_counts.clamp(min=1),
        "rejected_tokens": rejected_counts.float(),
    }


def score_heldout_batch(model, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The sums behind the mechanism metrics, from one forward pass over a held-out batch (which carries
    ``fix_mask``, see :class:`~iterpref.train.data.PairCollator`). Returns ``(B,)`` tensors:

    ``chosen_logps`` / ``chosen_tokens``   every chosen completion token
    ``shared_logps`` / ``shared_tokens``   chosen tokens outside the fix lines (what chosen shares with rejected)
    ``fix_logps``                          chosen tokens on the fix lines (0 when the fix only deletes lines)
    ``region_logps``                       rejected tokens in the (``line``) error region
    """
    logps = _label_logps(model, batch)
    mask, fix = batch["loss_mask"][:, 1:], batch["fix_mask"][:, 1:]
    chosen_mask, _ = mask.chunk(2)
    chosen_fix, region = fix.chunk(2)
    chosen_logps, _ = logps.chunk(2)
    _, rejected_all = logps.chunk(2)
    shared = chosen_mask - chosen_fix
    return {
        "chosen_logps": masked_sum(chosen_logps, chosen_mask),
        "chosen_tokens": chosen_mask.sum(-1),
        "shared_logps": masked_sum(chosen_logps, shared),
        "shared_tokens": shared.sum(-1),
        "fix_logps": masked_sum(chosen_logps, chosen_fix),
        "region_logps": masked_sum(rejected_all, region),
    }
