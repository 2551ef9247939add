"""`iterpref train`: focal preference training (or a baseline preset) on a pairs JSONL.

Every option is a field of :class:`iterpref.train.TrainConfig`; its help text is the field's.
Multi-GPU/multi-node: ``accelerate launch --config_file iterpref/configs/ddp.yaml -m iterpref.train ...``
or ``torchrun --nproc_per_node N -m iterpref.train ...`` (``python -m iterpref.train`` is ``iterpref train``).
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import MISSING, fields

from iterpref.errors import IterprefError
from iterpref.train.config import LOSS_PRESETS, TrainConfig
from iterpref.train.masks import MASK_MODES

CHOICES = {"loss": list(LOSS_PRESETS), "mask": list(MASK_MODES), "layout": ["auto", "chat", "plain"],
           "bf16": ["auto", "yes", "no"]}
ALIASES = {"output_dir": ["--output"]}
NEGATED = {"save_model", "progress"}  # on by default: the flag turns them off


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("train", help="train with the focal DPO loss (or dpo/rpo/sft baselines)",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for f in fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        help_text = f.metadata["help"]
        if f.type in ("bool", bool):
            if f.name in NEGATED:
                parser.add_argument("--no-" + f.name.replace("_", "-"), dest=f.name, action="store_false",
                                    help=f"do not: {help_text}")
            else:
                parser.add_argument(flag, dest=f.name, action="store_true", help=help_text)
            continue
        default = f.default if f.default is not MISSING else None
        kind = {"int": int, "float": float}.get(str(f.type).replace("Optional[", "").rstrip("]"), str)
        parser.add_argument(flag, *ALIASES.get(f.name, []), dest=f.name, type=kind, default=default,
                            choices=CHOICES.get(f.name), required=f.name == "pairs",
                            help=help_text if default in (None, "") else f"{help_text} (default: {default})")
    parser.set_defaults(func=_run)


def _contamination(config: TrainConfig) -> str | None:
    """A warning when the problems of --eval-tasks appear in the training pairs' prompts."""
    from iterpref.evaluate import overlap_warning, pairs_containing
    from iterpref.records import Pair, load_records
    from iterpref.tasks import load_tasks

    evaluated = load_tasks(config.eval_tasks)
    overlap = pairs_containing([(p.task_id, p.prompt) for p in load_records(config.pairs, Pair)], evaluated)
    return overlap_warning(overlap, f"the {len(evaluated)} problems in {config.eval_tasks} appear in the training "
                           f"prompts of {config.pairs} (normalised text)", "~")


def _run(args: argparse.Namespace) -> int:
    try:
        from iterpref.train import train
    except ImportError as exc:  # the options above need no torch; training does
        raise IterprefError(f"`iterpref train` needs the train extra: pip install 'iterpref[train]' ({exc})") from None

    config = TrainConfig(**{f.name: getattr(args, f.name) for f in fields(TrainConfig)})
    if config.eval_tasks and os.environ.get("RANK", "0") == "0":
        warning = _contamination(config)
        if warning:
            print(f"iterpref train: {warning}", file=sys.stderr)
    result = train(config)
    if os.environ.get("RANK", "0") != "0":
        return 0  # one summary line per run, not per process
    print(f"iterpref train: {result.pairs_used} pairs; metrics {result.metrics_path}"
          + (f"; curves {result.curves_path}" if result.curves_path else "")
          + (f"; model {result.final_dir}" if result.final_dir else ""))
    return 0
