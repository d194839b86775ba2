"""Hugging Face transformers engine: `generate` on CPU or GPU, batches of similar prompt length."""

from __future__ import annotations

import time
from collections.abc import Sequence

from .base import EngineSpec, Generation, Messages, Sampling, counter_of, failed, load_tokenizer, with_row_fallback
from .templates import render_ids

_DTYPES = {"float32": "float32", "bfloat16": "bfloat16", "float16": "float16"}


class TransformersEngine:
    name = "transformers"

    def __init__(self, spec: EngineSpec):
        import torch
        from transformers import AutoModelForCausalLM

        self.spec = spec
        self.torch = torch
        self.tokenizer = load_tokenizer(spec)
        self.tokenizer.padding_side = "left"  # decoder-only: pad on the left so every row generates from its end
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        device = spec.device if spec.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
        dtype = getattr(torch, _DTYPES[spec.dtype]) if spec.dtype in _DTYPES else "auto"
        self.model = AutoModelForCausalLM.from_pretrained(spec.model, dtype=dtype).to(device)
        self.model.train(False)  # inference mode: dropout off
        self.device = device
        eos = self.model.generation_config.eos_token_id
        self.eos = set(eos if isinstance(eos, list) else [eos if eos is not None else self.tokenizer.eos_token_id])
        self.count_tokens = counter_of(self.tokenizer)

    def render(self, messages: Messages) -> list[int]:
        return render_ids(self.tokenizer, messages, self.spec.prompt_template)

    def generate(self, prompts: Sequence[Messages], sampling: Sampling) -> list[Generation]:
        ids = [self.render(m) for m in prompts]
        results: dict[int, Generation] = {}
        fits = []
        for i, row in enumerate(ids):
            if len(row) >= self.spec.max_model_len:
                results[i] = failed("too_long", len(row))
            else:
                fits.append(i)
        # Padding-aware batching: rows sorted by length, so each batch pads to a near-equal length.
        fits.sort(key=lambda i: len(ids[i]))
        size = self.spec.batch_size
        for start in range(0, len(fits), size):
            batch = fits[start : start + size]
            results.update(with_row_fallback(batch, lambda rows: self._run([ids[i] for i in rows], sampling),
                                             lambda i: len(ids[i])))
        return [results[i] for i in range(len(prompts))]

    def _run(self, rows: list[list[int]], sampling: Sampling) -> list[Generation]:
        torch = self.torch
        padded = self.tokenizer.pad({"input_ids": rows}, return_tensors="pt").to(self.device)
        width = padded["input_ids"].shape[1]
        max_new = max(1, min(sampling.max_tokens, self.spec.max_model_len - width))
        sample = sampling.temperature > 0
        extra = {"temperature": sampling.temperature, "top_p": sampling.top_p} if sample else {}
        if sample:
            torch.manual_seed(sampling.seed)  # reproducible draws for the same batch
        started = time.monotonic()
        with torch.inference_mode():
            out = self.model.generate(**padded, max_new_tokens=max_new, do_sample=sample, max_time=self.spec.timeout_s,
                                      pad_token_id=self.tokenizer.pad_token_id, **extra)
        timed_out = time.monotonic() - started >= self.spec.timeout_s
        results = []
        for row, generated in zip(rows, out[:, width:].tolist(), strict=True):
            stop = next((n for n, token in enumerate(generated) if token in self.eos), None)
            if stop is None and timed_out:
                results.append(failed("timeout", len(row)))
                continue
            kept = generated[:stop] if stop is not None else generated
            text = self.tokenizer.decode(kept, skip_special_tokens=True)
            results.append(Generation(text, len(row), len(kept) + (stop is not None), "stop" if stop is not None
                                      else "length"))
        return results
