"""The experiment's statistics and its settings check (the training it drives is tested in test_train.py)."""

import math
from pathlib import Path

import pytest

from iterpref.errors import ConfigError
from iterpref.report import bootstrap, bootstrap_differences, settings_changes
from tests.iterpref.scripts import load_benchmark


def load_experiment():
    return load_benchmark("experiment")


def test_bootstrap_means_and_intervals():
    a = [[1.0, 2.0, 3.0, 4.0], [2.0, 3.0, 4.0, 5.0], [0.0, 1.0, 2.0, 3.0]]  # 3 seeds x 4 pairs
    b = [[x + 0.5 for x in row] for row in a]
    (mean_a, low_a, high_a), (mean_b, low_b, high_b) = bootstrap([a, b], reps=500)
    assert mean_a == pytest.approx(2.5) and mean_b == pytest.approx(3.0)
    assert low_a < mean_a < high_a and 0.5 <= low_a and high_a <= 4.5
    # A constant shift on the same draws: the paired difference has no spread at all.
    diffs = bootstrap_differences([a, b], against=0, reps=500)
    assert diffs[0] == (0.0, 0.0, 0.0)
    assert diffs[1] == pytest.approx((0.5, 0.5, 0.5))


def test_bootstrap_skips_missing_values_and_is_seeded():
    data = [[[1.0, math.nan, 3.0], [5.0, math.nan, 7.0]]]
    mean, low, high = bootstrap(data, reps=300, seed=1)[0]
    assert mean == pytest.approx(4.0) and low >= 1.0 and high <= 7.0
    assert bootstrap(data, reps=300, seed=1) == bootstrap(data, reps=300, seed=1)


def test_settings_changes_name_every_difference():
    assert settings_changes({"steps": 8, "lr": 1e-6}, {"steps": 8, "lr": 1e-6}) == []
    assert settings_changes({"steps": 8, "lr": 1e-6, "beta": 0.1}, {"steps": 9, "lr": 1e-6, "model": "m"}) == [
        "beta", "model", "steps"]


def test_experiment_refuses_to_mix_settings(tmp_path):
    experiment = load_experiment()
    args = experiment.argparse.Namespace(**{**vars(experiment_args(experiment)), "output": str(tmp_path / "exp")})
    out = Path(args.output)
    experiment.check_settings(out, experiment.settings_of(args), fresh=False)
    experiment.check_settings(out, experiment.settings_of(args), fresh=False)  # the same settings: reused
    (out / "runs").mkdir()
    for key, value in (("steps", 99), ("lr", 1.0), ("model", "other"), ("beta", 0.5), ("sample_bf16", "yes"),
                       ("repair_prompt", "brief"), ("first_samples", 1)):
        changed = experiment.argparse.Namespace(**{**vars(args), key: value})
        with pytest.raises(ConfigError, match=key):
            experiment.check_settings(out, experiment.settings_of(changed), fresh=False)
    changed = experiment.argparse.Namespace(**{**vars(args), "steps": 99})
    experiment.check_settings(out, experiment.settings_of(changed), fresh=True)  # --fresh starts over
    assert not (out / "runs").exists()
    # A pairs file whose contents change under the same name is a different setting too.
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("{}\n")
    with_pairs = experiment.argparse.Namespace(**{**vars(changed), "pairs": str(pairs)})
    experiment.check_settings(out, experiment.settings_of(with_pairs), fresh=True)
    pairs.write_text("{}\n{}\n")
    with pytest.raises(ConfigError, match="pairs_sha256"):
        experiment.check_settings(out, experiment.settings_of(with_pairs), fresh=False)


def test_a_folder_from_before_first_samples_still_matches(tmp_path):
    experiment = load_experiment()
    args = experiment.argparse.Namespace(**{**vars(experiment_args(experiment)), "output": str(tmp_path / "exp")})
    assert args.first_samples is None and "first_samples" not in experiment.settings_of(args)
    assert experiment.main(["--output", str(tmp_path / "bad"), "--first-samples", "0"]) == 2


def test_greedy_repair_sampling_is_refused_only_when_the_models_own_loop_runs(tmp_path, monkeypatch, capsys):
    experiment = load_experiment()
    assert experiment.main(["--output", str(tmp_path / "g"), "--temperature", "0"]) == 2
    assert "needs --temperature above 0" in capsys.readouterr().err and not (tmp_path / "g").exists()
    # Without the loop the temperature is unused: the run gets past the check (and stops at the settings write).
    def stop_here(*_args):
        raise SystemExit("past")

    monkeypatch.setattr(experiment, "check_settings", stop_here)
    with pytest.raises(SystemExit, match="past"):
        experiment.main(["--output", str(tmp_path / "h"), "--temperature", "0", "--own-rounds", "-1"])


def experiment_args(experiment):
    captured = {}

    def fake_run(args):
        captured["args"] = args
        return 0

    original = experiment.run
    experiment.run = fake_run
    try:
        experiment.main([])
    finally:
        experiment.run = original
    return captured["args"]


def test_every_method_of_the_issue_is_listed():
    experiment = load_experiment()
    names = [m.name for m in experiment.METHODS]
    assert names == ["untrained", "focal a=1", "focal a=0", "soft w=0.25", "soft w=0.5", "line+trace", "DPO", "RPO",
                     "SFT"]
    soft = {m.name: m for m in experiment.METHODS}
    assert soft["soft w=0.25"].outside_weight == 0.25 and soft["line+trace"].mask == "line+trace"
    with pytest.raises(ConfigError, match="unknown method"):
        experiment._choose("focal a=1,nope", "--methods")
