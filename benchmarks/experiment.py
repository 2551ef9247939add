"""What does focal preference learning do to a model's likelihoods? A mechanism experiment with error bars.

Every method trains from the same starting model on the same pairs for the same number of optimiser steps, with
3 seeds each (a seed changes the pair order and, with --eval-samples > 1, evaluation sampling; the task split
and the pairs stay fixed):

    untrained      the starting model (no training: displacement 0 by definition)
    focal a=1      IterPref: DPO on the rejected side's error lines (line mask) + NLL on chosen
    focal a=0      the same without the NLL term
    soft w=0.25    focal a=1 with rejected tokens outside the error region weighted 0.25
    soft w=0.5     ... weighted 0.5
    line+trace     focal a=1 with the error region widened by the lines where the failing tests stopped
    DPO            vanilla sigmoid DPO on whole sequences
    RPO            vanilla DPO + NLL on chosen
    SFT            NLL on chosen only

Measured on held-out pairs (tasks never trained on), with the trainer's own masked log-prob code
(iterpref/train/heldout.py; docs/training.md): likelihood displacement of the chosen completion, overall and on
the tokens it shares with rejected, the error-region margin and the share of pairs where it is positive, every
--heldout-steps steps and at the end; and greedy pass@1 (or pass@k with --eval-samples n) on held-out tasks
through the executor for the --eval-methods. Every number is a mean over seeds with a 95% two-level bootstrap
interval (seeds and pairs/tasks resampled), and every method is also compared with focal a=1 by a paired
bootstrap of the difference.

Training pairs: the model's own (the debugging loop with --repair-samples on the training split, unless
--own-rounds -1) plus --synthetic injected-bug pairs (counted apart), or --pairs FILE. Held-out pairs:
--heldout-pairs FILE, or synthetic pairs from the held-out split (--heldout-synthetic).

A rerun in the same --output reuses finished runs only when every setting that shapes a result is the same
(settings.json); otherwise it stops and names the differing settings (--fresh starts over). Seeds and methods may
be added to a finished folder.

Tiny (proves the pipeline in minutes on a busy CPU with a random 2-layer model; its numbers mean nothing):
    python benchmarks/experiment.py --output runs/exp-tiny --tiny-model --train-tasks 6 --heldout-tasks 4 \\
        --own-rounds 0 --repair-samples 2 --synthetic 6 --heldout-synthetic 4 --steps 4 --heldout-steps 2 \\
        --lr 1e-3 --max-new-tokens 16 --executor local --threads 2 --name experiment-tiny-cpu
CPU (run: benchmarks/results/experiment-cpu.*; 77 min of wall time on 2 cores, 19 of them the debugging loop,
which gave no pair; docs/demo.md):
    python benchmarks/experiment.py --output runs/exp-cpu --train-tasks 48 --heldout-tasks 24 --own-rounds 2 \\
        --repair-samples 2 --synthetic 24 --heldout-synthetic 16 --steps 16 --heldout-steps 8 --lr 1e-5 \\
        --eval-methods "untrained,focal a=1,DPO" --max-new-tokens 256 --batch-size 32 --bf16 yes --threads 2 \\
        --sample-bf16 yes --name experiment-cpu
    --sample-bf16 yes samples the loop and pass@1 with bfloat16 weights: 1.5x faster on a CPU with bf16
    instructions (without it the same run took 102 min), slower on one without.
GPU (pass@k for every method):
    python benchmarks/experiment.py --output runs/exp-gpu --train-tasks 120 --heldout-tasks 44 --own-rounds 5 \\
        --repair-samples 4 --synthetic 60 --heldout-synthetic 44 --steps 200 --heldout-steps 10 --eval-methods all \\
        --eval-samples 10 --eval-temperature 0.8 --max-new-tokens 512 --device cuda --name experiment-gpu
"""

from __future__ import annotations

import argparse
import hashlib
import math
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without installing
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from iterpref.demo import DemoConfig, hf_sampler, open_executor, split_tasks  # noqa: E402
from iterpref.errors import ConfigError, DataError, IterprefError  # noqa: E402
from iterpref.records import read_json, read_jsonl, write_json  # noqa: E402
from iterpref.refine import check_sample_counts  # noqa: E402
from iterpref.refine.feedback import REPAIR_PROMPTS  # noqa: E402
from iterpref.report import bootstrap, bootstrap_differences, settings_changes  # noqa: E402
from iterpref.samplers.hf import PREFILLS  # noqa: E402


@dataclass(frozen=True)
class Method:
    name: str
    loss: Optional[str]  # None: the untrained model
    mask: str = "-"
    alpha: float = 0.0
    outside_weight: float = 0.0

    @property
    def slug(self) -> str:
        return "".join(c if c.isalnum() else "_" for c in self.name)


METHODS = [
    Method("untrained", None),
    Method("focal a=1", "focal", "line", 1.0),
    Method("focal a=0", "focal", "line", 0.0),
    Method("soft w=0.25", "focal", "line", 1.0, 0.25),
    Method("soft w=0.5", "focal", "line", 1.0, 0.5),
    Method("line+trace", "focal", "line+trace", 1.0),
    Method("DPO", "dpo", "none", 0.0),
    Method("RPO", "rpo", "none", 1.0),
    Method("SFT", "sft", "none", 1.0),
]
REFERENCE = "focal a=1"  # differences are reported against it
# metric -> (per-pair value from heldout_metrics.json's per_pair start/final, label)
METRICS = {
    "displacement": "displacement (all chosen tokens)",
    "displacement_shared": "displacement (chosen tokens outside the fix)",
    "margin": "error-region margin",
    "margin_positive": "margin > 0 (share of pairs)",
}
RESULTS_DIR = Path(__file__).parent / "results"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


# ---------------------------------------------------------------- pairs


def own_pairs(args, config: DemoConfig, executor, out: Path, train_tasks) -> tuple[Path, dict]:
    """The debugging loop with the model on the training tasks (repair sampling), then its pairs."""
    from iterpref.pairs import tokenizer_counter, write_pairs
    from iterpref.refine import load_trajectories, refine

    trajectories = out / "own_trajectories.jsonl"
    done = out / "own_refine_done.json"
    started = time.monotonic()
    if not done.is_file():
        sampler = hf_sampler(args.model, config, args.temperature, bf16=args.sample_bf16 == "yes")
        try:
            summary = refine(train_tasks, sampler, executor, trajectories, max_rounds=args.own_rounds,
                             wave_size=config.batch_size * 4, samples=args.repair_samples,
                             first_samples=args.first_samples, repair_style=args.repair_prompt)
        finally:
            sampler.close()
        if summary.unfinished:
            raise DataError(f"{summary.unfinished} tasks could not be judged (executor infra errors); rerun")
        write_json(done, {"seconds": time.monotonic() - started})
    path = out / "own_pairs.jsonl"
    _, summary = write_pairs(load_trajectories(trajectories), path, out / "own_pairs.summary.json", seed=0,
                             count_tokens=tokenizer_counter(args.model), pairs_per_task=args.pairs_per_task)
    return path, {"pairs": summary.pairs, "tasks": summary.tasks, "sampling_seconds": read_json(done)["seconds"]}


def synthetic(tasks, executor, out: Path, limit: int, prefix: str, args) -> tuple[Path, int]:
    from iterpref.pairs import tokenizer_counter
    from iterpref.pairs.synthetic import synthetic_pairs

    pairs, _, path = synthetic_pairs(tasks, executor, out, seed=0, limit=limit, prefix=prefix,
                                     count_tokens=tokenizer_counter(args.model))
    return path, len(pairs)


def concatenate(paths: list[Path], into: Path) -> Path:
    into.write_text("".join(p.read_text(encoding="utf-8") for p in paths), encoding="utf-8")
    return into


# ---------------------------------------------------------------- one run


def train_run(args, method: Method, seed: int, pairs: Path, heldout_pairs: Path, run_dir: Path,
              needs_model: bool) -> None:
    """Train one method with one seed unless a finished run (with a model when one is needed) is there."""
    from iterpref.train import TrainConfig, train

    report = run_dir / "heldout_metrics.json"
    if report.is_file() and (not needs_model or (run_dir / "final" / "config.json").is_file()):
        return
    if run_dir.exists():
        shutil.rmtree(run_dir)  # a run cut short: start it again
    started = time.monotonic()
    train(TrainConfig(pairs=str(pairs), output_dir=str(run_dir), model=args.model, loss=method.loss or "focal",
                      mask=method.mask, alpha=method.alpha, outside_weight=method.outside_weight, beta=args.beta,
                      max_steps=args.steps, batch_size=args.batch_pairs, grad_accum=args.grad_accum, lr=args.lr,
                      save_steps=10**6, save_total_limit=None, seed=seed, heldout_pairs=str(heldout_pairs),
                      heldout_steps=args.heldout_steps, save_model=needs_model, progress=False, bf16=args.bf16,
                      ref_cache_dir=str(run_dir.parent.parent / "ref_cache")))
    write_json(run_dir / "seconds.json", {"seconds": time.monotonic() - started})
    for checkpoint in run_dir.glob("checkpoint-*"):  # optimiser state of a finished run: only disk space now
        shutil.rmtree(checkpoint)


def make_tiny_model(path: Path) -> Path:
    """A randomly initialised 2-layer Llama with the bundled model's tokenizer, for checking the experiment's
    plumbing in minutes on a busy CPU. Its numbers say nothing about any method."""
    if (path / "config.json").is_file():
        return path
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from iterpref.bundled import smollm2_dir

    tokenizer = AutoTokenizer.from_pretrained(smollm2_dir())
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=4, pad_token_id=tokenizer.pad_token_id,
                         eos_token_id=tokenizer.eos_token_id, bos_token_id=tokenizer.bos_token_id)
    LlamaForCausalLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def evaluate_run(args, model: Optional[str], heldout_tasks, config: DemoConfig, executor, out: Path, seed: int):
    """Per-task pass@k of one model on the held-out tasks (reused when its summary exists)."""
    import dataclasses

    from iterpref.evaluate import evaluate

    if not (out / "summary.json").is_file():
        if out.exists():
            shutil.rmtree(out)
        sampler = hf_sampler(model, dataclasses.replace(config, seed=seed), args.eval_temperature,
                             bf16=args.sample_bf16 == "yes")
        try:
            evaluate(heldout_tasks, sampler, executor, samples=args.eval_samples, output_dir=out,
                     wave_tasks=config.batch_size * 4, progress=False,
                     settings={"model": model or "bundled", "temperature": args.eval_temperature})
        finally:
            sampler.close()
    by_task = {r["task_id"]: r["pass_at_k"] for _, r in read_jsonl(out / "results.jsonl")}
    return [by_task[t.task_id] for t in heldout_tasks]


def per_pair(report: dict, metric: str, untrained: bool) -> list[float]:
    """One metric's value on each held-out pair, from a run's heldout_metrics.json."""
    start, final = report["per_pair"]["start"], report["per_pair"]["final"]
    if untrained:
        final = start

    def nan(v):
        return math.nan if v is None else v

    if metric == "displacement":
        return [nan(a) - nan(b) for a, b in zip(final["chosen_mean"], start["chosen_mean"])]
    if metric == "displacement_shared":
        return [nan(a) - nan(b) for a, b in zip(final["shared_mean"], start["shared_mean"])]
    if metric == "margin":
        return [nan(m) for m in final["margin"]]
    return [float(nan(m) > 0) for m in final["margin"]]


def curves(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    records = [r for _, r in read_jsonl(run_dir / "metrics.jsonl") if "heldout/displacement" in r]
    return {name: [(r["step"], r[name]) for r in records if name in r]
            for name in ("heldout/displacement", "heldout/margin")}


def plot_curves(runs: dict[str, list[dict]], path: Path, title: str) -> None:
    """Displacement and margin against the optimiser step: one curve per method (mean over seeds, band min-max)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, name, label in ((axes[0], "heldout/displacement", "likelihood displacement of chosen (per token)"),
                            (axes[1], "heldout/margin", "error-region margin (log-prob)")):
        for method, seeds in runs.items():
            series = [dict(s[name]) for s in seeds if s.get(name)]
            steps = sorted(set.intersection(*(set(s) for s in series))) if series else []
            if not steps:
                continue
            values = np.array([[s[k] for k in steps] for s in series])
            line = ax.plot(steps, values.mean(0), marker=".", label=method)[0]
            ax.fill_between(steps, values.min(0), values.max(0), color=line.get_color(), alpha=0.15)
        ax.set_title(label, fontsize=10)
        ax.set_xlabel("optimiser step")
        ax.axhline(0, color="grey", lw=0.5)
    axes[1].legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ---------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", default="runs/experiment", help="folder for every run (reused on a rerun)")
    parser.add_argument("--fresh", action="store_true", help="delete --output's earlier runs and start over")
    parser.add_argument("--methods", default="all", help="comma-separated method names, or all")
    parser.add_argument("--seeds", default="0,1,2", help="training seeds (pair order; evaluation sampling)")
    parser.add_argument("--pairs", help="training pairs JSONL instead of making them here")
    parser.add_argument("--heldout-pairs", help="held-out pairs JSONL (default: synthetic, from the held-out split)")
    parser.add_argument("--train-tasks", type=int, default=60, help="HumanEval training split size")
    parser.add_argument("--heldout-tasks", type=int, default=24, help="HumanEval held-out split size")
    parser.add_argument("--split-seed", type=int, default=0, help="seed of the task split (fixed across seeds)")
    parser.add_argument("--own-rounds", type=int, default=2,
                        help="repair rounds of the model's own debugging loop; -1: no pairs of the model's own")
    parser.add_argument("--repair-samples", type=int, default=2, help="candidates per task and round")
    parser.add_argument("--first-samples", type=int, default=None,
                        help="candidates in round 0 (default: --repair-samples; 1 keeps more pairs, docs/data.md)")
    parser.add_argument("--repair-prompt", choices=REPAIR_PROMPTS, default="full",
                        help="repair prompt of the debugging loop (default full, as the recorded results used; "
                             "brief repairs more with the bundled model, docs/data.md)")
    parser.add_argument("--pairs-per-task", type=int, default=1)
    parser.add_argument("--temperature", type=float, default=0.8, help="sampling temperature of the debugging loop")
    parser.add_argument("--synthetic", type=int, default=24, help="synthetic training pairs added (0: none)")
    parser.add_argument("--heldout-synthetic", type=int, default=24, help="synthetic held-out pairs (no --heldout-pairs)")
    parser.add_argument("--model", default=None, help="HF model folder (default: bundled SmolLM2-135M-Instruct)")
    parser.add_argument("--tiny-model", action="store_true",
                        help="use a random 2-layer Llama with the bundled tokenizer (made in --output): checks the "
                             "plumbing in minutes; its numbers mean nothing")
    parser.add_argument("--steps", type=int, default=24, help="optimiser steps per run (the same for all)")
    parser.add_argument("--heldout-steps", type=int, default=4, help="measure held-out pairs every N steps")
    parser.add_argument("--batch-pairs", type=int, default=1, help="pairs per micro-batch")
    parser.add_argument("--grad-accum", type=int, default=1)
    parser.add_argument("--lr", type=float, default=5e-6)
    parser.add_argument("--beta", type=float, default=0.1)
    parser.add_argument("--eval-methods", default="untrained,focal a=1,DPO",
                        help="methods whose pass@k is measured (all, or comma-separated; '' for none)")
    parser.add_argument("--eval-samples", type=int, default=1, help="samples per held-out task (pass@k, k <= n)")
    parser.add_argument("--eval-temperature", type=float, default=0.0, help="0: greedy")
    parser.add_argument("--max-new-tokens", type=int, default=256)
    parser.add_argument("--prefill", choices=PREFILLS, default="fence")
    parser.add_argument("--batch-size", type=int, default=32, help="hf: rows decoded at once")
    parser.add_argument("--executor", default="auto", help="auto, docker, local or a URL of `sandbox serve`")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--bf16", choices=["auto", "yes", "no"], default="auto",
                        help="bfloat16 autocast in training and the held-out metrics: auto (CUDA only), yes (CPU too)")
    parser.add_argument("--sample-bf16", choices=["yes", "no"], default="no",
                        help="sample (debugging loop, pass@k) with bfloat16 weights: 1.5x faster on a CPU with "
                             "AVX512-BF16, replies differ from fp32 ones by rounding")
    parser.add_argument("--bootstrap", type=int, default=2000, help="bootstrap replicates")
    parser.add_argument("--name", default="experiment", help="file name of the saved results in benchmarks/results/")
    args = parser.parse_args(argv)
    try:
        return run(args)
    except IterprefError as exc:
        print(f"experiment: error: {exc}", file=sys.stderr)
        return 2


def _choose(text: str, what: str) -> list[Method]:
    if text.strip() == "all":
        return list(METHODS)
    names = [n.strip() for n in text.split(",") if n.strip()]
    known = {m.name: m for m in METHODS}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ConfigError(f"{what}: unknown method(s) {unknown}; choose from {', '.join(known)}")
    return [known[n] for n in names]


def settings_of(args) -> dict:
    """Everything that shapes a result; a folder's runs are reused only under the same values."""
    keys = ("pairs", "heldout_pairs", "train_tasks", "heldout_tasks", "split_seed", "own_rounds", "repair_samples",
            "repair_prompt", "pairs_per_task", "temperature", "synthetic", "heldout_synthetic", "model", "steps",
            "heldout_steps", "batch_pairs", "grad_accum", "lr", "beta", "eval_samples", "eval_temperature",
            "max_new_tokens", "prefill", "tiny_model", "bf16", "sample_bf16")
    current = {k: getattr(args, k) for k in keys}
    if args.first_samples is not None:  # only when set, so folders from before the option still match
        current["first_samples"] = args.first_samples
    for k in ("pairs", "heldout_pairs"):  # the files' contents, not only their names
        if current[k]:
            current[k + "_sha256"] = sha256(Path(current[k]))
    return current


def check_settings(out: Path, current: dict, fresh: bool) -> None:
    path = out / "settings.json"
    if fresh and out.exists():
        if not path.is_file() and any(out.iterdir()):
            raise ConfigError(f"--fresh would delete {out}, which holds no settings.json; choose another --output")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    if path.is_file():
        changed = settings_changes(read_json(path), current)
        if changed:
            raise ConfigError(f"{out} holds runs made with other settings ({', '.join(changed)}); their results "
                              "would mix with these. Add --fresh to start over, or choose another --output")
    write_json(path, current)


def run(args: argparse.Namespace) -> int:
    from iterpref.records import Pair, load_records

    if args.threads > 0:
        import torch

        torch.set_num_threads(args.threads)
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    methods = _choose(args.methods, "--methods")
    evaluated = {m.name for m in _choose(args.eval_methods, "--eval-methods")} if args.eval_methods else set()
    if args.steps < 1 or args.heldout_steps < 1 or not seeds or args.own_rounds < -1:
        raise ConfigError("--steps and --heldout-steps must be at least 1, --seeds non-empty, --own-rounds >= -1")
    # The temperature matters only when the model's own loop runs.
    own_loop = args.own_rounds >= 0 and not args.pairs
    check_sample_counts(args.repair_samples, args.first_samples, greedy=own_loop and args.temperature <= 0)
    if REFERENCE not in {m.name for m in methods}:
        methods.insert(0, next(m for m in METHODS if m.name == REFERENCE))  # differences need it
    out = Path(args.output)
    if args.tiny_model and args.model:
        raise ConfigError("--tiny-model and --model exclude each other")
    check_settings(out, settings_of(args), args.fresh)
    if args.tiny_model:
        args.model = str(make_tiny_model(out / "tiny-model"))
    config = DemoConfig(train_tasks=args.train_tasks, heldout_tasks=args.heldout_tasks, seed=args.split_seed,
                        model=args.model, max_new_tokens=args.max_new_tokens, batch_size=args.batch_size,
                        device=args.device, temperature=args.temperature, prefill=args.prefill, progress=False)
    train_tasks, heldout_tasks = split_tasks(config)
    started = time.monotonic()
    counts: dict[str, object] = {}
    with open_executor(args.executor, out) as (executor, executor_note):
        # 1. Pairs: training (the model's own + synthetic, counted apart) and held-out.
        if args.pairs:
            train_pairs = Path(args.pairs)
            counts["pairs from --pairs"] = len(load_records(train_pairs, Pair))
        else:
            parts = []
            if args.own_rounds >= 0:
                print("== the model's own pairs: debugging loop on the training split", flush=True)
                path, own = own_pairs(args, config, executor, out, train_tasks)
                parts.append(path)
                counts["own pairs"] = own["pairs"]
                counts["own pairs: sampling seconds"] = round(own["sampling_seconds"], 1)
            if args.synthetic:
                have = {p.task_id for part in parts for p in load_records(part, Pair)}
                path, n = synthetic([t for t in train_tasks if t.task_id not in have], executor, out,
                                    args.synthetic, "train_synthetic_", args)
                parts.append(path)
                counts["synthetic pairs"] = n
            train_pairs = concatenate(parts, out / "train_pairs.jsonl")
        if args.heldout_pairs:
            heldout_pairs = Path(args.heldout_pairs)
        else:
            heldout_pairs, n = synthetic(heldout_tasks, executor, out, args.heldout_synthetic, "heldout_synthetic_",
                                         args)
        counts["held-out pairs"] = len(load_records(heldout_pairs, Pair))
        train_ids = {p.task_id for p in load_records(train_pairs, Pair)}
        overlap = train_ids & {p.task_id for p in load_records(heldout_pairs, Pair)}
        if overlap:
            raise DataError(f"held-out pairs share tasks with the training pairs: {sorted(overlap)[:5]}")
        if not train_ids or not counts["held-out pairs"]:
            raise DataError(f"no pairs to train on or to measure ({counts}); raise --synthetic/--heldout-synthetic")
        print(f"== pairs: {counts}", flush=True)

        # 2. Every method and seed: train (held-out metrics along the way), evaluate where asked.
        reports: dict[str, list[dict]] = {}
        passes: dict[str, list[list[float]]] = {}
        runs: dict[str, list[dict]] = {}
        for method in methods:
            if method.loss is None:
                continue
            for seed in seeds:
                run_dir = out / "runs" / method.slug / f"seed-{seed}"
                print(f"== {method.name}, seed {seed}", flush=True)
                train_run(args, method, seed, train_pairs, heldout_pairs, run_dir, method.name in evaluated)
                reports.setdefault(method.name, []).append(read_json(run_dir / "heldout_metrics.json"))
                runs.setdefault(method.name, []).append(curves(run_dir))
                if method.name in evaluated:
                    passes.setdefault(method.name, []).append(evaluate_run(
                        args, str(run_dir / "final"), heldout_tasks, config, executor, run_dir / "eval", seed))
        if any(m.loss is None for m in methods):
            # The starting model's values are every run's start; its pass@k needs no training.
            reports["untrained"] = reports[REFERENCE]
            if "untrained" in evaluated:
                greedy = args.eval_temperature == 0
                passes["untrained"] = [evaluate_run(args, args.model, heldout_tasks, config, executor,
                                                    out / "runs" / "untrained" / (f"seed-{s}" if not greedy else "eval"),
                                                    s) for s in (seeds[:1] if greedy else seeds)]
                if greedy:  # one greedy evaluation stands for every seed
                    passes["untrained"] = passes["untrained"] * len(seeds)

    # 3. Intervals and the table.
    names = [m.name for m in methods if m.name in reports]
    table = {name: {} for name in names}
    differences = {name: {} for name in names}
    for metric in METRICS:
        values = [[per_pair(r, metric, name == "untrained") for r in reports[name]] for name in names]
        for name, ci, diff in zip(names, bootstrap(values, args.bootstrap),
                                  bootstrap_differences(values, names.index(REFERENCE), args.bootstrap)):
            table[name][metric], differences[name][metric] = ci, diff
    k_label = f"pass@{1}" + (f" (n={args.eval_samples}, T={args.eval_temperature})" if args.eval_samples > 1 else "")
    pass_names = [n for n in names if n in passes]
    if pass_names:
        values = [[[t["1"] for t in seed_tasks] for seed_tasks in passes[n]] for n in pass_names]
        for name, ci in zip(pass_names, bootstrap(values, args.bootstrap)):
            table[name]["pass@1"] = ci
        if REFERENCE in pass_names:
            for name, diff in zip(pass_names, bootstrap_differences(values, pass_names.index(REFERENCE),
                                                                    args.bootstrap)):
                differences[name]["pass@1"] = diff
    seconds = time.monotonic() - started
    text = markdown(args, names, table, differences, counts, executor_note, seeds, len(heldout_tasks), k_label,
                    seconds)
    print("\n" + text)
    RESULTS_DIR.mkdir(exist_ok=True)
    (out / "table.md").write_text(text, encoding="utf-8")
    (RESULTS_DIR / f"{args.name}.md").write_text(text, encoding="utf-8")
    plot_curves({n: runs[n] for n in names if n in runs}, RESULTS_DIR / f"{args.name}-curves.png",
                f"held-out pairs: mean over seeds {seeds}, band min-max")
    shutil.copyfile(RESULTS_DIR / f"{args.name}-curves.png", out / "curves.png")
    write_json(RESULTS_DIR / f"{args.name}.json", {
        "settings": settings_of(args), "seeds": seeds, "counts": counts, "seconds": round(seconds, 1),
        "results": {n: {k: list(v) for k, v in table[n].items()} for n in names},
        "differences_vs_" + REFERENCE.replace(" ", "_"): {n: {k: list(v) for k, v in differences[n].items()}
                                                          for n in names},
    })
    print(f"saved {RESULTS_DIR / args.name}.md, .json and -curves.png", flush=True)
    return 0


def _cell(ci: Optional[tuple[float, float, float]], digits: int = 3) -> str:
    if ci is None or math.isnan(ci[0]):
        return "-"
    return f"{ci[0]:.{digits}f} [{ci[1]:.{digits}f}, {ci[2]:.{digits}f}]"


def markdown(args, names, table, differences, counts, executor_note, seeds, heldout_tasks, k_label, seconds) -> str:
    columns = list(METRICS) + ["pass@1"]
    labels = [METRICS[c] for c in METRICS] + [k_label]
    head = "| method | " + " | ".join(labels) + " |\n|---|" + "---:|" * len(columns)
    rows = ["| " + name + " | " + " | ".join(_cell(table[name].get(c)) for c in columns) + " |" for name in names]
    diff_rows = ["| " + name + " | " + " | ".join(_cell(differences[name].get(c)) for c in columns) + " |"
                 for name in names if name != REFERENCE]
    settings = (f"model {args.model or 'bundled SmolLM2-135M-Instruct'}; {args.steps} steps x "
                f"{args.batch_pairs * args.grad_accum} pairs, lr {args.lr}, beta {args.beta}; held-out pairs measured "
                f"every {args.heldout_steps} steps; seeds {seeds}; HumanEval split {args.train_tasks} train / "
                f"{heldout_tasks} held-out tasks (split seed {args.split_seed}); {args.max_new_tokens} new tokens")
    return (f"# IterPref mechanism experiment ({args.name})\n\n{settings}.\n\nPairs: "
            + ", ".join(f"{k} {v}" for k, v in counts.items()) + f".\n\n{executor_note}\n\n"
            "Mean over seeds, with a 95% bootstrap interval (seeds and held-out pairs or tasks resampled). "
            "Displacement: change of the mean per-token log-prob of the chosen completion from the starting model "
            "(negative: the correct program became less likely). Margin: summed log-prob of the chosen fix lines "
            "minus that of the rejected error lines, at the end of training.\n\n"
            f"{head}\n" + "\n".join(rows) + f"\n\nDifference from {REFERENCE} (paired bootstrap, same draws):\n\n"
            f"{head}\n" + "\n".join(diff_rows) + f"\n\nWall time {seconds:.0f} s.\n")


if __name__ == "__main__":
    sys.exit(main())
