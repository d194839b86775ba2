"""Scanning documents for benchmark n-grams (Bloom candidates) and GPT-3 style cleaning of hits."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from refinery.udfs.decontaminate.bloom import BloomFilter
from refinery.udfs.decontaminate.ngrams import ngram_hashes, normalize_tokens, token_hashes, token_spans


def bloom_candidates(text: str, bloom: BloomFilter, lengths: Iterable[int]) -> tuple[int, dict[int, str]]:
    """(n-grams checked, {hash: n-gram text} of those the filter may hold). Candidates still need verifying."""
    return bloom_candidates_batch([text], bloom, lengths)[0]


def bloom_candidates_batch(texts: list[str], bloom: BloomFilter,
                           lengths: Iterable[int]) -> list[tuple[int, dict[int, str]]]:
    """bloom_candidates for many texts with one filter lookup: per-call numpy overhead, not the bit probes,
    dominates short documents, so the n-grams of a whole Arrow batch are checked together."""
    lengths = sorted(set(lengths))
    tokens_of, segments, arrays = [], [], []  # segment: (text index, n, offset of its first n-gram)
    offset = 0
    for index, text in enumerate(texts):
        tokens = normalize_tokens(text)
        tokens_of.append(tokens)
        for n, hashes in ngram_hashes(token_hashes(tokens), lengths).items():
            segments.append((index, n, offset))
            arrays.append(hashes)
            offset += len(hashes)
    if not arrays:
        return [(0, {}) for _ in texts]
    checked = [0] * len(texts)
    for (index, _, _), hashes in zip(segments, arrays, strict=True):
        checked[index] += len(hashes)
    every = np.concatenate(arrays)
    starts = np.array([s[2] for s in segments])
    signed = every.view(np.int64)
    found: list[dict[int, str]] = [{} for _ in texts]
    for hit in np.flatnonzero(bloom.contains(every)):  # hits are rare: map each back to its text
        index, n, first = segments[int(np.searchsorted(starts, hit, side="right")) - 1]
        position = int(hit) - first
        found[index].setdefault(int(signed[hit]), " ".join(tokens_of[index][position : position + n]))
    return list(zip(checked, found, strict=True))


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
