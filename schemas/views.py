"""SQL views for analysts: decisions are joins, so re-thresholding is a WHERE clause, not a re-run."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ViewSpec:
    name: str
    tables: tuple[str, ...]  # the view exists once all of these do
    sql: str  # {table} placeholders become the tables' qualified names
    description: str


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

VIEWS: dict[str, ViewSpec] = {view.name: view for view in (DOCUMENTS_QUALITY,)}
