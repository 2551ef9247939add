"""How iterpref reaches an executor: ``local`` runs programs in this machine's process backend, a URL talks
to a ``sandbox serve`` service over HTTP. Both offer ``run_batch(list[RunRequest]) -> list[RunResult]``."""

from __future__ import annotations

from typing import Protocol

from sandbox.models import RunRequest, RunResult, RunStatus


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


def judge_batch(executor: Executor, requests: list[RunRequest], retries: int) -> list[RunResult]:
    """Every request's result, in order. Retryable infra errors are sent again (at most ``retries`` times);
    what is still an infra error after that comes back as one. A transport failure, or an answer of the wrong
    length, raises ExecutorUnavailable: nothing of the batch was judged."""
    results: list[RunResult] = [None] * len(requests)  # type: ignore[list-item]  (all filled below)
    pending = list(range(len(requests)))
    for attempt in range(retries + 1):
        try:
            answers = executor.run_batch([requests[i] for i in pending])
        except Exception as exc:  # any executor's transport failure
            raise ExecutorUnavailable(f"the executor failed: {exc.__class__.__name__}: {exc}") from exc
        if len(answers) != len(pending):
            raise ExecutorUnavailable(f"the executor returned {len(answers)} results for {len(pending)} programs")
        retry = []
        for index, answer in zip(pending, answers):
            results[index] = answer
            if answer.status != RunStatus.COMPLETED and answer.retryable and attempt < retries:
                retry.append(index)
        pending = retry
        if not pending:
            break
    return results
