"""A secure code-execution service: run untrusted Python against tests, get a verdict and an error per test."""

from sandbox.models import BatchRequest, BatchResult, Limits, RunRequest, RunResult, RunStatus, TestResult, Verdict

__all__ = [
    "BatchRequest",
    "BatchResult",
    "Limits",
    "RunRequest",
    "RunResult",
    "RunStatus",
    "TestResult",
    "Verdict",
]
