"""Errors a user of iterpref can get; each message says what is wrong and what to do about it.

Library code raises these; only ``iterpref.cli.main`` turns them into one line and exit status 2, so a script
that calls the library catches :class:`IterprefError` the same way.
"""

from __future__ import annotations


class IterprefError(Exception):
    """Base class: a problem the user can fix (bad input, a setting, an unreachable service, a missing model)."""


class DataError(IterprefError):
    """A file that does not follow its format (tasks, trajectories, pairs, scripts, summaries), or one written by
    a newer iterpref; the message names the file and, where there is one, the line and the field."""


class ConfigError(IterprefError):
    """A setting or option out of range, or two that do not go together; the message names the option."""


class ExecutorUnavailable(IterprefError):
    """The executor cannot be reached or keeps failing; the message says where and why."""


class SamplerError(IterprefError):
    """The sampler cannot produce replies (server unreachable, model missing); the message says what to fix."""


class ModelError(IterprefError):
    """A model or tokenizer cannot be loaded (the bundled model is not installed, a folder is no model)."""
