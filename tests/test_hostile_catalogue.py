"""The hostile-input catalogue (tests/data/hostile/recipes.py) through the Spark stages, in one bounded test.

Every case must get its named outcome: a file status and counters in `ingest_files`, a counter in `runs`, or a
named error with its message. Nothing hangs a task, nothing exhausts memory, nothing vanishes silently.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import pytest

from refinery.jobs.base import InputError, run_stage
from refinery.jobs.benchmark_index import load_or_build_index
from refinery.jobs.config import ConfigError, load_benchmarks, load_config
from refinery.jobs.ingest import IngestStage
from refinery.jobs.quality import QualityStage, build_settings
from refinery.jobs.storage import Lakehouse
from refinery.jobs.validate import validate
from refinery.schemas.tables import INGEST_FILES
from refinery.udfs.quality.classifier import ModelLoadError

from .conftest import lake_config
from .data.hostile.recipes import (
    CONFIG_CASES,
    INGEST_CASES,
    broken_benchmark,
    expected_file_outcome,
    foreign_model_files,
    missing_benchmark,
    three_pages,
    write_ingest_cases,
)

# A guard against hangs (a page that is not stopped, a read that never ends), not a benchmark: about 1 min on an
# idle 2-core machine, several on one shared by many jobs.
BUDGET_S = 600


def test_every_hostile_input_gets_its_named_outcome(spark, tmp_path):
    started = time.monotonic()
    cases = write_ingest_cases(tmp_path / "warcs")
    n_cases = len(INGEST_CASES) + len(CONFIG_CASES) + 2 + len(foreign_model_files(tmp_path / "models"))
    assert n_cases >= 40
    # A tight extraction budget so the slow page is stopped fast; the supervisor (the default) enforces it.
    config = lake_config(tmp_path / "lake", "ingest.timeout_s=2", "ingest.max_failed_file_fraction=1")
    assert config.ingest.isolate_extraction
    lake = Lakehouse(spark, config.storage)

    ingest = run_stage(IngestStage(input_glob=str(tmp_path / "warcs" / "*")), spark, config)
    files = {r.warc_path: r for r in lake.read("ingest_files").collect()}
    rows = lake.read("documents").collect()
    docs = {row.url: row for row in rows}
    per_file = Counter(row.warc_path for row in rows)
    wrong = []
    for path, in_file in cases.items():
        names = ", ".join(c.name for c in in_file)
        row = files.get(path)
        if row is None:
            wrong.append(f"{names}: no ingest_files row")
            continue
        status, expected = expected_file_outcome(in_file)
        counters = row.counters or {}
        got = {k: counters.get(k, 0) for k in expected}
        if row.status != status or got != expected:
            wrong.append(f"{names}: status {row.status}, counters {dict(counters)}; expected {status}, {expected} "
                         f"({row.error})")
        if row.status != "done" and not (row.error and path in row.error):
            wrong.append(f"{names}: status {row.status} without an error naming the file")
        if counters.get("documents", 0) != per_file[path]:
            wrong.append(f"{names}: {per_file[path]} documents stored, {counters.get('documents')} counted")
        for case in in_file:
            for column, value in case.doc.items():
                if case.url not in docs or getattr(docs[case.url], column) != value:
                    wrong.append(f"{case.name}: {column} of {case.url} is not {value!r}")
    assert not wrong, "\n".join(wrong)
    # Every record of a readable file is accounted for: a document, or exactly one named reason.
    for path, row in files.items():
        outcomes = sum(n for k, n in row.counters.items()
                       if k.startswith(("skipped_too_large", "skipped_non", "skipped_http", "dropped_", "failed_extr")))
        if row.status == "done":
            assert row.counters.get("responses", 0) == row.counters.get("documents", 0) + outcomes, path
    assert ingest.status == "succeeded" and ingest.counters["files_failed"] == 2

    # A read error (not damage) is retried from the start of the file, and what was kept is not duplicated: the
    # truncated file's first two documents stand for what a run cut short by an I/O error commits.
    cut = str(tmp_path / "warcs" / "truncated_gzip_mid_record.warc.gz")
    lake.table("ingest_files").update(f"warc_path = '{cut}'", {"status": "'failed_io'"})
    validate(INGEST_FILES.name, lake.read(INGEST_FILES.name))  # the suite knows the status
    Path(cut).write_bytes(three_pages())
    quick = lake_config(tmp_path / "lake", "ingest.timeout_s=2", "ingest.max_failed_file_fraction=1",
                        "validation.enabled=false")
    retry = run_stage(IngestStage(input_glob=str(tmp_path / "warcs" / "*")), spark, quick)
    assert retry.counters["dropped_already_present"] == 2 and retry.rows_out == 1
    assert retry.counters["skipped_already_ingested"] == len(cases) - 2 - 1  # the `failed` files are retried too
    assert lake.read("ingest_files").where(f"warc_path = '{cut}'").first().status == "done"
    assert lake.read("documents").where(f"warc_path = '{cut}'").count() == 3

    # The surviving pages (NUL bytes, a 1M-character line, UTF-16, deep nesting) through the quality stage.
    quality = run_stage(QualityStage(), spark, config)
    assert quality.counters["docs_scored"] == lake.read("documents").count() == ingest.rows_out + 1

    # A benchmark file with broken rows: counted, named with file and line, and the good rows still used. The
    # decontaminate stage's first step (the benchmark index, built on Spark) is where they are met.
    bench_yaml, broken = broken_benchmark(tmp_path)
    index = load_or_build_index(spark, load_benchmarks(bench_yaml), config.decontaminate, None)
    assert index.counters["failed_benchmark_rows"] == broken and index.counters["benchmark_items"] == 5
    assert any("broken.jsonl line 6: not valid JSON" in problem for problem in index.problems)
    with pytest.raises(InputError, match="benchmark ghost: no file matches"):
        load_or_build_index(spark, load_benchmarks(missing_benchmark(tmp_path)), config.decontaminate, None)

    # A model file of another format where a fastText model is expected: the run stops naming the file.
    for i, (name, path) in enumerate(foreign_model_files(tmp_path / "models").items()):
        bad = lake_config(tmp_path / "lake", f"quality.classifiers=[{{name: m, path: '{path}'}}]")
        with pytest.raises((ModelLoadError, InputError), match="not a fastText") as caught:
            # The stage checks models on the driver before any task (build_settings); one full run shows the
            # check is where the stage starts, the others call it directly.
            run_stage(QualityStage(), spark, bad) if i == 0 else build_settings(bad.quality)
        assert str(path) in str(caught.value), name

    # Config typos and bad values stop the run before it starts, naming the key.
    for name, overrides, file_text, fragment in CONFIG_CASES:
        config_file = None
        if file_text is not None:
            config_file = tmp_path / f"{name}.yaml"
            config_file.write_text(file_text)
        with pytest.raises(ConfigError, match=fragment.replace(".", r"\.").replace("[", r"\[")):
            load_config(config_file, overrides=overrides, environ={})
    assert time.monotonic() - started < BUDGET_S
