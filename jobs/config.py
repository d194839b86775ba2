"""Typed pipeline configuration, layered: defaults → --config file → env file → env vars → --set."""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model, field_validator

ENV_PREFIX = "REFINERY_"


class ConfigError(ValueError):
    """Invalid configuration: the message names the key and the reason."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StorageConfig(_Section):
    root: str = "./lakehouse"
    metastore: str | None = None
    # A second run on the same lake: wait for the lake lock (up to lock_timeout_s) or fail at once naming the run.
    concurrent_runs: Literal["wait", "fail"] = "wait"
    lock_timeout_s: float = Field(3600, ge=0)
    heartbeat_s: float = Field(30, gt=0)
    stale_after_s: float = Field(300, gt=0)  # a lock whose heartbeat is older belongs to a dead driver
    full_refresh: bool = False  # ignore the watermarks: every stage reads its whole input again (`--full-refresh`)
    vacuum_retention_hours: float = Field(168, gt=0)  # `refinery maintain`: VACUUM keeps files this much younger
    # fsspec keyword arguments per protocol for files the Python side reads (benchmarks, classifiers):
    # {s3: {endpoint_url: ..., key: ...}}; Delta tables and WARCs go through Hadoop (spark.conf fs.s3a.*).
    fs_options: dict[str, dict[str, Any]] = Field(default_factory=dict)

    @field_validator("metastore")
    @classmethod
    def _catalog_dot_schema(cls, value: str | None) -> str | None:
        if value is not None and len(value.split(".")) not in (1, 2):
            raise ValueError("must be 'schema' or 'catalog.schema'")
        return value


class SparkConfig(_Section):
    master: str = "auto"
    app_name: str = "refinery"
    shuffle_partitions: int = Field(8, gt=0)
    driver_memory: str = "4g"
    jars_dir: str = "deploy/jars"
    conf: dict[str, str] = Field(default_factory=dict)
    # sc://host:port: run through Spark Connect; master, driver_memory and jars_dir then belong to the server
    remote: str | None = None


class ValidationConfig(_Section):
    enabled: bool = True
    sample_values: int = Field(5, ge=0)
    # Frames up to this many rows are validated on the driver as pandas (0: always on Spark).
    driver_rows: int = Field(10_000, ge=0)


class IngestConfig(_Section):
    input: str = "data/sample/*.warc*"
    extractor: Literal["trafilatura", "resiliparse"] = "trafilatura"
    timeout_s: float = Field(10.0, gt=0)
    max_html_bytes: int = Field(5_000_000, gt=0)
    max_record_bytes: int = Field(20_000_000, gt=0)
    isolate_extraction: bool = True
    min_text_chars: int = Field(1, ge=1)
    crawl: str | None = None
    force: bool = False
    max_failed_file_fraction: float = Field(0.5, ge=0, le=1)


class DecontaminationPolicy(_Section):
    min_matched_ngrams: int = Field(1, ge=1)
    benchmarks: list[str] | None = None  # only these count towards the flag; default: all


class DecontaminateConfig(_Section):
    benchmarks_file: str | None = None  # default: the packaged conf/benchmarks.yaml
    ngram: int = Field(13, ge=1)
    min_ngram: int = Field(8, ge=1)
    false_positive_rate: float = Field(1e-6, gt=0, lt=1)
    max_ngram_doc_freq: int | None = Field(None, ge=1)
    max_matches_per_doc: int = Field(100, ge=1)
    policy: DecontaminationPolicy = Field(default_factory=DecontaminationPolicy)
    clean: bool = False
    clean_window: int = Field(200, ge=0)
    clean_min_piece: int = Field(200, ge=0)
    clean_max_hits: int = Field(10, ge=0)
    cache_index: bool = True
    cache_uri: str | None = None  # where the benchmark-index cache lives; default <storage.root>/_cache/benchmark_index
    choice_variants: bool = True  # multiple-choice items also give context + each choice as separate texts


class ClassifierConfig(_Section):
    name: str = Field(pattern=r"^[A-Za-z0-9_]+$")  # becomes scores['<name>'] and counter names
    kind: Literal["fasttext", "hf"] = "fasttext"
    path: str  # fastText .bin/.ftz file, or a Hugging Face sequence-classification model directory
    label: str | None = None  # fastText: the positive label (default __label__hq); hf: label name (default: last)
    min_score: float | None = None  # drop documents scoring below this (reason classifier_<name>); null = keep all
    max_chars: int = Field(10_000, gt=0)  # the classifier reads this many leading characters
    batch_size: int = Field(16, gt=0)  # hf only
    max_length: int = Field(512, gt=0)  # hf only: tokens per document
    device: str = "cpu"  # hf only: cpu, cuda, cuda:0 ...


class BucketConfig(_Section):
    enabled: bool = True  # only meaningful when a classifier is configured
    buckets: int = Field(20, ge=2, le=1000)  # Nemotron-CC: 20 buckets by score percentile


class QualityConfig(_Section):
    filters_file: str | None = None  # laid over the packaged conf/filters.yaml (any subset of it)
    pii: bool = False  # anonymise emails and public IPs into transformed_text (FineWeb's PII formatter)
    c4_line_filter: bool = False  # write C4's line-filtered text into transformed_text
    classifiers: list[ClassifierConfig] = Field(default_factory=list)
    primary: str | None = None  # classifier whose score is quality_score (default: the first)
    bucket: BucketConfig = Field(default_factory=BucketConfig)

    @field_validator("classifiers")
    @classmethod
    def _unique_names(cls, value: list[ClassifierConfig]) -> list[ClassifierConfig]:
        names = [c.name for c in value]
        if len(set(names)) != len(names):
            raise ValueError(f"classifier names must be unique, got {names}")
        return value

    def primary_classifier(self) -> ClassifierConfig | None:
        if not self.classifiers:
            return None
        name = self.primary or self.classifiers[0].name
        for classifier in self.classifiers:
            if classifier.name == name:
                return classifier
        raise ConfigError(f"config key quality.primary: no classifier named {name!r} "
                          f"(configured: {', '.join(c.name for c in self.classifiers)})")
class DedupConfig(_Section):
    bands: int = Field(14, ge=1)                # LSH bands x rows = MinHash permutations (FineWeb: 14 x 8)
    rows: int = Field(8, ge=1)
    ngram: int = Field(5, ge=1)                 # word n-gram shingles of simplified text
    seed: int = Field(1, ge=0)                  # permutation seed; changing it invalidates minhash_bands
    verify: bool = True                         # exact Jaccard check of every candidate edge
    jaccard_threshold: float = Field(0.8, gt=0, le=1)
    max_bucket_size: int = Field(10_000, ge=2)  # larger LSH buckets are salted into sub-buckets of about this size
    pair_bucket_size: int = Field(16, ge=0)     # LSH buckets up to this size link (and verify) every member pair
    max_iterations: int = Field(50, ge=1)       # connected-components rounds before the run fails
    # Components of a graph with at most this many edges are found on the driver in one step (union-find; the
    # driver holds the edges: ~100 MB at 500k); larger graphs take the distributed rounds. 0: always distributed.
    driver_components_max_edges: int = Field(200_000, ge=0)
    # A run whose region (its new documents and the old ones whose clusters they touch) has at most this many
    # documents is deduplicated on the driver: the same edges, check, components and keepers without a Spark job
    # per step (jobs/dedup_driver.py). 0: always on Spark.
    driver_region_docs: int = Field(10_000, ge=0)
    quality_table: str = "quality"
    keeper_score_column: str = "quality_score"  # higher is better; used when the quality table has it
class SamplingConfig(_Section):
    temperature: float = Field(0.7, ge=0)  # 0 = greedy
    top_p: float = Field(0.95, gt=0, le=1)
    seed: int = 0  # with do_sample, a batch's draws are seeded from this and its rows' keys


class VllmConfig(_Section):
    # GPU only (CPU tests cannot check them): GPUs per engine, share of each GPU's memory vLLM may take
    tensor_parallel_size: int = Field(1, ge=1)
    gpu_memory_utilization: float = Field(0.85, gt=0, le=1)
    enforce_eager: bool = False  # skip CUDA graph capture (faster start, slower decode)
    enable_prefix_caching: bool = True  # the style prompts share long system prefixes
    max_num_seqs: int = Field(256, ge=1)  # sequences vLLM keeps running at once (continuous batching)
    # uni: the engine runs inside the Python worker (a daemonic process may not start children); mp / ray: for
    # tensor_parallel_size > 1, which needs workers that may start processes
    executor: Literal["uni", "mp", "ray"] = "uni"
    cpu_kv_cache_gb: float = Field(4.0, gt=0)  # the CPU build's KV cache (VLLM_CPU_KVCACHE_SPACE)


class OpenAIConfig(_Section):
    base_url: str = "http://127.0.0.1:8000/v1"
    # The key is read from this environment variable, never from config (config is copied into `runs`).
    api_key_env: str = "OPENAI_API_KEY"
    concurrency: int = Field(8, ge=1)
    max_retries: int = Field(4, ge=0)
    backoff_s: float = Field(1.0, ge=0)


class LlmConfig(_Section):
    engine: Literal["transformers", "vllm", "openai"] = "transformers"
    model: str | None = None  # local path or hub id; the LLM stages need it
    model_name: str | None = None  # recorded in the tables (and part of synth_id); default: model
    tokenizer: str | None = None  # for chunking and token counts; default: model
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    device: str = "auto"  # transformers: auto (cuda if available) | cpu | cuda | cuda:1
    max_model_len: int = Field(4096, gt=0)
    batch_size: int = Field(16, gt=0)
    timeout_s: float = Field(300.0, gt=0)  # per transformers batch / per HTTP request
    sampling: SamplingConfig = Field(default_factory=SamplingConfig)
    vllm: VllmConfig = Field(default_factory=VllmConfig)
    openai: OpenAIConfig = Field(default_factory=OpenAIConfig)

    @property
    def label(self) -> str:
        return self.model_name or self.model or ""


class RewriteRoute(_Section):
    buckets: tuple[int, int]  # inclusive quality_bucket range, 0-19
    mix: dict[str, float] | None = None  # style quotas for these documents; null = rewrite.mix

    @field_validator("buckets")
    @classmethod
    def _ordered(cls, value: tuple[int, int]) -> tuple[int, int]:
        if not 0 <= value[0] <= value[1] <= 19:
            raise ValueError("must be [low, high] with 0 <= low <= high <= 19")
        return value


class RewriteRouting(_Section):
    enabled: bool = False
    routes: list[RewriteRoute] = Field(default_factory=list)


class RewriteConfig(_Section):
    # Upstream filters a seed must pass; a listed stage whose table is missing stops the run.
    require: list[Literal["quality", "dedup", "decontaminate"]] = Field(
        default_factory=lambda: ["quality", "dedup", "decontaminate"])
    styles_files: list[str] | None = None  # default: the packaged conf/prompts/*.yaml
    mix: dict[str, float] = Field(default_factory=dict)  # style id -> quota weight
    styles_per_doc: int = Field(1, ge=1)
    seed: int = 0  # style assignment seed (with doc_id)
    routing: RewriteRouting = Field(default_factory=RewriteRouting)
    max_seeds: int | None = Field(None, ge=1)
    max_chunks_per_doc: int | None = Field(8, ge=1)
    max_output_tokens: int | None = Field(None, ge=1)  # caps every style's own limit (smoke runs, cost control)
    commit_every: int = Field(1024, ge=1)  # chunks per MERGE: a killed run loses at most this many
    partitions: int | None = Field(None, ge=1)  # default: the session's parallelism
    retry_failed: bool = True  # re-run rows that failed (timeout, engine error) on the next run
    max_failed_fraction: float = Field(0.5, ge=0, le=1)

    @field_validator("mix")
    @classmethod
    def _positive(cls, value: dict[str, float]) -> dict[str, float]:
        bad = [k for k, w in value.items() if not w > 0]
        if bad:
            raise ValueError(f"quota weights must be > 0 ({', '.join(bad)})")
        return value


class RefineDocConfig(_Section):
    max_prompt_tokens: int = Field(2000, gt=0)  # the document is cut (in tokens) so the whole prompt fits (ProX: 2000)
    max_output_tokens: int = Field(64, gt=0)
    unparsed: Literal["keep", "drop"] = "keep"  # a doc program with no valid call (ProX keeps: it fails open)


class RefineChunkConfig(_Section):
    max_tokens: int = Field(1500, gt=0)  # numbered lines per chunk, in model tokens (ProX: 1500)
    max_output_tokens: int = Field(256, gt=0)
    max_rejected_lines: int | None = Field(2, ge=1)  # this many rejected lines keep the original text; null = off
    min_kept_ratio: float = Field(0.05, ge=0, le=1)  # dropped when kept words / words <= this
    min_kept_words: int = Field(10, ge=0)  # dropped when <= this many words are left


class RefineParserConfig(_Section):
    max_calls: int = Field(64, ge=1)
    max_line_chars: int = Field(2000, ge=16)
    max_string_chars: int = Field(1000, ge=1)


class RefineConfig(_Section):
    require: list[Literal["quality", "dedup", "decontaminate"]] = Field(
        default_factory=lambda: ["quality", "dedup", "decontaminate"])
    mode: Literal["prox", "teacher"] = "prox"  # prox: the ProX checkpoints' formats; teacher: our few-shot prompts
    levels: list[Literal["doc", "chunk"]] = Field(default_factory=lambda: ["doc", "chunk"], min_length=1)
    doc_model: str | None = None  # default: llm.model (ProX: gair-prox/web-doc-refining-lm)
    chunk_model: str | None = None  # default: llm.model (ProX: gair-prox/web-chunk-refining-lm)
    teacher_prompts: str | None = None  # default: the packaged conf/prompts/refine/teacher.yaml
    temperature: float = Field(0.0, ge=0)  # ProX: greedy
    top_p: float = Field(0.9, gt=0, le=1)
    doc: RefineDocConfig = Field(default_factory=RefineDocConfig)
    chunk: RefineChunkConfig = Field(default_factory=RefineChunkConfig)
    parser: RefineParserConfig = Field(default_factory=RefineParserConfig)
    max_seeds: int | None = Field(None, ge=1)
    commit_every: int = Field(1024, ge=1)  # documents per MERGE
    partitions: int | None = Field(None, ge=1)
    retry_failed: bool = True
    max_failed_fraction: float = Field(0.5, ge=0, le=1)

    @field_validator("levels")
    @classmethod
    def _distinct(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError(f"levels must be distinct, got {value}")
        return value


class LabelConfig(_Section):
    # Upstream filters a document must pass before it is labelled (as rewrite.require).
    require: list[Literal["quality", "dedup", "decontaminate"]] = Field(
        default_factory=lambda: ["quality", "dedup", "decontaminate"])
    mode: Literal["compact", "teacher"] = "compact"  # compact: EAI-Distill's prompt and format; teacher: two passes
    system_prompt: str = "taxonomy"  # compact mode: the system turn EAI-Distill was trained with
    teacher_prompts: str | None = None  # teacher mode: YAML file; default the packaged conf/prompts/taxonomy/
    max_output_tokens: int | None = Field(None, ge=1)  # default: 100 (compact), 2048 per pass (teacher)
    temperature: float = Field(0.0, ge=0)  # greedy: labels are a classification, not a sample
    max_chars: int = Field(30_000, ge=3)  # longer documents are subsampled (first, a middle, last third)
    max_docs: int | None = Field(None, ge=1)  # cap (a deterministic sample by doc_id hash)
    commit_every: int = Field(4096, ge=1)  # documents per MERGE: a killed run loses at most this many
    partitions: int | None = Field(None, ge=1)  # default: the session's parallelism
    retry_failed: bool = True  # engine failures (timeout, engine error) are retried by the next run
    max_failed_fraction: float = Field(0.5, ge=0, le=1)  # engine failures over this fail the run (after commit)
    max_invalid_fraction: float = Field(0.5, ge=0, le=1)  # unparsable outputs over this fail the run (wrong model?)


class BenchmarkEntry(_Section):
    name: str = Field(pattern=r"^[A-Za-z0-9_.\-]+$")
    path: str
    fields: list[str] = Field(min_length=1)
    id: str | None = None
    choices: list[str] = Field(default_factory=list)  # multiple choice: the field(s) listing the choices
    answer: str | None = None  # multiple choice: the gold answer's field (its index in the choices, or its text)


class PipelineConfig(_Section):
    storage: StorageConfig = Field(default_factory=StorageConfig)
    spark: SparkConfig = Field(default_factory=SparkConfig)
    validation: ValidationConfig = Field(default_factory=ValidationConfig)
    ingest: IngestConfig = Field(default_factory=IngestConfig)
    decontaminate: DecontaminateConfig = Field(default_factory=DecontaminateConfig)
    quality: QualityConfig = Field(default_factory=QualityConfig)
    dedup: DedupConfig = Field(default_factory=DedupConfig)
    llm: LlmConfig = Field(default_factory=LlmConfig)
    rewrite: RewriteConfig = Field(default_factory=RewriteConfig)
    refine: RefineConfig = Field(default_factory=RefineConfig)
    label: LabelConfig = Field(default_factory=LabelConfig)


def load_benchmarks(path: str | Path | None = None) -> list[BenchmarkEntry]:
    """The benchmark list (conf/benchmarks.yaml by default); a bad entry names the file, entry and key."""
    if path is None:
        source, text = "conf/benchmarks.yaml", resources.files("refinery.conf").joinpath("benchmarks.yaml").read_text()
    else:
        source, text = str(path), _read_yaml_text(path)
    data = yaml.safe_load(text) or {}
    entries = data.get("benchmarks") if isinstance(data, dict) else None
    if not isinstance(entries, list) or not entries:
        raise ConfigError(f"benchmarks file {source}: expected a non-empty list under 'benchmarks:'")
    loaded = []
    for number, entry in enumerate(entries, start=1):
        try:
            loaded.append(BenchmarkEntry.model_validate(entry))
        except ValidationError as err:
            raise ConfigError(f"benchmarks file {source}, entry {number}: {_describe(err)}") from None
    names = [e.name for e in loaded]
    if len(set(names)) != len(names):
        raise ConfigError(f"benchmarks file {source}: benchmark names must be unique ({names})")
    return loaded


def _read_yaml_text(path: Path | str) -> str:
    from refinery.udfs import fs

    if fs.is_remote(str(path)):  # s3://bucket/benchmarks.yaml: read through fsspec like the files it lists
        if not fs.exists(str(path)):
            raise ConfigError(f"file {path}: not found")
        with fs.open_binary(str(path)) as handle:
            return handle.read().decode("utf-8")
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"file {path}: not found")
    return path.read_text()


def default_config_dict() -> dict[str, Any]:
    text = resources.files("refinery.conf").joinpath("pipeline.yaml").read_text()
    return yaml.safe_load(text) or {}


def load_config(
    config_file: str | Path | None = None,
    env_file: str | Path | None = None,
    overrides: list[str] | None = None,
    environ: dict[str, str] | None = None,
) -> PipelineConfig:
    """Build the config; any bad key or value raises ConfigError naming it."""
    environ = dict(os.environ if environ is None else environ)
    data = default_config_dict()
    if config_file is not None:
        _deep_merge(data, _read_yaml_file(Path(config_file)))
    env_file = env_file or environ.get(f"{ENV_PREFIX}ENV_FILE")
    if env_file:
        for key, value in _read_env_file(Path(env_file)).items():
            _apply(data, key, value, source=f"env file {env_file}")
    for key, value in sorted(environ.items()):
        if key.startswith(ENV_PREFIX) and "__" in key:
            _apply(data, _env_key_to_dotted(key), value, source=f"environment variable {key}")
    for item in overrides or []:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected key=value, e.g. --set storage.root=/tmp/lake")
        key, value = item.split("=", 1)
        _apply(data, key.strip(), value, source=f"--set {item}")
    try:
        return pipeline_model().model_validate(data)
    except ValidationError as err:
        raise ConfigError(_describe(err)) from None


def pipeline_model() -> type[PipelineConfig]:
    """PipelineConfig plus the sections registered stages bring (jobs/registry.py), each defaulting to its model."""
    from .registry import config_sections

    extra = {k: (v, Field(default_factory=v)) for k, v in config_sections().items()
             if k not in PipelineConfig.model_fields}
    if not extra:
        return PipelineConfig
    return create_model("PipelineConfig", __base__=PipelineConfig, **extra)


def _read_yaml_file(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"config file {path}: not found; pass an existing YAML file to --config")
    try:
        loaded = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"config file {path}: not valid YAML ({err})") from None
    if not isinstance(loaded, dict):
        raise ConfigError(f"config file {path}: top level must be a mapping of sections")
    return loaded


def _read_env_file(path: Path) -> dict[str, str]:
    if not path.is_file():
        raise ConfigError(f"env file {path}: not found")
    entries = {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.removeprefix("export ").partition("=")
        if not sep or not key.strip().startswith(ENV_PREFIX):
            raise ConfigError(f"env file {path} line {number}: expected {ENV_PREFIX}SECTION__KEY=value")
        entries[_env_key_to_dotted(key.strip())] = value.strip().strip("'\"")
    return entries


def _env_key_to_dotted(key: str) -> str:
    return key.removeprefix(ENV_PREFIX).lower().replace("__", ".")


def _apply(data: dict[str, Any], dotted: str, raw: str, source: str) -> None:
    parts = dotted.split(".")
    if not all(parts):
        raise ConfigError(f"{source}: {dotted!r} is not a key such as ingest.extractor")
    node = data
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"{source}: {dotted!r}: {part} is not a section")
        node = child
    try:
        node[parts[-1]] = yaml.safe_load(raw) if raw != "" else ""
    except yaml.YAMLError:
        node[parts[-1]] = raw


def _deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> None:
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _deep_merge(base[key], value)
        else:
            base[key] = value


def _describe(err: ValidationError) -> str:
    lines = []
    for problem in err.errors():
        key = ".".join(str(p) for p in problem["loc"])
        reason = problem["msg"]
        if problem["type"] == "extra_forbidden":
            reason = "unknown key (check the spelling against conf/pipeline.yaml)"
        got = problem.get("input")
        shown = "" if problem["type"] == "extra_forbidden" else f" (got {got!r})"
        lines.append(f"config key {key}: {reason}{shown}")
    return "invalid configuration:\n  " + "\n  ".join(lines)
