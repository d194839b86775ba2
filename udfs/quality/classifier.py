"""Document scores from trained classifiers: fastText (.bin/.ftz, e.g. DCLM's) or a Hugging Face sequence classifier.

Models load once per Python worker (module-level cache keyed by path and file stamp): Spark reuses its Python
workers across tasks, so a 1 GB fastText model or a BERT is read once per executor core, not once per batch.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from typing import Any

FASTTEXT_MAGIC = 793712314  # first int32 of every fastText .bin/.ftz (fastText's FASTTEXT_FILEFORMAT_MAGIC_INT32)
DEFAULT_LABEL = "__label__hq"
_WHITESPACE = re.compile(r"\s+")
_MODELS: dict[tuple, Any] = {}
LOADS: dict[str, int] = {}  # path -> times loaded in this process (tests check that batches share one load)


class ModelLoadError(RuntimeError):
    """A configured model is missing or unreadable; the message names the path and the fix."""


def fasttext_line(text: str, max_chars: int) -> str:
    # fastText reads one line; DCLM's scorer joins the lines with spaces the same way.
    return _WHITESPACE.sub(" ", text[:max_chars]).strip()


def check_fasttext_file(path: str) -> None:
    """Fail with a readable message before fastText's C++ loader sees a missing or foreign file."""
    if not os.path.isfile(path):
        raise ModelLoadError(f"fastText model {path}: file not found; set quality.classifiers[].path to a .bin/.ftz "
                             "(train one with `refinery train-quality`)")
    with open(path, "rb") as handle:
        head = handle.read(4)
    if len(head) < 4 or int.from_bytes(head, "little") != FASTTEXT_MAGIC:
        raise ModelLoadError(f"fastText model {path}: not a fastText .bin/.ftz file (bad header); "
                             "re-download or re-train it")


def _stamp(path: str) -> tuple:
    stat = os.stat(path)
    return (stat.st_size, stat.st_mtime_ns)


def load_fasttext(path: str):
    check_fasttext_file(path)
    key = ("fasttext", path, _stamp(path))
    if key not in _MODELS:
        import fasttext  # fasttext-predict: the official C++ predictor, no training code

        try:
            _MODELS[key] = fasttext.load_model(path)
        except (ValueError, MemoryError) as err:  # truncated files pass the header check and fail here
            raise ModelLoadError(f"fastText model {path}: cannot be loaded ({err}); re-train it") from err
        LOADS[path] = LOADS.get(path, 0) + 1
    return _MODELS[key]


def fasttext_scores(model, texts: list[str], label: str | None, max_chars: int) -> list[float | None]:
    """P(label) per text; None for empty text. An unknown label is a configuration error, reported once."""
    label = label or DEFAULT_LABEL
    labels = fasttext_labels(model)
    if label not in labels:
        raise ModelLoadError(f"fastText model has no label {label!r} (it has {sorted(labels)}); "
                             "set quality.classifiers[].label")
    scores: list[float | None] = []
    for text in texts:
        line = fasttext_line(text or "", max_chars)
        if not line:
            scores.append(None)
            continue
        # One text per call: fasttext-predict's list form returns no probabilities.
        labels, probs = model.predict(line, k=-1)
        scores.append(float(dict(zip(labels, probs, strict=True)).get(label, 0.0)))
    return scores


def fasttext_labels(model) -> set[str]:
    # fasttext-predict has no get_labels(); k=-1 returns every label for any input.
    return set(model.predict("x", k=-1)[0])


@dataclass
class HFClassifier:
    tokenizer: Any
    model: Any
    device: str
    label_index: int | None  # None: a regression head (FineWeb-Edu), the score is the raw output


def load_hf(path: str, label: str | None, device: str) -> HFClassifier:
    if not os.path.isdir(path) or not os.path.isfile(os.path.join(path, "config.json")):
        raise ModelLoadError(f"Hugging Face classifier {path}: not a model directory (no config.json); "
                             "set quality.classifiers[].path to a save_pretrained() folder")
    key = ("hf", path, _stamp(os.path.join(path, "config.json")), label, device)
    if key not in _MODELS:
        try:
            from transformers import AutoModelForSequenceClassification, AutoTokenizer
        except ImportError as err:
            raise ModelLoadError(f"Hugging Face classifier {path}: transformers is not installed; "
                                 "pip install 'refinery[llm]'") from err
        try:
            tokenizer = AutoTokenizer.from_pretrained(path)
            model = AutoModelForSequenceClassification.from_pretrained(path).to(device)
            model.train(False)  # inference mode (dropout off)
        except (OSError, ValueError) as err:
            raise ModelLoadError(f"Hugging Face classifier {path}: cannot be loaded ({err})") from err
        _MODELS[key] = HFClassifier(tokenizer, model, device, _label_index(model.config, label, path))
        LOADS[path] = LOADS.get(path, 0) + 1
    return _MODELS[key]


def _label_index(config, label: str | None, path: str) -> int | None:
    if config.num_labels == 1:
        return None
    if label is None:
        return config.num_labels - 1
    names = {name: int(i) for i, name in config.id2label.items()}
    if label not in names:
        raise ModelLoadError(f"Hugging Face classifier {path}: no label {label!r} (labels: {sorted(names)})")
    return names[label]


def hf_scores(clf: HFClassifier, texts: list[str], batch_size: int, max_length: int, max_chars: int
              ) -> list[float | None]:
    """Scores in input order; texts are batched by length so padding stays small."""
    import torch

    scores: list[float | None] = [None] * len(texts)
    order = sorted((i for i, t in enumerate(texts) if t and t.strip()), key=lambda i: len(texts[i]))
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            encoded = clf.tokenizer([texts[i][:max_chars] for i in chunk], padding=True, truncation=True,
                                    max_length=max_length, return_tensors="pt").to(clf.device)
            logits = clf.model(**encoded).logits.float()
            if clf.label_index is None:
                values = logits[:, 0]
            else:
                values = torch.softmax(logits, dim=-1)[:, clf.label_index]
            for i, value in zip(chunk, values.cpu().tolist(), strict=True):
                scores[i] = value if math.isfinite(value) else None
    return scores
