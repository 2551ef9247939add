"""The hf sampler's decoder against transformers' ``generate`` on the same prompts, same model, same run.

    python benchmarks/bench_sampler.py [--prompts 64] [--copies 1] [--batch-size 32] [--bf16 yes] [--threads 2]

The prompts are the debugging loop's first requests for HumanEval tasks (the demo's split), with the fence opened
as the hf sampler opens it. The baseline is ``generate`` in batches of ``--batch-size``, sampling with the same
temperature, top-p and stop text (the closing fence): how the sampler decoded before. ``--copies 3`` repeats each
prompt three times, as repair sampling does. Each side runs once per round, taking turns; prints the seconds of
each, the mean reply length in tokens (both sample the same distribution, so the lengths should agree), and
``ratio = generate / decoder``. Results: benchmarks/results/sampler.md with --name.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without installing
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

RESULTS_DIR = Path(__file__).parent / "results"


def prompts_for(count: int, copies: int) -> list:
    from iterpref.demo import DemoConfig, split_tasks
    from iterpref.refine.feedback import initial_prompt

    tasks, _ = split_tasks(DemoConfig(train_tasks=max(count, 1), heldout_tasks=1))
    return [initial_prompt(task) for task in tasks[:count] for _ in range(copies)]


def with_generate(sampler, texts: list[str], batch_size: int, max_new_tokens: int) -> list[str]:
    """The baseline: transformers' generate, batch after batch, every row kept until the batch's longest ends."""
    torch, tokenizer = sampler.torch, sampler.tokenizer
    replies: list[str] = []
    for start in range(0, len(texts), batch_size):
        batch = tokenizer(texts[start : start + batch_size], return_tensors="pt", padding=True,
                          add_special_tokens=False).to(sampler.device)
        with torch.no_grad():
            out = sampler.model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=True,
                                         temperature=sampler.temperature, top_p=sampler.top_p,
                                         pad_token_id=tokenizer.pad_token_id, stop_strings=["```"],
                                         tokenizer=tokenizer)
        replies += tokenizer.batch_decode(out[:, batch["input_ids"].shape[1] :], skip_special_tokens=True)
    return replies


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prompts", type=int, default=64, help="distinct HumanEval prompts")
    parser.add_argument("--copies", type=int, default=1, help="samples of each prompt (repair sampling: 3)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-new-tokens", type=int, default=256)
    parser.add_argument("--temperature", type=float, default=0.8)
    parser.add_argument("--rounds", type=int, default=1, help="turns of each side")
    parser.add_argument("--bf16", choices=["yes", "no"], default="yes")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--name", default=None, help="also write benchmarks/results/<name>.md")
    args = parser.parse_args(argv)
    if args.prompts < 1 or args.copies < 1 or args.batch_size < 1 or args.rounds < 1 or args.temperature <= 0:
        print("bench_sampler: --prompts, --copies, --batch-size and --rounds must be at least 1, --temperature "
              "above 0", file=sys.stderr)
        return 2

    import torch

    from iterpref.samplers.hf import HFSampler

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    sampler = HFSampler(batch_size=args.batch_size, temperature=args.temperature,
                        max_new_tokens=args.max_new_tokens, bf16=args.bf16 == "yes")
    prompts = prompts_for(args.prompts, args.copies)
    texts = [sampler._render(p.messages) + sampler._reply_start(p) for p in prompts]
    seconds: dict[str, list[float]] = {"decoder": [], "generate": []}
    lengths: dict[str, list[int]] = {"decoder": [], "generate": []}
    for round_ in range(args.rounds):
        torch.manual_seed(round_)
        for side in ("generate", "decoder") if round_ % 2 else ("decoder", "generate"):
            started = time.perf_counter()
            replies = (sampler.generate(prompts) if side == "decoder"
                       else with_generate(sampler, texts, args.batch_size, args.max_new_tokens))
            seconds[side].append(time.perf_counter() - started)
            lengths[side] += [len(sampler.tokenizer(r, add_special_tokens=False).input_ids) for r in replies]
            print(f"round {round_ + 1} {side}: {seconds[side][-1]:.1f} s", flush=True)

    ratio = statistics.median(seconds["generate"]) / statistics.median(seconds["decoder"])
    lines = ["# The hf sampler's decoder vs transformers' generate\n",
             f"{len(prompts)} replies a side ({args.prompts} HumanEval first requests x {args.copies}); batch "
             f"{args.batch_size}; temperature {args.temperature}; max new tokens {args.max_new_tokens}; bf16 "
             f"{args.bf16}; torch threads {torch.get_num_threads()}; {args.rounds} rounds, sides taking turns.\n",
             "| side | median seconds | replies/s | mean reply tokens |", "|---|---:|---:|---:|"]
    for side in ("generate", "decoder"):
        median = statistics.median(seconds[side])
        lines.append(f"| {side} | {median:.1f} | {len(prompts) / median:.2f} | "
                     f"{statistics.mean(lengths[side]):.0f} |")
    lines.append(f"\nratio = generate / decoder = **{ratio:.2f}**")
    text = "\n".join(lines) + "\n"
    print("\n" + text)
    if args.name:
        RESULTS_DIR.mkdir(exist_ok=True)
        (RESULTS_DIR / f"{args.name}.md").write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
