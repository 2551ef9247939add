"""`sandbox serve`'s docker settings: defaults that scale with the host, and clear refusals of bad values."""

from __future__ import annotations

import argparse

import pytest

from sandbox.commands import serve


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    serve.register(parser.add_subparsers())
    return parser.parse_args(["serve", *argv])


@pytest.mark.parametrize("cpus, expected", [(1, 2), (2, 4), (16, 32)])
def test_the_default_pool_has_two_containers_per_cpu(monkeypatch, cpus, expected):
    monkeypatch.setattr(serve.os, "cpu_count", lambda: cpus)
    backend = serve.build_backend(parse())
    assert backend.pool.size == expected
    assert backend.pool.jobs_per_container == 1000  # reused, with a reset between jobs


def test_explicit_settings_are_kept():
    backend = serve.build_backend(parse("--pool-size", "3", "--jobs-per-container", "1"))
    assert (backend.pool.size, backend.pool.jobs_per_container) == (3, 1)


@pytest.mark.parametrize("argv, named", [(("--pool-size", "-1"), "--pool-size"),
                                         (("--jobs-per-container", "0"), "--jobs-per-container")])
def test_bad_values_are_refused_by_name(argv, named):
    problem = serve.bad_arguments(parse(*argv))
    assert problem and named in problem
