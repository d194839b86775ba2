"""Quality stage: documents → `quality` (every heuristic signal, classifier scores, keep, drop reasons).

Signals are kept whole, so an analyst re-thresholds in SQL (see the `documents_quality` view) without a re-run.
A row records the hash of the settings it was computed with; changing thresholds, transformations or a model's
contents re-scores the documents on the next run, as a new crawl's documents are scored on theirs.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

import pyarrow as pa
import xxhash
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.pandas.types import to_arrow_schema
from pyspark.sql.types import StructType

from refinery.jobs.base import InputError, StageContext
from refinery.jobs.config import QualityConfig
from refinery.jobs.progress import spark_progress
from refinery.jobs.registry import stage
from refinery.schemas.tables import DOCUMENTS, QUALITY
from refinery.udfs.quality.classifier import ModelLoadError, check_fasttext_file
from refinery.udfs.quality.doc import Classifier, QualitySettings, quality_rows
from refinery.udfs.quality.rules import load_filter_thresholds

# What the scoring UDF returns: the table minus what the driver adds afterwards.
_SCORED = StructType([f for f in QUALITY.schema.fields
                      if f.name not in ("quality_bucket", "settings_hash", "run_id")])


@stage(after="decontaminate")
class QualityStage:
    name = "quality"
    inputs = (DOCUMENTS.name, QUALITY.name)
    outputs = (QUALITY.name,)

    def execute(self, ctx: StageContext) -> None:
        cfg = ctx.config.quality
        settings = build_settings(cfg)
        settings_hash = settings_fingerprint(cfg, settings)
        docs = ctx.lake.read(DOCUMENTS.name).select("doc_id", "text")
        done = ctx.lake.read(QUALITY.name).where(F.col("settings_hash") == settings_hash).select("doc_id")
        with spark_progress(ctx.spark, "quality: scoring documents", ctx.show_progress):
            # A checkpoint, not a cache: Delta re-computes cached plans of a table after it is written.
            scored = score(docs.join(done, "doc_id", "left_anti"), settings).localCheckpoint(eager=True)
            ctx.run.rows_in = scored.count()
        ctx.count("docs_scored", ctx.run.rows_in)
        if not ctx.run.rows_in:
            return
        rows = (scored.withColumn("quality_bucket", F.lit(None).cast("int"))
                .withColumn("settings_hash", F.lit(settings_hash)).withColumn("run_id", F.lit(ctx.run.run_id)))
        if settings.primary and cfg.bucket.enabled:
            rows = self._with_buckets(ctx, rows, settings_hash, cfg.bucket.buckets)
        rows = rows.select(*QUALITY.schema.fieldNames()).localCheckpoint(eager=True)
        self._count(ctx, rows)
        suite = {"buckets": cfg.bucket.buckets if settings.primary and cfg.bucket.enabled else None,
                 "probability_scores": all(c.kind == "fasttext" for c in settings.classifiers)}
        written = ctx.commit(QUALITY.name, rows, update_matched=True, suite_settings=suite)
        ctx.run.rows_out = written.get("num_inserted_rows", 0) + written.get("num_updated_rows", 0)
        ctx.lake.register_views()  # in a metastore this (re)creates documents_quality for SQL users

    @staticmethod
    def _with_buckets(ctx: StageContext, rows: DataFrame, settings_hash: str, buckets: int) -> DataFrame:
        """Nemotron-CC style: bucket = quality_score percentile over the whole corpus scored with these settings.

        Percentiles move as the corpus grows, so earlier rows whose bucket changes are rewritten in the same commit.
        """
        earlier = (ctx.lake.read(QUALITY.name).where(F.col("settings_hash") == settings_hash)
                   .join(rows.select("doc_id"), "doc_id", "left_anti"))
        scores = earlier.select("quality_score").unionByName(rows.select("quality_score")).dropna()
        bounds = scores.approxQuantile("quality_score", [i / buckets for i in range(1, buckets)], 1e-4)
        if not bounds:
            return rows
        bucket = percentile_bucket(F.col("quality_score"), bounds)
        moved = (earlier.withColumn("new_bucket", bucket)
                 .where(~F.col("new_bucket").eqNullSafe(F.col("quality_bucket")))
                 .withColumn("quality_bucket", F.col("new_bucket")).drop("new_bucket"))
        moved = moved.localCheckpoint(eager=True)  # frozen before the commit rewrites the table it reads
        ctx.count("rebucketed_earlier_docs", moved.count())
        return rows.withColumn("quality_bucket", bucket).unionByName(moved.select(*rows.columns))

    @staticmethod
    def _count(ctx: StageContext, rows: DataFrame) -> None:
        new = rows.where(F.col("run_id") == ctx.run.run_id)
        stats = new.agg(
            F.sum(F.col("keep").cast("long")).alias("kept"), F.sum((~F.col("keep")).cast("long")).alias("dropped"),
            F.sum("pii_emails").alias("emails"), F.sum("pii_ips").alias("ips"),
            F.sum(F.col("transformed_text").isNotNull().cast("long")).alias("transformed"),
        ).first()
        ctx.count("kept", stats["kept"] or 0)
        ctx.count("dropped", stats["dropped"] or 0)
        ctx.count("transformed_docs", stats["transformed"] or 0)
        if ctx.config.quality.pii:
            ctx.count("pii_emails_anonymised", stats["emails"] or 0)
            ctx.count("pii_ips_anonymised", stats["ips"] or 0)
        # One counter per reason; a document failing three rules counts under all three.
        for row in new.select(F.explode("drop_reasons").alias("reason")).groupBy("reason").count().collect():
            prefix = "" if row.reason.startswith("failed_") else "dropped_"
            ctx.count(f"{prefix}{row.reason}", row["count"])
        for classifier in ctx.config.quality.classifiers:
            scored = new.where(F.col("scores").getItem(classifier.name).isNotNull()).count()
            ctx.count(f"scored_{classifier.name}", scored)


def percentile_bucket(score: Column, bounds: list[float]) -> Column:
    """How many percentile bounds the score reaches: 0 .. len(bounds); null stays null."""
    reached = sum((score >= bound).cast("int") for bound in bounds)
    return F.when(score.isNull(), F.lit(None).cast("int")).otherwise(reached)


def build_settings(cfg: QualityConfig) -> QualitySettings:
    """Resolve thresholds and classifiers on the driver, so a bad file fails before any task starts."""
    try:
        thresholds = load_filter_thresholds(cfg.filters_file)
    except (OSError, ValueError) as err:
        raise InputError(f"quality.filters_file: {err}") from None
    classifiers = tuple(Classifier(**c.model_dump()) for c in cfg.classifiers)
    for classifier in classifiers:
        _check_model(classifier)
    primary = cfg.primary_classifier()
    return QualitySettings(thresholds, cfg.pii, cfg.c4_line_filter, classifiers, primary.name if primary else None)


def _check_model(classifier: Classifier) -> None:
    if "://" in classifier.path:  # remote (dbfs:/, s3://): the executors' loaders report problems
        return
    try:
        if classifier.kind == "fasttext":
            check_fasttext_file(classifier.path)
        elif not os.path.isfile(os.path.join(classifier.path, "config.json")):
            raise ModelLoadError(f"Hugging Face classifier {classifier.path}: not a model directory (no config.json)")
    except ModelLoadError as err:
        raise InputError(f"quality classifier {classifier.name!r}: {err}") from None


def settings_fingerprint(cfg: QualityConfig, settings: QualitySettings) -> str:
    """Hash of everything that shapes a row: thresholds, transformations, classifiers and their files' bytes."""
    digest = xxhash.xxh3_128()
    described = {"thresholds": settings.thresholds, "pii": cfg.pii, "c4_line_filter": cfg.c4_line_filter,
                 "classifiers": [c.model_dump() for c in cfg.classifiers], "primary": settings.primary}
    digest.update(json.dumps(described, sort_keys=True).encode())
    for classifier in cfg.classifiers:
        _hash_files(digest, classifier.path)
    return digest.hexdigest()


def _hash_files(digest, path: str) -> None:
    files = [path] if os.path.isfile(path) else sorted(
        os.path.join(d, f) for d, _, names in os.walk(path) for f in names) if os.path.isdir(path) else []
    for name in files:
        digest.update(os.path.relpath(name, path).encode())
        with open(name, "rb") as handle:
            while chunk := handle.read(1 << 24):
                digest.update(chunk)


def score(docs: DataFrame, settings: QualitySettings) -> DataFrame:
    schema = to_arrow_schema(_SCORED)

    def task(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            rows = quality_rows(batch.column("doc_id").to_pylist(), batch.column("text").to_pylist(), settings)
            yield pa.RecordBatch.from_pylist(rows, schema=schema)

    return docs.mapInArrow(task, _SCORED)


if __name__ == "__main__":  # spark-submit jobs/quality.py --config conf.yaml [--set k=v]
    from refinery.jobs.main import stage_main

    stage_main("quality")
