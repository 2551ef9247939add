"""Any OpenAI-compatible chat server: vLLM, SGLang, llama.cpp's server, hosted APIs.

Requests run concurrently up to ``concurrency``; connection errors, 408/409/429 and 5xx are retried with
exponential backoff (honouring ``Retry-After``); other 4xx answers are the caller's mistake and stop at once.
"""

from __future__ import annotations

import asyncio
import os
import random
from typing import Optional

import httpx

from iterpref.errors import ConfigError, SamplerError
from iterpref.samplers.base import Prompt, Sampler

_RETRY_STATUS = {408, 409, 429}


class OpenAISampler(Sampler):
    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key_env: Optional[str] = None,
        concurrency: int = 8,
        temperature: float = 0.8,
        top_p: float = 0.95,
        max_tokens: int = 512,
        seed: Optional[int] = None,
        retries: int = 4,
        backoff_s: float = 0.5,
        timeout_s: float = 120.0,
    ):
        if concurrency < 1 or retries < 0:
            raise ConfigError("concurrency must be at least 1 and retries at least 0")
        # A named variable must exist; the default OPENAI_API_KEY may be absent (local servers need no key).
        if api_key_env is not None and not os.environ.get(api_key_env):
            raise SamplerError(f"the environment variable {api_key_env} (the API key) is not set")
        self.api_key = os.environ.get(api_key_env or "OPENAI_API_KEY")
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model = model
        self.name = f"openai:{model}"
        self.concurrency = concurrency
        self.params = {"temperature": temperature, "top_p": top_p, "max_tokens": max_tokens}
        if seed is not None:
            self.params["seed"] = seed
        self.retries = retries
        self.backoff_s = backoff_s
        self.timeout_s = timeout_s

    def generate(self, prompts: list[Prompt]) -> list[str]:
        return asyncio.run(self._generate_all(prompts))

    async def _generate_all(self, prompts: list[Prompt]) -> list[str]:
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        limit = asyncio.Semaphore(self.concurrency)
        async with httpx.AsyncClient(headers=headers, timeout=self.timeout_s) as client:

            async def one(prompt: Prompt) -> str:
                async with limit:
                    return await self._complete(client, prompt.messages)

            return list(await asyncio.gather(*(one(p) for p in prompts)))

    async def _complete(self, client: httpx.AsyncClient, messages: list[dict[str, str]]) -> str:
        body = {"model": self.model, "messages": messages, **self.params}
        problem = ""
        for attempt in range(self.retries + 1):
            delay = self.backoff_s * 2**attempt * (0.5 + random.random())
            try:
                response = await client.post(self.url, json=body)
            except httpx.TransportError as exc:
                problem = f"cannot reach {self.url}: {exc.__class__.__name__}: {exc}"
            else:
                if response.status_code == 200:
                    return self._reply_text(response)
                problem = f"{self.url} answered {response.status_code}: {response.text[:300]}"
                if response.status_code < 500 and response.status_code not in _RETRY_STATUS:
                    raise SamplerError(problem)
                retry_after = response.headers.get("retry-after", "")
                if retry_after.replace(".", "", 1).isdigit():
                    delay = max(delay, float(retry_after))
            if attempt < self.retries:
                await asyncio.sleep(delay)
        raise SamplerError(f"{problem} (gave up after {self.retries + 1} tries)")

    def _reply_text(self, response: httpx.Response) -> str:
        try:
            content = response.json()["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError):
            raise SamplerError(
                f"{self.url} sent a reply without choices[0].message.content: {response.text[:300]}"
            ) from None
        return content or ""
