"""A bounded in-memory cache of results, so that a request identical to a recent one is not run twice.

Reinforcement-learning loops send the same completion many times (a group of samples often repeats one answer),
and a run is a pure function of its request as long as the program is deterministic. The service looks every
program up here before it runs it (sandbox/server.py).

Key: SHA-256 over the backend's identity (its kind and the runner it runs: the runner image's id for docker, the
runner source's hash for process), the caller's credential, and the request as canonical JSON (code, tests with
their ids, limits, fail_fast). Two requests share an entry only when all of that is equal.

Kept: only completed results, and only those without a ``timeout`` verdict (a wall-clock timeout can come from a
loaded host rather than from the program, and must not stick). Never an ``infra_error``.

Bound: at most ``max_entries`` entries and ``max_bytes`` bytes, counting each result as its compact JSON plus a
fixed overhead per entry; the least recently used go first. A result larger than an eighth of ``max_bytes`` is
not kept, so one huge output cannot flush the cache. Results are stored as JSON bytes, which is what makes the
byte bound honest: a parsed pydantic model would take several times its JSON size.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections import OrderedDict
from pathlib import Path
from typing import Optional

from pydantic_core import PydanticSerializationError

from sandbox.models import RunRequest, RunResult, RunStatus, Verdict

# Bytes counted per entry beyond its JSON: the key, the dict slot and the bytes object's header, rounded up.
ENTRY_OVERHEAD_BYTES = 200
DEFAULT_MAX_ENTRIES = 10_000
IDENTITY_REFRESH_S = 30.0


def request_key(request: RunRequest, identity: str, credential: str = "") -> bytes:
    """The cache key of ``request`` run by the backend ``identity`` for a caller presenting ``credential``."""
    digest = hashlib.sha256()
    # Length-prefixed parts: no choice of identity or credential can shift bytes into the request's part.
    for part in (identity, credential, canonical(request)):
        data = part.encode()
        digest.update(len(data).to_bytes(8, "big"))
        digest.update(data)
    return digest.digest()


def canonical(request: RunRequest) -> str:
    """``request`` as JSON with sorted keys: equal requests give equal text whatever the order of their fields."""
    return json.dumps(request.model_dump(mode="json"), sort_keys=True, separators=(",", ":"), allow_nan=False)


def runner_identity(backend: object) -> str:
    """What decides a result besides the request: the backend's kind and the runner it runs. Blocking (it may ask
    the Docker engine); the service calls it at start-up and again every ``IDENTITY_REFRESH_S``, and empties the
    cache when it changes (a runner image rebuilt under the same tag, an edited runner.py)."""
    kind = type(backend)
    parts = [f"{kind.__module__}.{kind.__qualname__}", str(getattr(backend, "name", ""))]
    pool = getattr(backend, "pool", None)
    spec = getattr(pool, "spec", None)
    if spec is not None:  # docker: the image the containers run, by id, and how they are confined
        parts.append(repr(spec))
        try:
            parts.append(str(pool.client.images.get(spec.image).id))  # type: ignore[union-attr]
        except Exception as exc:  # no engine now: this identity differs from any with an image id
            parts.append(f"image unknown: {type(exc).__name__}")
    else:  # process: the runner source this process hands to its interpreter
        runner = Path(__file__).with_name("runner.py")
        parts += [sys.executable, sys.version, str(getattr(backend, "isolate", ""))]
        try:
            parts.append(hashlib.sha256(runner.read_bytes()).hexdigest())
        except OSError as exc:
            parts.append(f"runner unreadable: {type(exc).__name__}")
    return "\n".join(parts)


def cacheable(result: RunResult) -> bool:
    return result.status == RunStatus.COMPLETED and not result.counts.get(Verdict.TIMEOUT)


class ResultCache:
    """LRU by entries and by bytes. Used from the service's event loop only, so it takes no lock."""

    def __init__(self, max_bytes: int, max_entries: int = DEFAULT_MAX_ENTRIES) -> None:
        if max_bytes < 1 or max_entries < 1:
            raise ValueError(f"a cache needs room: max_bytes={max_bytes}, max_entries={max_entries}")
        self.max_bytes, self.max_entries = max_bytes, max_entries
        self.max_entry_bytes = max_bytes // 8
        self._entries: OrderedDict[bytes, bytes] = OrderedDict()
        self.bytes = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: bytes) -> Optional[RunResult]:
        """The kept result for ``key``, marked ``cached``, or None."""
        data = self._entries.get(key)
        if data is None:
            return None
        self._entries.move_to_end(key)
        result = RunResult.model_validate_json(data)
        result.cached = True
        return result

    def put(self, key: bytes, result: RunResult) -> bool:
        """Keep ``result`` if it may be kept and fits; whether it was kept."""
        if not cacheable(result):
            return False
        try:
            data = result.model_copy(update={"cached": False}).model_dump_json().encode()
        except (PydanticSerializationError, UnicodeError):  # e.g. a lone surrogate echoed from the request
            return False
        size = len(data) + ENTRY_OVERHEAD_BYTES
        if size > self.max_entry_bytes:
            return False
        old = self._entries.pop(key, None)
        if old is not None:
            self.bytes -= len(old) + ENTRY_OVERHEAD_BYTES
        self._entries[key] = data
        self.bytes += size
        while len(self._entries) > self.max_entries or self.bytes > self.max_bytes:
            _, evicted = self._entries.popitem(last=False)
            self.bytes -= len(evicted) + ENTRY_OVERHEAD_BYTES
        return True

    def clear(self) -> None:
        self._entries.clear()
        self.bytes = 0
