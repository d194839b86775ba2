"""Evaluation benchmark items from jsonl / jsonl.gz / parquet / csv files, as n-grams; bad rows reported."""

from __future__ import annotations

import csv
import gzip
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from .ngrams import ngram_hashes, normalize_tokens, token_hashes


@dataclass(frozen=True)
class BenchmarkSpec:
    name: str
    path: str
    fields: tuple[str, ...]
    id_field: str | None = None


@dataclass(frozen=True)
class BenchmarkNgram:
    benchmark: str
    item_id: str
    ngram_hash: int  # signed 64-bit, as Spark stores it
    ngram: str
    length: int


@dataclass(frozen=True)
class RowProblem:
    benchmark: str
    path: str
    line: int
    kind: str  # malformed | short
    message: str

    def describe(self) -> str:
        return f"benchmark {self.benchmark}: {self.path} line {self.line}: {self.message}"


def item_text(record: dict[str, Any], fields: tuple[str, ...]) -> str:
    """Every string under the named fields (dotted paths into nested objects, lists flattened), in order."""
    parts: list[str] = []
    for field in fields:
        value: Any = record
        for key in field.split("."):
            value = value.get(key) if isinstance(value, dict) else None
        parts.extend(_strings(value))
    return " ".join(p for p in parts if p.strip())


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, list | tuple):
        for element in value:
            yield from _strings(element)
    elif isinstance(value, dict):
        for element in value.values():
            yield from _strings(element)


def item_ngrams(text: str, n: int, min_n: int) -> tuple[list[str], list[int]]:
    """The item's n-grams (texts and start positions); one full-length n-gram if it is shorter than n."""
    tokens = normalize_tokens(text)
    if len(tokens) < min_n:
        return tokens, []
    length = min(n, len(tokens))
    return tokens, list(range(len(tokens) - length + 1))


def read_benchmark(spec: BenchmarkSpec, path: str, n: int, min_n: int) -> Iterator[BenchmarkNgram | RowProblem]:
    """N-grams of every item in one file; a row that cannot be used yields a RowProblem naming its line."""
    for line, record, error in _records(path):
        if error is not None:
            yield RowProblem(spec.name, path, line, "malformed", error)
            continue
        text = item_text(record, spec.fields)
        if not text:
            yield RowProblem(spec.name, path, line, "malformed",
                             f"none of the fields {list(spec.fields)} holds text (keys: {sorted(record)[:10]})")
            continue
        item_id = str(record.get(spec.id_field)) if spec.id_field and record.get(spec.id_field) is not None \
            else f"line {line}"
        tokens, starts = item_ngrams(text, n, min_n)
        if not starts:
            yield RowProblem(spec.name, path, line, "short", f"{len(tokens)} tokens, fewer than {min_n}")
            continue
        length = min(n, len(tokens))
        hashes = ngram_hashes(token_hashes(tokens), [length])[length].view("int64")
        seen: set[int] = set()  # an item may repeat an n-gram (TruthfulQA answers do): one row each
        for start in starts:
            if int(hashes[start]) in seen:
                continue
            seen.add(int(hashes[start]))
            yield BenchmarkNgram(spec.name, item_id, int(hashes[start]), " ".join(tokens[start : start + length]),
                                 length)


def _records(path: str) -> Iterator[tuple[int, dict[str, Any], str | None]]:
    lower = path.lower()
    if lower.endswith(".parquet"):
        import pyarrow.parquet as pq

        for number, record in enumerate(pq.read_table(path).to_pylist(), start=1):
            yield number, record, None
        return
    opener = gzip.open if lower.endswith(".gz") else open
    with opener(path, "rb") as raw:
        stream = io.TextIOWrapper(raw, encoding="utf-8", errors="replace", newline="")
        if lower.removesuffix(".gz").endswith(".csv"):
            reader = csv.DictReader(stream)
            for record in reader:
                yield reader.line_num, record, None
            return
        for number, line in enumerate(stream, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                yield number, {}, f"not valid JSON ({err.msg} at column {err.colno})"
                continue
            if not isinstance(record, dict):
                yield number, {}, f"expected a JSON object, got {type(record).__name__}"
                continue
            yield number, record, None
