"""A sampler that replays fixed replies: for tests, benchmarks and reproducing a run without a model.

Script format (JSONL, or the same as a dict): ``{"task_id": "t1", "responses": ["round 0 reply", "round 1 reply"]}``.
A round past the end of ``responses`` gets the last reply again; a task with no script is an error.
"""

from __future__ import annotations

from pathlib import Path

from iterpref.errors import DataError, SamplerError
from iterpref.records import read_jsonl
from iterpref.samplers.base import Prompt, Sampler


class ScriptedSampler(Sampler):
    def __init__(self, script: dict[str, list[str]], name: str = "scripted"):
        for task_id, responses in script.items():
            if not isinstance(responses, list) or not responses or not all(isinstance(r, str) for r in responses):
                raise DataError(f"script for task {task_id!r}: `responses` must be a non-empty list of strings")
        self.script = script
        self.name = name
        self.calls = 0  # batches served; tests check that the loop batches

    @classmethod
    def from_jsonl(cls, path: str | Path) -> "ScriptedSampler":
        script: dict[str, list[str]] = {}
        for number, record in read_jsonl(path):
            if set(record) != {"task_id", "responses"}:
                raise DataError(f"{path}:{number}: expected exactly the fields task_id and responses")
            script[str(record["task_id"])] = record["responses"]
        return cls(script, name=f"scripted:{path}")

    def generate(self, prompts: list[Prompt]) -> list[str]:
        self.calls += 1
        replies = []
        for prompt in prompts:
            responses = self.script.get(prompt.task_id)
            if responses is None:
                raise SamplerError(f"the script has no responses for task {prompt.task_id!r}")
            replies.append(responses[min(prompt.round, len(responses) - 1)])
        return replies
