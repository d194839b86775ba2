"""Every Delta table's columns, key and description; tables are created from these, never on first write."""

from __future__ import annotations

from dataclasses import dataclass, field

from pyspark.sql.types import (
    ArrayType,
    BooleanType,
    DoubleType,
    IntegerType,
    LongType,
    MapType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

from refinery.udfs.label.taxonomy import code_columns
from refinery.udfs.quality.rules import COUNT_SIGNALS, SIGNAL_GROUPS, signal_field


@dataclass(frozen=True)
class TableSpec:
    name: str
    key: tuple[str, ...]
    schema: StructType
    description: str
    partition_by: tuple[str, ...] = field(default_factory=tuple)
    # Liquid clustering keys (Delta CLUSTER BY): OPTIMIZE co-locates rows by these, so lookups by them skip files.
    cluster_by: tuple[str, ...] = field(default_factory=tuple)


def _f(name: str, kind, nullable: bool = True, comment: str = "") -> StructField:
    return StructField(name, kind, nullable, {"comment": comment} if comment else {})


COUNTERS = MapType(StringType(), LongType())

DOCUMENTS = TableSpec(
    name="documents",
    key=("doc_id",),
    cluster_by=("crawl",),
    description="One row per extracted HTML page: text, language and WARC provenance.",
    schema=StructType([
        _f("doc_id", StringType(), False, "xxh3-128 of the WARC-Record-ID: stable across runs"),
        _f("url", StringType(), comment="WARC-Target-URI"),
        _f("host", StringType(), comment="lower-cased host of url"),
        _f("crawl", StringType(), comment="crawl name: config, warcinfo isPartOf, or WARC file name"),
        _f("fetch_time", TimestampType(), comment="WARC-Date of the response record"),
        _f("title", StringType()),
        _f("text", StringType(), False, "extracted main text"),
        _f("language", StringType(), comment="fastText lid.176 label (ISO 639)"),
        _f("language_score", DoubleType(), comment="fastText probability of language"),
        _f("html_bytes", LongType(), comment="HTTP payload size after de-chunking/decompression"),
        _f("text_chars", LongType()),
        _f("text_hash", StringType(), False, "xxh3-128 of NFKC+casefold+whitespace-collapsed text"),
        _f("charset", StringType(), comment="charset the payload was decoded with"),
        _f("extractor", StringType(), comment="trafilatura | resiliparse"),
        _f("warc_path", StringType(), False),
        _f("warc_record_id", StringType(), False),
        _f("warc_record_offset", LongType(), comment="byte offset of the record in the (compressed) file"),
        _f("run_id", StringType(), False, "ingest run that added the row"),
    ]),
)

INGEST_FILES = TableSpec(
    name="ingest_files",
    key=("warc_path",),
    description="Ledger of WARC files: one row per file with its status and record counts.",
    schema=StructType([
        _f("warc_path", StringType(), False),
        _f("status", StringType(), False,
           "done | partial (damaged after some records) | failed | failed_io (read error; retried)"),
        _f("file_bytes", LongType()),
        _f("records", LongType(), comment="WARC records read"),
        _f("responses", LongType()),
        _f("documents", LongType(), comment="documents extracted from this file"),
        _f("counters", COUNTERS, comment="skipped_<type>, dropped_<reason>, failed_<reason>"),
        _f("error", StringType()),
        _f("run_id", StringType(), False),
        _f("ingested_at", TimestampType(), False),
    ]),
)

RUNS = TableSpec(
    name="runs",
    key=("run_id",),
    description="Run ledger: one row per stage run (MERGEd on run_id: written `running` at start, completed at the "
                "end, so the row is the run's current status).",
    schema=StructType([
        _f("run_id", StringType(), False),
        _f("stage", StringType(), False),
        _f("status", StringType(), False,
           "running | succeeded | failed | abandoned (driver died; the next run marked it)"),
        _f("started_at", TimestampType(), False),
        _f("ended_at", TimestampType(), comment="null while running"),
        _f("input_versions", MapType(StringType(), LongType()), comment="table -> Delta version read"),
        _f("output_versions", MapType(StringType(), LongType()), comment="table -> Delta version written"),
        _f("rows_in", LongType()),
        _f("rows_out", LongType()),
        _f("counters", COUNTERS),
        _f("docs_per_s", DoubleType()),
        _f("validation", StringType(), comment="passed | failed | skipped"),
        _f("error", StringType()),
        _f("config_json", StringType(), comment="the effective configuration"),
        _f("spark_cores", IntegerType(), comment="default parallelism of the session"),
        _f("settings_digest", StringType(),
           comment="hash of the stage settings that shape its rows; input_versions is its watermark for them"),
    ]),
)

LOCKS = TableSpec(
    name="locks",
    key=("lock",),
    description="The lake lock: at most one row (lock = 'lake'), held by the run in progress.",
    schema=StructType([
        _f("lock", StringType(), False, "'lake'"),
        _f("holder", StringType(), False, "id of the holding driver's pipeline (one per process and lake)"),
        _f("stage", StringType(), comment="the stage the holder started with (its runs row says which is running)"),
        _f("owner", StringType(), comment="host:pid of the driver"),
        _f("acquired_at", TimestampType(), False),
        _f("heartbeat_at", TimestampType(), False, "refreshed every storage.heartbeat_s by the holder"),
    ]),
)

CONTAMINATION = TableSpec(
    name="contamination",
    key=("doc_id",),
    description="Per document: verified benchmark 13-gram matches and the contamination flag.",
    schema=StructType([
        _f("doc_id", StringType(), False),
        _f("contaminated", BooleanType(), False, "flag by decontaminate.policy (default: any verified match)"),
        _f("matched_ngrams", LongType(), False, "distinct verified benchmark n-grams in the text"),
        _f("matched_items", LongType(), False, "distinct benchmark items those n-grams belong to"),
        _f("matched_benchmarks", ArrayType(StringType()), False),
        _f("ngrams_checked", LongType(), False),
        _f("bloom_candidates", LongType(), False, "Bloom filter hits before exact verification"),
        _f("cleaning", StringType(), comment="null (cleaning off) | kept | cleaned | dropped (GPT-3 style)"),
        _f("cleaned_text", StringType(), comment="text with the hits cut out, when cleaning is on"),
        _f("benchmark_set_hash", StringType(), False, "content hash of the benchmark n-gram set scanned against"),
        _f("run_id", StringType(), False),
    ]),
)

CONTAMINATION_MATCHES = TableSpec(
    name="contamination_matches",
    key=("doc_id", "benchmark", "item_id", "ngram_hash"),
    description="Each verified match: document, benchmark item and the n-gram (bounded per document).",
    schema=StructType([
        _f("doc_id", StringType(), False),
        _f("benchmark", StringType(), False),
        _f("item_id", StringType(), False),
        _f("ngram", StringType(), False, "normalised n-gram text"),
        _f("ngram_hash", LongType(), False),
        _f("ngram_doc_freq", LongType(), False, "documents containing this n-gram when scanned"),
        _f("benchmark_set_hash", StringType(), False),
        _f("run_id", StringType(), False),
    ]),
)


def _signal_struct(filter_name: str) -> StructType:
    # Fields nullable: Delta checks a nested NOT NULL even when the whole struct is null (a failed_signals row).
    return StructType([
        StructField(signal_field(s), LongType() if s in COUNT_SIGNALS else DoubleType(), True)
        for s in SIGNAL_GROUPS[filter_name]
    ])


QUALITY = TableSpec(
    name="quality",
    key=("doc_id",),
    description="Per document: every Gopher/C4/FineWeb signal, classifier scores, keep and the drop reasons.",
    schema=StructType([
        _f("doc_id", StringType(), False),
        _f("keep", BooleanType(), False, "no enabled rule failed (conf/filters.yaml, classifier min_score)"),
        _f("drop_reasons", ArrayType(StringType(), False), False, "every failing rule, e.g. gopher_short_doc"),
        *[_f(name, _signal_struct(name), comment=f"{name} signals; null when they could not be computed")
          for name in SIGNAL_GROUPS],
        _f("scores", MapType(StringType(), DoubleType()), comment="classifier name -> score (P(label) or regression)"),
        _f("quality_score", DoubleType(), comment="score of the primary classifier"),
        _f("quality_bucket", IntegerType(), comment="0..buckets-1 by quality_score percentile over the corpus"),
        _f("pii_emails", IntegerType(), comment="emails anonymised (null: PII anonymisation off)"),
        _f("pii_ips", IntegerType(), comment="public IPv4 addresses anonymised (null: off)"),
        _f("transformed_text", StringType(), comment="text after PII anonymisation / C4 line filter; null = unchanged"),
        _f("settings_hash", StringType(), False, "thresholds, transformations and model contents the row used"),
        _f("run_id", StringType(), False),
    ]),
)

DUPLICATES = TableSpec(
    name="duplicates",
    key=("doc_id",),
    description="Per document: exact and near-duplicate (MinHash LSH) cluster, its size and whether it is kept.",
    schema=StructType([
        _f("doc_id", StringType(), False),
        _f("exact_cluster", StringType(), False, "text_hash: documents with equal normalised text share it"),
        _f("exact_cluster_size", LongType(), False),
        _f("cluster_id", StringType(), False, "smallest doc_id of the near-duplicate cluster (exact ones included)"),
        _f("cluster_size", LongType(), False, "1 = no duplicate"),
        _f("is_kept", BooleanType(), False, "exactly one document per cluster is kept"),
        _f("keeper_doc_id", StringType(), False, "the kept document of the cluster"),
        _f("reason", StringType(), False, "unique | kept | exact_duplicate | near_duplicate"),
        _f("keeper_score", DoubleType(), comment="quality score the keeper was chosen by, when there is one"),
        _f("run_id", StringType(), False, "dedup run that last (re)assigned the row's cluster"),
    ]),
)

MINHASH_BANDS = TableSpec(
    name="minhash_bands",
    key=("doc_id", "band"),
    cluster_by=("band", "band_hash"),
    description="LSH index: one row per document and band; band -1 holds the exact text hash.",
    schema=StructType([
        _f("doc_id", StringType(), False),
        _f("band", IntegerType(), False, "0..bands-1, or -1 for the exact text hash"),
        _f("band_hash", LongType(), False, "64-bit hash of the band's MinHash values (or of text_hash)"),
    ]),
)

SYNTHETIC = TableSpec(
    name="synthetic",
    key=("synth_id",),
    description="LLM rewrites of seed document chunks, one row per (doc, chunk, style, style version, model).",
    schema=StructType([
        _f("synth_id", StringType(), False, "xxh3-128 of doc_id, chunk_index, style_id, style_version, model"),
        _f("doc_id", StringType(), False, "source document"),
        _f("chunk_index", IntegerType(), False, "0-based chunk of the document (chunking is per style)"),
        _f("chunk_count", IntegerType(), False),
        _f("style_id", StringType(), False, "conf/prompts style id, e.g. nemotron_diverse_qa"),
        _f("style_version", IntegerType(), False),
        _f("model", StringType(), False, "llm.model_name or llm.model"),
        _f("engine", StringType(), False, "transformers | vllm | openai"),
        _f("sampling", StringType(), False, "JSON: temperature, top_p, seed, max_tokens"),
        _f("text", StringType(), comment="post-processed output; null unless status = ok"),
        _f("raw_text", StringType(), comment="the model's output as generated"),
        _f("input_tokens", IntegerType(), False, "tokens of the source chunk"),
        _f("prompt_tokens", IntegerType(), comment="prompt tokens after the chat template"),
        _f("output_tokens", IntegerType()),
        _f("finish_reason", StringType(), comment="stop | length | error"),
        _f("status", StringType(), False, "ok | <rejection reason> | failed_<reason>"),
        _f("error", StringType(), comment="engine error message of a failed row"),
        _f("generation_ms", LongType(), comment="this row's share of its batch's wall time"),
        _f("run_id", StringType(), False),
    ]),
)

# Nested fields are all nullable: Delta refuses NOT NULL inside arrays (the suite checks what matters).
_PROGRAM_CALL = StructType([
    StructField("name", StringType()), StructField("line_start", IntegerType()),
    StructField("line_end", IntegerType()), StructField("source_str", StringType()),
    StructField("target_str", StringType()), StructField("all_lines", BooleanType()),
])
_REJECTED_LINE = StructType([StructField("line", StringType()), StructField("reason", StringType())])
_CHUNK_PROGRAM = StructType([
    _f("chunk_index", IntegerType()), _f("first_line", IntegerType(), comment="0-based, document-global"),
    _f("last_line", IntegerType(), comment="inclusive"), _f("tokens", IntegerType()),
    _f("program", StringType(), comment="the model's output as generated; null when not generated"),
    _f("calls", ArrayType(_PROGRAM_CALL), comment="parsed, deduplicated, clipped to the chunk, in order"),
    _f("rejected", ArrayType(_REJECTED_LINE), comment="program lines not executed, with the reason"),
    _f("status", StringType(), comment="ok | partial | unparsed | empty | skipped_too_long | failed_<reason>"),
    _f("finish_reason", StringType(), comment="stop | length | error"),
])

REFINED = TableSpec(
    name="refined",
    key=("doc_id",),
    description="ProX refinement per curated document: doc and chunk programs, parsed calls, refined text, keep.",
    schema=StructType([
        _f("doc_id", StringType(), False),
        _f("keep", BooleanType(), False, "false = dropped (doc program or too little left); later stages skip it"),
        _f("status", StringType(), False, "kept | refined | dropped_<reason> | program_rejected | failed_<reason>"),
        _f("refined_text", StringType(), comment="the text after the chunk programs; null = unchanged or dropped"),
        _f("doc_decision", StringType(), comment="keep | drop | unparsed; null when the doc level is off or failed"),
        _f("doc_program", StringType(), comment="the doc-level output as generated"),
        _f("doc_truncated", BooleanType(), False, "the document was cut to fit refine.doc.max_prompt_tokens"),
        _f("chunk_count", IntegerType(), False, "chunks of numbered lines (0 when dropped at doc level)"),
        _f("chunk_programs", ArrayType(_CHUNK_PROGRAM), False),
        _f("lines_removed", IntegerType(), False),
        _f("chars_removed", LongType(), False, "net: len(text) - len(refined text)"),
        _f("normalizations", IntegerType(), False, "replacements made by normalize()"),
        _f("clipped_ranges", IntegerType(), False, "remove_lines ranges cut back to their chunk"),
        _f("rejected_lines", IntegerType(), False, "program lines rejected (not counting a truncated last line)"),
        _f("duplicate_calls", IntegerType(), False, "repeated identical calls, applied once"),
        _f("doc_model", StringType(), comment="null when the doc level is off"),
        _f("chunk_model", StringType(), comment="null when the chunk level is off"),
        _f("engine", StringType(), False, "transformers | vllm | openai"),
        _f("prompt_version", StringType(), False, "prox | teacher_v<N>"),
        _f("prompt_tokens", LongType(), False),
        _f("output_tokens", LongType(), False),
        _f("error", StringType(), comment="engine error of a failed row"),
        _f("generation_ms", LongType(), comment="this document's share of its slice's wall time"),
        _f("settings_hash", StringType(), False, "models, mode, prompts, levels, limits and thresholds the row used"),
        _f("run_id", StringType(), False),
    ]),
)


def _code_field(name: str, kind: str) -> StructField:
    category = name.rsplit("_", 1)[0] if kind == "int" else "fdc"
    comment = (f"EAI {category} code (eai_labels); null = abstained, or status is not ok" if kind == "int" else
               "FDC code string, e.g. 513.212; _l1/_l2/_l3: its first 1/2/3 digits (eai_labels fdc_level_1)")
    return _f(name, IntegerType() if kind == "int" else StringType(), comment=comment)


TAXONOMY = TableSpec(
    name="taxonomy",
    key=("doc_id",),
    description="Per document: Essential-Web (EAI) taxonomy codes, primary and secondary per category, parsed from "
                "the labelling LLM's output, with the raw output and the parse status.",
    schema=StructType([
        _f("doc_id", StringType(), False),
        *[_code_field(name, kind) for name, kind in code_columns()],
        _f("status", StringType(), False, "ok | truncated | missing_category | invalid_code | malformed | "
                                          "failed_<engine reason>; codes are null unless ok"),
        _f("error", StringType(), comment="what the parser or the engine rejected"),
        _f("raw_output", StringType(), comment="the model's output (teacher mode: pass 1)"),
        _f("raw_output_pass2", StringType(), comment="teacher mode: pass 2; null in compact mode"),
        _f("finish_reason", StringType(), False, "stop | length | error (worst of the passes)"),
        _f("mode", StringType(), False, "compact (EAI-Distill format) | teacher (two-pass long format)"),
        _f("prompt_version", StringType(), False, "compact | teacher/v<N> (conf/prompts/taxonomy)"),
        _f("model", StringType(), False, "llm.model_name or llm.model"),
        _f("engine", StringType(), False, "transformers | vllm | openai"),
        _f("prompt_tokens", IntegerType(), comment="prompt tokens after the chat template (all passes)"),
        _f("output_tokens", IntegerType(), comment="generated tokens (all passes)"),
        _f("input_chars", LongType(), False, "characters of the document text (before subsampling)"),
        _f("subsampled", BooleanType(), False, "over label.max_chars: first, a middle and the last third were sent"),
        _f("generation_ms", LongType(), comment="this row's share of its batch's wall time"),
        _f("settings_hash", StringType(), False, "model, mode, prompts and decoding the row was labelled with"),
        _f("run_id", StringType(), False),
    ]),
)

EAI_LABELS = TableSpec(
    name="eai_labels",
    key=("category", "code"),
    description="Names of the EAI taxonomy codes (conf/taxonomy/eai_labels.csv), for joins: "
                "ON l.category = 'reasoning_depth' AND l.code = t.reasoning_depth_primary.",
    schema=StructType([
        _f("category", StringType(), False, "fdc_level_1, bloom_cognitive_process, ... (taxonomy column stems)"),
        _f("code", StringType(), False, "the code as text ('3', '005')"),
        _f("name", StringType(), False),
    ]),
)

TABLES: dict[str, TableSpec] = {
    spec.name: spec
    for spec in (RUNS, INGEST_FILES, DOCUMENTS, CONTAMINATION, CONTAMINATION_MATCHES, QUALITY, DUPLICATES,
                 MINHASH_BANDS,
                 SYNTHETIC, REFINED, TAXONOMY, EAI_LABELS, LOCKS)
}
