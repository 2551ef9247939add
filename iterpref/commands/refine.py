"""`iterpref refine`: run the debugging loop over a task file, appending attempts to a trajectory file."""

from __future__ import annotations

import argparse

from iterpref.errors import ConfigError, ExecutorUnavailable, SamplerError
from iterpref.executor import close_executor, make_executor
from iterpref.refine import check_sample_counts, refine
from iterpref.refine.feedback import REPAIR_PROMPTS
from iterpref.samplers import KINDS, make_sampler
from iterpref.samplers.hf import PREFILLS, resolve_device
from iterpref.tasks import load_tasks


def add_sampler_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("sampler")
    group.add_argument("--sampler", choices=KINDS, default="hf", help="where replies come from (default hf)")
    group.add_argument("--model", help="hf: model folder (default: bundled SmolLM2-135M-Instruct); openai: model name")
    group.add_argument("--base-url", help="openai: server URL, e.g. http://localhost:8000/v1")
    group.add_argument("--api-key-env", help="openai: environment variable holding the key (default OPENAI_API_KEY)")
    group.add_argument("--script", help="scripted: JSONL of {task_id, responses}")
    group.add_argument("--temperature", type=float, default=0.8)
    group.add_argument("--top-p", type=float, default=0.95)
    group.add_argument("--max-new-tokens", type=int, default=512)
    group.add_argument("--batch-size", type=int, default=32,
                       help="hf: rows decoded at once; a finished row's place goes to the next prompt (default 32)")
    group.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                       help="hf: where the model runs (default auto: CUDA when present)")
    group.add_argument("--prefill", choices=PREFILLS, default="fence",
                       help="hf: how the reply is started for the model: fence (a ```python fence, and generation "
                            "stops at the closing one; default), code (the fence plus, on the first attempt at a "
                            "function task, its signature and docstring), none")
    group.add_argument("--concurrency", type=int, default=8, help="openai: requests in flight")
    group.add_argument("--retries", type=int, default=4, help="openai: retries of a failed request, with backoff")
    group.add_argument("--seed", type=int, default=0)


def sampler_from_args(args: argparse.Namespace):
    common = {"temperature": args.temperature, "top_p": args.top_p}
    device = resolve_device(args.device) if args.sampler == "hf" else "cpu"
    if args.sampler == "hf":
        options = {**common, "max_new_tokens": args.max_new_tokens, "batch_size": args.batch_size,
                   "seed": args.seed, "progress": True, "device": device, "prefill": args.prefill}
    elif args.sampler == "openai":
        options = {**common, "max_tokens": args.max_new_tokens, "concurrency": args.concurrency,
                   "seed": args.seed, "api_key_env": args.api_key_env, "retries": args.retries}
    else:
        options = {}
    return make_sampler(args.sampler, model=args.model, base_url=args.base_url, script=args.script, **options)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("refine", help="sample, execute and repair until tests pass; write trajectories")
    parser.add_argument("tasks", help="tasks JSONL (see `iterpref tasks humaneval`)")
    parser.add_argument("-o", "--output", required=True, help="trajectory JSONL; an existing file is resumed")
    parser.add_argument("--executor", default="local", help="`local` or the URL of `sandbox serve` (default local)")
    parser.add_argument("--workers", type=int, default=None, help="local executor: parallel programs")
    parser.add_argument("--max-rounds", type=int, default=5, help="repair rounds after the first attempt (default 5)")
    parser.add_argument("--limit", type=int, default=None, help="only the first N tasks")
    parser.add_argument("--wave-size", type=int, default=256, help="tasks worked on together (default 256)")
    parser.add_argument("--repair-samples", type=int, default=1,
                        help="candidates drawn per task in every round, round 0 included unless --first-samples is "
                             "given, at --temperature; a task "
                             "stops at its first pass, else the next round repairs the failing candidate that "
                             "passed the most tests (default 1: the single-sample loop)")
    parser.add_argument("--first-samples", type=int, default=None,
                        help="candidates in round 0 (default: --repair-samples); 1 keeps more pairs, since a task "
                             "that passes at once has no failing attempt to pair with")
    parser.add_argument("--repair-prompt", choices=REPAIR_PROMPTS, default="full",
                        help="full (default: the failing code as the model's reply, then each failing test's error, "
                             "line and traceback and the code with line numbers) or brief (the first request again "
                             "plus one line on how the attempt failed, no code: what a very small model can use)")
    add_sampler_arguments(parser)
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    if args.max_rounds < 0 or (args.limit is not None and args.limit < 1) or args.wave_size < 1:
        raise ConfigError("--max-rounds must be >= 0, --limit and --wave-size >= 1")
    check_sample_counts(args.repair_samples, args.first_samples,
                        greedy=args.sampler != "scripted" and args.temperature <= 0)
    tasks = load_tasks(args.tasks)[: args.limit]
    executor = make_executor(args.executor, workers=args.workers)
    sampler = sampler_from_args(args)
    try:
        summary = refine(tasks, sampler, executor, args.output, max_rounds=args.max_rounds, wave_size=args.wave_size,
                         samples=args.repair_samples, first_samples=args.first_samples,
                         repair_style=args.repair_prompt)
    except (SamplerError, ExecutorUnavailable) as exc:
        # Same class, so a caller still sees what failed; the note says nothing was lost.
        raise type(exc)(f"{exc} (finished attempts are saved in {args.output}; rerun to resume)") from None
    finally:
        sampler.close()
        close_executor(executor)
    print(f"{summary.passed}/{summary.tasks} tasks pass, {summary.failed} failed every round, "
          f"{summary.attempts_written} attempts written to {args.output}"
          + (f", {summary.unfinished} left unfinished (executor infra errors; rerun)" if summary.unfinished else ""))
    return 0
