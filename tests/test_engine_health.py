"""Engine health: an engine whose server dies is dropped from the worker's cache and loaded again once (counted);
a second failure fails the call with its cause instead of failing every later row one by one. The openai engine
against a real local HTTP server that crashes (closes connections without answering) and restarts."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from refinery.udfs.llm import EngineFatalError, EngineSpec, Sampling, get_engine, load_counts, reload_counts

PROMPTS = [[{"role": "user", "content": f"text {i}"}] for i in range(6)]
GREEDY = Sampling(max_tokens=8, temperature=0.0)
ANSWER = {"choices": [{"message": {"content": "fine"}, "finish_reason": "stop"}],
          "usage": {"prompt_tokens": 3, "completion_tokens": 2}}


class Server:
    """An OpenAI-compatible server that can crash: `up` answers; `crashed` drops every request unanswered (the
    client sees the connection close); `gone` also drops the start-up check. restart_on_check: the next /models
    (the engine's reload) finds it restarted."""

    def __init__(self):
        self.state, self.restart_on_check, self.posts = "up", False, 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _answer(self, payload: dict) -> None:
                data = json.dumps(payload).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):  # noqa: N802 - /v1/models
                if server.restart_on_check:
                    server.state, server.restart_on_check = "up", False
                if server.state == "gone":
                    self.close_connection = True
                    return
                self._answer({"data": [{"id": "tiny"}]})

            def do_POST(self):  # noqa: N802
                self.rfile.read(int(self.headers["Content-Length"]))
                server.posts += 1
                if server.state != "up":
                    self.close_connection = True  # a crashed server: no status line at all
                    return
                self._answer(ANSWER)

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.http.serve_forever, daemon=True).start()

    def spec(self, tiny_model, name: str) -> EngineSpec:
        # a distinct (unset) key variable per test: its own cache entry, so its own reload allowance
        return EngineSpec(engine="openai", model=str(tiny_model), timeout_s=5.0, api_key_env=f"NO_KEY_{name}",
                          base_url=f"http://127.0.0.1:{self.http.server_port}/v1", max_retries=1, backoff_s=0.01,
                          concurrency=2)


@pytest.fixture
def server():
    s = Server()
    yield s
    s.http.shutdown()


def test_a_crashed_server_is_reloaded_once_and_the_batch_goes_on(server, tiny_model):
    engine = get_engine(server.spec(tiny_model, "recovers"))
    assert all(g.text == "fine" for g in engine.generate(PROMPTS, GREEDY))
    loads, reloads = load_counts()["openai"], reload_counts().get("openai", 0)
    server.state, server.restart_on_check = "crashed", True
    outputs = engine.generate(PROMPTS, GREEDY)
    assert all(g.text == "fine" and g.error is None for g in outputs)  # no row failed: the call was repeated
    assert reload_counts()["openai"] == reloads + 1 and load_counts()["openai"] == loads + 1
    assert get_engine(server.spec(tiny_model, "recovers")) is engine


def test_a_second_failure_fails_the_call_with_its_cause_not_row_by_row(server, tiny_model):
    engine = get_engine(server.spec(tiny_model, "dies_twice"))
    server.state, server.restart_on_check = "crashed", True
    assert all(g.text == "fine" for g in engine.generate(PROMPTS, GREEDY))  # first crash: reloaded
    server.state = "crashed"
    posts = server.posts
    with pytest.raises(EngineFatalError, match=r"after 1 reload\(s\) already: EngineFatalError: .*unreachable"):
        engine.generate(PROMPTS, GREEDY)
    # the first row's attempts (max_retries + 1) and the ones in flight beside it, not every row's retries
    assert server.posts - posts < len(PROMPTS) * 2


def test_a_reload_that_cannot_start_fails_with_both_causes(server, tiny_model):
    engine = get_engine(server.spec(tiny_model, "gone"))
    server.state = "gone"
    with pytest.raises(EngineFatalError, match=r"its reload failed: .*/models.* is not usable"):
        engine.generate(PROMPTS[:2], GREEDY)
    # dropped from the cache: the next task loads it afresh (and fails to start, naming the server)
    server.state = "up"
    assert get_engine(server.spec(tiny_model, "gone")) is not engine
