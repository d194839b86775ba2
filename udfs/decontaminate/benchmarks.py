"""Evaluation benchmark items from jsonl / jsonl.gz / parquet / csv files, as n-grams; bad rows reported."""

from __future__ import annotations

import csv
import gzip
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from refinery.udfs import fs
from refinery.udfs.decontaminate.ngrams import ngram_hashes, normalize_tokens, token_hashes


@dataclass(frozen=True)
class BenchmarkSpec:
    name: str
    path: str
    fields: tuple[str, ...]
    id_field: str | None = None
    # Multiple choice: the fields that list the choices (one element per choice) and the field naming the gold
    # answer (its index in the choices, or its text). Empty/None: not a multiple-choice set.
    choices: tuple[str, ...] = ()
    answer: str | None = None


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
        parts.extend(_strings(_get(record, field)))
    return " ".join(p for p in parts if p.strip())


def choice_variants(record: dict[str, Any], spec: BenchmarkSpec) -> list[str]:
    """Context + one answer, for each choice (and for the gold answer when it is given as text).

    The flattened item puts every choice after the context, so a page quoting the context and the correct answer
    shares no n-gram with it across that join unless the answer is the first choice; these texts do."""
    if not spec.choices and spec.answer is None:
        return []
    context = item_text(record, tuple(f for f in spec.fields if f not in spec.choices and f != spec.answer))
    answers = [s for field in spec.choices for s in _strings(_get(record, field)) if s.strip()]
    gold = _get(record, spec.answer) if spec.answer else None
    if isinstance(gold, str) and gold.strip() and gold not in answers:
        answers.append(gold)
    return [f"{context} {answer}" for answer in answers]


def _get(record: dict[str, Any], field: str) -> Any:
    value: Any = record
    for key in field.split("."):
        value = value.get(key) if isinstance(value, dict) else None
    return value


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


def read_benchmark(spec: BenchmarkSpec, path: str, n: int, min_n: int, variants: bool = True
                   ) -> Iterator[BenchmarkNgram | RowProblem]:
    """N-grams of every item in one file; a row that cannot be used yields a RowProblem naming its line.

    With `variants`, a multiple-choice item also gives the n-grams of its choice_variants (same item id)."""
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
        seen: set[int] = set()  # an item may repeat an n-gram (TruthfulQA answers do): one row each
        tokens, starts = item_ngrams(text, n, min_n)
        yield from _ngram_rows(spec.name, item_id, tokens, starts, n, seen)
        for variant in choice_variants(record, spec) if variants else ():
            # a variant under min_n tokens adds nothing; one can hold the only n-gram of a short item
            yield from _ngram_rows(spec.name, item_id, *item_ngrams(variant, n, min_n), n, seen)
        if not seen:
            yield RowProblem(spec.name, path, line, "short", f"{len(tokens)} tokens, fewer than {min_n}")


def _ngram_rows(benchmark: str, item_id: str, tokens: list[str], starts: list[int], n: int, seen: set[int]
                ) -> Iterator[BenchmarkNgram]:
    if not starts:
        return
    length = min(n, len(tokens))
    hashes = ngram_hashes(token_hashes(tokens), [length])[length].view("int64")
    for start in starts:
        if int(hashes[start]) in seen:
            continue
        seen.add(int(hashes[start]))
        yield BenchmarkNgram(benchmark, item_id, int(hashes[start]), " ".join(tokens[start : start + length]), length)


def _records(path: str) -> Iterator[tuple[int, dict[str, Any], str | None]]:
    lower = path.lower()
    if lower.endswith(".parquet"):
        import pyarrow.parquet as pq

        with fs.open_binary(path) as handle:
            table = pq.read_table(handle)
        for number, record in enumerate(table.to_pylist(), start=1):
            yield number, record, None
        return
    with fs.open_binary(path) as handle, (gzip.open(handle, "rb") if lower.endswith(".gz") else handle) as raw:
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
