"""Integration: the rewrite stage through Spark with the transformers engine and a tiny local model, on real
sample documents, with small upstream quality / duplicates / contamination tables exercising the seed filter."""

from __future__ import annotations

import pytest
from pyspark.sql import functions as F
from typer.testing import CliRunner

from refinery.cli import app
from refinery.jobs.base import InputError, StageFailed, run_stage
from refinery.jobs.ingest import IngestStage
from refinery.jobs.rewrite import RewriteStage
from refinery.jobs.storage import Lakehouse
from refinery.schemas.tables import CONTAMINATION, DOCUMENTS, DUPLICATES, QUALITY
from refinery.udfs.rewrite.styles import assign_styles

from .conftest import CC_SAMPLE, lake_config

MIX = {"wrap_medium": 2.0, "nemotron_diverse_qa": 1.0, "beyondweb_mcq": 1.0}


def rewrite_config(root, model, *extra: str):
    mix = "{" + ", ".join(f"{k}: {v}" for k, v in MIX.items()) + "}"
    return lake_config(root, f"llm.model={model}", "llm.model_name=tiny-llama", "llm.max_model_len=1024",
                       "llm.batch_size=4",
                       "llm.sampling.temperature=0.8", f"rewrite.mix={mix}", "rewrite.max_chunks_per_doc=1",
                       "rewrite.max_output_tokens=12", "rewrite.commit_every=3", "rewrite.partitions=2", *extra)


ROUTING = ('rewrite.routing={enabled: true, routes: [{buckets: [0, 7], mix: {nemotron_wikipedia: 1.0}}, '
           '{buckets: [10, 19], mix: null}]}')


@pytest.fixture(scope="module")
def lake(spark, tmp_path_factory, tiny_model):
    root = tmp_path_factory.mktemp("rewrite") / "lake"
    config = rewrite_config(root, tiny_model, "ingest.extractor=resiliparse", ROUTING)
    run_stage(IngestStage(input_glob=str(CC_SAMPLE)), spark, config)
    lake = Lakehouse(spark, config.storage)
    ids = sorted(r.doc_id for r in lake.read(DOCUMENTS.name).select("doc_id").collect())[:14]
    # Documents 0-1 are dropped by quality, 2 is a duplicate, 3 is contaminated, 4 has no quality row (not
    # scored yet); 5-13 are seeds: 5-7 in low buckets (Wikipedia style only), 8 in bucket 8 (no route), 9-13 high.
    quality = [(d, i >= 2, 0.5, i if i < 9 else 10 + i % 10) for i, d in enumerate(ids) if i != 4]
    upstream = {QUALITY: (quality, "doc_id keep quality_score quality_bucket"),
                DUPLICATES: ([(d, i != 2) for i, d in enumerate(ids)], "doc_id is_kept"),
                CONTAMINATION: ([(d, i == 3, int(i == 3), int(i == 3), ["gsm8k"] if i == 3 else [], 100, 0, None,
                                  None, "0" * 64, "test") for i, d in enumerate(ids)], None)}
    for spec, (rows_, columns) in upstream.items():
        lake.create(spec)
        lake.merge(spec.name, _full_rows(spark, spec, rows_, columns))
    record = run_stage(RewriteStage(), spark, config)
    buckets = {d: b for d, _, _, b in quality}
    return config, lake, record, ids, buckets


def _full_rows(spark, spec, rows_, columns):
    """The upstream table's full schema from just the columns the seed filter reads (others: null or a filler)."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import StructType

    if columns is None:
        return spark.createDataFrame(rows_, spec.schema)
    given = StructType([spec.schema[c] for c in columns.split()])
    frame = spark.createDataFrame(rows_, given)
    fillers = {"string": "'x'", "bigint": "1", "int": "1", "boolean": "true", "double": "0.0",
               "array<string>": "array()"}
    out = []
    for field in spec.schema.fields:
        if field.name in given.fieldNames():
            out.append(F.col(field.name))
        elif field.nullable:
            out.append(F.lit(None).cast(field.dataType).alias(field.name))
        else:
            out.append(F.expr(fillers[field.dataType.simpleString()]).cast(field.dataType).alias(field.name))
    return frame.select(*out)


def rows(lake_):
    return {r.synth_id: r for r in lake_.read("synthetic").collect()}


def test_rewrite_writes_one_validated_row_per_seed_chunk_with_tokens_and_status(lake):
    _, lake_, record, _, _ = lake
    assert record.status == "succeeded" and record.validation == "passed"
    written = list(rows(lake_).values())
    assert len(written) == record.rows_in == record.rows_out == record.counters["chunks_planned"] == 8
    for r in written:
        assert r.model == "tiny-llama" and r.engine == "transformers"
        assert r.prompt_tokens > r.input_tokens > 0 and 0 < r.output_tokens <= 12
        assert r.finish_reason in ("stop", "length") and r.raw_text is not None
        assert (r.status == "ok") == (r.text is not None)  # random weights: most outputs are rejected
        assert '"max_tokens": 12' in r.sampling
    assert record.counters["prompt_tokens"] == sum(r.prompt_tokens for r in written)
    assert record.counters["output_tokens"] == sum(r.output_tokens for r in written)
    statuses = sum(v for k, v in record.counters.items() if k.startswith(("dropped_", "rewritten_ok", "failed_"))
                   and k != "dropped_no_route")
    assert statuses == len(written)
    assert record.counters["commit_groups"] == 3  # 8 chunks, 3 per commit


def test_only_kept_unique_clean_scored_documents_are_seeds(lake):
    _, lake_, record, ids, _ = lake
    assert {r.doc_id for r in rows(lake_).values()} == set(ids[5:8] + ids[9:14])
    c = record.counters
    assert c["seed_documents"] > 14
    assert c["seeds_after_quality"] == 11 and c["seeds_after_dedup"] == 10 and c["seeds_after_decontaminate"] == 9
    assert c["dropped_no_route"] == 1  # bucket 8 is in neither route


def test_the_curated_view_holds_exactly_the_seeds_the_stage_read(lake, spark):
    _, lake_, _, ids, _ = lake
    assert "documents_curated" in lake_.register_views()
    curated = {r.doc_id: r for r in spark.sql("SELECT * FROM documents_curated").collect()}
    assert set(curated) == set(ids[5:14])
    assert not any(r.refined for r in curated.values())
    texts = {r.doc_id: r.text for r in lake_.read(DOCUMENTS.name).where(F.col("doc_id").isin(ids)).collect()}
    assert all(curated[d].text == texts[d] for d in curated)  # no transformed_text upstream: the extracted text


def test_styles_follow_the_quality_routes_and_the_seeded_mix(lake):
    config, lake_, _, _, buckets = lake
    for r in rows(lake_).values():
        expected = ["nemotron_wikipedia"] if buckets[r.doc_id] <= 7 else assign_styles(r.doc_id, MIX, 1, 0)
        assert [r.style_id] == expected


def test_the_engine_loads_once_per_python_worker_across_tasks(lake):
    _, _, record, _, _ = lake
    c = record.counters
    # 3 commit groups x 2 partitions (a task that got no rows reports nothing, hence not exactly 6)
    assert c["llm_tasks"] >= 4
    assert 1 <= c["engine_loads"] == c["llm_workers"] <= 2 < c["llm_tasks"]
    assert c["output_tokens_per_s_per_worker"] > 0


def test_a_rerun_skips_done_chunks_and_retries_failed_or_lost_ones(lake, spark):
    config, lake_, _, _, _ = lake
    again = run_stage(RewriteStage(), spark, config)
    assert again.rows_in == 0 and again.rows_out == 0 and "commit_groups" not in again.counters
    before = rows(lake_)
    lost, failed = sorted(before)[:2], sorted(before)[2:4]
    lake_.table("synthetic").delete(F.col("synth_id").isin(lost))  # as if killed before that group committed
    lake_.table("synthetic").update(F.col("synth_id").isin(failed), {"status": F.lit("failed_timeout"),
                                                                      "text": F.lit(None)})
    third = run_stage(RewriteStage(), spark, config)
    assert third.rows_in == 4 and third.counters["chunks_planned"] == 8
    after = rows(lake_)
    assert set(after) == set(before) and not any(r.status == "failed_timeout" for r in after.values())
    assert {k for k, r in after.items() if r.run_id == third.run_id} == set(lost + failed)


def test_a_missing_required_table_names_it_unless_removed_from_require(spark, tmp_path, tiny_model, lake):
    _, full, _, _, _ = lake
    config = rewrite_config(tmp_path / "lake", tiny_model, "rewrite.max_seeds=2")
    lake_ = Lakehouse(spark, config.storage)
    lake_.create(DOCUMENTS)
    lake_.merge(DOCUMENTS.name, full.read(DOCUMENTS.name).orderBy("doc_id").limit(3))
    with pytest.raises(InputError, match=r"table `quality` does not exist.*run the quality stage"):
        run_stage(RewriteStage(), spark, config)
    relaxed = config.model_copy(update={"rewrite": config.rewrite.model_copy(update={"require": []})})
    record = run_stage(RewriteStage(), spark, relaxed)
    assert record.status == "succeeded" and record.rows_out == 2
    assert record.counters["seed_filter_quality_skipped"] == record.counters["seed_filter_dedup_skipped"] == 1


def test_an_engine_that_cannot_load_fails_the_job_naming_the_model(spark, tmp_path, lake):
    config = rewrite_config(tmp_path / "lake", tmp_path / "no-such-model", "rewrite.require=[]")
    Lakehouse(spark, config.storage).create(DOCUMENTS)
    with pytest.raises(StageFailed, match=r"cannot load tokenizer '.*no-such-model'"):
        run_stage(RewriteStage(), spark, config)


def test_refinery_run_stage_rewrite_with_a_local_model_path(spark, tmp_path, tiny_model, lake):
    config, _, _, _, _ = lake
    ran = CliRunner().invoke(app, ["run", "--stage", "rewrite", "--set", f"storage.root={config.storage.root}",
                                   "--set", f"llm.model={tiny_model}", "--set", "llm.model_name=tiny-llama",
                                   "--set", "llm.max_model_len=1024",
                                   "--set", "rewrite.max_output_tokens=12", "--set", "rewrite.max_chunks_per_doc=1",
                                   "--set", "rewrite.mix={wrap_medium: 2.0, nemotron_diverse_qa: 1.0, "
                                   "beyondweb_mcq: 1.0}", "--set", ROUTING])
    assert ran.exit_code == 0, ran.output
    assert "rewrite: succeeded" in ran.output and "chunks_to_generate=0" in ran.output
