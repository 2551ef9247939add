"""The executor's contract: what a caller sends and what it gets back.

These pydantic models are the single source of truth for the HTTP API, the Python client, the CLI and the
runner. The runner (``sandbox/runner.py``) is stdlib-only, so it reads the request as plain JSON produced by
``RunRequest.model_dump(mode="json")`` and writes plain JSON that ``RunResult.model_validate`` accepts.

A request carries one candidate program and either a list of ``tests`` or a ``test_file``:

    {"code": "def add(a, b):\n    return a + b\n",
     "tests": [{"kind": "call", "entry_point": "add", "args": [1, 2], "expected": 3},
               {"kind": "assert", "code": "assert add(2, 2) == 4"},
               {"kind": "stdio", "stdin": "", "expected_stdout": ""},
               {"kind": "cases", "entry_point": "add", "cases": [{"args": "(1, 2)", "expected": "3"},
                                                                  {"args": "((1,), (2,))", "expected": "(1, 2)"}]}],
     "limits": {"time_s": 2, "memory_mb": 256, "output_bytes": 65536},
     "fail_fast": false}

A result has one entry per test, in request order (for a ``test_file``: in discovery order), and says which
version of this result format it is in (``format_version``, see ``RESULT_FORMAT_VERSION``).
"""

from __future__ import annotations

from enum import Enum
from typing import Annotated, Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, model_validator

from sandbox.literals import read_literal

# Server-side maxima. A request over them is rejected with a message naming the field; nothing is clamped.
MAX_TIME_S = 60.0
MAX_MEMORY_MB = 4096
MAX_OUTPUT_BYTES = 16 * 1024 * 1024
MAX_CODE_BYTES = 1024 * 1024
MAX_TESTS = 1000
MAX_CASES = 100_000  # inputs of one `cases` test; they are not tests, so MAX_TESTS does not count them

# The HTTP contract's names: the variable holding the service's bearer token, and the header a 429 answer
# carries (and a retry shows) to keep a request's place in the queue's line.
TOKEN_ENV = "SANDBOX_TOKEN"
TICKET_HEADER = "X-Queue-Ticket"

# The version of RunResult's format. Raise it when a change to the result could mislead a reader that knows only
# the older format (a new field, a changed meaning); clients refuse results newer than they know. Results
# without the field (from before it existed) are version 1.
RESULT_FORMAT_VERSION = 2  # 2: TestResult.case (which input of a `cases` test failed)

# The runner (sandbox/runner.py, stdlib-only, shipped alone) owns the defaults below and the test-id rule; this
# module restates them for callers that cannot import the runner, and tests/sandbox/test_contract.py checks that
# both agree.


def default_test_id(index: int) -> str:
    """The id ``tests[index]`` gets when the request gives it none."""
    return f"test_{index}"


class _Strict(BaseModel):
    # Unknown fields are a caller's typo, not something to ignore silently.
    model_config = ConfigDict(extra="forbid")


class Limits(_Strict):
    """Per-test limits; the same limits also bound loading the program (its top-level code)."""

    time_s: float = Field(5.0, gt=0, le=MAX_TIME_S, description="Wall-clock seconds per test.")
    memory_mb: int = Field(512, ge=16, le=MAX_MEMORY_MB, description="Address-space/memory cap per test, MiB.")
    output_bytes: int = Field(
        64 * 1024, ge=0, le=MAX_OUTPUT_BYTES, description="Bytes of stdout plus stderr kept per test."
    )


class AssertTest(_Strict):
    """Python code judged against the candidate (HumanEval's check, MBPP asserts).

    It runs in a checker process of its own, never in the candidate's: names it takes from the candidate's module
    arrive as values (builtins and the standard library's value types, rebuilt on the checker's side) or as handles
    whose calls and attributes run in the candidate's process; modules are imported afresh; builtins are the
    checker's own. See docs/runner.md, "The checker".
    """

    kind: Literal["assert"] = "assert"
    id: Optional[str] = Field(None, max_length=200)
    code: str = Field(..., max_length=MAX_CODE_BYTES)
    setup: Optional[str] = Field(
        None, max_length=MAX_CODE_BYTES,
        description="Trusted code the checker runs before `code`, e.g. a task's helpers (HumanEval/32's `poly`): the "
                    "names it defines win over the candidate's.",
    )


class CallTest(_Strict):
    """Call ``entry_point(*args, **kwargs)`` and compare the return value with ``expected``.

    Values travel as JSON, so tuples compare equal to lists. With ``tolerance`` set, floats (also nested in
    lists and dicts) compare with that absolute-or-relative tolerance.
    """

    kind: Literal["call"] = "call"
    id: Optional[str] = Field(None, max_length=200)
    entry_point: str = Field(..., min_length=1, max_length=200, pattern=r"^[A-Za-z_][A-Za-z0-9_.]*$")
    args: list[Any] = Field(default_factory=list)
    kwargs: dict[str, Any] = Field(default_factory=dict)
    expected: Any = None
    tolerance: Optional[float] = Field(None, ge=0)


class StdioTest(_Strict):
    """Run the candidate as a script (``__name__ == "__main__"``) with ``stdin``; compare its stdout."""

    kind: Literal["stdio"] = "stdio"
    id: Optional[str] = Field(None, max_length=200)
    stdin: str = Field("", max_length=MAX_OUTPUT_BYTES)
    expected_stdout: str = Field(..., max_length=MAX_OUTPUT_BYTES)
    normalize_whitespace: bool = Field(
        True, description="Ignore trailing whitespace on each line and trailing blank lines."
    )
    compare: Literal["lines", "tokens"] = Field(
        "lines", description="`lines`: line by line (see normalize_whitespace). `tokens`: LiveCodeBench's rule: "
        "the output stripped, then each line stripped; same number of lines; each line equal, or its "
        "whitespace-separated tokens equal as decimal numbers (`1.0` equals `1.00`).")


class Case(_Strict):
    """One input of a ``cases`` test: positional arguments and the expected return value, as Python literals."""

    args: str = Field(..., max_length=MAX_CODE_BYTES,
                      description="A Python literal of a list or tuple of positional arguments, e.g. `([1, 2], 3)`.")
    expected: str = Field("None", max_length=MAX_CODE_BYTES,
                          description="A Python literal of the expected return value, e.g. `(1, {2, 3}, nan)`.")
    alternatives: list[str] = Field(default_factory=list, max_length=16,
                                    description="More accepted return values (literals), compared the same way.")
    time_s: Optional[float] = Field(None, gt=0, le=MAX_TIME_S,
                                    description="This input's own time limit, within the test's `limits.time_s`.")
    tolerance: Optional[float] = Field(None, ge=0, description="Absolute tolerance for numbers (see CasesTest).")

    @model_validator(mode="after")
    def _literals_read(self) -> "Case":
        args = read_literal(self.args)
        if not isinstance(args, (list, tuple)):
            raise ValueError("`args` must be a literal list or tuple of positional arguments")
        for text in [self.expected, *self.alternatives]:
            read_literal(text)
        return self


class CasesTest(_Strict):
    """Call ``entry_point`` on many inputs in one process, in order, stopping at the first that does not pass.

    Each case's arguments go to the executing side; its expected value never does: return values travel back
    (as ``marshal`` data, lossless for plain types) and are compared in the runner's judge, as for ``call``.
    A case passes when its value equals ``expected`` (or one of its ``alternatives``) under ``compare``:

    - ``equal``: ``got == expected`` (Python equality: tuples differ from lists, ``1 == 1.0``);
    - ``set``: ``set(got) == set(expected)`` (order and repeats ignored);
    - ``tuple_is_list``: like ``equal``, but a tuple result compares as a list (for expected values from JSON);
    - ``not_none``: ``expected`` is a bool; a bool result must equal it, any other result must be non-None
      exactly when ``expected`` is True;
    - ``returns``: any return value passes (only exceptions and time limits fail);
    - ``polynomial_root``: ``args[0]`` holds coefficients ``c0..cn``; passes when ``|sum(ci * got**i)|`` is at
      most the case's ``tolerance`` (0 when unset).

    Otherwise, with the case's ``tolerance`` set, numbers and same-length lists/tuples of numbers of the same
    type as ``expected`` pass when ``|got - expected| <= tolerance + rel_tolerance * |expected|`` elementwise
    (numpy's ``allclose``). A case's ``time_s`` is enforced inside the process (an interval timer); the test as
    a whole runs under ``limits.time_s`` (wall clock and CPU), enforced from outside like every test.
    The result names the failing case in ``TestResult.case``.
    """

    kind: Literal["cases"] = "cases"
    id: Optional[str] = Field(None, max_length=200)
    entry_point: str = Field(..., min_length=1, max_length=200, pattern=r"^[A-Za-z_][A-Za-z0-9_.]*$")
    cases: list[Case] = Field(..., min_length=1, max_length=MAX_CASES)
    compare: Literal["equal", "set", "tuple_is_list", "not_none", "returns", "polynomial_root"] = "equal"
    on_instance: bool = Field(False, description="`entry_point` is `Class.method`: call the method of one "
                            "`Class()` made before the first case (LeetCode's `Solution`), or a module-level "
                            "function named `method` when the program defines no `Class`.")
    rel_tolerance: float = Field(0.0, ge=0, description="Relative tolerance added to a case's `tolerance`.")


Test = Annotated[Union[AssertTest, CallTest, StdioTest, CasesTest], Field(discriminator="kind")]


class RunRequest(_Strict):
    """One candidate program and its tests."""

    code: str = Field(..., max_length=MAX_CODE_BYTES, description="The candidate program (Python source).")
    tests: Optional[list[Test]] = Field(None, max_length=MAX_TESTS)
    test_file: Optional[str] = Field(
        None,
        max_length=MAX_CODE_BYTES,
        description="A unittest or pytest module that does `import solution` (or `from solution import ...`).",
    )
    limits: Limits = Field(default_factory=Limits)
    fail_fast: bool = Field(False, description="After the first test that does not pass, mark the rest skipped.")

    @model_validator(mode="after")
    def _tests_xor_test_file(self) -> "RunRequest":
        if (self.tests is None) == (self.test_file is None):
            raise ValueError("give exactly one of `tests` (a list) or `test_file` (a module's source)")
        if self.tests is not None:
            if not self.tests:
                raise ValueError("`tests` is empty: give at least one test")
            seen: set[str] = set()
            for index, test in enumerate(self.tests):
                if test.id is None:
                    test.id = default_test_id(index)
                if test.id in seen:
                    raise ValueError(f"`tests[{index}].id` repeats the id {test.id!r}; ids must be unique")
                seen.add(test.id)
        return self


class BatchRequest(_Strict):
    """Several programs in one call; results come back in request order."""

    runs: list[RunRequest] = Field(..., min_length=1, max_length=MAX_TESTS)


class Verdict(str, Enum):
    PASS = "pass"  # the test ran and its check held
    FAIL = "fail"  # wrong answer or failed assertion
    ERROR = "error"  # an exception other than AssertionError, or the harness was subverted
    TIMEOUT = "timeout"  # wall-clock or CPU limit
    MEMORY = "memory"  # memory limit (MemoryError or an OOM kill)
    OUTPUT_LIMIT = "output_limit"  # printed more than limits.output_bytes
    CRASH = "crash"  # killed by a signal (segfault, abort, ...)
    SKIPPED = "skipped"  # not run because of fail_fast


# error_type values of checker refusals (the runner raises exceptions of these names; test_contract checks them):
CHECKER_ERROR_TYPES = {
    "HandleComparison": "the test compared, hashed or truth-tested an object that lives in the candidate's process",
    "CannotCross": "a value could not cross between the checker and the candidate's process (a function or class "
                   "defined by the test passed to the candidate, or a malformed answer from the candidate's side)",
    "CandidateDied": "the candidate's process exited while the test was using it",
}


class TestResult(_Strict):
    __test__ = False  # not a pytest class

    id: str
    verdict: Verdict
    program_error: bool = Field(
        False, description="True when the program itself failed to load (syntax error, import, top-level code)."
    )
    error_type: Optional[str] = Field(
        None, description="Exception class name, e.g. 'IndexError'; for an assert test also one of the checker's "
                          "refusals: " + ", ".join(sorted(CHECKER_ERROR_TYPES)) + ".")
    message: Optional[str] = None
    traceback: Optional[str] = Field(None, description="Traceback with the harness's frames removed.")
    line: Optional[int] = Field(None, description="1-based line in the candidate's code where it failed.")
    case: Optional[int] = Field(None, description="For a `cases` test: the 0-based index of the failing case.")
    stdout: str = ""
    stderr: str = ""
    truncated: bool = Field(False, description="stdout/stderr were cut at limits.output_bytes.")
    duration_ms: float = 0.0
    peak_memory_kb: Optional[int] = None


class RunStatus(str, Enum):
    COMPLETED = "completed"  # every test has a verdict (whatever it is)
    INFRA_ERROR = "infra_error"  # the sandbox itself failed; no verdict can be trusted


class RunResult(_Strict):
    format_version: int = Field(
        RESULT_FORMAT_VERSION, ge=1,
        description="Version of this result's format; a client refuses one newer than it knows.",
    )
    status: RunStatus
    retryable: bool = Field(False, description="For infra_error: the same request may succeed if sent again.")
    infra_message: Optional[str] = None
    passed: bool = Field(False, description="Every test passed (and there was at least one).")
    counts: dict[Verdict, int] = Field(default_factory=dict)
    tests: list[TestResult] = Field(default_factory=list)
    duration_ms: float = 0.0
    cached: bool = Field(
        False, description="The service answered from its result cache (an identical request, or a duplicate in the "
        "same batch, was run) instead of running the program again.",
    )

    @classmethod
    def infra_error(cls, message: str, *, retryable: bool) -> "RunResult":
        return cls(status=RunStatus.INFRA_ERROR, retryable=retryable, infra_message=message)

    def first_failure(self) -> Optional[TestResult]:
        return next((t for t in self.tests if t.verdict not in (Verdict.PASS, Verdict.SKIPPED)), None)


class BatchResult(_Strict):
    results: list[RunResult]
