"""Prometheus metrics for the service, in the text exposition format (no client library needed).

Counters and a histogram, updated per request: sandbox_requests_total{endpoint,code},
sandbox_request_seconds{endpoint} (histogram), sandbox_runs_total{status}, sandbox_verdicts_total{verdict},
sandbox_rejected_total (429 answers). Gauges, read at scrape time (registered in sandbox/server.py):
sandbox_queue_runs (programs admitted), sandbox_queue_capacity_runs, sandbox_waiting_runs (in line for
admission), sandbox_ready (0 or 1), and for the docker backend sandbox_pool_containers{state}.
"""

from __future__ import annotations

import bisect
import threading
from collections import defaultdict
from typing import Callable, Iterable

from sandbox.models import RunResult

LATENCY_BUCKETS_S = (0.005, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


def _labels(pairs: Iterable[tuple[str, str]]) -> str:
    body = ",".join(f'{k}="{v}"' for k, v in pairs)
    return "{" + body + "}" if body else ""


class Histogram:
    def __init__(self, buckets: tuple[float, ...] = LATENCY_BUCKETS_S) -> None:
        self.buckets = buckets
        self.counts = [0] * (len(buckets) + 1)
        self.total = 0.0
        self.n = 0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.buckets, value)] += 1
        self.total += value
        self.n += 1

    def lines(self, name: str, labels: tuple[tuple[str, str], ...]) -> list[str]:
        out, cumulative = [], 0
        for bound, count in zip(self.buckets, self.counts):
            cumulative += count
            out.append(f"{name}_bucket{_labels(labels + (('le', repr(bound)),))} {cumulative}")
        out.append(f"{name}_bucket{_labels(labels + (('le', '+Inf'),))} {self.n}")
        out.append(f"{name}_sum{_labels(labels)} {self.total}")
        out.append(f"{name}_count{_labels(labels)} {self.n}")
        return out


class Metrics:
    """Counters and histograms updated by the request handlers; gauges are read live at scrape time."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: dict[tuple[str, int], int] = defaultdict(int)
        self.latency: dict[str, Histogram] = defaultdict(Histogram)
        self.runs: dict[str, int] = defaultdict(int)
        self.verdicts: dict[str, int] = defaultdict(int)
        self.rejected = 0
        self.gauges: dict[str, Callable[[], dict[tuple[tuple[str, str], ...], float]]] = {}

    def observe_request(self, endpoint: str, code: int, seconds: float) -> None:
        with self._lock:
            self.requests[(endpoint, code)] += 1
            self.latency[endpoint].observe(seconds)
            if code == 429:
                self.rejected += 1

    def observe_results(self, results: list[RunResult]) -> None:
        with self._lock:
            for result in results:
                self.runs[result.status.value] += 1
                for verdict, count in result.counts.items():
                    self.verdicts[getattr(verdict, "value", verdict)] += count

    def gauge(self, name: str, read: Callable[[], dict[tuple[tuple[str, str], ...], float]]) -> None:
        """Register a gauge family read at scrape time: ``read()`` maps label tuples to values."""
        self.gauges[name] = read

    def render(self) -> str:
        lines: list[str] = []
        with self._lock:
            lines.append("# TYPE sandbox_requests_total counter")
            for (endpoint, code), n in sorted(self.requests.items()):
                lines.append(f"sandbox_requests_total{_labels((('endpoint', endpoint), ('code', str(code))))} {n}")
            lines.append("# TYPE sandbox_request_seconds histogram")
            for endpoint, histogram in sorted(self.latency.items()):
                lines.extend(histogram.lines("sandbox_request_seconds", (("endpoint", endpoint),)))
            lines.append("# TYPE sandbox_runs_total counter")
            for status, n in sorted(self.runs.items()):
                lines.append(f"sandbox_runs_total{_labels((('status', status),))} {n}")
            lines.append("# TYPE sandbox_verdicts_total counter")
            for verdict, n in sorted(self.verdicts.items()):
                lines.append(f"sandbox_verdicts_total{_labels((('verdict', verdict),))} {n}")
            lines.append("# TYPE sandbox_rejected_total counter")
            lines.append(f"sandbox_rejected_total {self.rejected}")
        for name, read in sorted(self.gauges.items()):
            lines.append(f"# TYPE {name} gauge")
            for labels, value in sorted(read().items()):
                lines.append(f"{name}{_labels(labels)} {value}")
        return "\n".join(lines) + "\n"
