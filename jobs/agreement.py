"""`refinery agreement`: read two taxonomy labelings (the lakehouse's `taxonomy` table, another lakehouse or Delta
table, or a parquet / jsonl file), align them on doc_id and report kappa per category and NMI between categories.
Only label columns travel to the driver, never document text."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from refinery.udfs.label.agreement import (
    AGREEMENT_CATEGORIES,
    NMI_AVERAGE_EXCLUDES,
    Agreement,
    agreement,
    columns_of,
    label_set,
    labels_for_nmi,
    nmi,
)
from refinery.udfs.label.taxonomy import INT_CATEGORIES, fdc_levels

from .base import InputError

# The published Essential-Web schema: eai_taxonomy.<struct>.{primary,secondary}.code
_PUBLISHED = {"free_decimal_correspondence": "fdc", **{c: c for c in INT_CATEGORIES}}
_LABEL_COLUMNS = [c for cat in AGREEMENT_CATEGORIES for c in columns_of(cat)]


def load_labeling(source: str, lake=None) -> pd.DataFrame:
    """doc_id, the label columns and input_chars of the documents a labeling labelled successfully. `source` is
    `taxonomy` (the configured lakehouse), a lakehouse root or Delta table folder, or a .parquet / .jsonl(.gz) file
    with the taxonomy table's columns or the published nested `eai_taxonomy` struct (and a doc_id)."""
    if source == "taxonomy":
        if lake is None or not lake.exists("taxonomy"):
            raise InputError("agreement: the lakehouse has no `taxonomy` table yet; run the label stage first")
        return _from_spark(lake.read("taxonomy"))
    path = Path(source)
    if path.is_dir():
        table = path / "taxonomy" if (path / "taxonomy" / "_delta_log").is_dir() else path
        if not (table / "_delta_log").is_dir() or lake is None:
            raise InputError(f"agreement: {source} is neither a Delta table nor a lakehouse with a taxonomy table")
        return _from_spark(lake.spark.read.format("delta").load(str(table.resolve())))
    if not path.is_file():
        raise InputError(f"agreement: {source}: not found; give `taxonomy`, a lakehouse folder, a Delta table, or a "
                         ".parquet / .jsonl file")
    # dtype=False: JSON strings stay strings, so FDC codes keep their leading zeros ("005", not 5)
    frame = (pd.read_parquet(path) if path.suffix == ".parquet"
             else pd.read_json(path, lines=True, dtype=False, convert_dates=False))
    return _normalise(frame, source)


def _from_spark(df) -> pd.DataFrame:
    kept = df.where("status = 'ok'").select("doc_id", *_LABEL_COLUMNS, "input_chars")
    return kept.toPandas()


def _normalise(frame: pd.DataFrame, source: str) -> pd.DataFrame:
    if "doc_id" not in frame.columns:
        raise InputError(f"agreement: {source} has no doc_id column; labelings are aligned on doc_id")
    if "status" in frame.columns:
        frame = frame[frame["status"] == "ok"]
    if "input_chars" not in frame.columns:  # NMI weighs documents by length; without the text, equally
        frame = frame.assign(input_chars=frame["text"].str.len() if "text" in frame.columns else 1)
    if "eai_taxonomy" in frame.columns:
        frame = pd.concat([frame[["doc_id", "input_chars"]].reset_index(drop=True),
                           pd.DataFrame([_flatten(t) for t in frame["eai_taxonomy"]])], axis=1)
    missing = [c for c in _LABEL_COLUMNS if c not in frame.columns]
    if missing:
        raise InputError(f"agreement: {source} lacks the column(s) {', '.join(missing[:5])}; give the taxonomy "
                         "table's columns or the published eai_taxonomy struct")
    return frame[["doc_id", *_LABEL_COLUMNS, "input_chars"]]


def _flatten(taxonomy) -> dict:
    taxonomy = json.loads(taxonomy) if isinstance(taxonomy, str) else taxonomy
    row = {}
    for struct, category in _PUBLISHED.items():
        for rank in ("primary", "secondary"):
            code = ((taxonomy.get(struct) or {}).get(rank) or {}).get("code")
            if category == "fdc":
                code = None if code in (None, "", "-1") else str(code)
                for n, level in enumerate(fdc_levels(code), start=1):
                    row[f"fdc_{rank}_l{n}"] = level
            else:
                row[f"{category}_{rank}"] = None if code in (None, "") else int(code)
    return row


@dataclass(frozen=True)
class Report:
    rows: int
    kappas: list[Agreement]
    nmi: dict[tuple[str, str], float]
    nmi_average: float


def compare(first: pd.DataFrame, second: pd.DataFrame, weighted: bool = False, pooled: bool = False,
            top_pick: bool = False) -> Report:
    """Kappa per category over the documents both labelings have, and NMI between categories of the first."""
    both = first.merge(second, on="doc_id", suffixes=("_a", "_b"))
    kappas = []
    for category in AGREEMENT_CATEGORIES:
        p, s = columns_of(category)
        sets = [[label_set(a, b, top_pick) for a, b in zip(_values(both, f"{p}{x}"), _values(both, f"{s}{x}"),
                                                            strict=True)] for x in ("_a", "_b")]
        kappas.append(agreement(category, sets[0], sets[1], weighted=weighted, pooled=pooled))
    matrix = category_nmi(first)
    kept = [c for c in AGREEMENT_CATEGORIES if c not in NMI_AVERAGE_EXCLUDES]
    pairs = [matrix[(x, y)] for i, x in enumerate(kept) for y in kept[i + 1 :] if matrix[(x, y)] == matrix[(x, y)]]
    return Report(len(both), kappas, matrix, sum(pairs) / len(pairs) if pairs else float("nan"))


def category_nmi(frame: pd.DataFrame) -> dict[tuple[str, str], float]:
    """NMI of every pair of categories over one labeling, each document weighted by its length in characters."""
    labels = {c: [labels_for_nmi(a, b) for a, b in zip(*(_values(frame, col) for col in columns_of(c)), strict=True)]
              for c in AGREEMENT_CATEGORIES}
    weights = [float(w) for w in frame["input_chars"]]
    matrix = {}
    for i, x in enumerate(AGREEMENT_CATEGORIES):
        matrix[(x, x)] = 1.0
        for y in AGREEMENT_CATEGORIES[i + 1 :]:
            matrix[(x, y)] = matrix[(y, x)] = nmi(labels[x], labels[y], weights)
    return matrix


def _values(frame: pd.DataFrame, column: str) -> list:
    """A column as Python values, pandas' NaN for a missing integer turned back into None."""
    return [None if pd.isna(v) else (int(v) if isinstance(v, float) else v) for v in frame[column].tolist()]
