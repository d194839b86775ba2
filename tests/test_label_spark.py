"""Integration: the label stage through Spark on the real CC sample documents, against an in-process
OpenAI-compatible server answering in EAI-Distill's compact format; the taxonomy table, eai_labels, the eai_* views,
reruns, and the GX suite."""

from __future__ import annotations

import math

import pytest
from pyspark.sql import functions as F
from typer.testing import CliRunner

from refinery.cli import app
from refinery.jobs.base import run_stage
from refinery.jobs.ingest import IngestStage
from refinery.jobs.label import LabelStage
from refinery.jobs.storage import Lakehouse
from refinery.jobs.validate import ValidationFailed, validate
from refinery.schemas.tables import DOCUMENTS, TAXONOMY
from refinery.udfs.label.taxonomy import code_columns, parse_compact, subsample

from .conftest import CC_SAMPLE, lake_config
from .label_fixtures import DATASETS, EXPECTED_STATUS, RECORDED, answer_for, serve_recorded


def label_config(root, model, port, *extra: str):
    return lake_config(root, "llm.engine=openai", f"llm.model={model}", "llm.model_name=eai-distill-0.5b",
                       f"llm.openai.base_url=http://127.0.0.1:{port}/v1", "llm.batch_size=4", "label.require=[]",
                       "label.commit_every=8", "label.partitions=2", "label.max_invalid_fraction=0.9",
                       "ingest.extractor=resiliparse", *extra)


@pytest.fixture(scope="module")
def lake(spark, tmp_path_factory, tiny_model):
    server, seen = serve_recorded()
    root = tmp_path_factory.mktemp("label") / "lake"
    config = label_config(root, tiny_model, server.server_port)
    run_stage(IngestStage(input_glob=str(CC_SAMPLE)), spark, config)
    lake = Lakehouse(spark, config.storage)
    docs = {r.doc_id: r.text for r in lake.read(DOCUMENTS.name).select("doc_id", "text").collect()}
    answers = {doc_id: answer_for(subsample(text, doc_id)) for doc_id, text in docs.items()}
    record = run_stage(LabelStage(), spark, config)
    yield config, lake, record, answers, server
    server.shutdown()


def rows(lake_):
    return {r.doc_id: r for r in lake_.read(TAXONOMY.name).collect()}


def test_every_curated_document_gets_one_validated_row_with_its_parsed_codes(lake):
    _, lake_, record, answers, _ = lake
    assert record.status == "succeeded" and record.validation == "passed"
    written = rows(lake_)
    assert set(written) == set(answers) and record.rows_in == record.rows_out == len(answers) == 16
    for doc_id, row in written.items():
        text, finish = RECORDED[answers[doc_id]]
        assert row.status == EXPECTED_STATUS.get(answers[doc_id], "ok") and row.raw_output == text
        want = parse_compact(text, finish).columns()
        assert {c: row[c] for c, _ in code_columns()} == want
        assert (row.model, row.engine, row.mode, row.prompt_version) == ("eai-distill-0.5b", "openai", "compact",
                                                                        "compact")
        assert row.output_tokens == 51 and row.input_chars > 0 and not row.subsampled
    statuses = [written[d].status for d in answers]
    for status in set(statuses):
        assert record.counters[f"label_{status}"] == statuses.count(status)
    assert record.counters["commit_groups"] == math.ceil(16 / 8)
    assert record.counters["output_tokens"] == 51 * 16


def test_eai_labels_ships_with_the_stage_and_joins_names_to_codes(lake, spark):
    _, lake_, _, answers, _ = lake
    assert lake_.read("eai_labels").count() == 91
    lake_.register_views()
    names = spark.sql("SELECT t.doc_id, l.name FROM taxonomy t JOIN eai_labels l "
                      "ON l.category = 'document_type_v2' AND l.code = t.document_type_v2_primary").collect()
    want = {"math": "Tutorial", "code": "Documentation", "medical": "Knowledge Article",
            "engineering": "Academic Writing", "news": "News Article"}
    assert {r.doc_id: r.name for r in names} == {d: want[n] for d, n in answers.items() if n in want}


def test_the_dataset_views_select_what_the_papers_filters_select(lake, spark):
    config, lake_, _, answers, _ = lake
    defined = lake_.register_views()
    assert {"eai_math", "eai_code", "eai_medical", "eai_stem"} <= set(defined)
    assert "eai_code_dclm" not in defined  # needs the quality table's dclm score
    for view in ("eai_math", "eai_code", "eai_medical", "eai_stem"):
        want = {d for d, name in answers.items() if view in DATASETS.get(name, set())}
        assert {r.doc_id for r in spark.sql(f"SELECT doc_id FROM {view}").collect()} == want, view
    result = CliRunner().invoke(app, ["sql", "SELECT count(*) AS n FROM eai_math", "--set",
                                      f"storage.root={config.storage.root}"])
    assert result.exit_code == 0, result.output
    assert f"│ {sum(n == 'math' for n in answers.values())} " in result.output


def test_a_rerun_labels_nothing_then_retries_failures_then_relabels_all_on_a_new_setting(lake, spark, tiny_model):
    config, lake_, _, answers, server = lake
    again = run_stage(LabelStage(), spark, config)
    assert again.status == "succeeded" and again.rows_in == 0
    failed = sorted(d for d, name in answers.items() if name not in EXPECTED_STATUS)[:2]
    lake_.table(TAXONOMY.name).update(F.col("doc_id").isin(failed), {"status": F.lit("failed_timeout")})
    retried = run_stage(LabelStage(), spark, config)
    assert retried.rows_in == 2 and {d for d, r in rows(lake_).items() if r.run_id == retried.run_id} == set(failed)
    # A new setting re-labels (here capped by max_docs, to keep the test short).
    changed = label_config(config.storage.root, tiny_model, server.server_port, "label.max_output_tokens=64",
                           "label.max_docs=3")
    relabelled = run_stage(LabelStage(), spark, changed)
    after = rows(lake_)
    assert relabelled.rows_in == 3 and sum(r.run_id == relabelled.run_id for r in after.values()) == 3
    assert len({r.settings_hash for r in after.values()}) == 2


def test_the_suite_rejects_a_code_outside_its_label_set(lake, spark):
    _, lake_, _, _, _ = lake
    table = lake_.read(TAXONOMY.name).where("status = 'ok'").limit(2)
    bad = table.withColumn("document_type_v2_primary", F.lit(26))
    with pytest.raises(ValidationFailed, match="document_type_v2_primary"):
        validate(TAXONOMY.name, bad)
    short_fdc = table.withColumn("fdc_secondary", F.lit("51"))
    with pytest.raises(ValidationFailed, match="fdc_secondary"):
        validate(TAXONOMY.name, short_fdc)
    unparsed_with_codes = table.withColumn("status", F.lit("invalid_code"))
    with pytest.raises(ValidationFailed, match="fdc_primary"):
        validate(TAXONOMY.name, unparsed_with_codes)


def test_refinery_agreement_reads_the_lakehouse_and_another_delta_table(lake):
    config, _, _, answers, _ = lake
    root = str(config.storage.root)
    result = CliRunner().invoke(app, ["agreement", "taxonomy", root, "--set", f"storage.root={root}"])
    assert result.exit_code == 0, result.output
    ok = sum(name not in EXPECTED_STATUS for name in answers.values())
    assert f"agreement over {ok} documents" in " ".join(result.output.split())
    assert "│ mean" in result.output and "1.0000 │" in result.output
