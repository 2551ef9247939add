"""The result cache: identical requests are answered from memory and marked cached, within a batch and across
requests; only completed results are kept (never an infra_error, nor a timeout); the bound holds by entries and by
bytes; the key covers everything that decides a result; hits and misses are counted in /metrics."""

from __future__ import annotations

import argparse
import os
import time

import docker
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import sandbox.server
from sandbox.backends.base import Backend
from sandbox.backends.docker import DockerBackend, DockerSettings
from sandbox.backends.docker_pool import DEFAULT_RUNNER_IMAGE, ContainerSpec
from sandbox.backends.process import ProcessBackend
from sandbox.cache import ENTRY_OVERHEAD_BYTES, ResultCache, request_key, runner_identity
from sandbox.client import Client
from sandbox.commands import serve
from sandbox.launch import start_service
from sandbox.models import RunRequest, RunResult
from sandbox.server import ServiceSettings, create_app
from tests.sandbox.test_metrics import value
from tests.sandbox.test_server import RecordingBackend, program

CACHE = ServiceSettings(token=None, cache_bytes=4 * 2**20)


class CountingBackend(ProcessBackend):
    """The process backend, recording how many programs each batch handed to it held."""

    def __init__(self) -> None:
        super().__init__(workers=2)
        self.batches: list[int] = []

    async def run_batch(self, requests):
        self.batches.append(len(requests))
        return await super().run_batch(requests)


def completed(passed: bool = True, verdict: str = "pass", stdout: str = "") -> RunResult:
    return RunResult.model_validate({"status": "completed", "passed": passed, "counts": {verdict: 1},
                                     "tests": [{"id": "test_0", "verdict": verdict, "stdout": stdout}]})


def key(i: int, identity: str = "runner-a", credential: str = "") -> bytes:
    return request_key(RunRequest(**program(i)), identity, credential)


def test_an_identical_request_is_answered_from_the_cache_and_marked():
    backend = CountingBackend()
    with TestClient(create_app(backend, CACHE)) as client:
        first = client.post("/v1/runs", json=program(0)).json()
        second = client.post("/v1/runs", json=program(0)).json()
        other = client.post("/v1/runs", json=program(1)).json()
        text = client.get("/metrics").text
    assert backend.batches == [1, 1]  # program(0) ran once, program(1) once
    assert first["cached"] is False and second["cached"] is True and other["cached"] is False
    assert {**second, "cached": False} == first  # the same answer, word for word
    assert other["passed"] is False and first["passed"] is True
    assert value(text, "sandbox_cache_hits_total") == 1 and value(text, "sandbox_cache_misses_total") == 2
    assert value(text, "sandbox_cache_entries") == 2 and value(text, "sandbox_runs_total", status="completed") == 3
    assert 0 < (value(text, "sandbox_cache_bytes") or 0) <= 4 * 2**20


def test_duplicates_in_one_batch_run_once_and_keep_their_order():
    backend = CountingBackend()
    runs = [program(0), program(1), program(0), program(2), program(1), program(0)]
    with TestClient(create_app(backend, CACHE)) as client:
        results = client.post("/v1/batch", json={"runs": runs}).json()["results"]
        again = client.post("/v1/batch", json={"runs": [program(2), program(3)]}).json()["results"]
    assert backend.batches == [3, 1]  # 0, 1, 2 once each; then only 3 is new
    assert [r["passed"] for r in results] == [True, False, True, True, False, True]
    assert [r["cached"] for r in results] == [False, False, True, False, True, True]
    assert [r["cached"] for r in again] == [True, False]


def test_requests_that_differ_in_anything_that_decides_the_result_do_not_share_an_entry():
    backend = CountingBackend()
    base = {"code": "def f():\n    return 1\n", "tests": [{"kind": "call", "entry_point": "f", "expected": 1}]}
    variants = [
        base,
        {**base, "code": "def f():\n    return 1 \n"},
        {**base, "tests": [{"kind": "call", "entry_point": "f", "expected": 2}]},
        {**base, "tests": [{"kind": "call", "entry_point": "f", "expected": 1, "id": "other"}]},
        {**base, "limits": {"time_s": 2}},
        {**base, "limits": {"memory_mb": 256}},
        {**base, "fail_fast": True},
    ]
    with TestClient(create_app(backend, CACHE)) as client:
        answers = [client.post("/v1/runs", json=v).json() for v in variants]
        assert not any(a["cached"] for a in answers)
        assert backend.batches == [1] * len(variants)
        # The same request spelled differently (explicit default id, default limits, keys reordered) is identical.
        same = {"tests": [{"expected": 1, "entry_point": "f", "kind": "call", "id": "test_0"}], "code": base["code"],
                "limits": {"time_s": 5.0, "memory_mb": 512}, "fail_fast": False}
        assert client.post("/v1/runs", json=same).json()["cached"] is True


def test_an_infra_error_is_never_cached():
    backend = RecordingBackend()  # answers every program with a retryable infra_error
    with TestClient(create_app(backend, CACHE)) as client:
        for _ in range(2):
            result = client.post("/v1/runs", json=program(0)).json()
            assert result["status"] == "infra_error" and result["cached"] is False
        copies = client.post("/v1/batch", json={"runs": [program(0), program(0)]}).json()["results"]
        assert len(client.app.state.cache) == 0
    assert [len(b) for b in backend.batches] == [1, 1, 1]
    # A copy in the same batch carries the infra_error as it is, unmarked: the client retries it.
    assert [(r["status"], r["cached"]) for r in copies] == [("infra_error", False)] * 2


def test_a_timeout_is_not_kept_across_requests():
    backend = CountingBackend()
    slow = {"code": "import time\n", "tests": [{"kind": "assert", "code": "time.sleep(30)"}],
            "limits": {"time_s": 0.2}}
    with TestClient(create_app(backend, CACHE)) as client:
        first = client.post("/v1/batch", json={"runs": [slow, slow]}).json()["results"]
        second = client.post("/v1/runs", json=slow).json()
    assert [r["tests"][0]["verdict"] for r in first] == ["timeout", "timeout"]
    assert [r["cached"] for r in first] == [False, True]  # one run answers both copies of one batch
    assert second["cached"] is False and backend.batches == [1, 1]  # but is not kept for later requests


def test_the_cache_is_off_by_default():
    backend = CountingBackend()
    with TestClient(create_app(backend, ServiceSettings(token=None))) as client:
        results = client.post("/v1/batch", json={"runs": [program(0), program(0)]}).json()["results"]
        again = client.post("/v1/runs", json=program(0)).json()
        text = client.get("/metrics").text
    assert ServiceSettings().cache_bytes == 0
    assert backend.batches == [2, 1] and not any(r["cached"] for r in [*results, again])
    assert value(text, "sandbox_cache_hits_total") == 0 and value(text, "sandbox_cache_entries") is None


def test_hits_are_answered_while_the_backend_cannot_serve():
    class Flaky(Backend):
        name = "flaky"

        def __init__(self) -> None:
            self.up, self.calls = True, 0

        def ready(self) -> tuple[bool, str]:
            return self.up, "ready" if self.up else "engine gone"

        async def run_batch(self, requests):
            self.calls += 1
            return [completed() for _ in requests]

    backend = Flaky()
    with TestClient(create_app(backend, CACHE)) as client:
        assert client.post("/v1/runs", json=program(0)).json()["cached"] is False
        backend.up = False
        assert client.post("/v1/runs", json=program(0)).json()["cached"] is True  # needs no backend
        assert client.post("/v1/runs", json=program(1)).status_code == 503  # a miss does
        assert client.post("/v1/batch", json={"runs": [program(0), program(1)]}).status_code == 503
    assert backend.calls == 1


def test_a_changed_runner_empties_the_cache(monkeypatch):
    runner = ["image-a"]
    monkeypatch.setattr(sandbox.server, "runner_identity", lambda backend: runner[0])
    monkeypatch.setattr(sandbox.server, "IDENTITY_REFRESH_S", 0.01)
    backend = CountingBackend()
    with TestClient(create_app(backend, CACHE)) as client:
        client.post("/v1/runs", json=program(0))
        assert client.post("/v1/runs", json=program(0)).json()["cached"] is True
        runner[0] = "image-b"  # the runner image was rebuilt under the same tag
        deadline = time.monotonic() + 60  # the refresh runs every 10 ms; the bound is only against a hang
        while client.portal.call(lambda: len(client.app.state.cache)) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(client.app.state.cache) == 0
        assert client.post("/v1/runs", json=program(0)).json()["cached"] is False
    assert backend.batches == [1, 1]


def test_the_cached_field_is_in_the_openapi_schema():
    with TestClient(create_app(RecordingBackend(), ServiceSettings(token=None))) as client:
        schema = client.get("/openapi.json").json()["components"]["schemas"]["RunResult"]
    assert schema["properties"]["cached"]["type"] == "boolean"
    assert list(schema["properties"])[-1] == "cached"


def test_lru_by_entries():
    cache = ResultCache(max_bytes=2**20, max_entries=2)
    cache.put(key(0), completed())
    cache.put(key(1), completed(False, "fail"))
    assert cache.get(key(0)) is not None  # now the most recently used
    cache.put(key(2), completed())
    assert len(cache) == 2 and cache.get(key(1)) is None and cache.get(key(0)) is not None


def test_lru_by_bytes_and_the_count_is_exact():
    one = completed(stdout="x" * 1000)
    size = len(one.model_dump_json()) + ENTRY_OVERHEAD_BYTES
    cache = ResultCache(max_bytes=10 * size + size // 2, max_entries=100)  # room for ten and a half
    for i in range(12):
        assert cache.put(key(i), one)
    assert len(cache) == 10 and cache.bytes == 10 * size <= cache.max_bytes
    assert [cache.get(key(i)) is not None for i in range(12)] == [False] * 2 + [True] * 10
    cache.put(key(11), one)  # replacing an entry does not count it twice
    assert cache.bytes == 10 * size
    cache.clear()
    assert len(cache) == 0 and cache.bytes == 0


def test_a_result_too_large_for_the_bound_is_not_kept():
    cache = ResultCache(max_bytes=8 * 4096)
    assert not cache.put(key(0), completed(stdout="x" * 4096))  # over an eighth of the bound
    assert cache.put(key(1), completed(stdout="x" * 100))
    assert cache.get(key(0)) is None and len(cache) == 1


def test_what_is_kept_and_what_a_hit_returns():
    cache = ResultCache(max_bytes=2**20)
    assert not cache.put(key(0), RunResult.infra_error("engine gone", retryable=True))
    assert not cache.put(key(0), RunResult.infra_error("bad image", retryable=False))
    assert not cache.put(key(0), completed(False, "timeout"))
    assert cache.put(key(0), completed(False, "memory"))
    hit = cache.get(key(0))
    assert hit is not None and hit.cached and hit.counts == completed(False, "memory").counts
    hit.tests.clear()  # a caller's change to a hit does not reach the kept copy
    again = cache.get(key(0))
    assert again is not None and len(again.tests) == 1


def test_the_key_covers_runner_and_credential():
    assert key(0) == key(0)
    assert key(0) != key(1)
    assert key(0, identity="runner-b") != key(0)
    assert key(0, credential="Bearer a") != key(0, credential="Bearer b")
    # Length-prefixed parts: moving bytes between identity and credential gives another key.
    assert request_key(RunRequest(**program(0)), "ab", "c") != request_key(RunRequest(**program(0)), "a", "bc")


def test_a_cache_needs_room():
    with pytest.raises(ValueError):
        ResultCache(max_bytes=0)
    with pytest.raises(ValueError):
        ResultCache(max_bytes=100, max_entries=0)


@pytest.mark.docker
@pytest.mark.usefixtures("needs_docker")
def test_the_docker_service_answers_a_repeat_from_the_cache_and_keys_on_the_runner_image():
    image = os.environ.get("SANDBOX_RUNNER_IMAGE", DEFAULT_RUNNER_IMAGE)
    engine = docker.from_env()
    try:
        image_id = engine.images.get(image).id
    finally:
        engine.close()
    with start_service("docker", pool_size=1, cache_mb=8, image=image) as service, Client(service.url) as client:
        request = RunRequest(**program(0))
        first, second = client.run(request), client.run(request)
        batch = client.run_batch([RunRequest(**program(1)), RunRequest(**program(1))])
        text = client._http.get("/metrics").text
    assert first.passed and not first.cached and second.cached
    assert second.model_copy(update={"cached": False}) == first
    assert [r.cached for r in batch] == [False, True] and not batch[0].passed
    assert value(text, "sandbox_cache_hits_total") == 2 and value(text, "sandbox_cache_misses_total") == 2
    # The key holds the image's id, so an image rebuilt under the same tag does not answer from old entries.
    assert image_id in runner_identity(DockerBackend(DockerSettings(spec=ContainerSpec(image=image))))


def test_a_result_that_cannot_be_written_as_json_is_not_kept_and_does_not_fail():
    cache = ResultCache(max_bytes=2**20)
    odd = RunResult.model_validate({"status": "completed", "tests": [{"id": "t\udcff", "verdict": "pass"}]})
    assert not cache.put(key(0), odd) and len(cache) == 0


_values = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=8),
                       lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner,
                                                                                     max_size=3), max_leaves=5)
_bodies = st.fixed_dictionaries(
    {"code": st.sampled_from(["def f(x):\n    return x\n", "import random\nprint(random.random())\n", "x = (",
                              "def f(x):\n    raise ValueError(x)\n"]) | st.text(max_size=20),
     "tests": st.lists(st.one_of(
         st.fixed_dictionaries({"kind": st.just("assert"), "code": st.sampled_from(["assert f(1) == 1", "1/0"])}),
         st.fixed_dictionaries({"kind": st.just("call"), "entry_point": st.just("f"),
                                "args": st.lists(_values, min_size=1, max_size=1), "expected": _values}),
         st.fixed_dictionaries({"kind": st.just("stdio"), "stdin": st.text(max_size=8),
                                "expected_stdout": st.text(max_size=8)})), min_size=1, max_size=2)},
    optional={"limits": st.fixed_dictionaries({"time_s": st.floats(0.5, 2)}), "fail_fast": st.booleans(),
              "unknown": _values},
)


@pytest.fixture(scope="module")
def cached_app():
    with TestClient(create_app(ProcessBackend(workers=2), CACHE), raise_server_exceptions=False) as client:
        yield client


@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(body=_bodies)
def test_whatever_the_body_a_hit_is_the_first_answer_and_nothing_fails(cached_app, body):
    """Hostile and odd bodies through the cache: never a 5xx; a cached answer is exactly the one it copies, and
    only a completed run without a timeout is ever answered from memory across requests."""
    first = cached_app.post("/v1/batch", json={"runs": [body, body]})
    assert first.status_code < 500, first.text[:300]
    if first.status_code != 200:
        return
    original, copy = first.json()["results"]
    assert copy == {**original, "cached": True}
    again = cached_app.post("/v1/runs", json=body).json()
    kept = original["status"] == "completed" and not original["counts"].get("timeout")
    assert again["cached"] is kept
    if kept:
        assert again == {**original, "cached": True}


def test_serve_flags_set_and_refuse_the_cache_bound():
    parser = argparse.ArgumentParser()
    serve.register(parser.add_subparsers())
    default = parser.parse_args(["serve"])
    assert default.cache_mb == 0 and default.cache_entries == 10_000 and serve.bad_arguments(default) is None
    assert serve.bad_arguments(parser.parse_args(["serve", "--cache-mb", "256", "--cache-entries", "5"])) is None
    assert "--cache-mb" in (serve.bad_arguments(parser.parse_args(["serve", "--cache-mb", "-1"])) or "")
    assert "--cache-entries" in (serve.bad_arguments(parser.parse_args(["serve", "--cache-entries", "0"])) or "")
