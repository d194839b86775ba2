"""Benchmark n-grams, the Bloom filter and the document scan."""
