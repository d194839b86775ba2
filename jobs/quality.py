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
from refinery.jobs.config import QualityConfig, StorageConfig
from refinery.jobs.ledger import kill_point, worker_kill_once
from refinery.jobs.progress import spark_progress
from refinery.jobs.registry import stage
from refinery.schemas.tables import DOCUMENTS, QUALITY
from refinery.udfs import fs
from refinery.udfs.quality.classifier import FASTTEXT_MAGIC, ModelLoadError, check_fasttext_file
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
        settings = build_settings(cfg, ctx.config.storage)
        settings_hash = settings_fingerprint(cfg, settings)
        docs = ctx.changes(DOCUMENTS.name, settings_hash).select("doc_id", "text")
        done = ctx.read(QUALITY.name).where(F.col("settings_hash") == settings_hash).select("doc_id")
        with spark_progress(ctx.spark, "quality: scoring documents", ctx.show_progress):
            # Staged, not cached: Delta re-computes cached plans of a table after it is written, and a killed
            # run's scores are reused by the next (same settings and documents version).
            scored, resumed = ctx.staging.snapshot(
                "scored", score(ctx.spread(docs.join(done, "doc_id", "left_anti")), settings),
                ctx.staging_key(settings_hash))
            ctx.run.rows_in = scored.count()
        if resumed:
            ctx.count("resumed_rows", ctx.run.rows_in)
        kill_point("quality.scored")
        ctx.count("docs_scored", ctx.run.rows_in)
        if not ctx.run.rows_in:
            ctx.staging.drop("scored")
            return
        rows = (scored.withColumn("quality_bucket", F.lit(None).cast("int"))
                .withColumn("settings_hash", F.lit(settings_hash)).withColumn("run_id", F.lit(ctx.run.run_id)))
        rows = rows.select(*QUALITY.schema.fieldNames())
        if settings.primary and cfg.bucket.enabled:
            # Frozen before the commit rewrites the table the re-bucketed rows are read from; keyed by run, never
            # resumed. Without buckets the rows come from staging alone, which the commit does not touch.
            rows = ctx.staging.cut("rows", self._with_buckets(ctx, rows, settings_hash, cfg.bucket.buckets))
            ctx.count("rebucketed_earlier_docs", rows.where(F.col("run_id") != ctx.run.run_id).count())
        self._count(ctx, rows)
        suite = {"buckets": cfg.bucket.buckets if settings.primary and cfg.bucket.enabled else None,
                 "probability_scores": all(c.kind == "fasttext" for c in settings.classifiers)}
        written = ctx.commit(QUALITY.name, rows, update_matched=True, suite_settings=suite)
        ctx.run.rows_out = written.get("num_inserted_rows", 0) + written.get("num_updated_rows", 0)
        ctx.staging.drop("scored")
        ctx.lake.register_views()  # in a metastore this (re)creates documents_quality for SQL users

    @staticmethod
    def _with_buckets(ctx: StageContext, rows: DataFrame, settings_hash: str, buckets: int) -> DataFrame:
        """Nemotron-CC style: bucket = quality_score percentile over the whole corpus scored with these settings.

        Percentiles move as the corpus grows, so earlier rows whose bucket changes are rewritten in the same commit.
        """
        earlier = (ctx.read(QUALITY.name).where(F.col("settings_hash") == settings_hash)
                   .join(rows.select("doc_id"), "doc_id", "left_anti"))
        scores = earlier.select("quality_score").unionByName(rows.select("quality_score")).dropna()
        bounds = scores.approxQuantile("quality_score", [i / buckets for i in range(1, buckets)], 1e-4)
        if not bounds:
            return rows
        bucket = percentile_bucket(F.col("quality_score"), bounds)
        moved = (earlier.withColumn("new_bucket", bucket)
                 .where(~F.col("new_bucket").eqNullSafe(F.col("quality_bucket")))
                 .withColumn("quality_bucket", F.col("new_bucket")).drop("new_bucket"))
        return rows.withColumn("quality_bucket", bucket).unionByName(moved.select(*rows.columns))

    @staticmethod
    def _count(ctx: StageContext, rows: DataFrame) -> None:
        # One Spark job for every counter: the reasons are exploded (outer: a kept document gives one null reason),
        # and the per-document sums are taken from each document's first row only, so they count it once.
        new = rows.where(F.col("run_id") == ctx.run.run_id).select(
            "*", F.posexplode_outer("drop_reasons").alias("_reason_pos", "_reason"))
        first = F.coalesce(F.col("_reason_pos"), F.lit(0)) == 0
        once = lambda c: F.sum(F.when(first, c))  # noqa: E731
        classifiers = ctx.config.quality.classifiers
        groups = new.groupBy(F.col("_reason").alias("reason")).agg(
            F.count(F.lit(1)).alias("n"), once(F.col("keep").cast("long")).alias("kept"),
            once((~F.col("keep")).cast("long")).alias("dropped"), once(F.col("pii_emails")).alias("emails"),
            once(F.col("pii_ips")).alias("ips"),
            once(F.col("transformed_text").isNotNull().cast("long")).alias("transformed"),
            *(once(F.col("scores").getItem(c.name).isNotNull().cast("long")).alias(f"scored_{i}")
              for i, c in enumerate(classifiers)),
        ).collect()
        total = lambda key: sum(row[key] or 0 for row in groups)  # noqa: E731
        ctx.count("kept", total("kept"))
        ctx.count("dropped", total("dropped"))
        ctx.count("transformed_docs", total("transformed"))
        if ctx.config.quality.pii:
            ctx.count("pii_emails_anonymised", total("emails"))
            ctx.count("pii_ips_anonymised", total("ips"))
        # One counter per reason; a document failing three rules counts under all three.
        for row in groups:
            if row.reason is not None:
                prefix = "" if row.reason.startswith("failed_") else "dropped_"
                ctx.count(f"{prefix}{row.reason}", row["n"])
        for i, classifier in enumerate(classifiers):
            ctx.count(f"scored_{classifier.name}", total(f"scored_{i}"))


def percentile_bucket(score: Column, bounds: list[float]) -> Column:
    """How many percentile bounds the score reaches: 0 .. len(bounds); null stays null."""
    reached = sum((score >= bound).cast("int") for bound in bounds)
    return F.when(score.isNull(), F.lit(None).cast("int")).otherwise(reached)


def build_settings(cfg: QualityConfig, storage: StorageConfig | None = None) -> QualitySettings:
    """Resolve thresholds and classifiers on the driver, so a bad file fails before any task starts."""
    try:
        thresholds = load_filter_thresholds(cfg.filters_file)
    except (OSError, ValueError) as err:
        raise InputError(f"quality.filters_file: {err}") from None
    classifiers = tuple(Classifier(**c.model_dump()) for c in cfg.classifiers)
    for classifier in classifiers:
        _check_model(classifier)
    primary = cfg.primary_classifier()
    return QualitySettings(thresholds, cfg.pii, cfg.c4_line_filter, classifiers, primary.name if primary else None,
                           storage.fs_options if storage else {})


def _check_model(classifier: Classifier) -> None:
    if fs.is_remote(classifier.path):  # s3://, gs://, ...: checked here through fsspec, copied by each executor
        _check_remote_model(classifier)
        return
    try:
        if classifier.kind == "fasttext":
            check_fasttext_file(classifier.path)
        elif not os.path.isfile(os.path.join(classifier.path, "config.json")):
            raise ModelLoadError(f"Hugging Face classifier {classifier.path}: not a model directory (no config.json)")
    except ModelLoadError as err:
        raise InputError(f"quality classifier {classifier.name!r}: {err}") from None


def _check_remote_model(classifier: Classifier) -> None:
    path = classifier.path
    where = f"quality classifier {classifier.name!r}: {path}"
    try:
        if classifier.kind == "hf":
            if not fs.exists(f"{path.rstrip('/')}/config.json"):
                raise InputError(f"{where}: not a model directory (no config.json); set quality.classifiers[].path")
            return
        with fs.open_binary(path) as handle:
            head = handle.read(4)
    except OSError as err:
        raise InputError(f"{where}: cannot be read ({err}); check the URI and storage.fs_options") from None
    if len(head) < 4 or int.from_bytes(head, "little") != FASTTEXT_MAGIC:
        raise InputError(f"{where}: not a fastText .bin/.ftz file (bad header); re-upload or re-train it")


def settings_fingerprint(cfg: QualityConfig, settings: QualitySettings) -> str:
    """Hash of everything that shapes a row: thresholds, transformations, classifiers and their files' bytes."""
    digest = xxhash.xxh3_128()
    described = {"thresholds": settings.thresholds, "pii": cfg.pii, "c4_line_filter": cfg.c4_line_filter,
                 "classifiers": [c.model_dump() for c in cfg.classifiers], "primary": settings.primary}
    digest.update(json.dumps(described, sort_keys=True).encode())
    for classifier in cfg.classifiers:
        if fs.is_remote(classifier.path):  # the store's etag/size/mtime: a replaced model re-scores
            digest.update(fs.fingerprint(classifier.path).encode())
        else:
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
        fs.configure(settings.fs_options)
        for batch in batches:
            worker_kill_once("quality.score")
            rows = quality_rows(batch.column("doc_id").to_pylist(), batch.column("text").to_pylist(), settings)
            yield pa.RecordBatch.from_pylist(rows, schema=schema)

    return docs.mapInArrow(task, _SCORED)


if __name__ == "__main__":  # spark-submit jobs/quality.py --config conf.yaml [--set k=v]
    from refinery.jobs.main import stage_main

    stage_main("quality")
