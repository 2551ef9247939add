"""Training step time, peak memory and loss parity: `iterpref train --loss dpo` vs TRL's DPOTrainer.

Same tiny model (SmolLM2 tokenizer, random 2-layer Llama), same pairs, same batch, seed, optimiser and
schedule. Each trainer runs in its own subprocess so peak memory is its own (CUDA: max allocated; CPU: max
RSS). TRL keeps a second (reference) model and runs it every step; iterpref reads reference log-probs cached
before training (that one-off pass is timed and printed separately).

Parity: with ``--mask none --alpha 0`` both minimise sigmoid DPO on identical token ids, so their per-step
losses must agree (target 1e-4); step 1 is log 2 for both, later steps check that the gradients matched too.

    python benchmarks/bench_train_vs_trl.py [--steps 12] [--batch-size 4] [--hidden 64]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))


def build(workdir: Path, hidden: int, n_pairs: int) -> tuple[Path, Path]:
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from bench_masks import make_pairs
    from iterpref.bundled import smollm2_dir
    from iterpref.records import to_json_line

    tokenizer = AutoTokenizer.from_pretrained(smollm2_dir())
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=2 * hidden,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4,
                         pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
    model_dir = workdir / "model"
    LlamaForCausalLM(config).save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    rows = []
    for i, pair in enumerate(make_pairs(n_pairs, seed=1, min_lines=4, max_lines=12)):
        # Completions start with a comment line so that joint (TRL) and separate (iterpref) tokenization of
        # prompt and completion give the same ids at the boundary: the comparison is then of the losses alone.
        rows.append({"task_id": f"b{i}", "prompt": f"# Task {i}: fix this code.\n", "chosen": "# fix\n" + pair.chosen,
                     "rejected": "# fix\n" + pair.rejected, "rejected_lines": [], "chosen_lines": []})
    pairs = workdir / "pairs.jsonl"
    pairs.write_text("".join(to_json_line(r) for r in rows))
    return model_dir, pairs


class StepTimer:
    """Trainer callback: wall time of each optimiser step (synchronised on CUDA)."""

    def __init__(self):
        from transformers import TrainerCallback

        timer = self

        class _CB(TrainerCallback):
            def on_step_begin(self, args, state, control, **kw):
                _sync()
                timer.start = time.perf_counter()

            def on_step_end(self, args, state, control, **kw):
                _sync()
                timer.times.append(time.perf_counter() - timer.start)

        self.times: list[float] = []
        self.callback = _CB()


def _sync():
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def common_args(steps: int, batch: int) -> dict:
    return dict(per_device_train_batch_size=batch, max_steps=steps, learning_rate=1e-3, lr_scheduler_type="linear",
                warmup_steps=0, weight_decay=0.0, max_grad_norm=1.0, logging_steps=1, save_strategy="no",
                report_to="none", seed=42, data_seed=42, disable_tqdm=True)


def worker_trl(model_dir: Path, pairs: Path, out: Path, steps: int, batch: int) -> dict:
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    from iterpref.records import read_jsonl

    rows = [r for _, r in read_jsonl(pairs)]
    data = Dataset.from_list([{k: r[k] for k in ("prompt", "chosen", "rejected")} for r in rows])
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    timer = StepTimer()
    # TRL turns on activation checkpointing by default; switch it off so both do identical work.
    args = DPOConfig(output_dir=str(out), beta=0.1, loss_type=["sigmoid"], max_length=None, activation_checkpointing=False,
                     bf16=torch.cuda.is_available(), use_cpu=not torch.cuda.is_available(),
                     **common_args(steps, batch))
    trainer = DPOTrainer(model=model, args=args, train_dataset=data, processing_class=tokenizer,
                         callbacks=[timer.callback])
    trainer.train()
    losses = [r["loss"] for r in trainer.state.log_history if "loss" in r]
    return {"times": timer.times, "losses": losses, "ref_s": 0.0}


def worker_ours(model_dir: Path, pairs: Path, out: Path, steps: int, batch: int) -> dict:
    import iterpref.train.trainer as trainer_module
    from iterpref.train import TrainConfig

    # Time the Trainer's steps with the same callback TRL gets; the config carries everything else.
    timer = StepTimer()
    original = trainer_module.FocalDPOTrainer.__init__

    def with_timer(self, *a, **kw):
        kw["callbacks"] = list(kw.get("callbacks") or []) + [timer.callback]
        original(self, *a, **kw)

    trainer_module.FocalDPOTrainer.__init__ = with_timer
    from iterpref.train import train

    t0 = time.perf_counter()
    result = train(TrainConfig(pairs=str(pairs), model=str(model_dir), output_dir=str(out), loss="dpo",
                               layout="plain", max_length=100000, max_steps=steps, batch_size=batch, lr=1e-3,
                               warmup_ratio=0.0, save_steps=10**9, save_model=False, progress=False,
                               bf16="auto"))
    total = time.perf_counter() - t0
    losses = [r["loss"] for r in result.log_history if "loss" in r and "loss/dpo" in r]
    return {"times": timer.times, "losses": losses, "total_s": total}


def worker_parity(model_dir: Path, pairs: Path, out: Path, steps: int, batch: int) -> dict:
    """Mean loss over all pairs in one batch, policy != reference, computed by each implementation."""
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    from iterpref.records import Pair, load_records
    from iterpref.train.data import PairCollator, PairTokenizer, tokenize_pairs
    from iterpref.train.loss import focal_dpo_loss
    from iterpref.train.reference import compute_reference_logps
    from iterpref.train.scoring import score_batch

    records = load_records(pairs, Pair)[:8]
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    ref = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    policy = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    torch.manual_seed(1)
    with torch.no_grad():
        for p in policy.parameters():
            p.add_(0.02 * torch.randn_like(p))
    # TRL: its own tokenization, collator and loss.
    data = Dataset.from_list([{"prompt": r.prompt, "chosen": r.chosen, "rejected": r.rejected} for r in records])
    args = DPOConfig(output_dir=str(out), beta=0.1, loss_type=["sigmoid"], max_length=None, report_to="none",
                     per_device_train_batch_size=len(records), use_cpu=not torch.cuda.is_available())
    trainer = DPOTrainer(model=policy, ref_model=ref, args=args, train_dataset=data, processing_class=tokenizer)
    batch = next(iter(trainer.get_train_dataloader()))
    with torch.no_grad():
        trl_loss = trainer.compute_loss(trainer.model, batch).item()
    # Ours.
    kept, _ = tokenize_pairs(records, PairTokenizer(tokenizer, mask="none", max_length=10**6, layout="plain"), False)
    examples = [k.as_dict() for k in kept]
    collator = PairCollator(pad_token_id=tokenizer.pad_token_id)
    device = next(trainer.model.parameters()).device
    ref_sums = compute_reference_logps(ref.to(device), examples, collator, batch_size=len(examples), progress=False)
    with torch.no_grad():
        scores = score_batch(trainer.model, {k: v.to(device) for k, v in collator(examples).items()})
        ours = focal_dpo_loss(scores["chosen_logps"], scores["rejected_logps"], ref_sums[:, 0].to(device),
                              ref_sums[:, 1].to(device), scores["chosen_nll"], beta=0.1, alpha=0.0)
    return {"trl": trl_loss, "ours": ours.loss.mean().item(), "pairs": len(examples)}


def peak_memory() -> float:
    import torch

    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux -> MiB


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--pairs", type=int, default=64)
    parser.add_argument("--worker", choices=["ours", "trl", "parity"], help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        workdir = Path(args.workdir)
        run = {"ours": worker_ours, "trl": worker_trl, "parity": worker_parity}[args.worker]
        result = run(workdir / "model", workdir / "pairs.jsonl", workdir / args.worker, args.steps, args.batch_size)
        result["peak_mib"] = peak_memory()
        print("RESULT " + json.dumps(result))
        return

    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        build(workdir, args.hidden, args.pairs)
        results = {}
        for name in ("trl", "ours", "parity"):
            cmd = [sys.executable, __file__, "--worker", name, "--workdir", str(workdir), "--steps", str(args.steps),
                   "--batch-size", str(args.batch_size)]
            proc = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(ROOT)))
            line = [text for text in proc.stdout.splitlines() if text.startswith("RESULT ")]
            if proc.returncode != 0 or not line:
                sys.exit(f"{name} worker failed:\n{proc.stderr[-4000:]}")
            results[name] = json.loads(line[-1][len("RESULT "):])

    import torch

    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"

    def median(xs: list[float]) -> float:
        return sorted(xs)[len(xs) // 2]

    # The first steps include allocator and kernel warm-up; compare the steady state.
    t_trl, t_ours = (median(results[n]["times"][2:]) for n in ("trl", "ours"))
    m_trl, m_ours = results["trl"]["peak_mib"], results["ours"]["peak_mib"]
    diffs = [abs(a - b) for a, b in zip(results["ours"]["losses"], results["trl"]["losses"])]
    print(f"device {device}; {args.steps} steps, batch {args.batch_size} pairs, hidden {args.hidden}")
    print(f"step time  TRL DPOTrainer {t_trl * 1e3:8.1f} ms   iterpref {t_ours * 1e3:8.1f} ms   "
          f"ratio {t_ours / t_trl:.2f}x (target <= 0.7x)")
    print(f"peak memory TRL {m_trl:8.1f} MiB   iterpref {m_ours:8.1f} MiB   ratio {m_ours / m_trl:.2f}x "
          f"(target <= 1.0x; {'CUDA max allocated' if torch.cuda.is_available() else 'process max RSS'})")
    parity = results["parity"]
    print(f"loss parity (--mask none, alpha 0), {parity['pairs']} pairs, policy != reference: TRL {parity['trl']:.6f} "
          f"iterpref {parity['ours']:.6f} |diff| {abs(parity['trl'] - parity['ours']):.2e} (target 1e-4)")
    print(f"training curves over {len(diffs)} steps: max |loss diff| {max(diffs):.2e}")
    print("losses TRL     " + " ".join(f"{x:.5f}" for x in results["trl"]["losses"]))
    print("losses iterpref " + " ".join(f"{x:.5f}" for x in results["ours"]["losses"]))


if __name__ == "__main__":
    main()
