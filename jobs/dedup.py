"""Dedup stage: documents → `duplicates` (+ the `minhash_bands` LSH index); exact and MinHash near-duplicates.

New documents get MinHash band hashes (and band -1, their exact text hash). Every LSH bucket they join is
re-examined with all its members, old ones included, so a second crawl is deduplicated against everything
already ingested without recomputing old signatures. Incremental rule: the clusters of old documents that
share a bucket with a new one are recomputed from scratch, with all of their buckets, and their rows are
MERGE-updated (cluster, size, keeper; a kept old document may become a duplicate). That "region" is closed
under the candidate edges, so two batches give exactly the clusters and keepers of one batch.
"""

from __future__ import annotations

import json

import xxhash
from pyspark import StorageLevel
from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from refinery.jobs.base import StageContext
from refinery.jobs.components import connected_components
from refinery.jobs.config import DedupConfig
from refinery.jobs.dedup_driver import region_on_driver
from refinery.jobs.dedup_edges import candidate_edges, signature_bands, verify_edges
from refinery.jobs.ledger import kill_point, stage_runs
from refinery.jobs.registry import stage
from refinery.schemas.tables import DOCUMENTS, DUPLICATES, MINHASH_BANDS

_BUCKET = ["band", "band_hash"]
_REASONS = ("unique", "kept", "exact_duplicate", "near_duplicate")


@stage(after="quality")
class DedupStage:
    name = "dedup"
    inputs = (DOCUMENTS.name, DUPLICATES.name, MINHASH_BANDS.name)
    outputs = (DUPLICATES.name, MINHASH_BANDS.name)

    def execute(self, ctx: StageContext) -> None:
        cfg = ctx.config.dedup
        done = ctx.read(DUPLICATES.name)
        # Where components are computed changes no result, so it is not part of what a watermark depends on.
        settings = cfg.model_dump(mode="json", exclude={"driver_components_max_edges", "driver_region_docs"})
        digest = xxhash.xxh3_64_hexdigest(json.dumps(settings, sort_keys=True).encode())
        new_docs = ctx.changes(DOCUMENTS.name, digest).select("doc_id", "text", "text_hash").join(
            done.select("doc_id"), "doc_id", "left_anti")
        # Staged, not cached: the plan reads `duplicates`, which this stage writes (see decontaminate); a killed
        # run's signatures are reused by the next (same settings and documents version).
        new_bands, resumed = ctx.staging.snapshot("bands", signature_bands(ctx.spread(new_docs), cfg),
                                                  ctx.staging_key(settings))
        seen = new_bands.agg(F.count_distinct("doc_id").alias("docs"),
                             F.count_distinct(F.when(F.col("band") >= 0, F.col("doc_id"))).alias("shingled")).first()
        ctx.run.rows_in = seen["docs"]
        ctx.count("docs_new", seen["docs"])
        ctx.count("docs_without_shingles", seen["docs"] - seen["shingled"])
        if resumed:
            ctx.count("resumed_rows", seen["docs"])
        kill_point("dedup.bands_staged")
        if not ctx.run.rows_in:
            ctx.staging.drop("bands")
            return
        region, members = self._region(ctx, done, new_bands)
        docs = ctx.read(DOCUMENTS.name).select("doc_id", "text", "text_hash", "fetch_time")
        ids = region if region is not None else new_bands.where("band = -1").select("doc_id")  # one row per doc
        scores = _scores(ctx, cfg)
        rows = region_on_driver(members, docs.join(ids, "doc_id", "left_semi").join(scores, "doc_id", "left"),
                                ctx.run.rows_in + ctx.run.counters["docs_reassessed"], cfg, ctx.count, ctx.run.run_id)
        ctx.count("region_on_driver", rows is not None)
        if rows is None:
            # A first run's members are the staged bands themselves: only a region's are a query worth a cut.
            members = members if region is None else ctx.staging.cut("members", members)
            rows = self._on_spark(ctx, cfg, region, members, docs, scores)
        else:
            ctx.count("components_rounds", 0)
        self._count(ctx, rows)
        # Both suites pass before either table changes; the bands go first and `duplicates` (the "done" marker)
        # last, so a run killed in between recomputes those documents, whose bands are then unchanged.
        ctx.validate(MINHASH_BANDS.name, new_bands, {"bands": cfg.bands})
        ctx.validate(DUPLICATES.name, rows)
        if _no_band_rows_left(ctx):
            ctx.append(MINHASH_BANDS.name, new_bands)
        else:
            ctx.merge(MINHASH_BANDS.name, new_bands)
        written = ctx.merge(DUPLICATES.name, rows, update_matched=True)
        ctx.run.rows_out = written.get("num_inserted_rows", 0) + written.get("num_updated_rows", 0)
        ctx.staging.drop("bands")

    def _on_spark(self, ctx: StageContext, cfg: DedupConfig, region: DataFrame | None, members: DataFrame,
                  docs: DataFrame, scores: DataFrame) -> DataFrame:
        """The region's rows from the distributed steps (edges, Jaccard check, components, keepers), staged."""
        edges = candidate_edges(members, cfg, ctx.count, ctx.staging.cut)
        if region is not None:
            # Closure: edges leave the region only through unchanged buckets, whose edges old clusters hold.
            edges = (edges.join(region.withColumnRenamed("doc_id", "src"), "src", "left_semi")
                     .join(region.withColumnRenamed("doc_id", "dst"), "dst", "left_semi"))
            # Every document the Jaccard check and the keeper choice need is in the region: one scan of
            # `documents` finds them all (the check and the rows would otherwise scan it twice).
            docs = ctx.staging.cut("region_docs", docs.join(region, "doc_id", "left_semi"))
        else:
            docs = docs.join(members.where("band = -1").select("doc_id"), "doc_id", "left_semi")
        edges = edges.persist(StorageLevel.MEMORY_AND_DISK)
        try:
            if cfg.verify:
                edges = verify_edges(edges, docs, cfg, ctx.count, ctx.staging.cut)
            # Rounds alternate between two staging tables: a round never overwrites the one it reads.
            components, rounds = connected_components(
                edges.select("src", "dst"), cfg.max_iterations,
                lambda i, df: ctx.staging.cut(f"components_{i % 2}", df), cfg.driver_components_max_edges)
            ctx.count("components_rounds", rounds)  # 0: a small graph, solved on the driver
            return ctx.staging.cut("rows", self._assign(ctx, docs, scores, components))
        finally:
            edges.unpersist()

    @staticmethod
    def _region(ctx: StageContext, done: DataFrame, new_bands: DataFrame) -> tuple[DataFrame | None, DataFrame]:
        """(documents whose rows this run recomputes, or None for just the new ones; every band row of the
        buckets they are in, not yet computed)."""
        if done.isEmpty():  # first run: nothing old to re-examine
            ctx.count("docs_reassessed", 0)
            return None, new_bands
        new_ids = new_bands.where("band = -1").select("doc_id")
        # Rows a killed run left for these documents are replaced by this run's (identical) ones.
        old_bands = ctx.read(MINHASH_BANDS.name).join(new_ids, "doc_id", "left_anti")
        touched = old_bands.join(new_bands.select(*_BUCKET).distinct(), _BUCKET, "left_semi").select("doc_id")
        affected = done.join(touched, "doc_id", "left_semi").select("cluster_id").distinct()
        region = ctx.staging.cut("region", new_ids.withColumn("new", F.lit(True)).unionByName(
            done.join(affected, "cluster_id", "left_semi").select("doc_id", F.lit(False).alias("new"))))
        reassessed = region.where(~F.col("new")).select("doc_id").distinct().count()
        ctx.count("docs_reassessed", reassessed)
        region = region.select("doc_id").distinct()
        all_bands = old_bands.unionByName(new_bands)
        buckets = all_bands.join(region, "doc_id", "left_semi").select(*_BUCKET).distinct()
        if ctx.run.rows_in + reassessed <= ctx.config.dedup.driver_region_docs:
            # A small region's buckets (bands + 1 per document at most) are broadcast: Spark cannot tell their
            # size before running, and would shuffle every row of `minhash_bands` to join them.
            buckets = F.broadcast(buckets)
        return region, all_bands.join(buckets, _BUCKET, "left_semi")

    @staticmethod
    def _assign(ctx: StageContext, docs: DataFrame, scores: DataFrame, components: DataFrame) -> DataFrame:
        """The region's rows (docs: its documents): cluster, sizes and the deterministic keeper (score, fetch time,
        doc_id)."""
        docs = docs.select("doc_id", "text_hash", "fetch_time").join(scores, "doc_id", "left")
        docs = (docs.join(components.withColumnRenamed("node", "doc_id"), "doc_id", "left")
                .withColumn("cluster_id", F.coalesce("component", "doc_id")))
        order = Window.partitionBy("cluster_id").orderBy(
            F.col("score").desc_nulls_last(), F.col("fetch_time").asc_nulls_last(), F.col("doc_id"))
        whole = order.rowsBetween(Window.unboundedPreceding, Window.unboundedFollowing)
        ranked = (docs.withColumn("rank", F.row_number().over(order))
                  .withColumn("keeper_doc_id", F.first("doc_id").over(whole))
                  .withColumn("keeper_hash", F.first("text_hash").over(whole))
                  .withColumn("keeper_score", F.first("score").over(whole))
                  .withColumn("cluster_size", F.count("*").over(Window.partitionBy("cluster_id")))
                  .withColumn("exact_cluster_size", F.count("*").over(Window.partitionBy("text_hash"))))
        return ranked.select(
            "doc_id", F.col("text_hash").alias("exact_cluster"), "exact_cluster_size", "cluster_id",
            "cluster_size", (F.col("rank") == 1).alias("is_kept"), "keeper_doc_id", _reason().alias("reason"),
            "keeper_score", F.lit(ctx.run.run_id).alias("run_id"),
        )

    @staticmethod
    def _count(ctx: StageContext, rows: DataFrame) -> None:
        # Counted over the rows written: this run's documents and the old ones whose clusters were recomputed.
        stats = rows.agg(*[F.sum((F.col("reason") == r).cast("long")).alias(r) for r in _REASONS],
                         F.max("cluster_size").alias("largest")).first()
        for reason in _REASONS:
            ctx.count(f"{'dropped' if reason.endswith('duplicate') else 'kept'}_{reason}", stats[reason] or 0)
        ctx.count("clusters", stats["kept"] or 0)  # one keeper per cluster of two or more
        ctx.count("largest_cluster", stats["largest"] or 0)


def _no_band_rows_left(ctx: StageContext) -> bool:
    """Whether nothing but succeeded dedup runs has committed to `minhash_bands` since the last of them wrote it:
    then no new document has band rows yet (a run that committed its bands and then died before `duplicates`
    left some, and this run's MERGE replaces them) and a blind append does, without scanning the table for keys."""
    pinned = ctx.run.input_versions.get(MINHASH_BANDS.name)
    for run in stage_runs(ctx.lake, ctx.run.stage):
        written = (run.output_versions or {}).get(MINHASH_BANDS.name)
        if run.status == "succeeded" and written is not None:
            return written == pinned
    return False


def _reason() -> Column:
    return (F.when(F.col("cluster_size") == 1, "unique").when(F.col("rank") == 1, "kept")
            .when(F.col("text_hash") == F.col("keeper_hash"), "exact_duplicate").otherwise("near_duplicate"))


def _scores(ctx: StageContext, cfg: DedupConfig) -> DataFrame:
    """doc_id, score: the configured quality column when that table has it, else no rows (the fallback)."""
    if ctx.lake.exists(cfg.quality_table):
        quality = ctx.read(cfg.quality_table)
        if cfg.keeper_score_column in quality.columns:
            ctx.count("keeper_by_quality_score", 1)
            return quality.select("doc_id", F.col(cfg.keeper_score_column).cast("double").alias("score"))
    ctx.count("keeper_by_quality_score", 0)
    return ctx.spark.createDataFrame([], "doc_id string, score double")


if __name__ == "__main__":  # spark-submit jobs/dedup.py --config conf.yaml [--set k=v]
    from refinery.jobs.main import stage_main

    stage_main("dedup")
