"""`refinery export`: a training mix from the curated documents, synthetic rows and taxonomy datasets, as shards of
Parquet and JSONL.zst plus a manifest. Tokens are counted and shards written on executors; only per-source and
per-shard totals reach the driver. Every table is read at the Delta version noted at the start, so the same
versions and recipe give byte-identical shards."""

from __future__ import annotations

import hashlib
import json
import logging
import os

import pandas as pd
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql.types import LongType, StringType, StructField, StructType

from refinery import __version__
from refinery.jobs.base import InputError, RunRecord, StageContext
from refinery.jobs.config import PipelineConfig
from refinery.jobs.seeds import curated_documents, pinned
from refinery.jobs.storage import Lakehouse
from refinery.schemas.views import REFINE_FILTER, SEED_FILTERS, VIEWS
from refinery.udfs.export.mix import (
    SHARD_COLUMNS,
    Recipe,
    RecipeError,
    jsonl_zst_bytes,
    load_recipe,
    parquet_bytes,
    plan_budgets,
    shard_name,
    shuffle_key,
    token_counter,
    tokenizer_payload,
)

log = logging.getLogger("refinery")

ITEMS = StructType([StructField("source", StringType(), False), StructField("doc_id", StringType(), False),
                    StructField("synth_id", StringType()), StructField("id", StringType(), False),
                    StructField("text", StringType())])
SCORED = StructType([*ITEMS.fields, StructField("key", LongType(), False), StructField("tokens", LongType(), False)])
WRITTEN = StructType([StructField("shard", LongType()), StructField("format", StringType()),
                      StructField("file", StringType()), StructField("rows", LongType()),
                      StructField("tokens", LongType()), StructField("bytes", LongType()),
                      StructField("sha256", StringType())])


def export_mix(spark: SparkSession, config: PipelineConfig, recipe_path: str, output: str,
               overwrite: bool = False) -> dict:
    """Write the mix under `output` (a local path or an fsspec URI) and return the manifest it wrote last."""
    recipe, recipe_hash = load_recipe(recipe_path)
    tokenizer_name, tokenizer_json = tokenizer_payload(recipe.tokenizer)
    lake = Lakehouse(spark, config.storage)
    output = output if "://" in output else os.path.abspath(os.path.expanduser(output))
    versions = _versions(lake, recipe)
    ctx = StageContext(spark, config, lake, RunRecord(stage="export"))
    curated = curated_documents(ctx, "export", recipe.require, count=False, versions=versions)
    _prepare_output(output, overwrite)  # after the checks: a bad recipe leaves an earlier export alone
    items = _union([_source_items(spark, lake, recipe, s, curated, versions) for s in recipe.sources])
    scored = items.mapInPandas(_scorer(recipe.seed, tokenizer_name, tokenizer_json), SCORED).persist()
    try:
        available = _available(scored)
        budgets = plan_budgets(recipe, {k: v[0] for k, v in available.items()})
        chosen = _choose(scored, budgets, recipe.shard_tokens).persist()
        totals = {r.source: (int(r.tokens), int(r.docs)) for r in
                  chosen.groupBy("source").agg(F.sum("tokens").alias("tokens"), F.count("*").alias("docs")).collect()}
        if not totals:
            raise InputError(f"export: recipe {recipe.name!r} selected nothing (tokens and items available per "
                             f"source: {available or 'none'}); check its sources and that the stages have run")
        rows = scored.join(chosen.select("source", "id", "shard"), ["source", "id"])
        written = rows.groupBy("shard").applyInPandas(_shard_writer(output, list(recipe.formats)), WRITTEN).collect()
        chosen.unpersist()
    finally:
        scored.unpersist()
    manifest = _manifest(recipe, recipe_hash, tokenizer_name, versions, lake, available, budgets, totals, written)
    _write_bytes(f"{output}/manifest.json", (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode())
    return manifest


def _versions(lake: Lakehouse, recipe: Recipe) -> dict[str, int]:
    tables = {"documents", *(f.table for f in SEED_FILTERS), REFINE_FILTER.table}
    kinds = {s.kind for s in recipe.sources}
    if "synthetic" in kinds:
        if not lake.exists("synthetic"):
            raise InputError(f"export: a synthetic source needs the `synthetic` table, which does not exist in "
                             f"{lake.root}; run the rewrite stage first (refinery run --stage rewrite)")
        tables.add("synthetic")
    for source in recipe.sources:
        if source.kind == "taxonomy":
            view = VIEWS.get(source.view)
            if view is None:
                known = ", ".join(v for v in VIEWS if v.startswith("eai_"))
                raise RecipeError(f"recipe source {source.name!r}: no view {source.view!r}; views: {known}")
            missing = [t for t in view.tables if not lake.exists(t)]
            if missing:
                raise InputError(f"export: source {source.name!r} reads {source.view}, which needs the table(s) "
                                 f"{', '.join(missing)}; run the label stage first (refinery run --stage label)")
            tables.update(view.tables)
    return {t: v for t in sorted(tables) if (v := lake.version(t)) is not None}


def _source_items(spark: SparkSession, lake: Lakehouse, recipe: Recipe, source, curated: DataFrame,
                  versions: dict[str, int]) -> DataFrame:
    name = F.lit(source.name)
    if source.kind == "curated":
        return curated.select(name.alias("source"), "doc_id", F.lit(None).cast("string").alias("synth_id"),
                              F.col("doc_id").alias("id"), "text")
    if source.kind == "synthetic":
        rows = spark.sql(f"SELECT * FROM {pinned(lake, 'synthetic', versions)} WHERE status = 'ok' "
                         "AND text IS NOT NULL")
        if source.styles:
            rows = rows.where(F.col("style_id").isin(source.styles))
        if source.models:
            rows = rows.where(F.col("model").isin(source.models))
        # a rewrite of a document that is no longer curated (contaminated, dropped by a later run) stays out
        rows = rows.join(curated.select("doc_id"), "doc_id", "left_semi")
        return rows.select(name.alias("source"), "doc_id", "synth_id", F.col("synth_id").alias("id"), "text")
    view = VIEWS[source.view]
    present = [*view.tables, *(t for t in view.optional if t in versions)]
    members = spark.sql(view.query({t: pinned(lake, t, versions) for t in present})).select("doc_id")
    # the dataset's documents as curated: kept upstream, with the refined text
    return curated.join(members, "doc_id", "left_semi").select(
        name.alias("source"), "doc_id", F.lit(None).cast("string").alias("synth_id"), F.col("doc_id").alias("id"),
        "text")


def _union(frames: list[DataFrame]) -> DataFrame:
    out = frames[0]
    for frame in frames[1:]:
        out = out.unionByName(frame)
    return out


def _scorer(seed: int, tokenizer_name: str, tokenizer_json: str | None):
    def score(batches):
        count = token_counter(tokenizer_name, tokenizer_json)
        for batch in batches:
            batch["key"] = [shuffle_key(seed, s, i) for s, i in zip(batch["source"], batch["id"], strict=True)]
            batch["tokens"] = [count(t) if isinstance(t, str) else 0 for t in batch["text"]]
            yield batch

    return score


def _available(scored: DataFrame) -> dict[str, tuple[int, int]]:
    rows = scored.groupBy("source").agg(F.sum("tokens").alias("tokens"), F.count("*").alias("docs")).collect()
    return {r.source: (int(r.tokens), int(r.docs)) for r in rows}


def _choose(scored: DataFrame, budgets: dict[str, int], shard_tokens: int) -> DataFrame:
    """Each source's items in shuffle order up to its budget (the item that crosses it is included), then the
    shard of each item from the tokens before it in the global shuffle. Only narrow columns are windowed."""
    narrow = scored.select("source", "id", "key", "tokens")
    upto = (Window.unboundedPreceding, Window.currentRow)
    in_source = Window.partitionBy("source").orderBy("key", "id").rowsBetween(*upto)
    before = F.sum("tokens").over(in_source) - F.col("tokens")
    budget = F.create_map(*[x for name, b in sorted(budgets.items()) for x in (F.lit(name), F.lit(b).cast("long"))])
    picked = narrow.withColumn("before", before).where(F.col("before") < budget[F.col("source")])
    overall = F.sum("tokens").over(Window.orderBy("key", "source", "id").rowsBetween(*upto)) - F.col("tokens")
    return picked.withColumn("shard", F.floor(overall / F.lit(shard_tokens)).cast("long")).drop("before")


def _shard_writer(output: str, formats: list[str]):
    encoders = {"parquet": parquet_bytes, "jsonl.zst": jsonl_zst_bytes}

    def write(frame: pd.DataFrame) -> pd.DataFrame:
        frame = frame.sort_values(["key", "source", "id"], kind="stable").reset_index(drop=True)
        index = int(frame["shard"].iloc[0])
        out = []
        for fmt in formats:
            data = encoders[fmt](frame[list(SHARD_COLUMNS)])
            name = shard_name(index, fmt)
            _write_bytes(f"{output}/{name}", data)
            out.append((index, fmt, name, len(frame), int(frame["tokens"].sum()), len(data),
                        hashlib.sha256(data).hexdigest()))
        return pd.DataFrame(out, columns=[f.name for f in WRITTEN.fields])

    return write


def _write_bytes(uri: str, data: bytes) -> None:
    import fsspec

    with fsspec.open(uri, "wb") as f:
        f.write(data)


def _prepare_output(output: str, overwrite: bool) -> None:
    """An existing export is replaced only with overwrite; anything else in the folder is never touched."""
    import fsspec

    fs, path = fsspec.core.url_to_fs(output)
    if fs.exists(path):
        ours = [p for p in fs.ls(path, detail=False)
                if os.path.basename(p).startswith("shard-") or os.path.basename(p) == "manifest.json"]
        if ours and not overwrite:
            raise InputError(f"export: {output} already holds an export ({len(ours)} files); pass --overwrite to "
                             "replace it or choose another -o")
        # manifest first: a folder without one is an unfinished export
        for p in sorted(ours, key=lambda p: not p.endswith("manifest.json")):
            fs.rm(p)
    fs.makedirs(path, exist_ok=True)


def _manifest(recipe: Recipe, recipe_hash: str, tokenizer_name: str, versions: dict[str, int], lake: Lakehouse,
              available: dict, budgets: dict, totals: dict, written: list) -> dict:
    sources = {}
    for s in recipe.sources:
        have_tokens, have_docs = available.get(s.name, (0, 0))
        tokens, docs = totals.get(s.name, (0, 0))
        sources[s.name] = {"kind": s.kind, "budget_tokens": budgets[s.name], "available_tokens": have_tokens,
                           "available_docs": have_docs, "tokens": tokens, "docs": docs}
    shards = sorted(({"file": w.file, "format": w.format, "shard": w.shard, "rows": w.rows, "tokens": w.tokens,
                      "bytes": w.bytes, "sha256": w.sha256} for w in written), key=lambda x: x["file"])
    return {
        "recipe": {"name": recipe.name, "sha256": recipe_hash, "content": recipe.model_dump(mode="json")},
        "tokenizer": tokenizer_name,
        "seed": recipe.seed,
        "lakehouse": lake.cfg.metastore or lake.root,
        "table_versions": versions,
        "sources": sources,
        "totals": {"tokens": sum(t for t, _ in totals.values()), "docs": sum(d for _, d in totals.values()),
                   "shards": len({w.shard for w in written})},
        "columns": list(SHARD_COLUMNS),
        "shards": shards,
        "refinery_version": __version__,
    }


def main(argv: list[str] | None = None) -> None:
    """`spark-submit jobs/export.py --recipe mix.yaml -o s3://bucket/mix [--config ...] [--set key=value ...]`."""
    import argparse

    from refinery.jobs.config import load_config
    from refinery.jobs.session import get_spark

    parser = argparse.ArgumentParser(prog="jobs/export.py")
    parser.add_argument("--recipe", required=True)
    parser.add_argument("-o", "--output", required=True)
    parser.add_argument("--overwrite", action="store_true")
    parser.add_argument("--config")
    parser.add_argument("--env-file")
    parser.add_argument("--set", action="append", default=[], dest="overrides", metavar="KEY=VALUE")
    args = parser.parse_args(argv)
    config = load_config(args.config, args.env_file, args.overrides)
    manifest = export_mix(get_spark(config.spark), config, args.recipe, args.output, args.overwrite)
    print(json.dumps({"output": args.output, **manifest["totals"]}))


if __name__ == "__main__":
    main()
