"""How iterpref reaches an executor: ``local`` runs programs in this machine's process backend, a URL talks
to a ``sandbox serve`` service over HTTP. Both offer ``run_batch(list[RunRequest]) -> list[RunResult]``."""

from __future__ import annotations

from typing import Protocol

from sandbox.models import RunRequest, RunResult


class Executor(Protocol):
    def run_batch(self, requests: list[RunRequest]) -> list[RunResult]: ...


class ExecutorUnavailable(RuntimeError):
    """The executor cannot be reached or keeps failing; the message says where and why."""


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
    raise ExecutorUnavailable(f"--executor must be `local` or an http(s):// URL of `sandbox serve`, not {spec!r}")


def close_executor(executor: object) -> None:
    close = getattr(executor, "close", None)
    if callable(close):
        close()
