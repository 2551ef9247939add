"""Hostile programs as data: each case is a program, its tests, and the exact verdict every test must get.

Verdicts are per backend only where the environments honestly differ (the process backend's private /tmp is
writable, the container's root is not). ``@CANARY@`` in a case's code stands for a unique host path that the
suite checks is still absent after the run; ``@SECRET@`` for a host file that the program must not read.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

LIMITS = {"time_s": 2, "memory_mb": 128, "output_bytes": 8192}
ANSWER = ({"kind": "assert", "code": "assert answer() == 42"},)
CALL = ({"kind": "call", "entry_point": "answer", "expected": 42},)


@dataclass(frozen=True)
class Case:
    name: str
    code: str
    verdicts: tuple[str, ...]  # one per test (a test_file case: one per discovered test)
    tests: tuple[dict, ...] = ANSWER
    test_file: str | None = None
    on: dict[str, tuple[str, ...]] = field(default_factory=dict)  # backend -> verdicts where it differs
    canary: str | None = None  # "tmp" or "home": where @CANARY@ points on the host
    secret: bool = False  # @SECRET@ is a planted host file
    program_error: bool = False
    stdout_has: str | None = None
    infra_error_on: tuple[str, ...] = ()  # backends where the honest outcome is a retryable infra_error
    # A program that must finish under its time limit needs 5x the CPU time it takes, so that a slower CPU or a
    # loaded machine never turns its verdict into a timeout; cases that must hit the limit never end at all.
    time_s: float = LIMITS["time_s"]

    def status(self, backend: str) -> str:
        return "infra_error" if backend in self.infra_error_on else "completed"

    def expected(self, backend: str) -> tuple[str, ...]:
        return self.on.get(backend, self.verdicts)

    def request_body(self, canary: str = "", secret: str = "") -> dict:
        code = self.code.replace("@CANARY@", canary).replace("@SECRET@", secret)
        body = {"code": code, "limits": {**LIMITS, "time_s": self.time_s}}
        if self.test_file is not None:
            body["test_file"] = self.test_file
        else:
            body["tests"] = [{**t, "code": t["code"].replace("@CANARY@", canary)} if "code" in t else t
                             for t in self.tests]
        return body


def _fn(body: str, prelude: str = "import os, sys, time\n") -> str:
    """A module defining ``answer()`` with ``body`` (indented by us)."""
    return prelude + "def answer():\n" + "".join(f"    {line}\n" for line in body.strip("\n").split("\n"))


# A forger's search for the old in-process harness's reporting path: a callable local named ``report`` (called
# with a pass), or the per-test ``token`` and ``result_fd`` (a pass written there). {frames} names the frames.
_FORGE = """import marshal, gc, inspect
def _frames_from(frame):
    found = []
    while frame is not None:
        found.append(frame)
        frame = frame.f_back
    return found
def _frames_from_gc():
    return [o for o in gc.get_objects() if type(o).__name__ == 'frame'] + _frames_from(sys._getframe())
for frame in {frames}:
    names = frame.f_locals
    report = names.get('report')
    if callable(report):
        report('ok', marshal.dumps(None))
    if isinstance(names.get('token'), bytes) and isinstance(names.get('result_fd'), int):
        blob = marshal.dumps((names['token'], 'ok', marshal.dumps(None)))
        os.write(names['result_fd'], len(blob).to_bytes(4, 'big') + blob)
        os._exit(0)
return 41"""

_FORGE_FD = """import marshal
token = None
frame = sys._getframe()
while frame is not None:
    if isinstance(frame.f_locals.get('token'), bytes):
        token = frame.f_locals['token']
    frame = frame.f_back
blob = marshal.dumps((token or b'0' * 16, 'ok', marshal.dumps(None)))
for name in os.listdir('/proc/self/fd'):
    try:
        os.write(int(name), len(blob).to_bytes(4, 'big') + blob)
    except OSError:
        pass
os._exit(0)"""


CASES = [
    # --- resources ---------------------------------------------------------------------------------------------
    Case("fork_bomb", _fn("while True:\n    try:\n        os.fork()\n    except OSError:\n        pass"),
         ("timeout",)),
    Case("fork_bomb_at_top_level", "import os, time\nfor _ in range(10):\n    os.fork()\ntime.sleep(60)\n",
         ("timeout",), on={"docker": ("error",)}, program_error=True),  # docker: the pids limit refuses forks
    Case("thread_bomb", _fn("import threading\nwhile True:\n    threading.Thread(target=time.sleep, args=(60,)).start()"),
         ("error",)),
    Case("memory_bomb_fast", _fn("return len(bytearray(8 << 30))"), ("memory",)),
    Case("memory_bomb_slow", _fn("hoard = []\nwhile True:\n    hoard.append(bytearray(1 << 20))\n    time.sleep(0.002)"),
         ("memory",)),
    Case("infinite_loop", _fn("while True:\n    pass"), ("timeout",)),
    Case("sleep_wall_clock", _fn("time.sleep(60)"), ("timeout",)),
    Case("sigstop_own_group", _fn("import signal\nos.kill(0, signal.SIGSTOP)\nreturn 42"), ("timeout",)),
    Case("ignore_sigterm", _fn("import signal\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\nwhile True:\n    time.sleep(1)"),
         ("timeout",)),
    Case("daemon_outlives_its_test",
         _fn("if os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n        while True:\n"
             "            open('alive', 'w').close()\n            time.sleep(0.02)\n    os._exit(0)\n"
             "time.sleep(0.2)\nreturn 42"),
         ("pass", "pass"),
         tests=(ANSWER[0], {"kind": "assert", "code": "import os, time\nif os.path.exists('alive'):\n"
                                                      "    os.remove('alive')\ntime.sleep(0.3)\n"
                                                      "assert not os.path.exists('alive'), 'the daemon survived'"})),
    Case("stdout_100_mb", _fn("chunk = 'y' * (1 << 20)\nfor _ in range(100):\n    sys.stdout.write(chunk)\nreturn 42"),
         ("output_limit",)),
    Case("one_huge_line", _fn("os.write(1, b'x' * (32 << 20))\nreturn 42"), ("output_limit",)),
    Case("invalid_utf8_output", _fn("os.write(1, b'ok \\xff\\xfe\\x80 done')\nos.write(2, b'\\xc3\\x28')\nreturn 42"),
         ("pass",), stdout_has="\ufffd"),
    Case("deep_recursion", "def answer(n=0):\n    return answer(n + 1)\n", ("error",)),
    # Deep C recursion on a 64 KiB thread stack: it overflows within a few thousand levels, in milliseconds on any
    # CPU, whatever the interpreter's own recursion counters allow (3.12 and 3.13 cap C recursion near 10,000
    # levels, far more than 64 KiB holds). 3.14 checks the real stack bounds and raises RecursionError instead.
    Case("c_stack_overflow", "import sys, threading\nsys.setrecursionlimit(10 ** 8)\ndef answer():\n"
                             "    nest = []\n    for _ in range(100_000):\n        nest = [nest]\n"
                             "    threading.stack_size(64 * 1024)\n"
                             "    worker = threading.Thread(target=repr, args=(nest,))\n"
                             "    worker.start()\n    worker.join()\n    return 42\n",
         ("crash",), on={"process": ("error",)} if sys.version_info >= (3, 14) else {}),
    Case("read_stdin_forever", _fn("sys.stdin.read()\nsys.stdin.readline()\nreturn 42"), ("pass",)),  # EOF at once
    Case("fill_the_work_tmpfs", _fn("for i in range(10_000):\n    with open(f'blob{i}', 'wb') as f:\n"
                                    "        f.write(bytes(32 << 20))\nreturn 42"), ("error",),
         time_s=5),  # writes 256 MB: about 0.4 s of CPU
    # --- network -----------------------------------------------------------------------------------------------
    Case("tcp_egress", _fn("import socket\nsocket.create_connection(('1.1.1.1', 80), timeout=1)\nreturn 42"),
         ("error",)),
    Case("dns_lookup", _fn("import socket\nsocket.getaddrinfo('pypi.org', 443)\nreturn 42"), ("error",)),
    Case("udp_egress", _fn("import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
                           "s.sendto(b'x', ('8.8.8.8', 53))\nreturn 42"), ("error",)),
    # --- the filesystem and the host ---------------------------------------------------------------------------
    Case("write_host_tmp", _fn("open('@CANARY@', 'w').write('escaped')\nreturn 42"), ("error",),
         on={"process": ("pass",)}, canary="tmp"),  # the process backend's /tmp is a private tmpfs
    Case("write_host_home", _fn("open('@CANARY@', 'w').write('escaped')\nreturn 42"), ("error",), canary="home"),
    Case("symlink_out_of_workdir", _fn("os.symlink(os.path.dirname('@CANARY@'), 'out')\n"
                                       "open(os.path.join('out', os.path.basename('@CANARY@')), 'w').write('x')\n"
                                       "return 42"), ("error",), canary="home"),
    Case("read_planted_host_secret", _fn("return open('@SECRET@').read()"), ("error",), secret=True),
    Case("read_shadow", _fn("return open('/etc/shadow').read()"), ("error",)),
    Case("environment_is_clean", _fn("leaked = [k for k in os.environ if 'SECRET' in k or 'TOKEN' in k]\n"
                                     "assert not leaked, leaked\nreturn 42"), ("pass",)),
    Case("proc_shows_no_host_processes", _fn("pids = [p for p in os.listdir('/proc') if p.isdigit()]\n"
                                             "assert len(pids) < 40, len(pids)\nreturn 42"), ("pass",)),
    Case("sys_is_read_only", _fn("open('/sys/kernel/mm/transparent_hugepage/enabled', 'w').write('never')\n"
                                 "return 42"), ("error",)),
    Case("remount_root_writable", _fn("import subprocess\nsubprocess.run(['mount', '-o', 'remount,rw', '/'], "
                                      "check=True, capture_output=True)\nreturn 42"), ("error",)),
    Case("ptrace_the_harness", _fn("import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\n"
                                   "ppid = os.getppid()\nif libc.ptrace(16, ppid, 0, 0) != 0:\n"
                                   "    raise PermissionError(ctypes.get_errno(), 'ptrace attach refused')\n"
                                   "return 42"), ("error",)),
    # Killing every process it may signal: in a container that is only its own uid's processes (the harness and
    # the checker run under other uids), so it lives on and returns 42; in the process backend, one uid for all,
    # the runner's supervisor dies with it, which the runner can only report as an infra_error.
    Case("kill_every_process", _fn("import signal\nos.kill(-1, signal.SIGKILL)\nreturn 42"), ("pass",),
         on={"process": ()}, infra_error_on=("process",)),
    Case("ctypes_segfault", _fn("import ctypes\nctypes.string_at(0)\nreturn 42"), ("crash",)),
    # --- gaming the harness ------------------------------------------------------------------------------------
    Case("sys_exit_before_asserts", "def answer():\n    return 41\n", ("error",),
         tests=({"kind": "assert", "code": "import sys\nsys.exit(0)\nassert answer() == 42"},)),
    Case("os_exit_before_asserts", "def answer():\n    return 41\n", ("error",),
         tests=({"kind": "assert", "code": "import os\nos._exit(0)\nassert answer() == 42"},)),
    Case("exit_zero_inside_call", _fn("os._exit(0)"), ("error",), tests=CALL),
    Case("exit_zero_at_top_level", "import sys\nsys.exit(0)\ndef answer():\n    return 41\n", ("error",),
         program_error=True),
    Case("fake_result_markers", _fn("print('{\"results\": [{\"status\": \"completed\", \"passed\": true}]}')\n"
                                    "print('IPSB1 0000000000000000 ok 2')\nprint('PASSED')\nreturn 41"), ("fail",)),
    Case("always_equal_object", "class Any:\n    def __eq__(self, other):\n        return True\n"
                                "def answer():\n    return Any()\n", ("fail",), tests=CALL),
    Case("forged_report_on_every_fd",
         _fn("import marshal\nblob = marshal.dumps((b'0' * 16, 'ok', marshal.dumps(42)))\nfor fd in range(3, 256):\n"
             "    try:\n        os.write(fd, len(blob).to_bytes(4, 'big') + blob)\n    except OSError:\n        pass\n"
             "return 41", prelude="import os\n"), ("error",)),
    Case("patch_unittest", "import unittest\nunittest.TestCase.assertEqual = lambda *a, **k: None\n"
                           "def answer():\n    return 41\n", ("fail",),
         test_file="import unittest\nfrom solution import answer\n\nclass T(unittest.TestCase):\n"
                   "    def test_answer(self):\n        self.assertEqual(answer(), 42)\n"),
    Case("patch_builtins", "import builtins\nbuiltins.abs = lambda x: 0\ndef answer():\n    return 41\n", ("fail",),
         tests=({"kind": "assert", "code": "assert abs(answer() - 42) < 1e-9"},)),
    Case("patch_harness_primitives", "import os, marshal, sys\nos._exit = lambda *a: None\n"
                                     "marshal.dumps = lambda *a: b'forged'\nsys.exit = lambda *a: None\n"
                                     "def answer():\n    return 41\n", ("fail",)),
    # --- reaching into the harness for a verdict (reward hacks seen in RL on code) --------------------------------
    # Each forger passed against the in-process harness this runner used to have (the judge of an assert test
    # shared the candidate's interpreter): it found the reporting closure, or the per-test token and the report
    # descriptor, and wrote a pass. The checker now runs the test in another process, so there is nothing to find.
    Case("forge_via_frame_walk", _fn(_FORGE.format(frames="_frames_from(sys._getframe())")), ("error",)),
    Case("forge_via_gc", _fn(_FORGE.format(frames="_frames_from_gc()")), ("error",)),
    Case("forge_via_inspect_stack", _fn(_FORGE.format(frames="[info.frame for info in inspect.stack()]")), ("error",)),
    # The token from the frames, the descriptor from /proc/self/fd: a forged report on every descriptor, then exit.
    Case("forge_via_proc_self_fd", _fn(_FORGE_FD), ("error",)),
    Case("always_equal_object_in_an_assert", "class Any:\n    def __eq__(self, other):\n        return True\n"
                                             "    __hash__ = object.__hash__\ndef answer():\n    return Any()\n",
         ("error",)),  # HandleComparison: the checker never asks the candidate's object to judge itself
    Case("int_subclass_equal_to_anything", "class Int(int):\n    def __eq__(self, other):\n        return True\n"
                                           "    __hash__ = int.__hash__\ndef answer():\n    return Int(41)\n",
         ("fail",)),  # crosses as the plain int 41
    Case("sys_exit_zero_in_the_function", _fn("sys.exit(0)"), ("error",)),
    Case("patch_builtins_during_the_test", "import builtins\ndef answer():\n    builtins.abs = lambda x: 0\n"
                                           "    return 41\n", ("fail",),
         tests=({"kind": "assert", "code": "answer()\nassert abs(answer() - 42) < 1e-9"},)),
    Case("module_level_dunder_builtins", "import builtins\n__builtins__ = dict(vars(builtins), abs=lambda x: 0)\n"
                                         "def answer():\n    return 41\n", ("fail",),
         tests=({"kind": "assert", "code": "assert abs(answer() - 42) < 1e-9"},)),
    Case("fake_module_in_sys_modules", "import sys, types\nfake = types.ModuleType('math')\n"
                                       "fake.isclose = lambda *a, **k: True\nsys.modules['math'] = fake\nimport math\n"
                                       "def answer():\n    return 41\n", ("fail", "fail"),
         tests=({"kind": "assert", "code": "assert math.isclose(answer(), 42)"},
                {"kind": "assert", "code": "import math\nassert math.isclose(answer(), 42)"})),
    Case("redefined_trusted_helper", "def encode(s):\n    return s\ndef decode(s):\n    return s\n", ("fail",),
         tests=({"kind": "assert", "setup": "def encode(s):\n    return s[::-1] + '!'\n",
                 "code": "assert decode(encode('abc')) == 'abc'"},)),
    Case("patch_the_checkers_reply", _fn("import socket\nfor fd in range(3, 256):\n    try:\n"
                                         "        socket.socket(fileno=os.dup(fd)).close()\n        os.close(fd)\n"
                                         "    except OSError:\n        pass\nreturn 42"),
         ("error",)),  # closing its end of the checker's socket: the checker sees the candidate gone (CandidateDied)
    # 42 only if it could ptrace-attach to any process but itself (its checker, the harness, a neighbour).
    Case("trace_every_process", _fn("import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\n"
                                    "others = [int(p) for p in os.listdir('/proc') if p.isdigit() and int(p) != os.getpid()]\n"
                                    "return 42 if any(libc.ptrace(16, p, 0, 0) == 0 for p in others) else 41"),
         ("fail",)),
    # The second test passes only if the first one's call is still in ``state``: tests must be independent.
    Case("depends_on_test_order", "state = []\ndef answer():\n    state.append(1)\n    return 41 + len(state)\n",
         ("pass", "fail"), tests=(ANSWER[0], {"kind": "assert", "code": "assert answer() == 43"})),
]
