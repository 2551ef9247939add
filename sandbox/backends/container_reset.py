"""Between two jobs in one runner container: return it to the state it started in, and prove it. Stdlib only.

The guard (container_guard.py) calls ``reset()`` after every answer of a container that will serve again. A job
can leave state behind only in the kernel objects that outlive its processes; the container (read-only root,
private IPC namespace, no network, default seccomp, which refuses the keyring calls) has exactly these:

- processes: every one but init, the guard, the runner's judge and its zygote (``keep``: harness processes that
  never run candidate code, and were forked before any job) is killed with SIGKILL, stopped and daemonised ones
  included, until /proc lists nobody else alive (a zombie has no memory and no descriptors left; its parent
  reaps it when it next looks);
- files: the writable mounts a program's uid can write into are the work tmpfs, /dev/shm (POSIX shared memory
  and named semaphores) and /dev/mqueue (POSIX message queues); each is emptied. ``/dev`` and the cgroup tmpfs
  are writable by uid 0 only, and every other mount is read-only;
- System V IPC: shared memory segments, semaphore sets and message queues, listed in /proc/sysvipc, removed.

File descriptors, threads, signal dispositions, rlimits, environment and working directory belong to processes,
and every process of a job is gone: the next job's supervisor and loader are forked from the runner's zygote,
which was forked before the first job and never holds a job, an expected value or an answer. ``reset()`` checks that the guard's own state is still what it was (open descriptors, one thread, uids,
capabilities, cwd, environment) along with the rest, and the container is retired if any check fails.

The guard holds no CAP_DAC_OVERRIDE or CAP_FOWNER, so it removes a program's files as their owner would: it
switches only its filesystem uid (setfsuid) to the owner of the directory it empties, and its effective uid to
the owner of an IPC object it removes, and back to 0 after each. No program of the job is alive by then.
"""

import ctypes
import os
import signal
import stat
import time

RESET_PATHS = ("/work", "/dev/shm", "/dev/mqueue")
KILL_WAIT_S = 5.0  # processes in uninterruptible sleep die late; past this the container is retired instead
MAX_ENTRIES = 20_000  # a tree larger than this is cheaper to throw away with its container than to walk
IPC_RMID = 0
_SYSVIPC = (("/proc/sysvipc/shm", "shmid"), ("/proc/sysvipc/sem", "semid"), ("/proc/sysvipc/msg", "msqid"))


class NotClean(Exception):
    """The container could not be proven clean; the guard exits and the pool replaces the container."""


def snapshot() -> dict:
    """The guard's own state that no job may change (taken once, before the first job)."""
    status = _status_fields()
    caps = tuple(status.get(key, "").strip() for key in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"))
    return {"fds": _open_fds(), "threads": status.get("Threads", "?").strip(), "resuid": os.getresuid(),
            "resgid": os.getresgid(), "caps": caps, "cwd": os.getcwd(), "environ": dict(os.environ)}


def reset(libc: ctypes.CDLL, baseline: dict, keep: tuple = ()) -> None:
    """Kill (all but ``keep``, the guard's own helpers), wipe and remove everything a job left, then verify;
    raises NotClean naming what failed."""
    kill_all_others(keep)
    for path in RESET_PATHS:
        if os.path.isdir(path):
            empty_directory(libc, path)
    remove_sysv_ipc(libc)
    verify(baseline, keep)


def kill_all_but(keep: tuple) -> None:
    """SIGKILL every process but init, us and ``keep``. Everyone is stopped first with one kill(-1), which the
    kernel delivers to all at once (a fork under way when it comes is restarted, and stops too): nobody can fork
    while the rest are killed one by one; then ``keep`` goes on."""
    spared = {1, os.getpid(), *keep}
    try:
        os.kill(-1, signal.SIGSTOP)
    except ProcessLookupError:
        pass
    for pid in _pids():
        if pid not in spared:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    for pid in keep:
        os.kill(pid, signal.SIGCONT)


def kill_all_others(keep: tuple = (), wait_s: float = KILL_WAIT_S) -> None:
    """SIGKILL every process but init, us and ``keep``, reap our children, until /proc shows nobody else."""
    spared = {1, os.getpid(), *keep}
    deadline = time.monotonic() + wait_s
    while True:
        kill_all_but(keep)
        _reap_children()
        others = [pid for pid in _live_pids() if pid not in spared]
        if not others:
            return
        if time.monotonic() > deadline:
            raise NotClean(f"processes {others[:8]} outlived SIGKILL for {wait_s:g} s")
        time.sleep(0.001)  # dying processes release their memory first; then they vanish from /proc


def empty_directory(libc: ctypes.CDLL, top: str) -> None:
    """Remove everything under ``top`` (never ``top`` itself), whoever owns it, without following links.

    Removing an entry needs write and search permission on its directory, which the directory's owner can
    always grant itself with chmod; the sticky bit lets a directory's owner remove any entry too. So every
    directory is opened up as its owner top-down, then emptied bottom-up, with an explicit stack (no recursion
    limit). A path too long to name (deeper than PATH_MAX) fails with an OSError: the guard then retires the
    container instead."""
    seen = 0
    # (directory, its owner, its parent's owner, whether its entries were pushed already). Owners travel with
    # the paths: as uid 0 we may not even look up a path inside another user's private directory.
    stack = [(top, os.lstat(top).st_uid, -1, False)]
    while stack:
        path, owner, parent_owner, expanded = stack.pop()
        if expanded:
            if path != top:
                _as_fsuid(libc, parent_owner, os.rmdir, path)
            continue
        if path != top:  # the mount points keep their modes; we own them already
            # Its owner may read and change it; anyone may pass through, since a directory further down may
            # belong to another user, whose permission checks walk the whole path.
            _as_fsuid(libc, owner, os.chmod, path, 0o711)
        stack.append((path, owner, parent_owner, True))
        names = _as_fsuid(libc, owner, os.listdir, path)
        seen += len(names)
        if seen > MAX_ENTRIES:
            raise NotClean(f"more than {MAX_ENTRIES} entries under {top}")
        for name in names:
            child = os.path.join(path, name)
            info = _as_fsuid(libc, owner, os.lstat, child)
            if stat.S_ISDIR(info.st_mode):
                stack.append((child, info.st_uid, owner, False))
            else:
                _as_fsuid(libc, owner, os.unlink, child)


def remove_sysv_ipc(libc: ctypes.CDLL) -> None:
    """IPC_RMID every System V object in our IPC namespace, as its owner (the kernel asks for the owner's or
    creator's effective uid; a set-uid round trip from uid 0 keeps our permitted capabilities)."""
    removers = {"shmid": lambda ident: libc.shmctl(ident, IPC_RMID, None),
                "semid": lambda ident: libc.semctl(ident, 0, IPC_RMID),
                "msqid": lambda ident: libc.msgctl(ident, IPC_RMID, None)}
    for path, id_column in _SYSVIPC:
        for ident, uid in _ipc_objects(path, id_column):
            os.seteuid(uid)
            try:
                if removers[id_column](ident) != 0:
                    raise NotClean(f"cannot remove System V object {id_column}={ident}: errno {ctypes.get_errno()}")
            finally:
                os.seteuid(0)


def verify(baseline: dict, keep: tuple = ()) -> None:
    """Check independently of the steps above that nothing of the job is left and the guard is unchanged."""
    pids = _live_pids()
    others = [pid for pid in pids if pid not in (1, os.getpid(), *keep)]
    if others:
        raise NotClean(f"processes still present: {others[:8]}")
    if any(pid not in pids for pid in keep):
        raise NotClean("a process the reset spares (the runner's judge or zygote) is gone")
    for path in RESET_PATHS:
        if os.path.isdir(path) and os.listdir(path):
            raise NotClean(f"{path} is not empty")
    for path, id_column in _SYSVIPC:
        if _ipc_objects(path, id_column):
            raise NotClean(f"System V objects remain in {path}")
    now = snapshot()
    changed = sorted(key for key in baseline if now[key] != baseline[key])
    if changed:
        raise NotClean(f"the guard's own state changed: {', '.join(changed)}")


def _as_fsuid(libc: ctypes.CDLL, uid: int, call, *args):
    """``call(*args)`` with our filesystem uid set to ``uid`` (permission checks as that user), then 0 again."""
    libc.setfsuid(uid)
    try:
        if libc.setfsuid(-1) != uid:  # an invalid id changes nothing and returns the current one
            raise NotClean(f"cannot switch the filesystem uid to {uid}")
        return call(*args)
    finally:
        libc.setfsuid(0)


def _reap_children() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _pids() -> list:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def _live_pids() -> list:
    """Processes that are not zombies (a zombie is gone but for its exit status, until its parent reaps it)."""
    live = []
    for pid in _pids():
        try:
            with open(f"/proc/{pid}/stat", "rb") as handle:
                state = handle.read().rsplit(b")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state != b"Z":
            live.append(pid)
    return live


def _open_fds() -> list:
    found = []
    for name in os.listdir("/proc/self/fd"):
        try:
            os.fstat(int(name))  # listdir's own descriptor was listed too, and is closed by now
            found.append(int(name))
        except OSError:
            pass
    return sorted(found)


def _status_fields() -> dict:
    with open("/proc/self/status") as handle:
        return dict(line.rstrip("\n").split(":\t", 1) for line in handle if ":\t" in line)


def _ipc_objects(path: str, id_column: str) -> list:
    """(id, owner uid) of every object listed in a /proc/sysvipc table."""
    try:
        with open(path) as handle:
            header, *rows = handle.read().splitlines()
    except (FileNotFoundError, ValueError):
        return []
    columns = header.split()
    at_id, at_uid = columns.index(id_column), columns.index("uid")
    return [(int(row.split()[at_id]), int(row.split()[at_uid])) for row in rows if row.strip()]
