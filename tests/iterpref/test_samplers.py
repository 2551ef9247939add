import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from iterpref.errors import ConfigError, DataError, SamplerError
from iterpref.samplers import Prompt, make_sampler
from iterpref.samplers.openai import OpenAISampler
from iterpref.samplers.scripted import ScriptedSampler


def _prompts(n):
    return [Prompt(f"t{i}", 0, [{"role": "user", "content": f"question {i}"}]) for i in range(n)]


class FakeChatServer:
    """A stand-in for an OpenAI-compatible server: echoes the last user message, can fail the first requests."""

    def __init__(self, fail_first=0, fail_status=503, delay_s=0.0, hold_first_until=0):
        self.fail_left = fail_first
        self.fail_status = fail_status
        self.delay_s = delay_s
        # The first request is answered only once this many are in flight (or after 30 s, so a client that sends
        # one at a time still ends): concurrency is then observed as an event, whatever the machine's speed.
        self.hold_first_until = hold_first_until
        self.enough_in_flight = threading.Event()
        self.requests = []
        self.in_flight = self.max_in_flight = 0
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with fake.lock:
                    fake.requests.append((self.path, self.headers.get("Authorization"), body))
                    fake.in_flight += 1
                    fake.max_in_flight = max(fake.max_in_flight, fake.in_flight)
                    failing = fake.fail_left > 0
                    fake.fail_left -= failing
                    first = len(fake.requests) == 1
                    if fake.in_flight >= fake.hold_first_until:
                        fake.enough_in_flight.set()
                if first and fake.hold_first_until:
                    fake.enough_in_flight.wait(30)
                time.sleep(fake.delay_s)
                with fake.lock:
                    fake.in_flight -= 1
                if failing:
                    self.send_response(fake.fail_status)
                    self.send_header("Retry-After", "0")
                    self.end_headers()
                    self.wfile.write(b'{"error": "try later"}')
                    return
                reply = {"choices": [{"message": {"role": "assistant",
                                                  "content": "echo: " + body["messages"][-1]["content"]}}]}
                data = json.dumps(reply).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def test_openai_sampler_keeps_order_sends_params_and_key(monkeypatch):
    monkeypatch.setenv("MY_KEY", "sekret")
    with FakeChatServer(hold_first_until=2) as server:
        sampler = OpenAISampler(server.url, "tiny", api_key_env="MY_KEY", concurrency=3, temperature=0.2,
                                max_tokens=64, seed=7)
        replies = sampler.generate(_prompts(10))
    assert replies == [f"echo: question {i}" for i in range(10)]
    path, auth, body = server.requests[0]
    assert path == "/v1/chat/completions" and auth == "Bearer sekret"
    assert body["model"] == "tiny" and body["temperature"] == 0.2 and body["max_tokens"] == 64 and body["seed"] == 7
    assert 1 < server.max_in_flight <= 3


def test_openai_sampler_retries_server_errors_with_backoff():
    with FakeChatServer(fail_first=2, fail_status=503) as server:
        sampler = OpenAISampler(server.url, "tiny", retries=3, backoff_s=0.01, concurrency=1)
        assert sampler.generate(_prompts(1)) == ["echo: question 0"]
    assert len(server.requests) == 3


def test_openai_sampler_gives_up_and_does_not_retry_client_errors():
    with FakeChatServer(fail_first=10, fail_status=503) as server:
        with pytest.raises(SamplerError, match="answered 503.*gave up after 2 tries"):
            OpenAISampler(server.url, "tiny", retries=1, backoff_s=0.01).generate(_prompts(1))
    with FakeChatServer(fail_first=10, fail_status=401) as server:
        with pytest.raises(SamplerError, match="answered 401"):
            OpenAISampler(server.url, "tiny", retries=3, backoff_s=0.01).generate(_prompts(1))
    assert len(server.requests) == 1


def test_openai_sampler_unreachable_server_and_missing_key(monkeypatch):
    with FakeChatServer() as server:
        url = server.url  # the port is free again once the server is closed
    with pytest.raises(SamplerError, match="cannot reach"):
        OpenAISampler(url, "tiny", retries=1, backoff_s=0.01).generate(_prompts(1))
    monkeypatch.delenv("NOT_SET_KEY", raising=False)
    with pytest.raises(SamplerError, match="NOT_SET_KEY"):
        OpenAISampler(url, "tiny", api_key_env="NOT_SET_KEY")


def test_scripted_sampler_replays_by_task_and_round(tmp_path):
    path = tmp_path / "script.jsonl"
    path.write_text(json.dumps({"task_id": "a", "responses": ["r0", "r1"]}) + "\n")
    sampler = make_sampler("scripted", script=str(path))
    prompts = [Prompt("a", 0, []), Prompt("a", 1, []), Prompt("a", 4, [])]
    assert sampler.generate(prompts) == ["r0", "r1", "r1"]
    with pytest.raises(SamplerError, match="no responses for task 'b'"):
        sampler.generate([Prompt("b", 0, [])])
    with pytest.raises(DataError, match="non-empty list"):
        ScriptedSampler({"a": []})
    with pytest.raises(SamplerError, match="--script"):
        make_sampler("scripted")


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_hf_sampler_batched_left_padding_matches_one_by_one():
    from iterpref.samplers.hf import HFSampler

    sampler = HFSampler(batch_size=2, temperature=0.0, max_new_tokens=12)  # a row refilled mid-way
    prompts = [Prompt("a", 0, [{"role": "user", "content": "Write a Python function that adds two numbers."}]),
               Prompt("b", 0, [{"role": "user", "content": "Hi"}]),
               Prompt("c", 0, [{"role": "user", "content": "Print hello world in Python, please, in one line."}])]
    batched = sampler.generate(prompts)
    single = [sampler.generate([p])[0] for p in prompts]
    assert all(isinstance(r, str) and r for r in batched)
    assert batched == single
    assert sampler.name.startswith("hf:")


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_hf_sampler_prefill_starts_the_reply_and_is_returned_with_it():
    from iterpref.records import Task
    from iterpref.refine.feedback import initial_prompt
    from iterpref.samplers.hf import HFSampler

    task = Task("t", 'def add(a, b):\n    """Return a + b."""\n', entry_point="add")
    prompt = initial_prompt(task)
    assert prompt.code_start == task.prompt
    code = HFSampler(temperature=0.0, max_new_tokens=8, prefill="code").generate([prompt])[0]
    fence = HFSampler(temperature=0.0, max_new_tokens=8, prefill="fence").generate([prompt])[0]
    bare = HFSampler(temperature=0.0, max_new_tokens=8, prefill="none").generate([prompt])[0]
    assert code.startswith("```python\n" + task.prompt) and len(code) > len("```python\n" + task.prompt)
    assert fence.startswith("```python\n") and not fence.startswith("```python\n" + task.prompt)
    assert not bare.startswith("```python\n" + task.prompt)  # 8 new tokens cannot restate the prompt
    # Repair rounds carry no code start: "code" then only opens the fence.
    repair = Prompt("t", 1, prompt.messages)
    assert HFSampler(temperature=0.0, max_new_tokens=4, prefill="code").generate([repair])[0].startswith("```python\n")


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_hf_sampler_bf16_samples_with_bfloat16_weights():
    import torch

    from iterpref.samplers.hf import HFSampler

    prompt = Prompt("a", 0, [{"role": "user", "content": "Write a Python function that adds two numbers."}])
    full = HFSampler(temperature=0.0, max_new_tokens=6)
    half = HFSampler(temperature=0.0, max_new_tokens=6, bf16=True)
    assert {p.dtype for p in full.model.parameters()} == {torch.float32}
    assert {p.dtype for p in half.model.parameters()} == {torch.bfloat16}
    assert half.name == full.name + " (bf16)"  # the attempts it writes say how they were sampled
    reply = half.generate([prompt])[0]
    assert reply.startswith("```python\n") and len(reply) > len("```python\n")


def test_hf_sampler_bf16_on_a_gpu_without_bfloat16_is_a_config_error(monkeypatch):
    import torch

    from iterpref.samplers.hf import HFSampler

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    with pytest.raises(ConfigError, match="no bfloat16 support"):
        HFSampler(device="cuda", bf16=True)


def test_hf_sampler_rejects_unknown_prefill_and_missing_cuda(monkeypatch):
    import torch

    from iterpref.samplers.hf import HFSampler, resolve_device

    with pytest.raises(ConfigError, match="prefill must be one of"):
        HFSampler(prefill="docstring")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == "cpu"
    with pytest.raises(SamplerError, match="no CUDA GPU"):
        resolve_device("cuda")


def test_initial_prompt_code_start_only_for_function_prompts():
    from iterpref.records import Task
    from iterpref.refine.feedback import initial_prompt

    assert initial_prompt(Task("s", "Read n and print n squared.", entry_point=None)).code_start == ""
    assert initial_prompt(Task("m", "Write a function to add.", entry_point="add")).code_start == ""
