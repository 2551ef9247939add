"""Prometheus metrics for the service, through ``prometheus_client``; each application has its own registry.

Every label value comes from a bounded set the service chooses (a route template, a status code, a status or
verdict name), never from request data: a caller can neither write text into /metrics nor grow it.

Updated per request:
    sandbox_requests_total{endpoint,code}   answers by route template ("/v1/runs", ...; "unmatched" for a path
                                            that matched no route) and HTTP status
    sandbox_request_seconds{endpoint}       histogram of the time to answer, same endpoint label
    sandbox_rejected_total                  429 answers (queue full)
    sandbox_runs_total{status}              programs answered, by RunStatus (cache hits included)
    sandbox_verdicts_total{verdict}         tests answered, by verdict (cache hits included)
    sandbox_cache_hits_total                programs answered from the result cache (or as a copy of a duplicate
                                            in the same batch) instead of being run
    sandbox_cache_misses_total              programs looked up in the cache and run
Read at scrape time (registered in sandbox/server.py):
    sandbox_queue_runs, sandbox_queue_capacity_runs, sandbox_waiting_runs, sandbox_ready (0 or 1),
    sandbox_pool_containers{state} (docker backend), sandbox_cache_entries, sandbox_cache_bytes,
    sandbox_cache_capacity_bytes (when the cache is on).
"""

from __future__ import annotations

from typing import Callable, Iterable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from sandbox.models import RunResult

LATENCY_BUCKETS_S = (0.005, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
# The endpoint label of a request whose path matched no route: unknown paths must not become label values.
UNMATCHED = "unmatched"

# A gauge read at scrape time: label names, and a function returning {label values: value}.
GaugeRead = Callable[[], dict[tuple[str, ...], float]]


class _LiveGauges(Collector):
    """Gauges whose values are read when /metrics is scraped (queue, pool, cache), not pushed on every change."""

    def __init__(self) -> None:
        self.gauges: dict[str, tuple[str, tuple[str, ...], GaugeRead]] = {}

    def collect(self) -> Iterator[GaugeMetricFamily]:
        for name, (help_text, labels, read) in sorted(self.gauges.items()):
            family = GaugeMetricFamily(name, help_text, labels=list(labels))
            for values, value in sorted(read().items()):
                family.add_metric(list(values), value)
            yield family


class Metrics:
    """The service's metrics, in a registry of their own (several applications in one process do not clash)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter("sandbox_requests", "HTTP answers by route template and status code",
                                ["endpoint", "code"], registry=r)
        self.latency = Histogram("sandbox_request_seconds", "Seconds to answer a request, by route template",
                                 ["endpoint"], buckets=LATENCY_BUCKETS_S, registry=r)
        self.rejected = Counter("sandbox_rejected", "Requests answered 429 (queue full)", registry=r)
        self.runs = Counter("sandbox_runs", "Programs answered, by status", ["status"], registry=r)
        self.verdicts = Counter("sandbox_verdicts", "Tests answered, by verdict", ["verdict"], registry=r)
        self.cache_hits = Counter("sandbox_cache_hits", "Programs answered without running them (result cache, or "
                                  "a duplicate in the same batch)", registry=r)
        self.cache_misses = Counter("sandbox_cache_misses", "Programs looked up in the result cache and run",
                                    registry=r)
        self._gauges = _LiveGauges()
        r.register(self._gauges)

    def observe_request(self, endpoint: str, code: int, seconds: float) -> None:
        """``endpoint`` must be a route template or ``UNMATCHED``, never a raw path."""
        self.requests.labels(endpoint, str(code)).inc()
        self.latency.labels(endpoint).observe(seconds)
        if code == 429:
            self.rejected.inc()

    def observe_results(self, results: Iterable[RunResult]) -> None:
        for result in results:
            self.runs.labels(result.status.value).inc()
            for verdict, count in result.counts.items():
                self.verdicts.labels(getattr(verdict, "value", verdict)).inc(count)

    def observe_cache(self, hits: int, misses: int) -> None:
        if hits:
            self.cache_hits.inc(hits)
        if misses:
            self.cache_misses.inc(misses)

    def gauge(self, name: str, read: GaugeRead, labels: tuple[str, ...] = (), help_text: str = "") -> None:
        """Register a gauge family read at scrape time: ``read()`` maps label values (in ``labels`` order) to values."""
        self._gauges.gauges[name] = (help_text or name, labels, read)

    def render(self) -> bytes:
        return generate_latest(self.registry)
