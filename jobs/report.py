"""`refinery report`: the lakehouse's aggregates computed in Spark (small frames reach the driver, never text),
rendered by udfs/export/report_html.py into one self-contained HTML file."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd
from pyspark.sql import SparkSession

from refinery.jobs.config import PipelineConfig
from refinery.jobs.storage import Lakehouse
from refinery.schemas.views import REFINE_FILTER, SEED_FILTERS
from refinery.udfs.export.report_html import Section, build_sections, render_html

log = logging.getLogger("refinery")


def build_report(spark: SparkSession, config: PipelineConfig, output: str) -> list[Section]:
    lake = Lakehouse(spark, config.storage)
    sections = build_sections(aggregates(spark, lake), str(lake.cfg.metastore or lake.root))
    Path(output).write_text(render_html(sections, title="Refinery data report"), encoding="utf-8")
    return sections


def aggregates(spark: SparkSession, lake: Lakehouse) -> dict[str, pd.DataFrame | None]:
    """One small frame per plot; None where the table behind it does not exist."""
    have = {t for t in ("documents", "ingest_files", "quality", "duplicates", "contamination", "refined", "taxonomy",
                        "eai_labels", "synthetic", "runs") if lake.exists(t)}
    t = {name: lake.qualified(name) for name in have}

    def sql(query: str, *needs: str) -> pd.DataFrame | None:
        if not set(needs) <= have:
            return None
        return spark.sql(query.format(**t)).toPandas()

    out: dict[str, pd.DataFrame | None] = {
        "funnel": _funnel(spark, lake, have, t),
        "drops": _drops(spark, have, t),
        "languages": sql("SELECT coalesce(language, 'unknown') AS language, count(*) AS docs FROM {documents} "
                         "GROUP BY 1 ORDER BY docs DESC, language LIMIT 30", "documents"),
        "quality_scores": _histogram(spark, t, "quality", "quality_score") if "quality" in have else None,
        "quality_buckets": sql("SELECT quality_bucket AS bucket, count(*) AS docs, count_if(keep) AS kept "
                               "FROM {quality} WHERE quality_bucket IS NOT NULL GROUP BY 1 ORDER BY 1", "quality"),
        "quality_words": _histogram(spark, t, "quality", "gopher_quality.words") if "quality" in have else None,
        "cluster_sizes": sql("SELECT cluster_size, count(*) AS clusters FROM {duplicates} WHERE is_kept "
                             "GROUP BY 1 ORDER BY 1", "duplicates"),
        "contamination": sql("SELECT b AS benchmark, count(*) AS docs FROM {contamination} "
                             "LATERAL VIEW explode(matched_benchmarks) AS b WHERE contaminated "
                             "GROUP BY b ORDER BY docs DESC, benchmark", "contamination"),
        "contamination_scanned": sql("SELECT count(*) AS docs, count_if(contaminated) AS contaminated "
                                     "FROM {contamination}", "contamination"),
        "synthetic": sql("SELECT style_id, status, count(*) AS rows, coalesce(sum(output_tokens), 0) AS tokens "
                         "FROM {synthetic} GROUP BY 1, 2 ORDER BY 1, 2", "synthetic"),
        "runs": sql("SELECT started_at, stage, status, "
                    "unix_millis(ended_at) / 1000.0 - unix_millis(started_at) / 1000.0 AS seconds, "
                    "docs_per_s, rows_out FROM {runs} ORDER BY started_at", "runs"),
    }
    if {"taxonomy", "eai_labels"} <= have:
        out["taxonomy_status"] = sql("SELECT status, count(*) AS docs FROM {taxonomy} GROUP BY 1 ORDER BY 2 DESC",
                                     "taxonomy")
        for category, column in (("fdc_l1", "fdc_primary_l1"), ("document_type_v2", "document_type_v2_primary"),
                                 ("education_level", "education_level_primary")):
            out[f"taxonomy_{category}"] = sql(
                f"SELECT coalesce(l.name, cast(x.{column} AS string)) AS label, count(*) AS docs FROM {{taxonomy}} x "
                f"LEFT JOIN {{eai_labels}} l ON l.category = '{category}' AND l.code = x.{column} "
                f"WHERE x.status = 'ok' AND x.{column} IS NOT NULL GROUP BY 1 ORDER BY docs DESC, label LIMIT 25",
                "taxonomy")
    return out


def _histogram(spark: SparkSession, t: dict[str, str], table: str, column: str, bins: int = 30) -> pd.DataFrame:
    """(left, right, docs) of equal-width bins between the column's min and max, counted in Spark."""
    lo, hi = spark.sql(f"SELECT min({column}), max({column}) FROM {t[table]}").first()
    if lo is None:
        return pd.DataFrame({"left": [], "right": [], "docs": []})
    width = (float(hi) - float(lo)) / bins or 1.0
    rows = spark.sql(f"SELECT least(CAST(floor(({column} - {lo}) / {width}) AS INT), {bins - 1}) AS bin, "
                     f"count(*) AS docs FROM {t[table]} WHERE {column} IS NOT NULL GROUP BY 1 ORDER BY 1").collect()
    return pd.DataFrame({"left": [float(lo) + r.bin * width for r in rows],
                         "right": [float(lo) + (r.bin + 1) * width for r in rows],
                         "docs": [int(r.docs) for r in rows]})


def _funnel(spark: SparkSession, lake: Lakehouse, have: set[str], t: dict[str, str]) -> pd.DataFrame | None:
    """Documents left after each stage's decision, cumulative in pipeline order (the curated definition)."""
    if "documents" not in have:
        return None
    joins, passed, columns = "", [], ["count(*) AS `ingested`"]
    for f in (*SEED_FILTERS, REFINE_FILTER):
        if f.table not in have:
            continue
        joins += f" LEFT JOIN {t[f.table]} {f.alias} ON {f.alias}.doc_id = d.doc_id"
        # refine edits rather than decides alone: a document it has not seen stays in
        passed.append(f"coalesce({f.keep}, true)" if f is REFINE_FILTER else f"coalesce({f.keep}, false)")
        columns.append(f"count_if({' AND '.join(passed)}) AS `{f.stage}`")
    row = spark.sql(f"SELECT {', '.join(columns)} FROM {t['documents']} d{joins}").first().asDict()
    return pd.DataFrame({"stage": list(row), "docs": [int(v or 0) for v in row.values()]})


def _drops(spark: SparkSession, have: set[str], t: dict[str, str]) -> pd.DataFrame | None:
    """(stage, reason, n): why records and documents left, per stage."""
    parts = []
    if "ingest_files" in have:
        parts.append("SELECT 'ingest' AS stage, k AS reason, sum(v) AS n FROM {ingest_files} "
                     "LATERAL VIEW explode(counters) AS k, v WHERE k RLIKE '^(skipped|failed|dropped)_' GROUP BY k")
    if "quality" in have:
        parts.append("SELECT 'quality' AS stage, r AS reason, count(*) AS n FROM {quality} "
                     "LATERAL VIEW explode(drop_reasons) AS r GROUP BY r")
    if "duplicates" in have:
        parts.append("SELECT 'dedup' AS stage, reason, count(*) AS n FROM {duplicates} WHERE NOT is_kept "
                     "GROUP BY reason")
    if "contamination" in have:
        parts.append("SELECT 'decontaminate' AS stage, 'contaminated' AS reason, count(*) AS n FROM {contamination} "
                     "WHERE contaminated")
    if "refined" in have:
        parts.append("SELECT 'refine' AS stage, status AS reason, count(*) AS n FROM {refined} WHERE NOT keep "
                     "GROUP BY status")
    if not parts:
        return None
    query = " UNION ALL ".join(f"({p})" for p in parts).format(**t)
    frame = spark.sql(f"SELECT stage, reason, CAST(n AS BIGINT) AS n FROM ({query}) WHERE n > 0 "
                      "ORDER BY stage, n DESC, reason").toPandas()
    return frame
