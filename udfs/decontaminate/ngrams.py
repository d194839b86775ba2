"""Word n-grams for decontamination, normalised like lm-evaluation-harness's janitor, hashed vectorised."""

from __future__ import annotations

import re
from collections.abc import Iterable

import numpy as np
import xxhash

# lm-evaluation-harness lower-cases, deletes punctuation and splits on whitespace. It deletes only ASCII
# punctuation; we delete every non-word character so "Janet’s" and "Janet's" give the same token.
_NOT_WORD = re.compile(r"[^\w\s]|_")
_TOKEN = re.compile(r"\S+")
_P = np.uint64(0x100000001B3)  # FNV prime: the polynomial base that combines token hashes


def normalize_tokens(text: str) -> list[str]:
    return _NOT_WORD.sub("", text.lower()).split()


def token_spans(text: str) -> list[tuple[int, int]]:
    """Character span of each normalised token (tokens that are only punctuation vanish, as above)."""
    return [m.span() for m in _TOKEN.finditer(text) if _NOT_WORD.sub("", m.group().lower())]


def token_hashes(tokens: list[str]) -> np.ndarray:
    h = xxhash.xxh3_64_intdigest
    return np.fromiter((h(t.encode()) for t in tokens), dtype=np.uint64, count=len(tokens))


def ngram_hashes(hashes: np.ndarray, lengths: Iterable[int]) -> dict[int, np.ndarray]:
    """{n: hash of every n-gram starting at each token position} for each wanted n, in one pass."""
    wanted = sorted(set(lengths))
    out: dict[int, np.ndarray] = {}
    if not wanted or len(hashes) < wanted[0]:
        return out
    rolling = hashes.copy()
    with np.errstate(over="ignore"):
        for n in range(1, wanted[-1] + 1):
            if n > 1:
                if len(hashes) < n:
                    break
                rolling = rolling[:-1] * _P + hashes[n - 1 :]
            if n in wanted:
                out[n] = _mix(rolling + np.uint64(n))
    return out


def ngram_hash(tokens: list[str]) -> int:
    """Hash of one n-gram, equal to ngram_hashes' value for it (used on the benchmark side)."""
    return int(ngram_hashes(token_hashes(tokens), [len(tokens)])[len(tokens)][0])


def _mix(x: np.ndarray) -> np.ndarray:
    # splitmix64's finaliser: spreads the polynomial's low-entropy bits over all 64.
    x = x ^ (x >> np.uint64(30))
    x = x * np.uint64(0xBF58476D1CE4E5B9)
    x = x ^ (x >> np.uint64(27))
    x = x * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))
