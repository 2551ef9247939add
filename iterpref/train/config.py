"""Training configuration: one dataclass, each field with a one-line help that the CLI reuses."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from iterpref.errors import ConfigError
from iterpref.train.masks import MASK_MODES

# loss name -> (mask mode, alpha, weight of the preference term)
LOSS_PRESETS = {
    "focal": ("line", 1.0, 1.0),  # IterPref: error-region DPO + NLL on chosen
    "dpo": ("none", 0.0, 1.0),  # vanilla sigmoid DPO
    "rpo": ("none", 1.0, 1.0),  # vanilla DPO + NLL on chosen
    "sft": ("none", 1.0, 0.0),  # NLL on chosen only
}


def _f(default, help: str, **kw):
    return field(default=default, metadata={"help": help}, **kw)


@dataclass
class TrainConfig:
    pairs: str = _f("", "pairs JSONL written by `iterpref pairs` (fields of iterpref.records.Pair)")
    output_dir: str = _f("runs/train", "folder for checkpoints, the final model, metrics.jsonl and curves.png")
    model: Optional[str] = _f(None, "Hugging Face model folder to start from (default: bundled SmolLM2-135M-Instruct)")
    loss: str = _f("focal", f"loss preset: {', '.join(LOSS_PRESETS)} (sets mask and alpha unless given)")
    mask: Optional[str] = _f(None, f"error-region mask on the rejected side: {', '.join(MASK_MODES)}")
    alpha: Optional[float] = _f(None, "weight of the NLL term on chosen (0: plain focal DPO)")
    beta: float = _f(0.1, "inverse temperature of the preference term")
    outside_weight: float = _f(0.0, "soft mask: weight in [0, 1] of rejected tokens outside the error region "
                               "(0: the paper's focal loss; 1 with alpha 0: vanilla DPO)")
    context_lines: int = _f(3, "context lines either side of the error lines, mask 'augmented' only")
    layout: str = _f("auto", "prompt layout: auto (chat template if the tokenizer has one), chat or plain")
    max_length: int = _f(1024, "longest prompt+completion in tokens; longer pairs are dropped and counted")
    epochs: float = _f(1.0, "passes over the pairs (ignored when max_steps > 0)")
    max_steps: int = _f(-1, "optimiser steps to run; -1 runs `epochs` epochs")
    batch_size: int = _f(2, "pairs per device per micro-batch (each pair is 2 sequences)")
    grad_accum: int = _f(1, "micro-batches accumulated per optimiser step")
    lr: float = _f(1e-6, "peak learning rate (AdamW, linear decay after warm-up)")
    warmup_ratio: float = _f(0.1, "fraction of steps with linear learning-rate warm-up")
    weight_decay: float = _f(0.0, "AdamW weight decay")
    max_grad_norm: float = _f(1.0, "gradient clipping norm")
    bf16: str = _f("auto", "bfloat16 mixed precision: auto (on when a CUDA GPU supports it), yes (GPU or CPU) or no")
    gradient_checkpointing: bool = _f(False, "recompute activations in backward to save memory")
    save_steps: int = _f(200, "save a checkpoint every N optimiser steps")
    save_total_limit: Optional[int] = _f(2, "keep at most this many checkpoints")
    logging_steps: int = _f(1, "log metrics every N optimiser steps")
    resume: Optional[str] = _f(None, "checkpoint folder to resume from, or 'latest' for the newest in output_dir")
    seed: int = _f(42, "random seed for initialisation-free parts: data order, dropout")
    ref_cache_dir: Optional[str] = _f(None, "where reference log-probs are cached (default: <output_dir>/ref_cache)")
    ref_batch_size: int = _f(4, "pairs per batch while computing reference log-probs")
    heldout_pairs: str = _f("", "pairs JSONL of tasks never trained on: mechanism metrics (heldout/*) on them")
    eval_tasks: str = _f("", "tasks JSONL you will evaluate on: warn when a training prompt contains one of them")
    heldout_steps: int = _f(10, "measure the held-out pairs every N optimiser steps (and at the end)")
    save_model: bool = _f(True, "write the final model and tokenizer to <output_dir>/final")
    progress: bool = _f(True, "show progress bars")

    def resolved(self) -> tuple[str, float, float]:
        """(mask mode, alpha, preference weight) after applying the loss preset and explicit overrides."""
        if self.loss not in LOSS_PRESETS:
            raise ConfigError(f"unknown loss {self.loss!r}; choose one of {', '.join(LOSS_PRESETS)}")
        mask, alpha, weight = LOSS_PRESETS[self.loss]
        mask = self.mask if self.mask is not None else mask
        alpha = self.alpha if self.alpha is not None else alpha
        if mask not in MASK_MODES:
            raise ConfigError(f"unknown mask {mask!r}; choose one of {', '.join(MASK_MODES)}")
        return mask, alpha, weight

    def validate(self) -> None:
        """Raise ConfigError with a message naming the field for any value out of range."""
        self.resolved()
        checks = [
            ("beta", self.beta > 0), ("max_length", self.max_length > 1), ("batch_size", self.batch_size >= 1),
            ("grad_accum", self.grad_accum >= 1), ("lr", self.lr >= 0), ("context_lines", self.context_lines >= 0),
            ("alpha", self.alpha is None or self.alpha >= 0), ("epochs", self.epochs > 0 or self.max_steps > 0),
            ("max_steps", self.max_steps == -1 or self.max_steps > 0), ("save_steps", self.save_steps >= 1),
            ("outside_weight", 0.0 <= self.outside_weight <= 1.0), ("heldout_steps", self.heldout_steps >= 1),
        ]
        for name, ok in checks:
            if not ok:
                raise ConfigError(f"{name}={getattr(self, name)!r} is out of range")
        if self.bf16 not in ("auto", "yes", "no"):
            raise ConfigError(f"bf16={self.bf16!r}: choose auto, yes or no")
