"""Fixtures shared by the training tests (single process, DDP, FSDP, GPU): a few pairs, the bundled tokenizer
and a tiny Llama built from it. torch and transformers are imported inside, so collecting the other tests
needs neither."""

import pytest

from iterpref.records import Pair, to_json_line

PAIRS = [
    Pair("t0", "Write add(a, b).", "def add(a, b):\n    return a + b\n", "def add(a, b):\n    return a - b\n",
         [2], [2]),
    Pair("t1", "Sum a list.", "def s(xs):\n    t = 0\n    for x in xs:\n        t += x\n    return t\n",
         "def s(xs):\n    t = 0\n    return t\n", [], [3, 4]),
    Pair("t2", "Negate.", "def neg(x):\n    return -x\n", "def neg(x):\n    print(x)\n    return x\n", [2, 3], [2]),
    Pair("t3", "Same.", "x = 1\n", "x = 1\n", [], []),
    Pair("t4", "Greet.", 'def hi():\n    return "héllo ✓"\n', 'def hi():\n    return "hello"\n', [2], [2]),
]


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    from iterpref.bundled import smollm2_dir

    return AutoTokenizer.from_pretrained(smollm2_dir())


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory, tokenizer):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=4, pad_token_id=tokenizer.pad_token_id,
                         eos_token_id=tokenizer.eos_token_id, bos_token_id=tokenizer.bos_token_id)
    path = tmp_path_factory.mktemp("tiny")
    LlamaForCausalLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def pairs_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "pairs.jsonl"
    path.write_text("".join(to_json_line(p) for p in PAIRS * 2))
    return path
