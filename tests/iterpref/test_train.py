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
