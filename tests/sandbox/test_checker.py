"""The checker (docs/runner.md, "The checker"): assert tests run in a process of their own and reach the
candidate's module only through values and handles. An MBPP-style fixture gets the verdicts the official harness
gives (exec of the program, then of the asserts, in one namespace), except the documented forge cases; the value
encoding round-trips the standard library's value types."""

from __future__ import annotations

import collections
import datetime
import decimal
import fractions

import pytest

from sandbox import runner
from sandbox.local import LocalExecutor
from sandbox.models import RunRequest

# name: (program, assert test, trusted setup or None)
FIXTURE = {
    "counter": ("from collections import Counter\ndef count(xs):\n    return Counter(xs)\n",
                "assert count('aab') == {'a': 2, 'b': 1}\nassert count('aab').most_common(1) == [('a', 2)]", None),
    "counter_wrong": ("from collections import Counter\ndef count(xs):\n    return Counter(xs[1:])\n",
                      "assert count('aab') == {'a': 2, 'b': 1}", None),
    "namedtuple": ("from collections import namedtuple\nP = namedtuple('P', 'x y')\ndef mid(a, b):\n"
                   "    return P((a[0] + b[0]) / 2, (a[1] + b[1]) / 2)\n",
                   "assert mid((0, 0), (2, 4)) == (1.0, 2.0)", None),
    "generator_listed": ("def evens(n):\n    for i in range(n):\n        if i % 2 == 0:\n            yield i\n",
                         "assert list(evens(7)) == [0, 2, 4, 6]", None),
    "generator_is_not_a_list": ("def evens(n):\n    yield from range(0, n, 2)\n",
                                "assert evens(7) == [0, 2, 4, 6]", None),
    "mutation_written_back": ("def sort_in_place(xs):\n    xs.sort()\n",
                              "xs = [3, 1, 2]\nsort_in_place(xs)\nassert xs == [1, 2, 3]", None),
    "dict_mutation": ("def add_key(d):\n    d['k'] = 1\n    return len(d)\n",
                      "d = {}\nassert add_key(d) == 1 and d == {'k': 1}", None),
    "candidate_class": ("class Pair:\n    def __init__(self, a, b):\n        self.a, self.b = a, b\n"
                        "def max_chain_length(pairs, n):\n    pairs = sorted(pairs, key=lambda p: p.a)\n"
                        "    best, end = 0, float('-inf')\n    for p in pairs:\n        if p.a > end:\n"
                        "            best, end = best + 1, p.b\n    return best\n",
                        "assert max_chain_length([Pair(5, 24), Pair(15, 25), Pair(27, 40), Pair(50, 60)], 4) == 3",
                        None),
    "method_calls": ("class Solution:\n    def twice(self, x):\n        return 2 * x\n",
                     "assert Solution().twice(21) == 42", None),
    "module_import": ("import math\ndef hyp(a, b):\n    return math.sqrt(a * a + b * b)\n",
                      "assert math.isclose(hyp(3, 4), 5.0)", None),
    "trusted_helper": ("def decode(s):\n    return s[::-1]\n",
                       "assert decode(encode('abc')) == 'abc'", "def encode(s):\n    return s[::-1]\n"),
    "exception_expected": ("def first(xs):\n    return xs[0]\n",
                           "try:\n    first([])\n    assert False\nexcept IndexError:\n    pass", None),
    "fractions_and_decimals": ("from fractions import Fraction\nfrom decimal import Decimal\n"
                               "def half(x):\n    return Fraction(x, 2), Decimal(x) / 2\n",
                               "assert half(3) == (Fraction(3, 2), Decimal('1.5'))", None),
    "raises": ("def f(x):\n    return x / 0\n", "assert f(1) == 0", None),
}
# The documented forge cases: the official harness passes them, the checker does not.
FORGES = {
    "always_equal": ("class Any:\n    def __eq__(self, o):\n        return True\ndef f():\n    return Any()\n",
                     "assert f() == 42", None),
}
CHECKER_VERDICT = {"always_equal": "error"}


def official(program: str, test: str, setup: str | None) -> str:
    """What MBPP's harness gives: the program, (its helpers,) then the asserts, exec'd in one namespace."""
    namespace: dict = {}
    try:
        exec(program, namespace)
        if setup:
            exec(setup, namespace)
        exec(test, namespace)
    except AssertionError:
        return "fail"
    except Exception:  # noqa: BLE001
        return "error"
    return "pass"


@pytest.fixture(scope="module")
def verdicts() -> dict[str, str]:
    cases = {**FIXTURE, **FORGES}
    requests = [RunRequest(code=program, tests=[{"kind": "assert", "code": test, "setup": setup}])
                for program, test, setup in cases.values()]
    results = LocalExecutor(workers=2).run_batch(requests)
    return {name: result.tests[0].verdict.value for name, result in zip(cases, results)}


def test_mbpp_style_fixture_agrees_with_the_official_harness(verdicts):
    expected = {name: official(*case) for name, case in FIXTURE.items()}
    assert {name: verdicts[name] for name in FIXTURE} == expected
    assert "fail" in expected.values() and "error" in expected.values()  # the fixture tells verdicts apart


def test_documented_forges_pass_the_official_harness_only(verdicts):
    for name, case in FORGES.items():
        assert official(*case) == "pass"
        assert verdicts[name] == CHECKER_VERDICT[name]


def test_a_candidates_exception_keeps_its_type_line_and_frames():
    code = "def f(x):\n    y = x\n    return y / 0\n"
    (test,) = LocalExecutor(workers=1).run(RunRequest(code=code, tests=[{"kind": "assert", "code": "f(1)"}])).tests
    assert (test.verdict.value, test.error_type, test.message, test.line) == ("error", "ZeroDivisionError",
                                                                              "division by zero", 3)
    assert 'File "<test>", line 1' in test.traceback and 'File "<candidate>", line 3, in f' in test.traceback
    assert "runner.py" not in test.traceback


def test_refusals_say_why():
    code = "class P:\n    pass\ndef make():\n    return P()\ndef call(f):\n    return f()\n"
    tests = [{"kind": "assert", "code": "assert make() == make()"}, {"kind": "assert", "code": "call(lambda: 1)"},
             {"kind": "assert", "code": "assert make()"}, {"kind": "assert", "code": "{make(): 1}"}]
    result = LocalExecutor(workers=1).run(RunRequest(code=code, tests=tests))
    got = [(t.verdict.value, t.error_type) for t in result.tests]
    assert got == [("error", "HandleComparison"), ("error", "CannotCross"), ("error", "HandleComparison"),
                   ("error", "HandleComparison")]
    assert "lives in the candidate's process" in result.tests[0].message and "P" in result.tests[0].message


def test_names_the_test_takes_keep_their_metadata():
    code = "def add(a: int, b: int = 2, *rest, key=None):\n    'Add them.'\n    return a + b\n"
    test = ("import inspect\nassert add.__name__ == 'add' and add.__qualname__ == 'add' and add.__doc__ == 'Add them.'\n"
            "assert str(inspect.signature(add)) == '(a, b=2, *rest, key=None)'\nassert add(1) == 3")
    result = LocalExecutor(workers=1).run(RunRequest(code=code, tests=[{"kind": "assert", "code": test}]))
    assert result.passed, result.tests[0]


def test_the_candidates_builtins_and_globals_shadowing_them_are_not_the_tests():
    code = "def abs(x):\n    return 0\ndef f():\n    return 41\n"
    result = LocalExecutor(workers=1).run(RunRequest(code=code, tests=[{"kind": "assert",
                                                                        "code": "assert abs(f() - 42) < 1"}]))
    assert result.tests[0].verdict.value == "fail"


def test_the_checker_is_not_dumpable_and_not_the_candidates_process():
    code = "import os\ndef pid():\n    return os.getpid()\n"
    # PR_GET_DUMPABLE (3) in the checker: 0, so a same-uid candidate can neither trace it nor read its memory.
    test = "import ctypes, os\nassert pid() != os.getpid()\nassert ctypes.CDLL(None).prctl(3, 0, 0, 0, 0) == 0"
    result = LocalExecutor(workers=1).run(RunRequest(code=code, tests=[{"kind": "assert", "code": test}]))
    assert result.passed, result.tests[0]


VALUES = [
    None, True, 3, -2**100, 1.5, float("inf"), 2j, "s", b"b", (1, (2,)), [1, [2]], {"a": [1]}, {1, 2},
    frozenset({3}), bytearray(b"xy"), range(1, 9, 2), collections.Counter("aab"), collections.OrderedDict(a=1),
    collections.defaultdict(list, a=[1]), collections.deque([1, 2], maxlen=5), fractions.Fraction(1, 3),
    decimal.Decimal("1.10"), datetime.date(2024, 2, 29), datetime.datetime(2024, 1, 2, 3, 4, 5, 6),
    datetime.datetime(2024, 1, 2, tzinfo=datetime.timezone(datetime.timedelta(hours=2))),
    datetime.time(1, 2, 3), datetime.timedelta(days=1, seconds=2, microseconds=3),
]


@pytest.mark.parametrize("value", VALUES, ids=[type(v).__name__ + str(i) for i, v in enumerate(VALUES)])
def test_values_round_trip_with_their_types(value):
    back = runner._decode(runner._encode(value, runner._no_handles), runner._no_handles)
    assert type(back) is type(value) and back == value
    if isinstance(value, collections.defaultdict):
        assert back.default_factory is list
    if isinstance(value, collections.deque):
        assert back.maxlen == 5


def test_subclasses_cross_as_their_base_types_data_and_iterators_as_iterators():
    class Rigged(int):
        def __eq__(self, other):
            return True

    class Listy(list):
        def __iter__(self):
            raise RuntimeError("never called")

    P = collections.namedtuple("P", "x y")
    for value, plain in ((Rigged(4), 4), (Listy([1, 2]), [1, 2]), (P(1, 2), (1, 2))):
        back = runner._decode(runner._encode(value, runner._no_handles), runner._no_handles)
        assert type(back) is type(plain) and back == plain
    back = runner._decode(runner._encode(iter([1, 2]), runner._no_handles), runner._no_handles)
    assert list(back) == [1, 2]


@pytest.mark.parametrize("tree", [
    ["raw list"], ("nope", 1), ("l", "not a list"), ("d", [(1,)]), ("d", [(("l", []), 1)]), ("Fr", 1.5, 2),
    ("h", 0, "x", None), object(),
])
def test_malformed_trees_from_the_candidate_are_refused(tree):
    with pytest.raises(runner.CannotCross):
        runner._decode(tree, runner._no_handles)


def test_nested_too_deep_or_self_containing_values_cannot_cross():
    loop: list = []
    loop.append(loop)
    with pytest.raises(runner.CannotCross):
        runner._encode(loop, runner._no_handles)
    with pytest.raises(runner.CannotCross):
        runner._encode(iter(range(runner.MAX_ITER_ITEMS + 1)), runner._no_handles)


def test_remote_exceptions_are_rebuilt_as_builtins_or_named_classes():
    exc = runner._remote_exception(("raise", "KeyError", "'k'", [("<candidate>", 3, "f", "d['k']")], 3))
    assert type(exc) is KeyError
    info = runner._describe(exc, ("<candidate>",), ("<candidate>", "<test>"))
    assert info[1:3] == ("KeyError", "'k'") and info[4] == 3
    custom = runner._remote_exception(("raise", "MyError", "m", [], None))
    assert type(custom).__name__ == "MyError" and isinstance(custom, Exception)
    assert type(runner._remote_exception(("raise", "not an identifier!", "m", "junk", "x"))).__name__ == "Exception"


def test_the_tests_own_code_is_bound_by_the_memory_limit():
    code = "def f():\n    return 1\n"
    test = "assert f() == 1\nhoard = bytearray(4 << 30)"
    result = LocalExecutor(workers=1).run(RunRequest(code=code, tests=[{"kind": "assert", "code": test}],
                                                     limits={"memory_mb": 64}))
    assert (result.tests[0].verdict.value, result.tests[0].error_type) == ("memory", "MemoryError")


@pytest.mark.parametrize("leaf", [1, "s", None, []])
@pytest.mark.parametrize("box", [list, tuple])
def test_values_nested_up_to_the_limit_cross_and_one_level_more_does_not(box, leaf):
    def nest(depth):
        value = leaf
        for _ in range(depth):
            value = box([value])
        return value

    deepest = nest(runner.MAX_ENCODE_DEPTH)
    assert runner._decode(runner._encode(deepest, runner._no_handles), runner._no_handles) == deepest
    with pytest.raises(runner.CannotCross):
        runner._encode(nest(runner.MAX_ENCODE_DEPTH + 1), runner._no_handles)


def test_a_frame_is_read_whole_and_bytes_after_it_are_refused():
    import socket

    ours, theirs = socket.socketpair()
    with ours, theirs:
        big = list(range(40_000))  # well over one read's 64 KiB: it arrives in pieces
        runner._send_msg(theirs.fileno(), ("ok", big))
        assert runner._recv_msg(ours.fileno()) == ("ok", big)
        theirs.sendall(b"\x00\x00\x00\x02N")  # a frame cut short by the end of input
        theirs.shutdown(socket.SHUT_WR)
        assert runner._recv_msg(ours.fileno()) is None
    ours, theirs = socket.socketpair()
    with ours, theirs:
        runner._send_msg(theirs.fileno(), ("ok", 1))
        theirs.sendall(b"\x00\x00\x00\x01N")  # a second answer nobody asked for
        with pytest.raises(runner.CannotCross, match="more than one answer"):
            runner._recv_msg(ours.fileno())


def test_a_handle_asks_for_its_signature_only_when_the_test_does():
    # The candidate counts how often its callable's signature is read: a test that never asks must read 0.
    code = ("reads = []\nclass Counted:\n    @property\n    def __signature__(self):\n        reads.append(1)\n"
            "        return None\n    def __call__(self, x=1):\n        return len(reads)\ncounted = Counted()\n")
    tests = [{"kind": "assert", "code": "assert counted() == 0"},
             {"kind": "assert", "code": "import inspect\ninspect.signature(counted)\nassert counted() == 1"}]
    result = LocalExecutor(workers=1).run(RunRequest(code=code, tests=tests))
    assert [t.verdict.value for t in result.tests] == ["pass", "pass"], result.tests


def test_builtins_patched_at_the_top_level_stay_the_candidates_own_business():
    # The test's builtins are the checker's whatever the candidate patched. With assert tests only, nothing is
    # restored in the candidate's process (nothing there reports a verdict), so its own code sees its patch as
    # plain Python would; a call test, judged from what that process reports, sees builtins restored.
    code = "import builtins\nbuiltins.abs = lambda x: -1\ndef own():\n    return abs(-5)\n"
    asserts = LocalExecutor(workers=1).run(RunRequest(code=code, tests=[
        {"kind": "assert", "code": "assert own() == -1"}, {"kind": "assert", "code": "assert abs(-5) == 5"}]))
    assert [t.verdict.value for t in asserts.tests] == ["pass", "pass"], asserts.tests
    mixed = LocalExecutor(workers=1).run(RunRequest(code=code, tests=[
        {"kind": "call", "entry_point": "own", "expected": 5}, {"kind": "assert", "code": "assert own() == 5"}]))
    assert [t.verdict.value for t in mixed.tests] == ["pass", "pass"], mixed.tests


def test_builtins_broken_at_the_top_level_do_not_break_the_harness_that_serves_the_test():
    # The harness code answering the checker from the candidate's process uses the runner's own copy of builtins.
    code = ("import builtins\nbuiltins.len = lambda x: 0\nbuiltins.isinstance = lambda *a: True\n"
            "builtins.type = lambda *a: int\ndef answer():\n    return {'a': [1, (2, 3)]}\n")
    result = LocalExecutor(workers=1).run(RunRequest(code=code, tests=[
        {"kind": "assert", "code": "assert answer() == {'a': [1, (2, 3)]}"},
        {"kind": "assert", "code": "assert answer() == {'a': [1, (2, 4)]}"}], limits={"time_s": 2}))
    assert [t.verdict.value for t in result.tests] == ["pass", "fail"], result.tests


def test_a_tests_stdout_and_stderr_are_set_up_as_the_pipes_they_write_to():
    # Both are made once by the zygote and shared by every test process: they must behave as if made over the
    # test's own pipes (not seekable), in the checker and in the candidate's process alike.
    code = "import sys\ndef streams():\n    print('out'); print('err', file=sys.stderr)\n" \
           "    return [sys.stdout.seekable(), sys.stderr.seekable(), sys.stdout.encoding]\n"
    result = LocalExecutor(workers=1).run(RunRequest(code=code, tests=[
        {"kind": "call", "entry_point": "streams", "expected": [False, False, "utf-8"]},
        {"kind": "assert", "code": "import sys\nprint('checker')\n"
                                   "assert not sys.stdout.seekable() and not sys.stderr.seekable()"}]))
    assert [t.verdict.value for t in result.tests] == ["pass", "pass"], result.tests
    assert result.tests[0].stdout == "out\n" and result.tests[0].stderr == "err\n"
    assert result.tests[1].stdout == "checker\n"


def test_the_shared_writers_are_set_up_as_over_a_pipe_whatever_descriptors_1_and_2_are_now():
    import os

    with open(os.devnull, "w") as null:  # seekable, unlike the pipes the writers will write to
        saved = os.dup(1), os.dup(2)
        try:
            os.dup2(null.fileno(), 1)
            os.dup2(null.fileno(), 2)
            writers = runner._pipe_writers()
            after = os.fstat(1).st_ino, os.fstat(2).st_ino
        finally:
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
        assert after == (os.fstat(null.fileno()).st_ino,) * 2  # descriptors 1 and 2 given back as they were
    assert [w.fileno() for w in writers] == [1, 2] and not any(w.seekable() for w in writers)


def test_the_supervisor_compiles_a_test_as_its_checker_would():
    """The code objects the supervisor hands over carry the checker's file names and future flags (the runner's
    own, inherited by ``compile`` either way), so a test reads the same wherever it was compiled."""
    test = {"setup": "y = 2", "code": "def g(x: undefined_name):\n    return x\nassert g(y) == 2"}
    # Compiled from the source, or from the tree the purity check reads: the same code either way.
    (setup_code, test_code), pure = runner._compile_test(test, judge_purity=True)
    assert not pure  # an annotation: a steady checker never runs it
    (plain_setup, plain_test), unjudged = runner._compile_test(test)
    assert not unjudged and (plain_setup.co_code, plain_test.co_code) == (setup_code.co_code, test_code.co_code)
    assert (setup_code.co_filename, test_code.co_filename) == (runner.SETUP_CODE, runner.TEST_CODE)
    namespace: dict = {}
    exec(setup_code, namespace)
    exec(test_code, namespace)  # the annotation is never evaluated, as under the checker's own compile
    for judge_purity in (False, True):
        # left to the checker, which reports it
        assert runner._compile_test({"code": "assert ("}, judge_purity) == (None, False)
        too_long = "# " + "x" * runner.SUPERVISOR_COMPILE_LIMIT + "\nassert True"
        assert runner._compile_test({"code": too_long}, judge_purity) == (None, False)


@pytest.mark.parametrize("test, verdict, error_type", [
    ("def g(x: undefined_name):\n    return x\nassert g(f()) == 1", "pass", None),
    ("assert (f(", "error", "SyntaxError"),
    ("# " + "x" * (runner.SUPERVISOR_COMPILE_LIMIT + 1) + "\nassert f() == 2", "fail", "AssertionError"),
])
def test_tests_compiled_by_the_supervisor_or_by_the_checker_get_the_same_verdicts(test, verdict, error_type):
    result = LocalExecutor(workers=1).run(RunRequest(code="def f():\n    return 1\n",
                                                     tests=[{"kind": "assert", "code": test}]))
    assert (result.tests[0].verdict.value, result.tests[0].error_type) == (verdict, error_type), result.tests[0]


def test_a_warning_from_compiling_the_test_still_reaches_the_tests_stderr():
    """The supervisor leaves code that warns to the checker, whose compile prints the warning where it belongs."""
    for judge_purity in (False, True):
        assert runner._compile_test({"code": "assert (1 == 2, 'message')"}, judge_purity) == (None, False)
    result = LocalExecutor(workers=1).run(RunRequest(code="def f():\n    return 1\n", tests=[
        {"kind": "assert", "code": "assert (f() == 2, 'message')"}]))
    assert result.tests[0].verdict.value == "pass"  # always true, as in plain Python, which warns about it
    assert "SyntaxWarning: assertion is always true" in result.tests[0].stderr


def test_a_checker_is_handed_the_code_objects_the_supervisor_compiled():
    """What crosses to the checker: the test as before, and the supervisor's code objects beside it."""
    import marshal
    import os
    import socket
    import sys

    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    pipes = [os.pipe() for _ in range(2)]
    fds = (pipes[0][0], pipes[0][1], pipes[1][0], pipes[1][1])
    test = {"kind": "assert", "code": "assert f() == 1", "setup": ""}
    compiled, _pure = runner._compile_test(test)
    try:
        assert runner._BlankChecker.adopt(0, ours).start(test, {"time_s": 1}, b"t" * 16, fds, "/tmp", compiled)
        head, ancillary, _flags, _addr = theirs.recvmsg(4, socket.CMSG_SPACE(4 * 4))
        assert len(ancillary) == 1  # the four descriptors
        for _level, _kind, raw in ancillary:
            for i in range(0, len(raw) - len(raw) % 4, 4):
                os.close(int.from_bytes(raw[i : i + 4], sys.byteorder))
        size, body = int.from_bytes(head, "big"), b""
        while len(body) < size:
            body += theirs.recv(size - len(body))
        sent_test, _limits, _token, _workdir, sent_code, steady = marshal.loads(body)
        assert steady is False  # a checker for one test: it exits after reporting
        assert sent_test == test
        assert [c.co_filename for c in sent_code] == [runner.SETUP_CODE, runner.TEST_CODE]
        assert sent_code[1].co_code == compiled[1].co_code
    finally:
        theirs.close()
        for read_end, write_end in pipes:
            os.close(read_end)
            os.close(write_end)
