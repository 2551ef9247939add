"""A local transformers model; the default is the bundled SmolLM2-135M-Instruct.

Prompts go through the model's chat template and are decoded ``batch_size`` rows at a time, a finished row's place
taken at once by the next prompt (:mod:`iterpref.samplers.decode`).

``prefill`` starts the assistant's reply before the model writes: ``fence`` with an opening ```python fence,
``code`` with the fence and the prompt's ``code_start`` (for a function-completion task, its signature and
docstring), ``none`` with nothing. The prefill is part of the returned reply, so extraction sees one program.

``bf16`` keeps the weights in bfloat16 for sampling. On a GPU that is the usual way to serve; on a CPU with
AVX512-BF16 or AMX it made the bundled model's 256-token batches 1.5x faster (93 s against 141 s for 32 HumanEval
prompts on the 2-core machine, measured with transformers' generate before the decoder replaced it). Replies
differ from fp32 ones by rounding, so a run states which it used.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

from tqdm import tqdm

from iterpref.errors import ConfigError, SamplerError
from iterpref.samplers.base import Prompt, Sampler
from iterpref.samplers.decode import Decoding, RowDecoder

PREFILLS = ("code", "fence", "none")
NEEDS_TRAIN_EXTRA = ("the hf sampler needs torch and transformers: pip install 'iterpref[train]' "
                     "(or use --sampler openai)")


def resolve_device(choice: str) -> str:
    """``auto`` is CUDA when torch sees a GPU, else the CPU; asking for CUDA without one is a SamplerError."""
    try:
        import torch
    except ImportError:
        raise SamplerError(NEEDS_TRAIN_EXTRA) from None

    if choice == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if choice == "cuda" and not torch.cuda.is_available():
        raise SamplerError("--device cuda was asked for, but torch sees no CUDA GPU on this machine")
    return choice


class HFSampler(Sampler):
    def __init__(
        self,
        model_path: Optional[str | Path] = None,
        *,
        batch_size: int = 32,
        temperature: float = 0.8,
        top_p: float = 0.95,
        max_new_tokens: int = 512,
        seed: int = 0,
        device: str = "cpu",
        progress: bool = False,
        prefill: str = "fence",
        bf16: bool = False,
    ):
        if prefill not in PREFILLS:
            raise ConfigError(f"prefill must be one of {', '.join(PREFILLS)}, not {prefill!r}")
        if batch_size < 1 or max_new_tokens < 1:
            raise ConfigError("batch_size and max_new_tokens must be at least 1")
        if temperature < 0 or not 0 < top_p <= 1:
            raise ConfigError("temperature must be >= 0 and top_p in (0, 1]")
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        try:
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer
        except ImportError:
            raise SamplerError(NEEDS_TRAIN_EXTRA) from None

        if bf16 and device.startswith("cuda") and not torch.cuda.is_bf16_supported():
            raise ConfigError("bf16 sampling: this CUDA GPU has no bfloat16 support; sample in fp32")
        if model_path is None:
            from iterpref.bundled import smollm2_dir

            model_path = smollm2_dir()
        self.name = f"hf:{model_path}" + (" (bf16)" if bf16 else "")  # recorded with every attempt
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(model_path, padding_side="left")
            self.model = AutoModelForCausalLM.from_pretrained(model_path).to(device).eval()
        except (OSError, ValueError) as exc:
            raise SamplerError(f"cannot load a transformers model from {model_path}: {exc}") from None
        if bf16:
            self.model = self.model.to(torch.bfloat16)
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.torch = torch
        self.device = device
        self.batch_size = batch_size
        self.temperature = temperature
        self.top_p = top_p
        self.max_new_tokens = max_new_tokens
        self.seed = seed
        self.progress = progress
        self.prefill = prefill
        self._calls = 0
        # With the fence opened for it, the program ends at the closing fence; the prose models add after it would
        # cost most of the token budget.
        self._decoder = RowDecoder(self.model, self.tokenizer, stop="```" if prefill != "none" else None)

    def _render(self, messages: list[dict[str, str]]) -> str:
        return self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)

    def _reply_start(self, prompt: Prompt) -> str:
        if self.prefill == "none":
            return ""
        # No trailing newline: a prefill cut at "\n" splits the "\n    " token the model would use for the body,
        # and SmolLM2 then closes the fence right after the docstring (0/164 HumanEval instead of 9/164).
        code = prompt.code_start.rstrip() if self.prefill == "code" else ""
        return "```python\n" + code

    def generate(self, prompts: list[Prompt]) -> list[str]:
        heads = [self._reply_start(p) for p in prompts]
        texts = [self._render(p.messages) + head for p, head in zip(prompts, heads)]
        # One seed per call: a rerun with the same seed and the same calls reproduces the replies.
        decoding = Decoding(self.max_new_tokens, self.temperature, self.top_p, seed=self.seed + self._calls)
        self._calls += 1
        with tqdm(total=len(prompts), desc="sampling", unit="reply",
                  disable=not self.progress or len(prompts) <= self.batch_size) as bar:
            decoded = self._decoder.generate(texts, decoding, self.batch_size, on_done=bar.update)
        return [head + text for head, text in zip(heads, decoded)]
