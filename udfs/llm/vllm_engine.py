"""vLLM engine: one in-process `vllm.LLM` per Python worker, written to vLLM's offline API.

vLLM schedules its own batches (continuous batching), so the UDFs hand it a whole partition in one call
(`batches_itself`) with one SamplingParams per row: per-row seeds and output limits."""

from __future__ import annotations

import os
from collections.abc import Sequence

from .base import EngineSpec, Generation, Messages, Sampling, counter_of, failed, with_row_fallback
from .templates import render_ids


def _environment(spec: EngineSpec) -> None:
    """Settings vLLM reads from the environment; set before vLLM starts, and only where the user has not.

    A PySpark Python worker is a daemonic process, which may not start children: the engine core must run in the
    calling process (no V1 multiprocessing; executor `uni`)."""
    defaults = {"VLLM_ENABLE_V1_MULTIPROCESSING": "0"}
    import torch

    if not torch.cuda.is_available():  # the CPU build: KV cache size in GiB; leave thread placement to the OS
        defaults.update(VLLM_CPU_KVCACHE_SPACE=f"{spec.cpu_kv_cache_gb:g}", VLLM_CPU_OMP_THREADS_BIND="nobind")
    for key, value in defaults.items():
        os.environ.setdefault(key, value)


class VllmEngine:
    name = "vllm"
    batches_itself = True

    def __init__(self, spec: EngineSpec):
        _environment(spec)
        from vllm import LLM

        self.spec = spec
        self.llm = LLM(model=spec.model, tokenizer=spec.tokenizer or spec.model, dtype=spec.dtype,
                       tensor_parallel_size=spec.tensor_parallel_size,
                       gpu_memory_utilization=spec.gpu_memory_utilization, max_model_len=spec.max_model_len,
                       enforce_eager=spec.enforce_eager, enable_prefix_caching=spec.enable_prefix_caching,
                       max_num_seqs=spec.max_num_seqs, distributed_executor_backend=spec.executor)
        self.tokenizer = self.llm.get_tokenizer()
        self.count_tokens = counter_of(self.tokenizer)

    def render(self, messages: Messages) -> list[int]:
        return render_ids(self.tokenizer, messages, self.spec.prompt_template)

    def generate(self, prompts: Sequence[Messages], sampling: Sampling) -> list[Generation]:
        # one sampling for all: seeds still differ per row, so equal prompts do not draw the same text
        return self.generate_rows(prompts, [Sampling(sampling.max_tokens, sampling.temperature, sampling.top_p,
                                                     sampling.seed + i) for i in range(len(prompts))])

    def generate_rows(self, prompts: Sequence[Messages], samplings: Sequence[Sampling]) -> list[Generation]:
        from vllm import SamplingParams

        # The chat template is applied here (not by llm.chat) so an over-long prompt is a row outcome.
        ids = [self.render(m) for m in prompts]
        limit = self.spec.max_model_len
        results = {i: failed("too_long", len(row)) for i, row in enumerate(ids) if len(row) >= limit}
        fits = [i for i in range(len(ids)) if i not in results]

        def run(rows: list[int]) -> list[Generation]:
            # Every prompt at once: vLLM's scheduler keeps max_num_seqs sequences running and refills as they end.
            params = [SamplingParams(max_tokens=min(samplings[i].max_tokens, limit - len(ids[i])),
                                     temperature=samplings[i].temperature, top_p=samplings[i].top_p,
                                     seed=samplings[i].seed) for i in rows]
            outputs = self.llm.generate([{"prompt_token_ids": ids[i]} for i in rows], params, use_tqdm=False)
            return [_generation(o) for o in outputs]

        if fits:
            results.update(with_row_fallback(fits, run, lambda i: len(ids[i])))
        return [results[i] for i in range(len(prompts))]


def _generation(output) -> Generation:
    """vLLM's RequestOutput -> Generation; token counts are vLLM's own (prompt ids, generated ids incl. EOS)."""
    prompt_tokens = len(output.prompt_token_ids or [])
    best = output.outputs[0] if output.outputs else None
    finish = best.finish_reason if best is not None else None
    if finish not in ("stop", "length"):  # abort, error or a request that never finished
        return failed(f"engine_error: finish_reason {finish}", prompt_tokens)
    return Generation(best.text, prompt_tokens, len(best.token_ids), finish)
