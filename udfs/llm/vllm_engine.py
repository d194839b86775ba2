"""vLLM engine: one in-process `vllm.LLM` per Python worker (GPU executors), written to vLLM's offline API."""

from __future__ import annotations

from collections.abc import Sequence

from .base import EngineSpec, Generation, Messages, Sampling, counter_of, failed, with_row_fallback
from .templates import render_ids


class VllmEngine:
    name = "vllm"

    def __init__(self, spec: EngineSpec):
        from vllm import LLM

        self.spec = spec
        self.llm = LLM(model=spec.model, tokenizer=spec.tokenizer or spec.model, dtype=spec.dtype,
                       tensor_parallel_size=spec.tensor_parallel_size,
                       gpu_memory_utilization=spec.gpu_memory_utilization, max_model_len=spec.max_model_len,
                       enforce_eager=spec.enforce_eager)
        self.tokenizer = self.llm.get_tokenizer()
        self.count_tokens = counter_of(self.tokenizer)

    def generate(self, prompts: Sequence[Messages], sampling: Sampling) -> list[Generation]:
        from vllm import SamplingParams

        # The chat template is applied here (not by llm.chat) so an over-long prompt is a row outcome.
        ids = [render_ids(self.tokenizer, m, self.spec.prompt_template) for m in prompts]
        results = {i: failed("too_long", len(row)) for i, row in enumerate(ids) if len(row) >= self.spec.max_model_len}
        fits = [i for i in range(len(ids)) if i not in results]

        def run(rows: list[int]) -> list[Generation]:
            # vLLM batches continuously on its own: hand it every prompt at once.
            params = [SamplingParams(max_tokens=min(sampling.max_tokens, self.spec.max_model_len - len(ids[i])),
                                     temperature=sampling.temperature, top_p=sampling.top_p, seed=sampling.seed + i)
                      for i in rows]
            outputs = self.llm.generate([{"prompt_token_ids": ids[i]} for i in rows], params, use_tqdm=False)
            return [_generation(o, len(ids[i])) for i, o in zip(rows, outputs, strict=True)]

        if fits:
            results.update(with_row_fallback(fits, run, lambda i: len(ids[i])))
        return [results[i] for i in range(len(prompts))]


def _generation(output, prompt_tokens: int) -> Generation:
    best = output.outputs[0]
    finish = best.finish_reason or "stop"
    if finish not in ("stop", "length"):
        return failed(f"engine_error: finish_reason {finish}", prompt_tokens)
    return Generation(best.text, prompt_tokens, len(best.token_ids), finish)
