"""sandbox.rewards.trl_reward inside a real trl.GRPOTrainer step: the trainer calls it with its own arguments and
the dataset's tests column, the service answers the step's completions in one batch, and the trainer logs the
rewards the function returned. A tiny random model writes no working code, so the values here are zeros; what
rewards are worth is tested in test_rewards.py against the same service."""

from __future__ import annotations

import httpx
import pytest

from sandbox.launch import start_service
from sandbox.rewards import trl_reward
from tests.sandbox.test_metrics import value

pytestmark = pytest.mark.slow


def test_grpo_trainer_calls_the_reward_with_the_tests_column_and_logs_it(tmp_path):
    torch = pytest.importorskip("torch")
    trl = pytest.importorskip("trl")
    datasets = pytest.importorskip("datasets")
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from iterpref.bundled import smollm2_dir

    try:
        tokenizer = AutoTokenizer.from_pretrained(smollm2_dir())
    except Exception as exc:  # the bundled model's package is optional
        pytest.skip(f"no bundled tokenizer: {exc}")
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=2, pad_token_id=tokenizer.pad_token_id,
                         eos_token_id=tokenizer.eos_token_id, bos_token_id=tokenizer.bos_token_id)
    LlamaForCausalLM(config).save_pretrained(tmp_path / "model")
    tokenizer.save_pretrained(tmp_path / "model")
    tests = [{"kind": "call", "entry_point": "add", "args": [1, 2], "expected": 3}]
    dataset = datasets.Dataset.from_list([{"prompt": "def add(a, b):", "tests": tests}] * 4)

    with start_service("process", workers=1) as service:
        reward = trl_reward(service.url)
        calls: list[tuple[int, list[str], list[float]]] = []

        def sandbox_pass(prompts, completions, **kwargs):
            rewards = reward(prompts=prompts, completions=completions, **kwargs)
            calls.append((len(completions), sorted(kwargs), rewards))
            return rewards

        args = trl.GRPOConfig(output_dir=str(tmp_path / "out"), per_device_train_batch_size=4, num_generations=4,
                              max_completion_length=8, max_steps=1, logging_steps=1, report_to=[], use_cpu=True,
                              save_strategy="no")
        trainer = trl.GRPOTrainer(model=str(tmp_path / "model"), reward_funcs=[sandbox_pass], args=args,
                                  train_dataset=dataset, processing_class=tokenizer)
        trainer.train()
        text = httpx.get(service.url + "/metrics").text

    assert len(calls) == 1
    completions, columns, rewards = calls[0]
    assert completions == 4 and "tests" in columns and len(rewards) == 4
    logged = [entry for entry in trainer.state.log_history if "rewards/sandbox_pass/mean" in entry]
    assert logged and logged[0]["rewards/sandbox_pass/mean"] == pytest.approx(sum(rewards) / 4)
    assert value(text, "sandbox_requests_total", endpoint="/v1/batch", code="200") == 1
    assert value(text, "sandbox_runs_total", status="completed") == 4
