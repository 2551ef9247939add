#!/usr/bin/env python3
"""The sandbox runner: the one place where candidate code and its tests execute.

Stdlib only; it is copied alone to /opt/sandbox/runner.py in the runner image and run as a subprocess by the
process backend. It reads ONE JSON object on stdin, ``{"runs": [RunRequest as JSON, ...], "workers": N}``, and
writes ONE JSON object on stdout, ``{"results": [RunResult as JSON, ...]}`` in request order.

Processes, top to bottom (see docs/runner.md for the why):

    judge (main)   holds the requests and every expected value; compares results; never runs candidate code.
    zygote         forked before stdin is read, so it and everything below it never saw an expected value.
    supervisor     one per worker slot, reused for program after program (it never runs candidate code): work
                   directory, deadlines, output caps, per-test pipes, killing every leftover between programs.
    loader         one per program: execs the candidate once (its top-level code), then forks per test.
    test child     one per test: setsid, rlimits, runs one test, reports over a private pipe, _exit.

A child's report is a length-prefixed marshal blob carrying a per-test random token; anything else on that pipe,
or nothing, is an ``error``. The candidate's stdout and stderr go to their own pipes, never to ours.
"""

from __future__ import annotations

import argparse
import builtins
import ctypes
import errno
import io
import json
import linecache
import marshal
import math
import os
import re
import resource
import select
import selectors
import shutil
import signal
import socket
import sys
import tempfile
import time
import traceback
import types
import warnings
from typing import Any, Callable, Sequence, cast

# The runner's own functions look builtins up in this copy, taken before any candidate ran (a function keeps the
# builtins of the globals it was defined in): a program that patches builtins.len at its top level cannot break
# the harness code that serves its tests from its own process. The namespaces candidate code runs in are given
# the real builtins module explicitly (exec would otherwise hand them this copy).
globals()["__builtins__"] = dict(vars(builtins))

# The wire contract with the backends that start this program. It owns these values: the rest of ``sandbox``
# imports them from here, and ``sandbox/models.py`` (which callers import, and which cannot import this
# Linux-only file) restates them; tests/sandbox/test_contract.py checks that both agree.
DEFAULT_LIMITS = {"time_s": 5.0, "memory_mb": 512, "output_bytes": 64 * 1024}  # for a run that gives none
TEST_FILE_ID = "test_file"  # the id of a whole test_file's one result when it has no tests of its own


def default_test_id(index: int) -> str:
    """The id of ``tests[index]`` when the request gives it none."""
    return f"test_{index}"


PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_CHILD_SUBREAPER = 36
PR_SET_NO_NEW_PRIVS = 38
CANDIDATE = "<candidate>"
TEST_CODE = "<test>"
SOLUTION_FILE = "solution.py"
TEST_FILE = "test_solution.py"
MAX_REPORT_BYTES = 64 * 1024 * 1024  # a call test's return value travels in the report
MAX_TRACEBACK_CHARS = 16_000
MAX_MESSAGE_CHARS = 2_000
FILE_SIZE_LIMIT = 64 * 1024 * 1024  # bytes a test may write to one file in its work directory
OPEN_FILES_LIMIT = 256
STACK_LIMIT = 8 * 1024 * 1024  # the usual default; hosts with `ulimit -s unlimited` get it too
STEADY_CHECKER_TESTS = 1000  # pure tests one steady checker runs before a fresh one takes over
# Steady checkers (see _pure_test) serve with --switch-uids, where no candidate shares a checker's uid; "0" gives every
# assert test a checker of its own there too.
STEADY_CHECKERS = os.environ.get("SANDBOX_STEADY_CHECKERS", "1") != "0"
PROCESS_LIMIT = 256  # tasks (processes and threads) per confined runner's user; like the containers' pids limit
CONFINED_TMPFS_MB = 256  # the private /tmp that holds the work directories of a confined runner
DRAIN_SECONDS = 1.0  # after a test ends: how long to wait for its pipes to close
# At the end of a batch: time for supervisors to clean up before they are killed. The variable exists for tests,
# which make it longer than their own timeout to prove that a path never waits it out.
SUPERVISOR_EXIT_GRACE_S = float(os.environ.get("SANDBOX_RUNNER_EXIT_GRACE_S", "2.0"))

# Imported once before the zygote forks, so a program that imports them pays nothing (fork shares the pages).
WARM_MODULES = (
    "typing", "collections", "collections.abc", "math", "cmath", "re", "itertools", "functools", "heapq", "bisect",
    "string", "random", "copy", "operator", "dataclasses", "fractions", "decimal", "statistics", "hashlib",
    "datetime", "array", "enum", "unittest",
)

_libc = ctypes.CDLL(None, use_errno=True)
# The same library for calls whose errno nobody reads (prctl): ctypes' errno bookkeeping costs a freshly forked
# process ~60 pages copied on write at its first call, and every loader and checker makes one.
_libc_quick = ctypes.CDLL(None)


CLONE_PARENT = 0x00008000
_SYS_CLONE = {"x86_64": 56, "aarch64": 220}.get(os.uname().machine)  # clone's syscall number, where we know it


def _fork_sibling() -> int:
    """Like fork(), but the child's parent is our parent: clone(2) with CLONE_PARENT, a copy of our memory as
    fork makes it. OSError if the kernel refuses. Python's fork hooks do not run in the child; the only caller,
    a loader template, is single-threaded and holds no lock, and the one hook that changes what a program sees,
    random's reseed, runs here by hand (or every loader of a template would draw the same numbers)."""
    if _SYS_CLONE is None:
        raise OSError(errno.ENOSYS, f"no clone syscall number known for {os.uname().machine}")
    long = ctypes.c_long
    pid = _libc.syscall(long(_SYS_CLONE), long(CLONE_PARENT | signal.SIGCHLD), long(0), long(0), long(0), long(0))
    if pid < 0:
        raise OSError(ctypes.get_errno(), "clone(CLONE_PARENT) was refused")
    if pid == 0 and "random" in sys.modules:
        sys.modules["random"].seed()
    return pid


def _pidfd_works() -> bool:
    try:
        os.close(os.pidfd_open(os.getpid()))
        return True
    except (AttributeError, OSError):  # Python or kernel too old: every test gets its own forked child
        return False


_HAVE_PIDFD = _pidfd_works()


# ----------------------------------------------------------------------------------------------------------------
# Small helpers shared by every process.


def _prctl(option: int, value: int) -> bool:
    return _libc_quick.prctl(option, value, 0, 0, 0) == 0


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _read_exact(fd: int, size: int) -> bytes | None:
    chunks, left = [], size
    while left:
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _send_frame(fd: int, obj) -> None:
    data = marshal.dumps(obj)
    _write_all(fd, len(data).to_bytes(4, "big") + data)


def _recv_frame(fd: int):
    head = _read_exact(fd, 4)
    if head is None:
        return None
    body = _read_exact(fd, int.from_bytes(head, "big"))
    return None if body is None else marshal.loads(body)


def _keep_only_fds(keep: set[int]) -> None:
    """Close every descriptor >= 3 not in ``keep`` (so pipes never leak into another program's processes)."""
    low = 3
    for fd in sorted(f for f in keep if f >= 3) + [1 << 20]:
        if fd > low:
            os.closerange(low, fd)
        low = fd + 1


def _read_proc(path: str) -> bytes:
    """A /proc file's bytes, read raw: a text-mode open() touches the io and codec machinery, pages that every
    freshly forked loader and checker would copy on write."""
    fd = os.open(path, os.O_RDONLY)
    try:
        chunks: list[bytes] = []
        while True:
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)
    finally:
        os.close(fd)


def _children() -> list[int]:
    """Live and zombie children of this (single-threaded) process."""
    try:
        return [int(pid) for pid in _read_proc(f"/proc/self/task/{os.getpid()}/children").split()]
    except OSError:  # kernel without CONFIG_PROC_CHILDREN: scan every process
        me = os.getpid()
        return [int(name) for name in os.listdir("/proc") if name.isdigit() and _parent_of(int(name)) == me]


def _parent_of(pid: int) -> int | None:
    """The parent pid of ``pid`` from /proc, or None if it is gone or unreadable."""
    try:
        # The command name may hold spaces and parentheses: the fields start after its last ")".
        return int(_read_proc(f"/proc/{pid}/stat").rsplit(b")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def _sigkill(pid: int) -> None:
    """SIGKILL ``pid``'s process group (when it leads one, its descendants die with it), then ``pid`` itself;
    one already gone, or not ours to kill, is no error."""
    for kill in (os.killpg, os.kill):
        try:
            kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


# Children a supervisor keeps for its whole life (its loader template): no kill loop of its takes them.
_KEPT_CHILDREN: tuple[int, ...] = ()


def _needs_checker(tests) -> bool:
    """Whether any of ``tests`` is an assert test, which a checker runs: a prepared job's tests, or a request's
    own (unchecked: anything but a list is none, and a test's kind defaults to assert)."""
    return isinstance(tests, list) and any(isinstance(test, dict) and test.get("kind", "assert") == "assert"
                                           for test in tests)


def _kill_children(spare: tuple[int, ...] = ()) -> None:
    """SIGKILL and reap every child except ``spare`` (and _KEPT_CHILDREN), again and again: orphans of the killed
    re-parent to us (we are a child subreaper), so the loop ends only when no escaped descendant is left.
    Stopped processes die too, SIGKILL needs no cooperation."""
    spare = spare + _KEPT_CHILDREN
    for _ in range(10_000):
        victims = [pid for pid in _children() if pid not in spare]
        if not victims:
            return
        for pid in victims:
            _sigkill(pid)
        for pid in victims:
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass


def _address_space() -> int:
    """This process's virtual size in bytes."""
    return int(_read_proc("/proc/self/statm").split()[0]) * resource.getpagesize()


def _set_rlimit(which: int, soft: int, hard: int | None = None) -> None:
    try:
        resource.setrlimit(which, (soft, soft if hard is None else hard))
    except (ValueError, OSError):  # above the inherited hard limit: keep the stricter inherited one
        pass


# --switch-uids (the runner container): the harness runs as root holding only CAP_SETUID, CAP_SETGID and CAP_KILL,
# and every loader (with its test children) and every checker first drops to a fresh unprivileged uid of its own.
_SWITCH_UIDS = False
UID_BASE, UID_SPAN = 1_000_000, 1_000_000_000  # random: nobody else's, so RLIMIT_NPROC counts one job only


def _fresh_uid() -> int:
    return UID_BASE + int.from_bytes(os.urandom(4), "big") % UID_SPAN


def _become(uid: int) -> None:
    """Drop every uid and gid to ``uid``. From root this also empties the capability sets (the kernel clears
    them when no uid is 0 any more); checked, since candidate code must never run with one."""
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)
    status = _read_proc("/proc/self/status").splitlines()
    effective = [line.split()[1] for line in status if line.startswith(b"CapEff:")]
    if os.getresuid() != (uid, uid, uid) or effective != [b"0000000000000000"]:
        raise OSError(f"could not drop to uid {uid} without capabilities")


def _switch_uid(role: str) -> None:
    """A checker's own uid (with --switch-uids; ``role`` is for the error message)."""
    if _SWITCH_UIDS:
        try:
            _become(_fresh_uid())
        except OSError as exc:
            raise OSError(f"{role}: {exc}") from exc


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit // 2] + "\n...[cut]...\n" + text[-limit // 2 :]


# ----------------------------------------------------------------------------------------------------------------
# Describing an exception with the harness hidden (runs in the loader and the test child).


def _register_source(filename: str, source: str) -> None:
    # mtime None keeps the entry through linecache.checkcache, so tracebacks show candidate lines.
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)


def _category(exc: BaseException) -> str:
    if isinstance(exc, AssertionError):
        return "fail"
    if isinstance(exc, MemoryError):
        return "memory"
    if isinstance(exc, SystemExit):
        return "exit"
    if type(exc).__name__ in ("SkipTest", "Skipped"):  # unittest.SkipTest, pytest.skip
        return "skip"
    return "error"


def _describe(exc: BaseException, candidate_files: tuple[str, ...], shown_files: tuple[str, ...]) -> tuple:
    """(category, error_type, message, traceback, line): only frames from candidate or test code are kept;
    ``line`` is the deepest frame in the candidate's code, or a syntax error's line there."""
    category = _category(exc)
    error_type = type(exc).__name__
    try:
        message = str(exc)
    except BaseException:  # a hostile __str__
        message = ""
    try:
        frames = traceback.extract_tb(exc.__traceback__)
        kept = [frame for frame in frames if frame.filename in shown_files]
        remote = getattr(exc, "__sandbox_remote__", None)  # raised in the candidate's process (the checker)
        if remote is not None:
            message = remote[0]
            kept += [traceback.FrameSummary(name, lineno, function, line=text, lookup_line=False)
                     for name, lineno, function, text in remote[1]]
        line = None
        for frame in kept:
            if frame.filename in candidate_files:
                line = frame.lineno
        if isinstance(exc, SyntaxError) and exc.filename in candidate_files:
            line = exc.lineno
        if not message and isinstance(exc, AssertionError) and kept and kept[-1].line:
            message = "assertion failed: " + kept[-1].line.strip()
        text = "".join(traceback.format_exception_only(type(exc), exc))
        if kept:
            text = "Traceback (most recent call last):\n" + "".join(traceback.format_list(kept)) + text
    except BaseException:
        line, text = None, f"{error_type}: {message}\n"
    return category, error_type, _clip(message, MAX_MESSAGE_CHARS), _clip(text, MAX_TRACEBACK_CHARS), line


# ----------------------------------------------------------------------------------------------------------------
# The loader and the test child. Everything the harness needs after candidate code has run is captured in
# locals first, so monkeypatching os, sys, marshal or builtins cannot reach the reporting path.


def _loader_main(workdir: str, ctl: socket.socket, out_w: int, err_w: int, job_r: int, uid: int | None = None) -> None:
    """Forked by a supervisor ahead of its program: everything that does not depend on the program (session,
    descriptors, the harness snapshot, touching the pages fork shares) happens before the job arrives on
    ``job_r``, so a program starts on a loader that is already warm. With ``uid`` (--switch-uids) it first
    becomes that user and makes its work directory itself, private to it."""
    if uid is not None:
        _become(uid)
        os.mkdir(workdir, 0o700)
        os.environ["TMPDIR"] = os.environ["HOME"] = workdir
        tempfile.tempdir = workdir
    _fork, _exit, _write, _close, _dup2, _wait4 = os.fork, os._exit, os.write, os.close, os.dup2, os.wait4
    _setsid, _dumps, _exec, _compile, _open = os.setsid, marshal.dumps, exec, compile, io.open
    _recvmsg, _sendall = ctl.recvmsg, ctl.sendall
    _getattr, _isinstance, _len = getattr, isinstance, len
    _BaseException, _SystemExit, _from_bytes, _describe_ = BaseException, SystemExit, int.from_bytes, _describe
    _urandom_int = int.from_bytes(os.urandom(2), "big")
    _listdir, _self_tid = os.listdir, str(os.getpid())
    _io = (marshal.dumps, marshal.loads, os.read, os.write, _describe)  # serving the checker (_serve)
    _writers = _PIPE_WRITERS  # the test's sys.stdout and sys.stderr

    os.setsid()
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(out_w, 1)
    os.dup2(err_w, 2)
    _keep_only_fds({ctl.fileno(), null, job_r})
    os.chdir(workdir)
    sys.path[0:1] = [workdir]  # the runner's own directory must not be importable
    sys.argv = [SOLUTION_FILE]
    pristine = _PRISTINE or _Snapshot()  # the harness before any candidate code; a test file naming pytest retakes it
    job = _recv_frame(job_r)
    if job is None:  # the supervisor is closing down
        _exit(0)
    # Cloned as its supervisor's child, or adopted by it after a middle process exited (see _LoaderTemplate): it
    # dies with the supervisor from here on (before, the supervisor's end closed the job pipe).
    _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    _close(job_r)
    if job["mode"] == "test_file":  # written by the loader: the work directory may be private to its uid
        for name, text in ((SOLUTION_FILE, job["code"]), (TEST_FILE, job["test_file"])):
            with open(os.path.join(workdir, name), "w", encoding="utf-8") as handle:
                handle.write(text)
    limits = job["limits"]
    tests = job["tests"]
    # Python's own baseline is not the candidate's: the cap is what the program may add on top of it.
    baseline = _address_space()
    memory_cap = baseline + limits["memory_mb"] * 1024 * 1024
    _set_rlimit(resource.RLIMIT_AS, memory_cap)
    _set_rlimit(resource.RLIMIT_CORE, 0)
    _set_rlimit(resource.RLIMIT_FSIZE, FILE_SIZE_LIMIT)
    stack_soft, stack_hard = resource.getrlimit(resource.RLIMIT_STACK)
    if stack_soft == resource.RLIM_INFINITY or stack_soft > STACK_LIMIT:
        # An unlimited stack turns a C-level stack overflow into a slow crawl to the memory cap.
        _set_rlimit(resource.RLIMIT_STACK, STACK_LIMIT, stack_hard)
    _set_rlimit(resource.RLIMIT_CPU, math.ceil(limits["time_s"]) + 5 + len(tests or ()) // 50)

    def send(obj) -> None:
        _sendall(_dumps(obj))

    def flush_std() -> None:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except _BaseException:
                pass

    # --- load the program once -----------------------------------------------------------------------------
    mode = job["mode"]
    code = job["code"]
    module = types.ModuleType("solution")
    names: list[str] = []
    runnables: list = []
    candidate_files = (CANDIDATE, SOLUTION_FILE)
    shown = (CANDIDATE, SOLUTION_FILE, TEST_CODE, TEST_FILE)
    try:
        if mode == "test_file":
            module.__file__ = os.path.join(workdir, SOLUTION_FILE)
            _register_source(SOLUTION_FILE, code)
            _register_source(TEST_FILE, job["test_file"])
            sys.modules["solution"] = module
            module.__dict__["__builtins__"] = vars(builtins)
            if "pytest" in job["test_file"]:
                try:  # imported before the candidate, so its pristine state is part of the snapshot
                    import pytest  # noqa: F401

                    pristine = _Snapshot()
                except ImportError:
                    pass
            _exec(_compile(code, SOLUTION_FILE, "exec"), module.__dict__)
            pristine.restore()
            test_module = types.ModuleType("test_solution")
            test_module.__file__ = os.path.join(workdir, TEST_FILE)
            test_module.__dict__["__builtins__"] = vars(builtins)
            sys.modules["test_solution"] = test_module
            _exec(_compile(job["test_file"], TEST_FILE, "exec"), test_module.__dict__)
            names, runnables = _discover(test_module)
        else:
            _register_source(CANDIDATE, code)
            program = _compile(code, CANDIDATE, "exec")
            if mode == "module":
                module.__file__ = CANDIDATE
                module.__dict__["__builtins__"] = vars(builtins)
                sys.modules["solution"] = module
                _exec(program, module.__dict__)
                # A job of assert tests only skips the restore (each object restored is a page copied on write,
                # ~0.5 ms a program): its tests run in the checker, with the checker's builtins; nothing here
                # reports a verdict; and the harness code that serves the checker from this process uses the
                # runner's own copy of builtins. The candidate's code keeps its own patches, as in plain Python.
                if not all(test["kind"] == "assert" for test in tests):
                    pristine.restore(("builtins",))
    except _BaseException as exc:  # noqa: BLE001 - anything the top level raises is the program's failure
        flush_std()
        info = _describe_(exc, candidate_files, shown)
        send(("load_error",) + info)
        _exit(0)
    flush_std()
    # Stray writes from threads the program started must not reach the supervisor's load pipes; closing them
    # before reporting also lets the supervisor see their end at once.
    _dup2(null, 1)
    _dup2(null, 2)
    send(("loaded", names))

    # --- one forked child per test -------------------------------------------------------------------------
    while True:
        try:
            data, ancillary, _flags, _addr = _recvmsg(4096, socket.CMSG_SPACE(4 * 4))
        except _BaseException:
            _exit(0)
        if not data:
            _exit(0)
        order = marshal.loads(data)
        fds = []
        for level, kind, raw in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds += [_from_bytes(raw[i : i + 4], sys.byteorder) for i in range(0, _len(raw) - _len(raw) % 4, 4)]
        _index, token = order[1], order[2]
        primitives = (_exit, _write, _close, _dup2, _setsid, _dumps, _exec, _compile, _open, _getattr,
                      _isinstance, _len, _BaseException, _SystemExit, _describe_, ctl.fileno(), _io, _writers)
        result_fd = 100 + (_urandom_int + order[1]) % 150
        if order[0] == "last" and _listdir("/proc/self/task") == [_self_tid]:
            # The program's last test needs no pristine copy left behind: it runs here, saving a fork. Only
            # without threads of the program's own, which a forked child would not have inherited.
            send(("in_place",))
            _test_child(job, module, runnables, order[1], token, fds, result_fd, primitives, in_place=True)
        pid = _fork()
        if pid == 0:
            _test_child(job, module, runnables, order[1], token, fds, result_fd, primitives)
        for fd in fds:
            _close(fd)
        send(("pid", pid))
        while True:
            try:
                _pid, status, usage = _wait4(pid, 0)
                break
            except InterruptedError:
                continue
        send(("exit", status, usage.ru_maxrss))


class _Snapshot:
    """The harness's modules as they were before the candidate's top-level code ran: builtins, unittest and
    pytest (module attributes, their classes' attributes, and which module object each name maps to). Restored
    after loading, so patching ``unittest.TestCase.assertEqual`` or ``builtins.abs`` at the top level cannot make
    the tests pass. Code that patches them later, while a test runs, is the same-interpreter limit of
    docs/runner.md. Unittest and pytest run in the candidate's process only for a test file; other programs
    restore builtins alone (the loader inherits this snapshot, so every object restore touches is a page copied
    on write: the whole harness cost about 0.7 ms a program)."""

    HARNESS = ("builtins", "unittest", "pytest", "_pytest")

    def __init__(self) -> None:
        self.modules = {name: module for name, module in sys.modules.items() if self._ours(name)}
        self.spaces: list[tuple[str, Any, dict[str, Any]]] = []  # (top-level module, namespace owner, its copy)
        for name, module in self.modules.items():
            top = name.split(".", 1)[0]
            self.spaces.append((top, module, dict(vars(module))))
            for value in list(vars(module).values()):
                # Built-in types cannot be patched from Python (their attributes are read-only): skip them.
                if isinstance(value, type) and getattr(value, "__module__", None) == name and name != "builtins":
                    self.spaces.append((top, value, dict(vars(value))))

    def _ours(self, name: str, harness: tuple[str, ...] = HARNESS) -> bool:
        return name.split(".", 1)[0] in harness

    def restore(self, harness: tuple[str, ...] = HARNESS) -> None:
        for name in [name for name in sys.modules if self._ours(name, harness) and name not in self.modules]:
            del sys.modules[name]
        sys.modules.update({name: module for name, module in self.modules.items() if self._ours(name, harness)})
        for top, owner, saved in self.spaces:
            if top not in harness:
                continue
            for key in [key for key in list(vars(owner)) if key not in saved]:
                try:
                    delattr(owner, key)
                except (AttributeError, TypeError):
                    pass
            for key, value in saved.items():
                if vars(owner).get(key, _MISSING) is not value:
                    try:
                        setattr(owner, key, value)
                    except (AttributeError, TypeError):
                        pass


_MISSING = object()
_PRISTINE: _Snapshot | None = None  # the zygote's snapshot, inherited by every loader (see _zygote_main)


def _discover(test_module: types.ModuleType) -> tuple[list[str], list]:
    """test_* functions and unittest.TestCase test methods, in definition order."""
    import unittest

    names: list[str] = []
    runnables: list[tuple[str, Any, str | None]] = []
    for name, obj in list(vars(test_module).items()):
        if isinstance(obj, type) and issubclass(obj, unittest.TestCase):
            for method in unittest.TestLoader().getTestCaseNames(obj):
                names.append(f"{name}.{method}")
                runnables.append(("case", obj, method))
        elif name.startswith("test") and isinstance(obj, types.FunctionType):
            names.append(name)
            runnables.append(("function", obj, None))
    return names, runnables


def _test_child(job, module, runnables, index, token, fds, result_fd, primitives, in_place=False) -> None:
    """Run one test and report it; never returns. ``in_place``: in the loader itself (its last test), which
    already leads its own session; the supervisor then takes the exit status from the kernel, not the loader."""
    (_exit, _write, _close, _dup2, _setsid, _dumps, _exec, _compile, _open, _getattr,
     _isinstance, _len, _BaseException, _SystemExit, _describe_, ctl_fd, _io, _writers) = primitives
    try:
        _close(ctl_fd)  # the loader's channel to the supervisor is not the test's to use
        if not in_place:
            _setsid()  # its own session: the supervisor kills the whole group at once
            _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        out_fd, err_fd, res_fd, in_fd = fds
        _dup2(in_fd, 0)
        _dup2(out_fd, 1)
        _dup2(err_fd, 2)
        _dup2(res_fd, result_fd)
        for fd in fds:
            if fd not in (0, 1, 2, result_fd):
                _close(fd)
        limits = job["limits"]
        cpu = math.ceil(limits["time_s"])
        if in_place:  # RLIMIT_CPU counts the whole process: loading already used some
            usage = resource.getrusage(resource.RUSAGE_SELF)
            cpu = math.ceil(usage.ru_utime + usage.ru_stime + limits["time_s"])
        _set_rlimit(resource.RLIMIT_CPU, cpu, cpu + 1)
        _set_rlimit(resource.RLIMIT_NOFILE, OPEN_FILES_LIMIT)
        if os.getuid() != 0:  # counted per user, and root ignores it: only a confined runner's children get it
            _set_rlimit(resource.RLIMIT_NPROC, PROCESS_LIMIT)
        sys.stdin = _open(0, "r", encoding="utf-8", errors="replace", closefd=False)
        sys.stdout, sys.stderr = _writers or [_open(fd, "w", encoding="utf-8", errors="backslashreplace",
                                                    closefd=False) for fd in (1, 2)]
    except _BaseException:
        _exit(70)

    def report(*payload) -> None:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except _BaseException:
                pass
        body = _dumps((token,) + payload)
        data = _len(body).to_bytes(4, "big") + body
        view = memoryview(data)
        while view:
            view = view[_write(result_fd, view) :]
        _exit(0)

    candidate_files = (CANDIDATE, SOLUTION_FILE)
    shown = (CANDIDATE, SOLUTION_FILE, TEST_CODE, TEST_FILE)
    value = None
    try:
        if job["mode"] == "test_file":
            kind, obj, method = runnables[index]
            if kind == "function":
                obj()
            else:
                obj.setUpClass()
                case = obj(method)
                case.setUp()
                try:
                    _getattr(case, method)()
                finally:
                    case.tearDown()
                    case.doCleanups()
        else:
            test = job["tests"][index]
            if test["kind"] == "assert":
                # The test itself runs in the checker; this process only answers its requests (result_fd is
                # the socket to it, not a report channel), and its exit status still tells a crash apart.
                _serve(module, result_fd, _io)
                for stream in (sys.stdout, sys.stderr):
                    try:
                        stream.flush()
                    except _BaseException:
                        pass
                _exit(0)
            elif test["kind"] == "cases":
                _run_cases(test, module, token, result_fd, primitives)
            elif test["kind"] == "call":
                target = module
                for part in test["entry_point"].split("."):
                    target = _getattr(target, part)
                value = target(*test["args"], **test["kwargs"])
            else:
                namespace = {"__name__": "__main__", "__builtins__": builtins, "__file__": SOLUTION_FILE}
                try:
                    _exec(_compile(job["code"], CANDIDATE, "exec"), namespace)
                except _SystemExit as stop:
                    if stop.code not in (None, 0):
                        raise
    except _BaseException as exc:  # noqa: BLE001 - every failure of the test is reported, SystemExit included
        try:
            info = _describe_(exc, candidate_files, shown)
        except _BaseException:
            info = ("memory" if _isinstance(exc, MemoryError) else "error", "Exception", "", "", None)
        try:
            report("exc", *info)
        except _BaseException:
            report("exc", info[0], info[1], "", "", None)
    try:
        encoded = _dumps(value)
    except _BaseException:  # not an exact builtin type: it cannot be compared with JSON
        try:
            shown_value = _clip(repr(value), 300)
        except _BaseException:
            shown_value = "<unprintable>"
        report("opaque", type(value).__name__, shown_value)
    report("ok", encoded)


# ----------------------------------------------------------------------------------------------------------------
# The checker: an ``assert`` test runs in its own process, made by the loader template or the supervisor (neither
# ever ran candidate code), so its builtins and modules are pristine and the candidate cannot reach its reporting
# descriptor. The candidate's module stays in the test child, which serves the checker's requests on a socket;
# what the test takes from it arrives as data (the value encoding below) or as a handle whose use runs over there.

MAX_ENCODE_DEPTH = 200  # deeper values (or ones that contain themselves) cannot cross
MAX_ITER_ITEMS = 100_000  # a generator or iterator crosses as at most this many items
SETUP_CODE = "<setup>"


class CannotCross(Exception):
    """A value the checker cannot send to the candidate (a function or class defined by the test), or one the
    candidate sent that is not a value: the test gets an ``error`` that says so."""


class HandleComparison(Exception):
    """The test compared, hashed or truth-tested an object that lives in the candidate's process: answering would
    ask the candidate's own code to judge itself."""


class CandidateDied(Exception):
    """The candidate's process went away in the middle of a request."""


def _value_types() -> dict:
    import collections
    import datetime
    import decimal
    import fractions

    return {"Counter": collections.Counter, "OrderedDict": collections.OrderedDict,
            "defaultdict": collections.defaultdict, "deque": collections.deque, "Fraction": fractions.Fraction,
            "Decimal": decimal.Decimal, "datetime": datetime.datetime, "date": datetime.date,
            "time": datetime.time, "timedelta": datetime.timedelta, "timezone": datetime.timezone}


_ATOMS = (type(None), bool, int, float, complex, str, bytes)
# Iterators of these modules are the standard library's own (map, zip, generators, itertools.*): safe to drain.
_ITERATOR_MODULES = ("builtins", "itertools", "collections", "_collections")


def _encode(obj, opaque, depth: int = 0):
    """``obj`` as a tree of exact builtin values that marshal carries: atoms as themselves, everything else as a
    tuple ``(tag, payload)``. Subclasses of builtin containers cross as their base type's data, read through the
    base type's own methods, so an overridden ``__eq__``/``__iter__`` never runs. ``opaque(obj)`` encodes what
    is not a value (a handle on the candidate's side; an error on the checker's)."""
    if depth > MAX_ENCODE_DEPTH:
        raise CannotCross(f"a value nested deeper than {MAX_ENCODE_DEPTH} levels (or containing itself)")
    kind = type(obj)
    if kind in _ATOMS:
        return obj
    down = depth + 1
    # The exact builtin containers first (most values are these): nothing of theirs can be overridden. Their
    # atoms are taken as they are, unless they are one level too deep.
    if kind is list or kind is tuple:
        flat = down <= MAX_ENCODE_DEPTH
        return ("l" if kind is list else "t",
                [v if flat and type(v) in _ATOMS else _encode(v, opaque, down) for v in obj])
    if kind is dict:
        return ("d", [(_encode(k, opaque, down), _encode(v, opaque, down)) for k, v in obj.items()])
    vt = _VALUE_TYPES
    if kind is vt["Counter"] or kind is vt["OrderedDict"]:
        tag = "C" if kind is vt["Counter"] else "O"
        return (tag, [(_encode(k, opaque, down), _encode(v, opaque, down)) for k, v in dict.items(obj)])
    if kind is vt["defaultdict"]:
        factory = obj.default_factory
        name = factory.__name__ if factory in (int, list, set, dict, str, float, tuple) else None
        return ("D", name, [(_encode(k, opaque, down), _encode(v, opaque, down)) for k, v in dict.items(obj)])
    if kind is vt["deque"]:
        return ("Q", [_encode(v, opaque, down) for v in obj], obj.maxlen)
    if kind is vt["Fraction"]:
        return ("Fr", int(obj.numerator), int(obj.denominator))
    if kind is vt["Decimal"]:
        return ("De", str(obj))  # an exact Decimal: its own __str__
    if kind in (vt["datetime"], vt["time"]) and (obj.tzinfo is None or type(obj.tzinfo) is vt["timezone"]):
        return ("dt" if kind is vt["datetime"] else "ti", obj.isoformat())
    if kind is vt["date"]:
        return ("da", obj.toordinal())
    if kind is vt["timedelta"]:
        return ("td", obj.days, obj.seconds, obj.microseconds)
    if kind is range:
        return ("r", obj.start, obj.stop, obj.step)
    if isinstance(obj, types.ModuleType):
        return opaque(obj)
    if isinstance(obj, bool):
        return bool(obj)
    if isinstance(obj, int):
        return int.__int__(obj)
    if isinstance(obj, float):
        return float.__float__(obj)
    if isinstance(obj, str):
        return str.__str__(obj)
    if isinstance(obj, bytes):
        return bytes.__getitem__(obj, slice(None))
    if isinstance(obj, bytearray):
        return ("ba", bytes(bytearray.__getitem__(obj, slice(None))))
    if isinstance(obj, tuple):  # namedtuples too: they cross as plain tuples
        return ("t", [_encode(tuple.__getitem__(obj, i), opaque, down) for i in range(tuple.__len__(obj))])
    if isinstance(obj, list):
        return ("l", [_encode(v, opaque, down) for v in list.__getitem__(obj, slice(None))])
    if isinstance(obj, dict):
        return ("d", [(_encode(k, opaque, down), _encode(v, opaque, down)) for k, v in dict.items(obj)])
    if isinstance(obj, (set, frozenset)):
        members = set.__iter__(obj) if isinstance(obj, set) else frozenset.__iter__(obj)
        return ("s" if isinstance(obj, set) else "f", [_encode(v, opaque, down) for v in members])
    if (isinstance(obj, types.GeneratorType) or (hasattr(kind, "__next__") and hasattr(kind, "__iter__")
                                                and getattr(kind, "__module__", None) in _ITERATOR_MODULES)):
        items: list = []
        for item in obj:
            if len(items) >= MAX_ITER_ITEMS:
                raise CannotCross(f"an iterator that yields more than {MAX_ITER_ITEMS} items")
            items.append(_encode(item, opaque, down))
        return ("it", items)
    return opaque(obj)


def _decode(tree, handle, depth: int = 0):
    """The value ``_encode`` made, rebuilt from exact builtin and standard-library types; ``handle(tree)`` makes
    what an ``("h", ...)`` or ``("m", ...)`` node stands for. Anything malformed raises CannotCross."""
    if depth > MAX_ENCODE_DEPTH + 1:
        raise CannotCross("a value nested too deeply")
    if type(tree) in _ATOMS:
        return tree
    if type(tree) is not tuple or not tree or type(tree[0]) is not str:
        raise CannotCross(f"the candidate's process sent a malformed value ({type(tree).__name__})")
    tag, down, vt = tree[0], depth + 1, _VALUE_TYPES

    def items(payload) -> list:
        if type(payload) is not list:
            raise CannotCross("the candidate's process sent a malformed container")
        flat = down <= MAX_ENCODE_DEPTH + 1
        return [v if flat and type(v) in _ATOMS else _decode(v, handle, down) for v in payload]

    def pairs(payload) -> list:
        if type(payload) is not list or any(type(p) is not tuple or len(p) != 2 for p in payload):
            raise CannotCross("the candidate's process sent a malformed mapping")
        return [(_decode(k, handle, down), _decode(v, handle, down)) for k, v in payload]

    try:
        if tag == "t":
            return tuple(items(tree[1]))
        if tag == "l":
            return items(tree[1])
        if tag == "d":
            return dict(pairs(tree[1]))
        if tag in ("s", "f"):
            return (set if tag == "s" else frozenset)(items(tree[1]))
        if tag == "ba":
            return bytearray(tree[1]) if type(tree[1]) is bytes else _malformed()
        if tag == "C":
            return vt["Counter"](dict(pairs(tree[1])))
        if tag == "O":
            return vt["OrderedDict"](pairs(tree[1]))
        if tag == "D":
            factories = {"int": int, "list": list, "set": set, "dict": dict, "str": str, "float": float,
                         "tuple": tuple}
            return vt["defaultdict"](factories.get(tree[1]), pairs(tree[2]))
        if tag == "Q":
            return vt["deque"](items(tree[1]), tree[2] if type(tree[2]) is int else None)
        if tag == "Fr" and type(tree[1]) is int and type(tree[2]) is int:
            return vt["Fraction"](tree[1], tree[2])
        if tag == "De" and type(tree[1]) is str:
            return vt["Decimal"](tree[1])
        if tag in ("dt", "ti") and type(tree[1]) is str:
            return (vt["datetime"] if tag == "dt" else vt["time"]).fromisoformat(tree[1])
        if tag == "da" and type(tree[1]) is int:
            return vt["date"].fromordinal(tree[1])
        if tag == "td" and all(type(v) is int for v in tree[1:4]):
            return vt["timedelta"](tree[1], tree[2], tree[3])
        if tag == "r" and all(type(v) is int for v in tree[1:4]):
            return range(tree[1], tree[2], tree[3])
        if tag == "it":
            return iter(items(tree[1]))
        if tag in ("h", "m", "b"):
            return handle(tree)
    except (CannotCross, HandleComparison):
        raise
    except Exception as exc:  # noqa: BLE001 - a bad payload (wrong arity, an unhashable key, ...)
        raise CannotCross(f"the candidate's process sent a malformed value ({type(exc).__name__}: {exc})") from None
    return _malformed()


def _malformed():
    raise CannotCross("the candidate's process sent a malformed value")


def _send_msg(fd: int, obj, dumps=marshal.dumps, write=os.write) -> None:
    data = dumps(obj)
    view = memoryview(len(data).to_bytes(4, "big") + data)
    while view:
        view = view[write(fd, view) :]


def _recv_msg(fd: int, loads=marshal.loads, read=os.read):
    """One length-prefixed marshal frame, or None at end of input; raises CannotCross on an oversized frame, or on
    bytes after it. The two sides take turns (one request, one answer), so a frame is all there is to read: one
    read usually takes it whole, where reading the length first would cost a second system call per message."""
    data = read(fd, 1 << 16)
    while 0 < len(data) < 4:
        more = read(fd, 1 << 16)
        if not more:
            return None
        data += more
    if not data:
        return None
    end = 4 + int.from_bytes(data[:4], "big")
    if end - 4 > MAX_REPORT_BYTES:
        raise CannotCross("the candidate's process sent more data than the runner accepts")
    if len(data) < end:
        chunks, have = [data], len(data)
        while have < end:
            chunk = read(fd, min(end - have, 1 << 20))
            if not chunk:
                return None
            chunks.append(chunk)
            have += len(chunk)
        data = b"".join(chunks)
    if len(data) != end:
        raise CannotCross("the candidate's process sent more than one answer")
    return loads(memoryview(data)[4:])


# --- the candidate's side: serves names, calls and attributes from its own process ---------------------------


def _serve(module: types.ModuleType, fd: int, io_primitives: tuple) -> None:
    """Answer the checker's requests until it hangs up. Objects that are not values stay here; the checker gets
    their index in ``table``. Nothing said here is trusted by the checker: it decodes answers as data only."""
    dumps, loads, read, write, describe = io_primitives
    table: list = []

    def opaque(obj):
        if isinstance(obj, types.ModuleType):
            return ("m", str(getattr(obj, "__name__", "")))
        table.append(obj)
        meta = None
        if callable(obj):  # its signature only on request ("signature"): working it out copies ~160 pages here
            meta = (_text(getattr(obj, "__name__", None)), _text(getattr(obj, "__qualname__", None)),
                    _text(getattr(obj, "__doc__", None)), None)
        return ("h", len(table) - 1, _text(type(obj).__name__), meta)

    def encode(value):
        return _encode(value, opaque)

    def decode(tree):
        def handle(node):
            if node[0] == "h" and type(node[1]) is int and 0 <= node[1] < len(table):
                return table[node[1]]
            if node[0] == "b" and isinstance(getattr(builtins, str(node[1]), None), types.BuiltinFunctionType):
                return getattr(builtins, node[1])
            raise CannotCross("unknown handle")
        return _decode(tree, handle)

    mutable = (list, dict, set, bytearray)
    while True:
        try:
            request = _recv_msg(fd, loads, read)
        except BaseException:  # noqa: BLE001
            return
        if request is None:
            return
        try:
            op = request[0]
            if op == "names":
                space = vars(module)
                answer: tuple = ("ok", [(name, encode(space[name])) for name in request[1]
                                        if type(name) is str and name in space])
            elif op == "call":
                target = table[request[1]]
                args = [decode(a) for a in request[2]]
                kwargs = {str(k): decode(v) for k, v in request[3]}
                value = target(*args, **kwargs)
                back: list[tuple[int | str, Any]] = [(i, encode(a)) for i, a in enumerate(args) if type(a) in mutable]
                back += [(k, encode(v)) for k, v in kwargs.items() if type(v) in mutable]
                answer = ("ok", encode(value), back)
            elif op == "getattr":
                answer = ("ok", encode(getattr(table[request[1]], str(request[2]))))
            elif op == "signature":
                answer = ("ok", _parameters(table[request[1]]))
            elif op == "setattr":
                setattr(table[request[1]], str(request[2]), decode(request[3]))
                answer = ("ok", None)
            elif op == "getitem":
                answer = ("ok", encode(table[request[1]][decode(request[2])]))
            elif op == "iter":
                answer = ("ok", encode(iter(table[request[1]])))
            elif op in ("len", "repr", "str"):
                show: Any = {"len": len, "repr": repr, "str": str}[op]
                answer = ("ok", encode(show(table[request[1]])))
            else:
                answer = ("raise", "CannotCross", f"unknown request {op!r}", [], None)
        except BaseException as exc:  # noqa: BLE001 - the candidate's exception crosses to the test
            try:
                _category_, error_type, message, _text_, line = describe(exc, (CANDIDATE,), (CANDIDATE,))
                frames = [(f.filename, f.lineno, f.name, f.line or "")
                          for f in traceback.extract_tb(exc.__traceback__) if f.filename == CANDIDATE]
                answer = ("raise", str(error_type), str(message), frames, line)
            except BaseException:  # noqa: BLE001 - a MemoryError while describing one, say
                answer = ("raise", "MemoryError" if isinstance(exc, MemoryError) else "Exception", "", [], None)
        try:
            _send_msg(fd, answer, dumps, write)
        except BaseException:  # noqa: BLE001 - the checker is gone, or the answer cannot be encoded
            return


def _text(value) -> str | None:
    return value if type(value) is str else None


def _parameters(obj) -> list | None:
    """A callable's signature as data: (name, kind, has default, default as a value or None)."""
    try:
        import inspect

        params = []
        for p in inspect.signature(obj).parameters.values():
            has_default = p.default is not inspect.Parameter.empty
            try:
                default = _encode(p.default, _no_handles) if has_default else None
            except CannotCross:
                default = None
            params.append((str(p.name), int(p.kind), has_default, default))
        return params
    except BaseException:  # noqa: BLE001 - no signature (a builtin), or a hostile one
        return None


def _no_handles(obj):
    raise CannotCross(f"a {type(obj).__name__} is not a value")


# --- the checker's side -------------------------------------------------------------------------------------


class _Link:
    """The checker's end of the socket to the candidate's process."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def ask(self, *request):
        _send_msg(self.fd, request)
        answer = _recv_msg(self.fd)
        if answer is None:
            raise CandidateDied("the candidate's process exited while the test was using it")
        if type(answer) is not tuple or not answer or answer[0] not in ("ok", "raise"):
            raise CannotCross("the candidate's process sent a malformed answer")
        if answer[0] == "raise":
            raise _remote_exception(answer)
        return answer

    def value(self, tree):
        return _decode(tree, self._handle)

    def _handle(self, node):
        if node[0] == "m":
            raise CannotCross("a module cannot be a value")  # names bound to modules are handled apart
        if node[0] != "h" or type(node[1]) is not int or len(node) != 4:
            raise CannotCross("the candidate's process sent a malformed handle")
        return _Remote(self, node[1], node[2], node[3])

    def send(self, value):
        return _encode(value, _checker_opaque)

    def call(self, hid: int, args: tuple, kwargs: dict):
        answer = self.ask("call", hid, [self.send(a) for a in args],
                          [(str(k), self.send(v)) for k, v in kwargs.items()])
        if len(answer) != 3 or type(answer[2]) is not list:
            raise CannotCross("the candidate's process sent a malformed answer")
        for where, tree in answer[2]:  # mutated arguments: write their new contents into the test's objects
            original = args[where] if type(where) is int and 0 <= where < len(args) else kwargs.get(where)
            _write_back(original, self.value(tree))
        return self.value(answer[1])


def _write_back(original, new) -> None:
    if type(original) is list and type(new) is list:
        original[:] = new
    elif type(original) is dict and type(new) is dict:
        original.clear()
        original.update(new)
    elif type(original) is set and type(new) is set:
        original.clear()
        original.update(new)
    elif type(original) is bytearray and type(new) is bytearray:
        original[:] = new


def _checker_opaque(obj):
    if type(obj) is _Remote:
        return ("h", object.__getattribute__(obj, "_sandbox_id"), "", None)
    name = str(getattr(obj, "__name__", ""))
    if isinstance(obj, types.BuiltinFunctionType) and getattr(builtins, name, None) is obj:
        return ("b", name)  # len, abs, ...: the candidate's side uses its own builtin of that name
    raise CannotCross(f"the test passed a {type(obj).__name__} to the candidate's code; only values (builtins, "
                      "standard-library value types) and objects the candidate made can cross to its process")


def _remote_exception(answer: tuple) -> BaseException:
    """The candidate's exception, rebuilt on the checker's side: the builtin class of that name (so a test's
    ``except ValueError`` works), else a new class of that name; its message and candidate frames ride along."""
    _, name, message, frames, line = (list(answer) + [None] * 5)[:5]
    name = name if type(name) is str and name.isidentifier() else "Exception"
    message = message if type(message) is str else ""
    found = getattr(builtins, name, None)
    kind = found if isinstance(found, type) and issubclass(found, BaseException) else type(name, (Exception,), {})
    try:
        exc = kind(message) if kind is not SystemExit else SystemExit(message or None)
    except BaseException:  # noqa: BLE001 - a builtin with another constructor (UnicodeDecodeError)
        exc = type(name, (Exception,), {})(message)
    safe_frames = [tuple(f) for f in frames if type(f) is tuple and len(f) == 4] if type(frames) is list else []
    setattr(exc, "__sandbox_remote__", (message, safe_frames, line if type(line) is int else None))
    return exc


class _Remote:
    """An object that lives in the candidate's process. Calls, attributes, items and iteration run there; the
    checker's side never compares, hashes or truth-tests it (that would be the candidate judging itself)."""

    def __init__(self, link: _Link, hid: int, type_name, meta) -> None:
        setter = object.__setattr__
        setter(self, "_sandbox_link", link)
        setter(self, "_sandbox_id", hid)
        setter(self, "_sandbox_type", type_name if type(type_name) is str else "object")
        setter(self, "_sandbox_meta", meta if type(meta) is tuple and len(meta) == 4 else None)
        if self._sandbox_meta:
            name, qualname, doc, _params = self._sandbox_meta
            setter(self, "__name__", _text(name) or "")
            setter(self, "__qualname__", _text(qualname) or "")
            setter(self, "__doc__", _text(doc))

    @property
    def __signature__(self):
        """Asked of the candidate's process the first time (its answer is data: names, kinds, defaults that are
        values), then kept: most tests never look at a signature, so handles do not carry one."""
        import inspect

        if not self._sandbox_meta:
            return None  # not callable
        if "_sandbox_params" not in self.__dict__:
            link = self._sandbox_link
            object.__setattr__(self, "_sandbox_params", link.ask("signature", self._sandbox_id)[1])
        described = self.__dict__["_sandbox_params"]
        if type(described) is not list:
            return None  # no signature over there (a builtin), or a malformed answer
        params = []
        for name, kind, has_default, default in described:
            value: Any = inspect.Parameter.empty
            if has_default:
                try:
                    value = _decode(default, _no_handles)
                except CannotCross:
                    value = None
            params.append(inspect.Parameter(name, inspect._ParameterKind(kind), default=value))
        return inspect.Signature(params)

    def __call__(self, *args, **kwargs):
        return self._sandbox_link.call(self._sandbox_id, args, kwargs)

    def __getattr__(self, name: str):
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        link = self._sandbox_link
        return link.value(link.ask("getattr", self._sandbox_id, name)[1])

    def __setattr__(self, name: str, value) -> None:
        link = self._sandbox_link
        link.ask("setattr", self._sandbox_id, name, link.send(value))

    def __getitem__(self, key):
        link = self._sandbox_link
        return link.value(link.ask("getitem", self._sandbox_id, link.send(key))[1])

    def __iter__(self):
        link = self._sandbox_link
        return iter(link.value(link.ask("iter", self._sandbox_id)[1]))

    def __len__(self) -> int:
        link = self._sandbox_link
        size = link.value(link.ask("len", self._sandbox_id)[1])
        return size if type(size) is int else _malformed()

    def __str__(self) -> str:
        link = self._sandbox_link
        text = link.value(link.ask("str", self._sandbox_id)[1])
        return text if type(text) is str else _malformed()

    def __repr__(self) -> str:
        try:
            link = self._sandbox_link
            text = link.value(link.ask("repr", self._sandbox_id)[1])
            return text if type(text) is str else f"<the candidate's {self._sandbox_type}>"
        except Exception:  # noqa: BLE001 - repr is for messages: never let it hide the real failure
            return f"<the candidate's {self._sandbox_type}>"

    def _refuse(self, *_args):
        raise HandleComparison(
            f"the test compared, hashed or truth-tested a {self._sandbox_type} that lives in the candidate's process; "
            "its own __eq__/__hash__/__bool__ would judge itself, so the checker refuses: compare plain values "
            "(its attributes, or what its methods return) instead")

    __eq__ = __ne__ = __lt__ = __le__ = __gt__ = __ge__ = __hash__ = __bool__ = _refuse
    __contains__ = _refuse


# Test code the supervisor compiles for its checker, up to this size (setup and code together); a longer one, or
# one that does not compile or warns, is compiled by the checker, which reports it as before.
SUPERVISOR_COMPILE_LIMIT = 1 << 18


def _compile_test(test: dict, judge_purity: bool = False) -> tuple[tuple | None, bool]:
    """An assert test's (setup, code) compiled here, in the supervisor, for its checker to take as they are: the
    same ``compile`` calls the checker would make (same file names, and the runner's own future flags, inherited
    either way). Compiling in a freshly forked checker copied ~110 pages on write, the parser's allocations, and
    cost about 0.6 ms a test where it costs ~0.13 ms here. None when the checker should compile it itself.
    With it, whether the test is a pure assertion test (see _pure_test), which a steady checker may run; that is
    worked out only with ``judge_purity`` (the parsed tree it needs costs ~0.1 ms a test more than compiling)."""
    setup, source = test.get("setup") or "", test["code"]
    if len(setup) + len(source) > SUPERVISOR_COMPILE_LIMIT:
        return None, False
    # A warning (say "assertion is always true") goes to the test's stderr, where the checker's compile prints it:
    # code that warns is left to the checker.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            if not judge_purity:
                return (compile(setup, SETUP_CODE, "exec"), compile(source, TEST_CODE, "exec")), False
            trees = compile(setup, SETUP_CODE, "exec", _ONLY_AST), compile(source, TEST_CODE, "exec", _ONLY_AST)
            compiled = compile(trees[0], SETUP_CODE, "exec"), compile(trees[1], TEST_CODE, "exec")
        except Exception:  # noqa: BLE001 - a syntax error, a warning, a limit of the compiler: the checker's to report
            return None, False
    return compiled, all(_pure_test(tree) for tree in trees)


# --- pure assertion tests, which a steady checker may run one after another ----------------------------------
#
# A checker that has run one test is normally thrown away: a test may import modules, patch them, change the
# interpreter's settings or leave threads, and the next test would see it. A *pure* test cannot reach anything
# that outlives it. It reads no attribute (every module, class and interpreter setting is an attribute away),
# imports nothing, declares no global, defines no class, and names only its own variables, the candidate's names
# and the builtins below: values, containers and functions of values, none of which can change the
# interpreter's state. What it can build (values, its own functions, handles to the candidate's objects) lives in
# its namespace, which is dropped after the test. HumanEval's and MBPP's tests are of this kind.

_ONLY_AST = 0x400  # ast.PyCF_ONLY_AST: the tree from the C parser, without importing the ast module
PURE_BUILTINS = frozenset((
    "abs", "all", "any", "ascii", "bin", "bool", "bytearray", "bytes", "callable", "chr", "complex", "dict",
    "divmod", "enumerate", "filter", "float", "format", "frozenset", "hash", "hex", "id", "int", "isinstance",
    "issubclass", "iter", "len", "list", "map", "max", "min", "next", "oct", "ord", "pow", "print", "range",
    "repr", "reversed", "round", "set", "slice", "sorted", "str", "sum", "tuple", "zip",
    "True", "False", "None", "Ellipsis", "NotImplemented",
))  # not `type`: type(name, bases, {"__del__": ...}) makes a class whose instances could run code in a later test


def _pure_node_fields() -> dict:
    """Each node type a pure test may hold, with the fields under it that hold nodes (a context, a name, a
    constant's value are not visited)."""
    import _ast

    names = (
        # statements
        "Module", "FunctionDef", "Return", "Assign", "AugAssign", "For", "While", "If", "Raise", "Try",
        "ExceptHandler", "Assert", "Expr", "Pass", "Break", "Continue", "arguments", "arg",
        # expressions
        "BoolOp", "NamedExpr", "BinOp", "UnaryOp", "Lambda", "IfExp", "Dict", "Set", "ListComp", "SetComp",
        "DictComp", "GeneratorExp", "comprehension", "Compare", "Call", "keyword", "FormattedValue", "JoinedStr",
        "Constant", "Subscript", "Starred", "Name", "List", "Tuple", "Slice",
        # operators
        "And", "Or", "Add", "Sub", "Mult", "MatMult", "Div", "Mod", "Pow", "LShift", "RShift", "BitOr", "BitXor",
        "BitAnd", "FloorDiv", "Invert", "Not", "UAdd", "USub", "Eq", "NotEq", "Lt", "LtE", "Gt", "GtE", "Is",
        "IsNot", "In", "NotIn",
    )
    scalars = {"ctx", "id", "name", "arg", "conversion", "kind", "type_comment", "is_async", "annotation",
               "decorator_list", "returns"}  # the last three are checked apart (they must be empty)
    fields: dict = {type(None): ()}  # an absent optional node (a bare `raise`, a keyword-only default)
    for name in names:
        kind = getattr(_ast, name)
        fields[kind] = () if name == "Constant" else tuple(f for f in kind._fields if f not in scalars)
    return fields


_PURE_FIELDS: dict = {}
_PURE_NAMES: dict[str, bool] = {}


def _pure_test(tree) -> bool:
    """Whether the parsed test (a tree of _ast nodes) is pure in the sense above: only the node types of
    _pure_node_fields (no Attribute, Import, Global, ClassDef, With, Delete, ...), no decorators or annotations,
    no dunder name, and no builtin outside PURE_BUILTINS. Builtin exception classes may be named as well."""
    import _ast

    if not _PURE_FIELDS:
        _PURE_FIELDS.update(_pure_node_fields())
    fields_of, names = _PURE_FIELDS, _PURE_NAMES
    Name, FunctionDef, arg, ExceptHandler, keyword = (_ast.Name, _ast.FunctionDef, _ast.arg, _ast.ExceptHandler,
                                                      _ast.keyword)
    todo = [tree]
    pop, push, extend = todo.pop, todo.append, todo.extend
    while todo:
        node = pop()
        kind = type(node)
        fields = fields_of.get(kind)
        if fields is None:
            return False
        name = None
        if kind is Name:
            name = node.id
        elif kind is FunctionDef:
            if node.decorator_list or node.returns:
                return False
            name = node.name
        elif kind is arg:
            if node.annotation is not None:
                return False
            name = node.arg
        elif kind is ExceptHandler:
            name = node.name
        elif kind is keyword and node.arg is not None and node.arg.startswith("__"):
            return False
        if name is not None:
            pure = names.get(name)
            if pure is None:
                pure = names[name] = _pure_name(name)
            if not pure:
                return False
        for field in fields:
            value = getattr(node, field)
            if type(value) is list:
                extend(value)
            else:
                push(value)
    return True


def _pure_name(name: str) -> bool:
    if name.startswith("__"):
        return False
    found = getattr(builtins, name, None)
    if found is None and name != "None":
        return True  # the test's own name, or the candidate's
    return name in PURE_BUILTINS or (isinstance(found, type) and issubclass(found, BaseException))


def _test_names(codes: Sequence[types.CodeType]) -> list[str]:
    """Every name the test code (or its setup) could look up: the candidate is asked for these only."""
    found: set[str] = set()

    def walk(code: types.CodeType) -> None:
        found.update(code.co_names)
        for const in code.co_consts:
            if isinstance(const, types.CodeType):
                walk(const)

    for code in codes:
        walk(code)
    return sorted(name for name in found if not (name.startswith("__") and name.endswith("__")))


class _BlankChecker:
    """A checker forked ahead of its test (while the supervisor waits, or once the previous test's result is out),
    which makes itself ready and blocks until it is handed a test: the fork and that set-up stay off the test's
    path. It holds nothing of any program until then, so an unused one may serve the next program."""

    served = 0  # pure tests handed to it as a steady checker

    def __init__(self, fork: Callable[[], int] = os.fork) -> None:
        self.ctl, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self.pid = fork()
        except OSError:
            self.ctl.close()
            theirs.close()
            raise
        if self.pid == 0:
            try:
                self.ctl.close()
                _checker_main(theirs.fileno())
            finally:
                os._exit(70)
        theirs.close()

    @classmethod
    def adopt(cls, pid: int, ctl: socket.socket) -> _BlankChecker:
        """A blank checker another process made a child of ours (a loader template)."""
        checker = cls.__new__(cls)
        checker.pid, checker.ctl = pid, ctl
        return checker

    def start(self, test: dict, limits: dict, token: bytes, fds: tuple[int, int, int, int], workdir: str,
              compiled: tuple | None = None, steady: bool = False) -> bool:
        """Hand over the test (with its code objects, when the supervisor compiled them: see _compile_test) and
        its descriptors (the socket to the candidate, the report pipe, stdout, stderr); False if this checker is
        already gone (killed with the leftovers of a test). ``steady`` (a pure test only): the checker waits for
        another pure test after reporting, instead of exiting, and its report pipe's end marks the test's end."""
        body = marshal.dumps((test, limits, token, workdir, compiled, steady))
        try:
            self.ctl.sendmsg([len(body).to_bytes(4, "big")], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, memoryview(
                b"".join(fd.to_bytes(4, sys.byteorder) for fd in fds)))])
            self.ctl.sendall(body)
            return True
        except OSError:
            return False
        finally:
            if not steady:
                self.ctl.close()

    def discard(self) -> None:
        self.ctl.close()  # it reads end-of-input and exits; the supervisor's kill loop reaps it


def _checker_path() -> list[str]:
    """sys.path without the runner's directory or the working directory ("")."""
    runner_dir = os.path.dirname(os.path.abspath(__file__))
    return [p for p in sys.path if p and os.path.abspath(p) != runner_dir]


_CHECKER_PATH: list[str] = []  # _checker_path(), worked out once by the zygote for every checker below it


def _text_writers() -> tuple:
    """Text writers on descriptors 1 and 2, as a test's sys.stdout and sys.stderr."""
    return tuple(io.open(fd, "w", encoding="utf-8", errors="backslashreplace", closefd=False) for fd in (1, 2))


def _pipe_writers() -> tuple:
    """The writers of _text_writers(), set up (not seekable, a pipe's buffer size) while descriptors 1 and 2 are a
    pipe, as they are in the processes that run tests: the zygote makes them once (_PIPE_WRITERS) and every test
    process takes them as they are, where making its own cost ~60 pages copied on write. () if descriptors 1 and 2
    cannot be borrowed (each test process then makes its own)."""
    try:
        saved = os.dup(1), os.dup(2)
    except OSError:
        return ()
    read_end, write_end = os.pipe()
    try:
        os.dup2(write_end, 1)
        os.dup2(write_end, 2)
        return _text_writers()
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (read_end, write_end) + saved:
            os.close(fd)


_PIPE_WRITERS: tuple = ()  # made by the zygote before it forks anything (see _pipe_writers)


def _checker_main(ctl_fd: int) -> None:
    """Get ready, wait for an assert test on ``ctl_fd``, run it against the candidate's process and report; then
    exit, or, as a steady checker, wait for the next pure test (see _pure_test). Never returns."""
    try:
        _prctl(PR_SET_DUMPABLE, 0)  # the candidate may share our uid: it must not trace us or read our memory
        _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        _keep_only_fds({ctl_fd})
        # Neither the runner's directory nor the candidate's work directory may supply a module to the test.
        sys.path[:] = _CHECKER_PATH or _checker_path()
        _set_rlimit(resource.RLIMIT_NOFILE, OPEN_FILES_LIMIT)
        _set_rlimit(resource.RLIMIT_CORE, 0)
        _switch_uid("checker")
        order = socket.socket(fileno=ctl_fd)
        null_out = os.open(os.devnull, os.O_WRONLY)
    except BaseException:  # noqa: BLE001
        os._exit(70)
    while True:
        try:
            head, ancillary, _flags, _addr = order.recvmsg(4, socket.CMSG_SPACE(4 * 4))
            if len(head) != 4:
                os._exit(0)  # discarded, unused or between pure tests
            fds = [int.from_bytes(raw[i : i + 4], sys.byteorder) for _level, _kind, raw in ancillary
                   for i in range(0, len(raw) - len(raw) % 4, 4)]
            body = _read_exact(ctl_fd, int.from_bytes(head, "big"))
            if body is None or len(fds) != 4:
                os._exit(70)
            test, limits, token, workdir, compiled, steady = marshal.loads(body)
            sock_fd, res_fd, out_fd, err_fd = fds
            os.dup2(out_fd, 1)
            os.dup2(err_fd, 2)
            for fd in (out_fd, err_fd):
                os.close(fd)
            os.chdir("/" if _SWITCH_UIDS else workdir)  # the program's own directory is private to its uid there
            cpu_s = math.ceil(limits["time_s"]) + 1
            memory = limits["memory_mb"] * 1024 * 1024
            if steady:  # soft limits only, from what this process has used so far: the next test sets its own
                usage = resource.getrusage(resource.RUSAGE_SELF)
                cpu_s += math.ceil(usage.ru_utime + usage.ru_stime)
                for which, soft in ((resource.RLIMIT_CPU, cpu_s), (resource.RLIMIT_AS, _address_space() + memory)):
                    _set_rlimit(which, soft, resource.getrlimit(which)[1])
            else:
                _set_rlimit(resource.RLIMIT_CPU, cpu_s)
                # The test's memory limit binds its own code and what it decodes from the candidate, as in the
                # loader.
                _set_rlimit(resource.RLIMIT_AS, _address_space() + memory)
            sys.stdout, sys.stderr = _PIPE_WRITERS or _text_writers()
        except BaseException:  # noqa: BLE001
            os._exit(70)
        _check(test, token, sock_fd, res_fd, compiled, steady)
        if not steady:
            os._exit(0)
        try:  # ready for the next pure test: nothing of this one stays open
            os.close(res_fd)  # the supervisor's sign that this test is over
            os.dup2(null_out, 1)
            os.dup2(null_out, 2)
            os.chdir("/")
        except BaseException:  # noqa: BLE001
            os._exit(70)


def _check(test: dict, token: bytes, sock_fd: int, res_fd: int, compiled: tuple | None, steady: bool) -> None:
    """Run one assert test with the candidate's names behind ``sock_fd`` and write its report to ``res_fd``."""

    def report(*payload) -> None:
        try:
            os.close(sock_fd)  # the candidate's side sees the end and exits while we report
        except OSError:
            pass
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except BaseException:  # noqa: BLE001
                pass
        body = marshal.dumps((token,) + payload)
        _write_all(res_fd, len(body).to_bytes(4, "big") + body)

    shown = (CANDIDATE, TEST_CODE, SETUP_CODE)
    try:
        setup, source = test.get("setup") or "", test["code"]
        _register_source(TEST_CODE, source)
        _register_source(SETUP_CODE, setup)
        setup_code, test_code = compiled or (compile(setup, SETUP_CODE, "exec"), compile(source, TEST_CODE, "exec"))
        link = _Link(sock_fd)
        namespace: dict[str, Any] = {"__name__": "solution", "__builtins__": builtins}
        for name, tree in link.ask("names", _test_names((setup_code, test_code)))[1]:
            if type(name) is not str or hasattr(builtins, name):  # builtins stay the checker's own
                continue
            if type(tree) is tuple and tree and tree[0] == "m":  # a module: imported afresh here, never taken over
                if steady:  # importing would leave the module behind for the next test: a pure test reads no
                    namespace[name] = types.ModuleType(str(tree[1]))  # attribute, so an empty one serves
                    continue
                try:
                    namespace[name] = __import__(str(tree[1]), fromlist=["_"])
                except BaseException:  # noqa: BLE001 - not importable here: the test sees no such name
                    pass
            else:
                namespace[name] = link.value(tree)
        exec(setup_code, namespace)  # trusted helpers win over the candidate's names
        exec(test_code, namespace)
    except BaseException as exc:  # noqa: BLE001 - every failure of the test is reported, SystemExit included
        try:
            info = _describe(exc, (CANDIDATE,), shown)
        except BaseException:  # noqa: BLE001
            info = ("memory" if isinstance(exc, MemoryError) else "error", "Exception", "", "", None)
        try:
            report("exc", *info)
        except BaseException:  # noqa: BLE001
            try:
                report("exc", info[0], info[1], "", "", None)
            except BaseException:  # noqa: BLE001
                os._exit(70)
        return
    try:
        report("ok", marshal.dumps(None))
    except BaseException:  # noqa: BLE001
        os._exit(70)


_VALUE_TYPES = _value_types()


# ----------------------------------------------------------------------------------------------------------------
# The supervisor: one per program, never runs candidate code.


class _BlankLoader:
    """A loader forked before its program is known, with its work directory, control socket and output pipes:
    the supervisor makes the next one while it waits for the next job, so no fork is on a program's path."""

    def __init__(self, workroot: str, fork: Callable[[], int] = os.fork) -> None:
        self.uid = _fresh_uid() if _SWITCH_UIDS else None
        if self.uid is None:
            self.workdir = tempfile.mkdtemp(prefix="run-", dir=workroot)
        else:  # the loader makes it as its own user: we could not hand it over (no CAP_CHOWN)
            self.workdir = os.path.join(workroot, f"run-{self.uid}-{os.urandom(4).hex()}")
        self.ctl, loader_ctl = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.out_r, out_w = os.pipe()
        self.err_r, err_w = os.pipe()
        job_r, self.job_w = os.pipe()
        try:
            self.pid = fork()
        except OSError:
            for fd in (out_w, err_w, job_r, self.out_r, self.err_r, self.job_w):
                os.close(fd)
            self.ctl.close()
            loader_ctl.close()
            raise
        if self.pid == 0:
            try:
                self.ctl.close()
                _loader_main(self.workdir, loader_ctl, out_w, err_w, job_r, self.uid)
            finally:
                os._exit(70)
        for fd in (out_w, err_w, job_r):
            os.close(fd)
        loader_ctl.close()

    def hand_over(self, sock: socket.socket) -> None:
        """Pass the loader's facts and descriptors to the supervisor (see _LoaderTemplate.make_loader)."""
        socket.send_fds(sock, [marshal.dumps((self.pid, self.workdir, self.uid))],
                        [self.ctl.fileno(), self.out_r, self.err_r, self.job_w])

    def close_our_copies(self) -> None:
        """Close the descriptors after they were passed on to the process that will use them."""
        for fd in (self.out_r, self.err_r, self.job_w):
            os.close(fd)
        self.ctl.close()

    @classmethod
    def adopt(cls, pid: int, workdir: str, uid: int | None, ctl: socket.socket, out_r: int, err_r: int,
              job_w: int) -> _BlankLoader:
        """A blank loader another process forked, from the descriptors and facts it passed on."""
        loader = cls.__new__(cls)
        loader.pid, loader.workdir, loader.uid, loader.ctl = pid, workdir, uid, ctl
        loader.out_r, loader.err_r, loader.job_w = out_r, err_r, job_w
        return loader

    def send_job(self, job: dict) -> bool:
        """Hand the program over; False if the loader is already gone."""
        try:
            _send_frame(self.job_w, job)
            return True
        except OSError:
            return False
        finally:
            os.close(self.job_w)

    def discard(self) -> None:
        """Close down an unused loader (the supervisor is exiting)."""
        os.close(self.job_w)  # it reads end-of-input and exits
        for fd in (self.out_r, self.err_r):
            os.close(fd)
        self.ctl.close()
        _kill_children()
        _remove_workdir(self.workdir, self.uid)


class _LoaderTemplate:
    """A copy of its supervisor made before the supervisor saw any program, which makes all of its loaders.

    A supervisor serves program after program; what is left of earlier programs in its memory (their code, their
    assert tests) would be inherited by every loader it forked later, and the candidate in it could read it. So
    the supervisor forks this template first, and the template makes each blank loader a child of the supervisor
    (which waits for it and kills it as for a loader it forked itself) and passes its descriptors on. Where the
    kernel allows, the template clones the loader with CLONE_PARENT (:func:`_fork_sibling`); elsewhere it forks a
    middle process that forks the loader and exits, and the orphaned loader is adopted by its nearest subreaper,
    the supervisor. The clone saves that middle process (docs/runner.md has the figures). The template clones
    the checkers as well, so the supervisor, which keeps running, does not have its own pages copied on write
    after every fork; where cloning is refused, the supervisor forks its checkers itself (they never hold
    candidate code, so its memory is safe to copy)."""

    def __init__(self, workroot: str) -> None:
        self.sock, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.pid = os.fork()
        if self.pid == 0:
            try:
                self.sock.close()
                _template_main(theirs, workroot)
            finally:
                os._exit(70)
        theirs.close()
        self.cloning = _SYS_CLONE is not None

    def make_loader(self) -> _BlankLoader:
        """A new blank loader, a child of ours; OSError if the template is gone."""
        self.sock.send(b"L")
        message, fds, _flags, _addr = socket.recv_fds(self.sock, 1 << 16, 4)
        if not message or len(fds) != 4 or self.sock.recv(1) != b"k":  # "k": the middle process is reaped
            for fd in fds:
                os.close(fd)
            raise OSError("the loader template is gone")
        pid, workdir, uid = marshal.loads(message)
        ctl, out_r, err_r, job_w = fds
        return _BlankLoader.adopt(pid, workdir, uid, socket.socket(fileno=ctl), out_r, err_r, job_w)

    def make_checker(self) -> _BlankChecker:
        """A new blank checker, a child of ours, cloned by the template: forked here instead, the supervisor's
        own pages would be copied on write after every fork as it goes on running. Where the template cannot
        clone, the supervisor forks it itself."""
        if self.cloning:
            try:
                self.sock.send(b"C")
                message, fds, _flags, _addr = socket.recv_fds(self.sock, 64, 1)
            except OSError:
                message, fds = b"", []
            if message and len(fds) == 1:
                return _BlankChecker.adopt(marshal.loads(message), socket.socket(fileno=fds[0]))
            for fd in fds:
                os.close(fd)
            self.cloning = False
        return _BlankChecker()


def _template_main(sock: socket.socket, workroot: str) -> None:
    _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    sibling = _SYS_CLONE is not None
    while True:
        order = sock.recv(1)
        if order == b"C":  # a checker; "-": cloning does not work here, and the supervisor forks its own
            checker = None
            if sibling:
                try:
                    checker = _BlankChecker(fork=_fork_sibling)
                except OSError:
                    sibling = False
            if checker is None:
                sock.send(b"-")
            else:
                socket.send_fds(sock, [marshal.dumps(checker.pid)], [checker.ctl.fileno()])
                checker.ctl.close()
            continue
        if order != b"L":
            break
        if sibling:
            try:
                loader = _BlankLoader(workroot, fork=_fork_sibling)
            except OSError:  # refused here (a seccomp profile, an old kernel): fork a middle process from now on
                sibling = False
            else:
                loader.hand_over(sock)
                loader.close_our_copies()
                sock.send(b"k")
                continue
        middle = os.fork()
        if middle == 0:
            try:
                _BlankLoader(workroot).hand_over(sock)
            finally:
                os._exit(0)
        os.waitpid(middle, 0)
        sock.send(b"k")
    os._exit(0)


def _remove_workdir(path: str, uid: int | None = None) -> None:
    try:
        os.rmdir(path)  # the usual case: the program wrote nothing
    except FileNotFoundError:
        pass
    except OSError:
        if uid is None:
            shutil.rmtree(path, ignore_errors=True)
            return
        # Private to the program's uid: only that user may empty it (we hold no CAP_DAC_OVERRIDE).
        pid = os.fork()
        if pid == 0:
            try:
                _become(uid)
                shutil.rmtree(path, ignore_errors=True)
            finally:
                os._exit(0)
        os.waitpid(pid, 0)
        try:
            os.rmdir(path)
        except OSError:
            pass


class _Poller:
    """A supervisor's wait on its few descriptors, on epoll directly: ``select`` gives (fd, tag) for each one
    ready (or hung up). What selectors adds on top (a key object per descriptor, file-object lookups) was a third
    of a supervisor's CPU for a program."""

    def __init__(self) -> None:
        self._epoll = select.epoll()
        self._tags: dict[int, str] = {}

    def register(self, fd: int, tag: str, write: bool = False) -> None:
        self._epoll.register(fd, select.EPOLLOUT if write else select.EPOLLIN)
        self._tags[fd] = tag

    def unregister(self, fd: int) -> None:
        self._epoll.unregister(fd)
        del self._tags[fd]

    def select(self, timeout: float) -> list[tuple[int, str]]:
        tags = self._tags
        return [(fd, tags[fd]) for fd, _events in self._epoll.poll(max(timeout, 0.0)) if fd in tags]

    def close(self) -> None:
        self._epoll.close()


class _Supervisor:
    """Runs one program's tests. ``checker`` is a blank checker made ahead, ``steady`` the steady checker an
    earlier program of this supervisor process left (see _pure_test; with --switch-uids only), which goes on
    serving pure tests; ``self.steady`` is the one left for the next program, and ``self.took_blank`` says whether
    a test of this program that is not pure took a blank checker of its own (so that one is made ahead for the
    next program)."""

    def __init__(self, job: dict, job_r: int, res_w: int, loader: _BlankLoader,
                 checker: _BlankChecker | None = None, make_checker: Callable[[], _BlankChecker] = _BlankChecker,
                 steady: _BlankChecker | None = None) -> None:
        self.job, self.job_r, self.res_w = job, job_r, res_w
        self.checker, self.make_checker, self.steady = checker, make_checker, steady
        self.took_blank = False
        self.prepared: dict[int, tuple[tuple | None, bool]] = {}
        self.limits = job["limits"]
        self.loader = loader
        self.workdir = loader.workdir
        self.ctl = loader.ctl
        self.null = os.open(os.devnull, os.O_RDONLY)
        self.loader_pid = loader.pid
        self.loader_alive = True
        if self.checker is not None and not self._asserts_after(-1):
            self.checker.discard()  # not for this program: a steady checker serves its tests, or it has none
            self.checker = None

    def run(self) -> None:
        try:
            load = self._load()
            _send_frame(self.res_w, ("load",) + load)
            if load[0] == "ok":
                count = len(load[5]) if self.job["mode"] == "test_file" else len(self.job["tests"])
                for index in range(count):
                    _send_frame(self.res_w, ("test", index, self._run_test(index, last=index == count - 1)))
                    # The next assert test's checker is made now, while the judge reads this result.
                    if self.checker is None and self._asserts_after(index) and self.loader_alive:
                        self.checker = self.make_checker()
                    if self.job["fail_fast"] and os.read(self.job_r, 1) != b"c":
                        break
            # Every result is out: the judge may answer now. The clean-up below still ends before this supervisor
            # reads its next job, and if the runner exits first, the zygote kills what is left (it waits for us).
            _send_frame(self.res_w, ("end",))
        finally:
            if self.checker is not None:
                self.checker.discard()
            _kill_children(spare=(self.steady.pid,) if self.steady is not None else ())
            os.close(self.null)
            self.ctl.close()
            _remove_workdir(self.workdir, self.loader.uid)

    def take_checker(self) -> _BlankChecker:
        checker, self.checker = self.checker or self.make_checker(), None
        return checker

    def spare_checker(self) -> tuple[int, ...]:
        return tuple(c.pid for c in (self.checker, self.steady) if c is not None)

    def _prepare(self, index: int) -> tuple[tuple | None, bool]:
        """Test ``index``'s code objects (or None) and whether a steady checker may run it."""
        if index not in self.prepared:
            self.prepared[index] = _compile_test(self.job["tests"][index], judge_purity=_SWITCH_UIDS and STEADY_CHECKERS)
        return self.prepared[index]

    def _asserts_after(self, index: int) -> bool:
        """Whether a test after ``index`` needs a blank checker: an assert test that is not pure, or a pure one
        while there is no steady checker yet (the blank one becomes it)."""
        if not _needs_checker((self.job["tests"] or [])[index + 1 :]):
            return False
        for later in range(index + 1, len(self.job["tests"])):
            if self.job["tests"][later]["kind"] == "assert":
                if self.steady is None or not self._prepare(later)[1]:
                    return True
        return False

    def _start_steady(self, test: dict, token: bytes, fds: tuple[int, int, int, int],
                      compiled: tuple | None) -> _BlankChecker:
        """The steady checker, handed a pure test: the one left by earlier tests if it is still there, else a
        blank one, which stays on as the steady checker. If even that one is gone, the test finds no report and
        the checker is dropped after it, as a fresh checker would be."""
        for attempt in range(2):
            checker = self.steady
            if checker is None or checker.served >= STEADY_CHECKER_TESTS:
                self._drop_steady()
                checker = self.take_checker()
            self.steady = checker
            checker.served += 1
            if checker.start(test, self.limits, token, fds, self.workdir, compiled, steady=True) or attempt:
                break
            self._drop_steady()  # gone (killed with a test's leftovers, say): a blank one takes its place
        return cast(_BlankChecker, checker)

    def _drop_steady(self) -> None:
        """Kill the steady checker (in the middle of a test or not) and forget it."""
        if self.steady is not None:
            steady, self.steady = self.steady, None
            steady.ctl.close()
            _sigkill(steady.pid)
            try:
                os.waitpid(steady.pid, 0)
            except ChildProcessError:
                pass

    @staticmethod
    def _steady_status(pid: int) -> int | None:
        """The wait status of a steady checker that died in its test (left unreaped, so that its pid cannot be
        reused before _drop_steady kills it), or None. Its report pipe's end came first: a dying process closes
        its descriptors before it can be waited for, so this waits for the exit, briefly."""
        deadline = time.monotonic() + DRAIN_SECONDS
        while True:
            try:
                found = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            except ChildProcessError:
                return None
            if found is not None:
                if found.si_code == os.CLD_EXITED:
                    return (found.si_status & 0xFF) << 8
                return found.si_status | (0x80 if found.si_code == os.CLD_DUMPED else 0)
            if time.monotonic() > deadline:
                return None
            time.sleep(0.001)

    # --- loading -------------------------------------------------------------------------------------------
    def _load(self) -> tuple:
        """("ok"|"error"|"timeout"|"output"|"died", info, stdout, stderr, truncated, names, duration_ms)."""
        out_r, err_r = self.loader.out_r, self.loader.err_r
        start = time.monotonic()
        sent = self.loader.send_job(self.job)
        if sent and self.checker is None and self._asserts_after(-1):
            self.checker = self.make_checker()  # made while the loader loads the program, not after
        self.load_out = _Capture(self.limits["output_bytes"])
        message: tuple[Any, ...] | None = None if sent else ("died",)
        over = False
        sel = _Poller()
        try:
            sel.register(out_r, "out")
            sel.register(err_r, "err")
            sel.register(self.ctl.fileno(), "ctl")
            deadline = start + self.limits["time_s"]
            while message is None and not over:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                for fd, tag in sel.select(left):
                    if tag == "ctl":
                        data = self.ctl.recv(1 << 20)
                        message = marshal.loads(data) if data else ("died",)
                    elif not self.load_out.read(fd, tag):
                        sel.unregister(fd)
                    over = self.load_out.over
        finally:
            sel.close()
        # The loader flushed before it reported: take what is already in the pipes.
        self.load_out.drain([out_r, err_r], 0.05 if message and message[0] == "loaded" else DRAIN_SECONDS)
        os.close(out_r)
        os.close(err_r)
        duration = (time.monotonic() - start) * 1000
        if message is None or over or message[0] != "loaded":
            self._stop_loader()
        out, err, truncated = self.load_out.text()
        if over or self.load_out.over:
            return ("output", None, out, err, True, [], duration)
        if message is None:
            return ("timeout", None, out, err, truncated, [], duration)
        if message[0] == "died":
            return ("died", None, out, err, truncated, [], duration)
        if message[0] == "load_error":
            return ("error", tuple(message[1:]), out, err, truncated, [], duration)
        return ("ok", None, out, err, truncated, [str(n)[:200] for n in message[1]][:1000], duration)

    def _stop_loader(self) -> None:
        if self.loader_alive:
            self.loader_alive = False
            _kill_children(spare=self.spare_checker())

    # --- one test ------------------------------------------------------------------------------------------
    def _run_test(self, index: int, last: bool = False) -> dict:
        """One test's raw outcome. The program's ``last`` test may run in the loader itself (no fork): the
        loader says so, and its exit, seen through a pidfd, ends the test."""
        outcome: dict[str, Any] = {"status": None, "killed": None, "report": None, "maxrss": None}
        if not self.loader_alive:
            outcome["killed"] = "loader"
            outcome.update(stdout="", stderr="", truncated=False, duration_ms=0.0)
            return outcome
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        res_r, res_w = os.pipe()
        spec = self.job["tests"][index] if self.job["mode"] != "test_file" else None
        # An assert test is judged by a checker process of its own; the candidate's side gets a socket to it
        # where a report channel would be, and never holds the report pipe.
        checked = spec is not None and spec["kind"] == "assert"
        compiled, steady = self._prepare(index) if checked else (None, False)
        chk_sock, cand_sock = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM) if checked else (None, None)
        stdin_data = b""
        if spec is not None and spec["kind"] == "stdio":
            stdin_data = spec["stdin"].encode("utf-8")
        in_w: int | None = None
        if stdin_data:
            in_r, in_w = os.pipe()
            os.set_blocking(in_w, False)
        else:
            in_r = self.null
        token = os.urandom(16)
        capture = _Capture(self.limits["output_bytes"], self.load_out)
        report = bytearray()
        reported_pid = None
        in_place: int | None = None  # the loader's pidfd once it runs the test itself
        start = time.monotonic()
        try:
            self.ctl.sendmsg(
                # An assert test's token goes to its checker only: the candidate's side never reports.
                [marshal.dumps(("last" if last and _HAVE_PIDFD else "run", index, b"" if checked else token))],
                [(socket.SOL_SOCKET, socket.SCM_RIGHTS, memoryview(bytes().join(
                    fd.to_bytes(4, sys.byteorder) for fd in (out_w, err_w, cand_sock.fileno() if cand_sock else res_w,
                                                             in_r))))],
            )
        except OSError:
            self.loader_alive = False
        checker_pid = None
        if chk_sock is not None and cand_sock is not None:
            if self.loader_alive:
                fds = (chk_sock.fileno(), res_w, out_w, err_w)
                if steady:
                    checker = self._start_steady(cast(dict, spec), token, fds, compiled)
                else:
                    checker, self.took_blank = self.take_checker(), True
                    if not checker.start(cast(dict, spec), self.limits, token, fds, self.workdir, compiled):
                        checker = self.make_checker()  # the one made ahead was killed with a test's leftovers
                        checker.start(cast(dict, spec), self.limits, token, fds, self.workdir, compiled)
                checker_pid = checker.pid
            chk_sock.close()
            cand_sock.close()
        for fd in (out_w, err_w, res_w) + ((in_r,) if in_w is not None else ()):
            os.close(fd)
        # With a checker, a test ends when both the candidate's side and the checker have exited.
        status_known, checker_done = False, checker_pid is None
        checker_fd = None
        if checker_pid is not None and _HAVE_PIDFD and not steady:  # a steady one ends its test by closing "res"
            checker_fd = os.pidfd_open(checker_pid)
        deadline = start + self.limits["time_s"]
        sel = _Poller()
        sel.register(out_r, "out")
        sel.register(err_r, "err")
        sel.register(res_r, "res")
        if self.loader_alive:
            sel.register(self.ctl.fileno(), "ctl")
        if in_w is not None:
            sel.register(in_w, "in", write=True)
        if checker_fd is not None:
            sel.register(checker_fd, "checker")
        checker_status = None
        pending = memoryview(stdin_data)
        finished = not self.loader_alive
        while not finished:
            left = deadline - time.monotonic()
            if left <= 0:
                outcome["killed"] = "timeout"
                break
            for fd, tag in sel.select(left):
                if tag == "ctl":
                    data = self.ctl.recv(4096)
                    if not data:
                        self.loader_alive = False
                        sel.unregister(self.ctl.fileno())
                        finished = True
                        outcome["killed"] = outcome["killed"] or "loader"
                        continue
                    message = marshal.loads(data)
                    if message[0] == "pid":
                        reported_pid = message[1]  # checked only if we have to kill it
                    elif message[0] == "in_place" and last and in_place is None:
                        sel.unregister(self.ctl.fileno())  # the test closes the loader's end: that is no death
                        in_place = os.pidfd_open(self.loader_pid)
                        sel.register(in_place, "exited")
                    elif message[0] == "exit":
                        outcome["status"], outcome["maxrss"] = message[1], message[2]
                        status_known = True
                        finished = checker_done
                elif tag == "exited":
                    _pid, status, usage = os.wait4(self.loader_pid, 0)
                    outcome["status"], outcome["maxrss"] = status, usage.ru_maxrss
                    self.loader_alive = False
                    sel.unregister(fd)
                    status_known = True
                    finished = checker_done
                elif tag == "checker":
                    _pid, checker_status, _usage = os.wait4(cast(int, checker_pid), 0)
                    sel.unregister(fd)
                    checker_done = True
                    finished = finished or status_known
                elif tag == "in":
                    try:
                        pending = pending[os.write(fd, pending[: 1 << 16]) :]
                    except (BrokenPipeError, OSError):
                        pending = pending[:0]
                    if not pending:
                        sel.unregister(fd)
                        os.close(fd)
                        in_w = None
                elif tag == "res":
                    data = os.read(res_r, 1 << 20)
                    if not data:
                        sel.unregister(res_r)
                        if checker_pid is not None and checker_fd is None:  # no pidfd: its exit closed the pipe
                            checker_done = True
                            finished = finished or status_known
                    elif len(report) + len(data) > MAX_REPORT_BYTES:
                        outcome["killed"] = "report"
                        finished = True
                    else:
                        report += data
                elif not capture.read(fd, tag):
                    sel.unregister(fd)
                if capture.over:
                    outcome["killed"] = "output"
                    finished = True
        sel.close()
        duration = (time.monotonic() - start) * 1000
        if checker_fd is not None:
            os.close(checker_fd)
        if steady and checker_pid is not None:
            # It stays for the next pure test only after a test that ended as a test does: reported in full (a
            # failed assertion and the candidate's exceptions included), nothing killed, no memory error.
            parsed: tuple = ("missing",)
            if checker_done:  # its report pipe is at its end: nothing more to drain, the report is whole
                parsed = outcome["report"] = _parse_report(bytes(report), token)
            reported = parsed[0] in ("ok", "exc")
            if outcome["killed"] is not None or not reported or parsed[:2] == ("exc", "memory"):
                if checker_done and not reported:  # its report pipe ended without a report: it died in the test
                    checker_status = self._steady_status(checker_pid)
                self._drop_steady()
        # The test's own code runs in the checker: its death by a signal (os.abort() in a test) is the test's
        # outcome as long as the candidate's side exited cleanly.
        status = outcome["status"]
        if (checker_status is not None and status is not None and os.WIFEXITED(status)
                and os.WEXITSTATUS(status) == 0):
            outcome["status"] = checker_status
        if in_place is not None:
            os.close(in_place)
            if outcome["status"] is None:
                self._kill_loader_test(outcome)
        elif outcome["status"] is None:
            self._kill_test(None if reported_pid is None else self._own_test_pid(reported_pid), outcome)
        # Whatever the test left behind (daemons, setsid escapees) dies before the next test starts.
        _kill_children(spare=((self.loader_pid,) if self.loader_alive else ()) + self.spare_checker())
        capture.drain([out_r, err_r], DRAIN_SECONDS)
        report += _drain_fd(res_r, DRAIN_SECONDS, MAX_REPORT_BYTES - len(report))
        for fd in (out_r, err_r, res_r) + ((in_w,) if in_w is not None else ()):
            os.close(fd)
        cases = self.job["mode"] != "test_file" and self.job["tests"][index]["kind"] == "cases"
        if outcome["report"] is None:  # a steady checker's report is parsed already
            outcome["report"] = (_parse_cases_report if cases else _parse_report)(bytes(report), token)
        outcome["stdout"], outcome["stderr"], outcome["truncated"] = capture.text()
        outcome["duration_ms"] = round(duration, 3)
        return outcome

    def _own_test_pid(self, pid) -> int | None:
        """The loader says which pid runs the test; believe it only if that process is the loader's child,
        so a subverted loader cannot make us kill anything else."""
        if not isinstance(pid, int) or pid <= 1:
            return None
        return pid if _parent_of(pid) == self.loader_pid else None

    def _kill_loader_test(self, outcome: dict) -> None:
        """Kill a test running in the loader itself (and its process group); its status comes from the kernel."""
        _sigkill(self.loader_pid)
        _pid, status, usage = os.wait4(self.loader_pid, 0)
        outcome["status"], outcome["maxrss"] = status, usage.ru_maxrss
        self.loader_alive = False

    def _kill_test(self, child_pid: int | None, outcome: dict) -> None:
        """Kill a test that is still running, then take its exit status from the loader."""
        if child_pid is not None:
            _sigkill(child_pid)
        if not self.loader_alive:
            return
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            ready, _w, _x = select.select([self.ctl], [], [], deadline - time.monotonic())
            if not ready:
                break
            data = self.ctl.recv(4096)
            if not data:
                break
            message = marshal.loads(data)
            if message[0] == "pid" and child_pid is None:
                child_pid = self._own_test_pid(message[1])
                if child_pid is not None:
                    _sigkill(child_pid)
            elif message[0] == "exit":
                outcome["status"], outcome["maxrss"] = message[1], message[2]
                return
        # The loader did not account for its child: it cannot be trusted with another test.
        self.loader_alive = False
        _kill_children(spare=self.spare_checker())


class _Capture:
    """stdout and stderr of one test, capped together at ``limit`` bytes; over the cap is a verdict."""

    def __init__(self, limit: int, prefix: "_Capture | None" = None) -> None:
        self.limit = limit
        out, err = (prefix.parts["out"], prefix.parts["err"]) if prefix else (b"", b"")
        self.parts: dict[str, bytearray] = {"out": bytearray(out), "err": bytearray(err)}
        self.size = sum(len(p) for p in self.parts.values())
        self.over: bool = prefix.over if prefix else False

    def read(self, fd: int, name: str) -> bool:
        try:
            data = os.read(fd, 1 << 16)
        except OSError:
            return False
        if not data:
            return False
        room = self.limit - self.size
        if len(data) > room:
            self.over = True
            data = data[: max(room, 0)]
        self.parts[name] += data
        self.size += len(data)
        return True

    def drain(self, fds: list[int], seconds: float) -> None:
        open_fds = {fd: name for fd, name in zip(fds, ("out", "err"))}
        deadline = time.monotonic() + seconds
        while open_fds and not self.over:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            ready, _w, _x = select.select(list(open_fds), [], [], left)
            for fd in ready:
                if not self.read(fd, open_fds[fd]):
                    del open_fds[fd]

    def text(self) -> tuple[str, str, bool]:
        return (self.parts["out"].decode("utf-8", "replace"), self.parts["err"].decode("utf-8", "replace"),
                self.over)


def _drain_fd(fd: int, seconds: float, room: int) -> bytes:
    data = bytearray()
    deadline = time.monotonic() + seconds
    while len(data) <= room:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        ready, _w, _x = select.select([fd], [], [], left)
        if not ready:
            break
        chunk = os.read(fd, 1 << 20)
        if not chunk:
            break
        data += chunk
    return bytes(data[: max(room, 0)])


def _parse_report(data: bytes, token: bytes):
    """The child's one report, or a reason why there is none. Exactly one frame with our token counts."""
    if not data:
        return ("missing",)
    try:
        size = int.from_bytes(data[:4], "big")
        if len(data) != 4 + size:
            return ("corrupt", "the result channel held extra or partial data")
        body = marshal.loads(data[4:])
        if not isinstance(body, tuple) or len(body) < 2 or body[0] != token:
            return ("corrupt", "the result channel held a report the harness did not write")
        return body[1:]
    except Exception:  # noqa: BLE001 - anything unreadable is a forged or broken report
        return ("corrupt", "the result channel held unreadable data")


# ----------------------------------------------------------------------------------------------------------------
# The zygote: forks a supervisor for each worker slot the judge asks for.


def _zygote_main(sock: socket.socket, workroot: str) -> None:
    global _PRISTINE, _CHECKER_PATH, _PIPE_WRITERS
    _CHECKER_PATH = _checker_path()
    _PIPE_WRITERS = _pipe_writers()
    # Taken once here, before any supervisor or program exists, instead of in every loader: every loader is a copy
    # of this process and inherits the snapshot with the harness (building it cost each loader about 1 ms).
    _PRISTINE = _Snapshot()
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)
    os.close(null)
    _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    _prctl(PR_SET_CHILD_SUBREAPER, 1)
    supervisors: set[int] = set()
    while True:
        ready, _w, _x = select.select([sock], [], [], 0.5)
        _reap(supervisors)
        if not ready:
            continue
        try:
            data, ancillary, _flags, _addr = sock.recvmsg(4096, socket.CMSG_SPACE(2 * 4))
        except OSError:
            data = b""
        if not data:
            break
        fds = []
        for _level, _kind, raw in ancillary:
            fds += [int.from_bytes(raw[i : i + 4], sys.byteorder) for i in range(0, len(raw), 4)]
        job_r, res_w = fds
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                sock.close()
                _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
                _prctl(PR_SET_CHILD_SUBREAPER, 1)
                # A supervisor for several programs makes its loaders through a template forked now, before it
                # sees any (see _LoaderTemplate); one for a single program forks its one loader itself.
                many = b"+" in data
                template = _LoaderTemplate(workroot) if many else None
                global _KEPT_CHILDREN
                _KEPT_CHILDREN = (template.pid,) if template else ()
                make_loader = template.make_loader if template else (lambda: _BlankLoader(workroot))
                make_checker = template.make_checker if template else _BlankChecker
                loader, checker, steady = None, None, None
                served, wants_checker = 0, b"c" in data
                while many or not served:  # one program after another until the judge closes the job pipe
                    if loader is None and not select.select([job_r], [], [], 0)[0]:
                        loader = make_loader()  # made while we wait: the next program finds it ready
                    # Likewise a checker, once a program of ours needed a blank one (its tests were not pure, or
                    # there was no steady checker yet: the next program's are likely alike); otherwise a program
                    # that needs one forks it while its loader loads.
                    if checker is None and wants_checker and not select.select([job_r], [], [], 0)[0]:
                        checker = make_checker()
                    job = _recv_frame(job_r)
                    if job is None:  # the end of the batch (no loader was forked for nothing if it was known)
                        if checker is not None:
                            checker.discard()
                        if loader is not None:
                            loader.discard()
                        break
                    supervisor = _Supervisor(job, job_r, res_w, loader or make_loader(), checker, make_checker,
                                             steady)
                    supervisor.run()
                    # A blank one is made ahead where the next program's tests will likely need one: one that is
                    # not pure, or a pure one with no steady checker left to take it.
                    steady = supervisor.steady
                    wants_checker = supervisor.took_blank or (steady is None and _needs_checker(job["tests"]))
                    loader, checker, served = None, None, served + 1
            except BaseException:  # noqa: BLE001 - the judge sees a missing "end" and reports infra_error
                traceback.print_exc()
                code = 70
            finally:
                os._exit(code)
        supervisors.add(pid)
        os.close(job_r)
        os.close(res_w)
    # The judge has closed every job pipe: supervisors finish cleaning up after their last program (the judge
    # may already have answered) and exit; what is still alive after that grace dies here.
    _await_exits(supervisors, SUPERVISOR_EXIT_GRACE_S)
    _kill_children()


def _await_exits(pids: set[int], seconds: float) -> None:
    """Wait up to ``seconds`` for the children ``pids`` to exit (they are reaped later)."""
    handles = []
    for pid in pids:
        try:
            handles.append(os.pidfd_open(pid))
        except (OSError, AttributeError):  # gone already, or no pidfd on this kernel: the kill comes sooner
            pass
    deadline = time.monotonic() + seconds
    try:
        while handles:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            ready, _w, _x = select.select(handles, [], [], left)
            for fd in ready:
                handles.remove(fd)
                os.close(fd)
    finally:
        for fd in handles:
            os.close(fd)


def _reap(known: set[int]) -> None:
    """Reap finished supervisors; kill strays that re-parented to us after their supervisor died."""
    while True:
        try:
            pid, _status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            break
        known.discard(pid)
    strays = [pid for pid in _children() if pid not in known]
    for pid in strays:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


# ----------------------------------------------------------------------------------------------------------------
# The judge: turns raw outcomes into TestResult dicts. Pure functions.


def _same(got, want, tolerance) -> bool:
    if isinstance(got, tuple):
        got = list(got)
    if isinstance(got, list) and isinstance(want, list):
        return len(got) == len(want) and all(_same(g, w, tolerance) for g, w in zip(got, want))
    if isinstance(got, dict) and isinstance(want, dict):
        return got.keys() == want.keys() and all(_same(got[k], want[k], tolerance) for k in want)
    numbers = (int, float)
    if (tolerance is not None and isinstance(got, numbers) and isinstance(want, numbers)
            and not isinstance(got, bool) and not isinstance(want, bool)):
        return abs(got - want) <= tolerance or abs(got - want) <= tolerance * abs(want)
    if type(got) in (list, dict, set, frozenset, bytes, complex) or type(want) in (list, dict):
        return False
    return got == want


def _stdout_lines(text: str, normalize: bool) -> list[str]:
    if not normalize:
        return text.split("\n")
    lines = [line.rstrip() for line in text.split("\n")]
    while lines and not lines[-1]:
        lines.pop()
    return lines


def _stdout_diff(got: str, want: str, normalize: bool) -> str | None:
    got_lines, want_lines = _stdout_lines(got, normalize), _stdout_lines(want, normalize)
    if got_lines == want_lines:
        return None
    for number, (g, w) in enumerate(zip(got_lines, want_lines), start=1):
        if g != w:
            return f"stdout line {number}: expected {_clip(repr(w), 200)}, got {_clip(repr(g), 200)}"
    return f"stdout has {len(got_lines)} lines, expected {len(want_lines)}"


def _stdout_tokens_diff(got: str, want: str) -> str | None:
    """LiveCodeBench's comparison: both stripped, then line by line stripped; a line passes when equal or when
    its whitespace-separated tokens are equal decimal numbers."""
    from decimal import Decimal, InvalidOperation

    got_lines = [line.strip() for line in got.strip().split("\n")]
    want_lines = [line.strip() for line in want.strip().split("\n")]
    if len(got_lines) != len(want_lines):
        return f"stdout has {len(got_lines)} lines, expected {len(want_lines)}"
    for number, (g, w) in enumerate(zip(got_lines, want_lines), start=1):
        if g == w:
            continue
        try:
            if [Decimal(t) for t in g.split()] == [Decimal(t) for t in w.split()]:
                continue
        except (InvalidOperation, ValueError):
            pass
        return f"stdout line {number}: expected {_clip(repr(w), 200)}, got {_clip(repr(g), 200)}"
    return None


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _judge(test: dict | None, outcome: dict, limits: dict) -> dict:
    """One TestResult dict from a supervisor's raw outcome; ``test`` is the full spec (None for test_file)."""
    if test is not None and test["kind"] == "cases":
        return _judge_cases(test, outcome, limits)
    result = {"verdict": "error", "error_type": None, "message": None, "traceback": None, "line": None,
              "stdout": outcome.get("stdout", ""), "stderr": outcome.get("stderr", ""),
              "truncated": outcome.get("truncated", False), "duration_ms": outcome.get("duration_ms", 0.0),
              "peak_memory_kb": outcome.get("maxrss")}
    killed, status = outcome["killed"], outcome["status"]
    report: tuple[Any, ...] = outcome["report"] or ("missing",)
    if killed == "timeout":
        return {**result, "verdict": "timeout", "message": f"exceeded the time limit of {limits['time_s']} s"}
    if killed == "output":
        return {**result, "verdict": "output_limit",
                "message": f"printed more than the output limit of {limits['output_bytes']} bytes"}
    if killed == "report":
        return {**result, "message": "the test's result was larger than the runner accepts"}
    if killed == "loader":
        return {**result, "message": "the program's process died; its remaining tests cannot run"}
    signalled = status is not None and os.WIFSIGNALED(status)
    if signalled:
        number = os.WTERMSIG(status)
        if number == signal.SIGXCPU:
            return {**result, "verdict": "timeout", "message": f"exceeded the CPU time limit of {limits['time_s']} s"}
        if number == signal.SIGKILL or "MemoryError" in result["stderr"] or "Cannot allocate memory" in result["stderr"]:
            return {**result, "verdict": "memory", "error_type": "MemoryError",
                    "message": f"killed ({_signal_name(number)}) at the memory limit of {limits['memory_mb']} MiB"}
        return {**result, "verdict": "crash", "error_type": _signal_name(number),
                "message": f"killed by {_signal_name(number)}"}
    clean_exit = status is not None and os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    if report[0] == "missing" or not clean_exit:
        code = os.WEXITSTATUS(status) if status is not None and os.WIFEXITED(status) else None
        return {**result, "message": f"test exited before reporting a result (exit status {code})"}
    if report[0] == "corrupt":
        return {**result, "message": report[1]}
    if report[0] == "exc" and len(report) == 6:
        category, error_type, message, text, line = report[1:]
        verdict = {"fail": "fail", "memory": "memory", "skip": "skipped"}.get(category, "error")
        if category == "memory" and not message:
            message = f"ran out of memory under the limit of {limits['memory_mb']} MiB"
        if category == "exit":
            message = f"test exited (SystemExit {message or 'None'}) before reporting a result"
        return {**result, "verdict": verdict, "error_type": error_type, "message": message, "traceback": text,
                "line": line}
    if report[0] == "opaque" and len(report) == 3:
        return {**result, "verdict": "fail", "error_type": None,
                "message": f"returned a {report[1]} ({report[2]}), which cannot equal a JSON value"}
    if report[0] != "ok" or len(report) != 2:
        return {**result, "message": "the result channel held a malformed report"}
    if test is not None and test["kind"] == "call":
        got = marshal.loads(report[1])
        if _same(got, test.get("expected"), test.get("tolerance")):
            return {**result, "verdict": "pass"}
        return {**result, "verdict": "fail",
                "message": f"expected {_clip(repr(test.get('expected')), 300)}, got {_clip(repr(got), 300)}"}
    if test is not None and test["kind"] == "stdio":
        if test.get("compare") == "tokens":
            diff = _stdout_tokens_diff(result["stdout"], test["expected_stdout"])
        else:
            diff = _stdout_diff(result["stdout"], test["expected_stdout"], test.get("normalize_whitespace", True))
        if diff:
            return {**result, "verdict": "fail", "message": diff}
    return {**result, "verdict": "pass"}


def _program_failure(load: tuple, limits: dict) -> dict:
    """The verdict every test gets when the program itself did not load."""
    kind, info, out, err, truncated, _names, duration = load
    duration = round(duration, 3)
    base = {"program_error": True, "stdout": out, "stderr": err, "truncated": truncated, "duration_ms": duration,
            "error_type": None, "message": None, "traceback": None, "line": None}
    stopped = {
        "timeout": ("timeout", f"the program did not finish loading in {limits['time_s']} s"),
        "output": ("output_limit", f"the program printed more than {limits['output_bytes']} bytes while loading"),
        "died": ("error", "the program exited while loading"),
    }
    if kind in stopped:
        verdict, message = stopped[kind]
        return {**base, "verdict": verdict, "message": message}
    category, error_type, message, text, line = info
    verdict = "memory" if category == "memory" else "error"
    if category == "exit":
        message = f"the program called exit ({message or 'None'}) while loading"
    return {**base, "verdict": verdict, "error_type": error_type, "message": message, "traceback": text, "line": line}


def _finish(results: list[dict], started: float) -> dict:
    counts: dict[str, int] = {}
    for test in results:
        counts[test["verdict"]] = counts.get(test["verdict"], 0) + 1
    return {"status": "completed", "retryable": False, "infra_message": None,
            "passed": bool(results) and all(t["verdict"] == "pass" for t in results), "counts": counts,
            "tests": results, "duration_ms": round((time.monotonic() - started) * 1000, 3)}


def _infra(message: str, retryable: bool) -> dict:
    return {"status": "infra_error", "retryable": retryable, "infra_message": message, "passed": False,
            "counts": {}, "tests": [], "duration_ms": 0.0}


# ----------------------------------------------------------------------------------------------------------------
# The `cases` test kind: many inputs of one function in one test child, in order, each under its own interval
# timer, stopping at the first exception or timeout. Only the arguments reach the child; each return value
# goes back as its own frame on the result channel (so a test killed halfway still says which input it was
# on) and is compared with its expected value here, in the judge, as `call` tests are.

_LITERAL_NAMES = {"nan": float("nan"), "inf": float("inf")}  # repr's spellings with no literal syntax


def read_literal(text: str):
    """A Python literal via ``ast.literal_eval`` plus ``nan``/``inf``: the ``repr`` of plain data (numbers of any
    size, str, bytes, tuples, lists, dicts, sets, bool, None, complex, NaN, infinities) reads back to an equal value
    of the same type, which JSON cannot do. Raises ValueError. sandbox/literals.py holds the same code for callers."""
    import ast

    try:
        tree = ast.parse(text.strip(), mode="eval")
    except (SyntaxError, ValueError, MemoryError, RecursionError) as exc:
        raise ValueError(f"not a Python literal: {exc}") from None
    for node in ast.walk(tree):
        for name, child in ast.iter_fields(node):
            if isinstance(child, ast.Name) and child.id in _LITERAL_NAMES:
                setattr(node, name, ast.Constant(_LITERAL_NAMES[child.id]))
            elif isinstance(child, list):
                child[:] = [ast.Constant(_LITERAL_NAMES[c.id]) if isinstance(c, ast.Name) and c.id in _LITERAL_NAMES
                            else c for c in child]
    try:
        return ast.literal_eval(tree)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError) as exc:
        raise ValueError(f"not a Python literal: {exc}") from None


class _CaseTimeout(BaseException):
    """Raised by the interval timer inside a case that ran past its own ``time_s``."""


def _on_case_alarm(_signum, _frame) -> None:
    raise _CaseTimeout()


_setitimer, _monotonic = signal.setitimer, time.monotonic  # taken before any candidate code can replace them


def _prepare_cases(test: dict) -> dict:
    """The executing side's view of a `cases` test: the entry point, each case's arguments and time limit."""
    args, limits = [], []
    for number, case in enumerate(test["cases"]):
        value = read_literal(str(case["args"]))
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"cases[{number}].args is not a list or tuple of arguments")
        args.append(tuple(value))
        limits.append(float(case["time_s"]) if case.get("time_s") else 0.0)
    if not args:
        raise ValueError("a `cases` test needs at least one case")
    # Under `returns` and `not_none` a value that is not plain data can pass, so the child goes on after one.
    go_on = test.get("compare") in ("returns", "not_none")
    return {"kind": "cases", "entry_point": str(test["entry_point"]), "args": args, "time_s": limits,
            "opaque_goes_on": go_on, "on_instance": bool(test.get("on_instance"))}


def _run_cases(test: dict, module, token: bytes, result_fd: int, primitives) -> None:
    """In the test child: call the entry point on each case, one result frame per case, until one raises or
    runs out of time. Frames are written with the primitives captured before the candidate loaded."""
    (_exit, _write, _close, _dup2, _setsid, _dumps, _exec, _compile, _open, _getattr,
     _isinstance, _len, _BaseException, _SystemExit, _describe_, _ctl_fd, _io, _writers) = primitives
    target = module
    parts = test["entry_point"].split(".")
    if test["on_instance"] and len(parts) == 2:
        owner = vars(module).get(parts[0])
        target = _getattr(owner(), parts[1]) if _isinstance(owner, type) else _getattr(module, parts[1])
    else:
        for part in parts:
            target = _getattr(target, part)

    def emit(*payload) -> None:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except _BaseException:
                pass
        body = _dumps((token,) + payload)
        view = memoryview(_len(body).to_bytes(4, "big") + body)
        while view:
            view = view[_write(result_fd, view) :]

    signal.signal(signal.SIGALRM, _on_case_alarm)
    for index, args in enumerate(test["args"]):
        limit = test["time_s"][index]
        start = _monotonic()
        try:
            if limit:
                _setitimer(signal.ITIMER_REAL, limit)
            value = target(*args)
            if limit:
                _setitimer(signal.ITIMER_REAL, 0)
        except _CaseTimeout:
            emit("case", index, "timeout", _monotonic() - start)
            return
        except _BaseException as exc:  # noqa: BLE001 - the case's failure, SystemExit included
            _setitimer(signal.ITIMER_REAL, 0)
            elapsed = _monotonic() - start
            try:
                info = _describe_(exc, (CANDIDATE,), (CANDIDATE,))
            except _BaseException:
                info = ("error", "Exception", "", "", None)
            emit("case", index, "exc", elapsed, *info)
            return
        elapsed = _monotonic() - start
        try:
            encoded = _dumps(value)
        except _BaseException:  # not plain data: it cannot equal a literal
            try:
                shown = _clip(repr(value), 300)
            except _BaseException:
                shown = "<unprintable>"
            emit("case", index, "opaque", elapsed, type(value).__name__, shown)
            if not test["opaque_goes_on"]:
                return
            continue
        emit("case", index, "ok", elapsed, encoded)


def _parse_cases_report(data: bytes, token: bytes):
    """("cases", [per-case frames], final report or None) from a `cases` child's frames, or a reason why not."""
    frames: list[tuple] = []
    final, offset = None, 0
    try:
        while offset < len(data):
            size = int.from_bytes(data[offset : offset + 4], "big")
            if offset + 4 + size > len(data) or final is not None:
                return ("corrupt", "the result channel held extra or partial data")
            body = marshal.loads(data[offset + 4 : offset + 4 + size])
            offset += 4 + size
            if not isinstance(body, tuple) or len(body) < 2 or body[0] != token:
                return ("corrupt", "the result channel held a report the harness did not write")
            if body[1] == "case":
                if len(body) < 5 or body[2] != len(frames):
                    return ("corrupt", "the result channel held cases out of order")
                frames.append(body[3:])
            else:
                final = body[1:]
    except Exception:  # noqa: BLE001 - anything unreadable is a forged or broken report
        return ("corrupt", "the result channel held unreadable data")
    return ("cases", frames, final)


def _close_enough(got, want, tolerance: float, relative: float) -> bool:
    """numpy.allclose's rule, |got - want| <= tolerance + relative * |want|, elementwise over lists/tuples."""
    if isinstance(want, (list, tuple)):
        return (isinstance(got, (list, tuple)) and len(got) == len(want)
                and all(_close_enough(g, w, tolerance, relative) for g, w in zip(got, want)))
    numbers = (int, float, complex)
    if not isinstance(got, numbers) or not isinstance(want, numbers):
        return False
    if got == want:
        return True
    difference = abs(got - want)
    return difference == difference and difference <= tolerance + relative * abs(want)  # NaN is never close


def _case_passes(test: dict, case: dict, got) -> bool:
    """Whether one case's return value passes under the test's ``compare`` rule (see sandbox.models.CasesTest)."""
    compare, tolerance = test.get("compare") or "equal", case.get("tolerance")
    if compare == "returns":
        return True
    if compare == "polynomial_root":
        try:
            coefficients = read_literal(str(case["args"]))[0]
            value = sum(c * math.pow(got, power) for power, c in enumerate(coefficients))
            return abs(value) <= (tolerance or 0.0)
        except Exception:  # noqa: BLE001 - a value that cannot be a root fails
            return False
    for text in [case.get("expected", "None"), *(case.get("alternatives") or [])]:
        if _matches(compare, got, read_literal(str(text)), tolerance, float(test.get("rel_tolerance") or 0.0)):
            return True
    return False


def _matches(compare: str, got, want, tolerance, relative: float) -> bool:
    try:
        if compare == "set":
            exact = set(got) == set(want)
        elif compare == "tuple_is_list":
            exact = bool((list(got) if isinstance(got, tuple) else got) == want)
        elif compare == "not_none":
            exact = got == want if isinstance(got, bool) else want == (got is not None)
        else:
            exact = bool(got == want)
    except Exception:  # noqa: BLE001 - unhashable or incomparable values are not equal
        exact = False
    if exact or not tolerance:
        return exact
    if type(got) is not type(want):
        return False
    return _close_enough(got, want, float(tolerance), relative)


def _opaque_passes(test: dict, case: dict) -> bool:
    """A value that is not plain data (a regex match, an object) is still a value: ``returns`` takes it, and
    ``not_none`` takes it where a non-None value is expected."""
    compare = test.get("compare") or "equal"
    if compare == "returns":
        return True
    if compare != "not_none":
        return False
    wanted = [read_literal(str(t)) for t in [case.get("expected", "None"), *(case.get("alternatives") or [])]]
    return any(w is True for w in wanted)


def _judge_cases(test: dict, outcome: dict, limits: dict) -> dict:
    """A `cases` test's verdict: the first case that did not pass, in order, or pass when every case did."""
    report: tuple[Any, ...] = outcome["report"] or ("missing",)
    frames, final = (report[1], report[2]) if report[0] == "cases" else ([], report)
    cases = test["cases"]
    base = {"stdout": outcome.get("stdout", ""), "stderr": outcome.get("stderr", ""),
            "truncated": outcome.get("truncated", False), "duration_ms": outcome.get("duration_ms", 0.0),
            "peak_memory_kb": outcome.get("maxrss"), "error_type": None, "traceback": None, "line": None}

    def called(index: int) -> str:
        return f"case {index} of {len(cases)}: {test['entry_point']}{_clip(str(cases[index]['args']), 300)}"

    for index, frame in enumerate(frames[: len(cases)]):
        status, elapsed = frame[0], frame[1]
        limit = cases[index].get("time_s")
        if status == "timeout" or (limit and isinstance(elapsed, float) and elapsed > limit):
            return {**base, "verdict": "timeout", "case": index,
                    "message": f"{called(index)} exceeded its time limit of {limit} s"}
        if status == "exc" and len(frame) == 7:
            category, error_type, message, text, line = frame[2:]
            verdict = {"fail": "fail", "memory": "memory"}.get(category, "error")
            return {**base, "verdict": verdict, "case": index, "error_type": error_type, "traceback": text,
                    "line": line, "message": f"{called(index)} raised {error_type}: {message}"}
        if status == "opaque" and len(frame) == 4 and not _opaque_passes(test, cases[index]):
            return {**base, "verdict": "fail", "case": index,
                    "message": f"{called(index)} returned a {frame[2]} ({frame[3]}), which cannot equal a literal"}
        if status == "opaque":
            continue
        if status != "ok" or len(frame) != 3:
            return {**base, "verdict": "error", "case": index, "message": "the result channel held a malformed case"}
        got = marshal.loads(frame[2])
        if not _case_passes(test, cases[index], got):
            expected = "a root" if test.get("compare") == "polynomial_root" else _clip(
                str(cases[index].get("expected", "None")), 300)
            return {**base, "verdict": "fail", "case": index,
                    "message": f"{called(index)} returned {_clip(repr(got), 300)}, expected {expected}"}
    # Every reported case passed: the test's own end (a kill, a crash, a clean exit) decides the rest.
    ended = _judge(None, {**outcome, "report": final}, limits)
    if ended["verdict"] == "pass" and len(frames) < len(cases):
        ended = {**ended, "verdict": "error", "message": f"the test ended after {len(frames)} of {len(cases)} cases"}
    if ended["verdict"] != "pass":
        running = min(len(frames), len(cases) - 1)
        ended = {**ended, "case": running, "message": f"{called(running)}: {ended['message']}"}
    return ended


# ----------------------------------------------------------------------------------------------------------------
# The judge process: dispatches programs to the zygote, at most ``workers`` at a time.


def _prepare_job(run: dict) -> dict:
    """What the executing side may see: everything but expected values. Raises ValueError on a malformed run."""
    if not isinstance(run, dict) or not isinstance(run.get("code"), str):
        raise ValueError("`code` must be a string")
    limits = {**DEFAULT_LIMITS, **(run.get("limits") or {})}
    tests, test_file = run.get("tests"), run.get("test_file")
    if (tests is None) == (test_file is None):
        raise ValueError("give exactly one of `tests` or `test_file`")
    job = {"code": run["code"], "limits": limits, "fail_fast": bool(run.get("fail_fast")), "test_file": test_file,
           "tests": None, "mode": "test_file"}
    if tests is not None:
        if not isinstance(tests, list) or not tests:
            raise ValueError("`tests` must be a non-empty list")
        safe = []
        for test in tests:
            kind = test.get("kind", "assert")
            if kind == "assert":
                safe.append({"kind": kind, "code": str(test["code"]), "setup": str(test.get("setup") or "")})
            elif kind == "call":
                safe.append({"kind": kind, "entry_point": str(test["entry_point"]),
                             "args": list(test.get("args") or []), "kwargs": dict(test.get("kwargs") or {})})
            elif kind == "stdio":
                safe.append({"kind": kind, "stdin": str(test.get("stdin") or "")})
            elif kind == "cases":
                safe.append(_prepare_cases(test))
            else:
                raise ValueError(f"unknown test kind {kind!r}")
        job["tests"] = safe
        job["mode"] = "module" if any(t["kind"] != "stdio" for t in safe) else "script"
    return job


class _Program:
    """One program in flight: the frames its supervisor sent back, judged as they arrive."""

    def __init__(self, index: int, run: dict, job: dict) -> None:
        self.index, self.run, self.job = index, run, job
        self.load: tuple[Any, ...] = ()  # the supervisor's "load" frame, once it came
        self.results: list[dict] = []
        self.started = time.monotonic()
        self.done = False

    def handle(self, frame: tuple) -> bytes:
        """Judge one frame; returns what to answer the supervisor (fail_fast's continue/stop byte) or b""."""
        limits = self.job["limits"]
        if frame[0] == "load":
            self.load = frame[1:]
            if self.load[0] != "ok":
                failure = _program_failure(self.load, limits)
                ids = _test_ids(self.run) or [TEST_FILE_ID]
                self.results = [{"id": test_id, **failure} for test_id in ids]
        elif frame[0] == "test":
            index, outcome = frame[1], frame[2]
            tests = self.run.get("tests")
            spec = tests[index] if tests is not None else None
            test_id = _test_ids(self.run)[index] if tests is not None else self.load[5][index]
            verdict = {"id": test_id, "program_error": False, **_judge(spec, outcome, limits)}
            self.results.append(verdict)
            if self.job["fail_fast"]:
                return b"s" if verdict["verdict"] != "pass" else b"c"
        elif frame[0] == "end":
            self.done = True
        return b""

    def result(self) -> dict:
        if not self.done:
            return _infra("the runner's supervisor for this program died unexpectedly", retryable=True)
        ids = _test_ids(self.run) if self.run.get("tests") is not None else (self.load[5] if self.load else [])
        results = list(self.results)
        if self.load and self.load[0] == "ok":
            if not ids:
                results = [{"id": TEST_FILE_ID, "verdict": "error", "program_error": False,
                            "message": "the test file defines no test_* functions or unittest.TestCase tests"}]
            for test_id in ids[len(results):]:
                results.append({"id": test_id, "verdict": "skipped", "program_error": False,
                                "message": "skipped after an earlier test did not pass (fail_fast)"})
        return _finish(results, self.started)


class _Worker:
    """A supervisor process and its two pipes; it runs one program at a time. With ``many`` it may run several
    (and pays for a loader template, _LoaderTemplate); without, exactly one, then it exits."""

    def __init__(self, zygote: socket.socket, many: bool = True, checker: bool = False) -> None:
        self.many = many
        job_r, self.job_w = os.pipe()
        self.res_r, res_w = os.pipe()
        # "+": it may serve several programs; "c": fork a checker ahead (its first program likely has assert tests)
        order = b"supervisor" + (b"+" if many else b"") + (b"c" if checker else b"")
        try:
            zygote.sendmsg([order], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, memoryview(
                job_r.to_bytes(4, sys.byteorder) + res_w.to_bytes(4, sys.byteorder)))])
        except OSError:  # the zygote is gone (a program killed it): the caller reports, we leak nothing
            os.close(self.job_w)
            os.close(self.res_r)
            raise
        finally:
            os.close(job_r)
            os.close(res_w)
        os.set_blocking(self.job_w, False)
        self.pending = memoryview(b"")
        self.buffer = bytearray()
        self.program: _Program | None = None

    def assign(self, program: _Program) -> None:
        data = marshal.dumps(program.job)
        self.program = program
        self.pending = memoryview(len(data).to_bytes(4, "big") + data)

    def frames(self):
        while len(self.buffer) >= 4:
            size = int.from_bytes(self.buffer[:4], "big")
            if len(self.buffer) < 4 + size:
                return
            body = bytes(self.buffer[4 : 4 + size])
            del self.buffer[: 4 + size]
            yield marshal.loads(body)

    def close(self) -> None:
        """Let the supervisor finish and exit (it reads end-of-input). Idempotent."""
        for fd in (self.job_w, self.res_r):
            if fd >= 0:
                os.close(fd)
        self.job_w = self.res_r = -1


def _test_ids(run: dict) -> list[str]:
    tests = run.get("tests") or []
    return [t.get("id") or default_test_id(i) for i, t in enumerate(tests)]


def run_batch(runs: list, workers: int, zygote: socket.socket, ready: Sequence[_Worker] = ()) -> list[dict]:
    """Every run's result dict, in order; at most ``workers`` programs execute at once. ``ready`` are workers
    started before the batch arrived (see main)."""
    results: list[dict | None] = [None] * len(runs)
    queue = list(range(len(runs)))[::-1]
    idle: list[_Worker] = list(ready)[::-1]
    sel = selectors.DefaultSelector()
    for worker in idle:
        sel.register(worker.res_r, selectors.EVENT_READ, worker)
    busy = 0
    spawned = len(idle)

    def next_program() -> _Program | None:
        while queue:
            index = queue.pop()
            try:
                return _Program(index, runs[index], _prepare_job(runs[index]))
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                results[index] = _infra(f"malformed request: {exc}", retryable=False)
        return None

    while True:
        while queue and (idle or spawned < workers):
            program = next_program()
            if program is None:
                break
            if idle:
                worker = idle.pop()
            else:
                try:
                    worker, spawned = _Worker(zygote, many=len(queue) >= workers), spawned + 1
                except OSError:
                    results[program.index] = _infra("the runner's zygote died (a program in this batch may have "
                                                    "killed it); no supervisor could start", retryable=True)
                    continue
                sel.register(worker.res_r, selectors.EVENT_READ, worker)
            worker.assign(program)
            sel.register(worker.job_w, selectors.EVENT_WRITE, worker)
            busy += 1
        if not busy:
            break
        for key, _events in sel.select():
            worker = key.data
            if key.fd == worker.job_w:
                try:
                    worker.pending = worker.pending[os.write(worker.job_w, worker.pending[: 1 << 20]) :]
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    worker.pending = worker.pending[:0]
                if not worker.pending:
                    sel.unregister(worker.job_w)
                continue
            data = os.read(worker.res_r, 1 << 20)
            worker.buffer += data
            for frame in worker.frames():
                answer = worker.program.handle(frame) if worker.program else b""
                if answer:
                    try:
                        os.set_blocking(worker.job_w, True)
                        _write_all(worker.job_w, answer)
                        os.set_blocking(worker.job_w, False)
                    except OSError:
                        pass
                if worker.program and worker.program.done:
                    results[worker.program.index] = worker.program.result()
                    worker.program, busy = None, busy - 1
                    if queue and worker.many:
                        idle.append(worker)
                    else:  # done with it (nothing left, or one program was its lot): it exits now, before it
                        sel.unregister(worker.res_r)  # forks a loader for a next program
                        if worker.pending:
                            sel.unregister(worker.job_w)
                        worker.close()
                        spawned -= 1
                        break
            if worker.res_r < 0:
                continue
            if not data:  # the supervisor died: its program has no trustworthy result; a new one replaces it
                sel.unregister(worker.res_r)
                if worker.pending:
                    sel.unregister(worker.job_w)
                if worker.program is not None:
                    results[worker.program.index] = worker.program.result()
                    busy -= 1
                if worker in idle:
                    idle.remove(worker)
                worker.close()
                spawned -= 1
    for worker in idle:
        sel.unregister(worker.res_r)
        worker.close()
    sel.close()
    return cast("list[dict]", results)  # every program got its result, or the loop above would still run


# ----------------------------------------------------------------------------------------------------------------
# Confinement for the process backend: inside its private mount and PID namespaces, a runner started as root
# makes every mount read-only, gives itself a private /tmp, and drops to a user of its own.

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT = 1, 2, 4, 8, 32
MS_NOATIME, MS_NODIRATIME, MS_BIND, MS_MOVE, MS_REC, MS_PRIVATE = 1024, 2048, 4096, 8192, 16384, 1 << 18
MS_RELATIME = 1 << 21
_KEPT_MOUNT_FLAGS = {"nosuid": MS_NOSUID, "nodev": MS_NODEV, "noexec": MS_NOEXEC, "noatime": MS_NOATIME,
                     "nodiratime": MS_NODIRATIME, "relatime": MS_RELATIME}
CONFINED_TMP = "/tmp"


def _mount(source, target: str, fstype, flags: int, data=None) -> None:
    encode = lambda value: None if value is None else os.fsencode(value)  # noqa: E731
    if _libc.mount(encode(source), encode(target), encode(fstype), ctypes.c_ulong(flags), encode(data)) != 0:
        number = ctypes.get_errno()
        raise OSError(number, f"mount {target}: {os.strerror(number)}")


def _mounts() -> list[tuple[str, set[str]]]:
    """(mount point, options) of every mount this namespace sees, in mount order."""
    found = []
    with open("/proc/self/mountinfo") as handle:
        for line in handle:
            fields = line.split()
            point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), fields[4])
            found.append((point, set(fields[5].split(","))))
    return found


def _read_only(point: str) -> bool:
    # statvfs sees the mount that is visible at ``point``; hidden (over-mounted) ones are unreachable anyway.
    try:
        return bool(os.statvfs(point).f_flag & os.ST_RDONLY)
    except OSError:
        return True


def _closed_ancestor(path: str) -> str | None:
    """The outermost directory above ``path`` that other users cannot enter (pyenv's /root), or None."""
    parts = path.strip("/").split("/")
    for depth in range(1, len(parts)):
        ancestor = "/" + "/".join(parts[:depth])
        if not os.stat(ancestor).st_mode & 0o001:
            return ancestor
    return None


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def _expose_python() -> list[tuple[str, int]]:
    """Keep the interpreter's files readable after dropping root: a closed directory holding them (a home, or
    pytest's 0700 folders under /tmp) is covered by an empty tmpfs and only the interpreter's prefixes are bound
    back in, which also hides the rest. Each prefix is held open (O_PATH) before anything covers it and bound
    from that descriptor; returns (prefix, descriptor) pairs for ``_bind_prefixes``. Closed folders under /tmp
    are not covered here: the private /tmp covers them wholesale later."""
    prefixes = sorted({os.path.realpath(p) for p in (sys.base_prefix, sys.prefix, sys.exec_prefix)})
    closed = {prefix: _closed_ancestor(prefix) for prefix in prefixes}
    # Under /tmp even an open prefix needs binding back: the private /tmp would hide it.
    held = [(prefix, os.open(prefix, os.O_PATH | os.O_DIRECTORY)) for prefix in prefixes
            if closed[prefix] or _under(prefix, CONFINED_TMP)]
    for folder in sorted({folder for folder in closed.values() if folder and not _under(folder, CONFINED_TMP)}):
        _mount("tmpfs", folder, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=0755")
    return held


def _bind_prefixes(held: list[tuple[str, int]], read_only: bool) -> None:
    """Bind each held prefix back at its own path (``read_only``: and remount that bind read-only)."""
    for prefix, fd in held:
        os.makedirs(prefix, mode=0o755, exist_ok=True)
        _mount(f"/proc/self/fd/{fd}", prefix, None, MS_BIND | MS_REC)
        if read_only:
            _mount(None, prefix, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)
        os.close(fd)


def _confine() -> str:
    """Read-only mounts everywhere but a fresh tmpfs on /tmp (and /dev/shm), then a random unprivileged uid
    with no way back (no_new_privs). Returns the work root. Refuses unless this is a fresh PID namespace's init
    started as root, which the process backend's ``unshare --mount-proc`` guarantees comes with its own mount
    namespace: run anywhere else, this would remount the host."""
    if os.getpid() != 1 or os.geteuid() != 0:
        raise OSError("--confine needs root as pid 1 of fresh PID and mount namespaces (unshare --mount-proc)")
    _mount(None, "/", None, MS_REC | MS_PRIVATE)  # nothing we do here may propagate to the host
    held = _expose_python()
    in_tmp = [(prefix, fd) for prefix, fd in held if _under(prefix, CONFINED_TMP)]
    _bind_prefixes([(prefix, fd) for prefix, fd in held if not _under(prefix, CONFINED_TMP)], read_only=False)
    for point, options in _mounts():
        flags = MS_REMOUNT | MS_BIND | MS_RDONLY
        for name, flag in _KEPT_MOUNT_FLAGS.items():
            if name in options:
                flags |= flag
        try:
            _mount(None, point, None, flags)
        except OSError:
            pass  # hidden under another mount: checked below, what is visible must be read-only
    writable = [point for point, _options in _mounts() if not _read_only(point)]
    if writable:
        raise OSError(f"could not make these mounts read-only: {', '.join(writable[:5])}")
    uid = 1_000_000 + int.from_bytes(os.urandom(4), "big") % 1_000_000_000  # nobody else's: NPROC is per user
    _mount("tmpfs", CONFINED_TMP, "tmpfs", MS_NOSUID | MS_NODEV,
           f"size={CONFINED_TMPFS_MB}m,mode=0700,uid={uid},gid={uid}")
    if os.path.isdir("/dev/shm"):
        _mount("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, f"size=64m,mode=0700,uid={uid},gid={uid}")
    _bind_prefixes(in_tmp, read_only=True)  # an interpreter under /tmp (a venv in a test's tmp_path), read-only
    if not all(_read_only(prefix) for prefix, _fd in in_tmp):
        raise OSError("could not make the interpreter's folders under /tmp read-only")
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)
    if not _prctl(PR_SET_NO_NEW_PRIVS, 1) or os.geteuid() == 0:
        raise OSError("could not drop root")
    os.environ["HOME"] = os.environ["TMPDIR"] = CONFINED_TMP
    tempfile.tempdir = CONFINED_TMP
    return CONFINED_TMP


def _start_zygote(workroot: str) -> tuple[socket.socket, int]:
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            ours.close()
            _zygote_main(theirs, workroot)
        except BaseException:  # noqa: BLE001
            traceback.print_exc()
            code = 70
        finally:
            os._exit(code)
    theirs.close()
    return ours, pid


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run candidate programs against tests (JSON on stdin/stdout).")
    parser.add_argument("--workdir", default=None, help="where per-program work directories go (default $TMPDIR)")
    parser.add_argument("--ready-fd", type=int, default=None,
                        help="write one byte to this descriptor once ready for the job (the container guard waits)")
    parser.add_argument("--switch-uids", action="store_true",
                        help="as root with only CAP_SETUID/CAP_SETGID/CAP_KILL (the runner container): run every "
                             "program and every checker under a fresh unprivileged uid of its own")
    parser.add_argument("--serve", action="store_true",
                        help="serve jobs one after another (the container guard): each a 4-byte length and the job "
                             "on stdin, answered with a 4-byte length and the answer on stdout; after each answer, "
                             "one byte 'g' on stdin asks for the next; readiness is 'r' and the zygote's pid")
    parser.add_argument("--confine", action="store_true",
                        help="as root in fresh namespaces: read-only mounts, private /tmp, an unprivileged uid")
    args = parser.parse_args(argv)
    if args.confine:
        try:
            args.workdir = _confine()
        except OSError as exc:
            print(f"runner: cannot confine: {exc}", file=sys.stderr)
            return 2
    args.workdir = args.workdir or tempfile.gettempdir()
    if args.switch_uids:
        if os.geteuid() != 0:
            print("runner: --switch-uids needs root (with CAP_SETUID and CAP_SETGID)", file=sys.stderr)
            return 2
        global _SWITCH_UIDS
        _SWITCH_UIDS = True
    # No process of the runner can be traced or have its memory read by another of the same uid (a candidate).
    _prctl(PR_SET_DUMPABLE, 0)
    _prctl(PR_SET_CHILD_SUBREAPER, 1)
    try:
        _libc.mallopt(-8, 1)  # M_ARENA_MAX: per-thread malloc arenas would eat the address-space cap
    except AttributeError:
        pass
    os.makedirs(args.workdir, exist_ok=True)
    for name in WARM_MODULES:
        try:
            __import__(name)
        except ImportError:  # a trimmed-down Python in some image: that module just is not warm
            pass
    zygote, zygote_pid = _start_zygote(args.workdir)  # before stdin: it never holds an expected value
    if args.serve:
        try:
            return _serve_jobs(zygote, zygote_pid, args.ready_fd)
        finally:
            zygote.close()
            _kill_children()
    ready: list[_Worker] = []
    try:
        # One supervisor (with its first loader) starts while the job is still on its way: a warm container's
        # single program then waits for no fork at all. Supervisors never see expected values, so this is safe.
        try:
            ready = [_Worker(zygote, many=False)]
        except OSError:  # the zygote is already gone: run_batch reports it per program
            ready = []
        if args.ready_fd is not None:
            try:
                os.write(args.ready_fd, b"r")
                os.close(args.ready_fd)
            except OSError:
                pass
        try:
            runs, workers = _parse_batch(sys.stdin.buffer.read())
        except ValueError as exc:
            print(f"runner: bad input: {exc}", file=sys.stderr)
            return 2
        results = run_batch(runs, workers, zygote, ready)
        sys.stdout.write(json.dumps({"results": results}))
        sys.stdout.flush()
        return 0
    finally:
        for worker in ready:  # unused (bad input): its supervisor must see the end, or the zygote waits for it
            worker.close()
        zygote.close()
        try:
            os.waitpid(zygote_pid, 0)
        except ChildProcessError:
            pass
        _kill_children()


def _parse_batch(data: bytes) -> tuple[list, int]:
    """(runs, workers) from a job's JSON; ValueError naming what is wrong."""
    try:
        batch = json.loads(data)
        runs, workers = batch["runs"], int(batch.get("workers") or os.cpu_count() or 1)
    except (KeyError, TypeError, AttributeError) as exc:
        raise ValueError(str(exc)) from exc
    if not isinstance(runs, list):
        raise ValueError("`runs` must be a list")
    return runs, workers


def _serve_jobs(zygote: socket.socket, zygote_pid: int, ready_fd: int | None) -> int:
    """Job after job for the container guard (--serve). Before each, one supervisor with its first loader starts
    and the guard hears "r" and the zygote's pid; the guard resets the container between jobs (killing every
    process but us and the zygote) and says "g" when done. The zygote was forked before any job, and supervisors
    come from it, so no job's data reaches a later job's processes. Returns the exit status."""
    if ready_fd is None:
        print("runner: --serve needs --ready-fd", file=sys.stderr)
        return 2
    asserts = False  # whether the last job had assert tests: the next one likely has too
    while True:
        try:
            ready = [_Worker(zygote, many=False, checker=asserts)]
        except OSError:  # the zygote is gone: run_batch reports it per program
            ready = []
        os.write(ready_fd, b"r" + zygote_pid.to_bytes(4, "big"))
        head = _read_exact(0, 4)
        if head is None:  # the guard is done with us
            for worker in ready:
                worker.close()
            return 0
        body = _read_exact(0, int.from_bytes(head, "big"))
        try:
            runs, workers = _parse_batch(body or b"")
        except ValueError as exc:
            print(f"runner: bad input: {exc}", file=sys.stderr)
            return 2
        asserts = any(isinstance(run, dict) and _needs_checker(run.get("tests")) for run in runs)
        answer = json.dumps({"results": run_batch(runs, workers, zygote, ready)}).encode()
        _write_all(1, len(answer).to_bytes(4, "big") + answer)
        del runs, body, answer
        if _read_exact(0, 1) != b"g":
            return 0


if __name__ == "__main__":
    status = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # Everything is written and every child is gone: skip the interpreter's tear-down (milliseconds of CPU that
    # would compete with whoever reads the answer).
    os._exit(status)
