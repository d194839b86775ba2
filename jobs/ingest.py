"""Ingest stage: WARC files → `documents` (+ the `ingest_files` ledger). One WARC per Spark task."""

from __future__ import annotations

import glob
import os
import sys
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime

import pyarrow as pa
from pyspark import StorageLevel
from pyspark.errors import AnalysisException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.pandas.types import to_arrow_schema
from pyspark.sql.types import LongType, StringType, StructField, StructType

from refinery.jobs.base import InputError, StageContext, StageFailed
from refinery.jobs.config import IngestConfig
from refinery.jobs.ledger import kill_point
from refinery.jobs.progress import spark_progress
from refinery.jobs.registry import stage
from refinery.schemas.tables import COUNTERS, DOCUMENTS, INGEST_FILES
from refinery.udfs import fs
from refinery.udfs.ingest.warc import FileOutcome, IngestSettings, read_warc_documents

_DOC_FIELDS = [f for f in DOCUMENTS.schema.fields if f.name != "run_id"]
# One schema for both kinds of task output: document rows, and one summary row per file.
TASK_OUTPUT = StructType([
    StructField("kind", StringType(), False),
    *[StructField(f.name, f.dataType, True) for f in _DOC_FIELDS],
    StructField("file_status", StringType()),
    StructField("file_error", StringType()),
    StructField("file_counters", COUNTERS),
    StructField("file_bytes", LongType()),
])
_BATCH_ROWS = 64


def list_warc_files(spark: SparkSession, pattern: str) -> list[tuple[str, int]]:
    """(path, size) of every file matching the comma-separated globs; local or any Hadoop URI."""
    found: dict[str, int] = {}
    for part in (p.strip() for p in pattern.split(",") if p.strip()):
        if "://" not in part or part.startswith("file://"):
            for path in glob.glob(os.path.expanduser(part.removeprefix("file://")), recursive=True):
                if os.path.isfile(path):
                    found[os.path.abspath(path)] = os.path.getsize(path)
        else:
            found.update(_hadoop_listing(spark, part))
    return sorted(found.items())


def _hadoop_listing(spark: SparkSession, pattern: str) -> dict[str, int]:
    """Files matching a Hadoop glob, listed by Spark's file index: works on any Hadoop FS and over Spark
    Connect (no JVM gateway); the binaryFile source reads no content unless the `content` column is selected."""
    try:
        listing = spark.read.format("binaryFile").load(pattern).select("path", "length").collect()
    except AnalysisException as err:
        if "PATH_NOT_FOUND" in str(err) or "Path does not exist" in str(err):
            return {}
        raise
    return {row.path: int(row.length) for row in listing}


def read_files(spark: SparkSession, files: list[tuple[str, int]], settings: IngestSettings,
               fs_options: dict | None = None) -> DataFrame:
    """Documents and per-file summaries; task i reads file i, so files spread across executors."""
    arrow_schema = to_arrow_schema(TASK_OUTPUT, timezone="UTC")

    def task(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        fs.configure(fs_options)  # URIs are opened with fsspec here, on the executor (storage.fs_options)
        for batch in batches:
            for index in batch.column("id").to_pylist():
                yield from _file_batches(*files[index], settings, arrow_schema)

    ids = spark.range(0, len(files), 1, numPartitions=len(files))
    return ids.mapInArrow(task, TASK_OUTPUT)


def _file_batches(path: str, size: int, settings: IngestSettings, schema: pa.Schema) -> Iterator[pa.RecordBatch]:
    outcome = FileOutcome(path)
    rows: list[dict] = []
    try:
        for doc in read_warc_documents(path, settings, outcome):
            kill_point("ingest.extract")
            rows.append({"kind": "doc", **doc})
            if len(rows) >= _BATCH_ROWS:
                yield pa.RecordBatch.from_pylist(rows, schema=schema)
                rows = []
    except Exception as err:  # noqa: BLE001 - an unexpected failure on one file must not fail the job
        outcome.status = "partial" if outcome.counters["records"] else "failed"
        outcome.error = f"WARC file {path}: {type(err).__name__}: {err}"
        outcome.counters["failed_unexpected_error"] += 1
    rows.append({"kind": "file", "warc_path": path, "file_status": outcome.status, "file_error": outcome.error,
                 "file_counters": list(outcome.counters.items()), "file_bytes": size})
    yield pa.RecordBatch.from_pylist(rows, schema=schema)


@stage(after=None)
class IngestStage:
    name = "ingest"
    inputs = (INGEST_FILES.name,)
    outputs = (DOCUMENTS.name, INGEST_FILES.name)

    def __init__(self, input_glob: str | None = None, force: bool | None = None):
        self.input_glob = input_glob
        self.force = force

    def execute(self, ctx: StageContext) -> None:
        cfg = ctx.config.ingest
        pattern = self.input_glob or cfg.input
        force = cfg.force if self.force is None else self.force
        files = list_warc_files(ctx.spark, pattern)
        if not files:
            where = "" if "://" in pattern or os.path.isabs(pattern) else f" (from the working directory {os.getcwd()})"
            # The default names the sample WARCs of a source checkout; an installed wheel does not ship them.
            hint = " (the default ingest.input is the checkout's sample)" if pattern == IngestConfig().input else ""
            raise InputError(f"no WARC files match {pattern!r}{where}{hint}; pass --input 'path/to/*.warc.gz' "
                             "(or set ingest.input)")
        files = self._not_yet_ingested(ctx, files, force)
        if not files:
            return
        settings = IngestSettings(cfg.extractor, cfg.timeout_s, cfg.max_html_bytes, cfg.min_text_chars, cfg.crawl,
                                  cfg.max_record_bytes, cfg.isolate_extraction)
        results = read_files(ctx.spark, files, settings, ctx.config.storage.fs_options)
        results = results.persist(StorageLevel.MEMORY_AND_DISK)
        try:
            with (ctx.step("extract WARCs"),
                  spark_progress(ctx.spark, f"ingest: extracting {len(files)} WARC file(s)", ctx.show_progress)):
                results.count()  # one pass over the WARCs; validation and MERGE reuse the cached rows
            # One partition per file suits reading; validating and merging a few rows per file does not (every
            # expectation would be a job of as many tasks as files), so the cached rows are regrouped, unshuffled.
            regrouped = results.coalesce(int(ctx.spark.conf.get("spark.sql.shuffle.partitions")))
            self._commit(ctx, regrouped, len(files))
        finally:
            results.unpersist()

    def _not_yet_ingested(self, ctx: StageContext, files: list[tuple[str, int]], force: bool):
        if force:
            return files
        # `failed` and `failed_io` files are read again: a file that could not be opened may be readable now, and
        # a read error says nothing about the rest of the file. Documents kept before it MERGE as already present.
        seen = {r.warc_path for r in ctx.read(INGEST_FILES.name)
                .where(F.col("status").isin("done", "partial")).select("warc_path").collect()}
        todo = [f for f in files if f[0] not in seen]
        ctx.count("skipped_already_ingested", len(files) - len(todo))
        return todo

    def _commit(self, ctx: StageContext, results: DataFrame, n_files: int) -> None:
        run_id = ctx.run.run_id
        docs = (results.where("kind = 'doc'").select(*[f.name for f in _DOC_FIELDS])
                .withColumn("run_id", F.lit(run_id)).dropDuplicates(["doc_id"]))
        files = results.where("kind = 'file'").select(
            "warc_path", F.col("file_status").alias("status"), "file_bytes",
            F.coalesce(F.col("file_counters")["records"], F.lit(0)).alias("records"),
            F.coalesce(F.col("file_counters")["responses"], F.lit(0)).alias("responses"),
            F.coalesce(F.col("file_counters")["documents"], F.lit(0)).alias("documents"),
            F.col("file_counters").alias("counters"), F.col("file_error").alias("error"),
            F.lit(run_id).alias("run_id"), F.lit(datetime.now(UTC)).alias("ingested_at"),
        )
        summaries = files.select("status", "counters", "error").collect()
        totals: Counter = Counter()
        for row in summaries:
            totals.update(row.counters or {})
            totals[f"files_{row.status}"] += 1
        for name, n in totals.items():
            ctx.count(name, n)
        ctx.run.rows_in = totals["records"]
        suite = {"min_text_chars": ctx.config.ingest.min_text_chars}
        inserted = ctx.commit(DOCUMENTS.name, docs, suite_settings=suite)["num_inserted_rows"]
        ctx.count("dropped_already_present", totals["documents"] - inserted)
        ctx.run.rows_out = inserted
        ctx.commit(INGEST_FILES.name, files, update_matched=True)
        for row in summaries:
            if row.error:
                print(f"warning: {row.error}", file=sys.stderr)
        failed = totals["files_failed"] + totals["files_failed_io"]
        if failed > ctx.config.ingest.max_failed_file_fraction * n_files:
            raise StageFailed(f"{failed} of {n_files} WARC files could not be read "
                              f"(ingest.max_failed_file_fraction={ctx.config.ingest.max_failed_file_fraction}); "
                              "see ingest_files.error for each")


if __name__ == "__main__":  # spark-submit jobs/ingest.py --config conf.yaml [--input GLOB] [--set k=v]
    from refinery.jobs.main import stage_main

    stage_main("ingest")
