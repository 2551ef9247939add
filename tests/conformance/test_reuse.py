"""A runner container serves many jobs: nothing one job leaves behind may reach the next (issue 13).

One pool of one container, so the second job necessarily runs where the first ran (both report the container's
hostname, and the test checks they agree). The first job leaves everything a job can leave; the second looks."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from sandbox.server import ServiceSettings, create_app
from tests.conformance.conftest import stale_image

pytestmark = [pytest.mark.docker, pytest.mark.timeout(300)]

LIMITS = {"time_s": 20, "memory_mb": 256}

LEAVE = r'''
import ctypes, json, os, signal, socket, threading, time

MARK = ".left-by-an-earlier-job"
libc = ctypes.CDLL(None, use_errno=True)


def writable_dirs():
    """Every directory this uid can create a file in: each one the walk meets, listable or not (the walk skips
    what is under /proc and /sys, which hold no files)."""
    found = []
    for root, dirs, _ in os.walk("/"):
        if root.startswith(("/proc", "/sys")):
            dirs[:] = []
            continue
        for path in [os.path.join(root, name) for name in dirs] + (["/"] if root == "/" else []):
            try:
                with open(os.path.join(path, MARK), "w") as handle:
                    handle.write("secret")
                found.append(path)
            except OSError:
                pass
    return found


def daemon(name, stop=False):
    """A double-forked, session-leading process that outlives the program (optionally stopped)."""
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            libc.prctl(15, name.encode(), 0, 0, 0)  # PR_SET_NAME: how the next job recognises it
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            if stop:
                os.kill(os.getpid(), signal.SIGSTOP)
            while True:
                time.sleep(1)
        os._exit(0)
    os.wait()


def leave():
    report = {"host": socket.gethostname(), "dirs": writable_dirs()}
    # A tree the reset has to open up: private, sticky, unreadable, deep, with links that lead outside.
    os.makedirs("/work/leftover/open", exist_ok=True)
    os.chmod("/work/leftover/open", 0o1777)
    os.symlink("/etc/passwd", "/work/leftover/link")
    path = "/work/leftover/deep"
    for _ in range(200):
        path = os.path.join(path, "d")
    os.makedirs(path)
    os.mkfifo("/work/leftover/fifo")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind("/work/leftover/sock")
    os.chmod("/work/leftover", 0)
    # POSIX shared memory and a named semaphore live in /dev/shm; a message queue in /dev/mqueue.
    fd = os.open("/dev/shm/leftover_shm", os.O_CREAT | os.O_RDWR, 0o666)
    os.ftruncate(fd, 4096)
    with open("/dev/shm/sem.leftover_sem", "wb") as handle:
        handle.write(b"\0" * 32)
    libc.mq_open.restype = ctypes.c_int
    report["mq"] = libc.mq_open(b"/leftover_mq", os.O_CREAT | os.O_RDWR, 0o666, None)
    # System V objects: a semaphore set, a shared memory segment, a message queue.
    report["sem"] = libc.semget(0x1EF7, 1, 0o1666)  # IPC_CREAT | 0666
    report["shm"] = libc.shmget(0x1EF7, 4096, 0o1666)
    report["msg"] = libc.msgget(0x1EF7, 0o1666)
    # State of this process: none of it may outlive it.
    os.environ["LEFTOVER_ENV"] = "1"
    os.putenv("LEFTOVER_PUTENV", "1")
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.umask(0)
    threading.Thread(target=time.sleep, args=(3600,), daemon=True).start()
    daemon("leftoverd")
    daemon("leftoverstop", stop=True)
    print(json.dumps(report))
    return True
'''

LOOK = r'''
import json, os, signal, socket

MARK = ".left-by-an-earlier-job"


def look():
    found = {"host": socket.gethostname()}
    files = []
    for root, dirs, _ in os.walk("/"):
        if root.startswith(("/proc", "/sys")):
            dirs[:] = []
            continue
        for path in [root] + [os.path.join(root, name) for name in dirs]:  # unlistable ones too
            if os.path.lexists(os.path.join(path, MARK)):
                files.append(path)
    found["files"] = files
    found["work"] = [p for p in ("/work/leftover",) if os.path.lexists(p)]
    found["shm"] = os.listdir("/dev/shm")
    found["mqueue"] = os.listdir("/dev/mqueue")
    found["sysvipc"] = {kind: open(f"/proc/sysvipc/{kind}").read().splitlines()[1:] for kind in ("sem", "shm", "msg")}
    names = []
    for pid in os.listdir("/proc"):
        try:
            names.append(open(f"/proc/{pid}/comm").read().strip())
        except OSError:
            pass
    found["processes"] = [name for name in names if name.startswith("leftover")]
    found["env"] = [key for key in os.environ if key.startswith("LEFTOVER")]
    umask = os.umask(0o22)
    os.umask(umask)
    found["umask"] = umask
    found["sigint_default"] = signal.getsignal(signal.SIGINT) is signal.default_int_handler
    print(json.dumps(found))
    return True
'''


@pytest.fixture(scope="module")
def one_container(needs_docker):
    stale = stale_image()
    if stale:
        pytest.fail(stale)
    from sandbox.backends.docker import DockerBackend, DockerSettings

    backend = DockerBackend(DockerSettings(pool_size=1))
    with TestClient(create_app(backend, ServiceSettings(token=None))) as client:
        yield client, backend


def run_and_report(client: TestClient, code: str, entry_point: str) -> dict:
    body = {"code": code, "limits": LIMITS, "tests": [{"kind": "call", "entry_point": entry_point, "expected": True}]}
    response = client.post("/v1/runs", json=body)
    assert response.status_code == 200, response.text
    test = response.json()["tests"][0]
    assert test["verdict"] == "pass", test
    return json.loads(test["stdout"])


def test_nothing_a_job_leaves_reaches_the_next_job(one_container):
    client, backend = one_container
    left = run_and_report(client, LEAVE, "leave")
    # The first job really left something in every kind of place (else the second proves nothing).
    assert {"/work", "/dev/shm"} <= set(left["dirs"]), left["dirs"]
    assert min(left["mq"], left["sem"], left["shm"], left["msg"]) >= 0, left
    # Writable places are exactly those the reset empties (a new one would need a reset of its own).
    assert set(left["dirs"]) <= {"/work", "/dev/shm", "/dev/mqueue"}, left["dirs"]

    found = run_and_report(client, LOOK, "look")
    assert found["host"] == left["host"], "the second job ran in another container; the test proves nothing"
    assert backend.pool.jobs_per_container > 1
    assert found == {"host": left["host"], "files": [], "work": [], "shm": [], "mqueue": [],
                     "sysvipc": {"sem": [], "shm": [], "msg": []}, "processes": [], "env": [], "umask": found["umask"],
                     "sigint_default": True}
    assert found["umask"] != 0


def test_a_job_that_leaves_too_much_to_wipe_gets_a_new_container(one_container):
    from sandbox.backends.container_reset import MAX_ENTRIES

    client, _ = one_container
    flood = ("import os, socket\n"
             "def flood(n):\n"
             "    os.makedirs('/work/flood', exist_ok=True)\n"
             "    for i in range(n):\n"
             "        open(f'/work/flood/{i}', 'w').close()\n"
             "    print(socket.gethostname())\n"
             "    return True\n")
    body = {"code": flood, "limits": LIMITS,
            "tests": [{"kind": "call", "entry_point": "flood", "args": [MAX_ENTRIES + 10], "expected": True}]}
    response = client.post("/v1/runs", json=body)
    assert response.status_code == 200 and response.json()["passed"], response.text
    first_host = response.json()["tests"][0]["stdout"].strip()
    after = run_and_report(client, LOOK, "look")
    assert after["host"] != first_host  # its guard refused the reset; the pool replaced the container
    assert after["work"] == [] and after["files"] == []


SCAN = r'''
import ctypes, socket


def scan(token):
    # Count where ``token`` follows b"SECRET-" in this process's memory, without building that needle (it would
    # find itself); also count plain hits of the token, which this request's own arguments hold. Read directly:
    # the process is not dumpable, so even its own /proc/self/mem is closed to it.
    token = token.encode()
    follows, plain, scanned = 0, 0, 0
    regions = []
    with open("/proc/self/maps") as maps:
        for line in maps:
            fields = line.split()
            # Anonymous memory (heap, arenas, stack) is where a process's data lives; mapped files can raise
            # SIGBUS past their end, and hold no job.
            if fields[1].startswith("r") and (len(fields) == 5 or fields[5] in ("[heap]", "[stack]")):
                regions.append(tuple(int(x, 16) for x in fields[0].split("-")))
    for start, end in regions:
        data = ctypes.string_at(start, end - start)
        scanned += len(data)
        at = data.find(token)
        while at >= 0:
            plain += 1
            follows += data[max(0, at - 7):at] == b"SECRET" + b"-"
            at = data.find(token, at + 1)
    print(socket.gethostname(), follows, plain, scanned)
    return True
'''


def test_a_job_cannot_read_an_earlier_jobs_expected_values_from_memory(one_container):
    import secrets

    client, _ = one_container
    token = secrets.token_hex(12)
    earlier = {"code": "import socket\ndef f():\n    print(socket.gethostname())\n    return 'nope'\n", "limits": LIMITS,
               "tests": [{"kind": "call", "entry_point": "f", "expected": f"SECRET-{token}"}]}
    response = client.post("/v1/runs", json=earlier)
    assert response.status_code == 200 and response.json()["tests"][0]["verdict"] == "fail", response.text
    host = response.json()["tests"][0]["stdout"].strip()
    body = {"code": SCAN, "limits": LIMITS, "tests": [{"kind": "call", "entry_point": "scan", "args": [token],
                                                        "expected": True}]}
    response = client.post("/v1/runs", json=body)
    test = response.json()["tests"][0]
    assert test["verdict"] == "pass", test
    scanned_host, follows, plain, scanned = test["stdout"].split()
    assert scanned_host == host, "the second job ran in another container; the test proves nothing"
    assert int(plain) >= 1 and int(scanned) > 1 << 20  # the scan works: it finds its own argument
    assert int(follows) == 0  # and nothing of the earlier job's expected value


def test_a_program_cannot_read_the_tests_of_an_earlier_program_of_its_batch(one_container):
    """Programs of one batch share a supervisor (one worker slot here); each loader is made by a copy of the
    supervisor taken before it saw any program, so none inherits an earlier program's assert tests."""
    import secrets

    client, _ = one_container
    token = secrets.token_hex(12)
    earlier = {"code": "def f():\n    return 1\n", "limits": LIMITS,
               "tests": [{"kind": "assert", "code": f"assert f() == 'SECRET-{token}'"}]}
    later = {"code": SCAN, "limits": LIMITS,
             "tests": [{"kind": "call", "entry_point": "scan", "args": [token], "expected": True}]}
    # The first program goes to the supervisor started before the batch (one program is its lot); the next two
    # share one that serves several, the case the template exists for.
    opener = {"code": "def f():\n    return 1\n", "tests": [{"kind": "call", "entry_point": "f", "expected": 1}]}
    response = client.post("/v1/batch", json={"runs": [opener, earlier, later]})
    _, first, second = response.json()["results"]
    assert first["tests"][0]["verdict"] == "fail" and second["tests"][0]["verdict"] == "pass", response.text
    _host, follows, plain, _scanned = second["tests"][0]["stdout"].split()
    assert int(plain) >= 1 and int(follows) == 0
