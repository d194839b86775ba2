"""The engine interface, the per-process engine cache and the per-row failure fallback shared by the engines."""

from __future__ import annotations

import sys
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
    enable_prefix_caching: bool = True
    max_num_seqs: int = 256
    executor: str = "uni"  # vLLM's distributed_executor_backend: uni (in process) | mp | ray
    cpu_kv_cache_gb: float = 4.0
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


class EngineFatalError(RuntimeError):
    """The engine itself is broken (its server gone, its device lost, out of memory): no row can succeed on it.
    Raised by an engine, or by the cache after the one reload it allows; the task fails with this message."""


# Errors that mean the engine, not the row, is broken: vLLM's dead engine core, CUDA errors, out of memory.
_FATAL_NAMES = {"EngineDeadError", "AcceleratorError", "OutOfMemoryError"}
MAX_RELOADS = 1


def is_fatal(err: BaseException) -> bool:
    return isinstance(err, (EngineFatalError, MemoryError)) or type(err).__name__ in _FATAL_NAMES


_ENGINES: dict[EngineSpec, ManagedEngine] = {}
_LOADS: Counter = Counter()  # per engine kind
_SPEC_LOADS: Counter = Counter()  # per spec: what a stage reports, whatever other stages loaded in this process
_RELOADS: Counter = Counter()  # per engine kind
_SPEC_RELOADS: Counter = Counter()  # per spec: the bound
_LOCK = threading.RLock()


def get_engine(spec: EngineSpec) -> ManagedEngine:
    """The engine for spec, loaded at most once per Python process (Spark reuses its Python workers)."""
    with _LOCK:
        if spec not in _ENGINES:
            _ENGINES[spec] = ManagedEngine(spec, _load(spec))
            _LOADS[spec.engine] += 1
            _SPEC_LOADS[spec] += 1
        return _ENGINES[spec]


def load_counts() -> dict[str, int]:
    """Engines loaded by this process so far, per engine kind, reloads included (the UDFs report it)."""
    return dict(_LOADS)


def loads_of(*specs: EngineSpec) -> int:
    """How often this process loaded these engine settings, reloads included: a worker that earlier ran another
    stage (another model or setting) does not count that stage's loads here."""
    return sum(_SPEC_LOADS[s] for s in specs)


def reload_counts() -> dict[str, int]:
    """Engines this process dropped after a fatal error and loaded again, per engine kind."""
    return dict(_RELOADS)


class ManagedEngine:
    """The cached engine: calls pass through; a fatal error drops it, loads it again once and repeats the call, so
    a dead engine fails the task with its cause instead of failing every later row one by one."""

    def __init__(self, spec: EngineSpec, engine: Engine):
        self.spec = spec
        self.engine = engine

    def __getattr__(self, name: str):  # count_tokens, tokenizer, render, ...: the engine's own
        if name == "engine":
            raise AttributeError(name)
        return getattr(self.engine, name)

    @property
    def batches_itself(self) -> bool:
        """True for engines that schedule their own batches (vLLM): hand them a whole partition at once."""
        return bool(getattr(self.engine, "batches_itself", False))

    def generate(self, prompts: Sequence[Messages], sampling: Sampling) -> list[Generation]:
        return self._call(lambda engine: engine.generate(prompts, sampling))

    def generate_rows(self, prompts: Sequence[Messages], samplings: Sequence[Sampling]) -> list[Generation]:
        """One sampling per row (per-row seeds and limits); engines without their own generate_rows get one
        generate call per distinct sampling."""
        if len(prompts) != len(samplings):
            raise ValueError(f"generate_rows: {len(prompts)} prompts but {len(samplings)} samplings")
        return self._call(lambda engine: _generate_rows(engine, prompts, samplings))

    def _call(self, run: Callable[[Engine], list[Generation]]) -> list[Generation]:
        try:
            return run(self.engine)
        except Exception as err:  # noqa: BLE001 - only fatal errors are handled here
            if not is_fatal(err):
                raise
            cause = err
        self._reload(cause)
        try:
            return run(self.engine)
        except Exception as err:  # noqa: BLE001
            if is_fatal(err):
                raise EngineFatalError(self._failure(err, "again after its reload")) from err
            raise

    def _reload(self, cause: BaseException) -> None:
        with _LOCK:
            if _SPEC_RELOADS[self.spec] >= MAX_RELOADS:
                raise EngineFatalError(self._failure(cause, f"after {MAX_RELOADS} reload(s) already")) from cause
            _SPEC_RELOADS[self.spec] += 1
            _RELOADS[self.spec.engine] += 1
            # Dropped first, so a reload that fails leaves no broken engine behind in the cache.
            _ENGINES.pop(self.spec, None)
            self.engine = None
            _free_memory()
            try:
                self.engine = _load(self.spec)
            except EngineLoadError as err:
                raise EngineFatalError(self._failure(cause, f"and its reload failed: {err}")) from err
            _LOADS[self.spec.engine] += 1
            _SPEC_LOADS[self.spec] += 1
            _ENGINES[self.spec] = self

    def _failure(self, err: BaseException, when: str) -> str:
        return (f"llm.engine {self.spec.engine} (model {self.spec.model!r}) failed {when}: "
                f"{type(err).__name__}: {str(err)[:300]}")


def _generate_rows(engine, prompts: Sequence[Messages], samplings: Sequence[Sampling]) -> list[Generation]:
    if hasattr(engine, "generate_rows"):
        return engine.generate_rows(prompts, samplings)
    groups: dict[Sampling, list[int]] = {}
    for i, sampling in enumerate(samplings):
        groups.setdefault(sampling, []).append(i)
    results: list[Generation | None] = [None] * len(prompts)
    for sampling, rows in groups.items():
        for i, gen in zip(rows, engine.generate([prompts[i] for i in rows], sampling), strict=True):
            results[i] = gen
    return results


def _free_memory() -> None:
    import gc

    gc.collect()
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()


def _local_model(spec: EngineSpec) -> EngineSpec:
    """A model or tokenizer named by URI (s3://, gs://, ...) is copied to this node once; the loaders need a folder.
    Credentials: the fsspec backend's defaults, or FSSPEC_<PROTOCOL> in the executors' environment."""
    from dataclasses import replace

    from refinery.udfs import fs

    if spec.engine == "openai":  # the server loads the model
        return spec
    local = {k: fs.local_copy(v) for k in ("model", "tokenizer") if (v := getattr(spec, k)) and fs.is_remote(v)}
    return replace(spec, **local) if local else spec


def _load(spec: EngineSpec) -> Engine:
    try:
        spec = _local_model(spec)
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
    """Run a batch; if the batch raises, run its rows one by one so one bad row fails alone (as engine_error).
    A fatal error (is_fatal) is raised at once: splitting the batch would only fail every row of a dead engine."""
    try:
        return dict(zip(rows, run_batch(rows), strict=True))
    except Exception as err:  # noqa: BLE001
        if is_fatal(err):
            raise  # the engine is broken: ManagedEngine reloads it or fails the task
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
        from refinery.udfs import fs

        source = fs.local_copy(name) if fs.is_remote(name) else name
        try:
            from transformers import AutoTokenizer
        except ImportError as err:
            raise EngineLoadError(f"llm.engine {spec.engine}: chunking needs the model's tokenizer ({name}); "
                                  "install refinery[llm] (transformers) on the cluster") from err
        try:
            _TOKENIZERS[key] = AutoTokenizer.from_pretrained(source)
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
