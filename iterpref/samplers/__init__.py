"""Samplers: where replies come from. ``make_sampler`` builds one from command-line style options."""

from __future__ import annotations

from typing import Any, Optional

from iterpref.errors import SamplerError
from iterpref.samplers.base import Prompt, Sampler

KINDS = ("hf", "openai", "scripted")


def make_sampler(kind: str, *, model: Optional[str] = None, base_url: Optional[str] = None,
                 script: Optional[str] = None, **options: Any) -> Sampler:
    """``hf`` (model: a local folder, default the bundled SmolLM2), ``openai`` (base_url and model) or
    ``scripted`` (script: a JSONL file). ``options`` go to the sampler's constructor."""
    if kind == "hf":
        from iterpref.samplers.hf import HFSampler

        return HFSampler(model, **options)
    if kind == "openai":
        from iterpref.samplers.openai import OpenAISampler

        if not base_url or not model:
            raise SamplerError("the openai sampler needs --base-url and --model")
        return OpenAISampler(base_url, model, **options)
    if kind == "scripted":
        from iterpref.samplers.scripted import ScriptedSampler

        if not script:
            raise SamplerError("the scripted sampler needs --script FILE.jsonl")
        return ScriptedSampler.from_jsonl(script)
    raise SamplerError(f"unknown sampler {kind!r}; choose one of {', '.join(KINDS)}")


__all__ = ["KINDS", "Prompt", "Sampler", "make_sampler"]
