"""SQL views for analysts: decisions are joins, so re-thresholding is a WHERE clause, not a re-run."""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass

from refinery.udfs.label.taxonomy import code_columns


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


# --- Essential-Web v1.0 domain datasets over the `taxonomy` table (paper App. A.8, Alg. 2-9). Where the
# eai-taxonomy notebooks differ from the paper, these follow the paper: codes (not label strings) everywhere,
# reasoning depth excludes abstain and Indeterminate (6), and the classifier cut is applied where the paper has one.
# p/s = primary/secondary FDC code; v1, v2, rd, tc = primary document type v1/v2, reasoning depth, correctness.
_EAI_COLUMNS = ", ".join(f"t.{name}" for name, _ in code_columns())
_P, _S = "t.fdc_primary", "t.fdc_secondary"
_V1, _V2 = "t.document_type_v1_primary", "t.document_type_v2_primary"
_RD, _TC = "t.reasoning_depth_primary", "t.technical_correctness_primary"
_SCI = "('50', '51', '54', '57', '58', '59', '61')"
_STEM_SUBJECTS = "('50', '51', '52', '53', '54', '55', '56', '57', '58', '59', '60', '61', '62', '66', '00')"
DCLM_CUT = 0.01811  # DCLM-Pool -> DCLM-baseline cut on the DCLM fastText score (paper Alg. 5, 7, 9)
FINEMATH_CUT = 3.25  # FineMath classifier score (paper Alg. 3)

EAI_FILTERS = {
    "math": f"{_P} LIKE '51%' AND {_V1} IN (3, 4, 5, 9) AND {_V2} IN (5, 8, 9, 10, 15, 16, 18, 20, 23) "
            f"AND {_RD} IN (2, 3, 4, 5) AND {_TC} IN (4, 5)",
    "code": f"({_P} LIKE '005.1%' OR {_P} LIKE '005.3%') AND {_V1} IN (3, 5) AND {_V2} IN (5, 8, 10, 16, 18, 23) "
            f"AND {_RD} IN (3, 4, 5) AND {_TC} = 4",
    "medical": f"((left({_P}, 2) = '61' AND left({_S}, 2) IN {_SCI}) OR (left({_S}, 2) = '61' AND left({_P}, 2) IN "
               f"{_SCI})) AND ({_V1} IN (2, 3) OR {_V2} IN (3, 8, 10, 18)) "
               f"AND {_V1} NOT IN (1, 4, 5, 6, 8, 9, 10, 15, 16) "
               f"AND {_V2} NOT IN (1, 2, 4, 5, 6, 7, 11, 12, 13, 14, 16, 17, 19, 20, 22, 23, 24) "
               f"AND {_RD} IN (2, 3, 4, 5) AND {_TC} IN (4, 5)",
    "stem": f"left({_P}, 2) IN {_STEM_SUBJECTS} AND left({_S}, 2) IN {_STEM_SUBJECTS} AND {_RD} IS NOT NULL "
            f"AND {_RD} <> 6 AND ("
            f"((left({_P}, 5) IN ('005.1', '005.4') OR left({_S}, 5) IN ('005.1', '005.4')) AND {_V1} IN (2, 3, 4, 5) "
            f"AND {_V2} IN (3, 5, 8, 10, 16, 18, 23)) "
            f"OR ((left({_P}, 2) = '61' OR left({_S}, 2) = '61') AND {_V1} IN (2, 3, 4, 11) "
            f"AND {_V2} IN (3, 8, 9, 10, 14, 23)) "
            f"OR ((left({_P}, 2) = '62' OR left({_S}, 2) = '62') AND {_V1} IN (2, 3, 9, 11) "
            f"AND {_V2} IN (3, 4, 8, 9, 10, 14, 23)) "
            f"OR ({_V1} IN (2, 3) AND {_V2} IN (3, 10, 14)))",
    # Classifier variants: the published subsets (math-w-fm, code-w-dclm, med-w-dclm, stem-w-dclm).
    "math_fm": f"({_P} LIKE '51%' OR {_S} LIKE '51%') AND try_element_at(q.scores, 'finemath') >= {FINEMATH_CUT}",
    "code_dclm": f"({_P} LIKE '004%' OR {_P} LIKE '005%' OR {_P} LIKE '51%') "
                 f"AND {_V2} IN (5, 8, 10, 16, 18, 23) AND {_RD} IN (2, 3, 4, 5) "
                 f"AND try_element_at(q.scores, 'dclm') > {DCLM_CUT}",
}
EAI_FILTERS["medical_dclm"] = f"{EAI_FILTERS['medical']} AND try_element_at(q.scores, 'dclm') > {DCLM_CUT}"
EAI_FILTERS["stem_dclm"] = f"{EAI_FILTERS['stem']} AND try_element_at(q.scores, 'dclm') > {DCLM_CUT}"
_EAI_DESCRIPTIONS = {
    "math": "Top Math (paper Alg. 2): FDC 51x, reasoning 2-5, correctness 4-5",
    "code": "Top Code (Alg. 4): FDC 005.1/005.3, reasoning 3-5, correctness 4",
    "medical": "Medical (Alg. 6): FDC 61x with a science co-label, reasoning 2-5, correctness 4-5",
    "stem": "STEM (Alg. 8): science/technology subjects in both FDC codes, by code/medical/engineering/default branch",
    "math_fm": "Math w/ FM (Alg. 3): FDC 51x and quality.scores['finemath'] >= 3.25",
    "code_dclm": "Code w/ DCLM (Alg. 5): FDC 004/005/51x and quality.scores['dclm'] > 0.01811",
    "medical_dclm": "Med w/ DCLM (Alg. 7): eai_medical and quality.scores['dclm'] > 0.01811",
    "stem_dclm": "STEM w/ DCLM (Alg. 9): eai_stem and quality.scores['dclm'] > 0.01811",
}


def _eai_view(name: str) -> ViewSpec:
    scored = "q.scores" in EAI_FILTERS[name]
    join = "\nJOIN {quality} q ON q.doc_id = t.doc_id" if scored else ""
    return ViewSpec(
        name=f"eai_{name}",
        tables=("documents", "taxonomy", *(("quality",) if scored else ())),
        description=_EAI_DESCRIPTIONS[name],
        sql=f"""
SELECT d.doc_id, d.url, d.host, d.crawl, d.text, {_EAI_COLUMNS}{", q.scores" if scored else ""}
FROM {{taxonomy}} t JOIN {{documents}} d ON d.doc_id = t.doc_id{join}
WHERE t.status = 'ok' AND {EAI_FILTERS[name]}
""",
    )


EAI_VIEWS = tuple(_eai_view(name) for name in EAI_FILTERS)
VIEWS.update({view.name: view for view in EAI_VIEWS})
