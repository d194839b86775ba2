"""A small frame is validated on the driver (pandas) with the same verdicts as GX's Spark datasource gives."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from pyspark.sql import functions as F
from pyspark.sql import types as T

from refinery.jobs.validate import ValidationFailed, validate
from refinery.schemas.tables import CONTAMINATION, DOCUMENTS, DUPLICATES, MINHASH_BANDS, QUALITY

HEX32, HEX64 = "0" * 32, "0" * 64


def _blank(kind):
    """A valid-looking value of a Spark type: zeros, empty collections, structs of blanks."""
    if isinstance(kind, T.StructType):
        return {f.name: _blank(f.dataType) for f in kind.fields}
    if isinstance(kind, T.ArrayType):
        return []
    if isinstance(kind, T.MapType):
        return {}
    if isinstance(kind, T.StringType):
        return ""
    if isinstance(kind, T.BooleanType):
        return False
    if isinstance(kind, T.TimestampType):
        return datetime(2024, 1, 1, tzinfo=UTC)
    if isinstance(kind, (T.FloatType, T.DoubleType)):
        return 0.0
    return 0


def _frame(spark, spec, rows: list[dict]):
    base = {f.name: _blank(f.dataType) for f in spec.schema.fields}
    return spark.createDataFrame([{**base, **row} for row in rows], spec.schema)


def _failed(table, df, settings, driver_rows) -> set[str] | None:
    try:
        validate(table, df, settings, driver_rows=driver_rows)
    except ValidationFailed as failure:
        return set(re.findall(r"^  (expect_\w+(?: on column \w+)?)", str(failure), re.M))
    return None


GOOD = {
    DOCUMENTS: [{"doc_id": "a" * 32, "text": "t", "text_chars": 1, "text_hash": HEX32, "warc_path": "x",
                 "warc_record_id": "r", "language_score": 0.5, "extractor": "resiliparse"},
                {"doc_id": "b" * 32, "text": "u", "text_chars": 1, "text_hash": HEX32, "warc_path": "x",
                 "warc_record_id": "s", "language_score": 0.5, "extractor": "trafilatura"}],
    DUPLICATES: [{"doc_id": "a" * 32, "exact_cluster": HEX32, "exact_cluster_size": 1, "cluster_id": "a" * 32,
                  "cluster_size": 2, "is_kept": True, "keeper_doc_id": "a" * 32, "reason": "kept"},
                 {"doc_id": "b" * 32, "exact_cluster": HEX32, "exact_cluster_size": 1, "cluster_id": "a" * 32,
                  "cluster_size": 2, "is_kept": False, "keeper_doc_id": "a" * 32, "reason": "near_duplicate"}],
    MINHASH_BANDS: [{"doc_id": "a" * 32, "band": -1, "band_hash": 5}, {"doc_id": "a" * 32, "band": 3, "band_hash": 7}],
    CONTAMINATION: [{"doc_id": "a" * 32, "cleaning": "kept", "benchmark_set_hash": HEX64, "matched_benchmarks": []}],
    QUALITY: [{"doc_id": "a" * 32, "keep": True, "settings_hash": HEX32, "quality_bucket": 1},
              {"doc_id": "b" * 32, "keep": False, "settings_hash": HEX32, "quality_bucket": 0}],
}
# One broken column per table, and what each breaks.
BREAK = {
    DOCUMENTS: ("text_hash", "'not-a-hash'"),
    DUPLICATES: ("reason", "'kept'"),  # a dropped row that says kept
    MINHASH_BANDS: ("band", "99"),
    CONTAMINATION: ("cleaning", "'bleached'"),
    QUALITY: ("quality_bucket", "7"),
}
SETTINGS = {MINHASH_BANDS: {"bands": 8}, QUALITY: {"buckets": 4}}


@pytest.mark.parametrize("spec", list(GOOD), ids=lambda s: s.name)
def test_driver_and_spark_validation_agree(spark, spec):
    good = _frame(spark, spec, GOOD[spec])
    settings = SETTINGS.get(spec, {})
    assert _failed(spec.name, good, settings, 0) is None
    assert _failed(spec.name, good, settings, 100) is None  # struct columns, maps and arrays included
    column, value = BREAK[spec]
    bad = good.withColumn(column, F.expr(value))
    on_spark, on_driver = _failed(spec.name, bad, settings, 0), _failed(spec.name, bad, settings, 100)
    assert on_spark == on_driver
    assert on_spark, f"{spec.name}: the broken {column} passed"
    # A frame over the limit stays on Spark, with the same verdict.
    assert _failed(spec.name, bad, settings, 1) == on_spark


def test_a_spark_sql_row_condition_keeps_the_frame_on_spark(spark):
    import great_expectations as gx

    from refinery.jobs.validate import _on_driver
    from refinery.schemas.expectations import SUITES
    from refinery.schemas.tables import REFINED

    small = _frame(spark, REFINED, [{"doc_id": "a" * 32}])
    assert not _on_driver(small, SUITES[REFINED.name](gx, {}), 100)  # 'NOT status LIKE ...' is Spark SQL
    assert _on_driver(small, SUITES[DUPLICATES.name](gx, {}), 100)
    assert not _on_driver(small, SUITES[DUPLICATES.name](gx, {}), 0)
