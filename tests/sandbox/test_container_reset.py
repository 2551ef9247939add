"""The reset between two jobs of a runner container (sandbox/backends/container_reset.py), the parts that can run
on the host: emptying a tree owned by several users, and the checks. Killing every process and removing System V
objects act on the whole PID and IPC namespace, so they are tested only inside a container
(tests/conformance/test_reuse.py)."""

from __future__ import annotations

import ctypes
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from sandbox.backends import container_reset
from sandbox.backends.container_reset import NotClean, empty_directory, snapshot, verify

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root: the tree belongs to several users")
LIBC = ctypes.CDLL(None, use_errno=True)
ALICE, BOB = 1_234_567, 1_234_568  # unprivileged uids nobody else uses


@pytest.fixture
def searchable_dir():
    """A directory every user may pass through, as the container's /work is (pytest's own is private to root)."""
    path = Path(tempfile.mkdtemp(prefix="reset-test-", dir="/tmp"))
    path.chmod(0o711)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def owned(path, uid: int, mode: int) -> None:
    os.chown(path, uid, uid, follow_symlinks=False)
    if not os.path.islink(path):
        os.chmod(path, mode)


def test_empties_a_tree_of_several_users_without_following_links(searchable_dir):
    tmp_path = searchable_dir
    top = tmp_path / "work"
    top.mkdir()
    top.chmod(0o1733)
    outside = tmp_path / "outside.txt"
    outside.write_text("keep me")
    mine = top / "run-alice"
    (mine / "open").mkdir(parents=True)
    (mine / "open" / "bobs").mkdir()
    (mine / "open" / "bobs" / "note").write_text("b")
    (mine / "link").symlink_to(outside)
    (mine / "dirlink").symlink_to(tmp_path)
    deep = mine / "deep"
    path = deep
    for _ in range(300):  # deeper than Python's default recursion would like, were the walk recursive
        path = path / "d"
    path.mkdir(parents=True)
    os.mkfifo(mine / "fifo")
    for p in [mine, mine / "open", mine / "link", mine / "dirlink", mine / "fifo", deep]:
        owned(p, ALICE, 0o700)
    owned(mine / "open", ALICE, 0o1777)  # sticky and world-writable: Bob put a private directory in it
    owned(mine / "open" / "bobs", BOB, 0o000)
    owned(mine / "open" / "bobs" / "note", BOB, 0o000)
    owned(mine, ALICE, 0o000)  # not even its owner may enter until it opens it up

    empty_directory(LIBC, str(top))

    assert list(top.iterdir()) == []
    assert outside.read_text() == "keep me" and tmp_path.exists()
    assert os.stat(top).st_mode & 0o7777 == 0o1733  # the mount point itself keeps its mode


def test_a_tree_too_large_to_walk_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(container_reset, "MAX_ENTRIES", 50)
    for i in range(60):
        (tmp_path / str(i)).touch()
    with pytest.raises(NotClean, match="more than 50 entries"):
        empty_directory(LIBC, str(tmp_path))


def test_ipc_tables_are_read_by_column_name(tmp_path):
    table = tmp_path / "sem"
    table.write_text("       key      semid perms      nsems   uid   gid  cuid  cgid      otime      ctime\n"
                     "      7927          3   666          1 1000123 1000123 1000123 1000123 0 1700000000\n")
    assert container_reset._ipc_objects(str(table), "semid") == [(3, 1000123)]
    assert container_reset._ipc_objects(str(tmp_path / "absent"), "semid") == []


def test_verify_names_what_is_not_as_it_was(tmp_path, monkeypatch):
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.setattr(container_reset, "RESET_PATHS", (str(work),))
    monkeypatch.setattr(container_reset, "_live_pids", lambda: [1, os.getpid()])
    monkeypatch.setattr(container_reset, "_SYSVIPC", ())
    baseline = snapshot()
    verify(baseline)  # nothing changed: no complaint

    (work / "left").touch()
    with pytest.raises(NotClean, match="is not empty"):
        verify(baseline)
    (work / "left").unlink()

    fd = os.open(os.devnull, os.O_RDONLY)
    try:
        with pytest.raises(NotClean, match="fds"):
            verify(baseline)
    finally:
        os.close(fd)
    monkeypatch.setenv("LEFT_BY_A_JOB", "1")
    with pytest.raises(NotClean, match="environ"):
        verify(baseline)
    monkeypatch.delenv("LEFT_BY_A_JOB")

    monkeypatch.setattr(container_reset, "_live_pids", lambda: [1, os.getpid(), 4242])
    with pytest.raises(NotClean, match="processes still present"):
        verify(baseline)
