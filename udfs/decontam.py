"""Scanning documents for benchmark n-grams (Bloom candidates) and GPT-3 style cleaning of hits."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from .bloom import BloomFilter
from .ngrams import ngram_hashes, normalize_tokens, token_hashes, token_spans


def bloom_candidates(text: str, bloom: BloomFilter, lengths: Iterable[int]) -> tuple[int, dict[int, str]]:
    """(n-grams checked, {hash: n-gram text} of those the filter may hold). Candidates still need verifying."""
    tokens = normalize_tokens(text)
    checked = 0
    candidates: dict[int, str] = {}
    for n, hashes in ngram_hashes(token_hashes(tokens), lengths).items():
        checked += len(hashes)
        signed = hashes.view(np.int64)
        for start in np.flatnonzero(bloom.contains(hashes)):
            candidates.setdefault(int(signed[start]), " ".join(tokens[start : start + n]))
    return checked, candidates


def matched_spans(text: str, matched: set[int], lengths: Iterable[int]) -> list[tuple[int, int]]:
    """Character spans of every occurrence of the matched n-grams (by hash), in text order."""
    spans = token_spans(text)
    tokens = normalize_tokens(text)
    found = []
    for n, hashes in ngram_hashes(token_hashes(tokens), lengths).items():
        for start in np.flatnonzero(np.isin(hashes.view(np.int64), list(matched))):
            found.append((spans[start][0], spans[start + n - 1][1]))
    return sorted(found)


def gpt3_clean(text: str, spans: list[tuple[int, int]], window: int = 200, min_piece: int = 200,
               max_hits: int = 10) -> list[str]:
    """GPT-3's cleaning (lm-evaluation-harness janitor): cut `window` characters around each hit, keep
    pieces longer than `min_piece`; more than `max_hits` hits drop the document (empty list)."""
    if len(spans) > max_hits:
        return []
    pieces = []
    cursor = 0
    for start, end in spans:
        cut_start, cut_end = max(0, start - window), min(len(text), end + window)
        if cut_start - cursor > min_piece:
            pieces.append(text[cursor:cut_start])
        cursor = max(cursor, cut_end)
    if len(text) - cursor > min_piece:
        pieces.append(text[cursor:])
    return pieces
