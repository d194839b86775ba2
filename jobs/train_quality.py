"""`refinery train-quality`: read labelled texts (jsonl, parquet or a Delta table), train fastText, report."""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

from refinery.jobs.base import InputError
from refinery.udfs.quality.train import TrainReport, TrainSettings, train_classifier


def read_texts(source: str, text_field: str = "text", spark_config=None) -> list[str]:
    """Texts of one input: a .jsonl/.jsonl.gz file, a .parquet file or folder, or a Delta table folder."""
    path = Path(source)
    if not path.exists():
        raise InputError(f"training input {source}: not found; pass a .jsonl(.gz), .parquet or Delta table path")
    if (path / "_delta_log").is_dir():
        return _read_delta(source, text_field, spark_config)
    if path.suffix == ".parquet" or (path.is_dir() and any(path.glob("*.parquet"))):
        import pyarrow.parquet as pq

        table = pq.read_table(source)
        if text_field not in table.column_names:
            raise InputError(f"training input {source}: no column {text_field!r} (has {table.column_names}); "
                             "pass --text-field")
        return [t for t in table.column(text_field).to_pylist() if isinstance(t, str)]
    if path.name.endswith((".jsonl", ".jsonl.gz", ".json", ".json.gz")):
        return _read_jsonl(path, text_field)
    raise InputError(f"training input {source}: unknown format; use .jsonl, .jsonl.gz, .parquet or a Delta table")


def _read_jsonl(path: Path, text_field: str) -> list[str]:
    opener = gzip.open if path.name.endswith(".gz") else open
    texts = []
    with opener(path, "rt", encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise InputError(f"training input {path} line {number}: not valid JSON ({err.msg})") from None
            text = record.get(text_field) if isinstance(record, dict) else None
            if not isinstance(text, str):
                raise InputError(f"training input {path} line {number}: no string field {text_field!r}; "
                                 "pass --text-field")
            texts.append(text)
    return texts


def _read_delta(source: str, text_field: str, spark_config) -> list[str]:
    from refinery.jobs.config import SparkConfig
    from refinery.jobs.session import get_spark

    spark = get_spark(spark_config or SparkConfig())
    frame = spark.read.format("delta").load(os.path.abspath(source))
    if text_field not in frame.columns:
        raise InputError(f"training input {source}: no column {text_field!r} (has {frame.columns}); pass --text-field")
    return [row[0] for row in frame.select(text_field).dropna().toLocalIterator()]


def train(positive: list[str], negative: list[str], output: str, text_field: str = "text",
          settings: TrainSettings | None = None, spark_config=None) -> TrainReport:
    pos = [t for source in positive for t in read_texts(source, text_field, spark_config)]
    neg = [t for source in negative for t in read_texts(source, text_field, spark_config)]
    try:
        return train_classifier(pos, neg, output, settings or TrainSettings())
    except ValueError as err:
        raise InputError(f"train-quality: {err}") from None
