"""The curated documents a seed-reading stage (refine, label, rewrite, export) starts from: one SQL definition,
`schemas.views.curated_sql`, the same one behind the `documents_curated` view."""

from __future__ import annotations

import logging
from collections.abc import Collection

from pyspark.sql import DataFrame

from refinery.schemas.views import REFINE_FILTER, SEED_FILTERS, curated_sql

from .base import InputError, StageContext

log = logging.getLogger("refinery")


def curated_documents(ctx: StageContext, stage: str, require: Collection[str], through_refine: bool = True,
                      count: bool = True, versions: dict[str, int] | None = None) -> DataFrame:
    """The curated documents (doc_id, text, quality_score, quality_bucket, refined, ...) over the filter tables that
    exist. A table named in `require` that does not exist stops the run naming the stage that writes it; any other
    missing one is skipped and counted (`seed_filter_<stage>_skipped`). `through_refine` joins `refined` when it
    exists (refine itself reads the text before refining). With `count`, the ledger gets `seed_documents` and
    `seeds_after_<stage>` from one aggregate."""
    lake = ctx.lake
    present = []
    for f in SEED_FILTERS:
        if lake.exists(f.table):
            present.append(f)
            continue
        if f.stage in require:
            raise InputError(f"{stage}: table `{f.table}` does not exist in {lake.root}; run the {f.stage} stage "
                             f"first (refinery run --stage {f.stage}), or remove {f.stage} from {stage}.require to "
                             "run without its filter")
        log.warning("%s: no `%s` table; documents are not filtered by the %s stage", stage, f.table, f.stage)
        ctx.count(f"seed_filter_{f.stage}_skipped", 1)
    tables = ["documents", *(f.table for f in present)]
    if through_refine and lake.exists(REFINE_FILTER.table):
        tables.append(REFINE_FILTER.table)
    qualified = {t: pinned(lake, t, versions) for t in tables}
    if count:
        _count_funnel(ctx, present, qualified)
    log.info("%s: seed filters applied: %s", stage, ", ".join(f.stage for f in present) or "none")
    return ctx.spark.sql(curated_sql(tables).format(**qualified))


def _count_funnel(ctx: StageContext, present: list, qualified: dict[str, str]) -> None:
    """seed_documents and seeds_after_<stage> (cumulative, in filter order) in one Spark job."""
    joins = "".join(f" LEFT JOIN {qualified[f.table]} {f.alias} ON {f.alias}.doc_id = d.doc_id" for f in present)
    passed, aggregates = [], ["count(*) AS seed_documents"]
    for f in present:
        passed.append(f"coalesce({f.keep}, false)")
        aggregates.append(f"count_if({' AND '.join(passed)}) AS seeds_after_{f.stage}")
    row = ctx.spark.sql(f"SELECT {', '.join(aggregates)} FROM {qualified['documents']} d{joins}").first()
    for name, value in row.asDict().items():
        ctx.count(name, value or 0)


def pinned(lake, table: str, versions: dict[str, int] | None) -> str:
    """The table's SQL name, read at `versions[table]` when given (Delta time travel)."""
    name = lake.qualified(table)
    if versions and versions.get(table) is not None:
        return f"{name} VERSION AS OF {int(versions[table])}"
    return name
