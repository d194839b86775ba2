"""MinHash LSH as pure functions: datatrove-compatible shingles, batch signatures with numpy, band hashes.

Normalisation and word 5-gram shingles follow datatrove 0.10.1's MinhashDedupSignature (FineWeb): the same
`simplify_text`, and word tokens as its spaCy English tokenizer produces them from simplified text (see
`word_tokens`), so a shingle set here is datatrove's shingle set. Hashing is ours and 64-bit: xxh3-64 per word,
combined per 5-gram in numpy, then one multiply-add permutation per MinHash row over the whole batch at once.
datasketch's `MinHash.bulk` computes one document per call with a modulo per value (`(a*x+b) % p`): the batch
matrix here avoids both the per-document Python overhead and numpy's slow uint64 modulo (bench/dedup.py times both).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

import numpy as np
import xxhash

from refinery.udfs.dedup.tokens import CURRENCY_PREFIX, ICON_CLASS, QUOTE, SPACY_SPLITS, UNIT_SUFFIX

# datatrove.utils.text.PUNCTUATION: these characters and the C0/C1 controls except \t \n (and \r) become spaces.
_PUNCTUATION = '!/—”:％１〈&(、━\\【#%「」，】；+^]~“《„\';’{|∶´[=-`*．（–？！：$～«〉,><》)?）。…@_."}►»' + "".join(
    chr(x) for a, b in ((0, 9), (11, 13), (13, 32), (127, 160)) for x in range(a, b))
_PUNCT_TO_SPACE = str.maketrans(_PUNCTUATION, " " * len(_PUNCTUATION))
# Python's \d is Unicode category Nd, the same set as datatrove's regex \p{Nd}.
_NUMBERS = re.compile(r"\d+([.,،٫⎖⎗⎘]\d+)?")
_WHITESPACE = re.compile(r"\s+")
_SPLIT_WORDS = {word: tuple(parts.split()) for word, parts in SPACY_SPLITS.items()}
_UNIT = re.compile(r"([0-9])(" + UNIT_SUFFIX + r")(?!\S)")
_PREFIX = re.compile(r"(?<!\S)(" + CURRENCY_PREFIX + "|" + QUOTE + r")(?=\S)")
_QUOTE_SUFFIX = re.compile(r"(?<=\S)(" + QUOTE + r")(?!\S)")
_ICON = re.compile("([" + ICON_CLASS + "])")

_MASK64 = np.uint64(0xFFFFFFFFFFFFFFFF)
_MIX1, _MIX2 = np.uint64(0xFF51AFD7ED558CCD), np.uint64(0xC4CEB9FE1A85EC53)
_POLY = np.uint64(0x9E3779B97F4A7C15)  # odd: the 5-gram combination stays a bijection in its last word
_word_hash = xxhash.xxh3_64_intdigest
_SLICE_ROWS = 16_384  # shingles per permutation matrix: 16k x 112 x 8 bytes = 14 MiB, stays in cache-friendly sizes


def simplify_text(text: str) -> str:
    """datatrove's simplify_text with its default TextNormConfig (lowercase, numbers -> 0, punctuation, diacritics)."""
    text = _NUMBERS.sub("0", text.lower()).translate(_PUNCT_TO_SPACE)
    text = _WHITESPACE.sub(" ", text.strip())
    if not text.isascii():  # NFD + drop combining marks is a no-op on ASCII: skip the per-character pass
        text = "".join(c for c in unicodedata.normalize("NFD", text) if unicodedata.category(c) != "Mn")
    return text.strip()


def word_tokens(simplified: str) -> list[str]:
    """Words as spaCy's blank English tokenizer splits simplified text: whitespace, its contraction exceptions
    ("cannot" -> "can not"), unit suffixes after a digit ("0km" -> "0 km"), currency and quote prefixes ("£0"),
    and symbols ("n°0")."""
    words = simplified.split()
    # The rules rarely apply: cheap guards first, the word-by-word rewrite only when one may.
    if not _SPLIT_WORDS.keys().isdisjoint(words):
        words = [part for word in words for part in _SPLIT_WORDS.get(word, (word,))]
        simplified = " ".join(words)
    ascii_text = simplified.isascii()
    if ascii_text and "0" not in simplified:
        return words
    text = _UNIT.sub(r"\1 \2", simplified)
    if not ascii_text:
        text = _PREFIX.sub(r"\1 ", _QUOTE_SUFFIX.sub(r" \1", _ICON.sub(r" \1 ", text)))
    return text.split()


def _fmix64(h: np.ndarray) -> np.ndarray:
    h ^= h >> np.uint64(33)
    h *= _MIX1
    h ^= h >> np.uint64(33)
    h *= _MIX2
    h ^= h >> np.uint64(33)
    return h


def shingles(text: str, n: int = 5) -> np.ndarray:
    """64-bit hashes of the word n-grams of simplified text (uint64, with repeats); empty under n words."""
    words = word_tokens(simplify_text(text))
    if len(words) < n:
        return np.empty(0, dtype=np.uint64)
    w = np.fromiter((_word_hash(x.encode()) for x in words), dtype=np.uint64, count=len(words))
    count = len(words) - n + 1
    h = w[:count].copy()
    with np.errstate(over="ignore"):
        for k in range(1, n):
            h = h * _POLY + w[k : k + count]
        return _fmix64(h)


def permutations(num_perm: int, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """(a, b) of the row permutations x -> a*x + b mod 2^64; a odd, so each is a bijection of 64-bit values."""
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 2**64, size=num_perm, dtype=np.uint64, endpoint=False) | np.uint64(1)
    b = rng.integers(0, 2**64, size=num_perm, dtype=np.uint64, endpoint=False)
    return a, b


def signatures(shingle_sets: Sequence[np.ndarray], perms: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """MinHash signatures (len(shingle_sets) x num_perm, uint64) of many documents in a few numpy calls.
    A document without shingles gets a row of 2^64-1 (callers skip it: it has no near-duplicate bands)."""
    a, b = perms
    out = np.full((len(shingle_sets), len(a)), _MASK64, dtype=np.uint64)
    lengths = np.fromiter((len(s) for s in shingle_sets), dtype=np.int64, count=len(shingle_sets))
    docs = np.flatnonzero(lengths)
    buffer = np.empty((_SLICE_ROWS, len(a)), dtype=np.uint64)
    start = 0
    while start < len(docs):
        # Take whole documents up to ~_SLICE_ROWS shingles (at least one document, however long).
        stop = start + max(1, int(np.searchsorted(np.cumsum(lengths[docs[start:]]), _SLICE_ROWS, "right")))
        chunk = docs[start:stop]
        flat = np.concatenate([shingle_sets[i] for i in chunk])
        # In place in one reused buffer: a fresh 14 MiB temporary per slice costs more in page faults than the maths.
        if len(flat) > len(buffer):
            buffer = np.empty((len(flat), len(a)), dtype=np.uint64)
        hashed = buffer[: len(flat)]
        np.multiply(flat[:, None], a[None, :], out=hashed)
        np.add(hashed, b[None, :], out=hashed)
        # One contiguous min per document: numpy's reduceat over axis 0 is ~5x slower than this loop.
        offset = 0
        for doc in chunk:
            np.minimum.reduce(hashed[offset : offset + lengths[doc]], axis=0, out=out[doc])
            offset += lengths[doc]
        start = stop
    return out


def band_hashes(sigs: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """One signed 64-bit hash per (document, band) of its `rows` signature values (len(sigs) x bands, int64)."""
    if sigs.shape[1] != bands * rows:
        raise ValueError(f"signature width {sigs.shape[1]} is not bands x rows = {bands} x {rows}")
    banded = sigs.reshape(len(sigs), bands, rows)
    h = np.zeros((len(sigs), bands), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for r in range(rows):
            h = _fmix64(h * _POLY + banded[:, :, r])
    return h.view(np.int64)


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """Exact Jaccard similarity of two shingle-hash arrays (repeats ignored); 0 when both are empty."""
    a, b = np.unique(a), np.unique(b)
    union = len(a) + len(b)
    if union == 0:
        return 0.0
    common = len(np.intersect1d(a, b, assume_unique=True))
    return common / (union - common)


def estimated_jaccard(sig_a: np.ndarray, sig_b: np.ndarray) -> float:
    return float(np.mean(sig_a == sig_b))


def candidate_probability(similarity: float, bands: int, rows: int) -> float:
    """Chance that two documents of this Jaccard similarity share at least one band: 1 - (1 - s^r)^b."""
    return 1.0 - (1.0 - similarity**rows) ** bands


def threshold(bands: int, rows: int) -> float:
    """The similarity where the S-curve is steepest, approximately (1/b)^(1/r)."""
    return (1.0 / bands) ** (1.0 / rows)


def threshold_curve(bands: int, rows: int, similarities: Sequence[float] | None = None) -> list[tuple[float, float]]:
    """(Jaccard similarity, probability of becoming a candidate pair) for b bands of r rows."""
    points = similarities if similarities is not None else [round(0.5 + 0.05 * i, 2) for i in range(11)]
    return [(s, candidate_probability(s, bands, rows)) for s in points]
