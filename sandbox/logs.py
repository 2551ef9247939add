"""Structured logs: one JSON object per line, keyed by the run id of the HTTP request being served.

The service sets ``RUN_ID`` for each request; asyncio copies it into every task the request starts, so a
backend's log lines (a container that broke, a retry) carry the id of the request they belong to.
"""

from __future__ import annotations

import json
import logging
from contextvars import ContextVar
from typing import Optional

RUN_ID: ContextVar[Optional[str]] = ContextVar("run_id", default=None)


def event(logger: logging.Logger, name: str, level: int = logging.INFO, **fields) -> None:
    """Log ``{"event": name, "run_id": ..., **fields}`` as one JSON line."""
    if logger.isEnabledFor(level):
        record = {"event": name, "run_id": RUN_ID.get(), **fields}
        logger.log(level, json.dumps(record, default=str))
