import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from iterpref.train import train
from sandbox.launch import free_port
from tests.iterpref.test_train import config

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.timeout(600)  # a hang guard: two training processes on a loaded 2-core machine
def test_two_process_ddp_on_cpu_matches_one_process_with_the_same_global_batch(pairs_file, tiny_model, tmp_path):
    out = tmp_path / "ddp"
    env = dict(os.environ, PYTHONPATH=str(ROOT), HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(free_port()),
           "-m", "iterpref.train", "--pairs", str(pairs_file), "--model", str(tiny_model), "--output", str(out),
           "--max-steps", "3", "--lr", "1e-2", "--batch-size", "1", "--warmup-ratio", "0", "--no-progress"]
    proc = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=580)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("iterpref train: 8 pairs;") == 1  # one summary, from rank 0
    ddp = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    ddp = [r for r in ddp if "loss" in r]
    assert [r["step"] for r in ddp] == [1, 2, 3]
    assert ddp[-1]["epoch"] == pytest.approx(0.75)  # 3 steps x 2 processes x 1 pair of 8: the data was sharded
    assert not list((out / "ref_cache").glob("*.share*"))
    # Gradients averaged over 2 processes x 1 pair equal one process x 2 pairs.
    single = train(config(pairs_file, tiny_model, tmp_path / "single", batch_size=2, save_model=False))
    single = [r for r in single.log_history if "loss" in r]
    for a, b in zip(ddp, single):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-4)
        assert a["rewards/margins"] == pytest.approx(b["rewards/margins"], rel=1e-3, abs=1e-5)
