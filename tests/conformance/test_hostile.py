"""Every hostile program in cases.py against every backend: its exact verdicts, then a healthy service, nothing
left running, nothing written outside the sandbox, and a clean next run."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from tests.conformance.cases import CASES, LIMITS

CLEAN = {"code": "def answer():\n    return 42\n", "tests": [{"kind": "assert", "code": "assert answer() == 42"}],
         "limits": LIMITS}


def test_the_suite_is_big_enough():
    assert len(CASES) >= 30 and len({case.name for case in CASES}) == len(CASES)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_hostile_program_is_contained(service, case, tmp_path):
    from tests.conformance.conftest import runner_processes

    before = runner_processes()
    token = uuid.uuid4().hex[:12]
    canary = {"tmp": Path("/tmp"), "home": Path.home()}.get(case.canary or "tmp") / f"sandbox-canary-{token}"
    secret = Path.home() / f"sandbox-secret-{token}"
    if case.secret:
        secret.write_text("top secret")
        secret.chmod(0o600)
    try:
        result = service.post(case.request_body(str(canary), str(secret)))
    finally:
        secret.unlink(missing_ok=True)
        escaped = canary.exists()
        canary.unlink(missing_ok=True)

    assert result["status"] == case.status(service.name), result
    if result["status"] == "infra_error":
        assert result["retryable"] is True and not result["passed"]
    got = tuple(t["verdict"] for t in result["tests"])
    first = (result["tests"] or [{}])[0]
    assert got == case.expected(service.name), (got, first.get("error_type"), first.get("message"))
    assert not result["passed"] or set(got) == {"pass"}
    assert all(t["program_error"] == case.program_error for t in result["tests"])
    if case.stdout_has:
        assert case.stdout_has in first["stdout"]
    assert not escaped, f"{canary} was written on the host"

    ok, why = service.healthy()
    assert ok, why
    assert service.leftovers(before) == []
    again = service.post(CLEAN)
    assert again["passed"], again
