"""Does focal preference learning beat vanilla DPO on the same debugging pairs?

Six rows, same pairs, same optimiser steps, same held-out tasks, greedy pass@1:

    untrained        the starting model
    IterPref a=1     focal DPO on the rejected side's error lines (line mask) + NLL on chosen
    IterPref a=0     focal DPO, line mask, no NLL term
    DPO              vanilla sigmoid DPO on whole sequences
    RPO              vanilla DPO + NLL on chosen
    SFT              NLL on chosen only

Pairs come from ``--pairs`` (e.g. a demo's pairs.jsonl), or from running the debugging loop here with the
bundled model on ``--train-tasks`` HumanEval tasks. Held-out tasks are ``--heldout-file`` or the seeded split
of ``iterpref demo``, disjoint from the training tasks. Every finished row is kept in ``--output`` and reused on
a rerun. The table (Markdown) is printed and saved as ``--output``/table.md and benchmarks/results/.

CPU, small:   python benchmarks/experiment.py --pairs runs/demo/pairs.jsonl --heldout-file runs/demo/heldout_tasks.jsonl
GPU, larger:  python benchmarks/experiment.py --train-tasks 120 --heldout-tasks 44 --rounds 5 --steps 200 \\
                  --max-new-tokens 512 --device cuda [--model PATH]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without installing
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from iterpref.demo import DemoConfig, eval_stage, hf_sampler, open_executor, split_tasks  # noqa: E402
from iterpref.errors import ConfigError, DataError, IterprefError  # noqa: E402
from iterpref.evaluate import PAPER_ERROR_TYPES  # noqa: E402
from iterpref.records import read_jsonl, write_json  # noqa: E402
from iterpref.report import ExperimentRow, error_type_rows, experiment_table  # noqa: E402
from iterpref.samplers.hf import PREFILLS  # noqa: E402

# name, loss preset, mask, alpha
METHODS = [
    ("IterPref a=1", "focal", "line", 1.0),
    ("IterPref a=0", "focal", "line", 0.0),
    ("DPO", "dpo", "none", 0.0),
    ("RPO", "rpo", "none", 1.0),
    ("SFT", "sft", "none", 1.0),
]
RESULTS_DIR = Path(__file__).parent / "results"


def make_pairs(args, config: DemoConfig, executor, out: Path, train_tasks) -> Path:
    """The debugging loop with the model on the training tasks, ``--chains`` times with different sampling seeds,
    then the pairs of every chain together (each chain's trajectories and pairs are reused when present)."""
    import dataclasses

    from iterpref.pairs import tokenizer_counter, write_pairs
    from iterpref.refine import load_trajectories, refine

    pairs_path = out / "pairs.jsonl"  # rebuilt from the chains each time, so a rerun with more chains adds theirs
    count_tokens = tokenizer_counter(args.model)
    lines = []
    for chain in range(args.chains):
        chain_dir = out / f"chain-{chain}"
        chain_dir.mkdir(exist_ok=True)
        chain_pairs, trajectories_path = chain_dir / "pairs.jsonl", chain_dir / "trajectories.jsonl"
        if not chain_pairs.is_file():
            print(f"== refine, chain {chain + 1}/{args.chains}", flush=True)
            chain_config = dataclasses.replace(config, seed=args.seed + chain)
            sampler = hf_sampler(args.model, chain_config, config.temperature)
            try:
                refine(train_tasks, sampler, executor, trajectories_path, max_rounds=args.rounds,
                       wave_size=config.batch_size * 4)
            finally:
                sampler.close()
            write_pairs(load_trajectories(trajectories_path), chain_pairs, chain_dir / "pairs.summary.json",
                        seed=args.seed + chain, count_tokens=count_tokens)
        lines += chain_pairs.read_text(encoding="utf-8").splitlines(keepends=True)
    pairs_path.write_text("".join(lines), encoding="utf-8")
    return pairs_path


def synthetic_pairs(args, executor, out: Path, train_tasks) -> Path:
    """Pairs without a model (see iterpref.pairs.synthetic): for checking the training and evaluation path when the
    model makes no pairs of its own; not the paper's data."""
    from iterpref.pairs import tokenizer_counter
    from iterpref.pairs.synthetic import synthetic_pairs as build

    _, _, path = build(train_tasks, executor, out, seed=args.seed, count_tokens=tokenizer_counter(args.model),
                       prefix="")
    return path


def train_row(args, pairs_path: Path, run_dir: Path, loss: str, mask: str, alpha: float) -> tuple[Path, float | None, float]:
    """Train one method (reused when its final model exists); returns (model folder, last loss, seconds)."""
    from iterpref.train import TrainConfig, train

    final = run_dir / "final"
    started = time.monotonic()
    if not (final / "config.json").is_file():
        train(TrainConfig(pairs=str(pairs_path), output_dir=str(run_dir), model=args.model, loss=loss, mask=mask,
                          alpha=alpha, max_steps=args.steps, batch_size=args.batch_pairs, grad_accum=args.grad_accum,
                          lr=args.lr, beta=args.beta, save_steps=10**6, save_total_limit=None, seed=args.seed,
                          ref_cache_dir=str(run_dir.parent / "ref_cache")))
        (run_dir / "seconds.txt").write_text(f"{time.monotonic() - started:.1f}\n")
    metrics = [record for _, record in read_jsonl(run_dir / "metrics.jsonl")]
    losses = [m["loss"] for m in metrics if "loss" in m]
    seconds = float((run_dir / "seconds.txt").read_text()) if (run_dir / "seconds.txt").is_file() else float("nan")
    return final, (losses[-1] if losses else None), seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", default="runs/experiment", help="folder for every row's model and eval")
    parser.add_argument("--pairs", help="pairs JSONL to train on (default: run the debugging loop here)")
    parser.add_argument("--synthetic-pairs", action="store_true",
                        help="pairs from injected one-line bugs in reference solutions instead of the model's own "
                             "repairs (checks the method's plumbing when the model makes no pairs; not the paper's data)")
    parser.add_argument("--heldout-file", help="held-out tasks JSONL (default: the demo's seeded split)")
    parser.add_argument("--train-tasks", type=int, default=24)
    parser.add_argument("--heldout-tasks", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=2, help="repair rounds when pairs are made here")
    parser.add_argument("--chains", type=int, default=1,
                        help="independent debugging runs per training task (different sampling seeds); a weak "
                             "model needs several to give enough pairs")
    parser.add_argument("--temperature", type=float, default=0.8, help="sampling temperature of the debugging loop")
    parser.add_argument("--prefill", choices=PREFILLS, default="fence",
                        help="how the model's reply is started (see `iterpref refine --help`)")
    parser.add_argument("--model", default=None, help="HF model folder (default: bundled SmolLM2-135M-Instruct)")
    parser.add_argument("--steps", type=int, default=8, help="optimiser steps per method (the same for all)")
    parser.add_argument("--batch-pairs", type=int, default=1, help="pairs per micro-batch")
    parser.add_argument("--grad-accum", type=int, default=1)
    parser.add_argument("--lr", type=float, default=5e-6)
    parser.add_argument("--beta", type=float, default=0.1)
    parser.add_argument("--max-new-tokens", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=8, help="prompts per generate call")
    parser.add_argument("--executor", default="auto", help="auto, docker, local or a URL of `sandbox serve`")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--name", default=None, help="file name of the saved table (default: experiment-<scale>)")
    args = parser.parse_args(argv)
    try:
        return run(args)
    except IterprefError as exc:
        print(f"experiment: error: {exc}", file=sys.stderr)
        return 2


def run(args: argparse.Namespace) -> int:
    from iterpref.records import Pair, load_records
    from iterpref.tasks import load_tasks

    if args.threads > 0:
        import torch

        torch.set_num_threads(args.threads)
    if args.chains < 1 or args.steps < 1 or args.rounds < 0:
        raise ConfigError("--chains and --steps must be at least 1, --rounds at least 0")
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    config = DemoConfig(train_tasks=args.train_tasks, heldout_tasks=args.heldout_tasks, seed=args.seed,
                        model=args.model, max_new_tokens=args.max_new_tokens, batch_size=args.batch_size,
                        device=args.device, temperature=args.temperature, prefill=args.prefill)
    train_tasks, heldout = split_tasks(config)
    if args.heldout_file:
        heldout = load_tasks(args.heldout_file)
    started = time.monotonic()
    with open_executor(args.executor, out) as (executor, executor_note):
        if args.pairs:
            pairs_path, source = Path(args.pairs), f"`{args.pairs}`"
        elif args.synthetic_pairs:
            pairs_path = synthetic_pairs(args, executor, out, train_tasks)
            source = ("**synthetic** debugging pairs (HumanEval reference solutions vs the same with one injected bug; "
                      "not model-generated, not the paper's data)")
        else:
            pairs_path, source = make_pairs(args, config, executor, out, train_tasks), "the model's own repairs"
        pairs = load_records(pairs_path, Pair)
        overlap = {p.task_id for p in pairs} & {t.task_id for t in heldout}
        if overlap:
            raise DataError(f"held-out tasks also appear in the pairs: {sorted(overlap)[:5]}")
        if not pairs:
            raise DataError(f"{pairs_path} holds no pairs: nothing to compare. Use more --train-tasks/--rounds, "
                            "a stronger --model, or --pairs from a larger run")
        print(f"== {len(pairs)} pairs, {len(heldout)} held-out tasks, {args.steps} steps per method", flush=True)

        print("== untrained", flush=True)
        rows = [ExperimentRow("untrained", "-", "-", "-", eval_stage(heldout, args.model, config, executor, out / "untrained" / "eval"))]
        for name, loss, mask, alpha in METHODS:
            print(f"== {name}", flush=True)
            run_dir = out / name.replace(" ", "_").replace("=", "")
            final, last_loss, seconds = train_row(args, pairs_path, run_dir, loss, mask, alpha)
            summary = eval_stage(heldout, str(final), config, executor, run_dir / "eval")
            rows.append(ExperimentRow(name, loss, mask, f"{alpha:g}", summary, last_loss, seconds))

    types = error_type_rows({r.name: r.summary for r in rows})
    table = experiment_table(rows, types)
    scale = (f"{len(pairs)} pairs from {source}, {len(heldout)} held-out HumanEval tasks, "
             f"{args.steps} steps x {args.batch_pairs * args.grad_accum} pairs, lr {args.lr}, beta {args.beta}, "
             f"greedy, {args.max_new_tokens} new tokens, model {args.model or 'bundled SmolLM2-135M-Instruct'}")
    text = (f"# IterPref experiment\n\n{scale}.\n\n{executor_note}\n\n{table}\n\n"
            f"Error-type columns count failing held-out programs; the paper tracks "
            f"{', '.join(PAPER_ERROR_TYPES)}. One held-out task is {100 / len(heldout):.1f} points of pass@1.\n"
            f"Wall time {time.monotonic() - started:.0f} s.\n")
    print("\n" + text)
    (out / "table.md").write_text(text, encoding="utf-8")
    RESULTS_DIR.mkdir(exist_ok=True)
    name = args.name or f"experiment-{len(pairs)}pairs-{len(heldout)}heldout-{args.steps}steps"
    (RESULTS_DIR / f"{name}.md").write_text(text, encoding="utf-8")
    rows_json = [{"method": r.name, "loss": r.loss, "mask": r.mask, "alpha": r.alpha, "final_loss": r.final_loss,
                  "train_seconds": r.train_seconds, **r.summary.to_dict()} for r in rows]
    write_json(RESULTS_DIR / f"{name}.json", {"rows": rows_json})
    print(f"saved {out / 'table.md'} and {RESULTS_DIR / name}.md/.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
