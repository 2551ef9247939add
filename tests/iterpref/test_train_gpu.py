"""The trainer on a CUDA GPU: bf16 autocast, reference log-probs and the loss against the fp32 CPU run.

CI has no GPU, so these skip there; run them on a GPU machine with ``python -m pytest -m gpu``.
"""

import pytest
import torch

from iterpref.train import train
from tests.iterpref.test_train import config, weights

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]


def steps(result):
    return [r for r in result.log_history if "loss" in r]


@pytest.mark.timeout(300)
def test_bf16_on_gpu_tracks_the_fp32_cpu_run(pairs_file, tiny_model, tmp_path, monkeypatch):
    gpu = train(config(pairs_file, tiny_model, tmp_path / "gpu", max_steps=3, bf16="auto"))
    # The same run on the CPU in fp32 (CUDA hidden from the trainer).
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    cpu = train(config(pairs_file, tiny_model, tmp_path / "cpu", max_steps=3, bf16="no"))
    monkeypatch.undo()
    g, c = steps(gpu), steps(cpu)
    assert [r["step"] for r in g] == [1, 2, 3]
    for a in g:
        assert all(torch.isfinite(torch.tensor(float(v))) for k, v in a.items() if isinstance(v, (int, float)))
    assert g[0]["loss/dpo"] == pytest.approx(0.6931, abs=2e-3)  # policy == reference, in bf16 too
    # bf16 rounds the log-probs, so the losses agree to about a percent, not to fp32 precision.
    for a, b in zip(g, c):
        assert a["loss"] == pytest.approx(b["loss"], rel=5e-2, abs=5e-3)
        assert a["loss/nll"] == pytest.approx(b["loss/nll"], rel=2e-2)
    # The saved model stays in the start's dtype (fp32 master weights), and every weight moved.
    before, after = weights(tiny_model), weights(gpu.final_dir)
    assert all(after[n].dtype == before[n].dtype for n in before)
    assert [n for n in before if torch.equal(before[n], after[n])] == []


@pytest.mark.timeout(300)
def test_bf16_yes_and_no_on_gpu(pairs_file, tiny_model, tmp_path):
    on = train(config(pairs_file, tiny_model, tmp_path / "on", max_steps=1, bf16="yes", save_model=False))
    off = train(config(pairs_file, tiny_model, tmp_path / "off", max_steps=1, bf16="no", save_model=False))
    # Different precisions must not share a reference cache entry.
    assert on.ref_cache != off.ref_cache
    assert steps(on)[0]["loss"] == pytest.approx(steps(off)[0]["loss"], rel=5e-2)
