import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def docker_unusable():
    """Why the docker backend cannot run in this session (sandbox.launch.docker_problem), or None. Asked once, when
    the first test needs it, never at import: collecting the suite must not contact an engine."""
    from sandbox.launch import docker_problem

    return docker_problem()


@pytest.fixture(scope="session")
def needs_docker(docker_unusable):
    """Skips the test, at setup, when the docker backend cannot run here (session scope, so that module-scoped
    fixtures can ask for it too; pytest keeps the skip and repeats it for every test that uses it)."""
    if docker_unusable:
        pytest.skip(docker_unusable)
