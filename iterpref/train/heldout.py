"""Mechanism metrics on held-out pairs: what the loss does to likelihoods, measured with the trainer's own scoring.

Held-out pairs come from tasks never trained on. They are tokenized once with the ``line`` error region and the
chosen side's fix lines (:class:`~iterpref.train.data.PairTokenizer` with ``fix_mask=True``), scored with the
starting model before the first step, and again every ``heldout_steps`` optimiser steps and at the end, by
:func:`~iterpref.train.scoring.score_heldout_batch` -- the same masked log-prob code the loss uses.

Metrics, each a mean over held-out pairs (logged to metrics.jsonl and written to heldout_metrics.json):

``heldout/displacement``         change, from the starting model, of the mean per-token log-prob of the chosen
                                 completion; negative means the correct program became less likely
``heldout/displacement_shared``  the same over the chosen tokens outside the fix lines, the part chosen shares
                                 with rejected (pairs with no such token are left out)
``heldout/logps_chosen``         the mean per-token log-prob of the chosen completion itself
``heldout/margin``               error-region margin: summed log-prob of the chosen fix lines minus that of the
                                 rejected error lines (a fix that only deletes lines has no fix lines: the
                                 rejected side alone)
``heldout/margin_change``        the margin's change from the starting model
``heldout/margin_positive``      share of held-out pairs whose margin is positive
"""

from __future__ import annotations

import contextlib
import math
from pathlib import Path
from typing import Optional

import torch
from transformers import TrainerCallback

from iterpref.records import write_json
from iterpref.train.data import PairCollator
from iterpref.train.scoring import score_heldout_batch

METRICS = ("heldout/displacement", "heldout/displacement_shared", "heldout/logps_chosen", "heldout/margin",
           "heldout/margin_change", "heldout/margin_positive")


@torch.no_grad()
def measure(model, examples: list[dict], collator: PairCollator, batch_size: int = 4,
            autocast_dtype: Optional[torch.dtype] = None) -> dict[str, list[float]]:
    """Per-pair values under ``model`` (in eval mode): ``chosen_mean``, ``shared_mean`` (NaN without shared
    tokens) and ``margin``; each a list of ``len(examples)`` floats."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    autocast = torch.autocast(device.type, dtype=autocast_dtype) if autocast_dtype else contextlib.nullcontext()
    out: dict[str, list[float]] = {"chosen_mean": [], "shared_mean": [], "margin": []}
    try:
        for start in range(0, len(examples), batch_size):
            batch = {k: v.to(device) for k, v in collator(examples[start : start + batch_size]).items()}
            with autocast:
                s = {k: v.float().cpu() for k, v in score_heldout_batch(model, batch).items()}
            out["chosen_mean"] += (s["chosen_logps"] / s["chosen_tokens"].clamp(min=1)).tolist()
            shared = torch.where(s["shared_tokens"] > 0, s["shared_logps"] / s["shared_tokens"].clamp(min=1),
                                 torch.full_like(s["shared_logps"], math.nan))
            out["shared_mean"] += shared.tolist()
            out["margin"] += (s["fix_logps"] - s["region_logps"]).tolist()
    finally:
        model.train(was_training)
    return out


def _mean(values: list[float]) -> float:
    kept = [v for v in values if not math.isnan(v)]
    return sum(kept) / len(kept) if kept else math.nan


def summarise(now: dict[str, list[float]], start: dict[str, list[float]]) -> dict[str, float]:
    """The :data:`METRICS` from per-pair values now and at the start (both from :func:`measure`); a metric with no
    pair to average (``displacement_shared`` when every chosen token is a fix token) is left out."""
    values = {
        "heldout/displacement": _mean([a - b for a, b in zip(now["chosen_mean"], start["chosen_mean"])]),
        "heldout/displacement_shared": _mean([a - b for a, b in zip(now["shared_mean"], start["shared_mean"])]),
        "heldout/logps_chosen": _mean(now["chosen_mean"]),
        "heldout/margin": _mean(now["margin"]),
        "heldout/margin_change": _mean([a - b for a, b in zip(now["margin"], start["margin"])]),
        "heldout/margin_positive": _mean([float(m > 0) for m in now["margin"]]),
    }
    return {name: value for name, value in values.items() if not math.isnan(value)}


def _json_safe(values: dict[str, list[float]]) -> dict[str, list[Optional[float]]]:
    return {k: [None if math.isnan(v) else v for v in vs] for k, vs in values.items()}


class HeldoutProbe(TrainerCallback):
    """Scores the held-out pairs at step 0 (:meth:`begin`, before the Trainer exists), every ``every`` optimiser
    steps and at the end of training, logging :data:`METRICS` through the trainer (so they land in
    metrics.jsonl with their step) and writing the start and final values to ``report_path``.

    Every process measures the full held-out set (it is small), so sharded models see every rank take part.
    """

    def __init__(self, examples: list[dict], collator: PairCollator, every: int, report_path: Path,
                 batch_size: int = 4, autocast_dtype: Optional[torch.dtype] = None):
        self.examples, self.collator, self.every = examples, collator, every
        self.report_path, self.batch_size, self.autocast_dtype = Path(report_path), batch_size, autocast_dtype
        self.trainer = None  # set by the recipe once the Trainer exists; logging goes through it
        self.start: Optional[dict[str, list[float]]] = None
        self.last: Optional[dict[str, list[float]]] = None
        self.last_step = -1

    def begin(self, model) -> dict[str, list[float]]:
        """Score the starting model; call before any optimiser step."""
        self.start = measure(model, self.examples, self.collator, self.batch_size, self.autocast_dtype)
        return self.start

    def _log(self, step: int, now: dict[str, list[float]]) -> None:
        assert self.start is not None and self.trainer is not None, "call begin() and set .trainer first"
        self.last, self.last_step = now, step
        # Logging resets the Trainer's should_log flag, which the flow callback may already have set for this
        # step's loss record; keep it, or that record would be lost.
        should_log = self.trainer.control.should_log
        self.trainer.log(summarise(now, self.start))
        self.trainer.control.should_log = should_log

    def on_train_begin(self, args, state, control, **kwargs):
        if state.global_step == 0 and self.start is not None:
            self._log(0, self.start)  # the start itself: displacement 0, so every curve begins at the origin

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step % self.every == 0:
            self._log(state.global_step, self._measure())

    def on_train_end(self, args, state, control, **kwargs):
        if self.last_step != state.global_step:
            self._log(state.global_step, self._measure())
        if state.is_world_process_zero and self.start is not None and self.last is not None:
            write_json(self.report_path, {
                "pairs": len(self.examples), "every_steps": self.every, "step": self.last_step,
                "final": summarise(self.last, self.start), "start": summarise(self.start, self.start),
                "per_pair": {"start": _json_safe(self.start), "final": _json_safe(self.last)},
            })

    def _measure(self) -> dict[str, list[float]]:
        assert self.trainer is not None
        return measure(self.trainer.model, self.examples, self.collator, self.batch_size, self.autocast_dtype)
