"""A Bloom filter over 64-bit hashes, as a numpy bit array: vectorised adds and lookups, mergeable."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

_SALT = np.uint64(0x9E3779B97F4A7C15)


@dataclass
class BloomFilter:
    bits: np.ndarray  # uint64 words
    num_bits: int
    num_hashes: int

    @classmethod
    def for_capacity(cls, items: int, false_positive_rate: float) -> BloomFilter:
        """Sized for `items` distinct keys at the target rate: m = -n ln p / ln²2, k = m/n ln 2."""
        if not 0 < false_positive_rate < 1:
            raise ValueError(f"false_positive_rate must be in (0, 1), got {false_positive_rate}")
        items = max(items, 1)
        num_bits = max(64, math.ceil(-items * math.log(false_positive_rate) / math.log(2) ** 2))
        num_hashes = max(1, min(32, round(num_bits / items * math.log(2))))
        return cls(np.zeros((num_bits + 63) // 64, dtype=np.uint64), num_bits, num_hashes)

    def _position(self, keys: np.ndarray, second: np.ndarray, i: int) -> np.ndarray:
        # Kirsch-Mitzenmacher double hashing: the i-th of k positions from two hashes of the key.
        # (uint64 array arithmetic wraps silently; only numpy scalars warn on overflow.)
        return (keys + np.uint64(i) * second) % np.uint64(self.num_bits)

    @staticmethod
    def _second(keys: np.ndarray) -> np.ndarray:
        return ((keys ^ _SALT) * _SALT) | np.uint64(1)

    def add(self, keys: np.ndarray) -> None:
        keys = keys.astype(np.uint64, copy=False)
        second = self._second(keys)
        for i in range(self.num_hashes):
            pos = self._position(keys, second, i)
            np.bitwise_or.at(self.bits, pos >> np.uint64(6), np.uint64(1) << (pos & np.uint64(63)))

    def contains(self, keys: np.ndarray) -> np.ndarray:
        """Boolean mask: True where the key may be in the set (never False for a member)."""
        keys = keys.astype(np.uint64, copy=False)
        alive = np.arange(len(keys))
        candidates, second = keys, self._second(keys)
        # Probe one position at a time and keep only the survivors: with the filter half full, each
        # probe rejects half of the non-members, so a lookup costs about 2 probes instead of k.
        for i in range(self.num_hashes):
            pos = self._position(candidates, second, i)
            hit = ((self.bits[pos >> np.uint64(6)] >> (pos & np.uint64(63))) & np.uint64(1)).astype(bool)
            alive, candidates, second = alive[hit], candidates[hit], second[hit]
            if not len(alive):
                break
        mask = np.zeros(len(keys), dtype=bool)
        mask[alive] = True
        return mask

    def union(self, other: BloomFilter) -> BloomFilter:
        if (other.num_bits, other.num_hashes) != (self.num_bits, self.num_hashes):
            raise ValueError("Bloom filters of different sizes cannot be merged")
        return BloomFilter(self.bits | other.bits, self.num_bits, self.num_hashes)

    @property
    def nbytes(self) -> int:
        return int(self.bits.nbytes)

    def expected_false_positive_rate(self) -> float:
        fill = float(np.unpackbits(self.bits.view(np.uint8)).sum()) / self.num_bits
        return fill**self.num_hashes
