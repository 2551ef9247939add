"""Pairs of the model's own: the single-sample debugging loop beside repair sampling, on the same tasks, in one run.

Issue 15's target: on the 120 HumanEval training tasks, at least 10 pairs from the bundled model at no more than
3x the single-sample loop's sampling time. Both loops run on the same tasks with the same rounds, the same
sampler settings and the same executor, one after the other; each is timed from its first sample to its last
verdict ("sampling" below: generation and execution). Prints, for each, the tasks that passed, the pairs (one
per task, `iterpref pairs`' defaults), pairs per 100 tasks, pairs per minute of sampling, and the time ratio.

    python benchmarks/bench_own_pairs.py --output runs/own-pairs --train-tasks 120 --rounds 5 --samples 4
    python benchmarks/bench_own_pairs.py ... --sampler openai --base-url http://host:8000/v1 --sampler-model NAME

The training split is the demo's (HumanEval shuffled with --split-seed, the first --train-tasks). Each loop's
trajectories go to --output and a rerun resumes them (refine's own resume); the seconds of every run that
worked on a loop add up, so an interrupted loop is timed in full. Results: benchmarks/results/<name>.md, .json.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without installing
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from iterpref.errors import ConfigError, DataError, IterprefError  # noqa: E402
from iterpref.records import read_json, write_json  # noqa: E402
from iterpref.refine.feedback import REPAIR_PROMPTS  # noqa: E402
from iterpref.samplers import Sampler  # noqa: E402

RESULTS_DIR = Path(__file__).parent / "results"
TARGET_PAIRS, TARGET_RATIO = 10, 3.0


def run_loop(tasks, make_sampler: Callable[[], Sampler], executor, out: Path, label: str, rounds: int,
             samples: int, first_samples: int, repair_style: str) -> dict:
    """One debugging loop, resumed if its trajectories exist; its pairs and its accumulated seconds."""
    from iterpref.pairs import write_pairs
    from iterpref.refine import load_trajectories, refine

    trajectories = out / f"{label}.trajectories.jsonl"
    clock = out / f"{label}.seconds.json"
    seconds = read_json(clock)["seconds"] if clock.is_file() else 0.0
    if not (out / f"{label}.done").is_file():
        sampler = make_sampler()
        started = time.monotonic()
        try:
            summary = refine(tasks, sampler, executor, trajectories, max_rounds=rounds, samples=samples,
                             first_samples=first_samples, repair_style=repair_style)
        finally:
            seconds += time.monotonic() - started
            write_json(clock, {"seconds": seconds})
            sampler.close()
        if summary.unfinished:
            raise DataError(f"{label}: {summary.unfinished} tasks could not be judged (executor errors); rerun")
        (out / f"{label}.done").write_text("", encoding="utf-8")
    loaded = load_trajectories(trajectories)
    pairs, pair_summary = write_pairs(loaded, out / f"{label}.pairs.jsonl", out / f"{label}.pairs.summary.json",
                                      seed=0)
    passed = sum(any(a.passed for a in attempts) for attempts in loaded.values())
    seconds = round(seconds, 2)
    return {"label": label, "samples": samples, "first_samples": first_samples, "tasks": len(loaded), "passed": passed,
            "passed_first_round": sum(any(a.passed for a in attempts if a.round == 0) for attempts in loaded.values()),
            "pairs": len(pairs), "seconds": seconds,
            "pairs_per_100_tasks": round(100 * len(pairs) / max(1, len(loaded)), 2),
            "pairs_per_minute": round(60 * len(pairs) / seconds, 3) if seconds else None}


def compare(tasks, make_sampler, executor, out: Path, rounds: int, samples: int, repair_style: str,
            first_samples: int | None = None) -> dict:
    """The single-sample loop, then repair sampling with ``samples`` candidates (``first_samples`` in round 0,
    default ``samples``), on the same tasks."""
    out.mkdir(parents=True, exist_ok=True)
    single = run_loop(tasks, make_sampler, executor, out, "single", rounds, 1, 1, repair_style)
    first = samples if first_samples is None else first_samples
    label = f"samples-{samples}" if first == samples else f"samples-{first}-then-{samples}"
    many = run_loop(tasks, make_sampler, executor, out, label, rounds, samples, first, repair_style)
    ratio = many["seconds"] / single["seconds"] if single["seconds"] else None
    return {"rounds": rounds, "single": single, "repair_sampling": many,
            "time_ratio": round(ratio, 2) if ratio is not None else None,
            "target_met": many["pairs"] >= TARGET_PAIRS and ratio is not None and ratio <= TARGET_RATIO}


def markdown(result: dict, settings: dict) -> str:
    rows = [result["single"], result["repair_sampling"]]
    table = "\n".join(
        f"| {r['first_samples']}, then {r['samples']} | {r['tasks']} | {r['passed']} ({r['passed_first_round']} at round 0) | {r['pairs']} | "
        f"{r['pairs_per_100_tasks']} | {r['pairs_per_minute']} | {r['seconds']} |" for r in rows)
    verdict = "met" if result["target_met"] else "not met"
    return ("# Pairs of the model's own: single-sample loop vs repair sampling\n\n"
            + "; ".join(f"{k} {v}" for k, v in settings.items()) + ".\n\n"
            "| candidates in round 0, then per repair round | tasks | tasks passed | pairs | pairs per 100 tasks | pairs per minute | "
            "sampling seconds |\n|---:|---:|---:|---:|---:|---:|---:|\n" + table + "\n\n"
            f"Sampling time, repair sampling / single: {result['time_ratio']}. Target (>= {TARGET_PAIRS} pairs at "
            f"<= {TARGET_RATIO}x the single-sample time): {verdict}.\n")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", default="runs/own-pairs", help="folder for both loops (a rerun resumes)")
    parser.add_argument("--train-tasks", type=int, default=120)
    parser.add_argument("--split-seed", type=int, default=0)
    parser.add_argument("--rounds", type=int, default=5, help="repair rounds after round 0 (the paper: at most 5)")
    parser.add_argument("--samples", type=int, default=4, help="candidates per task and round, repair sampling")
    parser.add_argument("--first-samples", type=int, default=None,
                        help="repair sampling's candidates in round 0 (default: --samples); 1 leaves more tasks "
                             "failing at first, the ones that can give a pair")
    parser.add_argument("--repair-prompt", choices=REPAIR_PROMPTS, default="brief",
                        help="repair prompt of both loops (default brief: the bundled model repairs nothing from "
                             "the full one; see iterpref refine --help)")
    parser.add_argument("--temperature", type=float, default=0.8)
    parser.add_argument("--max-new-tokens", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=32, help="hf: rows decoded at once")
    parser.add_argument("--sampler", choices=["hf", "openai"], default="hf")
    parser.add_argument("--model", default=None, help="hf: a model folder (default: the bundled SmolLM2-135M)")
    parser.add_argument("--base-url", default=None, help="openai: the server's /v1 URL")
    parser.add_argument("--sampler-model", default=None, help="openai: the served model's name")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--bf16", choices=["yes", "no"], default="no",
                        help="hf: sample with bfloat16 weights (1.5x faster on a CPU with AVX512-BF16; both loops)")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--executor", default="auto", help="auto, docker, local or a URL of `sandbox serve`")
    parser.add_argument("--name", default="own-pairs", help="file name of the results in benchmarks/results/")
    args = parser.parse_args(argv)
    try:
        return run(args)
    except IterprefError as exc:
        print(f"bench_own_pairs: {exc}", file=sys.stderr)
        return 2


def run(args) -> int:
    from iterpref.demo import DemoConfig, hf_sampler, open_executor, split_tasks
    from iterpref.samplers import make_sampler

    if args.train_tasks < 1 or args.rounds < 0 or args.samples < 2:
        raise ConfigError("--train-tasks must be at least 1, --rounds 0 or more, --samples at least 2 "
                          "(1 is the single-sample loop it is compared with)")
    if args.first_samples is not None and args.first_samples < 1:
        raise ConfigError("--first-samples must be at least 1")
    if args.temperature <= 0:
        raise ConfigError("--temperature must be above 0: greedy candidates of one prompt are copies")
    if args.threads > 0:
        import torch

        torch.set_num_threads(args.threads)
    config = DemoConfig(train_tasks=args.train_tasks, heldout_tasks=1, seed=args.split_seed, model=args.model,
                        max_new_tokens=args.max_new_tokens, batch_size=args.batch_size, device=args.device,
                        progress=True)
    tasks, _ = split_tasks(config)
    if args.sampler == "hf":
        def sampler():
            return hf_sampler(args.model, config, args.temperature, bf16=args.bf16 == "yes")
    else:
        def sampler():
            return make_sampler("openai", base_url=args.base_url, model=args.sampler_model,
                                temperature=args.temperature, max_tokens=args.max_new_tokens)
    out = Path(args.output)
    settings = {"sampler": args.sampler, "model": args.model or args.sampler_model or "bundled SmolLM2-135M-Instruct",
                "tasks": len(tasks), "split seed": args.split_seed, "rounds": args.rounds,
                "repair prompt": args.repair_prompt,
                "temperature": args.temperature, "max new tokens": args.max_new_tokens,
                "bf16 weights": args.bf16 == "yes" and args.sampler == "hf"}
    saved = out / "settings.json"
    if saved.is_file() and read_json(saved) != settings:
        raise ConfigError(f"{out} holds loops run with other settings ({read_json(saved)}); choose another --output")
    out.mkdir(parents=True, exist_ok=True)
    write_json(saved, settings)
    with open_executor(args.executor, out) as (executor, note):
        result = compare(tasks, sampler, executor, out, args.rounds, args.samples, args.repair_prompt,
                         args.first_samples)
    text = markdown(result, settings) + f"\n{note}\n"
    print("\n" + text)
    RESULTS_DIR.mkdir(exist_ok=True)
    (RESULTS_DIR / f"{args.name}.md").write_text(text, encoding="utf-8")
    write_json(RESULTS_DIR / f"{args.name}.json", {"settings": settings, **result})
    return 0


if __name__ == "__main__":
    sys.exit(main())
