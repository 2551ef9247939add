import json
import shutil

import pytest
import torch

from iterpref.train import TrainConfig, train
from iterpref.train.data import PairCollator, PairTokenizer, tokenize_pairs
from iterpref.train.scoring import score_batch
from tests.iterpref.conftest import PAIRS


def weights(model_dir):
    from safetensors.torch import load_file

    return load_file(str(model_dir / "model.safetensors"))


@pytest.mark.parametrize("layout", ["chat", "plain"])
def test_tokenized_pair_scores_the_completion_and_masks_the_error(tokenizer, layout):
    tok = PairTokenizer(tokenizer, mask="line", layout=layout)
    out = tok(PAIRS[0])
    assert out.prompt_ids == tok(PAIRS[0]).prompt_ids  # cached and identical for both completions
    masked = tokenizer.decode([i for i, m in zip(out.rejected_ids, out.rejected_mask) if m])
    assert masked.strip() == "return a - b"
    end = tokenizer.decode(out.chosen_ids[-2:] if layout == "chat" else out.chosen_ids[-1:])
    assert "<|im_end|>" in end
    assert tokenizer.decode(out.chosen_ids).startswith(PAIRS[0].chosen)
    assert tok(PAIRS[3]) == "identical"


def test_drops_are_counted_not_truncated(tokenizer):
    kept, dropped = tokenize_pairs(PAIRS, PairTokenizer(tokenizer, max_length=40), progress=False)
    assert dropped["identical"] == 1
    assert dropped["too_long"] >= 1
    assert len(kept) + sum(dropped.values()) == len(PAIRS)
    assert all(len(p.prompt_ids) + len(p.chosen_ids) <= 40 for p in kept)


def test_mask_none_covers_the_whole_rejected_completion(tokenizer):
    out = PairTokenizer(tokenizer, mask="none")(PAIRS[1])
    assert out.rejected_mask == [1] * len(out.rejected_ids)
    focal = PairTokenizer(tokenizer, mask="line")(PAIRS[1])
    assert 0 < sum(focal.rejected_mask) < len(focal.rejected_mask)


def test_padded_batch_scores_equal_unpadded_forward(tokenizer, tiny_model):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model).eval()
    kept, _ = tokenize_pairs(PAIRS, PairTokenizer(tokenizer, mask="line"), progress=False)
    batch = PairCollator(pad_token_id=tokenizer.pad_token_id)([p.as_dict() for p in kept])
    assert batch["input_ids"].shape[0] == 2 * len(kept)
    with torch.no_grad():
        scores = score_batch(model, batch)
        for i, p in enumerate(kept):
            for ids, mask, got in ((p.chosen_ids, [1] * len(p.chosen_ids), scores["chosen_logps"][i]),
                                   (p.rejected_ids, p.rejected_mask, scores["rejected_logps"][i])):
                seq = torch.tensor([p.prompt_ids + ids])
                logps = torch.log_softmax(model(seq).logits[0, :-1].float(), -1)
                token = logps.gather(-1, seq[0, 1:, None]).squeeze(-1)[len(p.prompt_ids) - 1 :]
                assert torch.allclose(got, (token * torch.tensor(mask)).sum(), atol=1e-4)


def config(pairs_file, tiny_model, out, **kw):
    base = dict(pairs=str(pairs_file), model=str(tiny_model), output_dir=str(out), max_steps=3, lr=1e-2,
                batch_size=2, progress=False, save_steps=100, warmup_ratio=0.0)
    base.update(kw)
    return TrainConfig(**base)


@pytest.mark.timeout(120)
def test_tiny_model_trains_and_every_parameter_changes(pairs_file, tiny_model, tmp_path):
    result = train(config(pairs_file, tiny_model, tmp_path / "run", grad_accum=2))
    before, after = weights(tiny_model), weights(result.final_dir)
    assert before.keys() == after.keys()
    unchanged = [name for name in before if torch.equal(before[name], after[name])]
    assert unchanged == []
    records = [json.loads(line) for line in result.metrics_path.read_text().splitlines()]
    steps = [r for r in records if "loss" in r]
    assert [r["step"] for r in steps] == [1, 2, 3]
    for name in ("rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies", "logps/chosen",
                 "logps/rejected", "loss/dpo", "loss/nll", "mask/rejected_tokens"):
        assert all(name in r for r in steps), name
    assert steps[0]["loss/dpo"] == pytest.approx(0.6931, abs=1e-3)  # policy == reference before the first step
    assert steps[-1]["rewards/margins"] > 0
    assert result.curves_path.is_file() and result.curves_path.stat().st_size > 0
    summary = json.loads((tmp_path / "run" / "data_summary.json").read_text())
    assert summary["pairs_used"] == 8 and summary["dropped"]["identical"] == 2
    assert result.ref_cache.is_file() and not result.ref_cache_hit
    # Same model and data: the second run reads the reference log-probs instead of recomputing them.
    again = train(config(pairs_file, tiny_model, tmp_path / "run2", max_steps=1, ref_cache_dir=str(result.ref_cache.parent)))
    assert again.ref_cache_hit and again.ref_cache == result.ref_cache


@pytest.mark.timeout(180)
def test_bf16_yes_on_the_cpu_autocasts_and_keeps_fp32_weights(pairs_file, tiny_model, tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # the CPU path, on a GPU machine too
    on = train(config(pairs_file, tiny_model, tmp_path / "on", max_steps=2, bf16="yes"))
    off = train(config(pairs_file, tiny_model, tmp_path / "off", max_steps=2, bf16="no"))
    assert on.ref_cache != off.ref_cache  # reference log-probs from autocast are not fp32 ones
    first_on, first_off = ([r for r in result.log_history if "loss" in r][0] for result in (on, off))
    assert first_on["loss/dpo"] == pytest.approx(0.6931, abs=2e-3)  # policy == reference under autocast too
    assert first_on["loss/nll"] == pytest.approx(first_off["loss/nll"], rel=5e-2)
    assert first_on["loss/nll"] != first_off["loss/nll"]  # bf16 rounding shows: autocast was on
    before, after = weights(tiny_model), weights(on.final_dir)
    assert all(after[name].dtype == before[name].dtype for name in before)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("loss", ["sft", "dpo", "rpo"])
def test_baselines_use_the_same_trainer(pairs_file, tiny_model, tmp_path, loss):
    result = train(config(pairs_file, tiny_model, tmp_path / loss, loss=loss, max_steps=1, save_model=False))
    step = [r for r in result.log_history if "loss" in r][0]
    if loss == "sft":
        assert result.ref_cache is None
        assert step["loss"] == pytest.approx(step["loss/nll"], rel=1e-4)
    else:
        assert step["loss/dpo"] == pytest.approx(0.6931, abs=1e-3)
        expected = step["loss/dpo"] + (step["loss/nll"] if loss == "rpo" else 0.0)
        assert step["loss"] == pytest.approx(expected, rel=1e-4)
    summary = json.loads((tmp_path / loss / "data_summary.json").read_text())
    assert summary["mask"] == "none" and summary["rejected_tokens_in_mask"] == summary["rejected_tokens_total"]


@pytest.mark.timeout(180)
def test_resume_reproduces_the_uninterrupted_run(pairs_file, tiny_model, tmp_path):
    full = train(config(pairs_file, tiny_model, tmp_path / "full", max_steps=4, save_steps=2, save_total_limit=None))
    # The state of a run stopped after step 2 is its checkpoint-2: continue it in a fresh folder.
    shutil.copytree(tmp_path / "full" / "checkpoint-2", tmp_path / "resumed" / "checkpoint-2")
    resumed = train(config(pairs_file, tiny_model, tmp_path / "resumed", max_steps=4, save_steps=2,
                           save_total_limit=None, resume="latest", ref_cache_dir=str(full.ref_cache.parent)))
    a, b = weights(full.final_dir), weights(resumed.final_dir)
    for name in a:
        assert torch.allclose(a[name], b[name], atol=1e-6), name

    def losses(r):
        return {x["step"]: x["loss"] for x in r.log_history if "loss" in x}

    # Only steps 3 and 4 ran after the resume (a rerun from scratch would log step 1 as well).
    logged = [json.loads(line)["step"] for line in resumed.metrics_path.read_text().splitlines()]
    assert [s for s in logged if s <= 4] == [3, 4, 4]  # two step records and the final summary
    assert losses(resumed)[3] == pytest.approx(losses(full)[3], rel=1e-5)
    assert losses(resumed)[4] == pytest.approx(losses(full)[4], rel=1e-5)


def test_cli_errors_are_one_line(tmp_path, tiny_model, capsys):
    from iterpref.cli import main

    assert main(["train", "--pairs", str(tmp_path / "missing.jsonl")]) == 2
    assert "does not exist" in capsys.readouterr().err
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{not json\n")
    assert main(["train", "--pairs", str(bad), "--model", str(tiny_model)]) == 2
    assert "malformed" in capsys.readouterr().err
    same = tmp_path / "same.jsonl"
    same.write_text(json.dumps(PAIRS[3].__dict__) + "\n")
    assert main(["train", "--pairs", str(same), "--model", str(tiny_model), "--output", str(tmp_path / "o")]) == 2
    assert "no usable pairs" in capsys.readouterr().err
    assert main(["train", "--pairs", str(same), "--model", str(tmp_path), "--beta", "0"]) == 2
    assert "beta" in capsys.readouterr().err


def test_heldout_scores_equal_direct_sums(tokenizer, tiny_model):
    from transformers import AutoModelForCausalLM

    from iterpref.train.scoring import score_heldout_batch

    model = AutoModelForCausalLM.from_pretrained(tiny_model).eval()
    kept, _ = tokenize_pairs(PAIRS, PairTokenizer(tokenizer, mask="line", fix_mask=True), progress=False)
    # PAIRS[1]'s fix only inserts lines: the chosen side has fix lines; PAIRS[0] replaces one line.
    fix_text = tokenizer.decode([i for i, m in zip(kept[0].chosen_ids, kept[0].chosen_fix_mask) if m])
    assert fix_text.strip() == "return a + b"
    batch = PairCollator(pad_token_id=tokenizer.pad_token_id)([p.as_dict() for p in kept])
    with torch.no_grad():
        scores = score_heldout_batch(model, batch)
        for i, p in enumerate(kept):
            def direct(ids, mask):
                seq = torch.tensor([p.prompt_ids + ids])
                logps = torch.log_softmax(model(seq).logits[0, :-1].float(), -1)
                token = logps.gather(-1, seq[0, 1:, None]).squeeze(-1)[len(p.prompt_ids) - 1 :]
                return (token * torch.tensor(mask, dtype=torch.float32)).sum()

            fix = p.chosen_fix_mask
            assert torch.allclose(scores["chosen_logps"][i], direct(p.chosen_ids, [1] * len(fix)), atol=1e-4)
            assert torch.allclose(scores["fix_logps"][i], direct(p.chosen_ids, fix), atol=1e-4)
            assert torch.allclose(scores["shared_logps"][i], direct(p.chosen_ids, [1 - m for m in fix]), atol=1e-4)
            assert scores["shared_tokens"][i] == len(fix) - sum(fix)
            assert torch.allclose(scores["region_logps"][i], direct(p.rejected_ids, p.rejected_mask), atol=1e-4)


def test_heldout_summary_arithmetic():
    from iterpref.train.heldout import summarise

    start = {"chosen_mean": [-2.0, -1.0], "shared_mean": [-1.0, float("nan")], "margin": [-1.0, 0.5]}
    now = {"chosen_mean": [-3.0, -1.5], "shared_mean": [-2.0, float("nan")], "margin": [1.0, 0.0]}
    got = summarise(now, start)
    assert got["heldout/displacement"] == pytest.approx(-0.75)
    assert got["heldout/displacement_shared"] == pytest.approx(-1.0)  # the pair without shared tokens left out
    assert got["heldout/logps_chosen"] == pytest.approx(-2.25)
    assert got["heldout/margin"] == pytest.approx(0.5)
    assert got["heldout/margin_change"] == pytest.approx(0.75)
    assert got["heldout/margin_positive"] == pytest.approx(0.5)  # a margin of exactly 0 is not positive
    unchanged = summarise(start, start)
    assert unchanged["heldout/displacement"] == 0 and unchanged["heldout/margin_change"] == 0


@pytest.mark.timeout(180)
def test_training_logs_heldout_metrics_every_n_steps(pairs_file, tiny_model, tmp_path):
    from iterpref.records import to_json_line

    heldout = tmp_path / "heldout.jsonl"
    heldout.write_text("".join(to_json_line(p) for p in PAIRS))
    result = train(config(pairs_file, tiny_model, tmp_path / "run", max_steps=5, heldout_pairs=str(heldout),
                          heldout_steps=2, save_model=False))
    records = [json.loads(line) for line in result.metrics_path.read_text().splitlines()]
    measured = [r for r in records if "heldout/displacement" in r]
    assert [r["step"] for r in measured] == [0, 2, 4, 5]  # the start, every 2 steps, and the end
    # The training records of the steps where the held-out pairs were measured are all there too.
    assert [r["step"] for r in records if "loss" in r] == [1, 2, 3, 4, 5]
    assert measured[0]["heldout/displacement"] == 0 and measured[0]["heldout/margin_change"] == 0
    assert measured[-1]["heldout/displacement"] != 0  # lr 1e-2 on a tiny model moves every likelihood
    for r in measured:
        assert 0 <= r["heldout/margin_positive"] <= 1
        assert set(r) >= {"heldout/displacement_shared", "heldout/logps_chosen", "heldout/margin"}
    report = json.loads(result.heldout_path.read_text())
    assert report["pairs"] == 4 and report["step"] == 5  # the identical pair is dropped
    assert report["final"]["heldout/displacement"] == pytest.approx(measured[-1]["heldout/displacement"])
    assert len(report["per_pair"]["final"]["margin"]) == 4
    summary = json.loads((tmp_path / "run" / "data_summary.json").read_text())
    assert summary["heldout_pairs_used"] == 4 and summary["heldout_dropped"]["identical"] == 1


@pytest.mark.timeout(180)
def test_soft_mask_trains_and_keys_the_reference_cache_on_the_weight(pairs_file, tiny_model, tmp_path):
    cache = tmp_path / "cache"
    hard = train(config(pairs_file, tiny_model, tmp_path / "hard", max_steps=1, save_model=False,
                        ref_cache_dir=str(cache)))
    soft = train(config(pairs_file, tiny_model, tmp_path / "soft", max_steps=1, save_model=False,
                        ref_cache_dir=str(cache), outside_weight=0.5))
    assert not soft.ref_cache_hit and soft.ref_cache != hard.ref_cache
    a = json.loads((tmp_path / "hard" / "data_summary.json").read_text())
    b = json.loads((tmp_path / "soft" / "data_summary.json").read_text())
    assert b["outside_weight"] == 0.5 and a["outside_weight"] == 0.0
    # The reference sums over the rejected side grow by half the log-probs outside the region (all negative).
    ref_hard, ref_soft = torch.load(hard.ref_cache), torch.load(soft.ref_cache)
    assert torch.allclose(ref_hard[:, 0], ref_soft[:, 0])
    assert (ref_soft[:, 1] < ref_hard[:, 1]).all()
    step_hard = [r for r in hard.log_history if "loss" in r][0]
    step_soft = [r for r in soft.log_history if "loss" in r][0]
    assert step_soft["mask/rejected_tokens"] > step_hard["mask/rejected_tokens"]


def test_line_trace_fallbacks_are_counted_in_the_summary(pairs_file, tiny_model, tmp_path):
    result = train(config(pairs_file, tiny_model, tmp_path / "trace", max_steps=1, save_model=False,
                          mask="line+trace"))
    summary = json.loads((tmp_path / "trace" / "data_summary.json").read_text())
    assert summary["mask"] == "line+trace" and summary["trace_fallback"] == result.pairs_used == 8
