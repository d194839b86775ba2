"""SQL views for analysts: decisions are joins, so re-thresholding is a WHERE clause, not a re-run."""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass


@dataclass(frozen=True)
class ViewSpec:
    name: str
    tables: tuple[str, ...]  # the view exists once all of these do
    # {table} placeholders become the tables' qualified names; a callable gets the tables present (required and
    # optional) and returns the SQL, for views that join a table only once it exists
    sql: str | Callable[[frozenset[str]], str]
    description: str
    optional: tuple[str, ...] = ()  # joined when present

    def query(self, qualified: dict[str, str]) -> str:
        sql = self.sql(frozenset(qualified)) if callable(self.sql) else self.sql
        return sql.format(**qualified)


DOCUMENTS_QUALITY = ViewSpec(
    name="documents_quality",
    tables=("documents", "quality"),
    description="documents with their quality signals, scores and decision; "
                "e.g. WHERE gopher_quality.words >= 100 AND fineweb.line_punct_ratio >= 0.2",
    sql="""
SELECT d.doc_id, d.url, d.host, d.crawl, d.fetch_time, d.language, d.language_score, d.text_chars,
       coalesce(q.transformed_text, d.text) AS text,
       q.keep, q.drop_reasons, q.quality_score, q.quality_bucket, q.scores,
       q.gopher_repetition, q.gopher_quality, q.c4, q.fineweb, q.pii_emails, q.pii_ips
FROM {documents} d JOIN {quality} q ON d.doc_id = q.doc_id
""",
)


@dataclass(frozen=True)
class SeedFilter:
    stage: str  # the stage that writes the table (the name `require` lists)
    table: str
    alias: str
    keep: str  # SQL condition on the alias: the document passes this stage's decision


# The one definition of a curated document. A document without a row in one of these tables is not curated yet.
SEED_FILTERS = (
    SeedFilter("quality", "quality", "q", "q.keep"),
    SeedFilter("dedup", "duplicates", "u", "u.is_kept"),
    SeedFilter("decontaminate", "contamination", "c", "NOT c.contaminated"),
)
# Refine edits rather than decides alone: a document it has not seen yet stays curated with its own text, one it
# dropped leaves, one it refined carries refined_text.
REFINE_FILTER = SeedFilter("refine", "refined", "r", "r.keep")


def curated_sql(present: Collection[str]) -> str:
    """SELECT of the curated documents over the filter tables in `present` (plus `documents`), with the text every
    later stage and the export read: refined text, else the quality stage's transformed text, else the extracted text.
    Placeholders {table} are filled with qualified names by the caller."""
    filters = [f for f in SEED_FILTERS if f.table in present]
    refine = REFINE_FILTER.table in present
    texts = (["r.refined_text"] if refine else []) + (["q.transformed_text"] if "quality" in present else [])
    text = f"coalesce({', '.join([*texts, 'd.text'])})" if texts else "d.text"
    columns = ["d.doc_id", "d.url", "d.host", "d.crawl", "d.fetch_time", "d.language", "d.language_score",
               f"{text} AS text"]
    if "quality" in present:
        columns += ["q.quality_score", "q.quality_bucket"]
    if "duplicates" in present:
        columns += ["u.cluster_size"]
    columns.append("r.doc_id IS NOT NULL AND r.refined_text IS NOT NULL AS refined" if refine
                   else "false AS refined")
    joins = [f"JOIN {{{f.table}}} {f.alias} ON {f.alias}.doc_id = d.doc_id AND {f.keep}" for f in filters]
    if refine:
        joins.append(f"LEFT JOIN {{{REFINE_FILTER.table}}} r ON r.doc_id = d.doc_id")
    where = f"\nWHERE coalesce({REFINE_FILTER.keep}, true)" if refine else ""
    return f"SELECT {', '.join(columns)}\nFROM {{documents}} d\n" + "\n".join(joins) + where


DOCUMENTS_CURATED = ViewSpec(
    name="documents_curated",
    tables=("documents", *(f.table for f in SEED_FILTERS)),
    optional=(REFINE_FILTER.table,),
    description="the curated documents (kept by quality and dedup, not contaminated, not dropped by refine) with "
                "the text later stages read: refined, else PII-anonymised/C4-filtered, else extracted",
    sql=curated_sql,
)

VIEWS: dict[str, ViewSpec] = {view.name: view for view in (DOCUMENTS_QUALITY, DOCUMENTS_CURATED)}
