"""The engines on the tiny local model: transformers directly, openai against a real in-process server serving
the same model, retries / timeouts / backoff against a stub server.
vLLM: tests/test_vllm_engine.py (`make test-vllm`)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from refinery.udfs.llm import EngineLoadError, EngineSpec, Sampling, get_engine, load_counts
from refinery.udfs.llm.openai_http import OpenAIEngine

from .conftest import sample_texts

GREEDY = Sampling(max_tokens=16, temperature=0.0)


@pytest.fixture(scope="module")
def engine(tiny_model):
    return get_engine(EngineSpec(engine="transformers", model=str(tiny_model), max_model_len=512, batch_size=3))


@pytest.fixture(scope="module")
def prompts():
    return [[{"role": "system", "content": "Rewrite the text."}, {"role": "user", "content": t[:150]}]
            for t in sample_texts(7)]


def test_transformers_engine_counts_tokens_and_reproduces_seeded_samples(engine, prompts):
    sampled = Sampling(max_tokens=16, temperature=0.9, top_p=0.95, seed=11)
    first = engine.generate(prompts, sampled)
    assert first == engine.generate(prompts, sampled)
    assert first != engine.generate(prompts, Sampling(max_tokens=16, temperature=0.9, top_p=0.95, seed=12))
    for messages, out in zip(prompts, first, strict=True):
        assert out.prompt_tokens == len(engine.render(messages))
        assert out.finish_reason in ("stop", "length") and out.error is None
        assert 0 < out.output_tokens <= 16 and (out.output_tokens == 16) == (out.finish_reason == "length")


def test_an_over_long_prompt_fails_alone_as_a_row_outcome(engine, prompts):
    long = [{"role": "user", "content": " ".join(sample_texts())[:5000]}]
    outputs = engine.generate([prompts[0], long, prompts[1]], GREEDY)
    assert outputs[1].finish_reason == "error" and outputs[1].error == "too_long" and outputs[1].text is None
    assert outputs[1].prompt_tokens > 512
    assert outputs[0] == engine.generate([prompts[0]], GREEDY)[0] and outputs[2].error is None


def test_the_engine_is_loaded_once_per_process_and_a_bad_path_names_the_model(engine, tiny_model, tmp_path):
    loads = load_counts()["transformers"]
    assert get_engine(EngineSpec(engine="transformers", model=str(tiny_model), max_model_len=512,
                                 batch_size=3)) is engine
    assert load_counts()["transformers"] == loads
    with pytest.raises(EngineLoadError, match=f"cannot load .*{tmp_path / 'missing'}"):
        get_engine(EngineSpec(engine="transformers", model=str(tmp_path / "missing")))


# --- openai: a real OpenAI-compatible server in-process, serving the tiny model with the transformers engine ---

def serve(handler: Callable[[dict], tuple[int, dict, dict]]) -> tuple[ThreadingHTTPServer, list]:
    """A threaded HTTP server on a free port; handler(body) -> (status, headers, json). Records every request."""
    seen: list = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # keep pytest output clean
            pass

        def _reply(self, status: int, headers: dict, payload: dict) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            for k, v in {"Content-Type": "application/json", **headers}.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):  # noqa: N802 - /v1/models, the engine's start-up check
            self._reply(200, {}, {"object": "list", "data": [{"id": "tiny"}]})

        def do_POST(self):  # noqa: N802
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            seen.append((time.monotonic(), body, self.headers.get("Authorization")))
            try:
                self._reply(*handler(body))
            except (BrokenPipeError, ConnectionResetError):
                pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, seen


def openai_spec(server, tiny_model, **overrides) -> EngineSpec:
    settings = {"engine": "openai", "model": str(tiny_model), "base_url": f"http://127.0.0.1:{server.server_port}/v1",
                "timeout_s": 5.0, "max_retries": 2, "backoff_s": 0.01, "concurrency": 4, **overrides}
    return EngineSpec(**settings)


def test_openai_engine_against_a_server_serving_the_tiny_model_matches_the_direct_engine(engine, tiny_model,
                                                                                      prompts, monkeypatch):
    lock = threading.Lock()  # the model is not thread-safe; the server runs one generate at a time

    def chat(body: dict) -> tuple[int, dict, dict]:
        sampling = Sampling(max_tokens=body["max_tokens"], temperature=body["temperature"], top_p=body["top_p"],
                            seed=body["seed"])
        with lock:
            out = engine.generate([body["messages"]], sampling)[0]
        choice = {"index": 0, "message": {"role": "assistant", "content": out.text}, "finish_reason": out.finish_reason}
        usage = {"prompt_tokens": out.prompt_tokens, "completion_tokens": out.output_tokens}
        return 200, {}, {"id": "x", "object": "chat.completion", "choices": [choice], "usage": usage}

    server, seen = serve(chat)
    monkeypatch.setenv("TEST_LLM_KEY", "secret")
    try:
        remote = OpenAIEngine(openai_spec(server, tiny_model, api_key_env="TEST_LLM_KEY"))
        assert remote.generate(prompts, GREEDY) == [engine.generate([p], GREEDY)[0] for p in prompts]
        assert len(seen) == len(prompts) and all(auth == "Bearer secret" for _, _, auth in seen)
        assert remote.count_tokens(["hello world"]) == engine.count_tokens(["hello world"])
    finally:
        server.shutdown()


# --- openai failure handling: a STUB server returning canned JSON (only for retries, timeouts, backoff) ---------

CANNED = {"choices": [{"message": {"content": "Here is a paraphrased version: fine."}, "finish_reason": "stop"}],
          "usage": {"prompt_tokens": 7, "completion_tokens": 5}}


def test_retryable_errors_are_retried_with_backoff_then_succeed(tiny_model):
    calls = iter([(503, {}, {"error": "busy"}), (429, {"Retry-After": "0"}, {"error": "slow down"}),
                  (200, {}, CANNED)])
    server, seen = serve(lambda body: next(calls))
    try:
        out = OpenAIEngine(openai_spec(server, tiny_model)).generate([[{"role": "user", "content": "x"}]], GREEDY)
        assert out[0].text.startswith("Here is") and out[0].prompt_tokens == 7 and out[0].output_tokens == 5
        assert len(seen) == 3
    finally:
        server.shutdown()


def test_timeouts_and_client_errors_are_row_outcomes_not_exceptions(tiny_model):
    def handler(body):
        if body["messages"][0]["content"] == "slow":
            time.sleep(1.0)
            return 200, {}, CANNED
        if body["messages"][0]["content"] == "huge":
            return 400, {}, {"error": {"message": "This model's maximum context length is 4096 tokens"}}
        return 400, {}, {"error": {"message": "unknown parameter"}}

    server, seen = serve(handler)
    try:
        engine = OpenAIEngine(openai_spec(server, tiny_model, timeout_s=0.3, max_retries=1))
        out = engine.generate([[{"role": "user", "content": c}] for c in ("slow", "huge", "bad")], GREEDY)
        assert [o.error.split(":")[0] for o in out] == ["timeout", "too_long", "engine_error"]
        assert "HTTP 400" in out[2].error and all(o.finish_reason == "error" for o in out)
        bodies = [b["messages"][0]["content"] for _, b, _ in seen]
        assert bodies.count("slow") == 2 and bodies.count("huge") == 1 and bodies.count("bad") == 1  # 4xx: no retry
    finally:
        server.shutdown()


def test_concurrency_is_bounded_per_worker(tiny_model):
    state = {"now": 0, "peak": 0}
    lock = threading.Lock()

    def handler(body):
        with lock:
            state["now"] += 1
            state["peak"] = max(state["peak"], state["now"])
        time.sleep(0.05)
        with lock:
            state["now"] -= 1
        return 200, {}, CANNED

    server, _ = serve(handler)
    try:
        engine = OpenAIEngine(openai_spec(server, tiny_model, concurrency=3))
        assert len(engine.generate([[{"role": "user", "content": str(i)}] for i in range(12)], GREEDY)) == 12
        assert state["peak"] == 3
    finally:
        server.shutdown()


def test_an_unreachable_server_fails_engine_start_naming_the_url(tiny_model):
    spec = EngineSpec(engine="openai", model=str(tiny_model), base_url="http://127.0.0.1:9/v1", timeout_s=1.0)
    with pytest.raises(EngineLoadError, match=r"127\.0\.0\.1:9/v1/models"):
        get_engine(spec)
