"""The benchmark side of decontamination: n-gram table, Bloom filter and content hash, built on Spark."""

from __future__ import annotations

import glob
import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.pandas.types import to_arrow_schema
from pyspark.sql.types import BinaryType, IntegerType, LongType, StringType, StructField, StructType

from refinery.jobs.base import InputError
from refinery.jobs.config import BenchmarkEntry, DecontaminateConfig
from refinery.udfs.decontaminate.benchmarks import BenchmarkNgram, BenchmarkSpec, RowProblem, read_benchmark
from refinery.udfs.decontaminate.bloom import BloomFilter

NORMALIZATION_VERSION = "janitor-unicode-v1"  # part of the set hash: a change here must re-scan
_ROWS = StructType([
    StructField("kind", StringType(), False),
    StructField("benchmark", StringType(), False),
    StructField("item_id", StringType()),
    StructField("ngram_hash", LongType()),
    StructField("ngram", StringType()),
    StructField("length", IntegerType()),
    StructField("path", StringType()),
    StructField("line", LongType()),
    StructField("problem", StringType()),
    StructField("message", StringType()),
])
_BATCH = 4096
# Where the shipped data/benchmarks lives: the checkout root in a source tree, the installed `refinery` package
# in a wheel (pyproject maps data/ to refinery/data); in both it is the parent of this module's folder.
_SHIPPED_ROOT = Path(__file__).resolve().parents[1]


@dataclass
class BenchmarkIndex:
    ngrams: DataFrame  # benchmark, item_id, ngram_hash, ngram, length (persisted)
    bloom: BloomFilter
    lengths: list[int]
    content_hash: str  # of the n-gram set itself; see results_hash for what rows record
    counters: dict[str, int]
    problems: list[str]  # a sample of row-level problems, each naming file and line


def benchmark_files(entries: list[BenchmarkEntry]) -> list[tuple[BenchmarkSpec, str]]:
    files = []
    for entry in entries:
        spec = BenchmarkSpec(entry.name, entry.path, tuple(entry.fields), entry.id, tuple(entry.choices), entry.answer)
        pattern = os.path.expanduser(entry.path)
        matched = sorted(glob.glob(pattern))
        if not matched and not os.path.isabs(pattern) and "://" not in pattern:
            # The shipped list names data/benchmarks/...: found from any working directory, checkout or wheel.
            matched = sorted(glob.glob(str(_SHIPPED_ROOT / pattern)))
        if not matched:
            raise InputError(f"benchmark {entry.name}: no file matches {entry.path!r} (from the working directory "
                             f"{os.getcwd()} or the shipped files under {_SHIPPED_ROOT}); fix the path in the "
                             "benchmarks file or remove the entry")
        files += [(spec, os.path.abspath(path)) for path in matched]
    return files


def load_or_build_index(spark: SparkSession, entries: list[BenchmarkEntry], cfg: DecontaminateConfig,
                        cache_root: str | None) -> BenchmarkIndex:
    """The index for these benchmark files and settings, from the cache when it was built before.

    Building reads and n-grams every benchmark (a minute for the shipped 2.7M n-grams on a laptop); a
    scheduled incremental run against unchanged benchmarks should pay only for scanning new documents."""
    files = benchmark_files(entries)
    folder = f"{cache_root}/{_cache_key(files, cfg)}" if cache_root else None
    if folder and (cached := _load(spark, folder)) is not None:
        return cached
    index = build_index(spark, files, cfg)
    if folder:
        _save(spark, index, folder)
    return index


def build_index(spark: SparkSession, files: list[tuple[BenchmarkSpec, str]], cfg: DecontaminateConfig
                ) -> BenchmarkIndex:
    n, min_n = cfg.ngram, min(cfg.min_ngram, cfg.ngram)
    arrow_schema = to_arrow_schema(_ROWS)

    def task(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            for index in batch.column("id").to_pylist():
                spec, path = files[index]
                rows = []
                for row in read_benchmark(spec, path, n, min_n, cfg.choice_variants):
                    rows.append(_row(row))
                    if len(rows) >= _BATCH:
                        yield pa.RecordBatch.from_pylist(rows, schema=arrow_schema)
                        rows = []
                yield pa.RecordBatch.from_pylist(rows, schema=arrow_schema)

    rows = spark.range(0, len(files), 1, numPartitions=len(files)).mapInArrow(task, _ROWS)
    rows = rows.persist(StorageLevel.MEMORY_AND_DISK)
    ngrams = rows.where("kind = 'ngram'").select("benchmark", "item_id", "ngram_hash", "ngram", "length")
    summary = rows.groupBy("kind", "problem").count().collect()
    counts = {(r.kind, r.problem): r["count"] for r in summary}
    problems = [f"benchmark {r.benchmark}: {r.path} line {r.line}: {r.message}"
                for r in rows.where("problem = 'malformed'").limit(20).collect()]
    stats = ngrams.agg(F.count_distinct("ngram_hash").alias("distinct"),
                       F.count_distinct("benchmark", "item_id").alias("items")).first()
    lengths = sorted(r.length for r in ngrams.select("length").distinct().collect())
    bloom = _bloom(ngrams, stats["distinct"], cfg.false_positive_rate)
    counters = {
        "benchmark_files": len(files),
        "benchmark_items": int(stats["items"]),
        "benchmark_ngrams": int(stats["distinct"]),
        "skipped_short_benchmark_items": counts.get(("problem", "short"), 0),
        "failed_benchmark_rows": counts.get(("problem", "malformed"), 0),
        "bloom_filter_bytes": bloom.nbytes,
    }
    return BenchmarkIndex(ngrams, bloom, lengths, _content_hash(ngrams, cfg), counters, problems)


_META = StructType([
    StructField("bits", BinaryType(), False),
    StructField("num_bits", LongType(), False),
    StructField("num_hashes", IntegerType(), False),
    StructField("lengths", StringType(), False),
    StructField("content_hash", StringType(), False),
    StructField("counters", StringType(), False),
    StructField("problems", StringType(), False),
])


def _cache_key(files: list[tuple[BenchmarkSpec, str]], cfg: DecontaminateConfig) -> str:
    digest = hashlib.sha256(NORMALIZATION_VERSION.encode())
    # Only what the index itself depends on: policy or cleaning changes reuse it.
    digest.update(json.dumps([cfg.ngram, cfg.min_ngram, cfg.false_positive_rate, cfg.choice_variants]).encode())
    for spec, path in files:
        digest.update(json.dumps([spec.name, spec.fields, spec.id_field, spec.choices, spec.answer]).encode())
        with open(path, "rb") as stream:
            for block in iter(lambda: stream.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:32]


def _save(spark: SparkSession, index: BenchmarkIndex, folder: str) -> None:
    index.ngrams.write.mode("overwrite").parquet(f"{folder}/ngrams")
    meta = (index.bloom.bits.tobytes(), index.bloom.num_bits, index.bloom.num_hashes, json.dumps(index.lengths),
            index.content_hash, json.dumps(index.counters), json.dumps(index.problems))
    # Written last: its presence marks a complete cache entry.
    spark.createDataFrame([meta], _META).write.mode("overwrite").parquet(f"{folder}/meta")


def _load(spark: SparkSession, folder: str) -> BenchmarkIndex | None:
    from pyspark.errors import AnalysisException

    try:
        meta = spark.read.parquet(f"{folder}/meta").first()
        ngrams = spark.read.parquet(f"{folder}/ngrams")
    except AnalysisException:
        return None
    if meta is None:
        return None
    bloom = BloomFilter(np.frombuffer(meta.bits, dtype=np.uint64).copy(), meta.num_bits, meta.num_hashes)
    counters = {**json.loads(meta.counters), "benchmark_index_cached": 1}
    return BenchmarkIndex(ngrams, bloom, json.loads(meta.lengths), meta.content_hash, counters,
                          json.loads(meta.problems))


def _row(row: BenchmarkNgram | RowProblem) -> dict:
    if isinstance(row, BenchmarkNgram):
        return {"kind": "ngram", **asdict(row)}
    return {"kind": "problem", "benchmark": row.benchmark, "path": row.path, "line": row.line,
            "problem": row.kind, "message": row.message}


def _bloom(ngrams: DataFrame, distinct: int, false_positive_rate: float) -> BloomFilter:
    empty = BloomFilter.for_capacity(distinct, false_positive_rate)
    num_bits, num_hashes = empty.num_bits, empty.num_hashes

    def partial(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        bloom = BloomFilter(np.zeros_like(empty.bits), num_bits, num_hashes)
        for batch in batches:
            bloom.add(batch.column("ngram_hash").to_numpy().view(np.uint64))
        yield pa.RecordBatch.from_pylist([{"bits": bloom.bits.tobytes()}])

    # Each partition fills its own filter; a tree reduce ORs them, so no single step holds every n-gram.
    parts = ngrams.select("ngram_hash").mapInArrow(partial, StructType([StructField("bits", BinaryType())]))
    bits = parts.rdd.map(lambda r: np.frombuffer(r.bits, dtype=np.uint64)).treeReduce(np.bitwise_or)
    return BloomFilter(bits.copy(), num_bits, num_hashes)


def _content_hash(ngrams: DataFrame, cfg: DecontaminateConfig) -> str:
    """Hash of the n-gram set: changes when any benchmark item or n-gram changes."""
    per_benchmark = (ngrams.groupBy("benchmark")
                     .agg(F.count("*").alias("n"), F.bit_xor(F.xxhash64("item_id", "ngram_hash", "ngram")).alias("x"))
                     .orderBy("benchmark").collect())
    payload = {
        "normalization": NORMALIZATION_VERSION,
        "ngram": [cfg.ngram, cfg.min_ngram],
        "benchmarks": [[r.benchmark, r.n, r.x] for r in per_benchmark],
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def results_hash(index: BenchmarkIndex, cfg: DecontaminateConfig) -> str:
    """What a contamination row was computed against: the n-gram set plus every setting that shapes the
    result (policy, cleaning, frequency cut-off), so changing any of them re-scans like a new benchmark."""
    settings = cfg.model_dump(mode="json", exclude={"benchmarks_file", "false_positive_rate", "cache_index"})
    payload = json.dumps({"content": index.content_hash, "settings": settings}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()
