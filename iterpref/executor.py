"""How iterpref reaches an executor: ``local`` runs programs in this machine's process backend, a URL talks
to a ``sandbox serve`` service over HTTP. Both offer ``run_batch(list[RunRequest]) -> list[RunResult]``."""

from __future__ import annotations

from typing import Protocol

from iterpref.errors import ConfigError, ExecutorUnavailable
from sandbox.models import RunRequest, RunResult


class Executor(Protocol):
    def run_batch(self, requests: list[RunRequest]) -> list[RunResult]: ...


def make_executor(spec: str, workers: int | None = None) -> Executor:
    """``local`` -> sandbox.local.LocalExecutor; ``http(s)://host:port`` -> sandbox.client.Client."""
    if spec == "local":
        from sandbox.local import LocalExecutor

        return LocalExecutor(workers=workers) if workers else LocalExecutor()
    if spec.startswith(("http://", "https://")):
        from sandbox.client import Client
        from sandbox.errors import SandboxError

        client = Client(spec)
        try:
            client.health()  # fail now, not after the first round has been sampled
        except SandboxError as exc:
            client.close()
            raise ExecutorUnavailable(str(exc)) from None
        return client
    raise ConfigError(f"--executor must be `local` or an http(s):// URL of `sandbox serve`, not {spec!r}")


def close_executor(executor: object) -> None:
    close = getattr(executor, "close", None)
    if callable(close):
        close()


def judge_batch(executor: Executor, requests: list[RunRequest]) -> list[RunResult]:
    """Every request's result, in order, each sent once from here: retrying a retryable infra error is the
    executor client's job (``sandbox.client.Client``, ``sandbox.local.LocalExecutor``), so what comes back as one
    stays one. A transport failure, or an answer of the wrong length, raises ExecutorUnavailable: nothing of the
    batch was judged."""
    try:
        results = executor.run_batch(requests)
    except Exception as exc:  # any executor's transport failure
        raise ExecutorUnavailable(f"the executor failed: {exc.__class__.__name__}: {exc}") from exc
    if len(results) != len(requests):
        raise ExecutorUnavailable(f"the executor returned {len(results)} results for {len(requests)} programs")
    return results
