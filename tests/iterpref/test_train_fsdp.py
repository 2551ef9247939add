import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from iterpref.train import train
from sandbox.launch import free_port
from tests.iterpref.test_train import config, weights

ROOT = Path(__file__).resolve().parents[2]

# accelerate (1.15) only turns on FSDP for accelerator back ends: on CPU processes it silently runs DDP instead.
# This launcher lifts that gate so the repository's FSDP2 settings really shard the model over gloo.
CPU_FSDP_LAUNCHER = '''
import runpy, sys
from accelerate import state
from accelerate.utils import DistributedType

_init = state.AcceleratorState.__init__

def _init_with_cpu_fsdp(self, *args, fsdp_plugin=None, **kwargs):
    _init(self, *args, fsdp_plugin=fsdp_plugin, **kwargs)
    # Every AcceleratorState() call re-copies PartialState's MULTI_CPU, so reapply FSDP each time.
    plugin = fsdp_plugin if fsdp_plugin is not None else getattr(self, "fsdp_plugin", None)
    if plugin is not None and self.distributed_type == DistributedType.MULTI_CPU:
        self.distributed_type, self.fsdp_plugin = DistributedType.FSDP, plugin

state.AcceleratorState.__init__ = _init_with_cpu_fsdp
sys.argv[0] = "iterpref.train"
runpy.run_module("iterpref.train", run_name="__main__", alter_sys=True)
'''


def cpu_variant(config_path: Path, out: Path) -> Path:
    """The repository's GPU config with only the device settings changed: CPU, full precision, 2 processes."""
    settings = yaml.safe_load(config_path.read_text())
    settings.update(use_cpu=True, mixed_precision="no", num_processes=2)
    out.write_text(yaml.safe_dump(settings))
    return out


@pytest.mark.slow
@pytest.mark.timeout(600)  # a hang guard: two training processes on a loaded 2-core machine
def test_fsdp_config_shards_on_cpu_and_matches_one_process_with_the_same_global_batch(pairs_file, tiny_model,
                                                                                       tmp_path):
    from transformers import AutoModelForCausalLM

    out = tmp_path / "fsdp"
    launcher = tmp_path / "cpu_fsdp_launcher.py"
    launcher.write_text(CPU_FSDP_LAUNCHER)
    accel_config = cpu_variant(ROOT / "iterpref" / "configs" / "fsdp.yaml", tmp_path / "fsdp_cpu.yaml")
    env = dict(os.environ, PYTHONPATH=str(ROOT), HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(accel_config),
           "--main_process_port", str(free_port()), str(launcher),
           "--pairs", str(pairs_file), "--model", str(tiny_model), "--output", str(out),
           "--max-steps", "3", "--lr", "1e-2", "--batch-size", "1", "--warmup-ratio", "0", "--no-progress"]
    proc = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=580)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # A sharded checkpoint proves FSDP ran (DDP would write one optimizer.pt).
    checkpoint = out / "checkpoint-3"
    assert list((checkpoint / "pytorch_model_fsdp_0").glob("*.distcp"))
    assert not (checkpoint / "optimizer.pt").exists()
    fsdp = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    fsdp = [r for r in fsdp if "loss" in r]
    assert [r["step"] for r in fsdp] == [1, 2, 3]
    assert fsdp[-1]["epoch"] == pytest.approx(0.75)
    # Sharded gradients of 2 processes x 1 pair equal one process x 2 pairs.
    single = train(config(pairs_file, tiny_model, tmp_path / "single", batch_size=2))
    steps = [r for r in single.log_history if "loss" in r]
    for a, b in zip(fsdp, steps):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-4)
        assert a["rewards/margins"] == pytest.approx(b["rewards/margins"], rel=1e-3, abs=1e-5)
    # The final model is gathered into one ordinary folder that loads and equals the single-process result.
    AutoModelForCausalLM.from_pretrained(out / "final")
    start, sharded, whole = weights(tiny_model), weights(out / "final"), weights(single.final_dir)
    assert sharded.keys() == start.keys()
    assert [name for name in start if torch.equal(start[name], sharded[name])] == []
    for name in whole:
        assert torch.allclose(sharded[name], whole[name], atol=1e-5), name


@pytest.mark.slow
@pytest.mark.timeout(600)  # a hang guard: two training processes on a loaded 2-core machine
def test_deepspeed_zero3_config_runs_on_cpu_and_matches_one_process(pairs_file, tiny_model, tmp_path):
    pytest.importorskip("deepspeed")
    from transformers import AutoModelForCausalLM

    out = tmp_path / "zero3"
    settings = yaml.safe_load((ROOT / "iterpref" / "configs" / "deepspeed_zero3.yaml").read_text())
    settings.update(use_cpu=True, num_processes=2)
    settings["deepspeed_config"]["deepspeed_config_file"] = str(ROOT / "iterpref" / "configs" / "deepspeed_zero3.json")
    accel_config = tmp_path / "zero3_cpu.yaml"
    accel_config.write_text(yaml.safe_dump(settings))
    env = dict(os.environ, PYTHONPATH=str(ROOT), HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1", DS_ACCELERATOR="cpu")
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(accel_config),
           "--main_process_port", str(free_port()), "-m", "iterpref.train",
           "--pairs", str(pairs_file), "--model", str(tiny_model), "--output", str(out),
           "--max-steps", "2", "--lr", "1e-2", "--batch-size", "1", "--warmup-ratio", "0", "--no-progress"]
    proc = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=580)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # ZeRO partitions: one model/optimiser state file per rank.
    assert len(list((out / "checkpoint-2").glob("global_step2/zero_pp_rank_*_optim_states.pt"))) == 2
    zero3 = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    zero3 = [r for r in zero3 if "loss" in r]
    assert [r["step"] for r in zero3] == [1, 2]
    single = train(config(pairs_file, tiny_model, tmp_path / "single", batch_size=2, max_steps=2, save_model=False))
    for a, b in zip(zero3, [r for r in single.log_history if "loss" in r]):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-4)
        assert a["rewards/margins"] == pytest.approx(b["rewards/margins"], rel=1e-3, abs=1e-5)
    AutoModelForCausalLM.from_pretrained(out / "final")
    start, trained = weights(tiny_model), weights(out / "final")
    assert trained.keys() == start.keys()
    assert [name for name in start if torch.equal(start[name], trained[name])] == []
