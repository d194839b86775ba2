"""Great Expectations 1.x suites, one function per table, built in code."""

from __future__ import annotations

from collections.abc import Callable

from .tables import (
    CONTAMINATION,
    CONTAMINATION_MATCHES,
    DOCUMENTS,
    DUPLICATES,
    INGEST_FILES,
    QUALITY,
    RUNS,
    SYNTHETIC,
    TableSpec,
)

HEX128 = r"^[0-9a-f]{32}$"


def documents_suite(gx, settings: dict) -> list:
    e = gx.expectations
    return [
        *_shape(e, DOCUMENTS),
        e.ExpectColumnValuesToNotBeNull(column="text"),
        e.ExpectColumnValuesToBeBetween(column="text_chars", min_value=settings.get("min_text_chars", 1)),
        e.ExpectColumnValuesToMatchRegex(column="text_hash", regex=HEX128),
        e.ExpectColumnValuesToNotBeNull(column="warc_path"),
        e.ExpectColumnValuesToNotBeNull(column="warc_record_id"),
        e.ExpectColumnValuesToBeBetween(column="language_score", min_value=0.0, max_value=1.0),
        e.ExpectColumnValuesToBeInSet(column="extractor", value_set=["trafilatura", "resiliparse"]),
        e.ExpectColumnValuesToBeBetween(column="html_bytes", min_value=0),
    ]


def ingest_files_suite(gx, settings: dict) -> list:
    e = gx.expectations
    return [
        *_shape(e, INGEST_FILES),
        e.ExpectColumnValuesToBeInSet(column="status", value_set=["done", "partial", "failed"]),
        e.ExpectColumnValuesToBeBetween(column="records", min_value=0),
        e.ExpectColumnValuesToBeBetween(column="documents", min_value=0),
    ]


def runs_suite(gx, settings: dict) -> list:
    e = gx.expectations
    return [
        *_shape(e, RUNS),
        e.ExpectColumnValuesToNotBeNull(column="stage"),
        e.ExpectColumnValuesToBeInSet(column="status", value_set=["succeeded", "failed"]),
        e.ExpectColumnValuesToBeInSet(column="validation", value_set=["passed", "failed", "skipped"]),
    ]


def contamination_suite(gx, settings: dict) -> list:
    e = gx.expectations
    return [
        *_shape(e, CONTAMINATION),
        e.ExpectColumnValuesToBeBetween(column="matched_ngrams", min_value=0),
        e.ExpectColumnValuesToBeBetween(column="ngrams_checked", min_value=0),
        e.ExpectColumnValuesToBeInSet(column="cleaning", value_set=["kept", "cleaned", "dropped"]),
        e.ExpectColumnValuesToMatchRegex(column="benchmark_set_hash", regex=r"^[0-9a-f]{64}$"),
    ]


def contamination_matches_suite(gx, settings: dict) -> list:
    e = gx.expectations
    return [
        *_shape(e, CONTAMINATION_MATCHES),
        e.ExpectColumnValuesToBeInSet(column="benchmark", value_set=settings.get("benchmarks") or None),
        e.ExpectColumnValueLengthsToBeBetween(column="ngram", min_value=1),
        e.ExpectColumnValuesToBeBetween(column="ngram_doc_freq", min_value=1),
    ]


def synthetic_suite(gx, settings: dict) -> list:
    e = gx.expectations
    return [
        *_shape(e, SYNTHETIC),
        e.ExpectColumnValuesToMatchRegex(column="synth_id", regex=HEX128),
        e.ExpectColumnValuesToMatchRegex(column="doc_id", regex=HEX128),
        e.ExpectColumnValuesToBeBetween(column="chunk_index", min_value=0),
        e.ExpectColumnValuesToBeBetween(column="style_version", min_value=1),
        e.ExpectColumnValuesToBeInSet(column="style_id", value_set=settings.get("styles") or None),
        e.ExpectColumnValuesToBeInSet(column="engine", value_set=["transformers", "vllm", "openai"]),
        e.ExpectColumnValuesToBeInSet(column="finish_reason", value_set=["stop", "length", "error"]),
        e.ExpectColumnValuesToMatchRegex(column="status", regex=r"^[a-z][a-z0-9_]*$"),
        e.ExpectColumnValuesToBeBetween(column="prompt_tokens", min_value=0),
        e.ExpectColumnValuesToBeBetween(column="output_tokens", min_value=0),
        # An ok row has its text; every other row says why it has none.
        e.ExpectColumnValuesToNotBeNull(column="text", row_condition='status == "ok"',
                                        condition_parser="spark"),
        e.ExpectColumnValuesToBeNull(column="text", row_condition='status != "ok"', condition_parser="spark"),
    ]


def quality_suite(gx, settings: dict) -> list:
    e = gx.expectations
    return [*_shape(e, QUALITY), e.ExpectColumnValuesToBeBetween(column="quality_bucket", min_value=0, max_value=19)]


def duplicates_suite(gx, settings: dict) -> list:
    return _shape(gx.expectations, DUPLICATES)


def _shape(e, spec: TableSpec) -> list:
    # Every table: exactly its declared columns, and a non-null unique key.
    checks = [e.ExpectTableColumnsToMatchSet(column_set=spec.schema.fieldNames(), exact_match=True)]
    checks += [e.ExpectColumnValuesToNotBeNull(column=column) for column in spec.key]
    if len(spec.key) == 1:
        checks.append(e.ExpectColumnValuesToBeUnique(column=spec.key[0]))
    else:
        checks.append(e.ExpectCompoundColumnsToBeUnique(column_list=list(spec.key)))
    return checks


SUITES: dict[str, Callable] = {
    DOCUMENTS.name: documents_suite,
    INGEST_FILES.name: ingest_files_suite,
    RUNS.name: runs_suite,
    CONTAMINATION.name: contamination_suite,
    CONTAMINATION_MATCHES.name: contamination_matches_suite,
    QUALITY.name: quality_suite,
    DUPLICATES.name: duplicates_suite,
    SYNTHETIC.name: synthetic_suite,
}
