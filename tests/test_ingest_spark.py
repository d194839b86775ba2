"""Integration: the ingest stage on the shipped sample WARCs, real Spark + Delta + Great Expectations."""

from __future__ import annotations

import json
import shutil

import pytest
from fastwarc.warc import ArchiveIterator

from refinery.jobs.base import InputError, RunRecord, StageContext, run_stage
from refinery.jobs.ingest import IngestStage
from refinery.jobs.storage import Lakehouse
from refinery.jobs.validate import ValidationFailed
from refinery.schemas.tables import DOCUMENTS
from refinery.udfs.ingest.warc import FileOutcome, IngestSettings, read_warc_documents

from .conftest import CC_SAMPLE, SAMPLE, lake_config


@pytest.fixture(scope="module")
def ingested(spark, tmp_path_factory):
    """The whole sample ingested once with the default config (trafilatura)."""
    root = tmp_path_factory.mktemp("lake")
    config = lake_config(root)
    record = run_stage(IngestStage(input_glob=f"{SAMPLE}/*.warc*"), spark, config)
    return config, Lakehouse(spark, config.storage), record


def test_ingest_writes_every_extracted_document_once(ingested):
    config, lake, record = ingested
    docs = lake.read("documents")
    files = lake.read("ingest_files").collect()
    assert record.status == "succeeded" and record.validation == "passed"
    assert len(files) == len(list(SAMPLE.glob("*.warc*")))
    assert {f.status for f in files} == {"done"}
    assert docs.count() == sum(f.documents for f in files) == record.rows_out > 100
    assert docs.select("doc_id").distinct().count() == docs.count()


def test_ingested_documents_match_reading_the_files_directly(ingested):
    config, lake, _ = ingested
    settings = IngestSettings(extractor=config.ingest.extractor)
    direct = set()
    for path in SAMPLE.glob("*.warc*"):
        direct |= {d["doc_id"] for d in read_warc_documents(str(path), settings, FileOutcome(str(path)))}
    assert {r.doc_id for r in lake.read("documents").select("doc_id").collect()} == direct


def test_languages_are_detected_across_the_sample(ingested):
    _, lake, _ = ingested
    langs = {r.language: r["count"] for r in lake.read("documents").groupBy("language").count().collect()}
    assert {"en", "de", "zh"} <= set(langs)
    assert langs["de"] > 10 and langs["en"] > 10


def test_provenance_points_back_at_the_warc_record(ingested):
    _, lake, _ = ingested
    for doc in lake.read("documents").where("warc_path LIKE '%cc-main-2020-34%'").collect():
        with open(doc.warc_path, "rb") as stream:
            stream.seek(doc.warc_record_offset)
            record = next(iter(ArchiveIterator(stream, parse_http=False)))
        assert record.record_id == doc.warc_record_id
        assert record.headers.get("WARC-Target-URI") == doc.url


def test_run_ledger_records_counts_versions_and_validation(ingested):
    _, lake, record = ingested
    row = lake.read("runs").where(f"run_id = '{record.run_id}'").first()
    assert row.stage == "ingest" and row.status == "succeeded" and row.validation == "passed"
    assert row.rows_out == lake.read("documents").count()
    assert row.counters["skipped_revisit"] == 123  # the iana.org capture's revisit records
    assert row.counters["skipped_request"] > 0 and row.counters["files_done"] == 6
    assert row.output_versions["documents"] == lake.version("documents")
    assert row.docs_per_s > 0


def test_rerun_skips_ingested_files_and_forced_rerun_adds_nothing(spark, ingested):
    config, lake, _ = ingested
    before = (lake.read("documents").count(), lake.version("documents"))
    again = run_stage(IngestStage(input_glob=str(CC_SAMPLE)), spark, config)
    assert again.counters["skipped_already_ingested"] == 1 and again.rows_out == 0
    assert (lake.read("documents").count(), lake.version("documents")) == before
    forced = run_stage(IngestStage(input_glob=str(CC_SAMPLE), force=True), spark, config)
    assert forced.rows_out == 0
    assert forced.counters["dropped_already_present"] == forced.counters["documents"] > 0
    assert lake.read("documents").count() == before[0]


def test_truncated_warc_is_marked_partial_and_keeps_its_documents(spark, tmp_path):
    data = CC_SAMPLE.read_bytes()
    warcs = tmp_path / "in"
    warcs.mkdir()
    (warcs / "truncated.warc.gz").write_bytes(data[: len(data) // 2])
    shutil.copy(SAMPLE / "iana-org_chunked_warcio.warc", warcs)
    config = lake_config(tmp_path / "lake", "ingest.extractor=resiliparse")
    record = run_stage(IngestStage(input_glob=f"{warcs}/*"), spark, config)
    lake = Lakehouse(spark, config.storage)
    status = {r.warc_path.rsplit("/", 1)[-1]: r for r in lake.read("ingest_files").collect()}
    assert record.status == "succeeded"
    assert status["truncated.warc.gz"].status == "partial"
    assert "truncated" in status["truncated.warc.gz"].error
    assert status["iana-org_chunked_warcio.warc"].status == "done"
    kept = lake.read("documents").where("warc_path LIKE '%/in/truncated.warc.gz'").count()
    assert kept == status["truncated.warc.gz"].documents > 0
    assert record.counters["files_partial"] == 1


def test_failing_expectation_commits_nothing(spark, tmp_path):
    config = lake_config(tmp_path / "lake")
    lake = Lakehouse(spark, config.storage)
    lake.create(DOCUMENTS)
    version = lake.version("documents")
    good = spark.createDataFrame([_doc_row("a" * 32)], DOCUMENTS.schema)
    duplicated = good.unionByName(good)  # the same doc_id twice
    ctx = StageContext(spark, config, lake, RunRecord(stage="test"))
    with pytest.raises(ValidationFailed, match="expect_column_values_to_be_unique on column doc_id") as failure:
        ctx.commit("documents", duplicated)
    assert "a" * 32 in str(failure.value)  # the failing value is shown
    assert lake.version("documents") == version and lake.read("documents").count() == 0
    assert ctx.run.validation == "failed"


def test_no_matching_input_names_the_glob(spark, tmp_path, monkeypatch):
    # The ledger's config copy redacts credentials (recorded only: the session already exists) and keeps the rest.
    conf = '{"spark.hadoop.fs.s3a.secret.key": "s3cr3t-value", "spark.sql.shuffle.partitions": "2"}'
    config = lake_config(tmp_path / "lake", f"spark.conf={conf}")
    with pytest.raises(InputError, match="no WARC files match .*nothing-here"):
        run_stage(IngestStage(input_glob=str(tmp_path / "nothing-here/*.warc.gz")), spark, config)
    runs = Lakehouse(spark, config.storage).read("runs").collect()
    assert [(r.status, "InputError" in r.error) for r in runs] == [("failed", True)]
    recorded = json.loads(runs[0].config_json)["spark"]["conf"]
    assert recorded == {"spark.hadoop.fs.s3a.secret.key": "***redacted***", "spark.sql.shuffle.partitions": "2"}
    assert "s3cr3t-value" not in runs[0].config_json
    # Outside a checkout the default input (the sample WARCs) is missing: the error says so and names the fix.
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InputError, match=r"'data/sample/\*\.warc\*' \(from the working directory .*checkout's sample"
                                         r".*pass --input"):
        run_stage(IngestStage(), spark, config)


def _doc_row(doc_id: str) -> tuple:
    from datetime import UTC, datetime

    return (doc_id, "http://example.org/", "example.org", "test", datetime(2024, 1, 1, tzinfo=UTC), "t",
            "some text", "en", 0.9, 100, 9, "0" * 32, "utf-8", "resiliparse", "/x.warc.gz", "<urn:x>", 0, "run")


def test_tables_can_live_in_a_metastore_schema(spark, tmp_path):
    from .conftest import CHUNKED_SAMPLE

    config = lake_config(tmp_path / "unused", "storage.metastore=refinery_test", "ingest.extractor=resiliparse")
    record = run_stage(IngestStage(input_glob=str(CHUNKED_SAMPLE)), spark, config)
    assert record.status == "succeeded"
    assert spark.table("refinery_test.documents").count() == 1
    assert spark.table("refinery_test.runs").where(f"run_id = '{record.run_id}'").count() == 1
    assert not (tmp_path / "unused").exists()


def test_unreadable_files_are_recorded_and_too_many_fail_the_run(spark, tmp_path):
    from refinery.jobs.base import StageFailed

    from .conftest import CHUNKED_SAMPLE, REPO

    warcs = tmp_path / "in"
    warcs.mkdir()
    (warcs / "readme.warc.gz").write_bytes((REPO / "README.md").read_bytes())  # not a WARC
    config = lake_config(tmp_path / "lake", "ingest.extractor=resiliparse")
    with pytest.raises(StageFailed, match="1 of 1 WARC files could not be read"):
        run_stage(IngestStage(input_glob=f"{warcs}/*"), spark, config)
    lake = Lakehouse(spark, config.storage)
    [bad] = lake.read("ingest_files").collect()
    assert bad.status == "failed" and "not readable as WARC" in bad.error
    assert lake.read("runs").first().status == "failed"

    shutil.copy(CHUNKED_SAMPLE, warcs)  # one good file of two is within max_failed_file_fraction=0.5
    record = run_stage(IngestStage(input_glob=f"{warcs}/*"), spark, config)
    assert record.status == "succeeded" and record.rows_out == 1
    assert record.counters["files_failed"] == 1 and record.counters["failed_not_warc"] == 1
