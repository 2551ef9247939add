"""The continuously refilled decoder against transformers' own generate, on a tiny random Llama."""

import math

import pytest

from iterpref.samplers.decode import Decoding, RowDecoder

QUESTIONS = ["Write add(a, b).", "Hi", "Reverse a string, and say why at great length with many examples.",
             "Sum a list of numbers in Python.", "Is 7 prime?"]


@pytest.fixture(scope="module")
def model_and_tokenizer(tokenizer):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    # Weights far larger than a trained model's initialisation, so that every reply depends on each token's
    # position and on what it attends to: a row fed the wrong positions or another row's keys answers otherwise.
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=4, initializer_range=0.5,
                         pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
                         bos_token_id=tokenizer.bos_token_id)
    tokenizer.padding_side = "left"
    return LlamaForCausalLM(config).eval(), tokenizer


def _texts(tokenizer, questions=QUESTIONS):
    return [tokenizer.apply_chat_template([{"role": "user", "content": q}], add_generation_prompt=True,
                                          tokenize=False) for q in questions]


def _generate_alone(model, tokenizer, text, max_new_tokens):
    import torch

    batch = tokenizer([text], return_tensors="pt", add_special_tokens=False)
    with torch.no_grad():
        out = model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False,
                             pad_token_id=tokenizer.pad_token_id)
    return tokenizer.decode(out[0, batch["input_ids"].shape[1]:], skip_special_tokens=True)


def test_greedy_replies_with_rows_refilled_match_generate_one_prompt_at_a_time(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    texts = _texts(tokenizer)
    finished = []
    # Two rows in flight for five prompts of different lengths: rows leave and newcomers join mid-way, padded to
    # the cache or padding it.
    replies = RowDecoder(model, tokenizer, stop=None).generate(texts, Decoding(12, 0.0, 1.0, seed=0), batch_size=2,
                                                              on_done=finished.append)
    assert replies == [_generate_alone(model, tokenizer, text, 12) for text in texts]
    assert sum(finished) == len(texts)


def test_rows_that_end_at_different_steps_give_the_replies_each_prompt_gets_alone(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    # Ending at the first "ing" gives replies of many lengths, so newcomers join rows still in
    # flight: the cache is padded for them or they for it, and finished rows leave from the middle.
    decoder = RowDecoder(model, tokenizer, stop="ing")
    texts = _texts(tokenizer) * 2
    greedy = Decoding(16, 0.0, 1.0, seed=0)
    batched = decoder.generate(texts, greedy, batch_size=3)
    alone = [decoder.generate([text], greedy, batch_size=1)[0] for text in texts]
    assert batched == alone
    assert len({len(tokenizer(reply, add_special_tokens=False).input_ids) for reply in batched}) > 2


def test_a_sliding_window_model_refills_only_an_empty_batch_and_gives_the_same_replies(tokenizer):
    import torch
    from transformers import MistralConfig, MistralForCausalLM

    torch.manual_seed(0)
    # Its cache layers keep only the last 8 keys, so rows cannot be padded into them mid-way.
    config = MistralConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                           num_attention_heads=4, num_key_value_heads=4, sliding_window=8, initializer_range=0.5,
                           pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
                           bos_token_id=tokenizer.bos_token_id)
    tokenizer.padding_side = "left"
    decoder = RowDecoder(MistralForCausalLM(config).eval(), tokenizer, stop="ing")
    texts = _texts(tokenizer) * 2
    greedy = Decoding(16, 0.0, 1.0, seed=0)
    assert decoder.generate(texts, greedy, batch_size=3) == [decoder.generate([t], greedy, batch_size=1)[0]
                                                            for t in texts]


def test_sampled_replies_repeat_with_the_seed_and_copies_of_one_prompt_are_drawn_apart(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    decoder = RowDecoder(model, tokenizer, stop=None)
    texts = [text for text in _texts(tokenizer)[:2] for _ in range(3)]  # three candidates of each prompt
    first = decoder.generate(texts, Decoding(10, 1.0, 0.95, seed=3), batch_size=4)
    assert decoder.generate(texts, Decoding(10, 1.0, 0.95, seed=3), batch_size=4) == first
    assert decoder.generate(texts, Decoding(10, 1.0, 0.95, seed=4), batch_size=4) != first
    assert len(set(first[:3])) > 1 and len(set(first[3:])) > 1  # one prefill, yet separate draws
    assert all(len(tokenizer(reply, add_special_tokens=False).input_ids) <= 12 for reply in first)


def test_a_reply_ends_at_the_token_that_completes_the_stop_text_or_at_end_of_sequence(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    decoder = RowDecoder(model, tokenizer, stop="```")
    closed = tokenizer("x = 1\n```", add_special_tokens=False).input_ids
    assert decoder._finished(closed)
    assert not any(decoder._finished(closed[:n]) for n in range(1, len(closed)))
    assert decoder._finished(tokenizer("x = 1", add_special_tokens=False).input_ids + [tokenizer.eos_token_id])
    assert not RowDecoder(model, tokenizer, stop=None)._finished(closed)


def test_sampling_keeps_only_the_nucleus_and_the_top_k(model_and_tokenizer):
    import torch

    model, tokenizer = model_and_tokenizer
    decoder = RowDecoder(model, tokenizer, stop=None)
    generator = torch.Generator().manual_seed(0)
    # 0.6 and 0.3 make up 0.9 >= top_p 0.85, so the third and fourth tokens are never drawn.
    logits = torch.tensor([[math.log(p) for p in (0.6, 0.3, 0.09, 0.01)]]).repeat(2000, 1)
    drawn = decoder._pick(logits, Decoding(1, 1.0, 0.85, seed=0), generator)
    assert set(drawn.tolist()) == {0, 1}
    # Top-k 50: of 60 equally likely tokens, only the 50 highest-ranked (ties broken by topk) can be drawn.
    flat = torch.zeros(4000, 60)
    flat[:, :50] += 1e-3
    assert set(decoder._pick(flat, Decoding(1, 1.0, 1.0, seed=0), generator).tolist()) <= set(range(50))
    greedy = decoder._pick(logits[:1], Decoding(1, 0.0, 1.0, seed=0), generator)
    assert greedy.tolist() == [0]
