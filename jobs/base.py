"""The stage template: ledger row, input versions, validate-then-MERGE commits, counters."""

from __future__ import annotations

import json
import logging
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from pyspark.sql import DataFrame, SparkSession

from refinery.schemas.tables import RUNS, TABLES

from .config import PipelineConfig
from .redact import redact
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
    status: str = "failed"
    input_versions: dict[str, int] = field(default_factory=dict)
    output_versions: dict[str, int] = field(default_factory=dict)
    rows_in: int = 0
    rows_out: int = 0
    counters: Counter = field(default_factory=Counter)
    validation: str = "skipped"
    error: str | None = None

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
        """MERGE an already validated DataFrame and record the table's new version in the ledger."""
        metrics = self.lake.merge(table, df, update_matched=update_matched,
                                  delete_unmatched_where=delete_unmatched_where)
        self.run.output_versions[table] = self.lake.version(table)
        return metrics

    def validate(self, table: str, df: DataFrame, suite_settings: dict | None = None) -> None:
        """Run the table's suite (stages writing two tables validate both before committing either)."""
        if not self.config.validation.enabled:
            return
        try:
            validate(table, df, suite_settings, self.config.validation.sample_values)
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
    """Run one stage and always leave one row for it in `runs`, succeeded or failed."""
    lake = Lakehouse(spark, config.storage)
    for name in {RUNS.name, *stage.outputs}:
        lake.create(TABLES[name])
    ctx = StageContext(spark, config, lake, RunRecord(stage=stage.name), show_progress)
    ctx.run.input_versions = {t: v for t in stage.inputs if (v := lake.version(t)) is not None}
    try:
        stage.execute(ctx)
        ctx.run.status = "succeeded"
    except BaseException as err:
        ctx.run.error = f"{type(err).__name__}: {err}"
        raise
    finally:
        ctx.run.ended_at = datetime.now(UTC)
        _write_run(ctx, config)
        log.info("stage %s %s in %.1fs: %s", stage.name, ctx.run.status, ctx.run.seconds, dict(ctx.run.counters))
    return ctx.run


def _write_run(ctx: StageContext, config: PipelineConfig) -> None:
    run = ctx.run
    row = (
        run.run_id, run.stage, run.status, run.started_at, run.ended_at, run.input_versions,
        run.output_versions, run.rows_in, run.rows_out, dict(run.counters), run.rows_out / run.seconds,
        run.validation, run.error, json.dumps(redact(config.model_dump(mode="json")), sort_keys=True),
        ctx.spark.sparkContext.defaultParallelism,
    )
    df = ctx.spark.createDataFrame([row], RUNS.schema)
    if config.validation.enabled:
        validate(RUNS.name, df, sample_values=config.validation.sample_values)
    ctx.lake.append(RUNS.name, df)

