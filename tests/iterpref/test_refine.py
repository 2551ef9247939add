import json
import os
import signal
import subprocess
import sys
import time

import pytest

from iterpref.cli import main
from iterpref.errors import ConfigError, DataError, ExecutorUnavailable, SamplerError
from iterpref.records import Task, to_json_line
from iterpref.refine import load_trajectories, refine
from iterpref.samplers.scripted import ScriptedSampler
from iterpref.tasks import write_tasks
from sandbox.models import RunResult

LocalExecutor = pytest.importorskip("sandbox.local").LocalExecutor


def fence(code):
    return f"Here you go:\n```python\n{code}```\n"


TASKS = [
    Task(task_id="add", prompt="def add(a, b):\n    \"\"\"Add.\"\"\"\n", entry_point="add",
         tests=[{"kind": "call", "id": "small", "entry_point": "add", "args": [1, 2], "expected": 3},
                {"kind": "call", "id": "neg", "entry_point": "add", "args": [-1, 1], "expected": 0}]),
    Task(task_id="first", prompt="def sq(x): ...", entry_point="sq",
         tests=[{"kind": "assert", "code": "assert sq(3) == 9"}]),
    Task(task_id="echo", prompt="Read a line and print it twice.",
         tests=[{"kind": "stdio", "stdin": "hi\n", "expected_stdout": "hihi\n"}]),
    Task(task_id="never", prompt="def one(): ...", entry_point="one",
         tests=[{"kind": "assert", "code": "assert one() == 1"}]),
]
SCRIPT = {
    "add": [fence("def add(a, b):\n    return a - b\n"), fence("def add(a, b):\n    return a + b\n")],
    "first": [fence("def sq(x):\n    return x * x\n")],
    "echo": [fence("s = input()\nprint(s[5])\n"), fence("s = input()\nprint(s)\n"),
             fence("s = input()\nprint(s * 2)\n")],
    "never": [fence("def one():\n    return 2\n")],
}


class CountingExecutor:
    """The real local executor, counting calls so tests can check that each round is one batch."""

    def __init__(self):
        self.inner = LocalExecutor()
        self.batches = []

    def run_batch(self, requests):
        self.batches.append(len(requests))
        return self.inner.run_batch(requests)


@pytest.fixture(scope="module")
def executor():
    executor = CountingExecutor()
    yield executor
    close = getattr(executor.inner, "close", None)
    if close:
        close()


def test_loop_repairs_until_pass_and_records_every_attempt(tmp_path, executor):
    out = tmp_path / "traj.jsonl"
    sampler = ScriptedSampler(SCRIPT)
    executor.batches.clear()
    summary = refine(TASKS, sampler, executor, out, max_rounds=3, progress=False)
    assert (summary.passed, summary.failed, summary.attempts_written) == (3, 1, 1 + 2 + 3 + 4)
    assert summary.pass_round == {"first": 0, "add": 1, "echo": 2}
    # One sample call and one executor batch per round, holding every task still active.
    assert sampler.calls == 4 and executor.batches == [4, 3, 2, 1]

    trajectories = load_trajectories(out)
    assert [a.passed for a in trajectories["add"]] == [False, True]
    assert [a.round for a in trajectories["never"]] == [0, 1, 2, 3]
    failed = trajectories["add"][0]
    assert failed.code == "def add(a, b):\n    return a - b\n" and failed.sampler == "scripted"
    assert [t["verdict"] for t in failed.result["tests"]] == ["fail", "fail"]
    # The repair prompt carries the failing call, the expected value and the numbered code.
    repair = trajectories["add"][1].messages[-1]["content"]
    assert "Your code failed 2 of 2 tests" in repair and "add(*[1, 2])" in repair and "Expected: 3" in repair
    assert "2 |     return a - b" in repair
    shown = {"role": "assistant", "content": f"```python\n{failed.code.rstrip()}\n```"}
    assert trajectories["add"][1].messages[-2] == shown
    # A runtime error reports its type and the candidate's line.
    crash = trajectories["echo"][1].messages[-1]["content"]
    assert "IndexError" in crash and "At line 2 of your code: print(s[5])" in crash


def test_resume_continues_unfinished_tasks_without_duplicates(tmp_path, executor):
    out = tmp_path / "traj.jsonl"
    refine(TASKS, ScriptedSampler(SCRIPT), executor, out, max_rounds=1, progress=False)
    before = out.read_text().splitlines()
    assert len(before) == 1 + 2 + 2 + 2
    # Same rounds again: everything is finished, nothing is sampled or written.
    idle = ScriptedSampler(SCRIPT)
    again = refine(TASKS, idle, executor, out, max_rounds=1, progress=False)
    assert idle.calls == 0 and again.already_done == 4 and out.read_text().splitlines() == before
    # More rounds: echo and never continue from their last attempt; add and first are done.
    more = ScriptedSampler(SCRIPT)
    summary = refine(TASKS, more, executor, out, max_rounds=2, progress=False)
    after = out.read_text().splitlines()
    assert after[: len(before)] == before and summary.attempts_written == 2
    trajectories = load_trajectories(out)
    assert [a.round for a in trajectories["echo"]] == [0, 1, 2] and trajectories["echo"][-1].passed
    # The resumed prompt was rebuilt from the file: it shows round 1's code and its failure.
    assert "print(s)" in trajectories["echo"][2].messages[-1]["content"]


def test_torn_last_line_is_dropped_and_redone(tmp_path, executor):
    out = tmp_path / "traj.jsonl"
    refine(TASKS[:2], ScriptedSampler(SCRIPT), executor, out, max_rounds=0, progress=False)
    complete = out.read_text()
    with open(out, "a") as handle:
        handle.write('{"task_id": "echo", "round": 0, "co')  # what a kill mid-write leaves
    refine(TASKS[:3], ScriptedSampler(SCRIPT), executor, out, max_rounds=0, progress=False)
    lines = out.read_text().splitlines()
    assert out.read_text().startswith(complete) and len(lines) == 3
    assert json.loads(lines[-1])["task_id"] == "echo"


def test_damaged_file_and_failing_executor_are_errors(tmp_path, executor):
    out = tmp_path / "traj.jsonl"
    out.write_text(to_json_line(load_one_attempt(round_=1)))
    with pytest.raises(DataError, match="rounds must run 0, 1, 2"):
        refine(TASKS, ScriptedSampler(SCRIPT), executor, out, progress=False)

    class Unreachable:
        def run_batch(self, requests):
            raise ConnectionError("connection refused")

    with pytest.raises(ExecutorUnavailable, match="connection refused"):
        refine(TASKS, ScriptedSampler(SCRIPT), Unreachable(), tmp_path / "t2.jsonl", progress=False)
    with pytest.raises(SamplerError, match="no responses for task 'add'"):
        refine(TASKS, ScriptedSampler({}), executor, tmp_path / "t3.jsonl", progress=False)


def load_one_attempt(round_):
    from iterpref.records import Attempt

    return Attempt(task_id="add", round=round_, code="", passed=False, result={})


def _write_inputs(tmp_path, tasks, script):
    tasks_path, script_path = tmp_path / "tasks.jsonl", tmp_path / "script.jsonl"
    write_tasks(tasks, tasks_path)
    script_path.write_text("".join(json.dumps({"task_id": k, "responses": v}) + "\n" for k, v in script.items()))
    return tasks_path, script_path


def test_cli_runs_scripted_and_reports_unreachable_sampler(tmp_path, capsys):
    tasks_path, script_path = _write_inputs(tmp_path, TASKS, SCRIPT)
    out = tmp_path / "traj.jsonl"
    assert main(["refine", str(tasks_path), "-o", str(out), "--sampler", "scripted", "--script", str(script_path),
                 "--max-rounds", "2"]) == 0
    assert "3/4 tasks pass" in capsys.readouterr().out
    assert main(["refine", str(tasks_path), "-o", str(tmp_path / "x.jsonl"), "--sampler", "openai",
                 "--base-url", "http://127.0.0.1:9/v1", "--model", "m", "--retries", "0"]) == 2
    err = capsys.readouterr().err.splitlines()[-1]  # the lines before it are the progress bar
    assert err.startswith("iterpref refine: error: cannot reach http://127.0.0.1:9/v1")
    assert main(["refine", str(tasks_path), "-o", str(out), "--executor", "ftp://x"]) == 2
    assert "--executor must be `local` or an http(s):// URL" in capsys.readouterr().err
    assert main(["refine", str(tasks_path), "-o", str(out), "--executor", "http://127.0.0.1:9"]) == 2
    assert "cannot reach the sandbox executor at http://127.0.0.1:9" in capsys.readouterr().err


@pytest.mark.timeout(240)
def test_sigkill_mid_run_loses_and_duplicates_nothing(tmp_path):
    # 40 tasks in waves of 4; each program sleeps so the run lasts long enough to be killed in the middle.
    tasks = [Task(task_id=f"t{i:02d}", prompt="def f(): ...", entry_point="f",
                  tests=[{"kind": "assert", "code": "assert f() == 1"}]) for i in range(40)]
    slow = "import time\ntime.sleep(0.15)\n"
    script = {t.task_id: [fence(slow + "def f():\n    return 0\n"), fence(slow + "def f():\n    return 1\n")]
              for t in tasks}
    tasks_path, script_path = _write_inputs(tmp_path, tasks, script)
    out = tmp_path / "traj.jsonl"
    command = [sys.executable, "-c", "import sys; from iterpref.cli import main; sys.exit(main(sys.argv[1:]))",
               "refine", str(tasks_path), "-o", str(out), "--sampler", "scripted", "--script", str(script_path),
               "--wave-size", "4", "--max-rounds", "3"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and (not out.exists() or out.read_text().count("\n") < 12):
            time.sleep(0.05)
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.wait()
    reported = out.read_text()
    reported = reported[: reported.rfind("\n") + 1]  # a torn line was never reported
    assert 12 <= reported.count("\n") < 80, "the kill should land in the middle of the run"

    assert main(["refine", str(tasks_path), "-o", str(out), "--sampler", "scripted", "--script", str(script_path),
                 "--wave-size", "4", "--max-rounds", "3"]) == 0
    final = out.read_text()
    assert final.startswith(reported)
    keys = [(r["task_id"], r["round"]) for r in map(json.loads, final.splitlines())]
    assert len(keys) == len(set(keys)) == 80
    trajectories = load_trajectories(out)
    assert len(trajectories) == 40 and all([a.passed for a in t] == [False, True] for t in trajectories.values())


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_real_run_with_bundled_model(tmp_path, executor):
    from iterpref.samplers.hf import HFSampler

    tasks = [Task(task_id="add", prompt="def add(a, b):\n    \"\"\"Return a + b.\"\"\"\n", entry_point="add",
                  tests=[{"kind": "call", "entry_point": "add", "args": [2, 3], "expected": 5}]),
             Task(task_id="rev", prompt="def rev(s):\n    \"\"\"Return s reversed.\"\"\"\n", entry_point="rev",
                  tests=[{"kind": "call", "entry_point": "rev", "args": ["ab"], "expected": "ba"}])]
    sampler = HFSampler(batch_size=2, max_new_tokens=32, temperature=0.7, seed=0)
    out = tmp_path / "traj.jsonl"
    summary = refine(tasks, sampler, executor, out, max_rounds=1, progress=False)
    trajectories = load_trajectories(out)
    assert set(trajectories) == {"add", "rev"} and summary.passed + summary.failed == 2
    for attempts in trajectories.values():
        assert attempts[0].sampler.startswith("hf:") and attempts[0].response
        assert attempts[0].result["status"] == "completed"
        assert len(attempts) == (1 if attempts[0].passed else 2)


class InfraFaults:
    """The real executor, except that chosen tasks' programs come back as infra errors (a sandbox failure)."""

    def __init__(self, inner, retryable_once=(), always=()):
        self.inner, self.retryable_once, self.always = inner, set(retryable_once), set(always)
        self.sent = []

    def run_batch(self, requests):
        self.sent.append([r.code for r in requests])
        real = self.inner.run_batch(requests)
        out = []
        for request, result in zip(requests, real):
            if any(marker in request.code for marker in self.always):
                out.append(RunResult.infra_error("runner died", retryable=False))
            elif any(marker in request.code for marker in self.retryable_once):
                self.retryable_once -= {m for m in self.retryable_once if m in request.code}
                out.append(RunResult.infra_error("worker restarted", retryable=True))
            else:
                out.append(result)
        return out


def test_infra_errors_are_sent_once_and_left_for_the_next_run(tmp_path, executor):
    out = tmp_path / "traj.jsonl"
    faulty = InfraFaults(executor.inner, retryable_once={"x * x"}, always={"return 2"})
    summary = refine(TASKS, ScriptedSampler(SCRIPT), faulty, out, max_rounds=2, progress=False)
    # Retrying is the executor client's job: the loop sends `first` once, and an infra error that comes back,
    # retryable or not, gives no line; `first` and `never` are unfinished.
    assert sum("x * x" in code for batch in faulty.sent for code in batch) == 1
    assert summary.unfinished == 2 and "first" not in summary.pass_round
    trajectories = load_trajectories(out)
    assert "never" not in trajectories and "first" not in trajectories
    # The next run (executor healthy again) picks both up from round 0.
    again = refine(TASKS, ScriptedSampler(SCRIPT), executor, out, max_rounds=2, progress=False)
    assert again.already_done == 2 and [a.round for a in load_trajectories(out)["never"]] == [0, 1, 2]
    assert load_trajectories(out)["first"][0].passed
    # An executor that cannot judge anything stops the job.
    with pytest.raises(ExecutorUnavailable, match="could not judge any program"):
        refine(TASKS[3:], ScriptedSampler(SCRIPT), InfraFaults(executor.inner, always={"def"}), tmp_path / "x.jsonl",
               progress=False)


def test_a_program_is_sent_only_as_often_as_the_client_retries():
    """One retry layer: judge_batch adds no tries of its own around the client's (which once made 3 x 3 = 9)."""
    import httpx

    from iterpref.executor import judge_batch
    from iterpref.tasks import to_request
    from sandbox.client import Client, RetryPolicy

    sent = []

    def answer_infra_error(request):
        body = json.loads(request.content)
        batch = request.url.path == "/v1/batch"
        runs = body["runs"] if batch else [body]
        sent.extend(run["code"] for run in runs)
        results = [RunResult.infra_error("worker restarted", retryable=True).model_dump(mode="json") for _ in runs]
        return httpx.Response(200, json={"results": results} if batch else results[0])

    policy = RetryPolicy(infra_attempts=3, backoff_s=0.0, max_backoff_s=0.0)
    with Client("http://executor.test", retry=policy, transport=httpx.MockTransport(answer_infra_error)) as client:
        requests = [to_request(TASKS[1], "def sq(x):\n    return x * x\n"), to_request(TASKS[3], "def one(): 1\n")]
        results = judge_batch(client, requests)
    assert sorted(sent) == sorted([r.code for r in requests] * 3)  # three tries each, the client's policy
    assert [(r.status.value, r.retryable) for r in results] == [("infra_error", True)] * 2

    class Short:
        def run_batch(self, requests):
            return []

    with pytest.raises(ExecutorUnavailable, match="returned 0 results for 2 programs"):
        judge_batch(Short(), requests)


@pytest.mark.timeout(120)
def test_refine_through_the_http_service(tmp_path, capsys):
    from sandbox.launch import start_service

    with start_service("process") as service:
        tasks_path, script_path = _write_inputs(tmp_path, TASKS, SCRIPT)
        out = tmp_path / "traj.jsonl"
        assert main(["refine", str(tasks_path), "-o", str(out), "--executor", service.url, "--sampler", "scripted",
                     "--script", str(script_path), "--max-rounds", "2"]) == 0
        assert "3/4 tasks pass" in capsys.readouterr().out
        assert {t: [a.passed for a in atts][-1] for t, atts in load_trajectories(out).items()} == {
            "add": True, "first": True, "echo": True, "never": False}


def test_readers_ignore_a_line_still_being_written(tmp_path):
    out = tmp_path / "traj.jsonl"
    out.write_text(to_json_line(load_one_attempt(round_=0)) + '{"task_id": "add", "rou')
    assert [a.round for a in load_trajectories(out)["add"]] == [0]
    assert out.read_text().endswith('"rou')  # only refine's repair=True rewrites the file


class SampledScript(ScriptedSampler):
    """A scripted sampler whose replies also depend on the candidate: ``script[task][round][sample]``. The loop
    puts a task's candidates side by side in one call, so the k-th prompt of a (task, round) is sample k."""

    def __init__(self, script):
        super().__init__({task_id: ["unused"] for task_id in script})
        self.script = script  # type: ignore[assignment]

    def generate(self, prompts):
        self.calls += 1
        seen: dict = {}
        replies = []
        for prompt in prompts:
            sample = seen.get((prompt.task_id, prompt.round), 0)
            seen[(prompt.task_id, prompt.round)] = sample + 1
            rounds = self.script[prompt.task_id]
            replies.append(rounds[min(prompt.round, len(rounds) - 1)][sample])
        return replies


SAMPLED = {
    # Round 0: nothing passes; sample 1 passes one test of two, so round 1 repairs it; round 1's samples 1 and 2
    # pass, and the task stops there.
    "add": [[fence("def add(a, b):\n    return a - b\n"), fence("def add(a, b):\n    return 0\n"),
             fence("def add(a, b) return\n")],
            [fence("def add(a, b):\n    return a * b\n"), fence("def add(a, b):\n    return a + b\n"),
             fence("def add(a, b):\n    return b + a\n")]],
    "first": [[fence("def sq(x):\n    return x\n"), fence("def sq(x):\n    return x + x\n"),
               fence("def sq(x):\n    return x * x\n")]],
    # Every round-0 candidate fails alike (no test passes): ties go to sample 0, whose IndexError is on line 2.
    "echo": [[fence("s = input()\nprint(s[5])\n"), fence("print(1)\n"), fence("print(2)\n")],
             [fence("s = input()\nprint(s * 2)\n"), fence("print(3)\n"), fence("print(4)\n")]],
    "never": [[fence("def one():\n    return 2\n")] * 3],
}


def test_repair_samples_draw_candidates_every_round_and_repair_the_best_failing_one(tmp_path, executor):
    out = tmp_path / "traj.jsonl"
    sampler = SampledScript(SAMPLED)
    executor.batches.clear()
    summary = refine(TASKS, sampler, executor, out, max_rounds=2, samples=3, progress=False)
    assert summary.pass_round == {"first": 0, "add": 1, "echo": 1} and summary.failed == 1
    # One sampler call and one executor batch per round, each holding 3 candidates of every active task.
    assert sampler.calls == 3 and executor.batches == [12, 9, 3]
    trajectories = load_trajectories(out)
    add = trajectories["add"]
    assert [(a.round, a.sample, a.parent, a.passed) for a in add] == [
        (0, 0, None, False), (0, 1, None, False), (0, 2, None, False),
        (1, 0, 1, False), (1, 1, 1, True), (1, 2, 1, True)]
    # Round 1 was prompted with the repaired candidate's code and failure, not another sibling's.
    assert "2 |     return 0" in add[3].messages[-1]["content"]
    assert [(a.round, a.sample) for a in trajectories["first"]] == [(0, 0), (0, 1), (0, 2)]
    assert [a.parent for a in trajectories["echo"] if a.round == 1] == [0, 0, 0]
    assert len(trajectories["never"]) == 9 and summary.attempts_written == 6 + 3 + 6 + 9


def test_pairs_from_repair_samples_use_only_ancestors_and_record_trace_lines(tmp_path, executor):
    from iterpref.pairs import build_pairs, round0_prompts

    out = tmp_path / "traj.jsonl"
    refine(TASKS, SampledScript(SAMPLED), executor, out, max_rounds=2, samples=3, progress=False)
    trajectories = load_trajectories(out)
    pairs, summary = build_pairs(trajectories, round0_prompts(trajectories), pairs_per_task=5)
    by_task = {p.task_id: p for p in pairs}
    assert summary.passed_first_try == 1 and summary.never_passed == 1 and summary.tasks_with_pairs == 2
    # add: chosen is the first passing candidate; rejected only its parent (round 0, sample 1), never a sibling.
    assert [p.task_id for p in pairs].count("add") == 1
    assert by_task["add"].chosen == "def add(a, b):\n    return a + b\n"
    assert by_task["add"].rejected == "def add(a, b):\n    return 0\n"
    assert (by_task["add"].chosen_round, by_task["add"].rejected_round) == (1, 0)
    # echo's rejected failed with IndexError on its line 2: the executor's line is kept for line+trace.
    assert by_task["echo"].rejected_trace_lines == [2]
    assert by_task["add"].rejected_trace_lines == []  # wrong answers stop in the test, not in the candidate


def test_resume_with_repair_samples_continues_from_the_same_candidate(tmp_path, executor):
    out = tmp_path / "traj.jsonl"
    refine(TASKS, SampledScript(SAMPLED), executor, out, max_rounds=0, samples=3, progress=False)
    assert len(out.read_text().splitlines()) == 12
    summary = refine(TASKS, SampledScript(SAMPLED), executor, out, max_rounds=1, samples=3, progress=False)
    assert summary.already_done == 1 and summary.attempts_written == 9
    trajectories = load_trajectories(out)
    assert [a.parent for a in trajectories["add"] if a.round == 1] == [1, 1, 1]
    assert trajectories["add"][4].passed and len(trajectories["first"]) == 3


def test_one_first_candidate_leaves_a_pair_where_three_would_have_passed_at_once(tmp_path, executor):
    from iterpref.pairs import build_pairs, round0_prompts

    out = tmp_path / "traj.jsonl"
    executor.batches.clear()
    summary = refine(TASKS, SampledScript(SAMPLED), executor, out, max_rounds=2, samples=3, first_samples=1,
                     progress=False)
    # Round 0 draws one candidate per task, the repair rounds three.
    assert executor.batches == [4, 12, 3]
    assert summary.pass_round == {"add": 1, "first": 1, "echo": 1} and summary.failed == 1
    trajectories = load_trajectories(out)
    assert [(a.round, a.sample, a.parent, a.passed) for a in trajectories["first"]] == [
        (0, 0, None, False), (1, 0, 0, False), (1, 1, 0, False), (1, 2, 0, True)]
    # With three first candidates "first" passed at round 0 and gave no pair; with one, it gives one.
    pairs, pair_summary = build_pairs(trajectories, round0_prompts(trajectories))
    assert pair_summary.tasks_with_pairs == 3
    first = next(p for p in pairs if p.task_id == "first")
    assert (first.chosen, first.rejected) == ("def sq(x):\n    return x * x\n", "def sq(x):\n    return x\n")


def test_a_resumed_wave_draws_each_task_the_count_of_its_own_round(tmp_path, executor):
    out = tmp_path / "traj.jsonl"
    refine(TASKS[:2], SampledScript(SAMPLED), executor, out, max_rounds=0, samples=3, first_samples=1,
           progress=False)
    executor.batches.clear()
    # add and first continue at round 1 (three candidates each); echo and never start at round 0 (one each).
    refine(TASKS, SampledScript(SAMPLED), executor, out, max_rounds=1, samples=3, first_samples=1, progress=False)
    assert executor.batches == [3 + 3 + 1 + 1, 3 + 3]
    trajectories = load_trajectories(out)
    assert [(a.round, a.sample, a.parent) for a in trajectories["echo"]] == [
        (0, 0, None), (1, 0, 0), (1, 1, 0), (1, 2, 0)]
    assert [(a.round, a.sample) for a in trajectories["add"]] == [(0, 0), (1, 0), (1, 1), (1, 2)]
    with pytest.raises(ConfigError, match="first_samples"):
        refine(TASKS, SampledScript(SAMPLED), executor, out, samples=3, first_samples=0, progress=False)


def test_files_without_sample_and_parent_still_read_and_pair(tmp_path, executor):
    out = tmp_path / "traj.jsonl"
    refine(TASKS, ScriptedSampler(SCRIPT), executor, out, max_rounds=3, progress=False)
    # What an iterpref before repair sampling wrote: the same lines without the two fields.
    old = tmp_path / "old.jsonl"
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    for line in lines:
        del line["sample"], line["parent"]
    old.write_text("".join(json.dumps(line) + "\n" for line in lines))
    from iterpref.pairs import build_pairs, round0_prompts

    trajectories = load_trajectories(old)
    assert [a.round for a in trajectories["echo"]] == [0, 1, 2]
    pairs, summary = build_pairs(trajectories, round0_prompts(trajectories), select="first", pairs_per_task=2)
    echo = [p for p in pairs if p.task_id == "echo"]
    assert [p.rejected_round for p in echo] == [0, 1] and summary.tasks_with_pairs == 2
    # Resuming an old file with more rounds appends single-sample attempts in the same shape.
    refine(TASKS, ScriptedSampler(SCRIPT), executor, old, max_rounds=4, progress=False)
    assert len(load_trajectories(old)["never"]) == 5


def test_cli_repair_samples(tmp_path, capsys):
    tasks_path, script_path = _write_inputs(tmp_path, TASKS, SCRIPT)
    out = tmp_path / "traj.jsonl"
    assert main(["refine", str(tasks_path), "-o", str(out), "--sampler", "scripted", "--script", str(script_path),
                 "--max-rounds", "1", "--repair-samples", "2"]) == 0
    assert len(load_trajectories(out)["never"]) == 4
    assert main(["refine", str(tasks_path), "-o", str(tmp_path / "g.jsonl"), "--repair-samples", "3",
                 "--temperature", "0"]) == 2
    assert "greedy decoding" in capsys.readouterr().err
    assert main(["refine", str(tasks_path), "-o", str(tmp_path / "h.jsonl"), "--first-samples", "2",
                 "--temperature", "0"]) == 2
    assert "greedy decoding" in capsys.readouterr().err
    assert main(["refine", str(tasks_path), "-o", str(tmp_path / "h.jsonl"), "--first-samples", "0"]) == 2
    assert "--first-samples must be at least 1" in capsys.readouterr().err
    one_first = tmp_path / "one-first.jsonl"
    assert main(["refine", str(tasks_path), "-o", str(one_first), "--sampler", "scripted", "--script",
                 str(script_path), "--max-rounds", "1", "--repair-samples", "2", "--first-samples", "1"]) == 0
    assert [(a.round, a.sample) for a in load_trajectories(one_first)["never"]] == [(0, 0), (1, 0), (1, 1)]


def test_brief_repair_prompts_repeat_the_request_and_say_only_how_it_failed(tmp_path, executor):
    out = tmp_path / "traj.jsonl"
    summary = refine(TASKS, ScriptedSampler(SCRIPT), executor, out, max_rounds=3, repair_style="brief",
                     progress=False)
    assert summary.pass_round == {"first": 0, "add": 1, "echo": 2}  # the same replies, so the same outcome
    trajectories = load_trajectories(out)
    first = trajectories["add"][0].messages
    repair = trajectories["add"][1].messages
    # The first request, word for word, with one note appended; the failing code is nowhere in it.
    assert [m["role"] for m in repair] == ["system", "user"] and repair[0] == first[0]
    note = repair[1]["content"][len(first[1]["content"]):]
    assert repair[1]["content"].startswith(first[1]["content"])
    assert note.startswith("\n\nA previous attempt failed with ") and note.endswith("\nWrite a correct version.")
    assert "a - b" not in json.dumps(repair)
    crash = trajectories["echo"][1].messages[-1]["content"]
    assert "A previous attempt failed with IndexError: string index out of range" in crash


def test_brief_failure_names_the_first_failing_test():
    from iterpref.refine.feedback import brief_failure, repair_prompt
    from sandbox.models import TestResult, Verdict

    def result(*tests):
        return RunResult(status="completed", passed=False, tests=list(tests))

    slow = TestResult(id="a", verdict=Verdict.TIMEOUT)
    wrong = TestResult(id="b", verdict=Verdict.FAIL, error_type="AssertionError", message="x\n  " + "y" * 500)
    assert brief_failure(result(TestResult(id="p", verdict=Verdict.PASS), slow, wrong)) == "timeout"
    text = brief_failure(result(wrong))
    assert text.startswith("AssertionError: x y") and len(text) == len("AssertionError: ") + 200
    # A brief prompt starts the reply as the first attempt did: with the signature for a function task.
    task = TASKS[1]
    assert repair_prompt(task, "def sq(x): pass\n", result(wrong), 1, "brief").code_start == task.prompt
    assert repair_prompt(task, "def sq(x): pass\n", result(wrong), 1, "full").code_start == ""


def test_cli_repair_prompt(tmp_path, capsys, executor):
    tasks_path, script_path = _write_inputs(tmp_path, TASKS, SCRIPT)
    out = tmp_path / "traj.jsonl"
    assert main(["refine", str(tasks_path), "-o", str(out), "--sampler", "scripted", "--script", str(script_path),
                 "--max-rounds", "1", "--repair-prompt", "brief"]) == 0
    assert "A previous attempt failed with" in load_trajectories(out)["never"][1].messages[-1]["content"]
    with pytest.raises(SystemExit) as exit_info:
        main(["refine", str(tasks_path), "-o", str(tmp_path / "b.jsonl"), "--repair-prompt", "short"])
    assert exit_info.value.code == 2 and "invalid choice: 'short'" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="repair prompt must be one of full, brief"):
        refine(TASKS, ScriptedSampler(SCRIPT), executor, tmp_path / "c.jsonl", repair_style="short")


def test_a_resumed_file_keeps_its_repair_prompt(tmp_path, executor):
    out = tmp_path / "traj.jsonl"
    refine(TASKS, ScriptedSampler(SCRIPT), executor, out, max_rounds=1, repair_style="brief", progress=False)
    lines = out.read_text()
    with pytest.raises(ConfigError, match="holds repairs asked for with the brief repair prompt; resume it with "
                                          "--repair-prompt brief"):
        refine(TASKS, ScriptedSampler(SCRIPT), executor, out, max_rounds=3, progress=False)
    assert out.read_text() == lines  # nothing was written
    summary = refine(TASKS, ScriptedSampler(SCRIPT), executor, out, max_rounds=3, repair_style="brief",
                     progress=False)
    assert summary.pass_round["echo"] == 2
    full = tmp_path / "full.jsonl"
    refine(TASKS, ScriptedSampler(SCRIPT), executor, full, max_rounds=1, progress=False)
    with pytest.raises(ConfigError, match="with the full repair prompt"):
        refine(TASKS, ScriptedSampler(SCRIPT), executor, full, max_rounds=3, repair_style="brief", progress=False)
