"""Refine stage: curated documents → `refined`, ProX programs (doc level: keep/drop; chunk level: line edits)
written by an LLM, parsed as data and executed; committed in groups so a killed run loses at most one group."""

from __future__ import annotations

import dataclasses
import json
import logging
import math
from collections import Counter, defaultdict

import xxhash
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import LongType, MapType, StringType, StructField, StructType

from refinery.jobs.base import StageContext, StageFailed
from refinery.jobs.config import ConfigError, LlmConfig, RefineConfig
from refinery.jobs.registry import stage
from refinery.jobs.rewrite import RewriteStage, _preflight, engine_spec, staged_generations, tally_workers
from refinery.jobs.seeds import curated_documents
from refinery.jobs.session import default_parallelism
from refinery.schemas.tables import CONTAMINATION, DOCUMENTS, DUPLICATES, QUALITY, REFINED
from refinery.udfs.llm import Sampling
from refinery.udfs.refine.execute import ChunkRules
from refinery.udfs.refine.program import ProgramLimits
from refinery.udfs.refine.udf import (
    PROX_PROMPTS,
    PromptError,
    RefinePrompts,
    RefineSettings,
    load_teacher_prompts,
    refine_documents,
)

log = logging.getLogger("refinery")

_OUTPUT_ONLY = ("doc_model", "chunk_model", "engine", "prompt_version", "settings_hash", "run_id")
_ROWS = StructType([
    *[f for f in REFINED.schema.fields if f.name not in _OUTPUT_ONLY],
    StructField("counters", MapType(StringType(), LongType()), False),
    StructField("worker", StringType(), False), StructField("task_id", LongType(), False),
    StructField("engine_loads", LongType(), False),
])


def refine_settings(cfg: RefineConfig, llm: LlmConfig) -> tuple[RefineSettings, dict[str, str | None]]:
    """The UDF's settings and the model labels recorded per row; a bad prompt file or model is a ConfigError."""
    if cfg.mode == "teacher":
        try:
            prompts: RefinePrompts = load_teacher_prompts(cfg.teacher_prompts)
        except PromptError as err:
            raise ConfigError(f"refine.teacher_prompts: {err}") from None
    else:
        prompts = PROX_PROMPTS
    base = engine_spec(llm)
    # The ProX checkpoints were trained on the Llama-2 chat layout; a teacher uses its own chat template.
    base = dataclasses.replace(base, prompt_template="llama2" if cfg.mode == "prox" else "chat")
    specs, labels = {}, {}
    for level, override in (("doc", cfg.doc_model), ("chunk", cfg.chunk_model)):
        if level not in cfg.levels:
            specs[level], labels[level] = None, None
            continue
        model = override or llm.model
        if not model:
            raise ConfigError(f"config key llm.model: not set; the refine stage needs a model for its {level} "
                              f"level, e.g. --set llm.model=gair-prox/web-{level}-refining-lm "
                              f"(or refine.{level}_model)")
        # An override model brings its own tokenizer; llm.tokenizer belongs to llm.model.
        specs[level] = dataclasses.replace(base, model=model, tokenizer=None if override else base.tokenizer)
        labels[level] = override or llm.label
    settings = RefineSettings(
        levels=tuple(cfg.levels), doc_spec=specs["doc"], chunk_spec=specs["chunk"], prompts=prompts,
        doc_sampling=Sampling(max_tokens=cfg.doc.max_output_tokens, temperature=cfg.temperature, top_p=cfg.top_p,
                              seed=llm.sampling.seed),
        chunk_sampling=Sampling(max_tokens=cfg.chunk.max_output_tokens, temperature=cfg.temperature,
                                top_p=cfg.top_p, seed=llm.sampling.seed),
        doc_max_prompt_tokens=cfg.doc.max_prompt_tokens, chunk_max_tokens=cfg.chunk.max_tokens,
        unparsed_policy=cfg.doc.unparsed,
        limits=ProgramLimits(cfg.parser.max_calls, cfg.parser.max_line_chars, cfg.parser.max_string_chars),
        rules=ChunkRules(cfg.chunk.max_rejected_lines, cfg.chunk.min_kept_ratio, cfg.chunk.min_kept_words))
    return settings, labels


def settings_hash(settings: RefineSettings, labels: dict[str, str | None]) -> str:
    """Everything that changes a row's outcome; a change re-refines every document."""
    parts = {"labels": labels, "levels": settings.levels, "prompts": dataclasses.asdict(settings.prompts),
             "doc": [settings.doc_max_prompt_tokens, dataclasses.asdict(settings.doc_sampling)],
             "chunk": [settings.chunk_max_tokens, dataclasses.asdict(settings.chunk_sampling)],
             "template": (settings.doc_spec or settings.chunk_spec).prompt_template,
             "unparsed": settings.unparsed_policy, "limits": dataclasses.asdict(settings.limits),
             "rules": dataclasses.asdict(settings.rules)}
    return xxhash.xxh3_128_hexdigest(json.dumps(parts, sort_keys=True, default=str).encode())


@stage(after="dedup", llm=True)
class RefineStage:
    name = "refine"
    inputs = (DOCUMENTS.name, QUALITY.name, DUPLICATES.name, CONTAMINATION.name, REFINED.name)
    outputs = (REFINED.name,)

    def execute(self, ctx: StageContext) -> None:
        cfg, llm = ctx.config.refine, ctx.config.llm
        settings, labels = refine_settings(cfg, llm)
        for spec in {s for s in (settings.doc_spec, settings.chunk_spec) if s is not None}:
            _preflight(spec)
        digest = settings_hash(settings, labels)
        seeds = curated_documents(ctx, self.name, cfg.require, through_refine=False).select("doc_id", "text")
        if cfg.max_seeds is not None:
            seeds = seeds.orderBy(F.xxhash64("doc_id")).limit(cfg.max_seeds)
        # Staged (not cached, not executor-local): the plan reads `refined`, which this stage writes.
        pending = ctx.staging.cut("pending", seeds.join(self._done(ctx, cfg, digest), "doc_id", "left_anti"))
        ctx.run.rows_in = pending.count()
        ctx.count("documents_to_refine", ctx.run.rows_in)
        if ctx.run.rows_in:
            self._refine_and_commit(ctx, cfg, settings, labels, digest, pending)
        ctx.staging.drop("generations")

    @staticmethod
    def _done(ctx: StageContext, cfg: RefineConfig, digest: str) -> DataFrame:
        done = ctx.lake.read(REFINED.name).where(F.col("settings_hash") == digest)
        if cfg.retry_failed:
            done = done.where(~F.col("status").startswith("failed_"))
        return done.select("doc_id")

    def _refine_and_commit(self, ctx: StageContext, cfg: RefineConfig, settings: RefineSettings,
                           labels: dict[str, str | None], digest: str, pending: DataFrame) -> None:
        groups = math.ceil(ctx.run.rows_in / cfg.commit_every)
        pending = pending.withColumn("commit_group", F.pmod(F.xxhash64("doc_id"), F.lit(groups)))
        partitions = cfg.partitions or default_parallelism(ctx.spark)
        workers: dict[str, Counter] = defaultdict(Counter)
        failed = 0
        for group in range(groups):
            rows = pending.where(F.col("commit_group") == group).drop("commit_group")
            refined = staged_generations(ctx, ctx.staging_key(digest), group, rows, "doc_id", lambda r: r.repartition(
                partitions).mapInPandas(lambda frames: refine_documents(frames, settings), _ROWS))
            failed += _count(ctx, refined, workers)
            table = (refined.withColumn("doc_model", F.lit(labels["doc"]).cast("string"))
                     .withColumn("chunk_model", F.lit(labels["chunk"]).cast("string"))
                     .withColumn("engine", F.lit(ctx.config.llm.engine))
                     .withColumn("prompt_version", F.lit(settings.prompts.version))
                     .withColumn("settings_hash", F.lit(digest)).withColumn("run_id", F.lit(ctx.run.run_id))
                     .select(*REFINED.schema.fieldNames()))
            written = ctx.commit(REFINED.name, table, update_matched=True)
            ctx.run.rows_out += written.get("num_inserted_rows", 0) + written.get("num_updated_rows", 0)
            ctx.count("commit_groups", 1)
        RewriteStage._count_workers(ctx, workers)
        if failed > cfg.max_failed_fraction * ctx.run.rows_in:
            raise StageFailed(f"refine: {failed} of {ctx.run.rows_in} documents failed (over refine."
                              f"max_failed_fraction={cfg.max_failed_fraction}); the rows were committed with their "
                              "reasons (SELECT status, error FROM refined WHERE status LIKE 'failed_%')")


def _count(ctx: StageContext, refined: DataFrame, workers: dict[str, Counter]) -> int:
    """Ledger counters of one group: document outcomes, doc decisions, chunk outcomes, calls, rejection reasons."""
    failed = 0
    # One aggregate over the per-row counter maps (the UDF computed them), not one Spark job per counter family.
    totals = refined.select(F.explode("counters").alias("name", "n")).groupBy("name").agg(F.sum("n").alias("n"))
    for row in totals.collect():
        ctx.count(row["name"], row["n"])
        failed += row["n"] if row["name"].startswith("failed_") else 0
    tally_workers(refined, workers)
    return failed


if __name__ == "__main__":  # spark-submit jobs/refine.py --config conf.yaml [--set k=v]
    from refinery.jobs.main import stage_main

    stage_main("refine")
