"""Gopher quality and repetition signals (Rae et al. 2021, table A1), computed as datatrove 0.10 computes them."""

from __future__ import annotations

import re
from collections import Counter
from operator import itemgetter

from refinery.udfs.quality.text import PUNCTUATION_SET, STOP_WORDS, split_into_words

TOP_NGRAM_SIZES = (2, 3, 4)
DUP_NGRAM_SIZES = (5, 6, 7, 8, 9, 10)
_PARAGRAPH_BREAK = re.compile(r"\n{2,}")
_LINE_BREAK = re.compile(r"\n+")


def gopher_quality_signals(text: str, words: list[str] | None = None) -> dict[str, float]:
    """GopherQualityFilter's measurements; `words` are split_into_words(text) when the caller has them already."""
    words = split_into_words(text) if words is None else words
    n_words = len(words)
    # a "word" made only of punctuation does not count towards the length rules
    lengths = [len(w) for w in words if not PUNCTUATION_SET.issuperset(w)]
    lines = text.splitlines()
    n_lines = len(lines)
    return {
        "gopher_words": len(lengths),
        "gopher_mean_word_length": sum(lengths) / len(lengths) if lengths else 0.0,
        # datatrove divides the symbol counts by all words, punctuation tokens included
        "gopher_hash_word_ratio": text.count("#") / n_words if n_words else 0.0,
        "gopher_ellipsis_word_ratio": (text.count("...") + text.count("…")) / n_words if n_words else 0.0,
        "gopher_bullet_lines_ratio": (
            sum(line.lstrip().startswith(("•", "-")) for line in lines) / n_lines if n_lines else 0.0
        ),
        "gopher_end_ellipsis_lines_ratio": (
            sum(line.rstrip().endswith(("...", "…")) for line in lines) / n_lines if n_lines else 0.0
        ),
        "gopher_alpha_words_ratio": sum(_has_alpha(w) for w in words) / n_words if n_words else 0.0,
        "gopher_stop_words": len(STOP_WORDS.intersection(words)),
    }


def _has_alpha(word: str) -> bool:
    # most words are all letters; isalpha() answers those without a per-character loop
    return word.isalpha() or any(c.isalpha() for c in word)


def gopher_repetition_signals(text: str, words: list[str] | None = None) -> dict[str, float]:
    """GopherRepetitionFilter's fractions: duplicate paragraphs/lines and n-gram repetition, over len(text) chars."""
    words = split_into_words(text) if words is None else words
    n_chars = len(text)
    signals: dict[str, float] = {"gopher_text_chars": n_chars}
    paragraphs = _PARAGRAPH_BREAK.split(text.strip())
    lines = _LINE_BREAK.split(text)
    for name, parts in (("para", paragraphs), ("line", lines)):
        duplicates, duplicate_chars = find_duplicates(parts)
        signals[f"gopher_dup_{name}_frac"] = duplicates / len(parts)
        signals[f"gopher_dup_{name}_char_frac"] = duplicate_chars / n_chars if n_chars else 0.0
    for n in TOP_NGRAM_SIZES:
        signals[f"gopher_top_{n}_gram_char_frac"] = top_ngram_chars(words, n) / n_chars if n_chars else 0.0
    # datatrove compares n-grams of 5+ words by their concatenation without spaces: slice one joined string
    joined = "".join(words)
    offsets = [0]
    for word in words:
        offsets.append(offsets[-1] + len(word))
    for n in DUP_NGRAM_SIZES:
        chars = duplicated_ngram_chars(joined, offsets, n)
        signals[f"gopher_dup_{n}_gram_char_frac"] = chars / n_chars if n_chars else 0.0
    return signals


def find_duplicates(parts: list[str]) -> tuple[int, int]:
    """(repeated elements, their characters) counting every occurrence after the first, like datatrove's."""
    counts = Counter(parts)
    if len(counts) == len(parts):
        return 0, 0
    repeats = [(part, count - 1) for part, count in counts.items() if count > 1]
    return sum(r for _, r in repeats), sum(len(part) * r for part, r in repeats)


def top_ngram_chars(words: list[str], n: int) -> int:
    """Characters covered by the most frequent n-gram (" "-joined length x count; ties go to the first seen)."""
    if len(words) < n:
        return 0
    # word tuples stand in for datatrove's " ".join strings: words hold no spaces, so both compare alike,
    # and Counter keeps first-seen order, so max() breaks ties as most_common(1) does
    counts = Counter(zip(*(words[k:] for k in range(n)), strict=False))
    gram, count = max(counts.items(), key=itemgetter(1))
    return (sum(map(len, gram)) + n - 1) * count


def duplicated_ngram_chars(joined: str, offsets: list[int], n: int) -> int:
    """Characters of n-grams seen before, scanning left to right and jumping over each repeat (datatrove's walk)."""
    grams = [joined[start:end] for start, end in zip(offsets, offsets[n:], strict=False)]
    counts = Counter(grams)
    if len(counts) == len(grams):  # the usual case: nothing repeats
        return 0
    # Only n-grams that occur twice or more can be repeats; the walk visits those positions alone, which
    # is the same walk as datatrove's (a position it steps over one by one changes nothing).
    repeats = {gram for gram, count in counts.items() if count > 1}
    seen: set[str] = set()
    repeated = next_position = 0
    for position in [p for p, gram in enumerate(grams) if gram in repeats]:
        if position < next_position:
            continue
        gram = grams[position]
        if gram in seen:
            repeated += len(gram)
            next_position = position + n
        else:
            seen.add(gram)
            next_position = position + 1
    return repeated
