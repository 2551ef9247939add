"""The focal preference loss of IterPref (arXiv 2503.02783) and the masked log-prob sums it consumes.

With per-token log-ratios ``d_t = log pi_theta(y_t | x, y_<t) - log pi_ref(y_t | x, y_<t)``, summed without
length normalisation::

    s_chosen   = sum_t d_t                 over every completion token of the chosen answer (EOS included)
    s_rejected = sum_t m_t * d_t           over the rejected tokens inside the error region (m_t = 1)
    loss       = -log sigmoid(beta * (s_chosen - s_rejected)) + alpha * NLL(chosen)

``NLL(chosen)`` is the policy's negative log-likelihood of the chosen completion averaged over its tokens.
``alpha = 0`` is the paper's plain variant; with a mask covering the whole rejected completion and
``alpha = 0`` the loss is textbook sigmoid DPO, and with ``alpha > 0`` it is RPO.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


def token_logps(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Log-probability of each label under ``logits``, without materialising a full log-softmax.

    Args:
        logits: ``(B, T, V)`` scores predicting position ``t`` (already shifted so row t predicts labels[t]).
        labels: ``(B, T)`` token ids; entries outside the loss mask may hold any valid id.

    Returns:
        ``(B, T)`` float32 log-probabilities.
    """
    logits = logits.float()
    picked = torch.gather(logits, -1, labels.unsqueeze(-1)).squeeze(-1)
    return picked - torch.logsumexp(logits, dim=-1)


def masked_sum(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``(B, T)`` values and ``(B, T)`` 0/1 mask -> ``(B,)`` sums over masked positions."""
    return (values * mask.to(values.dtype)).sum(-1)


@dataclass
class FocalDPOOutput:
    """Per-example tensors, each ``(B,)``; ``loss`` is what the optimiser sees, the rest is for logging."""

    loss: torch.Tensor
    dpo_loss: torch.Tensor
    nll_loss: torch.Tensor
    chosen_rewards: torch.Tensor  # beta * s_chosen
    rejected_rewards: torch.Tensor  # beta * s_rejected


def focal_dpo_loss(
    policy_chosen_logps: torch.Tensor,
    policy_rejected_logps: torch.Tensor,
    ref_chosen_logps: torch.Tensor,
    ref_rejected_logps: torch.Tensor,
    chosen_nll: torch.Tensor,
    beta: float = 0.1,
    alpha: float = 1.0,
    dpo_weight: float = 1.0,
) -> FocalDPOOutput:
    """Focal DPO loss per example.

    Args:
        policy_chosen_logps: ``(B,)`` policy log-prob sum over all chosen completion tokens.
        policy_rejected_logps: ``(B,)`` policy log-prob sum over the masked (error-region) rejected tokens.
        ref_chosen_logps: ``(B,)`` the same sum under the frozen reference model.
        ref_rejected_logps: ``(B,)`` the same masked sum under the reference model.
        chosen_nll: ``(B,)`` policy NLL of the chosen completion, averaged over its tokens.
        beta: inverse temperature of the preference term.
        alpha: weight of the NLL term (0: plain focal DPO).
        dpo_weight: weight of the preference term (0 with alpha 1: supervised fine-tuning on chosen only).

    Returns:
        :class:`FocalDPOOutput` with per-example losses and the implicit rewards ``beta * s``.
    """
    chosen_rewards = beta * (policy_chosen_logps - ref_chosen_logps)
    rejected_rewards = beta * (policy_rejected_logps - ref_rejected_logps)
    dpo_loss = -F.logsigmoid(chosen_rewards - rejected_rewards)
    loss = dpo_weight * dpo_loss + alpha * chosen_nll
    return FocalDPOOutput(
        loss=loss,
        dpo_loss=dpo_loss,
        nll_loss=chosen_nll,
        chosen_rewards=chosen_rewards.detach(),
        rejected_rewards=rejected_rewards.detach(),
    )


class FocalDPOLoss(torch.nn.Module):
    """Module form of :func:`focal_dpo_loss` holding ``beta``, ``alpha`` and ``dpo_weight``; returns the mean loss
    and the per-example :class:`FocalDPOOutput`."""

    def __init__(self, beta: float = 0.1, alpha: float = 1.0, dpo_weight: float = 1.0):
        super().__init__()
        self.beta, self.alpha, self.dpo_weight = beta, alpha, dpo_weight

    def forward(self, policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps, chosen_nll):
        out = focal_dpo_loss(
            policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps, chosen_nll,
            beta=self.beta, alpha=self.alpha, dpo_weight=self.dpo_weight,
        )
        return out.loss.mean(), out
