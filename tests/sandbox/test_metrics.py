"""/metrics cannot be written by a caller: requests are labelled by route template, never by their raw path, so no
path can add text or series to the exposition; the real routes are still counted, per application."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from sandbox.backends.process import ProcessBackend
from sandbox.server import ServiceSettings, create_app
from tests.sandbox.test_server import RecordingBackend, program


def samples(text: str) -> list[tuple[str, dict[str, str], float]]:
    """Every sample of an exposition, parsed (the parser rejects text that is not valid exposition)."""
    return [(s.name, s.labels, s.value) for family in text_string_to_metric_families(text) for s in family.samples]


def value(text: str, name: str, **labels: str) -> float | None:
    return next((v for n, ls, v in samples(text) if n == name and ls == labels), None)


@pytest.fixture
def client():
    with TestClient(create_app(RecordingBackend(), ServiceSettings(token=None))) as client:
        yield client


def test_an_encoded_newline_in_the_path_does_not_inject_a_line(client):
    assert client.get("/v1/a%0Afake_metric%201").status_code == 404
    assert client.get("/v1/a%0D%0Afake_metric%201").status_code == 404
    text = client.get("/metrics").text
    assert not any(line.startswith("fake_metric") for line in text.splitlines())
    assert not any(name.startswith("fake_metric") for name, _, _ in samples(text))
    assert "fake_metric" not in text and "/v1/a" not in text  # no part of the path is echoed anywhere
    assert value(text, "sandbox_requests_total", endpoint="unmatched", code="404") == 2


def test_distinct_unknown_paths_add_no_series(client):
    client.get("/v1/unknown-0")
    client.get("/metrics")  # the scrape's own series exist from here on
    before = client.get("/metrics").text
    for i in range(1, 201):
        assert client.get(f"/v1/unknown-{i}").status_code == 404
    after = client.get("/metrics").text
    series = {(name, tuple(sorted(labels.items()))) for name, labels, _ in samples(after)}
    assert series == {(name, tuple(sorted(labels.items()))) for name, labels, _ in samples(before)}
    assert len(after.splitlines()) == len(before.splitlines())
    assert value(after, "sandbox_requests_total", endpoint="unmatched", code="404") == 201
    assert "unknown-" not in after


def test_a_method_the_route_lacks_counts_under_the_route_template(client):
    assert client.get("/v1/runs").status_code == 405
    assert value(client.get("/metrics").text, "sandbox_requests_total", endpoint="/v1/runs", code="405") == 1


def test_real_routes_are_still_counted():
    with TestClient(create_app(ProcessBackend(workers=1), ServiceSettings(token=None))) as client:
        assert client.post("/v1/runs", json=program(0)).status_code == 200
        assert client.post("/v1/batch", json={"runs": [program(0), program(1)]}).status_code == 200
        assert client.post("/v1/runs", json={"code": "x = 1"}).status_code == 422
        assert client.get("/healthz").status_code == 200
        assert client.get("/openapi.json").status_code == 200
        response = client.get("/metrics")
        assert response.headers["content-type"].startswith("text/plain")
        text = response.text
    assert value(text, "sandbox_requests_total", endpoint="/v1/runs", code="200") == 1
    assert value(text, "sandbox_requests_total", endpoint="/v1/runs", code="422") == 1
    assert value(text, "sandbox_requests_total", endpoint="/v1/batch", code="200") == 1
    assert value(text, "sandbox_requests_total", endpoint="/healthz", code="200") == 1
    assert value(text, "sandbox_requests_total", endpoint="/openapi.json", code="200") == 1
    assert value(text, "sandbox_request_seconds_count", endpoint="/v1/batch") == 1
    assert value(text, "sandbox_runs_total", status="completed") == 3
    assert value(text, "sandbox_verdicts_total", verdict="pass") == 2
    assert value(text, "sandbox_verdicts_total", verdict="fail") == 1
    assert value(text, "sandbox_ready") == 1
    assert value(text, "sandbox_queue_runs") == 0


def test_two_applications_in_one_process_keep_their_own_counts():
    with TestClient(create_app(RecordingBackend(), ServiceSettings(token=None))) as first, \
            TestClient(create_app(RecordingBackend(), ServiceSettings(token=None))) as second:
        first.post("/v1/runs", json=program(0))
        first.post("/v1/runs", json=program(0))
        second.post("/v1/runs", json=program(0))
        assert value(first.get("/metrics").text, "sandbox_requests_total", endpoint="/v1/runs", code="200") == 2
        assert value(second.get("/metrics").text, "sandbox_requests_total", endpoint="/v1/runs", code="200") == 1
