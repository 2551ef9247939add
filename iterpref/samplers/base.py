"""The one interface every sampler offers: a batch of prompts in, one reply per prompt out, in order."""

from __future__ import annotations

import abc
from dataclasses import dataclass


@dataclass
class Prompt:
    """One request: the chat messages, plus which task and round it is for (scripted samplers key on them).

    ``code_start`` is code the reply may begin with (a function-completion task's signature and docstring on
    round 0 and on brief repair prompts). A sampler that can start the model's reply itself
    (``HFSampler(prefill="code")``) writes it there, so a small model spends its tokens on the body instead of
    restating the docstring; others ignore it.
    """

    task_id: str
    round: int
    messages: list[dict[str, str]]
    code_start: str = ""


class Sampler(abc.ABC):
    #: Recorded in every attempt, e.g. ``hf:/path/to/model`` or ``openai:gpt-4o``.
    name: str = "abstract"

    @abc.abstractmethod
    def generate(self, prompts: list[Prompt]) -> list[str]:
        """One reply per prompt, in order. Implementations batch or run requests concurrently themselves."""

    def close(self) -> None:
        """Release clients or models."""
