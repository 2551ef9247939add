"""GRPO-style reward steps through `sandbox.rewards.trl_reward`, with the service's result cache on and off.

A step is what a trainer scores at once: `--prompts` HumanEval tasks, `--group` completions each. Completions are
drawn, with a fixed seed, from a few answers per task (the canonical solution in a fenced block, the same with
prose around it, a wrong one, one that does not parse), so a group repeats answers the way sampled groups do, and
later steps repeat earlier answers. Both services get the same steps; the rewards must be identical. Reported:
seconds for all steps, programs the backend actually ran (cache misses), and the ratio.

    python benchmarks/bench_reward_cache.py [--steps 4] [--prompts 16] [--group 8] [--backend process]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench_service_humaneval import load_problems  # noqa: E402  (same folder)
from sandbox.launch import start_service  # noqa: E402
from sandbox.rewards import trl_reward  # noqa: E402


def answers(problem: dict) -> list[str]:
    """The distinct completions a group for ``problem`` draws from."""
    body = problem["prompt"] + problem["canonical_solution"]
    return [f"```python\n{body}```",
            f"Here is the function.\n\n```python\n{body}```\nIt handles the edge cases.",
            f"```python\n{problem['prompt']}    return None\n```",
            f"```python\ndef {problem['entry_point']}(:\n```"]


def steps(problems: list[dict], n_steps: int, group: int, seed: int = 0) -> list[tuple[list[str], list[dict]]]:
    rng = random.Random(seed)
    out = []
    for step in range(n_steps):
        chosen = rng.sample(problems, k=len(problems) // 2) if step else problems[: len(problems) // 2]
        completions, tests = [], []
        for problem in chosen:
            spec = {"tests": [{"kind": "assert", "code": problem["test"] + f"\ncheck({problem['entry_point']})\n"}],
                    "limits": {"time_s": 3.0}, "entry_point": problem["entry_point"]}
            for _ in range(group):
                completions.append(rng.choice(answers(problem)))
                tests.append(spec)
        out.append((completions, tests))
    return out


def metric(url: str, name: str) -> float:
    for line in httpx.get(url + "/metrics", timeout=10).text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


def measure(backend: str, cache_mb: int, work: list[tuple[list[str], list[dict]]]) -> tuple[float, int, list]:
    with start_service(backend, cache_mb=cache_mb) as service:
        reward = trl_reward(service.url)
        began = time.perf_counter()
        rewards = [reward(prompts=None, completions=c, tests=t) for c, t in work]
        seconds = time.perf_counter() - began
        runs = sum(len(c) for c, _ in work) - int(metric(service.url, "sandbox_cache_hits_total"))
        reward.rewarder.close()  # type: ignore[attr-defined]
    return seconds, runs, rewards


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--prompts", type=int, default=16, help="tasks in the pool a step draws half of")
    parser.add_argument("--group", type=int, default=8, help="completions per task in a step")
    parser.add_argument("--backend", default="process", choices=["process", "docker"])
    args = parser.parse_args()

    work = steps(load_problems()[: args.prompts], args.steps, args.group)
    total = sum(len(c) for c, _ in work)
    off_s, off_runs, off_rewards = measure(args.backend, 0, work)
    on_s, on_runs, on_rewards = measure(args.backend, 64, work)
    assert on_rewards == off_rewards, "the cache changed a reward"
    print(f"{args.steps} steps, {total} completions ({args.backend} backend); rewards identical with and without")
    print(f"  cache off: {off_s:6.2f} s, {off_runs} programs run")
    print(f"  cache on:  {on_s:6.2f} s, {on_runs} programs run  (time ratio {on_s / off_s:.2f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
