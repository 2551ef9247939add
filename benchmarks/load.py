"""The load generator behind benchmarks/bench_load.py and tests/conformance/test_load.py (and the kill test in
test_faults.py): 32 concurrent clients sending batches of programs whose verdicts are known to a ``sandbox serve``
process (``sandbox.launch.start_service``), and the bookkeeping that proves nothing was lost, duplicated or
swapped. It lives here, not under tests/, because benchmarks do not import from the test suite.
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from sandbox.client import AsyncClient, RetryPolicy
from sandbox.launch import Service
from sandbox.models import RunRequest

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


def rss_mb(service: Service) -> float:
    """The service process's resident memory in MB (NaN when /proc does not say)."""
    for line in Path(f"/proc/{service.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def metric(service: Service, name: str, **labels: str) -> float:
    """The sum of a Prometheus counter's samples on the service's /metrics whose labels include ``labels``."""
    import httpx

    text = httpx.get(service.url + "/metrics", timeout=5).text
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


async def drive(service: Service, runs: int, clients: int, batch: int, progress=None) -> LoadReport:
    """``clients`` concurrent clients, each sending its share of ``runs`` programs in batches of ``batch``."""
    report = LoadReport(runs=runs, rss_mb=[rss_mb(service)])
    seen: dict[int, int] = {}
    numbers = list(range(runs))
    shares = [numbers[i::clients] for i in range(clients)]
    retry = RetryPolicy(busy_wait_s=600, infra_attempts=1)

    async def client(share: list[int]) -> None:
        async with AsyncClient(service.url, token="", retry=retry, timeout=300) as http:
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
                    report.rss_mb.append(rss_mb(service))

    began = time.perf_counter()
    await asyncio.gather(*(client(share) for share in shares))
    report.seconds = time.perf_counter() - began
    report.lost = [n for n in numbers if n not in seen]
    report.mismatched += [f"{n}: answered {count} times" for n, count in seen.items() if count != 1]
    report.rss_mb.append(rss_mb(service))
    report.rejected_429 = int(metric(service, "sandbox_requests_total", code="429"))
    return report
