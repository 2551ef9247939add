"""sandbox.rewards against the real service (process backend, started as `sandbox serve`, reached through the
client): TRL's and verl's reward signatures, code pulled out of fenced and chat completions, pass or fraction
rewards, one request per call, repeats answered by the service's cache, and an infra_error that raises instead
of becoming a reward."""

from __future__ import annotations

import json

import httpx
import pytest

from sandbox.client import Client
from sandbox.errors import SandboxError
from sandbox.launch import start_service
from sandbox.models import MAX_CODE_BYTES, RunResult
from sandbox.retry import RetryPolicy
from sandbox.rewards import (
    Rewarder,
    RewardUnavailable,
    compute_score,
    compute_score_batch,
    extract_code,
    read_tests,
    trl_reward,
)
from tests.sandbox.test_metrics import value

ADD_TESTS = [{"kind": "call", "entry_point": "add", "args": [1, 2], "expected": 3},
             {"kind": "call", "entry_point": "add", "args": [0, 0], "expected": 0},
             {"kind": "assert", "code": "assert add(-1, 1) == 0"}]
RIGHT = "def add(a, b):\n    return a + b\n"
TIMES = "def add(a, b):\n    return a * b\n"  # passes only add(0, 0)
FAST = RetryPolicy(connect_attempts=2, busy_wait_s=2.0, infra_attempts=3, backoff_s=0.01, max_backoff_s=0.02)


@pytest.fixture(scope="module")
def service():
    with start_service("process", cache_mb=16, workers=2) as service:
        yield service


def metric(service, name: str, **labels: str) -> float:
    return value(httpx.get(service.url + "/metrics").text, name, **labels) or 0.0


def trl_call(reward, completions, tests):
    """Call ``reward`` the way GRPOTrainer does: everything by keyword, each dataset column one value per
    completion, plus the trainer's own extras."""
    return reward(prompts=["Write add(a, b)."] * len(completions), completions=completions,
                  completion_ids=[[1, 2]] * len(completions), tests=tests, task_id=["t"] * len(completions),
                  trainer_state=None, log_extra=lambda *a, **k: None, log_metric=lambda *a, **k: None)


def test_trl_reward_scores_strings_and_chat_completions_in_one_request(service):
    reward = trl_reward(service.url)
    completions = [
        f"Here you go:\n```python\n{RIGHT}```\nIt adds.",                      # fenced, prose around
        f"```python\n{TIMES}```",                                               # wrong
        [{"role": "assistant", "content": f"```py\n{RIGHT}```"}],               # TRL's conversational format
        RIGHT,                                                                  # bare code
        "```bash\npython add.py\n```\n```python\nprint(add(1, 2))\n```\n```python\n" + RIGHT + "```",
        f"```python\n{RIGHT}",                                                  # fence left open (token limit)
    ]
    batches = metric(service, "sandbox_requests_total", endpoint="/v1/batch", code="200")
    runs = metric(service, "sandbox_requests_total", endpoint="/v1/runs", code="200")
    assert trl_call(reward, completions, [ADD_TESTS] * len(completions)) == [1.0, 0.0, 1.0, 1.0, 1.0, 1.0]
    assert metric(service, "sandbox_requests_total", endpoint="/v1/batch", code="200") == batches + 1
    assert metric(service, "sandbox_requests_total", endpoint="/v1/runs", code="200") == runs
    assert reward.__name__ == "sandbox_pass"


def test_partial_rewards_are_the_fraction_of_tests_passed(service):
    reward = trl_reward(service.url, partial=True)
    completions = [RIGHT, TIMES, "def add(a, b):\n    return a - b\n", "this is not code"]
    # a - b passes add(0, 0) and nothing else; prose fails to load, so every test fails.
    assert trl_call(reward, completions, [ADD_TESTS] * 4) == [1.0, 1 / 3, 1 / 3, 0.0]
    assert reward.__name__ == "sandbox_pass_fraction"


def test_tests_specs_in_every_form(service):
    rewarder = Rewarder(service.url)
    specs = [
        ADD_TESTS,
        {"task_id": "HumanEval/x", "prompt": "...", "entry_point": "add", "tests": ADD_TESTS, "test_file": None},
        json.dumps({"tests": ADD_TESTS, "limits": {"time_s": 2}}),
        json.dumps(ADD_TESTS),
        "assert add(2, 3) == 5",
        {"test_file": "from solution import add\n\ndef test_add():\n    assert add(2, 3) == 5\n"},
    ]
    assert rewarder.score([RIGHT] * len(specs), specs) == [1.0] * len(specs)
    assert rewarder.score([TIMES] * len(specs), specs) == [0.0] * len(specs)
    rewarder.close()


def test_repeated_completions_are_answered_by_the_service_cache(service):
    reward = trl_reward(service.url)
    group = [f"```python\n{RIGHT}# group-{id(reward)}\n```"] * 4 + [TIMES + f"# group-{id(reward)}\n"] * 4
    hits = metric(service, "sandbox_cache_hits_total")
    misses = metric(service, "sandbox_cache_misses_total")
    assert trl_call(reward, group, [ADD_TESTS] * 8) == [1.0] * 4 + [0.0] * 4
    assert metric(service, "sandbox_cache_misses_total") == misses + 2  # two distinct programs ran
    assert metric(service, "sandbox_cache_hits_total") == hits + 6
    assert trl_call(reward, group[:1], [ADD_TESTS]) == [1.0]  # and a later step is answered from memory
    assert metric(service, "sandbox_cache_hits_total") == hits + 7


def test_verl_compute_score_and_its_batch_form(service):
    ground_truth = json.dumps(ADD_TESTS)
    kwargs = {"sandbox_url": service.url}
    assert compute_score("code", f"```python\n{RIGHT}```", ground_truth, None, **kwargs) == 1.0
    assert compute_score(data_source="code", solution_str=TIMES, ground_truth=ground_truth, extra_info={},
                         **kwargs) == 0.0
    assert compute_score("code", TIMES, ground_truth, partial=True, **kwargs) == pytest.approx(1 / 3)
    # extra_info's entry point chooses the block that defines it over a longer one that does not.
    two_blocks = f"```python\n{RIGHT}```\n```python\ndef helper(x):\n    y = x + 1\n    z = y * 2\n    return z\n```"
    assert compute_score("code", two_blocks, ground_truth, {"entry_point": "add"}, **kwargs) == 1.0
    scores = compute_score_batch(data_sources=["code"] * 3, solution_strs=[RIGHT, TIMES, two_blocks],
                                 ground_truths=[ground_truth] * 3,
                                 extra_infos=[None, None, {"entry_point": "add"}], **kwargs)
    assert scores == [1.0, 0.0, 1.0]


def test_a_program_over_the_size_limit_scores_zero_without_being_sent(service):
    rewarder = Rewarder(service.url)
    huge = RIGHT + "#" * MAX_CODE_BYTES
    runs = metric(service, "sandbox_runs_total", status="completed")
    assert rewarder.score([huge, RIGHT], [ADD_TESTS, ADD_TESTS]) == [0.0, 1.0]
    assert metric(service, "sandbox_runs_total", status="completed") == runs + 1


def test_an_unreachable_executor_raises_instead_of_scoring_zero():
    with start_service("process") as gone:
        url = gone.url
    reward = trl_reward(url, retry=FAST)
    with pytest.raises(SandboxError):
        trl_call(reward, [RIGHT], [ADD_TESTS])


def infra_errors(retryable: bool, calls: list[int]) -> httpx.MockTransport:
    def answer(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        failed = RunResult.infra_error("runner container vanished", retryable=retryable).model_dump(mode="json")
        if request.url.path == "/v1/runs":
            return httpx.Response(200, json=failed)
        return httpx.Response(200, json={"results": [failed] * len(json.loads(request.content)["runs"])})

    return httpx.MockTransport(answer)


@pytest.mark.parametrize("retryable, sends", [(True, FAST.infra_attempts), (False, 1)])
def test_an_infra_error_is_retried_then_raised_never_a_reward(retryable, sends):
    calls: list[int] = []
    client = Client("http://x", transport=infra_errors(retryable, calls), retry=FAST)
    reward = trl_reward(client=client)
    with pytest.raises(RewardUnavailable) as caught:
        trl_call(reward, [RIGHT, TIMES], [ADD_TESTS, ADD_TESTS])
    assert len(calls) == sends  # the client's retries, then no reward
    assert [i for i, _ in caught.value.failures] == [0, 1] and "runner container vanished" in str(caught.value)


def test_mistakes_in_the_call_are_named():
    reward = trl_reward("http://127.0.0.1:9", tests_column="checks")
    with pytest.raises(KeyError, match="checks"):
        trl_call(reward, [RIGHT], [ADD_TESTS])
    with pytest.raises(ValueError, match="one per completion"):
        Rewarder("http://127.0.0.1:9").score([RIGHT, RIGHT], [ADD_TESTS])
    with pytest.raises(ValueError, match="needs `tests` or `test_file`"):
        read_tests({"prompt": "no tests here"})


@pytest.mark.parametrize("text, entry_point, code", [
    ("no fence at all\nx = 1", None, "no fence at all\nx = 1"),
    ("```python\nx = 1\n```", None, "x = 1\n"),
    ("~~~\nx = 1\n~~~", None, "x = 1\n"),
    ("```\nshort = 1\n```\n```python\nlonger_name = 12345\n```", None, "longer_name = 12345\n"),
    ("```python\ndef f():\n    return 1\n```\n```python\nprint(f())  # a long example call\n```", "f",
     "def f():\n    return 1\n"),
    ("````python\ns = '```'\n````", None, "s = '```'\n"),
    ("```bash\npip install x\n```", None, ""),
])
def test_extract_code(text, entry_point, code):
    assert extract_code(text, entry_point) == code
