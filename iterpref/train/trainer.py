"""`transformers.Trainer` wired to the focal loss: one model, reference log-probs read from the batch.

Everything the loss needs arrives in the batch (see :class:`~iterpref.train.data.PairCollator`); the trainer
scores it with one forward pass, calls :func:`~iterpref.train.loss.focal_dpo_loss`, and logs what the loss computed
under TRL's metric names plus ``loss/dpo``, ``loss/nll`` and ``mask/rejected_tokens``. Held-out mechanism
metrics (``heldout/*``) come from :class:`~iterpref.train.heldout.HeldoutProbe`, a callback logging through it.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import torch
from transformers import Trainer, TrainerCallback

from iterpref.records import read_jsonl, to_json_line
from iterpref.train.loss import focal_dpo_loss
from iterpref.train.scoring import score_batch


class FocalDPOTrainer(Trainer):
    def __init__(self, *args, beta: float = 0.1, alpha: float = 1.0, dpo_weight: float = 1.0, **kwargs):
        super().__init__(*args, **kwargs)
        self.beta, self.alpha, self.dpo_weight = beta, alpha, dpo_weight
        # Our loss is a per-micro-batch mean; let the Trainer divide it by the accumulation steps.
        self.model_accepts_loss_kwargs = False
        self._metrics: dict[str, list[float]] = defaultdict(list)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        scores = score_batch(model, inputs)
        out = focal_dpo_loss(
            scores["chosen_logps"], scores["rejected_logps"],
            inputs["ref_chosen_logps"].to(scores["chosen_logps"].dtype),
            inputs["ref_rejected_logps"].to(scores["rejected_logps"].dtype),
            scores["chosen_nll"], beta=self.beta, alpha=self.alpha, dpo_weight=self.dpo_weight,
        )
        self._record(out, scores)
        loss = out.loss.mean()
        return (loss, out) if return_outputs else loss

    @torch.no_grad()
    def _record(self, out, scores) -> None:
        values = {
            "rewards/chosen": out.chosen_rewards,
            "rewards/rejected": out.rejected_rewards,
            "rewards/margins": out.chosen_rewards - out.rejected_rewards,
            "rewards/accuracies": (out.chosen_rewards > out.rejected_rewards).float(),
            "logps/chosen": scores["chosen_logps"].detach(),
            "logps/rejected": scores["rejected_logps"].detach(),
            "loss/dpo": out.dpo_loss.detach(),
            "loss/nll": out.nll_loss.detach(),
            "mask/rejected_tokens": scores["rejected_tokens"],
        }
        for name, value in values.items():
            # Average over every process's examples, not just this one's.
            self._metrics[name].append(self.accelerator.gather_for_metrics(value.float()).mean().item())

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if "loss" in logs and self._metrics:
            logs.update({name: sum(v) / len(v) for name, v in self._metrics.items()})
            self._metrics.clear()
        super().log(logs, start_time)


class MetricsJsonl(TrainerCallback):
    """Appends every log record (with its step, and the format version of ``iterpref.records``) to a JSONL file,
    from the main process only."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def on_train_begin(self, args, state, control, **kwargs):
        # After a resume, drop records past the checkpoint: those steps are about to be run again. A run from
        # step 0 starts the file afresh (records at step 0, such as the held-out start, would otherwise repeat).
        if state.is_world_process_zero and self.path.is_file():
            kept = [record for _, record in read_jsonl(self.path)
                    if state.global_step > 0 and record.get("step", 0) <= state.global_step]
            self.path.write_text("".join(to_json_line(record) for record in kept), encoding="utf-8")

    def on_log(self, args, state, control, logs=None, **kwargs):
        if state.is_world_process_zero and logs:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a", encoding="utf-8") as handle:
                handle.write(to_json_line({"step": state.global_step, "epoch": state.epoch, **logs}))
