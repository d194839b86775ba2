"""The stage template: ledger row, input versions, validate-then-MERGE commits, counters."""

from __future__ import annotations

import json
import logging
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

import pandas as pd
import xxhash
from pyspark.errors import AnalysisException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from refinery.schemas.tables import RUNS, TABLES

from .config import PipelineConfig
from .describe import job_step
from .ledger import commit_tag, committed_version, forget_stage_runs, kill_point, lake_lock, stage_runs
from .redact import redact
from .session import default_parallelism
from .staging import Staging
from .storage import Lakehouse
from .validate import ValidationFailed, validate

log = logging.getLogger("refinery")


class InputError(ValueError):
    """An input (WARC glob, benchmark file) matched nothing usable; the message names it and the fix."""


class StageFailed(RuntimeError):
    """The stage ran but its outcome is not acceptable (e.g. too many failed inputs)."""


@dataclass
class RunRecord:
    stage: str
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    ended_at: datetime | None = None
    status: str = "running"
    input_versions: dict[str, int] = field(default_factory=dict)
    output_versions: dict[str, int] = field(default_factory=dict)
    rows_in: int = 0
    rows_out: int = 0
    counters: Counter = field(default_factory=Counter)
    validation: str = "skipped"
    error: str | None = None
    settings_digest: str | None = None
    parallelism: int | None = None  # the session's, measured once per run (a Spark job) for both ledger writes

    @property
    def seconds(self) -> float:
        end = self.ended_at or datetime.now(UTC)
        return max((end - self.started_at).total_seconds(), 1e-9)


@dataclass
class StageContext:
    spark: SparkSession
    config: PipelineConfig
    lake: Lakehouse
    run: RunRecord
    show_progress: bool = False
    outputs: tuple[str, ...] = ()

    _staging: Staging | None = None
    # One DataFrame per pinned table: Delta resolves a `versionAsOf` read to a snapshot each time it is asked,
    # and rebuilding a snapshot's file list is a few Spark jobs; the same DataFrame reuses the resolved one.
    _reads: dict[str, DataFrame] = field(default_factory=dict)

    @property
    def staging(self) -> Staging:
        if self._staging is None:
            self._staging = Staging(self.lake, self.run.stage, self.run.run_id)
        return self._staging

    def staging_key(self, *settings) -> str:
        """What staged rows depend on: the settings given and the versions of the tables the stage reads but does
        not write (its own outputs change as it commits, and re-committing staged rows is a no-op MERGE)."""
        upstream = {t: v for t, v in self.run.input_versions.items() if t not in self.outputs}
        return xxhash.xxh3_128_hexdigest(json.dumps([settings, upstream], sort_keys=True, default=str).encode())

    def read(self, table: str) -> DataFrame:
        """The table at the version this run pinned (and the ledger records): later commits, ours included, do
        not show. A table that is not among the stage's inputs is pinned on its first read."""
        if table in self._reads:
            return self._reads[table]
        version = self.run.input_versions.get(table)
        if version is None and (version := self.lake.version(table)) is not None:
            self.run.input_versions[table] = version
        df = self.lake.read(table, version)
        if version is not None:  # a table read before it exists is read again once it does
            self._reads[table] = df
        return df

    def changes(self, table: str, settings_digest: str) -> DataFrame:
        """The rows of `table` this stage has not processed with these settings: those inserted or updated after
        the watermark (the pinned version of the last succeeded run with the same digest) up to the pinned
        version, or the whole pinned snapshot when there is no watermark, the feed does not cover it, or
        storage.full_refresh is set. Stages still anti-join the result against their own table (cheap on
        few rows), so rows a failed run already committed are not done twice."""
        self.run.settings_digest = settings_digest
        snapshot = self.read(table)
        pinned = self.run.input_versions[table]
        since = None if self.config.storage.full_refresh else self._watermark(table, settings_digest)
        self.count(f"changes_only_{table}", 0)
        if since is None:
            return snapshot
        if since >= pinned:
            self.count(f"changes_only_{table}", 1)
            return snapshot.where(F.lit(False))
        try:
            rows = self.lake.changes(table, since, pinned)
        except AnalysisException as err:
            log.warning("%s: change feed after version %d unreadable (%s); reading the whole table", table, since,
                        str(err).splitlines()[0])
            return snapshot
        self.count(f"changes_only_{table}", 1)
        return rows.select(*snapshot.columns)

    def _watermark(self, table: str, digest: str) -> int | None:
        """Newest first: runs with this digest are skipped until a succeeded one (its pinned version is the
        watermark); a run with other settings that wrote anything in between voids it (it may have replaced rows)."""
        if not self.lake.exists(RUNS.name):
            return None
        for run in stage_runs(self.lake, self.run.stage):
            if run.settings_digest != digest:
                if run.output_versions:
                    return None
                continue
            if run.status == "succeeded" and table in (run.input_versions or {}):
                return int(run.input_versions[table])
        return None

    def spread(self, df: DataFrame) -> DataFrame:
        """df over four tasks per core, for a CPU-bound Python UDF. A table written with optimized writes (or
        compacted by OPTIMIZE) is a few large files, read as a few partitions: without this, 20,000 documents
        in two files are scored by two tasks, and a straggler leaves a core idle. Rows are independent, so only the
        grouping changes, never a result; the shuffle moves the text once, small beside the UDF's work on it."""
        return df.repartition(4 * self.parallelism)

    @property
    def parallelism(self) -> int:
        """The session's parallelism, measured once per run (a Spark job): the ledger rows and spread use it."""
        if self.run.parallelism is None:
            self.run.parallelism = default_parallelism(self.spark)
        return self.run.parallelism

    def step(self, name: str):
        """Name the Spark jobs started inside (`with ctx.step("scan"):`): Spark UI description and job tag."""
        return job_step(self.spark, self.run.stage, name)

    def count(self, name: str, n: int = 1) -> None:
        # Zeros are recorded too: "0 contaminated documents" is an audited fact, not a missing counter.
        self.run.counters[name] += int(n)

    def commit(self, table: str, df: DataFrame, update_matched: bool = False, suite_settings: dict | None = None,
               delete_unmatched_where: str | None = None) -> dict[str, int]:
        """Validate df with the table's suite, then MERGE it on the key; returns Delta's merge metrics."""
        self.validate(table, df, suite_settings)
        return self.merge(table, df, update_matched, delete_unmatched_where)

    def merge(self, table: str, df: DataFrame, update_matched: bool = False,
              delete_unmatched_where: str | None = None) -> dict[str, int]:
        """MERGE an already validated DataFrame and record the version this commit made in the ledger."""
        return self._write(table, "merge", lambda: self.lake.merge(
            table, df, update_matched=update_matched, delete_unmatched_where=delete_unmatched_where))

    def append(self, table: str, df: DataFrame) -> None:
        """Blind append of an already validated DataFrame whose keys the caller knows are not in the table yet
        (a MERGE would scan the whole table to find that out); records the version like merge."""
        self._write(table, "append", lambda: self.lake.append(table, df))

    def _write(self, table: str, verb: str, write):
        # The kill points keep their names for an append: the crash tests stop a run around any commit.
        kill_point(f"merge.before:{table}")
        with self.step(f"{verb} {table}"):
            metrics = write()
        kill_point(f"merge.after:{table}")
        version = committed_version(self.lake, table, self.run.run_id)
        if version is not None:  # None: the write changed nothing, so Delta made no commit
            self.run.output_versions[table] = version
        return metrics

    def validate(self, table: str, df: DataFrame, suite_settings: dict | None = None) -> None:
        """Run the table's suite (stages writing two tables validate both before committing either)."""
        if not self.config.validation.enabled:
            return
        try:
            with self.step(f"validate {table}"):
                validate(table, df, suite_settings, self.config.validation.sample_values,
                         self.config.validation.driver_rows)
        except ValidationFailed:
            self.run.validation = "failed"
            raise
        self.run.validation = "passed"


class Stage(Protocol):
    name: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]

    def execute(self, ctx: StageContext) -> None: ...


def run_stage(stage: Stage, spark: SparkSession, config: PipelineConfig, show_progress: bool = False) -> RunRecord:
    """Run one stage holding the lake lock; its `runs` row says `running` from the start and is completed
    (succeeded or failed) at the end. A driver killed in between leaves `running`, which the next run marks
    `abandoned`."""
    lake = Lakehouse(spark, config.storage)
    with lake_lock(lake, config, stage.name):
        with job_step(spark, stage.name, "prepare"):
            for name in {RUNS.name, *stage.outputs}:
                lake.create(TABLES[name])
            ctx = StageContext(spark, config, lake, RunRecord(stage=stage.name), show_progress,
                               tuple(stage.outputs))
            ctx.run.input_versions = {t: v for t in stage.inputs if (v := lake.version(t)) is not None}
            _write_run(ctx, config)
        kill_point(f"{stage.name}.start")
        # Every commit of the run carries its id, so the ledger reads its output versions from Delta's history.
        tag_key = "spark.databricks.delta.commitInfo.userMetadata"
        spark.conf.set(tag_key, commit_tag(ctx.run.run_id))
        try:
            with job_step(spark, stage.name):
                stage.execute(ctx)
            ctx.run.status = "succeeded"
        except BaseException as err:
            ctx.run.status = "failed"
            ctx.run.error = f"{type(err).__name__}: {err}"
            raise
        finally:
            spark.conf.unset(tag_key)
            if ctx._staging is not None:
                ctx._staging.drop_cuts()  # per-run lineage cuts go whatever the outcome; resumable staging stays
            kill_point(f"{stage.name}.end")
            ctx.run.ended_at = datetime.now(UTC)
            with job_step(spark, stage.name, "ledger"):
                _write_run(ctx, config)
            log.info("stage %s %s in %.1fs: %s", stage.name, ctx.run.status, ctx.run.seconds,
                     dict(ctx.run.counters))
    return ctx.run


def _write_run(ctx: StageContext, config: PipelineConfig) -> None:
    run = ctx.run
    row = (
        run.run_id, run.stage, run.status, run.started_at, run.ended_at, run.input_versions,
        run.output_versions, run.rows_in, run.rows_out, dict(run.counters), run.rows_out / run.seconds,
        run.validation, run.error, json.dumps(redact(config.model_dump(mode="json")), sort_keys=True),
        ctx.parallelism, run.settings_digest,
    )
    # The final row is validated, on the driver's one row: no Spark job (jobs/validate.py)
    if config.validation.enabled and run.status != "running":
        validate(RUNS.name, pd.DataFrame([row], columns=RUNS.schema.fieldNames()),
                 sample_values=config.validation.sample_values)
    df = ctx.spark.createDataFrame([row], RUNS.schema)
    if run.status == "running":  # a fresh run_id: a blind append, cheaper than a MERGE
        ctx.lake.append(RUNS.name, df)
        return
    # MERGE on run_id: the `running` row is replaced by the completed one, and a replayed write is a no-op. The
    # literal run_id lets Delta read only the file holding that row, not every run the ledger ever recorded.
    ctx.lake.merge(RUNS.name, df, update_matched=True, target_where=f"t.run_id = '{run.run_id}'")
    forget_stage_runs(ctx.lake, run.stage)

