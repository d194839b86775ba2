"""OpenAI-compatible HTTP engine (`vllm serve` beside each executor, or any endpoint): POST /chat/completions
(or /completions with token ids for a locally built prompt layout) with bounded concurrency, per-request timeouts
and retries with exponential backoff."""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import requests

from .base import (
    EngineFatalError,
    EngineLoadError,
    EngineSpec,
    Generation,
    Messages,
    Sampling,
    counter_of,
    failed,
    load_tokenizer,
)
from .templates import render_ids

_RETRY_STATUS = {408, 409, 429, 500, 502, 503, 504}
_MAX_BACKOFF_S = 30.0


class OpenAIEngine:
    name = "openai"

    def __init__(self, spec: EngineSpec, check_server: bool = True):
        self.spec = spec
        # A locally built layout goes to /completions as token ids, so the server sees exactly the prompt we sized.
        self.raw = spec.prompt_template != "chat"
        self.url = spec.base_url.rstrip("/") + ("/completions" if self.raw else "/chat/completions")
        key = os.environ.get(spec.api_key_env)
        self.headers = {"Authorization": f"Bearer {key}"} if key else {}
        self.tokenizer = load_tokenizer(spec)
        self.count_tokens = counter_of(self.tokenizer)
        self._local = threading.local()
        if check_server:
            self._check(spec)

    def _check(self, spec: EngineSpec) -> None:
        models = spec.base_url.rstrip("/") + "/models"
        try:
            requests.get(models, headers=self.headers, timeout=min(spec.timeout_s, 30)).raise_for_status()
        except requests.RequestException as err:
            raise EngineLoadError(f"llm.engine openai: server {models} for model {spec.model!r} is not usable: "
                                  f"{err}") from err

    def generate(self, prompts: Sequence[Messages], sampling: Sampling) -> list[Generation]:
        with ThreadPoolExecutor(max_workers=min(self.spec.concurrency, max(len(prompts), 1))) as pool:
            return list(pool.map(lambda m: self._one(m, sampling), prompts))

    def _session(self) -> requests.Session:
        # One connection pool per thread: requests.Session is not documented as thread-safe.
        if not hasattr(self._local, "session"):
            self._local.session = requests.Session()
        return self._local.session

    def _one(self, messages: Messages, sampling: Sampling) -> Generation:
        body = {"model": self.spec.model, "max_tokens": sampling.max_tokens,
                "temperature": sampling.temperature, "top_p": sampling.top_p, "seed": sampling.seed}
        if self.raw:
            body["prompt"] = render_ids(self.tokenizer, messages, self.spec.prompt_template)
        else:
            body["messages"] = messages
        last, retry_after, unreachable = "engine_error: no attempt made", None, False
        for attempt in range(self.spec.max_retries + 1):
            if attempt:
                time.sleep(self._backoff(attempt, retry_after))
            try:
                response = self._session().post(self.url, json=body, headers=self.headers,
                                                timeout=self.spec.timeout_s)
            except requests.Timeout:
                last, retry_after = "timeout", None
                continue
            except requests.RequestException as err:
                last, retry_after = f"engine_error: {type(err).__name__}: {str(err)[:200]}", None
                unreachable = isinstance(err, requests.ConnectionError)
                continue
            unreachable = False
            if response.status_code == 200:
                return _parse(response.json(), self.raw)
            detail = response.text[:300]
            if response.status_code == 400 and "context length" in detail.lower():
                return failed("too_long")
            last = f"engine_error: HTTP {response.status_code}: {detail}"
            retry_after = response.headers.get("Retry-After")
            if response.status_code not in _RETRY_STATUS:
                break  # a client error will not succeed on retry
        if unreachable:  # the server is gone, not this row: no later row would reach it either
            raise EngineFatalError(f"llm.engine openai: server {self.url} unreachable after "
                                   f"{self.spec.max_retries + 1} attempt(s): {last.removeprefix('engine_error: ')}")
        return failed(last)

    def _backoff(self, attempt: int, retry_after: str | None) -> float:
        if retry_after and retry_after.isdigit():
            return min(float(retry_after), _MAX_BACKOFF_S)
        # Exponential with jitter, so the workers of a cluster do not retry in lockstep.
        return min(self.spec.backoff_s * 2 ** (attempt - 1) * (0.5 + random.random()), _MAX_BACKOFF_S)


def _parse(payload: dict, completion: bool = False) -> Generation:
    try:
        choice = payload["choices"][0]
        usage = payload.get("usage") or {}
        finish = choice.get("finish_reason") or "stop"
        text = choice["text"] if completion else choice["message"]["content"]
        return Generation(text or "", usage.get("prompt_tokens"),
                          usage.get("completion_tokens"), "length" if finish == "length" else "stop")
    except (KeyError, IndexError, TypeError) as err:
        return failed(f"engine_error: malformed response ({type(err).__name__}: {err})")
