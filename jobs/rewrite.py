"""Rewrite stage: seed documents → `synthetic`, LLM rewrites in the style library's styles (WRAP, Nemotron-CC,
BeyondWeb-style), committed in groups so a killed run loses at most the group in flight."""

from __future__ import annotations

import logging
import math
import re
from collections import Counter, defaultdict
from collections.abc import Callable

from pyspark.errors import PythonException
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import IntegerType, LongType, StringType, StructField, StructType

from refinery.jobs.base import InputError, StageContext, StageFailed
from refinery.jobs.config import ConfigError, LlmConfig, RewriteConfig
from refinery.jobs.ledger import kill_point
from refinery.jobs.registry import stage
from refinery.jobs.seeds import curated_documents
from refinery.jobs.session import default_parallelism
from refinery.jobs.staging import GROUP
from refinery.schemas.tables import CONTAMINATION, DOCUMENTS, DUPLICATES, QUALITY, REFINED, SYNTHETIC
from refinery.udfs.llm import EngineLoadError, EngineSpec
from refinery.udfs.rewrite.styles import Style, StyleError, load_styles
from refinery.udfs.rewrite.udf import GenerateSettings, PlanSettings, generate_chunks, plan_chunks

log = logging.getLogger("refinery")

_PLAN = StructType([
    StructField("synth_id", StringType(), False), StructField("doc_id", StringType(), False),
    StructField("chunk_index", IntegerType(), False), StructField("chunk_count", IntegerType(), False),
    StructField("style_id", StringType(), False), StructField("style_version", IntegerType(), False),
    StructField("input_tokens", IntegerType(), False), StructField("chunk", StringType(), False),
])
_GENERATED = StructType([
    *[f for f in _PLAN.fields if f.name != "chunk"],
    StructField("sampling", StringType(), False), StructField("text", StringType()),
    StructField("raw_text", StringType()), StructField("prompt_tokens", IntegerType()),
    StructField("output_tokens", IntegerType()), StructField("finish_reason", StringType(), False),
    StructField("status", StringType(), False), StructField("error", StringType()),
    StructField("generation_ms", LongType()), StructField("worker", StringType(), False),
    StructField("task_id", LongType(), False), StructField("engine_loads", LongType(), False),
])


def engine_spec(llm: LlmConfig) -> EngineSpec:
    return EngineSpec(engine=llm.engine, model=llm.model or "", tokenizer=llm.tokenizer, dtype=llm.dtype,
                      device=llm.device, max_model_len=llm.max_model_len, batch_size=llm.batch_size,
                      timeout_s=llm.timeout_s, tensor_parallel_size=llm.vllm.tensor_parallel_size,
                      gpu_memory_utilization=llm.vllm.gpu_memory_utilization, enforce_eager=llm.vllm.enforce_eager,
                      enable_prefix_caching=llm.vllm.enable_prefix_caching, max_num_seqs=llm.vllm.max_num_seqs,
                      executor=llm.vllm.executor, cpu_kv_cache_gb=llm.vllm.cpu_kv_cache_gb,
                      base_url=llm.openai.base_url, api_key_env=llm.openai.api_key_env,
                      concurrency=llm.openai.concurrency, max_retries=llm.openai.max_retries,
                      backoff_s=llm.openai.backoff_s)


def tally_workers(generated: DataFrame, workers: dict[str, Counter]) -> None:
    """Adds one commit group's per-worker tokens, generation time, tasks and engine loads (one small aggregate)."""
    per_worker = generated.groupBy("worker").agg(
        F.sum("prompt_tokens").alias("prompt_tokens"), F.sum("output_tokens").alias("output_tokens"),
        F.sum("generation_ms").alias("generation_ms"), F.max("engine_loads").alias("engine_loads"),
        F.collect_set("task_id").alias("tasks"))
    for row in per_worker.collect():
        stats = workers[row.worker]
        for name in ("prompt_tokens", "output_tokens", "generation_ms"):
            stats[name] += row[name] or 0
        stats["engine_loads"] = max(stats["engine_loads"], row.engine_loads)
        stats["tasks"] += len(row.tasks)


@stage(after="label", llm=True)
class RewriteStage:
    name = "rewrite"
    # `refined` when it exists: its text replaces the document's, and documents it dropped are not seeds.
    inputs = (DOCUMENTS.name, QUALITY.name, DUPLICATES.name, CONTAMINATION.name, REFINED.name, SYNTHETIC.name)
    outputs = (SYNTHETIC.name,)

    def execute(self, ctx: StageContext) -> None:
        cfg, llm = ctx.config.rewrite, ctx.config.llm
        if not llm.model:
            raise ConfigError("config key llm.model: not set; the rewrite stage needs a model (local path or hub "
                              "id), e.g. --set llm.model=/models/Qwen2.5-1.5B-Instruct")
        styles = _styles(cfg)
        mixes = _mixes(cfg, styles)
        spec = engine_spec(llm)
        _preflight(spec)
        seeds = self._seeds(ctx, cfg)
        plan = seeds.repartition(self._partitions(ctx)).mapInPandas(
            lambda frames: plan_chunks(frames, spec, PlanSettings(styles, mixes, cfg.styles_per_doc, cfg.seed,
                                                                  llm.label, cfg.max_chunks_per_doc)), _PLAN)
        # Staged, not cached: the plans read `synthetic`, which this stage writes (see decontaminate).
        planned = _materialise(lambda: ctx.staging.cut("plan", plan))
        pending = ctx.staging.cut("pending", planned.join(self._done(ctx, cfg), "synth_id", "left_anti"))
        ctx.count("chunks_planned", planned.count())
        ctx.run.rows_in = pending.count()
        ctx.count("chunks_to_generate", ctx.run.rows_in)
        if ctx.run.rows_in:
            self._generate_and_commit(ctx, cfg, llm, spec, styles, pending)
        ctx.staging.drop("generations")

    def _seeds(self, ctx: StageContext, cfg: RewriteConfig) -> DataFrame:
        docs = self._route(ctx, cfg, curated_documents(ctx, self.name, cfg.require))
        if cfg.max_seeds is not None:
            docs = docs.orderBy(F.xxhash64("doc_id")).limit(cfg.max_seeds)
        return docs.select("doc_id", "text", "route")

    @staticmethod
    def _route(ctx: StageContext, cfg: RewriteConfig, docs: DataFrame) -> DataFrame:
        """route 0 = rewrite.mix; route i = routing.routes[i-1] by quality_bucket (Nemotron-CC)."""
        if not cfg.routing.enabled:
            return docs.withColumn("route", F.lit(0))
        if "quality_bucket" not in docs.columns:
            raise InputError("rewrite.routing.enabled needs quality.quality_bucket, but the `quality` table does "
                             "not exist; run the quality stage or set rewrite.routing.enabled=false")
        route = F.lit(None).cast("int")
        for i, r in reversed(list(enumerate(cfg.routing.routes, start=1))):
            route = F.when(F.col("quality_bucket").between(*r.buckets), F.lit(i)).otherwise(route)
        routed = docs.withColumn("route", route)
        ctx.count("dropped_no_route", routed.where(F.col("route").isNull()).count())
        return routed.where(F.col("route").isNotNull())

    @staticmethod
    def _done(ctx: StageContext, cfg: RewriteConfig) -> DataFrame:
        done = ctx.lake.read(SYNTHETIC.name)
        if cfg.retry_failed:
            done = done.where(~F.col("status").startswith("failed_"))
        return done.select("synth_id")

    @staticmethod
    def _partitions(ctx: StageContext) -> int:
        return ctx.config.rewrite.partitions or default_parallelism(ctx.spark)

    def _generate_and_commit(self, ctx: StageContext, cfg: RewriteConfig, llm: LlmConfig, spec: EngineSpec,
                             styles: dict[str, Style], pending: DataFrame) -> None:
        settings = GenerateSettings(styles, llm.sampling.temperature, llm.sampling.top_p, llm.sampling.seed,
                                    cfg.max_output_tokens)
        groups = math.ceil(ctx.run.rows_in / cfg.commit_every)
        pending = pending.withColumn("commit_group", F.pmod(F.xxhash64("synth_id"), F.lit(groups)))
        key = ctx.staging_key(repr(settings), repr(spec), llm.label)
        workers: dict[str, Counter] = defaultdict(Counter)
        failed = 0
        for group in range(groups):
            rows = pending.where(F.col("commit_group") == group).drop("commit_group")
            # Generation is the expensive step: stored once in staging, then validated and MERGEd from there.
            generated = staged_generations(ctx, key, group, rows, "synth_id", lambda r: r.repartition(
                self._partitions(ctx)).mapInPandas(
                    lambda frames: generate_chunks(_killable(frames), spec, settings), _GENERATED))
            failed += self._count(ctx, generated, workers)
            table = (generated.withColumn("model", F.lit(llm.label)).withColumn("engine", F.lit(llm.engine))
                     .withColumn("run_id", F.lit(ctx.run.run_id)).select(*SYNTHETIC.schema.fieldNames()))
            written = ctx.commit(SYNTHETIC.name, table, update_matched=True, suite_settings={"styles": list(styles)})
            ctx.run.rows_out += written.get("num_inserted_rows", 0) + written.get("num_updated_rows", 0)
            ctx.count("commit_groups", 1)
        self._count_workers(ctx, workers)
        if failed > cfg.max_failed_fraction * ctx.run.rows_in:
            raise StageFailed(f"rewrite: {failed} of {ctx.run.rows_in} chunks failed (over rewrite."
                              f"max_failed_fraction={cfg.max_failed_fraction}); the rows were committed with their "
                              "reasons (SELECT status, error FROM synthetic WHERE status LIKE 'failed_%')")

    @staticmethod
    def _count(ctx: StageContext, generated: DataFrame, workers: dict[str, Counter]) -> int:
        failed = 0
        for row in generated.groupBy("status").count().collect():
            if row.status == "ok":
                ctx.count("rewritten_ok", row["count"])
            elif row.status.startswith("failed_"):
                ctx.count(row.status, row["count"])
                failed += row["count"]
            else:
                ctx.count(f"dropped_{row.status}", row["count"])
        tally_workers(generated, workers)
        return failed

    @staticmethod
    def _count_workers(ctx: StageContext, workers: dict[str, Counter]) -> None:
        for name in ("prompt_tokens", "output_tokens", "generation_ms", "tasks", "engine_loads"):
            ctx.count(name if name != "tasks" else "llm_tasks", sum(w[name] for w in workers.values()))
        ctx.count("llm_workers", len(workers))
        rates = []
        for worker, stats in sorted(workers.items()):
            rate = stats["output_tokens"] / max(stats["generation_ms"] / 1000, 1e-9)
            rates.append(rate)
            log.info("%s worker %s: %d tasks, %d engine load(s), %d prompt + %d output tokens, %.1f output "
                     "tokens/s", ctx.run.stage, worker, stats["tasks"], stats["engine_loads"], stats["prompt_tokens"],
                     stats["output_tokens"], rate)
        ctx.count("output_tokens_per_s_per_worker", round(sum(rates) / max(len(rates), 1)))


def _styles(cfg: RewriteConfig) -> dict[str, Style]:
    try:
        return load_styles(cfg.styles_files)
    except StyleError as err:
        raise ConfigError(f"rewrite.styles_files: {err}") from None


def _mixes(cfg: RewriteConfig, styles: dict[str, Style]) -> tuple[dict[str, float], ...]:
    mixes = [("rewrite.mix", cfg.mix)]
    if cfg.routing.enabled:
        mixes += [(f"rewrite.routing.routes.{i}.mix", r.mix or cfg.mix) for i, r in enumerate(cfg.routing.routes)]
    for key, mix in mixes:
        if not mix:
            raise ConfigError(f"config key {key}: empty; give at least one style id with a weight")
        unknown = sorted(set(mix) - set(styles))
        if unknown:
            raise ConfigError(f"config key {key}: unknown style id(s) {', '.join(unknown)}; the library has "
                              f"{', '.join(sorted(styles))}")
        if cfg.styles_per_doc > len(mix):
            raise ConfigError(f"config key rewrite.styles_per_doc: {cfg.styles_per_doc} is more than the "
                              f"{len(mix)} style(s) in {key}")
    return tuple(m for _, m in mixes)


def _preflight(spec: EngineSpec) -> None:
    """Fail on the driver, with the model path and cause, before any task starts: the tokenizer must load."""
    from refinery.udfs.llm.base import load_tokenizer

    try:
        load_tokenizer(spec)
    except EngineLoadError as err:
        raise StageFailed(str(err)) from err


def staged_generations(ctx: StageContext, key: str, group: int, rows: DataFrame, id_col: str,
                       generate: Callable[[DataFrame], DataFrame]) -> DataFrame:
    """One commit group's generations, stored in staging before they are committed (`_staging_<stage>_generations`).

    Rows an earlier, killed run generated under the same key (settings) are taken from staging, not generated
    again, and counted as `resumed_rows`; the rest are generated and appended to staging."""
    staged = ctx.staging.resumable("generations", key)
    resumed = None
    if staged is not None:
        resumed = staged.join(rows.select(id_col), id_col, "left_semi").drop(GROUP)
        n = resumed.count()
        ctx.count("resumed_rows", n)
        if not n:
            resumed = None
        else:
            rows = rows.join(staged.select(id_col), id_col, "left_anti")
            if rows.isEmpty():  # the whole group was generated before: no engine is loaded for it
                return resumed
    generated = _materialise(lambda: ctx.staging.append("generations", generate(rows), key,
                                                        f"{ctx.run.run_id}:{group}"))
    kill_point(f"{ctx.run.stage}.generated")
    return generated if resumed is None else generated.unionByName(resumed)


def _killable(frames):
    """Input frames passed through kill_point("rewrite.generate") (crash tests: the driver dies mid-generation)."""
    for frame in frames:
        kill_point("rewrite.generate")
        yield frame


def _materialise(store: Callable[[], DataFrame]) -> DataFrame:
    """Run the generation (store: write it to staging, return the stored rows); an engine that cannot load in a
    worker, or dies there after its one reload, fails the job with its own message."""
    try:
        return store()
    except PythonException as err:
        found = re.search(r"(?:EngineLoadError|EngineFatalError): (.+)", str(err))
        if found:
            raise StageFailed(found.group(1).strip()) from None
        raise


if __name__ == "__main__":  # spark-submit jobs/rewrite.py --config conf.yaml [--set k=v]
    from refinery.jobs.main import stage_main

    stage_main("rewrite")
