"""`iterpref demo`: the whole method on a real model against the real executor, with a report at the end.

Stages (each prints a banner; finished stages are reused when the demo is run again on the same folder):

1. executor  -- the Docker service (``sandbox serve --backend docker`` on a free loopback port) when an engine
                and the runner image are there, else this machine's process backend with a loud warning
2. tasks     -- HumanEval shuffled with the seed and split into training and held-out tasks
3. eval      -- pass@1 (greedy) of the starting model on the held-out tasks
4. refine    -- the debugging loop on the training tasks
5. pairs     -- preference pairs from the trajectories
6. train     -- focal DPO (line mask, alpha 1) on the pairs; skipped when there are none
7. eval      -- pass@1 of the trained model on the same held-out tasks
8. report    -- report.md with plots
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import sys
import threading
import time
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional

from iterpref.errors import ConfigError, ExecutorUnavailable
from iterpref.records import read_json, read_jsonl, write_json
from iterpref.refine import check_sample_counts
from iterpref.refine.feedback import check_repair_style
from sandbox.launch import docker_problem, start_service

CONFIG_NAME = "demo_config.json"
# Settings that change what a stage produces; a rerun with other values needs --fresh or another folder.
KEYED = ("train_tasks", "heldout_tasks", "rounds", "seed", "sampler", "model", "base_url", "sampler_model",
         "max_new_tokens", "temperature", "prefill", "min_pairs", "train_steps", "lr", "refine_script",
         "repair_samples", "first_samples", "repair_prompt")


@dataclass
class DemoConfig:
    output_dir: str = "runs/demo"
    train_tasks: int = 20
    heldout_tasks: int = 12
    rounds: int = 2
    # Candidates per task in every repair round (iterpref refine --repair-samples): more tasks reach a pass, so
    # more pairs are the model's own.
    repair_samples: int = 3
    # Candidates in round 0 (--first-samples): one, since a task passed at the first try gives no pair; the
    # candidates go to the repairs instead (docs/data.md).
    first_samples: int = 1
    # The repair prompt's style (iterpref refine --repair-prompt). brief suits the bundled 135M model, which repairs
    # nothing from the full prompt (docs/data.md); a served model (--sampler openai) does better with full.
    repair_prompt: str = "brief"
    seed: int = 0
    sampler: str = "hf"  # refine's replies: hf (the model being trained) or openai (a served model)
    model: Optional[str] = None  # HF folder trained and evaluated (default: the bundled SmolLM2-135M-Instruct)
    base_url: Optional[str] = None  # openai sampler
    sampler_model: Optional[str] = None  # openai sampler: the served model's name
    max_new_tokens: int = 256
    temperature: float = 0.8  # refine's sampling temperature; evaluation is greedy
    prefill: str = "fence"  # hf: how the model's reply is started (see iterpref.samplers.hf)
    batch_size: int = 32  # hf: rows decoded at once
    # When the model's own repairs give fewer pairs than this, synthetic pairs (a reference solution with one
    # injected bug vs the reference; iterpref.pairs.synthetic) from the other training tasks top the training set up to
    # it, so training and the second evaluation still run. The report counts both kinds. 0: never.
    min_pairs: int = 8
    train_steps: int = 8
    lr: float = 5e-6
    executor: str = "auto"  # auto, docker, local or a URL of `sandbox serve`
    device: str = "auto"  # auto (CUDA when present), cpu or cuda
    threads: int = 0  # torch CPU threads; 0 keeps torch's default (1 helps on a busy shared machine)
    fresh: bool = False
    refine_script: Optional[str] = None  # tests only: refine's replies from a scripted-sampler JSONL
    progress: bool = True

    def validate(self) -> None:
        for name in ("train_tasks", "heldout_tasks", "max_new_tokens", "batch_size", "train_steps"):
            if getattr(self, name) < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        if self.min_pairs < 0:
            raise ConfigError(f"--min-pairs must be 0 (no synthetic top-up) or more, got {self.min_pairs}")
        if self.threads < 0:
            raise ConfigError(f"--threads must be 0 (torch's default) or more, got {self.threads}")
        if self.rounds < 0:
            raise ConfigError(f"--rounds must be 0 or more, got {self.rounds}")
        check_sample_counts(self.repair_samples, self.first_samples,
                            greedy=self.temperature == 0 and not self.refine_script)
        check_repair_style(self.repair_prompt, "--repair-prompt")
        if self.train_tasks + self.heldout_tasks > 164:
            raise ConfigError(f"--train-tasks + --heldout-tasks is {self.train_tasks + self.heldout_tasks}; "
                            "HumanEval has 164 tasks")
        if self.temperature < 0 or self.lr <= 0:
            raise ConfigError("--temperature must be >= 0 and --lr > 0")
        if self.sampler == "openai" and not (self.base_url and self.sampler_model):
            raise ConfigError("--sampler openai needs --base-url and --sampler-model (the served model's name)")
        if self.sampler not in ("hf", "openai"):
            raise ConfigError(f"--sampler must be hf or openai, not {self.sampler!r}")


def banner(step: int, total: int, title: str) -> None:
    print(f"\n=== [{step}/{total}] {title} ===", flush=True)


def warn(text: str) -> None:
    line = "!" * 78
    print(f"\n{line}\nWARNING: {text}\n{line}\n", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- executor


@contextmanager
def docker_service(log_path: Path, startup_s: float = 120.0) -> Iterator[str]:
    """Run ``sandbox serve --backend docker`` on a free loopback port until the block ends; yields its URL."""
    # A plain `kill` of the demo must still stop the service (and its containers): turn SIGTERM into an exception.
    previous = signal.getsignal(signal.SIGTERM)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        with start_service("docker", pool_size=2, log_path=log_path, ready_s=startup_s) as service:
            yield service.url
    finally:
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, previous)


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


@contextmanager
def open_executor(choice: str, out: Path) -> Iterator[tuple[object, str]]:
    """The executor and a sentence for the report saying which one it is; closed (and a Docker service stopped)
    when the block ends. Only starting it is guarded: errors of the block itself pass through untouched."""
    from iterpref.executor import close_executor

    with ExitStack() as stack:
        executor, note = _start_executor(choice, out, stack)
        stack.callback(close_executor, executor)
        yield executor, note


def _start_executor(choice: str, out: Path, stack: ExitStack) -> tuple[object, str]:
    from iterpref.executor import make_executor

    local_note = ("**Executor: process backend on this machine.** Candidate programs ran as local subprocesses "
                  "with resource limits but without container isolation; use Docker for untrusted models.")
    if choice in ("auto", "docker"):
        problem = docker_problem()
        if problem is None:
            with ExitStack() as attempt:
                try:
                    url = attempt.enter_context(docker_service(out / "executor.log"))
                    executor = make_executor(url)
                except (RuntimeError, ExecutorUnavailable) as exc:  # it did not start or does not answer
                    problem = str(exc)
                else:
                    stack.enter_context(attempt.pop_all())  # the service now lives as long as the caller's block
                    print(f"executor: Docker service at {url} (log {out / 'executor.log'})", flush=True)
                    return executor, f"**Executor: Docker** (`sandbox serve --backend docker` at {url})."
        if choice == "docker":
            raise ExecutorUnavailable(f"--executor docker: {problem}; run images/build-images.sh "
                                      "or use --executor auto")
        warn("Docker is not usable here, so candidate programs run in the PROCESS BACKEND on this machine, "
             f"without container isolation.\nReason: {problem}\nFor isolation: start a Docker engine and run "
             "images/build-images.sh, or pass --executor URL of a `sandbox serve` service.")
        return make_executor("local"), local_note
    executor = make_executor(choice)
    if choice == "local":
        warn("--executor local: candidate programs run in the process backend, without container isolation.")
    return executor, local_note if choice == "local" else f"**Executor: the service at {choice}.**"


# ---------------------------------------------------------------- stages


def hf_sampler(model: Optional[str], config: DemoConfig, temperature: float, bf16: bool = False):
    from iterpref.samplers.hf import HFSampler, resolve_device

    return HFSampler(model, batch_size=config.batch_size, temperature=temperature,
                     max_new_tokens=config.max_new_tokens, seed=config.seed, device=resolve_device(config.device),
                     progress=config.progress, prefill=config.prefill, bf16=bf16)


def _refine_sampler(config: DemoConfig):
    from iterpref.samplers import make_sampler

    if config.refine_script:
        return make_sampler("scripted", script=config.refine_script)
    if config.sampler == "openai":
        return make_sampler("openai", model=config.sampler_model, base_url=config.base_url,
                            temperature=config.temperature, max_tokens=config.max_new_tokens, seed=config.seed)
    return hf_sampler(config.model, config, config.temperature)


def split_tasks(config: DemoConfig):
    """HumanEval shuffled with the seed: the first ``train_tasks`` train, the next ``heldout_tasks`` are held out."""
    from iterpref.tasks import humaneval_tasks

    tasks = humaneval_tasks()
    random.Random(config.seed).shuffle(tasks)
    return tasks[: config.train_tasks], tasks[config.train_tasks : config.train_tasks + config.heldout_tasks]


def eval_stage(tasks, model: Optional[str], config: DemoConfig, executor, out: Path):
    from iterpref.evaluate import EvalSummary, evaluate, format_summary

    if (out / "summary.json").is_file():
        print(f"reusing {out / 'summary.json'}", flush=True)
        summary = EvalSummary.load(out / "summary.json")
    else:
        sampler = hf_sampler(model, config, temperature=0.0)
        try:
            summary, _ = evaluate(tasks, sampler, executor, samples=1, output_dir=out, wave_tasks=config.batch_size * 4,
                                  settings={"model": model or "bundled SmolLM2-135M-Instruct", "temperature": 0.0,
                                            "max_new_tokens": config.max_new_tokens}, progress=config.progress)
        finally:
            sampler.close()
    print(format_summary(summary), flush=True)
    return summary


def _check_config(config: DemoConfig, out: Path) -> None:
    """Start fresh, or make sure the folder's earlier run used the same settings before reusing its stages."""
    saved_path = out / CONFIG_NAME
    if config.fresh and out.exists():
        if not saved_path.is_file() and any(out.iterdir()):
            raise ConfigError(f"--fresh would delete {out}, which is not a demo folder (no {CONFIG_NAME}); "
                            "choose another --output")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    current = {k: getattr(config, k) for k in KEYED}
    if saved_path.is_file():
        saved = read_json(saved_path)
        changed = [k for k in KEYED if saved.get(k) != current[k]]
        if changed:
            raise ConfigError(f"{out} holds a demo run with other settings ({', '.join(changed)}); "
                            "add --fresh to start over or choose another --output")
    write_json(saved_path, current)


def run_demo(config: DemoConfig) -> Path:
    """Run every stage (reusing finished ones) and return the report's path."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    config.validate()
    if config.threads:
        import torch

        torch.set_num_threads(config.threads)
    out = Path(config.output_dir)
    _check_config(config, out)
    from iterpref import report, stats
    from iterpref.errors import SamplerError
    from iterpref.pairs import tokenizer_counter, write_pairs
    from iterpref.refine import load_trajectories, refine
    from iterpref.report import DemoFacts
    from iterpref.tasks import load_tasks, write_tasks

    total = 8
    seconds: dict[str, float] = {}
    started = time.monotonic()

    def lap(name: str, since: float) -> None:
        seconds[name] = time.monotonic() - since
        print(f"({name}: {seconds[name]:.0f} s; {time.monotonic() - started:.0f} s so far)", flush=True)

    banner(1, total, "executor")
    with open_executor(config.executor, out) as (executor, executor_note):
        banner(2, total, f"tasks: HumanEval split {config.train_tasks} train / {config.heldout_tasks} held out "
                         f"(seed {config.seed})")
        train_path, heldout_path = out / "train_tasks.jsonl", out / "heldout_tasks.jsonl"
        if not (train_path.is_file() and heldout_path.is_file()):
            train_tasks, heldout = split_tasks(config)
            write_tasks(train_tasks, train_path)
            write_tasks(heldout, heldout_path)
        train_tasks, heldout = load_tasks(train_path), load_tasks(heldout_path)
        print(f"{train_path} ({len(train_tasks)}), {heldout_path} ({len(heldout)})", flush=True)

        since = time.monotonic()
        banner(3, total, "eval: starting model on the held-out tasks (greedy pass@1)")
        before = eval_stage(heldout, config.model, config, executor, out / "eval_before")
        lap("eval before", since)

        since = time.monotonic()
        banner(4, total, f"refine: debugging loop on {len(train_tasks)} training tasks, up to {config.rounds} repairs, "
                         f"{config.first_samples} candidate(s) per task in round 0 and {config.repair_samples} in each repair "
                         f"round, {config.repair_prompt} repair prompt")
        trajectories_path = out / "trajectories.jsonl"
        done_marker = out / "refine_done.json"
        if done_marker.is_file():
            print(f"reusing {trajectories_path}", flush=True)
        else:
            sampler = _refine_sampler(config)
            try:
                summary = refine(train_tasks, sampler, executor, trajectories_path, max_rounds=config.rounds,
                                 wave_size=max(config.batch_size * 4, 1), samples=config.repair_samples,
                                 first_samples=config.first_samples, repair_style=config.repair_prompt, progress=config.progress)
            except (SamplerError, ExecutorUnavailable) as exc:
                raise type(exc)(f"{exc} (finished attempts are kept in {trajectories_path}; rerun to resume)") from None
            finally:
                sampler.close()
                del sampler
            if summary.unfinished:
                raise ExecutorUnavailable(f"{summary.unfinished} tasks could not be judged (executor infra errors); "
                                          "rerun to resume")
            write_json(done_marker, {"passed": summary.passed, "tasks": summary.tasks})
        trajectories = load_trajectories(trajectories_path)
        run_stats = stats.run_stats(trajectories)
        print(stats.format_table(run_stats), flush=True)
        lap("refine", since)

        since = time.monotonic()
        banner(5, total, "pairs: final passing version vs an earlier failing one")
        pairs_path = out / "pairs.jsonl"
        pairs, pair_summary = write_pairs(trajectories, pairs_path, out / "pairs.summary.json", seed=config.seed,
                                          count_tokens=tokenizer_counter(config.model))
        run_stats = stats.run_stats(trajectories, pair_summary.to_dict())
        stats.plot(run_stats, out / "refine_rounds.png")
        print(f"{len(pairs)} pairs from {pair_summary.candidates} candidates -> {pairs_path}", flush=True)
        train_pairs_path, synthetic = pairs_path, 0
        if len(pairs) < config.min_pairs:
            train_pairs_path, synthetic = _top_up(config, executor, out, train_tasks, pairs, pairs_path)

        training_pairs = len(pairs) + synthetic
        heldout_pairs_path = _heldout_pairs(config, executor, out, heldout) if training_pairs else None
        lap("pairs", since)

        since = time.monotonic()
        banner(6, total, "train: focal DPO, line mask, alpha 1")
        final_dir = out / "train" / "final"
        curves, train_note, after, mechanism = None, None, None, None
        if not training_pairs:
            train_note = "Skipped: no pairs to train on."
            print(train_note, flush=True)
        else:
            if not (final_dir / "config.json").is_file():
                from iterpref.train import TrainConfig, train

                train(TrainConfig(pairs=str(train_pairs_path), output_dir=str(out / "train"), model=config.model,
                                  loss="focal", mask="line", alpha=1.0, max_steps=config.train_steps,
                                  batch_size=1, lr=config.lr, warmup_ratio=0.1, save_steps=10**6,
                                  save_total_limit=None, seed=config.seed, progress=config.progress,
                                  heldout_pairs=str(heldout_pairs_path or ""),
                                  heldout_steps=max(1, config.train_steps // 4)))
            else:
                print(f"reusing {final_dir}", flush=True)
            curves = report.copy_into(out / "train" / "curves.png", out, "training_curves.png")
            if (out / "train" / "heldout_metrics.json").is_file():
                mechanism = read_json(out / "train" / "heldout_metrics.json")
            train_note = _train_note(out / "train" / "metrics.jsonl", training_pairs, config.train_steps)
            if synthetic:
                train_note += f" Of those pairs, {synthetic} are synthetic and {len(pairs)} the model's own."
            print(train_note, flush=True)
        lap("train", since)

        if training_pairs:
            since = time.monotonic()
            banner(7, total, "eval: trained model on the same held-out tasks")
            after = eval_stage(heldout, str(final_dir), config, executor, out / "eval_after")
            lap("eval after", since)
        else:
            banner(7, total, "eval after training: skipped (nothing was trained)")

    banner(8, total, "report")
    settings = {"model": config.model or "bundled SmolLM2-135M-Instruct",
                "refine sampler": (f"scripted ({config.refine_script})" if config.refine_script else
                                   f"openai {config.sampler_model} at {config.base_url}" if config.sampler == "openai"
                                   else "the model itself"),
                "training tasks": len(train_tasks), "held-out tasks": len(heldout), "repair rounds": config.rounds,
                "candidates per task in round 0": config.first_samples,
                "candidates per task and repair round": config.repair_samples, "repair prompt": config.repair_prompt,
                "max new tokens": config.max_new_tokens, "refine temperature": config.temperature,
                "train steps": config.train_steps, "learning rate": config.lr, "seed": config.seed}
    facts = DemoFacts(settings=settings, executor_note=executor_note, refine_table=stats.format_table(run_stats),
                      refine_plot="refine_rounds.png", pair_summary=pair_summary.to_dict(), train_curves=curves,
                      train_note=train_note, before=before, after=after, stage_seconds=seconds,
                      synthetic_pairs=synthetic, mechanism=mechanism)
    path = report.write_demo_report(facts, out)
    print(report.pairs_meaning(len(pairs), synthetic).replace("**", ""), flush=True)
    print(f"\nreport: {path}  (total {time.monotonic() - started:.0f} s)", flush=True)
    return path


def _top_up(config: DemoConfig, executor, out: Path, train_tasks, pairs, pairs_path: Path) -> tuple[Path, int]:
    """Synthetic pairs from the training tasks without a model pair, up to ``min_pairs`` in all; returns the file
    to train on (the model's pairs, then the synthetic ones) and how many synthetic pairs it holds."""
    from iterpref.pairs import tokenizer_counter
    from iterpref.pairs.synthetic import synthetic_pairs

    warn(f"the model's repairs gave {len(pairs)} pair(s), fewer than --min-pairs {config.min_pairs}: adding "
         "SYNTHETIC pairs (a reference solution with one injected bug vs the reference) so that training and the "
         "second evaluation run. They test the pipeline, not the method; the report counts them apart.")
    have = {p.task_id for p in pairs}
    candidates = [t for t in train_tasks if t.task_id not in have]
    extra, _, extra_path = synthetic_pairs(candidates, executor, out, seed=config.seed,
                                           limit=config.min_pairs - len(pairs),
                                           count_tokens=tokenizer_counter(config.model), progress=config.progress)
    combined = out / "train_pairs.jsonl"
    combined.write_text(pairs_path.read_text(encoding="utf-8") + extra_path.read_text(encoding="utf-8"),
                        encoding="utf-8")
    print(f"{len(extra)} synthetic pairs -> {extra_path}; training on {combined} ({len(pairs) + len(extra)} pairs)",
          flush=True)
    return combined, len(extra)


def _heldout_pairs(config: DemoConfig, executor, out: Path, heldout) -> Optional[Path]:
    """Synthetic pairs from the held-out tasks (never trained on), for the mechanism metrics of training; None
    when no held-out task gives one. They measure likelihoods only: the held-out evaluation does not see them."""
    from iterpref.pairs import tokenizer_counter
    from iterpref.pairs.synthetic import synthetic_pairs

    pairs, _, path = synthetic_pairs(heldout, executor, out, seed=config.seed, limit=len(heldout),
                                     count_tokens=tokenizer_counter(config.model), progress=config.progress,
                                     prefix="heldout_synthetic_")
    print(f"{len(pairs)} held-out pairs for the displacement and margin measurements -> {path}", flush=True)
    return path if pairs else None


def _train_note(metrics_path: Path, pairs: int, steps: int) -> str:
    records = []
    if metrics_path.is_file():
        records = [record for _, record in read_jsonl(metrics_path)]
    losses = [r for r in records if "loss" in r]
    if not losses:
        return f"Trained {steps} steps on {pairs} pairs (no metrics were logged)."
    first, last = losses[0], losses[-1]
    accuracy = last.get("rewards/accuracies")
    return (f"Trained {steps} optimiser steps on {pairs} pairs: loss {first['loss']:.4f} -> {last['loss']:.4f}"
            + (f", last reward accuracy {accuracy:.2f}" if accuracy is not None else "") + ".")
