"""The dedup stage's DataFrame steps: band hashes per document, star edges per bucket, exact-Jaccard check."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import pyarrow as pa
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.pandas.types import to_arrow_schema
from pyspark.sql.types import BinaryType, DoubleType, IntegerType, LongType, StringType, StructField, StructType

from refinery.jobs.config import DedupConfig
from refinery.udfs.dedup.minhash import band_hashes, jaccard, permutations, shingles, signatures

_BUCKET = ["band", "band_hash"]
_SLICE = 512  # documents per signature matrix: amortises numpy calls, keeps the matrices in cache
_BANDS = StructType([
    StructField("doc_id", StringType(), False),
    StructField("band", IntegerType(), False),
    StructField("band_hash", LongType(), False),
])
_SHINGLES = StructType([StructField("doc_id", StringType(), False), StructField("shingles", BinaryType(), False)])
_SCORED = StructType([
    StructField("src", StringType(), False),
    StructField("dst", StringType(), False),
    StructField("jaccard", DoubleType(), False),
])

Count = Callable[[str, int], None]


def signature_bands(docs: DataFrame, cfg: DedupConfig) -> DataFrame:
    """(doc_id, band, band_hash) of every document: band -1 is its exact text hash, bands 0.. its MinHash LSH
    bands (none when the text has fewer words than one shingle)."""
    schema = to_arrow_schema(_BANDS)
    bands, rows, n, seed = cfg.bands, cfg.rows, cfg.ngram, cfg.seed

    def task(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        perms = permutations(bands * rows, seed)
        for batch in batches:
            ids = batch.column("doc_id")
            # The first 64 bits of the 128-bit text hash, as a signed long: the exact bucket.
            exact = np.array([int(h[:16], 16) for h in batch.column("text_hash").to_pylist()], dtype=np.uint64)
            yield pa.RecordBatch.from_arrays([ids, pa.array(np.full(len(ids), -1, np.int32)),
                                              pa.array(exact.view(np.int64))], schema=schema)
            texts = batch.column("text").to_pylist()
            for start in range(0, len(texts), _SLICE):
                sets = [shingles(t or "", n) for t in texts[start : start + _SLICE]]
                hashed = band_hashes(signatures(sets, perms), bands, rows)
                has = np.flatnonzero([len(s) > 0 for s in sets])
                take = pa.array(np.repeat(has + start, bands))
                yield pa.RecordBatch.from_arrays([
                    ids.take(take), pa.array(np.tile(np.arange(bands, dtype=np.int32), len(has))),
                    pa.array(hashed[has].reshape(-1)),
                ], schema=schema)

    return docs.select("doc_id", "text", "text_hash").mapInArrow(task, _BANDS)


def _local(_: str, df: DataFrame) -> DataFrame:
    return df.localCheckpoint(eager=True)


def candidate_edges(members: DataFrame, cfg: DedupConfig, count: Count,
                    cut: Callable[[str, DataFrame], DataFrame] = _local) -> DataFrame:
    """(src, dst, exact) edges, src > dst. A MinHash bucket of up to pair_bucket_size members links every pair of
    them: a star to the smallest id alone misses two near-duplicates that both differ from that member (the
    Jaccard check then rejects both star edges). A larger bucket, and the exact-text bucket (band -1, whose
    members are all equal), links each member to the bucket's smallest doc_id, never all pairs.
    A bucket over max_bucket_size (boilerplate) is salted by doc_id into sub-buckets of about that size: members
    link to their sub-bucket's smallest id and those to the bucket's, so no task holds a giant bucket and the
    bucket stays one connected piece. Aggregations are map-side combined, so counting a giant bucket is cheap.
    `cut(name, df)` materialises an intermediate (the stage passes a staging table; tests a local checkpoint)."""
    sizes = cut("bucket_sizes", members.groupBy(*_BUCKET).agg(F.count("*").alias("n"),
                                                              F.min("doc_id").alias("center")).where("n > 1"))
    is_giant = F.col("n") > cfg.max_bucket_size
    is_paired = (F.col("band") >= 0) & (F.col("n") <= cfg.pair_bucket_size)
    giant = sizes.where(is_giant).withColumn("salts", F.ceil(F.col("n") / cfg.max_bucket_size).cast("long"))
    stats = sizes.agg(F.count("*").alias("shared"), F.sum(is_giant.cast("long")).alias("buckets"),
                      F.sum(F.when(is_giant, F.col("n"))).alias("docs"),
                      F.sum(is_paired.cast("long")).alias("paired")).first()
    count("shared_buckets", stats["shared"])
    count("paired_buckets", stats["paired"] or 0)
    count("giant_buckets", stats["buckets"] or 0)
    count("giant_bucket_members", stats["docs"] or 0)
    normal = sizes.join(F.broadcast(giant.select(*_BUCKET)), _BUCKET, "left_anti").withColumn("paired", is_paired)
    # Giant buckets' members are split off by a broadcast join first, so no shuffle partition receives one.
    in_normal = members.join(F.broadcast(giant.select(*_BUCKET)), _BUCKET, "left_anti").join(normal, _BUCKET)
    edges = (in_normal.where(~F.col("paired") & (F.col("doc_id") != F.col("center")))
             .select(F.col("doc_id").alias("src"), F.col("center").alias("dst"), "band"))
    in_paired = in_normal.where("paired").select(*_BUCKET, "doc_id")
    pairs = (in_paired.withColumnRenamed("doc_id", "src")
             .join(in_paired.withColumnRenamed("doc_id", "dst"), _BUCKET).where(F.col("src") > F.col("dst"))
             .select("src", "dst", "band"))
    edges = edges.unionByName(pairs)
    if stats["buckets"]:
        salted = (members.join(F.broadcast(giant), _BUCKET)
                  .withColumn("salt", F.pmod(F.xxhash64("doc_id"), F.col("salts"))))
        sub = salted.groupBy(*_BUCKET, "salt").agg(F.min("doc_id").alias("sub_center"))
        to_sub = (salted.join(sub, [*_BUCKET, "salt"]).where(F.col("doc_id") != F.col("sub_center"))
                  .select(F.col("doc_id").alias("src"), F.col("sub_center").alias("dst"), "band"))
        to_center = (sub.join(F.broadcast(giant.select(*_BUCKET, "center")), _BUCKET)
                     .where(F.col("sub_center") != F.col("center"))
                     .select(F.col("sub_center").alias("src"), F.col("center").alias("dst"), "band"))
        edges = edges.unionByName(to_sub).unionByName(to_center)
    # One row per pair; `exact` when any bucket linking it is the exact text hash (no Jaccard check needed).
    return edges.groupBy("src", "dst").agg(F.max(F.col("band") == -1).alias("exact"))


def verify_edges(edges: DataFrame, documents: DataFrame, cfg: DedupConfig, count: Count,
                 cut: Callable[[str, DataFrame], DataFrame] = _local) -> DataFrame:
    """Keep exact edges and the MinHash edges whose exact shingle Jaccard reaches cfg.jaccard_threshold."""
    fuzzy = edges.where(~F.col("exact")).select("src", "dst")
    ends = fuzzy.select(F.col("src").alias("doc_id")).unionByName(fuzzy.select(F.col("dst").alias("doc_id")))
    texts = documents.select("doc_id", "text").join(ends.distinct(), "doc_id", "left_semi")
    sets = _shingle_sets(texts, cfg.ngram)
    pairs = (fuzzy.join(sets.withColumnRenamed("doc_id", "src").withColumnRenamed("shingles", "a"), "src")
             .join(sets.withColumnRenamed("doc_id", "dst").withColumnRenamed("shingles", "b"), "dst"))
    scored = cut("verified_pairs", _score(pairs))
    kept = scored.where(F.col("jaccard") >= cfg.jaccard_threshold)
    stats = scored.agg(F.count("*").alias("checked"),
                       F.sum((F.col("jaccard") >= cfg.jaccard_threshold).cast("long")).alias("kept")).first()
    count("exact_edges", edges.where("exact").count())
    count("verified_edges", stats["kept"] or 0)
    count("rejected_edges", stats["checked"] - (stats["kept"] or 0))
    return edges.where("exact").select("src", "dst").unionByName(kept.select("src", "dst"))


def _shingle_sets(texts: DataFrame, n: int) -> DataFrame:
    schema = to_arrow_schema(_SHINGLES)

    def task(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            sets = [np.unique(shingles(t or "", n)).tobytes() for t in batch.column("text").to_pylist()]
            yield pa.RecordBatch.from_arrays([batch.column("doc_id"), pa.array(sets, pa.binary())], schema=schema)

    return texts.mapInArrow(task, _SHINGLES)


def _score(pairs: DataFrame) -> DataFrame:
    schema = to_arrow_schema(_SCORED)

    def task(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            scores = [jaccard(np.frombuffer(a, np.uint64), np.frombuffer(b, np.uint64))
                      for a, b in zip(batch.column("a").to_pylist(), batch.column("b").to_pylist(), strict=True)]
            yield pa.RecordBatch.from_arrays([batch.column("src"), batch.column("dst"), pa.array(scores)],
                                             schema=schema)

    return pairs.select("src", "dst", "a", "b").mapInArrow(task, _SCORED)
