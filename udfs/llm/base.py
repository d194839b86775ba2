"""The engine interface, the per-process engine cache and the per-row failure fallback shared by the engines."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple, Protocol

Messages = list[dict[str, str]]


@dataclass(frozen=True)
class Sampling:
    max_tokens: int = 256
    temperature: float = 0.0  # 0 = greedy
    top_p: float = 1.0
    seed: int = 0


class Generation(NamedTuple):
    text: str | None
    prompt_tokens: int | None
    output_tokens: int | None
    finish_reason: str  # stop | length | error
    error: str | None = None  # too_long | timeout | engine_error: ... (only when finish_reason is error)


def failed(reason: str, prompt_tokens: int | None = None) -> Generation:
    return Generation(None, prompt_tokens, 0, "error", reason)


@dataclass(frozen=True)
class EngineSpec:
    """Everything that identifies a loaded engine; hashable, so it keys the per-process cache."""

    engine: str
    model: str
    tokenizer: str | None = None
    dtype: str = "auto"
    device: str = "auto"
    max_model_len: int = 4096
    batch_size: int = 16
    timeout_s: float = 300.0
    tensor_parallel_size: int = 1
    gpu_memory_utilization: float = 0.85
    enforce_eager: bool = False
    base_url: str = "http://127.0.0.1:8000/v1"
    api_key_env: str = "OPENAI_API_KEY"
    concurrency: int = 8
    max_retries: int = 4
    backoff_s: float = 1.0
    # chat: the tokenizer's own chat template (openai: /chat/completions); llama2: the Llama-2 chat layout built
    # locally (openai: /completions with the prompt's token ids), for checkpoints trained on it (ProX)
    prompt_template: str = "chat"


class Engine(Protocol):
    name: str

    def generate(self, prompts: Sequence[Messages], sampling: Sampling) -> list[Generation]: ...

    def count_tokens(self, texts: list[str]) -> list[int]: ...


class EngineLoadError(RuntimeError):
    """The engine could not start (model path, weights, server); the job fails with this message."""


_ENGINES: dict[EngineSpec, Engine] = {}
_LOADS: Counter = Counter()
_LOCK = threading.Lock()


def get_engine(spec: EngineSpec) -> Engine:
    """The engine for spec, loaded at most once per Python process (Spark reuses its Python workers)."""
    with _LOCK:
        if spec not in _ENGINES:
            _ENGINES[spec] = _load(spec)
            _LOADS[spec.engine] += 1
        return _ENGINES[spec]


def load_counts() -> dict[str, int]:
    """Engines loaded by this process so far, per engine kind (reported by the UDF to prove reuse)."""
    return dict(_LOADS)


def _load(spec: EngineSpec) -> Engine:
    try:
        if spec.engine == "transformers":
            from .hf import TransformersEngine

            return TransformersEngine(spec)
        if spec.engine == "vllm":
            from .vllm_engine import VllmEngine

            return VllmEngine(spec)
        if spec.engine == "openai":
            from .openai_http import OpenAIEngine

            return OpenAIEngine(spec)
    except EngineLoadError:
        raise
    except Exception as err:  # noqa: BLE001 - any cause becomes one message naming the model
        raise EngineLoadError(f"llm.engine {spec.engine}: cannot load model {spec.model!r}: "
                              f"{type(err).__name__}: {err}") from err
    raise EngineLoadError(f"llm.engine {spec.engine!r}: unknown engine (transformers, vllm, openai)")


def with_row_fallback(rows: list[int], run_batch: Callable[[list[int]], list[Generation]],
                      prompt_tokens: Callable[[int], int | None]) -> dict[int, Generation]:
    """Run a batch; if the batch raises, run its rows one by one so one bad row fails alone (as engine_error)."""
    try:
        return dict(zip(rows, run_batch(rows), strict=True))
    except Exception as err:  # noqa: BLE001
        if len(rows) == 1:
            return {rows[0]: failed(f"engine_error: {type(err).__name__}: {str(err)[:300]}", prompt_tokens(rows[0]))}
    results: dict[int, Generation] = {}
    for row in rows:
        results.update(with_row_fallback([row], run_batch, prompt_tokens))
    return results


_TOKENIZERS: dict[tuple[str, str], object] = {}


def load_tokenizer(spec: EngineSpec):
    """The model's Hugging Face tokenizer (for chunking and counting), loaded once per process."""
    name = spec.tokenizer or spec.model
    key = (spec.engine, name)
    if key not in _TOKENIZERS:
        try:
            from transformers import AutoTokenizer
        except ImportError as err:
            raise EngineLoadError(f"llm.engine {spec.engine}: chunking needs the model's tokenizer ({name}); "
                                  "install refinery[llm] (transformers) on the cluster") from err
        try:
            _TOKENIZERS[key] = AutoTokenizer.from_pretrained(name)
        except Exception as err:  # noqa: BLE001
            raise EngineLoadError(f"llm.tokenizer: cannot load tokenizer {name!r}: {type(err).__name__}: {err}") \
                from err
    return _TOKENIZERS[key]


def counter_of(tokenizer) -> Callable[[list[str]], list[int]]:
    def count(texts: list[str]) -> list[int]:
        if not texts:
            return []
        return [len(ids) for ids in tokenizer(list(texts), add_special_tokens=False)["input_ids"]]

    return count
