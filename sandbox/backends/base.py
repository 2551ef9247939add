"""What every backend offers: the service and the in-process executor depend only on this."""

from __future__ import annotations

import abc

from sandbox.models import RunRequest, RunResult


class Backend(abc.ABC):
    """Runs batches of programs through ``sandbox/runner.py`` in some isolation environment.

    Every backend speaks the same wire format to the runner (sandbox/backends/wire.py); backends only choose
    where the runner lives.
    """

    name: str = "abstract"

    async def start(self) -> None:
        """Acquire long-lived resources (warm pools). Called once from the application's lifespan."""

    async def close(self) -> None:
        """Release everything ``start`` acquired, leaving no process or container behind."""

    def ready(self) -> tuple[bool, str]:
        """Whether the backend is fully ready (/readyz), and why not if it is not."""
        return True, "ready"

    def serving(self) -> tuple[bool, str]:
        """Whether a run sent now can be served (else the service answers 503). Defaults to ``ready``; a
        backend that can still serve while not fully ready (a pool refilling after a burst) says so here."""
        return self.ready()

    @abc.abstractmethod
    async def run_batch(self, requests: list[RunRequest]) -> list[RunResult]:
        """Run every request; one result per request, in order. Never raises for a candidate's behaviour:
        sandbox failures come back as ``RunResult.infra_error``."""
