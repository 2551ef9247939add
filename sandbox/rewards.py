"""Rewards for reinforcement-learning trainers, computed by running completions against their tests in the
executor service.

    from sandbox.rewards import trl_reward
    trainer = trl.GRPOTrainer(..., reward_funcs=[trl_reward("http://127.0.0.1:8000")], train_dataset=dataset)

    # verl: custom_reward_function.path=<this file> custom_reward_function.name=compute_score
    #       (or name=compute_score_batch with reward_model.reward_manager=batch); the service's URL and token
    #       come from SANDBOX_URL / SANDBOX_TOKEN, or from custom_reward_function.reward_kwargs.

A completion is a string, or a chat message list (TRL's conversational format; the last assistant message
counts). Its program is the fenced block that defines the task's entry point, else the longest Python block, else
the whole text when it has no fence. The tests of a task ("tests spec") are, in any of these forms:

- a list of tests in the executor's contract (``sandbox.models``: assert, call, stdio tests);
- a dict with ``tests`` or ``test_file``, optionally ``limits``, ``fail_fast`` and ``entry_point`` (an iterpref
  task record is one; its other keys are ignored);
- a JSON string of either (verl keeps ``ground_truth`` as a string), or else Python code run as one assert test.

Reward: 1.0 when every test passes, else 0.0; with ``partial=True`` the fraction of tests that passed. Each call
sends its completions as one ``POST /v1/batch`` (split at 1000 programs, the batch limit). A run the sandbox
could not complete (``infra_error``) is not the model's fault and never becomes a reward: the client retries it
(``RetryPolicy.infra_attempts``), and if it still fails the call raises ``RewardUnavailable``; an executor that
cannot be reached raises the client's own errors (``ExecutorUnreachable``, ``ExecutorBusy``). A program over the
size limit (``MAX_CODE_BYTES``) is the model's output, so it scores 0.0 without being sent.

Groups of samples often repeat a completion: start the service with ``--cache-mb`` so that repeats are answered
from memory (docs/service.md, "Result cache").

This module imports neither TRL nor verl: it only matches the signatures they call.
"""

from __future__ import annotations

import json
import os
import re
import threading
from typing import Any, Callable, Optional, Sequence, Union

from sandbox.client import Client
from sandbox.errors import SandboxError
from sandbox.models import MAX_CODE_BYTES, MAX_TESTS, Limits, RunRequest, RunResult, RunStatus, Verdict
from sandbox.retry import RetryPolicy

Completion = Union[str, Sequence[dict]]
TestsSpec = Union[str, dict, list]

# An opening fence (three or more backticks or tildes) and its language tag, at the start of a line.
_FENCE = re.compile(r"^[ \t]*(`{3,}|~{3,})[ \t]*([\w+#.-]*)[^\n]*$", re.MULTILINE)
_PYTHON_TAGS = {"", "python", "py", "python3", "py3"}
_RUN_FIELDS = ("tests", "test_file", "limits", "fail_fast")


class RewardUnavailable(SandboxError):
    """Some completions could not be run (the sandbox failed, not the program) even after the client's retries:
    no reward is made up for them. The message lists which, and why."""

    def __init__(self, failures: list[tuple[int, Optional[str]]]) -> None:
        self.failures = failures
        shown = "; ".join(f"#{i}: {message}" for i, message in failures[:5])
        more = f" (and {len(failures) - 5} more)" if len(failures) > 5 else ""
        super().__init__(f"{len(failures)} completion(s) could not be run by the executor after retries: "
                         f"{shown}{more}; check the service (/readyz, its log) and retry the step")


# ----- from completions and tests to requests ----------------------------------------------------------------


def completion_text(completion: Completion) -> str:
    """The text of a completion: a string as it is; of a chat message list, the last assistant message (its
    text parts, when the content is a list of parts)."""
    if isinstance(completion, str):
        return completion
    messages = [m for m in completion if isinstance(m, dict)]
    replies = [m for m in messages if m.get("role", "assistant") == "assistant"] or messages
    if not replies:
        return ""
    content = replies[-1].get("content", "")
    if isinstance(content, list):  # [{"type": "text", "text": ...}, ...]
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return str(content or "")


def _fenced_blocks(text: str) -> list[tuple[str, str]]:
    """(language tag, body) of every fenced block; a fence left open (generation hit its token limit) runs to the
    end of the text."""
    blocks, position = [], 0
    while (opening := _FENCE.search(text, position)) is not None:
        fence = opening.group(1)
        closing = re.compile(rf"^[ \t]*{re.escape(fence[0])}{{{len(fence)},}}[ \t]*$", re.MULTILINE)
        start = opening.end() + 1
        end = closing.search(text, start)
        blocks.append((opening.group(2).lower(), text[start : end.start() if end else len(text)]))
        if end is None:
            break
        position = end.end()
    return blocks


def extract_code(text: str, entry_point: Optional[str] = None) -> str:
    """The program in a completion: the Python (or untagged) fenced block that defines ``entry_point``, else the
    longest such block, else the whole text when it has no fenced block at all."""
    blocks = [body for tag, body in _fenced_blocks(text) if tag in _PYTHON_TAGS and body.strip()]
    if not blocks:
        return text if not _FENCE.search(text) else ""  # only non-Python blocks: there is no program
    if entry_point:
        defining = re.compile(rf"^\s*(async\s+)?def\s+{re.escape(entry_point)}\s*\(", re.MULTILINE)
        blocks = [b for b in blocks if defining.search(b)] or blocks
    return max(blocks, key=lambda body: len(body.strip()))


def read_tests(spec: TestsSpec) -> dict[str, Any]:
    """A tests spec (see the module docstring) as RunRequest fields, plus ``entry_point`` when it names one."""
    if isinstance(spec, str):
        try:
            parsed = json.loads(spec)
        except ValueError:
            parsed = None
        if isinstance(parsed, (list, dict)):
            return read_tests(parsed)
        return {"tests": [{"kind": "assert", "code": spec}]}
    if isinstance(spec, list):
        return {"tests": spec}
    if isinstance(spec, dict):
        if "tests" not in spec and "test_file" not in spec:
            raise ValueError(f"a tests spec dict needs `tests` or `test_file`; it has {sorted(spec)[:10]}")
        fields = {k: spec[k] for k in _RUN_FIELDS if spec.get(k) is not None}
        if spec.get("entry_point"):
            fields["entry_point"] = spec["entry_point"]
        return fields
    raise TypeError(f"a tests spec is a list, a dict or a string, not {type(spec).__name__}")


def reward_of(result: RunResult, partial: bool = False) -> float:
    """1.0 when every test passed, else 0.0; with ``partial`` the fraction of tests that passed. Only for a
    completed run: an infra_error has no reward."""
    if result.status != RunStatus.COMPLETED:
        raise ValueError(f"a {result.status.value} result has no reward")
    if not partial:
        return 1.0 if result.passed else 0.0
    if not result.tests:
        return 0.0
    return sum(t.verdict == Verdict.PASS for t in result.tests) / len(result.tests)


# ----- scoring through the service ------------------------------------------------------------------------------


class Rewarder:
    """Scores completions against tests through one executor service. ``url``/``token`` default to
    ``SANDBOX_URL``/``SANDBOX_TOKEN``; ``limits`` applies to tasks whose spec gives none; or pass a ``client``."""

    def __init__(self, url: Optional[str] = None, *, token: Optional[str] = None, partial: bool = False,
                 limits: Union[Limits, dict, None] = None, client: Optional[Client] = None,
                 retry: Optional[RetryPolicy] = None, timeout: float = 600.0, max_batch: int = MAX_TESTS) -> None:
        self.partial = partial
        self.limits = Limits.model_validate(limits) if isinstance(limits, dict) else limits
        self.max_batch = max(1, min(max_batch, MAX_TESTS))
        self._client, self._own_client = client, client is None
        self._url, self._token, self._timeout, self._retry = url, token, timeout, retry or RetryPolicy()
        self._pid = os.getpid()
        self._lock = threading.Lock()

    @property
    def client(self) -> Client:
        # Made on first use and again in a forked child (trainers fork data and reward workers): an HTTP
        # connection pool must not be shared across processes.
        with self._lock:
            if self._own_client and (self._client is None or self._pid != os.getpid()):
                self._client = Client(self._url, token=self._token, timeout=self._timeout, retry=self._retry)
                self._pid = os.getpid()
            assert self._client is not None
            return self._client

    def close(self) -> None:
        if self._own_client and self._client is not None and self._pid == os.getpid():
            self._client.close()
        self._client = None if self._own_client else self._client

    def request(self, completion: Completion, tests: TestsSpec) -> Optional[RunRequest]:
        """The run for one completion, or None when its program is over the size limit (the model's doing)."""
        fields = read_tests(tests)
        code = extract_code(completion_text(completion), fields.pop("entry_point", None))
        if len(code.encode("utf-8", "surrogatepass")) > MAX_CODE_BYTES:
            return None
        if self.limits is not None and "limits" not in fields:
            fields["limits"] = self.limits
        return RunRequest(code=code, **fields)

    def score(self, completions: Sequence[Completion], tests: Sequence[TestsSpec]) -> list[float]:
        """One reward per completion, in order; ``tests[i]`` are the tests of ``completions[i]``."""
        if len(completions) != len(tests):
            raise ValueError(f"{len(completions)} completions but {len(tests)} tests specs: give one per completion")
        requests = [self.request(c, t) for c, t in zip(completions, tests)]
        to_run = [i for i, r in enumerate(requests) if r is not None]
        rewards = [0.0] * len(requests)
        failures: list[tuple[int, Optional[str]]] = []
        for start in range(0, len(to_run), self.max_batch):
            chunk = to_run[start : start + self.max_batch]
            runs = [r for r in (requests[i] for i in chunk) if r is not None]
            for i, result in zip(chunk, self.client.run_batch(runs)):
                if result.status == RunStatus.COMPLETED:
                    rewards[i] = reward_of(result, self.partial)
                else:
                    failures.append((i, result.infra_message))
        if failures:
            raise RewardUnavailable(failures)
        return rewards


# ----- TRL ------------------------------------------------------------------------------------------------------


def trl_reward(url: Optional[str] = None, *, tests_column: str = "tests", partial: bool = False,
               name: Optional[str] = None, **options: Any) -> Callable[..., list[float]]:
    """A reward function for ``trl.GRPOTrainer(reward_funcs=[...])``: ``reward(prompts, completions, **kwargs)``.

    TRL passes every dataset column as a keyword argument, one value per completion; ``tests_column`` names the
    one holding each task's tests spec. ``options`` go to ``Rewarder`` (token, limits, client, retry, timeout).
    The function's ``__name__`` (``name``, else ``sandbox_pass`` or ``sandbox_pass_fraction``) is what TRL logs.
    """
    rewarder = Rewarder(url, partial=partial, **options)

    def reward(prompts: Optional[list] = None, completions: Optional[list] = None, **kwargs: Any) -> list[float]:
        if completions is None:
            raise TypeError("the reward function needs `completions` (TRL passes them by keyword)")
        if tests_column not in kwargs:
            raise KeyError(f"no dataset column {tests_column!r} among the reward function's arguments "
                           f"({sorted(k for k in kwargs if not k.startswith('log_'))}); name it with tests_column=")
        return rewarder.score(completions, kwargs[tests_column])

    reward.__name__ = reward.__qualname__ = name or ("sandbox_pass_fraction" if partial else "sandbox_pass")
    reward.rewarder = rewarder  # type: ignore[attr-defined]
    return reward


# ----- verl -----------------------------------------------------------------------------------------------------

_verl_rewarders: dict[tuple, Rewarder] = {}
_verl_lock = threading.Lock()


def _verl_rewarder(url: Optional[str], token: Optional[str], partial: bool) -> Rewarder:
    # verl loads this module by path in each worker and calls plain functions: keep one client per setting.
    key = (url, token, partial, os.getpid())
    with _verl_lock:
        if key not in _verl_rewarders:
            _verl_rewarders[key] = Rewarder(url, token=token, partial=partial)
        return _verl_rewarders[key]


def _with_entry_point(ground_truth: TestsSpec, extra_info: Optional[dict]) -> TestsSpec:
    entry_point = (extra_info or {}).get("entry_point") if isinstance(extra_info, dict) else None
    if not entry_point:
        return ground_truth
    spec = read_tests(ground_truth)
    return {**spec, "entry_point": spec.get("entry_point", entry_point)}


def compute_score(data_source: Any, solution_str: str, ground_truth: TestsSpec, extra_info: Optional[dict] = None,
                  *, partial: bool = False, sandbox_url: Optional[str] = None, sandbox_token: Optional[str] = None,
                  **_: Any) -> float:
    """verl's custom reward, one completion: the reward of ``solution_str`` against the tests spec
    ``ground_truth``. ``extra_info["entry_point"]`` picks the block that defines it. ``partial``,
    ``sandbox_url`` and ``sandbox_token`` can come from ``custom_reward_function.reward_kwargs``. One request
    per completion: prefer ``compute_score_batch`` where verl's batch reward manager can call it."""
    rewarder = _verl_rewarder(sandbox_url, sandbox_token, partial)
    return rewarder.score([solution_str], [_with_entry_point(ground_truth, extra_info)])[0]


def compute_score_batch(data_sources: Sequence[Any], solution_strs: Sequence[str], ground_truths: Sequence[TestsSpec],
                        extra_infos: Optional[Sequence[Optional[dict]]] = None, *, partial: bool = False,
                        sandbox_url: Optional[str] = None, sandbox_token: Optional[str] = None,
                        **_: Any) -> list[float]:
    """verl's batch reward (``reward_model.reward_manager=batch``): every completion of the step in one request."""
    infos = list(extra_infos) if extra_infos is not None else [None] * len(solution_strs)
    rewarder = _verl_rewarder(sandbox_url, sandbox_token, partial)
    return rewarder.score(list(solution_strs), [_with_entry_point(g, e) for g, e in zip(ground_truths, infos)])
