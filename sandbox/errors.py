"""Errors a caller of the executor service can get; each message says what to do about it."""

from __future__ import annotations


class SandboxError(Exception):
    """Base class: anything that stopped a request from getting a result."""


class ExecutorUnreachable(SandboxError):
    """No executor answered at the URL (not started, wrong address, or it went away)."""

    def __init__(self, url: str, cause: BaseException | str) -> None:
        super().__init__(
            f"cannot reach the sandbox executor at {url} ({cause}). Start it with "
            f"`sandbox serve --backend docker` (or `--backend process`, or `docker compose up -d`), "
            f"or point the client at the right URL."
        )
        self.url = url


class ExecutorBusy(SandboxError):
    """The executor kept answering 429 (queue full) or 503 through every retry."""


class ExecutorNotReady(ExecutorBusy):
    """The executor kept answering 503 (it cannot serve runs now, e.g. its Docker engine is down) through every
    retry."""


class ExecutorRejected(SandboxError):
    """The executor refused the request itself (bad token, invalid request); retrying will not help."""

    def __init__(self, status_code: int, detail: object) -> None:
        super().__init__(f"executor rejected the request (HTTP {status_code}): {detail}")
        self.status_code = status_code
        self.detail = detail


class ResultFormatTooNew(SandboxError):
    """The executor answered in a result format newer than this client knows: reading it could mislead."""

    def __init__(self, url: str, version: int, known: int) -> None:
        super().__init__(
            f"executor at {url} answered with result format version {version}, but this client knows versions up "
            f"to {known}; upgrade the client (the `sandbox` package) to the executor's release, or run an "
            f"executor of this client's release"
        )
        self.url = url
        self.version = version
        self.known = known
