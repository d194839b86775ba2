"""One `quality` row per document: signals grouped by filter, drop reasons, transformations, classifier scores."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from refinery.udfs import fs
from refinery.udfs.quality.c4 import c4_filtered_lines
from refinery.udfs.quality.classifier import fasttext_scores, hf_scores, load_fasttext, load_hf
from refinery.udfs.quality.fineweb import anonymize_pii
from refinery.udfs.quality.rules import (
    COUNT_SIGNALS,
    SIGNAL_GROUPS,
    all_quality_signals,
    quality_drop_reasons,
    signal_field,
)

log = logging.getLogger("refinery.quality")
FAILED_SIGNALS = "failed_signals"


@dataclass(frozen=True)
class Classifier:
    name: str
    kind: str  # fasttext | hf
    path: str
    label: str | None = None
    min_score: float | None = None
    max_chars: int = 10_000
    batch_size: int = 16
    max_length: int = 512
    device: str = "cpu"

    def scores(self, texts: list[str]) -> list[float | None]:
        path = fs.local_copy(self.path)  # a URI is copied to this node once (the loaders need a local file)
        if self.kind == "fasttext":
            return fasttext_scores(load_fasttext(path), texts, self.label, self.max_chars)
        model = load_hf(path, self.label, self.device)
        return hf_scores(model, texts, self.batch_size, self.max_length, self.max_chars)


@dataclass(frozen=True)
class QualitySettings:
    thresholds: dict[str, Any]
    pii: bool = False
    c4_line_filter: bool = False
    classifiers: tuple[Classifier, ...] = field(default_factory=tuple)
    primary: str | None = None
    fs_options: dict[str, Any] = field(default_factory=dict)  # storage.fs_options, for classifier URIs


def quality_rows(doc_ids: list[str], texts: list[str], settings: QualitySettings) -> list[dict[str, Any]]:
    rows = [_heuristics(doc_id, text or "", settings) for doc_id, text in zip(doc_ids, texts, strict=True)]
    if settings.classifiers:
        by_name = {c.name: c.scores([text or "" for text in texts]) for c in settings.classifiers}
        for i, row in enumerate(rows):
            row["scores"] = {name: scores[i] for name, scores in by_name.items()}
            row["quality_score"] = row["scores"][settings.primary] if settings.primary else None
            for c in settings.classifiers:
                score = row["scores"][c.name]
                if c.min_score is not None and score is not None and score < c.min_score:
                    row["drop_reasons"].append(f"classifier_{c.name}")
            row["keep"] = not row["drop_reasons"]
    return rows


def _heuristics(doc_id: str, text: str, settings: QualitySettings) -> dict[str, Any]:
    row: dict[str, Any] = {"doc_id": doc_id, "scores": None, "quality_score": None}
    try:
        signals = all_quality_signals(text, settings.thresholds)
        reasons = quality_drop_reasons(signals, settings.thresholds)
        for filter_name, names in SIGNAL_GROUPS.items():
            row[filter_name] = {signal_field(s): int(signals[s]) if s in COUNT_SIGNALS else float(signals[s])
                                for s in names}
    except Exception:  # a pathological text is a counted row outcome, never a failed task
        log.exception("quality signals failed for document %s", doc_id)
        reasons = [FAILED_SIGNALS]
        row.update({filter_name: None for filter_name in SIGNAL_GROUPS})
    row["drop_reasons"] = reasons
    row["keep"] = not reasons
    transformed, row["pii_emails"], row["pii_ips"] = text, None, None
    if settings.pii:
        transformed, row["pii_emails"], row["pii_ips"] = anonymize_pii(transformed)
    if settings.c4_line_filter:
        transformed = c4_filtered_lines(transformed, settings.thresholds)
    row["transformed_text"] = transformed if transformed != text else None
    return row
