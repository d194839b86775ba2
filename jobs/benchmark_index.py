"""The benchmark side of decontamination: n-gram table, Bloom filter and content hash, built on Spark."""

from __future__ import annotations

import hashlib
import json
import os
import uuid
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
from refinery.jobs.ledger import kill_point
from refinery.jobs.storage import sql_merge
from refinery.udfs import fs
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
_SHIPPED = "shipped:"


@dataclass
class BenchmarkIndex:
    ngrams: DataFrame  # benchmark, item_id, ngram_hash, ngram, length (persisted)
    bloom: BloomFilter
    lengths: list[int]
    content_hash: str  # of the n-gram set itself; see results_hash for what rows record
    counters: dict[str, int]
    problems: list[str]  # a sample of row-level problems, each naming file and line


def benchmark_files(entries: list[BenchmarkEntry]) -> list[tuple[BenchmarkSpec, str]]:
    """(spec, location) of every matched file. A location is an absolute path or URI that every executor can open
    (fsspec), or `shipped:data/benchmarks/...` for the files the package ships, which each executor finds in its
    own installed copy: nothing here names the driver's disk unless the benchmarks file does."""
    files = []
    for entry in entries:
        spec = BenchmarkSpec(entry.name, entry.path, tuple(entry.fields), entry.id, tuple(entry.choices), entry.answer)
        matched = fs.expand(entry.path)
        if not matched and not fs.is_remote(entry.path) and not os.path.isabs(os.path.expanduser(entry.path)):
            # The shipped list names data/benchmarks/...: found from any working directory, checkout or wheel.
            matched = fs.expand(str(_SHIPPED_ROOT / entry.path))
        if not matched:
            raise InputError(f"benchmark {entry.name}: no file matches {entry.path!r} (from the working directory "
                             f"{os.getcwd()} or the shipped files under {_SHIPPED_ROOT}); fix the path in the "
                             "benchmarks file or remove the entry")
        files += [(spec, _as_shipped(path)) for path in matched]
    return files


def _as_shipped(path: str) -> str:
    # The shipped files matched from a checkout's working directory are the package's own too.
    shipped = _SHIPPED_ROOT / "data" / "benchmarks"
    if not fs.is_remote(path) and Path(path).resolve().is_relative_to(shipped):
        return _SHIPPED + str(Path(path).resolve().relative_to(_SHIPPED_ROOT))
    return path


def resolve(location: str) -> str:
    """Where this process reads a benchmark file: a shipped one under its own installed package."""
    return str(_SHIPPED_ROOT / location.removeprefix(_SHIPPED)) if location.startswith(_SHIPPED) else location


def load_or_build_index(spark: SparkSession, entries: list[BenchmarkEntry], cfg: DecontaminateConfig,
                        cache_root: str | None, fs_options: dict | None = None) -> BenchmarkIndex:
    """The index for these benchmark files and settings, from the cache when it was built before.

    Building reads and n-grams every benchmark (a minute for the shipped 2.7M n-grams on a laptop); a
    scheduled incremental run against unchanged benchmarks should pay only for scanning new documents."""
    files = benchmark_files(entries)
    key = _cache_key(files, cfg) if cache_root else None
    if key and (folder := published(spark, cache_root, key)) and (cached := _load(spark, folder)) is not None:
        return cached
    index = build_index(spark, files, cfg, fs_options)
    if key:
        publish(spark, index, cache_root, key)
    return index


def _pointers(spark: SparkSession, cache_root: str) -> str:
    """The cache's commit record: a Delta table (cache key -> folder) under the cache URI, so publishing works
    on object storage and beside a metastore alike (the cache is a path, not a catalog table). SQL, not the
    DeltaTable builder, so it works over Spark Connect too. Returns the table's SQL name."""
    table = f"delta.`{cache_root.rstrip('/')}/_published`"
    spark.sql(f"CREATE TABLE IF NOT EXISTS {table} (cache_key STRING NOT NULL, folder STRING NOT NULL, "
              "published_at TIMESTAMP) USING delta")
    return table


def published(spark: SparkSession, cache_root: str, key: str) -> str | None:
    """The folder the pointer row names for key; a folder without a pointer row is never read."""
    row = spark.table(_pointers(spark, cache_root)).where(F.col("cache_key") == key).select("folder").first()
    return row.folder if row is not None else None


def publish(spark: SparkSession, index: BenchmarkIndex, cache_root: str, key: str) -> str:
    """Write the index to a fresh folder, then point the key at it in one Delta commit (MERGE on the key): a
    reader sees the old index or the new one, never a partly written folder."""
    folder = f"{cache_root.rstrip('/')}/{key}/{uuid.uuid4().hex}"
    _save(spark, index, folder)
    kill_point("benchmark_index.saved")
    row = spark.createDataFrame([(key, folder)], "cache_key string, folder string").withColumn(
        "published_at", F.current_timestamp())
    sql_merge(spark, _pointers(spark, cache_root), row, "t.cache_key = s.cache_key",
              ["WHEN MATCHED THEN UPDATE SET *", "WHEN NOT MATCHED THEN INSERT *"])
    return folder


def build_index(spark: SparkSession, files: list[tuple[BenchmarkSpec, str]], cfg: DecontaminateConfig,
                fs_options: dict | None = None) -> BenchmarkIndex:
    n, min_n = cfg.ngram, min(cfg.min_ngram, cfg.ngram)
    arrow_schema = to_arrow_schema(_ROWS)

    def task(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        fs.configure(fs_options)  # on the executor: its own fsspec backends, the driver's settings
        for batch in batches:
            for index in batch.column("id").to_pylist():
                spec, path = files[index]
                rows = []
                for row in read_benchmark(spec, resolve(path), n, min_n, cfg.choice_variants):
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
        # local bytes, or the store's etag/size/mtime of a remote object (read nothing through the driver)
        digest.update(fs.fingerprint(resolve(path)).encode())
    return digest.hexdigest()[:32]


def _save(spark: SparkSession, index: BenchmarkIndex, folder: str) -> None:
    index.ngrams.write.mode("overwrite").parquet(f"{folder}/ngrams")
    meta = (index.bloom.bits.tobytes(), index.bloom.num_bits, index.bloom.num_hashes, json.dumps(index.lengths),
            index.content_hash, json.dumps(index.counters), json.dumps(index.problems))
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

    def union(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        bits = np.zeros_like(empty.bits)
        for batch in batches:
            for part in batch.column("bits").to_pylist():
                bits |= np.frombuffer(part, dtype=np.uint64)
        yield pa.RecordBatch.from_pylist([{"bits": bits.tobytes()}])

    # Each partition fills its own filter, then one task ORs the partial filters as they stream in (two filters
    # in memory), so no single step holds every n-gram. DataFrames only: no RDD (Spark Connect has none).
    bits_type = StructType([StructField("bits", BinaryType())])
    parts = ngrams.select("ngram_hash").mapInArrow(partial, bits_type)
    bits = parts.repartition(1).mapInArrow(union, bits_type).first().bits
    return BloomFilter(np.frombuffer(bits, dtype=np.uint64).copy(), num_bits, num_hashes)


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
