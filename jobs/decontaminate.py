"""Decontaminate stage: documents → `contamination` (+ `contamination_matches`), 13-gram Bloom + exact check."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pyarrow as pa
from pyspark import StorageLevel
from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql.pandas.types import to_arrow_schema
from pyspark.sql.types import ArrayType, LongType, StringType, StructField, StructType

from refinery.jobs.base import StageContext
from refinery.jobs.benchmark_index import BenchmarkIndex, load_or_build_index, results_hash
from refinery.jobs.config import DecontaminateConfig, load_benchmarks
from refinery.jobs.ledger import kill_point
from refinery.jobs.progress import spark_progress
from refinery.jobs.registry import stage
from refinery.schemas.tables import CONTAMINATION, CONTAMINATION_MATCHES, DOCUMENTS
from refinery.udfs.decontaminate.bloom import BloomFilter
from refinery.udfs.decontaminate.scan import bloom_candidates_batch, gpt3_clean, matched_spans

_BROADCAST_CANDIDATES = 2_000_000
_SCAN_SLICE = 256
_CANDIDATE = StructType([StructField("ngram_hash", LongType(), False), StructField("ngram", StringType(), False)])
_SCANNED = StructType([
    StructField("doc_id", StringType(), False),
    StructField("ngrams_checked", LongType(), False),
    StructField("candidates", ArrayType(_CANDIDATE, False), False),
])
_CLEANED = StructType([
    StructField("doc_id", StringType(), False),
    StructField("cleaning", StringType(), False),
    StructField("cleaned_text", StringType()),
])


@stage(after="ingest")
class DecontaminateStage:
    name = "decontaminate"
    inputs = (DOCUMENTS.name, CONTAMINATION.name)
    outputs = (CONTAMINATION.name, CONTAMINATION_MATCHES.name)

    def execute(self, ctx: StageContext) -> None:
        cfg = ctx.config.decontaminate
        entries = load_benchmarks(cfg.benchmarks_file)
        cache = (cfg.cache_uri or f"{ctx.lake.root}/_cache/benchmark_index") if cfg.cache_index else None
        with ctx.step("benchmark index"):
            index = load_or_build_index(ctx.spark, entries, cfg, cache, ctx.config.storage.fs_options)
        for name, n in index.counters.items():
            ctx.count(name, n)
        for problem in index.problems:
            print(f"warning: {problem}", file=sys.stderr)
        set_hash = results_hash(index, cfg)
        docs = self._to_scan(ctx, set_hash)
        try:
            with ctx.step("scan"), spark_progress(ctx.spark, "decontaminate: scanning documents", ctx.show_progress):
                # Staged, not cached: the scan's plan reads `contamination`, and Delta re-computes cached plans
                # of a table it writes; a killed run's scan is reused by the next (same set, same documents).
                scanned, resumed = ctx.staging.snapshot("scan", scan(ctx.spread(docs), index.bloom, index.lengths),
                                                        ctx.staging_key(set_hash))
                seen = scanned.agg(F.count("*").alias("docs"), F.sum("ngrams_checked").alias("checked"),
                                   F.sum(F.size("candidates")).alias("candidates")).first()
                ctx.run.rows_in = seen["docs"]
            ctx.count("docs_scanned", ctx.run.rows_in)
            if resumed:
                ctx.count("resumed_rows", ctx.run.rows_in)
            kill_point("decontaminate.scanned")
            if ctx.run.rows_in and not seen["candidates"]:
                self._commit_clean(ctx, cfg, set_hash, scanned, seen["checked"])
            elif ctx.run.rows_in:
                self._verify_and_commit(ctx, cfg, index, set_hash, scanned, [e.name for e in entries])
            ctx.staging.drop("scan")
        finally:
            index.ngrams.unpersist()

    def _to_scan(self, ctx: StageContext, set_hash: str) -> DataFrame:
        """Documents without a result for this benchmark set: new ones, or all when the set changed."""
        docs = ctx.changes(DOCUMENTS.name, set_hash).select("doc_id", "text")
        done = ctx.read(CONTAMINATION.name).where(F.col("benchmark_set_hash") == set_hash).select("doc_id")
        return docs.join(done, "doc_id", "left_anti")

    def _verify_and_commit(self, ctx: StageContext, cfg: DecontaminateConfig, index: BenchmarkIndex,
                           set_hash: str, scanned: DataFrame, benchmarks: list[str]) -> None:
        candidates = scanned.select("doc_id", F.explode("candidates").alias("c")).select("doc_id", "c.*")
        # Exact verification is a join on hash *and* n-gram text with the full n-gram table, so the
        # benchmark set may be larger than any one machine's memory.
        if candidates.count() <= _BROADCAST_CANDIDATES:
            candidates = F.broadcast(candidates)  # few hits (the usual case): no shuffle of the n-gram table
        verified = candidates.join(index.ngrams, ["ngram_hash", "ngram"]).persist(StorageLevel.MEMORY_AND_DISK)
        freq = self._doc_freq(ctx, verified, scanned)
        matches = verified.join(freq, "ngram_hash")
        if cfg.max_ngram_doc_freq is not None:
            frequent = freq.where(F.col("ngram_doc_freq") > cfg.max_ngram_doc_freq)
            ctx.count("ignored_frequent_ngrams", frequent.count())
            matches = matches.join(frequent.select("ngram_hash"), "ngram_hash", "left_anti")
        per_doc = self._per_doc(matches, cfg)
        checked = scanned.select("doc_id", "ngrams_checked",
                                 F.size("candidates").cast("long").alias("bloom_candidates"))
        contamination = self._clean(ctx, cfg, index, self._rows(ctx, cfg, checked, set_hash, per_doc), matches)
        self._count(ctx, candidates, verified, contamination)
        detail = self._detail(matches, cfg, set_hash, ctx.run.run_id).persist(StorageLevel.MEMORY_AND_DISK)
        contamination = contamination.persist(StorageLevel.MEMORY_AND_DISK)
        try:
            # Both suites pass before either table changes. Matches go first and `contamination` (the
            # "scanned" marker) last, so a run killed in between re-scans those documents next time.
            ctx.validate(CONTAMINATION_MATCHES.name, detail, {"benchmarks": benchmarks})
            ctx.validate(CONTAMINATION.name, contamination)
            # One MERGE both writes the new matches and deletes those found against an older benchmark set.
            ctx.merge(CONTAMINATION_MATCHES.name, detail, update_matched=True,
                      delete_unmatched_where=f"t.benchmark_set_hash <> '{set_hash}'")
            written = ctx.merge(CONTAMINATION.name, contamination, update_matched=True)
            ctx.run.rows_out = written.get("num_inserted_rows", 0) + written.get("num_updated_rows", 0)
        finally:
            for frame in (verified, detail, contamination):
                frame.unpersist()

    def _commit_clean(self, ctx: StageContext, cfg: DecontaminateConfig, set_hash: str, scanned: DataFrame,
                      checked: int) -> None:
        """No scanned document has a Bloom candidate (the usual new batch): every row is clean, with nothing to
        verify, count per n-gram or cut out. Old matches of another benchmark set are still deleted (the
        set changed and nothing matched the new one); none of this set's can be (no document was re-scanned
        that had any)."""
        contamination = self._rows(ctx, cfg, scanned.select("doc_id", "ngrams_checked",
                                                             F.lit(0).cast("long").alias("bloom_candidates")),
                                   set_hash, clean_as=F.lit("kept") if cfg.clean else None)
        for name in ("bloom_candidates", "bloom_false_positives", "verified_matches", "contaminated_docs",
                     "dropped_by_cleaning"):
            ctx.count(name, 0)
        ctx.count("ngrams_checked", checked or 0)
        ctx.validate(CONTAMINATION.name, contamination)
        stale = ctx.read(CONTAMINATION_MATCHES.name).where(F.col("benchmark_set_hash") != set_hash)
        if not stale.isEmpty():
            ctx.merge(CONTAMINATION_MATCHES.name, ctx.spark.createDataFrame([], CONTAMINATION_MATCHES.schema),
                      delete_unmatched_where=f"t.benchmark_set_hash <> '{set_hash}'")
        written = ctx.merge(CONTAMINATION.name, contamination, update_matched=True)
        ctx.run.rows_out = written.get("num_inserted_rows", 0) + written.get("num_updated_rows", 0)

    @staticmethod
    def _rows(ctx: StageContext, cfg: DecontaminateConfig, checked: DataFrame, set_hash: str,
              per_doc: DataFrame | None = None, clean_as: Column | None = None) -> DataFrame:
        """`contamination` rows from (doc_id, ngrams_checked, bloom_candidates) and the verified matches per
        document (none: all clean); cleaning columns are null unless `clean_as` (or _clean later) sets them."""
        rows = checked.join(per_doc, "doc_id", "left") if per_doc is not None else checked.select(
            "*", *[F.lit(None).cast(t).alias(c) for c, t in (("policy_ngrams", "long"), ("matched_ngrams", "long"),
                                                            ("matched_items", "long"),
                                                            ("matched_benchmarks", "array<string>"))])
        return rows.select(
            "doc_id",
            (F.coalesce("policy_ngrams", F.lit(0)) >= cfg.policy.min_matched_ngrams).alias("contaminated"),
            F.coalesce("matched_ngrams", F.lit(0)).alias("matched_ngrams"),
            F.coalesce("matched_items", F.lit(0)).alias("matched_items"),
            F.coalesce("matched_benchmarks", F.array().cast("array<string>")).alias("matched_benchmarks"),
            "ngrams_checked", "bloom_candidates",
            (clean_as if clean_as is not None else F.lit(None)).cast("string").alias("cleaning"),
            F.lit(None).cast("string").alias("cleaned_text"),
            F.lit(set_hash).alias("benchmark_set_hash"), F.lit(ctx.run.run_id).alias("run_id"),
        )

    def _doc_freq(self, ctx: StageContext, verified: DataFrame, scanned: DataFrame) -> DataFrame:
        """Documents per n-gram over the whole corpus: this run's matches plus earlier runs' still valid ones."""
        earlier = (ctx.read(CONTAMINATION_MATCHES.name).select("doc_id", "ngram_hash")
                   .join(scanned.select("doc_id"), "doc_id", "left_anti"))
        pairs = verified.select("doc_id", "ngram_hash").unionByName(earlier).distinct()
        return pairs.groupBy("ngram_hash").agg(F.count("*").alias("ngram_doc_freq"))

    @staticmethod
    def _per_doc(matches: DataFrame, cfg: DecontaminateConfig) -> DataFrame:
        counted = F.col("benchmark").isin(cfg.policy.benchmarks) if cfg.policy.benchmarks else F.lit(True)
        return matches.groupBy("doc_id").agg(
            F.count_distinct("ngram_hash").alias("matched_ngrams"),
            F.count_distinct("benchmark", "item_id").alias("matched_items"),
            F.array_sort(F.collect_set("benchmark")).alias("matched_benchmarks"),
            F.count_distinct(F.when(counted, F.col("ngram_hash"))).alias("policy_ngrams"),
        )

    def _clean(self, ctx: StageContext, cfg: DecontaminateConfig, index: BenchmarkIndex, contamination: DataFrame,
               matches: DataFrame) -> DataFrame:
        if not cfg.clean:
            return contamination
        hits = matches.groupBy("doc_id").agg(F.collect_set("ngram_hash").alias("hashes"))
        dirty = ctx.read(DOCUMENTS.name).select("doc_id", "text").join(hits, "doc_id")
        cleaned = clean(dirty, index.lengths, cfg)
        return (contamination.drop("cleaning", "cleaned_text").join(cleaned, "doc_id", "left")
                .withColumn("cleaning", F.coalesce("cleaning", F.lit("kept")))
                .select(*CONTAMINATION.schema.fieldNames()))

    @staticmethod
    def _detail(matches: DataFrame, cfg: DecontaminateConfig, set_hash: str, run_id: str) -> DataFrame:
        # Every matched item keeps one row, however many there are (an MMLU passage is shared by 900 items);
        # the cap bounds only the further n-gram rows, so the table always says *which* items a doc holds.
        within_item = Window.partitionBy("doc_id", "benchmark", "item_id").orderBy("ngram_hash")
        order = Window.partitionBy("doc_id").orderBy("item_rank", "benchmark", "item_id", "ngram_hash")
        return (matches.withColumn("item_rank", F.row_number().over(within_item))
                .withColumn("rank", F.row_number().over(order))
                .where((F.col("item_rank") == 1) | (F.col("rank") <= cfg.max_matches_per_doc))
                .withColumn("benchmark_set_hash", F.lit(set_hash)).withColumn("run_id", F.lit(run_id))
                .select(*CONTAMINATION_MATCHES.schema.fieldNames()))

    @staticmethod
    def _count(ctx: StageContext, candidates: DataFrame, verified: DataFrame, contamination: DataFrame) -> None:
        stats = contamination.agg(
            F.sum("ngrams_checked").alias("checked"), F.sum("bloom_candidates").alias("candidates"),
            F.sum(F.col("contaminated").cast("long")).alias("contaminated"),
            F.sum(F.when(F.col("cleaning") == "dropped", 1).otherwise(0)).alias("dropped"),
        ).first()
        unverified = candidates.join(verified.select("doc_id", "ngram_hash").distinct(), ["doc_id", "ngram_hash"],
                                     "left_anti").count()
        ctx.count("ngrams_checked", stats["checked"] or 0)
        ctx.count("bloom_candidates", stats["candidates"] or 0)
        ctx.count("bloom_false_positives", unverified)
        ctx.count("verified_matches", verified.count())
        ctx.count("contaminated_docs", stats["contaminated"] or 0)
        ctx.count("dropped_by_cleaning", stats["dropped"] or 0)
        for row in (contamination.where("contaminated").select(F.explode("matched_benchmarks").alias("b"))
                    .groupBy("b").count().collect()):
            ctx.count(f"contaminated_docs_{row.b}", row["count"])


def scan(docs: DataFrame, bloom: BloomFilter, lengths: list[int]) -> DataFrame:
    """Bloom-filter candidates of every document (vectorised per document). The filter travels in the task's
    closure: Spark Classic broadcasts a closure over spark.broadcast.UDFCompressionThreshold (1 MB) by itself,
    and Spark Connect, which has no broadcast variables, ships it with the plan."""
    schema = to_arrow_schema(_SCANNED)

    def task(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        filter_ = bloom
        for batch in batches:
            texts = [t or "" for t in batch.column("text").to_pylist()]
            # Slices of a few hundred documents: enough to amortise numpy's per-call cost, small enough
            # that the concatenated hashes stay in cache (Arrow batches hold up to 10,000 rows).
            results = [r for i in range(0, len(texts), _SCAN_SLICE)
                       for r in bloom_candidates_batch(texts[i : i + _SCAN_SLICE], filter_, lengths)]
            rows = [{"doc_id": doc_id, "ngrams_checked": checked,
                     "candidates": [{"ngram_hash": h, "ngram": g} for h, g in found.items()]}
                    for doc_id, (checked, found) in zip(batch.column("doc_id").to_pylist(), results, strict=True)]
            yield pa.RecordBatch.from_pylist(rows, schema=schema)

    return docs.mapInArrow(task, _SCANNED)


def clean(dirty: DataFrame, lengths: list[int], cfg: DecontaminateConfig) -> DataFrame:
    schema = to_arrow_schema(_CLEANED)

    def task(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            rows = []
            for doc_id, text, hashes in zip(*(batch.column(c).to_pylist() for c in ("doc_id", "text", "hashes")),
                                            strict=True):
                spans = matched_spans(text, set(hashes), lengths)
                pieces = gpt3_clean(text, spans, cfg.clean_window, cfg.clean_min_piece, cfg.clean_max_hits)
                rows.append({"doc_id": doc_id, "cleaning": "cleaned" if pieces else "dropped",
                             "cleaned_text": "\n\n".join(pieces) if pieces else None})
            yield pa.RecordBatch.from_pylist(rows, schema=schema)

    return dirty.mapInArrow(task, _CLEANED)


if __name__ == "__main__":  # spark-submit jobs/decontaminate.py --config conf.yaml [--set k=v]
    from refinery.jobs.main import stage_main

    stage_main("decontaminate")
