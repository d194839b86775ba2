"""Label stage: curated documents -> `taxonomy`, the Essential-Web (EAI) taxonomy codes of every document (compact
EAI-Distill format, or the two-pass teacher format), parsed strictly; committed in groups, resumable."""

from __future__ import annotations

import csv
import io
import logging
import math
from importlib import resources

from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import IntegerType, LongType, StringType, StructField, StructType

from refinery.jobs.base import StageContext, StageFailed
from refinery.jobs.config import ConfigError, LabelConfig, LlmConfig
from refinery.jobs.registry import stage
from refinery.jobs.rewrite import _preflight, engine_spec, staged_generations
from refinery.jobs.seeds import curated_documents
from refinery.jobs.session import default_parallelism
from refinery.schemas.tables import CONTAMINATION, DOCUMENTS, DUPLICATES, EAI_LABELS, QUALITY, REFINED, TAXONOMY
from refinery.udfs.label.taxonomy import STATUSES
from refinery.udfs.label.udf import (
    LABELED_COLUMNS,
    LabelPromptError,
    LabelSettings,
    label_documents,
    load_teacher_prompts,
)
from refinery.udfs.llm import EngineSpec

log = logging.getLogger("refinery")

_EXTRA = {"repeated_secondaries": IntegerType(), "worker": StringType(), "task_id": LongType(),
          "engine_loads": LongType()}
_LABELED = StructType([StructField(c, _EXTRA[c]) if c in _EXTRA else TAXONOMY.schema[c] for c in LABELED_COLUMNS])
_PARSE_OUTCOMES = tuple(s for s in STATUSES if s != "ok")


def label_settings(cfg: LabelConfig, llm: LlmConfig) -> LabelSettings:
    teacher = None
    if cfg.mode == "teacher":
        try:
            teacher = load_teacher_prompts(cfg.teacher_prompts)
        except LabelPromptError as err:
            raise ConfigError(f"label.teacher_prompts: {err}") from None
    default_tokens = 2048 if cfg.mode == "teacher" else 100
    return LabelSettings(mode=cfg.mode, system_prompt=cfg.system_prompt, teacher=teacher,
                         max_output_tokens=cfg.max_output_tokens or default_tokens, temperature=cfg.temperature,
                         top_p=llm.sampling.top_p if cfg.temperature > 0 else 1.0, seed=llm.sampling.seed,
                         max_chars=cfg.max_chars)


def eai_label_rows() -> list[tuple[str, str, str]]:
    text = resources.files("refinery.conf").joinpath("taxonomy/eai_labels.csv").read_text()
    return [(r["category"], r["code"], r["name"]) for r in csv.DictReader(io.StringIO(text))]


@stage(after="refine", llm=True)
class LabelStage:
    name = "label"
    inputs = (DOCUMENTS.name, QUALITY.name, DUPLICATES.name, CONTAMINATION.name, REFINED.name, TAXONOMY.name)
    outputs = (TAXONOMY.name, EAI_LABELS.name)

    def execute(self, ctx: StageContext) -> None:
        cfg, llm = ctx.config.label, ctx.config.llm
        if not llm.model:
            raise ConfigError("config key llm.model: not set; the label stage needs a model (local path or hub id), "
                              "e.g. --set llm.model=/models/eai-distill-0.5b")
        settings = label_settings(cfg, llm)
        spec = engine_spec(llm)
        _preflight(spec)
        self._commit_labels(ctx)
        settings_hash = settings.settings_hash(llm.label)
        docs = curated_documents(ctx, self.name, cfg.require)
        if cfg.max_docs is not None:
            docs = docs.orderBy(F.xxhash64("doc_id")).limit(cfg.max_docs)
        # Staged, not cached (nor executor-local): the plan reads `taxonomy`, which this stage writes.
        pending = ctx.staging.cut("pending", docs.select("doc_id", "text", "url").join(
            self._done(ctx, cfg, settings_hash), "doc_id", "left_anti"))
        ctx.run.rows_in = pending.count()
        ctx.count("documents_to_label", ctx.run.rows_in)
        if ctx.run.rows_in:
            self._label_and_commit(ctx, cfg, llm, spec, settings, settings_hash, pending)
        ctx.staging.drop("generations")

    @staticmethod
    def _commit_labels(ctx: StageContext) -> None:
        """The packaged label names into `eai_labels`, when they differ from what the table holds (91 small rows)."""
        shipped = eai_label_rows()
        if set(shipped) == {tuple(r) for r in ctx.lake.read(EAI_LABELS.name).collect()}:
            return
        labels = ctx.spark.createDataFrame(shipped, EAI_LABELS.schema)
        ctx.commit(EAI_LABELS.name, labels, update_matched=True, delete_unmatched_where="true")

    @staticmethod
    def _done(ctx: StageContext, cfg: LabelConfig, settings_hash: str) -> DataFrame:
        done = ctx.lake.read(TAXONOMY.name).where(F.col("settings_hash") == settings_hash)
        if cfg.retry_failed:
            done = done.where(~F.col("status").startswith("failed_"))
        return done.select("doc_id")

    def _label_and_commit(self, ctx: StageContext, cfg: LabelConfig, llm: LlmConfig, spec: EngineSpec,
                          settings: LabelSettings, settings_hash: str, pending: DataFrame) -> None:
        groups = math.ceil(ctx.run.rows_in / cfg.commit_every)
        pending = pending.withColumn("commit_group", F.pmod(F.xxhash64("doc_id"), F.lit(groups)))
        partitions = cfg.partitions or default_parallelism(ctx.spark)
        failed = invalid = 0
        workers: set[str] = set()
        for group in range(groups):
            rows = pending.where(F.col("commit_group") == group).drop("commit_group")
            labeled = staged_generations(ctx, ctx.staging_key(settings_hash), group, rows, "doc_id",
                                         lambda r: r.repartition(partitions).mapInPandas(
                                             lambda frames: label_documents(frames, spec, settings), _LABELED))
            group_failed, group_invalid = self._count(ctx, labeled, workers)
            failed, invalid = failed + group_failed, invalid + group_invalid
            table = (labeled.withColumn("mode", F.lit(settings.mode))
                     .withColumn("prompt_version", F.lit(settings.prompt_version()))
                     .withColumn("model", F.lit(llm.label)).withColumn("engine", F.lit(llm.engine))
                     .withColumn("settings_hash", F.lit(settings_hash)).withColumn("run_id", F.lit(ctx.run.run_id))
                     .select(*TAXONOMY.schema.fieldNames()))
            written = ctx.commit(TAXONOMY.name, table, update_matched=True)
            ctx.run.rows_out += written.get("num_inserted_rows", 0) + written.get("num_updated_rows", 0)
            ctx.count("commit_groups", 1)
        ctx.count("llm_workers", len(workers))
        rows_in = ctx.run.rows_in
        if failed > cfg.max_failed_fraction * rows_in:
            raise StageFailed(f"label: {failed} of {rows_in} documents failed in the engine (over label."
                              f"max_failed_fraction={cfg.max_failed_fraction}); the rows were committed with their "
                              "reasons (SELECT status, error FROM taxonomy WHERE status LIKE 'failed_%')")
        if invalid > cfg.max_invalid_fraction * rows_in:
            raise StageFailed(f"label: {invalid} of {rows_in} outputs did not parse (over label.max_invalid_fraction="
                              f"{cfg.max_invalid_fraction}); is llm.model a taxonomy labeller for label.mode="
                              f"{cfg.mode}? The raw outputs were committed (SELECT status, error, raw_output FROM "
                              "taxonomy WHERE status <> 'ok')")

    @staticmethod
    def _count(ctx: StageContext, labeled: DataFrame, workers: set[str]) -> tuple[int, int]:
        """Ledger counters of one group; returns (engine failures, parse outcomes other than ok)."""
        failed = invalid = 0
        for row in labeled.groupBy("status").count().collect():
            if row.status.startswith("failed_"):
                ctx.count(row.status, row["count"])
                failed += row["count"]
            else:
                ctx.count(f"label_{row.status}", row["count"])
                invalid += row["count"] if row.status in _PARSE_OUTCOMES else 0
        totals = labeled.agg(F.sum("prompt_tokens"), F.sum("output_tokens"), F.sum("generation_ms"),
                             F.sum("repeated_secondaries"), F.count_if("subsampled"),
                             F.collect_set("worker"), F.max("engine_loads")).first()
        names = ("prompt_tokens", "output_tokens", "generation_ms", "secondary_repeats_primary", "documents_subsampled")
        for name, value in zip(names, totals[:5], strict=True):
            ctx.count(name, value or 0)
        workers.update(totals[5])
        ctx.run.counters["engine_loads"] = max(ctx.run.counters["engine_loads"], totals[6] or 0)
        return failed, invalid


if __name__ == "__main__":  # spark-submit jobs/label.py --config conf.yaml [--set k=v]
    from refinery.jobs.main import stage_main

    stage_main("label")
