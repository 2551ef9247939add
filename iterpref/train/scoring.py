"""One forward pass over a ``[chosen; rejected]`` batch -> the masked log-prob sums the focal loss needs."""

from __future__ import annotations

import torch

from iterpref.train.loss import masked_sum, token_logps


def score_batch(model, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Run ``model`` once on the ``(2B, T)`` batch from :class:`~iterpref.train.data.PairCollator`.

    Returns ``(B,)`` tensors: ``chosen_logps`` (sum over chosen completion tokens), ``rejected_logps`` (sum over
    the rejected error region), ``chosen_nll`` (mean NLL per chosen token) and ``rejected_tokens`` (mask size).
    """
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    # Row t of the logits predicts token t + 1.
    logps = token_logps(logits[:, :-1], batch["input_ids"][:, 1:])
    mask = batch["loss_mask"][:, 1:]
    chosen_logps, rejected_logps = masked_sum(logps, mask).chunk(2)
    chosen_counts, rejected_counts = mask.sum(-1).chunk(2)
    return {
        "chosen_logps": chosen_logps,
        "rejected_logps": rejected_logps,
        "chosen_nll": -chosen_logps / chosen_counts.clamp(min=1),
        "rejected_tokens": rejected_counts.float(),
    }
