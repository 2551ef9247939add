"""`train(config)`: pairs JSONL -> tokenized pairs with masks -> cached reference log-probs -> Trainer -> outputs.

Reads top to bottom. Works as a single process or under ``torchrun`` / ``accelerate launch`` (DDP, FSDP,
DeepSpeed ZeRO-3 from iterpref/configs/); every process runs this same function.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional

from iterpref.errors import ConfigError, DataError, ModelError
from iterpref.records import Pair, load_records, write_json
from iterpref.train.config import TrainConfig
from iterpref.train.data import DROP_REASONS, PairCollator, PairTokenizer, tokenize_pairs


@dataclass
class TrainResult:
    output_dir: Path
    metrics_path: Path
    curves_path: Optional[Path]
    final_dir: Optional[Path]
    pairs_used: int
    dropped: dict[str, int]
    ref_cache: Optional[Path]
    ref_cache_hit: bool
    heldout_path: Optional[Path] = None  # heldout_metrics.json, when held-out pairs were given
    log_history: list[dict[str, Any]] = field(default_factory=list)


def load_pairs(path: str, what: str = "pairs") -> list[Pair]:
    if not path:
        raise ConfigError("no pairs file given; pass --pairs FILE (written by `iterpref pairs`)")
    if not Path(path).is_file():
        raise DataError(f"{what} file {path} does not exist")
    try:
        return load_records(path, Pair)
    except DataError as exc:
        raise DataError(f"{what} file is malformed: {exc}") from None


def bundled_model_dir() -> Path:
    """The bundled model folder; a file lock keeps concurrent processes from converting it twice."""
    import fcntl

    from iterpref.bundled import cache_root, smollm2_dir

    cache_root().mkdir(parents=True, exist_ok=True)
    with open(cache_root() / ".smollm2.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return smollm2_dir()


# TrainConfig fields that TrainingArguments takes unchanged, under its own names.
PASSED_TO_TRAINER = {
    "batch_size": "per_device_train_batch_size", "grad_accum": "gradient_accumulation_steps",
    "lr": "learning_rate", "epochs": "num_train_epochs", "max_steps": "max_steps", "weight_decay": "weight_decay",
    "max_grad_norm": "max_grad_norm", "save_steps": "save_steps", "save_total_limit": "save_total_limit",
    "logging_steps": "logging_steps", "seed": "seed",
}


def version_dependent_arguments(config: TrainConfig) -> dict:
    """Warm-up and activation checkpointing under the names this transformers release uses: recent releases take
    the warm-up fraction as a ``warmup_steps`` below 1 and call checkpointing ``activation_checkpointing``;
    older ones (4.45 to early 5.x) have ``warmup_ratio`` and ``gradient_checkpointing``."""
    from transformers import TrainingArguments

    known = set(TrainingArguments.__dataclass_fields__)
    out = {"warmup_ratio": config.warmup_ratio} if "warmup_ratio" in known else {"warmup_steps": config.warmup_ratio}
    checkpointing = "activation_checkpointing" if "activation_checkpointing" in known else "gradient_checkpointing"
    out[checkpointing] = config.gradient_checkpointing
    return out


def resolve_bf16(setting: str) -> bool:
    """``auto``: on when a CUDA GPU supports bfloat16. ``yes``: on, on a GPU or on the CPU (CPU autocast, which
    pays off on CPUs with AVX512-BF16 or AMX; docs/training.md). ``no``: fp32."""
    import torch

    cuda = torch.cuda.is_available()
    if setting == "yes" and cuda and not torch.cuda.is_bf16_supported():
        raise ConfigError("--bf16 yes: this CUDA GPU has no bfloat16 support; use --bf16 auto or no")
    return (cuda and torch.cuda.is_bf16_supported()) if setting == "auto" else setting == "yes"


def train(config: TrainConfig) -> TrainResult:
    """Train with the focal loss (or a baseline preset) as ``config`` says; returns where everything went."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    config.validate()
    mask_mode, alpha, dpo_weight = config.resolved()
    pairs = load_pairs(config.pairs)
    heldout_pairs = load_pairs(config.heldout_pairs, "held-out pairs") if config.heldout_pairs else []

    import torch
    from accelerate import PartialState
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainingArguments

    from iterpref.train.heldout import HeldoutProbe
    from iterpref.train.plots import plot_curves
    from iterpref.train.reference import reference_logps, remove_shares
    from iterpref.train.trainer import FocalDPOTrainer, MetricsJsonl

    # The launcher's environment says who we are; the process group is set up later by TrainingArguments,
    # which must come after the model is loaded in full (DeepSpeed ZeRO-3 would otherwise shard it at load).
    rank, world_size = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    main = rank == 0
    output_dir = Path(config.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    bf16 = resolve_bf16(config.bf16)

    # 1. Model folder and tokenizer.
    if config.model:
        model_dir = Path(config.model)
        if not (model_dir / "config.json").is_file():
            raise ModelError(f"--model {model_dir} is not a Hugging Face model folder (no config.json)")
    else:
        model_dir = bundled_model_dir()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    if pad_id is None:
        raise ModelError(f"tokenizer of {model_dir} has neither a pad nor an EOS token")

    # 2. Tokenize once; masks are built here, not per step.
    pair_tokenizer = PairTokenizer(tokenizer, mask_mode, config.context_lines, config.max_length, config.layout,
                                   outside_weight=config.outside_weight if mask_mode != "none" else 0.0)
    kept, dropped = tokenize_pairs(pairs, pair_tokenizer, progress=config.progress and main)
    # Held-out pairs are measured the same way whatever the method: line region, no soft weight, fix lines.
    heldout_tokenizer = PairTokenizer(tokenizer, "line", 0, config.max_length, config.layout, fix_mask=True)
    heldout, heldout_dropped = tokenize_pairs(heldout_pairs, heldout_tokenizer, progress=False)
    summary = {
        "pairs_read": len(pairs), "pairs_used": len(kept),
        "dropped": {reason: dropped.get(reason, 0) for reason in DROP_REASONS},
        "mask": mask_mode, "alpha": alpha, "beta": config.beta, "loss": config.loss, "layout": pair_tokenizer.layout,
        "outside_weight": pair_tokenizer.outside_weight,
        "trace_fallback": pair_tokenizer.trace_fallbacks,  # line+trace pairs without a trace: masked as `line`
        "heldout_pairs_read": len(heldout_pairs), "heldout_pairs_used": len(heldout),
        "heldout_dropped": {reason: heldout_dropped.get(reason, 0) for reason in DROP_REASONS},
        "rejected_tokens_in_mask": sum(sum(p.rejected_mask) for p in kept),
        "rejected_tokens_total": sum(len(p.rejected_ids) for p in kept),
    }
    if main:
        write_json(output_dir / "data_summary.json", summary)
        dropped_text = ", ".join(f"{k} {v}" for k, v in summary["dropped"].items() if v) or "none"
        print(f"iterpref train: {len(kept)} of {len(pairs)} pairs used; dropped: {dropped_text}", flush=True)
        if mask_mode == "line+trace" and pair_tokenizer.trace_fallbacks:
            print(f"iterpref train: {pair_tokenizer.trace_fallbacks} pairs carry no trace lines and use the line "
                  "mask", flush=True)
    if not kept:
        raise DataError(f"no usable pairs in {config.pairs} (dropped: {summary['dropped']}); "
                        "check --max-length and that chosen differs from rejected")
    if heldout_pairs and not heldout:
        raise DataError(f"no usable held-out pairs in {config.heldout_pairs} (dropped: {summary['heldout_dropped']})")
    examples = [p.as_dict() for p in kept]
    collator = PairCollator(pad_token_id=pad_id)

    # 3. The model, loaded in full precision on every process (DeepSpeed/FSDP shard it inside the Trainer).
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)

    # 4. Reference log-probs with the frozen starting weights, cached on disk; SFT needs none.
    ref_path, ref_hit = None, False
    device = torch.device("cuda", local_rank) if torch.cuda.is_available() else torch.device("cpu")
    if dpo_weight > 0:
        cache_dir = Path(config.ref_cache_dir) if config.ref_cache_dir else output_dir / "ref_cache"
        model.to(device)
        # The masks (weights included) are hashed with the data too; the setting names them for a reader.
        setting = (f"mask={mask_mode}|ctx={config.context_lines}|w={pair_tokenizer.outside_weight}|bf16={bf16}"
                   f"|layout={pair_tokenizer.layout}")
        ref, ref_path, ref_hit = reference_logps(
            model, model_dir, examples, collator, cache_dir, setting, batch_size=config.ref_batch_size,
            autocast_dtype=torch.bfloat16 if bf16 else None, rank=rank, world_size=world_size,
        )
        if main:
            print(f"iterpref train: reference log-probs {'read from' if ref_hit else 'cached in'} {ref_path}", flush=True)
    else:
        ref = torch.zeros((len(examples), 2))
    # The starting model's scores of the held-out pairs, from the same frozen weights as the reference.
    probe = None
    if heldout:
        model.to(device)
        probe = HeldoutProbe([p.as_dict() for p in heldout], collator, config.heldout_steps,
                             output_dir / "heldout_metrics.json", batch_size=config.ref_batch_size,
                             autocast_dtype=torch.bfloat16 if bf16 else None)
        probe.begin(model)
    model.to("cpu")  # the Trainer places (or shards) it
    for example, (chosen, rejected) in zip(examples, ref.tolist()):
        example["ref_chosen_logps"], example["ref_rejected_logps"] = chosen, rejected

    # 5. The Trainer.
    args = TrainingArguments(
        output_dir=str(output_dir),
        **{theirs: getattr(config, ours) for ours, theirs in PASSED_TO_TRAINER.items()},
        **version_dependent_arguments(config),
        lr_scheduler_type="linear",
        bf16=bf16,
        save_strategy="steps",
        data_seed=config.seed,
        report_to="none",
        remove_unused_columns=False,
        label_names=[],
        disable_tqdm=not config.progress,
        ddp_find_unused_parameters=False,
        use_cpu=not torch.cuda.is_available(),  # without it, accelerate does not set up DDP across CPU processes
    )
    _ = args.device  # sets up the process group under a launcher
    state = args.distributed_state or PartialState()
    state.wait_for_everyone()
    if ref_path is not None and main and world_size > 1:
        remove_shares(ref_path, world_size)
    metrics_path = output_dir / "metrics.jsonl"
    trainer = FocalDPOTrainer(
        model=model, args=args, data_collator=collator, train_dataset=examples, processing_class=tokenizer,
        callbacks=[MetricsJsonl(metrics_path)] + ([probe] if probe else []), beta=config.beta, alpha=alpha,
        dpo_weight=dpo_weight,
    )
    if probe is not None:
        probe.trainer = trainer
    resume: Any = None
    if config.resume:
        resume = True if config.resume == "latest" else config.resume
        if resume is not True and not Path(resume).is_dir():
            raise ConfigError(f"--resume {resume} is not a checkpoint folder")
        if resume is True and not list(output_dir.glob("checkpoint-*")):
            raise ConfigError(f"--resume latest: no checkpoint-* folder in {output_dir}")
    trainer.train(resume_from_checkpoint=resume)

    # 6. Outputs.
    final_dir = None
    if config.save_model:
        final_dir = output_dir / "final"
        if trainer.is_fsdp_enabled:
            # Under sharded checkpoints save_model writes nothing; gather full weights (every rank joins in).
            trainer.accelerator.state.fsdp_plugin.set_state_dict_type("FULL_STATE_DICT")
        trainer.save_model(str(final_dir))
    curves = None
    if main and metrics_path.is_file():
        curves = plot_curves(metrics_path, output_dir / "curves.png", title=f"{config.loss} (mask={mask_mode}, alpha={alpha})")
        write_json(output_dir / "train_config.json", asdict(config))
    state.wait_for_everyone()
    return TrainResult(
        output_dir=output_dir, metrics_path=metrics_path, curves_path=curves, final_dir=final_dir,
        pairs_used=len(kept), dropped=summary["dropped"], ref_cache=ref_path, ref_cache_hit=ref_hit,
        heldout_path=probe.report_path if probe else None, log_history=list(trainer.state.log_history),
    )
