"""The load harness shared by test_load.py and benchmarks/bench_load.py: a real executor process on loopback,
32 concurrent clients sending batches of programs whose verdicts are known, and the bookkeeping that proves
nothing was lost, duplicated or swapped."""

from __future__ import annotations

import asyncio
import os
import re
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from sandbox.client import AsyncClient, RetryPolicy
from sandbox.models import RunRequest

ROOT = Path(__file__).resolve().parents[2]
# Generous for ordinary programs, so CPU contention on a shared host cannot turn a verdict into a timeout; the
# looping kind gets a short limit of its own, since its verdict is the timeout.
LIMITS = {"time_s": 5, "memory_mb": 128, "output_bytes": 4096}
LOOP_LIMITS = {**LIMITS, "time_s": 1}

# (name, code template, expected verdict); {n} is the program's number, echoed on stdout as its identity.
KINDS = [
    ("pass", "print('tok-{n}')\ndef answer():\n    return {n}\n", "pass"),
    ("fail", "print('tok-{n}')\ndef answer():\n    return -{n}\n", "fail"),
    ("raise", "print('tok-{n}')\ndef answer():\n    return [][{n}]\n", "error"),
    ("exit0", "print('tok-{n}')\nimport os\ndef answer():\n    os._exit(0)\n", "error"),
    ("flood", "print('tok-{n}')\nimport os\ndef answer():\n    while True:\n        os.write(1, b'x' * 65536)\n",
     "output_limit"),
    ("memory", "print('tok-{n}')\ndef answer():\n    return len(bytearray(4 << 30))\n", "memory"),
    ("fork", "print('tok-{n}')\nimport os\ndef answer():\n    for _ in range(8):\n        if os.fork() == 0:\n"
             "            os._exit(0)\n    return {n}\n", "pass"),
    ("loop", "print('tok-{n}')\ndef answer():\n    while True:\n        pass\n", "timeout"),
]
# Mostly ordinary programs, like a real sampler's; every hostile kind in each cycle of 40.
MIX = ["pass"] * 24 + ["fail"] * 8 + ["raise", "exit0", "flood", "memory", "fork", "fork", "raise", "loop"]


def program(n: int) -> tuple[RunRequest, str]:
    name = MIX[n % len(MIX)]
    _, code, verdict = next(kind for kind in KINDS if kind[0] == name)
    request = RunRequest(code=code.format(n=n), tests=[{"kind": "call", "entry_point": "answer", "expected": n}],
                         limits=LOOP_LIMITS if name == "loop" else LIMITS)
    return request, verdict


@dataclass
class LoadReport:
    runs: int = 0
    requests: int = 0
    seconds: float = 0.0
    latencies_s: list[float] = field(default_factory=list)
    lost: list[int] = field(default_factory=list)
    mismatched: list[str] = field(default_factory=list)
    infra_errors: int = 0
    rejected_429: int = 0
    rss_mb: list[float] = field(default_factory=list)

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies_s)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")

    def summary(self) -> str:
        return (f"{self.runs} runs in {self.requests} requests, {self.seconds:.1f} s ({self.runs / self.seconds:.1f} "
                f"runs/s); latency p50 {self.percentile(0.5) * 1000:.0f} ms, p99 {self.percentile(0.99) * 1000:.0f} ms; "
                f"lost {len(self.lost)}, mismatched {len(self.mismatched)}, infra_error {self.infra_errors}, "
                f"429 answered {self.rejected_429}; executor RSS {self.rss_mb[0]:.0f} -> {self.rss_mb[-1]:.0f} MB")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Executor:
    """``sandbox serve`` as a child process on a free loopback port."""

    def __init__(self, backend: str, queue: int, pool_size: int = 4, workers: int = 2) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.args = [sys.executable, "-m", "sandbox.cli", "serve", "--backend", backend, "--port", str(self.port),
                     "--queue", str(queue), "--pool-size", str(pool_size), "--workers", str(workers),
                     "--log-level", "warning"]
        self.process: subprocess.Popen | None = None

    def start(self, wait_s: float = 60.0) -> None:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.process = subprocess.Popen(self.args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.PIPE)
        import httpx

        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"executor exited: {self.process.stderr.read().decode()[-2000:]}")
            try:
                if httpx.get(self.url + "/readyz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise RuntimeError("executor did not become ready")

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()

    def metric(self, name: str, **labels: str) -> float:
        import httpx

        text = httpx.get(self.url + "/metrics", timeout=5).text
        total = 0.0
        for line in text.splitlines():
            if line.startswith(name + "{") or line.startswith(name + " "):
                if all(f'{key}="{value}"' in line for key, value in labels.items()):
                    total += float(line.rsplit(" ", 1)[1])
        return total


def check(n: int, result, verdict: str) -> str | None:
    """Why ``result`` is not program ``n``'s answer, or None."""
    if result.status.value != "completed":
        return f"{n}: {result.status.value} {result.infra_message}"
    test = result.tests[0]
    if test.verdict.value != verdict:
        return f"{n}: expected {verdict}, got {test.verdict.value} ({test.message})"
    if re.findall(r"tok-(\d+)", test.stdout)[:1] != [str(n)]:
        return f"{n}: stdout carries another program's identity: {test.stdout[:80]!r}"
    return None


async def drive(executor: Executor, runs: int, clients: int, batch: int, progress=None) -> LoadReport:
    """``clients`` concurrent clients, each sending its share of ``runs`` programs in batches of ``batch``."""
    report = LoadReport(runs=runs, rss_mb=[executor.rss_mb()])
    seen: dict[int, int] = {}
    numbers = list(range(runs))
    shares = [numbers[i::clients] for i in range(clients)]
    retry = RetryPolicy(busy_wait_s=600, infra_attempts=1)

    async def client(share: list[int]) -> None:
        async with AsyncClient(executor.url, token="", retry=retry, timeout=300) as http:
            for start in range(0, len(share), batch):
                chunk = share[start : start + batch]
                pairs = [program(n) for n in chunk]
                began = time.perf_counter()
                results = await http.run_batch([request for request, _ in pairs])
                report.latencies_s.append(time.perf_counter() - began)
                report.requests += 1
                for n, (_, verdict), result in zip(chunk, pairs, results):
                    seen[n] = seen.get(n, 0) + 1
                    report.infra_errors += result.status.value != "completed"
                    problem = check(n, result, verdict)
                    if problem:
                        report.mismatched.append(problem)
                if progress:
                    progress(len(chunk))
                if report.requests % 20 == 0:
                    report.rss_mb.append(executor.rss_mb())

    began = time.perf_counter()
    await asyncio.gather(*(client(share) for share in shares))
    report.seconds = time.perf_counter() - began
    report.lost = [n for n in numbers if n not in seen]
    report.mismatched += [f"{n}: answered {count} times" for n, count in seen.items() if count != 1]
    report.rss_mb.append(executor.rss_mb())
    report.rejected_429 = int(executor.metric("sandbox_requests_total", code="429"))
    return report
