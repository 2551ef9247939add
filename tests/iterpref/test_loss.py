import math

import pytest
import torch
import torch.nn.functional as F

from iterpref.train.loss import FocalDPOLoss, focal_dpo_loss, masked_sum, token_logps


def test_token_logps_matches_log_softmax():
    torch.manual_seed(0)
    logits = torch.randn(3, 5, 11)
    labels = torch.randint(0, 11, (3, 5))
    expected = torch.log_softmax(logits, -1).gather(-1, labels.unsqueeze(-1)).squeeze(-1)
    assert torch.allclose(token_logps(logits, labels), expected, atol=1e-6)


def test_rewards_and_formula():
    pc, pr = torch.tensor([-10.0, -3.0]), torch.tensor([-4.0, -2.0])
    rc, rr = torch.tensor([-11.0, -3.5]), torch.tensor([-3.0, -2.5])
    nll = torch.tensor([2.0, 0.5])
    out = focal_dpo_loss(pc, pr, rc, rr, nll, beta=0.5, alpha=0.3)
    assert torch.allclose(out.chosen_rewards, torch.tensor([0.5, 0.25]))
    assert torch.allclose(out.rejected_rewards, torch.tensor([-0.5, 0.25]))
    margin = torch.tensor([1.0, 0.0])
    assert torch.allclose(out.dpo_loss, -F.logsigmoid(margin))
    assert torch.allclose(out.loss, -F.logsigmoid(margin) + 0.3 * nll)
    assert math.isclose(out.dpo_loss[1].item(), math.log(2), rel_tol=1e-6)
    # dpo_weight 0 leaves supervised fine-tuning on chosen.
    sft = focal_dpo_loss(pc, pr, rc, rr, nll, beta=0.5, alpha=1.0, dpo_weight=0.0)
    assert torch.equal(sft.loss, nll)
    mean, per = FocalDPOLoss(beta=0.5, alpha=0.3)(pc, pr, rc, rr, nll)
    assert torch.allclose(mean, out.loss.mean()) and torch.equal(per.loss, out.loss)


def _loss_from_logits(logits, labels, chosen_mask, rejected_mask, ref, beta, alpha):
    logps = token_logps(logits, labels)
    c_lp, r_lp = logps.chunk(2)
    chosen = masked_sum(c_lp, chosen_mask)
    rejected = masked_sum(r_lp, rejected_mask)
    nll = -chosen / chosen_mask.sum(-1)
    return focal_dpo_loss(chosen, rejected, ref[:, 0], ref[:, 1], nll, beta=beta, alpha=alpha)


def test_gradient_is_exactly_zero_for_rejected_tokens_outside_the_mask():
    torch.manual_seed(1)
    B, T, V = 2, 7, 13
    logits = torch.randn(2 * B, T, V, requires_grad=True)
    labels = torch.randint(0, V, (2 * B, T))
    chosen_mask = torch.ones(B, T)
    rejected_mask = torch.zeros(B, T)
    rejected_mask[0, 2:4] = 1
    rejected_mask[1, 5] = 1
    out = _loss_from_logits(logits, labels, chosen_mask, rejected_mask, torch.randn(B, 2), beta=0.1, alpha=1.0)
    out.loss.sum().backward()
    grad_rejected = logits.grad[B:]
    outside = rejected_mask == 0
    assert torch.count_nonzero(grad_rejected[outside]) == 0
    assert (grad_rejected[~outside].abs().sum(-1) > 0).all()
    assert (logits.grad[:B].abs().sum(-1) > 0).all()


@pytest.mark.parametrize("beta", [0.1, 0.5])
def test_mask_none_alpha_zero_is_textbook_dpo(beta):
    torch.manual_seed(2)
    B, T, V = 3, 6, 17
    policy = torch.randn(2 * B, T, V)
    ref_logits = torch.randn(2 * B, T, V)
    labels = torch.randint(0, V, (2 * B, T))
    lengths = torch.tensor([6, 4, 5, 3, 6, 2])  # completion lengths per row, right padding after
    full = (torch.arange(T)[None, :] < lengths[:, None]).float()
    # Textbook DPO: sequence log-likelihoods under policy and reference, full completions on both sides.
    def seq(lg):
        return (torch.log_softmax(lg, -1).gather(-1, labels.unsqueeze(-1)).squeeze(-1) * full).sum(-1)

    pol, ref = seq(policy), seq(ref_logits)
    textbook = -F.logsigmoid(beta * ((pol[:B] - ref[:B]) - (pol[B:] - ref[B:])))
    ref_sums = torch.stack([ref[:B], ref[B:]], dim=1)
    out = _loss_from_logits(policy, labels, full[:B], full[B:], ref_sums, beta=beta, alpha=0.0)
    assert torch.allclose(out.loss, textbook, atol=1e-6)
