"""benchmarks/bench_sampler.py: the decoder and transformers' generate on the same prompts, and its bad input."""


import pytest

from tests.iterpref.scripts import load_benchmark


def load_bench():
    return load_benchmark("bench_sampler")


def test_prompts_repeat_each_first_request_copies_times():
    prompts = load_bench().prompts_for(3, 2)
    assert [p.task_id for p in prompts][::2] == [p.task_id for p in prompts][1::2]
    assert len({p.task_id for p in prompts}) == 3 and all(p.round == 0 for p in prompts)


@pytest.mark.parametrize("flag", ["--prompts", "--copies", "--batch-size", "--rounds"])
def test_counts_below_one_are_refused_with_a_line(flag, capsys):
    assert load_bench().main([flag, "0"]) == 2
    assert "must be at least 1" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_both_sides_run_and_the_ratio_is_printed(capsys, tmp_path, monkeypatch):
    bench = load_bench()
    monkeypatch.setattr(bench, "RESULTS_DIR", tmp_path)
    assert bench.main(["--prompts", "2", "--copies", "2", "--batch-size", "3", "--max-new-tokens", "6",
                       "--bf16", "no", "--name", "s"]) == 0
    out = capsys.readouterr().out
    assert "| generate |" in out and "| decoder |" in out and "ratio = generate / decoder" in out
    assert "4 replies a side" in (tmp_path / "s.md").read_text()
