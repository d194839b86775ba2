"""Great Expectations 1.x suites, one function per table, built in code."""

from __future__ import annotations

from collections.abc import Callable

from .tables import (
    CONTAMINATION,
    CONTAMINATION_MATCHES,
    DOCUMENTS,
    DUPLICATES,
    EAI_LABELS,
    INGEST_FILES,
    MINHASH_BANDS,
    QUALITY,
    REFINED,
    RUNS,
    SYNTHETIC,
    TAXONOMY,
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
        e.ExpectColumnValuesToBeInSet(column="status", value_set=["done", "partial", "failed", "failed_io"]),
        e.ExpectColumnValuesToBeBetween(column="records", min_value=0),
        e.ExpectColumnValuesToBeBetween(column="documents", min_value=0),
    ]


def runs_suite(gx, settings: dict) -> list:
    e = gx.expectations
    return [
        *_shape(e, RUNS),
        e.ExpectColumnValuesToNotBeNull(column="stage"),
        e.ExpectColumnValuesToBeInSet(column="status", value_set=["running", "succeeded", "failed", "abandoned"]),
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


def quality_suite(gx, settings: dict) -> list:
    e = gx.expectations
    checks = [
        *_shape(e, QUALITY),
        e.ExpectColumnValuesToNotBeNull(column="keep"),
        e.ExpectColumnValuesToMatchRegex(column="settings_hash", regex=r"^[0-9a-f]{32}$"),
        e.ExpectColumnValuesToBeBetween(column="pii_emails", min_value=0),
        e.ExpectColumnValuesToBeBetween(column="pii_ips", min_value=0),
    ]
    if settings.get("buckets"):
        checks.append(e.ExpectColumnValuesToBeBetween(column="quality_bucket", min_value=0,
                                                      max_value=settings["buckets"] - 1))
    if settings.get("probability_scores"):  # every classifier is a probability (no regression head)
        checks.append(e.ExpectColumnValuesToBeBetween(column="quality_score", min_value=0.0, max_value=1.0))
    return checks
def duplicates_suite(gx, settings: dict) -> list:
    e = gx.expectations
    return [
        *_shape(e, DUPLICATES),
        e.ExpectColumnValuesToMatchRegex(column="exact_cluster", regex=HEX128),
        e.ExpectColumnValuesToBeBetween(column="exact_cluster_size", min_value=1),
        e.ExpectColumnValuesToBeBetween(column="cluster_size", min_value=1),
        e.ExpectColumnValuesToNotBeNull(column="cluster_id"),
        e.ExpectColumnValuesToNotBeNull(column="keeper_doc_id"),
        # The flag and the reason agree: kept rows are unique or kept, dropped rows name the kind of duplicate.
        e.ExpectColumnPairValuesToBeInSet(column_A="is_kept", column_B="reason", value_pairs_set=[
            (True, "unique"), (True, "kept"), (False, "exact_duplicate"), (False, "near_duplicate")]),
    ]


def minhash_bands_suite(gx, settings: dict) -> list:
    e = gx.expectations
    return [
        *_shape(e, MINHASH_BANDS),
        e.ExpectColumnValuesToBeBetween(column="band", min_value=-1, max_value=settings.get("bands", 1 << 30) - 1),
        e.ExpectColumnValuesToNotBeNull(column="band_hash"),
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


REFINE_STATUSES = ["kept", "refined", "dropped_doc", "dropped_unparsed", "dropped_mostly_removed",
                   "dropped_too_few_words", "program_rejected"]


def refined_suite(gx, settings: dict) -> list:
    e = gx.expectations
    spark = {"condition_parser": "spark"}
    return [
        *_shape(e, REFINED),
        e.ExpectColumnValuesToMatchRegex(column="doc_id", regex=HEX128),
        e.ExpectColumnValuesToMatchRegex(column="status", regex=r"^(" + "|".join(REFINE_STATUSES)
                                         + r"|failed_[a-z_]+)$"),
        e.ExpectColumnValuesToBeInSet(column="doc_decision", value_set=["keep", "drop", "unparsed"]),
        e.ExpectColumnValuesToBeInSet(column="engine", value_set=["transformers", "vllm", "openai"]),
        e.ExpectColumnValuesToMatchRegex(column="settings_hash", regex=HEX128),
        *[e.ExpectColumnValuesToBeBetween(column=c, min_value=0) for c in (
            "chunk_count", "lines_removed", "normalizations", "clipped_ranges", "rejected_lines", "duplicate_calls",
            "prompt_tokens", "output_tokens")],
        # The decision and the text agree: only a refined row has refined_text; dropped rows are not kept.
        e.ExpectColumnValuesToNotBeNull(column="refined_text", row_condition='status == "refined"', **spark),
        e.ExpectColumnValuesToBeNull(column="refined_text", row_condition='status != "refined"', **spark),
        e.ExpectColumnPairValuesToBeInSet(column_A="status", column_B="keep", value_pairs_set=[
            ("kept", True), ("refined", True), ("program_rejected", True), ("dropped_doc", False),
            ("dropped_unparsed", False), ("dropped_mostly_removed", False), ("dropped_too_few_words", False),
        ], row_condition='NOT status LIKE "failed_%"', **spark),
    ]


def taxonomy_suite(gx, settings: dict) -> list:
    from refinery.udfs.label.taxonomy import INT_CATEGORIES, STATUSES, label_codes

    e = gx.expectations
    # Few expectations on purpose: each is a Spark pass, and the suite runs before every commit group.
    checks = [
        *_shape(e, TAXONOMY),
        e.ExpectColumnValuesToMatchRegex(column="status", regex=rf"^({'|'.join(STATUSES)}|failed_[a-z_]+)$"),
        e.ExpectColumnValuesToBeInSet(column="engine", value_set=["transformers", "vllm", "openai"]),
        e.ExpectColumnValuesToBeInSet(column="finish_reason", value_set=["stop", "length", "error"]),
        # A row that did not parse has no codes (the parser writes every code column or none).
        e.ExpectColumnValuesToBeNull(column="fdc_primary", row_condition='status != "ok"', condition_parser="spark"),
        *[e.ExpectColumnValuesToMatchRegex(column=f"fdc_{rank}", regex=r"^[0-9]{3}(\.[0-9]+)?$")
          for rank in ("primary", "secondary")],
    ]
    # Every code is in its category's label set or null (abstained).
    for category in INT_CATEGORIES:
        codes = sorted(label_codes(category))
        checks += [e.ExpectColumnValuesToBeInSet(column=f"{category}_{rank}", value_set=codes)
                   for rank in ("primary", "secondary")]
    return checks


def eai_labels_suite(gx, settings: dict) -> list:
    from refinery.udfs.label.taxonomy import INT_CATEGORIES

    e = gx.expectations
    return [
        *_shape(e, EAI_LABELS),
        e.ExpectColumnValuesToBeInSet(column="category", value_set=["fdc_level_1", "fdc_level_2", "fdc_level_3",
                                                                     *INT_CATEGORIES]),
        e.ExpectColumnValuesToNotBeNull(column="name"),
    ]


def _shape(e, spec: TableSpec) -> list:
    # Every table: exactly its declared columns, and a non-null unique key.
    checks = [e.ExpectTableColumnsToMatchSet(column_set=_column_names(spec.schema), exact_match=True)]
    checks += [e.ExpectColumnValuesToNotBeNull(column=column) for column in spec.key]
    if len(spec.key) == 1:
        checks.append(e.ExpectColumnValuesToBeUnique(column=spec.key[0]))
    else:
        checks.append(e.ExpectCompoundColumnsToBeUnique(column_list=list(spec.key)))
    return checks


def _column_names(schema, prefix: str = "") -> list[str]:
    # GX's Spark datasource lists a struct's fields as columns too ("c4", "c4.sentences", ...).
    names = []
    for field in schema.fields:
        names.append(prefix + field.name)
        if field.dataType.typeName() == "struct":
            names += _column_names(field.dataType, f"{prefix}{field.name}.")
    return names


SUITES: dict[str, Callable] = {
    DOCUMENTS.name: documents_suite,
    INGEST_FILES.name: ingest_files_suite,
    RUNS.name: runs_suite,
    CONTAMINATION.name: contamination_suite,
    CONTAMINATION_MATCHES.name: contamination_matches_suite,
    QUALITY.name: quality_suite,
    DUPLICATES.name: duplicates_suite,
    MINHASH_BANDS.name: minhash_bands_suite,
    SYNTHETIC.name: synthetic_suite,
    REFINED.name: refined_suite,
    TAXONOMY.name: taxonomy_suite,
    EAI_LABELS.name: eai_labels_suite,
}
