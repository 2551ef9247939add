import json

import pytest

from iterpref.cli import main
from iterpref.demo import DemoConfig, split_tasks
from iterpref.errors import ConfigError, ExecutorUnavailable

pytest.importorskip("sandbox.local")

TINY = ["--train-tasks", "3", "--heldout-tasks", "2", "--rounds", "1", "--max-new-tokens", "24",
        "--train-steps", "2", "--executor", "local", "--no-progress", "--threads", "1"]


@pytest.fixture(autouse=True)
def restore_torch_threads():
    # --threads 1 keeps the tiny model fast when other jobs share the CPUs; undo it for later tests.
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def fence(code):
    return f"```python\n{code}```\n"


def test_split_is_seeded_and_disjoint():
    a_train, a_held = split_tasks(DemoConfig(train_tasks=5, heldout_tasks=4, seed=1))
    b_train, b_held = split_tasks(DemoConfig(train_tasks=5, heldout_tasks=4, seed=1))
    c_train, _ = split_tasks(DemoConfig(train_tasks=5, heldout_tasks=4, seed=2))
    ids = [t.task_id for t in a_train + a_held]
    assert ids == [t.task_id for t in b_train + b_held] and len(set(ids)) == 9
    assert [t.task_id for t in c_train] != [t.task_id for t in a_train]


@pytest.mark.parametrize("flags, message", [
    (["--train-tasks", "0"], "--train-tasks must be at least 1"),
    (["--train-tasks", "100", "--heldout-tasks", "100"], "HumanEval has 164"),
    (["--sampler", "openai"], "--base-url and --sampler-model"),
    (["--threads", "-1"], "--threads must be 0"),
    (["--min-pairs", "-1"], "--min-pairs must be 0"),
])
def test_bad_options_are_one_line_errors(tmp_path, capsys, flags, message):
    assert main(["demo", "-o", str(tmp_path / "d"), *flags]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


@pytest.mark.slow
@pytest.mark.timeout(290)
def test_demo_end_to_end_with_pairs(tmp_path, capsys):
    """Refine's replies are scripted (round 0 wrong, round 1 the reference) so that training certainly runs;
    evaluation and training use the bundled model and the real executor."""
    train, _ = split_tasks(DemoConfig(train_tasks=3, heldout_tasks=2))
    script = tmp_path / "script.jsonl"
    with open(script, "w") as handle:
        for task in train:
            wrong = task.prompt + "    return {}['missing']\n"
            handle.write(json.dumps({"task_id": task.task_id, "responses": [fence(wrong), fence(task.reference)]}) + "\n")
    out = tmp_path / "demo"
    assert main(["demo", "-o", str(out), *TINY, "--min-pairs", "0", "--refine-script", str(script)]) == 0
    printed = capsys.readouterr().out
    for stage in ["[1/8] executor", "[3/8] eval", "[4/8] refine", "[5/8] pairs", "[6/8] train", "[7/8] eval", "[8/8] report"]:
        assert stage in printed
    pairs = [json.loads(line) for line in (out / "pairs.jsonl").read_text().splitlines()]
    assert len(pairs) == 3 and all(p["chosen_round"] == 1 and p["rejected_round"] == 0 for p in pairs)
    assert (out / "train" / "final" / "config.json").is_file()
    report = (out / "report.md").read_text()
    assert "3 preference pairs" in report and "smoke run" in report
    assert "before training" in report and "after training" in report
    for png in ["refine_rounds.png", "training_curves.png", "pass_at_1.png", "error_types.png"]:
        assert (out / png).stat().st_size > 1000, png
    metrics = [json.loads(line) for line in (out / "train" / "metrics.jsonl").read_text().splitlines()]
    assert any("loss" in m for m in metrics)
    # The report gives this run's own displacement and margin, measured on held-out synthetic pairs.
    mechanism = json.loads((out / "train" / "heldout_metrics.json").read_text())
    assert mechanism["pairs"] >= 1 and set(mechanism["final"]) >= {"heldout/displacement", "heldout/margin"}
    assert "What training did to likelihoods on held-out pairs" in report
    assert f"Measured on {mechanism['pairs']} pairs" in report
    assert f"| {mechanism['final']['heldout/margin']:.4f} |" in report
    # Refine drew one candidate per task in round 0 and three in the repair round (the demo's defaults).
    trajectories = [json.loads(line) for line in (out / "trajectories.jsonl").read_text().splitlines()]
    assert {(t["round"], t["sample"]) for t in trajectories} == {(0, 0), (1, 0), (1, 1), (1, 2)}
    assert "| candidates per task in round 0 | 1 |" in report
    assert "| candidates per task and repair round | 3 |" in report
    # Repairs were asked for with the brief prompt, the demo's default for the bundled model.
    repairs = [t for t in trajectories if t["round"] == 1]
    assert all("A previous attempt failed with KeyError" in t["messages"][-1]["content"] for t in repairs)
    assert "| repair prompt | brief |" in report

    # A second run reuses every stage; a run with other settings on the same folder is refused.
    assert main(["demo", "-o", str(out), *TINY, "--min-pairs", "0", "--refine-script", str(script)]) == 0
    assert printed.count("reusing") == 0 and capsys.readouterr().out.count("reusing") >= 3
    assert main(["demo", "-o", str(out), *TINY, "--min-pairs", "0", "--refine-script", str(script), "--seed", "3"]) == 2
    assert "other settings (seed)" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.timeout(290)
def test_demo_with_the_bundled_model_tops_up_with_synthetic_pairs(tmp_path, capsys):
    """24 new tokens cannot hold a HumanEval solution, so the bundled model gets no pairs of its own: the demo
    adds synthetic pairs up to --min-pairs, trains on them, evaluates again, and says which pairs were which."""
    out = tmp_path / "demo"
    assert main(["demo", "-o", str(out), *TINY, "--min-pairs", "2"]) == 0
    captured = capsys.readouterr()
    assert "SYNTHETIC pairs" in captured.err and "[7/8] eval: trained model" in captured.out
    assert (out / "pairs.jsonl").read_text() == ""
    synthetic = [json.loads(line) for line in (out / "synthetic_pairs.jsonl").read_text().splitlines()]
    assert len(synthetic) == 2
    assert (out / "train_pairs.jsonl").read_text().splitlines() == (out / "synthetic_pairs.jsonl").read_text().splitlines()
    report = (out / "report.md").read_text()
    assert "0 preference pairs from the model's own repairs, topped up with 2 synthetic pairs" in report
    assert "says nothing about the method" in report and "Of those pairs, 2 are synthetic and 0 the model's own" in report
    assert "before training" in report and "after training" in report
    trajectories = [json.loads(line) for line in (out / "trajectories.jsonl").read_text().splitlines()]
    assert {t["round"] for t in trajectories} <= {0, 1} and len({t["task_id"] for t in trajectories}) == 3
    assert all(t["sampler"].startswith("hf:") for t in trajectories)
    # Repair sampling: one candidate per task in round 0, three in the repair round.
    assert {(t["round"], t["sample"]) for t in trajectories} == {(0, 0), (1, 0), (1, 1), (1, 2)}
    assert "What training did to likelihoods on held-out pairs" in report


def test_open_executor_guards_only_the_start(tmp_path, monkeypatch, capsys):
    """An error inside the block (say CUDA out of memory while training) must reach the caller unchanged, with the
    Docker service stopped; a service that fails to start falls back to the process backend (auto)."""
    from contextlib import contextmanager

    import iterpref.demo as demo
    import iterpref.executor as executor_module

    events = []

    @contextmanager
    def fake_service(log_path):
        events.append("started")
        try:
            yield "http://127.0.0.1:1"
        finally:
            events.append("stopped")

    class Fake:
        def close(self):
            events.append("closed")

    monkeypatch.setattr(demo, "docker_problem", lambda: None)
    monkeypatch.setattr(demo, "docker_service", fake_service)
    monkeypatch.setattr(executor_module, "make_executor", lambda spec, workers=None: Fake())
    with pytest.raises(RuntimeError, match="out of memory"):
        with demo.open_executor("auto", tmp_path) as (executor, note):
            assert isinstance(executor, Fake) and "Docker" in note
            raise RuntimeError("CUDA out of memory")
    assert events == ["started", "closed", "stopped"]
    assert "not usable" not in capsys.readouterr().err

    @contextmanager
    def broken_service(log_path):
        raise RuntimeError("`sandbox serve` was not ready")
        yield  # pragma: no cover

    monkeypatch.setattr(demo, "docker_service", broken_service)
    with demo.open_executor("auto", tmp_path) as (executor, note):
        assert "process backend" in note
    assert "was not ready" in capsys.readouterr().err
    with pytest.raises(ExecutorUnavailable, match="--executor docker: `sandbox serve` was not ready"):
        with demo.open_executor("docker", tmp_path):
            pass


def test_repair_samples_need_sampling(tmp_path, capsys):
    assert main(["demo", "-o", str(tmp_path / "d"), "--repair-samples", "2", "--temperature", "0"]) == 2
    assert "above 1 needs --temperature above 0" in capsys.readouterr().err
    assert main(["demo", "-o", str(tmp_path / "d"), "--first-samples", "2", "--repair-samples", "1",
                 "--temperature", "0"]) == 2
    assert "above 1 needs --temperature above 0" in capsys.readouterr().err
    assert main(["demo", "-o", str(tmp_path / "d"), "--repair-samples", "0"]) == 2
    assert main(["demo", "-o", str(tmp_path / "d"), "--first-samples", "0"]) == 2
    assert "--first-samples must be at least 1" in capsys.readouterr().err
    # By default the demo draws one first candidate and several in each repair round.
    assert (DemoConfig().first_samples, DemoConfig().repair_samples) == (1, 3)
    with pytest.raises(ConfigError, match="--repair-prompt must be one of full, brief"):
        DemoConfig(repair_prompt="short").validate()


def test_report_shows_displacement_and_margin(tmp_path):
    from iterpref.report import DemoFacts, write_demo_report

    mechanism = {"pairs": 5, "every_steps": 2,
                 "start": {"heldout/displacement": 0.0, "heldout/displacement_shared": 0.0, "heldout/margin": 3.5,
                           "heldout/margin_positive": 0.6},
                 "final": {"heldout/displacement": -0.125, "heldout/displacement_shared": -0.25,
                           "heldout/margin": 4.75, "heldout/margin_positive": 0.8}}
    report = write_demo_report(DemoFacts(settings={"seed": 0}, executor_note="local", mechanism=mechanism),
                               tmp_path).read_text()
    assert "What training did to likelihoods on held-out pairs" in report and "Measured on 5 pairs" in report
    assert "| likelihood displacement of chosen (mean per-token log-prob, change from start) | 0.0000 | -0.1250 |" \
        in report
    assert "| share of held-out pairs with a positive margin | 0.6000 | 0.8000 |" in report
    assert "What training did" not in write_demo_report(DemoFacts(settings={}, executor_note="x"),
                                                         tmp_path).read_text()
