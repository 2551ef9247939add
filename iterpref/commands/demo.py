"""`iterpref demo`: the whole pipeline on embedded defaults (10.2 minutes measured on an idle 2-core CPU:
docs/demo.md), then a report."""

from __future__ import annotations

import argparse

from iterpref.demo import DemoConfig
from iterpref.refine.feedback import REPAIR_PROMPTS
from iterpref.samplers.hf import PREFILLS


def register(subparsers: argparse._SubParsersAction) -> None:
    d = DemoConfig()
    parser = subparsers.add_parser(
        "demo", help="run executor, refine, pairs, train and eval end to end on HumanEval; write a report",
        description="Split HumanEval into training and held-out tasks, run the debugging loop with the model, "
        "build pairs, train with the focal loss, evaluate before and after, and write report.md with plots. "
        "Finished stages in --output are reused unless --fresh.")
    parser.add_argument("-o", "--output", default=d.output_dir, help=f"folder for everything (default {d.output_dir})")
    parser.add_argument("--train-tasks", type=int, default=d.train_tasks, help=f"HumanEval tasks for refine (default {d.train_tasks})")
    parser.add_argument("--heldout-tasks", type=int, default=d.heldout_tasks, help=f"held-out tasks for eval (default {d.heldout_tasks})")
    parser.add_argument("--rounds", type=int, default=d.rounds, help=f"repair rounds after the first try (default {d.rounds}; the paper uses 5)")
    parser.add_argument("--repair-samples", type=int, default=d.repair_samples,
                        help=f"candidates per task in every repair round (default {d.repair_samples}; see "
                             "`iterpref refine --help`)")
    parser.add_argument("--first-samples", type=int, default=d.first_samples,
                        help=f"candidates per task in round 0 (default {d.first_samples}: a task passed at the first "
                             "try gives no pair)")
    parser.add_argument("--repair-prompt", choices=REPAIR_PROMPTS, default=d.repair_prompt,
                        help=f"repair prompt: brief (the first request plus how the last attempt failed; default "
                             f"{d.repair_prompt}, what the bundled model can use) or full (the failing code, tracebacks "
                             "and line numbers; better for a served model)")
    parser.add_argument("--seed", type=int, default=d.seed, help="seed of the split, sampling and training")
    parser.add_argument("--model", default=None, help="HF model folder to train and evaluate (default: bundled SmolLM2-135M-Instruct)")
    parser.add_argument("--sampler", choices=["hf", "openai"], default=d.sampler,
                        help="who writes refine's programs: hf = the model itself, openai = a served model")
    parser.add_argument("--base-url", default=None, help="openai sampler: server URL, e.g. http://localhost:8000/v1")
    parser.add_argument("--sampler-model", default=None, help="openai sampler: the served model's name")
    parser.add_argument("--max-new-tokens", type=int, default=d.max_new_tokens, help=f"per reply (default {d.max_new_tokens})")
    parser.add_argument("--temperature", type=float, default=d.temperature, help=f"refine's sampling temperature (default {d.temperature}; eval is greedy)")
    parser.add_argument("--prefill", choices=PREFILLS, default=d.prefill,
                        help="hf: how the model's reply is started: fence (a ```python fence; default), code (the fence "
                             "plus the function's signature and docstring on a first attempt) or none")
    parser.add_argument("--batch-size", type=int, default=d.batch_size, help=f"hf: rows decoded at once (default {d.batch_size})")
    parser.add_argument("--min-pairs", type=int, default=d.min_pairs,
                        help=f"when the model's repairs give fewer pairs, top up with synthetic ones (reference + one "
                             f"injected bug) to this many, counted apart in the report; 0: never (default {d.min_pairs})")
    parser.add_argument("--train-steps", type=int, default=d.train_steps, help=f"optimiser steps (default {d.train_steps})")
    parser.add_argument("--lr", type=float, default=d.lr, help=f"learning rate (default {d.lr})")
    parser.add_argument("--executor", default=d.executor,
                        help="auto (Docker if usable, else process backend with a warning), docker, local, or a URL")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default=d.device, help="where the model runs")
    parser.add_argument("--threads", type=int, default=d.threads,
                        help="torch CPU threads (default: torch's choice); 1 avoids stalls on a busy shared machine")
    parser.add_argument("--fresh", action="store_true", help="delete the output folder's earlier demo run first")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")
    parser.add_argument("--refine-script", default=None, help=argparse.SUPPRESS)  # tests: scripted refine replies
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from iterpref.demo import run_demo

    fields = {name: getattr(args, name) for name in DemoConfig.__dataclass_fields__ if name != "output_dir"}
    run_demo(DemoConfig(output_dir=args.output, **fields))
    return 0
