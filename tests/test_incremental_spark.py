"""Integration: stages read only what is new (change data feed + ledger watermark), old lakes migrate, maintain."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from delta.tables import DeltaTable
from pyspark.sql.types import StructType

from refinery.jobs.base import run_stage
from refinery.jobs.decontaminate import DecontaminateStage
from refinery.jobs.dedup import DedupStage
from refinery.jobs.quality import QualityStage
from refinery.jobs.storage import Lakehouse
from refinery.schemas.tables import DOCUMENTS, RUNS, TableSpec

from .conftest import REPO, lake_config
from .test_decontaminate_spark import _benchmarks_file
from .test_dedup_spark import _add, _documents

pytestmark = pytest.mark.slow  # several minutes: `make test-slow`

STAGES = (DecontaminateStage, QualityStage, DedupStage)
# Per table, the columns compared between lakes (run ids and timestamps differ by construction).
COMPARED = {
    "contamination": ["doc_id", "contaminated", "matched_ngrams", "matched_benchmarks", "ngrams_checked"],
    "quality": ["doc_id", "keep", "drop_reasons", "settings_hash"],
    "duplicates": ["doc_id", "exact_cluster", "cluster_id", "cluster_size", "is_kept", "keeper_doc_id", "reason"],
}


def _copa_text() -> str:
    with gzip.open(REPO / "data" / "benchmarks" / "copa.jsonl.gz", "rt") as stream:
        item = json.loads(stream.readline())
    return "A reader wrote in about this. " + item["query"] + " " + " ".join(item["choices"])


@pytest.fixture(scope="module")
def batches() -> tuple[list[dict], list[dict]]:
    """120 Reuters stories (with edited copies) first; then 12 more, one carrying a COPA item, one a near copy."""
    docs = _documents()
    first, second = docs[:120], docs[120:132]
    second[0] = dict(second[0], text=_copa_text())
    from refinery.udfs.ids import text_hash

    second[0]["text_hash"] = text_hash(second[0]["text"])
    return first, second


def _config(root: Path, *extra: str):
    return lake_config(root / "lake", f"decontaminate.benchmarks_file={_benchmarks_file(root, ('copa',))}",
                       "decontaminate.cache_index=false", *extra)


def _run_all(spark, config) -> dict:
    return {stage.name: run_stage(stage(), spark, config) for stage in STAGES}


def _table(lake: Lakehouse, name: str) -> set[tuple]:
    return {tuple(map(repr, r)) for r in lake.read(name).select(*COMPARED[name]).collect()}


@pytest.fixture(scope="module")
def two_runs(spark, batches, tmp_path_factory):
    root = tmp_path_factory.mktemp("incremental")
    config = _config(root)
    lake = Lakehouse(spark, config.storage)
    lake.create(DOCUMENTS)
    _add(spark, lake, batches[0])
    first = _run_all(spark, config)
    _add(spark, lake, batches[1])
    second = _run_all(spark, config)
    return config, lake, first, second


def test_second_run_reads_only_the_new_documents(two_runs, batches):
    _, _, first, second = two_runs
    assert all(r.status == "succeeded" for r in [*first.values(), *second.values()])
    assert first["quality"].counters["changes_only_documents"] == 0  # no watermark yet: the whole table
    for name, record in second.items():
        assert record.counters["changes_only_documents"] == 1, name
    assert second["decontaminate"].counters["docs_scanned"] == len(batches[1])
    assert second["quality"].counters["docs_scored"] == len(batches[1])
    assert second["dedup"].counters["docs_new"] == len(batches[1])
    assert second["decontaminate"].counters["contaminated_docs"] == 1
    # The ledger's watermark is the version each run pinned and read.
    assert second["quality"].input_versions["documents"] > first["quality"].input_versions["documents"]


def test_incremental_tables_equal_one_run_over_everything(spark, two_runs, batches, tmp_path):
    _, lake, _, _ = two_runs
    config = _config(tmp_path)
    whole = Lakehouse(spark, config.storage)
    whole.create(DOCUMENTS)
    _add(spark, whole, batches[0] + batches[1])
    _run_all(spark, config)
    for name in COMPARED:
        assert _table(lake, name) == _table(whole, name), name


def test_settings_change_and_full_refresh(spark, two_runs, batches):
    config, lake, _, _ = two_runs
    total = len(batches[0]) + len(batches[1])
    nothing_new = run_stage(QualityStage(), spark, config)
    assert nothing_new.counters["changes_only_documents"] == 1 and nothing_new.counters["docs_scored"] == 0
    changed = config.model_copy(deep=True)
    changed.quality.pii = True  # a new settings digest: no watermark for it, every document is scored again
    rescored = run_stage(QualityStage(), spark, changed)
    assert rescored.counters["changes_only_documents"] == 0 and rescored.counters["docs_scored"] == total
    # Back to the old settings: the run with other settings replaced rows since their watermark.
    back = run_stage(QualityStage(), spark, config)
    assert back.counters["changes_only_documents"] == 0 and back.counters["docs_scored"] == total
    full = config.model_copy(deep=True)
    full.storage.full_refresh = True
    refreshed = run_stage(QualityStage(), spark, full)  # the whole table read; every document already scored
    assert refreshed.counters["changes_only_documents"] == 0 and refreshed.counters["docs_scored"] == 0


def test_lake_of_an_older_schema_is_migrated(spark, tmp_path, batches):
    """A lake written before `documents` had `title` and `runs` had `settings_digest`, CDF off: runs migrate it."""
    config = _config(tmp_path)
    lake = Lakehouse(spark, config.storage)
    for spec, dropped in ((DOCUMENTS, "title"), (RUNS, "settings_digest")):
        old = StructType([f for f in spec.schema.fields if f.name != dropped])
        DeltaTable.create(spark).addColumns(old).location(lake.path(spec.name)).execute()
    old_docs = TableSpec(DOCUMENTS.name, DOCUMENTS.key, StructType([f for f in DOCUMENTS.schema.fields
                                                                     if f.name != "title"]), "")
    rows = [tuple(d.get(f) for f in old_docs.schema.fieldNames()) for d in batches[0][:20]]
    lake.merge(DOCUMENTS.name, spark.createDataFrame(rows, old_docs.schema))
    assert lake.migrate(DOCUMENTS) == ["add columns title", "properties delta.enableChangeDataFeed, "
                                       "delta.enableDeletionVectors, delta.autoOptimize.optimizeWrite",
                                       "cluster by crawl"]
    assert lake.migrate(DOCUMENTS) == []
    _add(spark, lake, [dict(d, title="new") for d in batches[1]])  # MERGE with the full spec works
    titles = {r.doc_id: r.title for r in lake.read(DOCUMENTS.name).collect()}
    assert sum(t is None for t in titles.values()) == 20 and sum(t == "new" for t in titles.values()) == 12
    record = run_stage(QualityStage(), spark, config)  # `runs` gains settings_digest on the way
    assert record.status == "succeeded" and record.counters["docs_scored"] == 32
    ledger = lake.read(RUNS.name).collect()
    assert [r.settings_digest for r in ledger] == [record.settings_digest]
    again = run_stage(QualityStage(), spark, config)
    assert again.counters["changes_only_documents"] == 1 and again.counters["docs_scored"] == 0


def test_maintain_compacts_and_vacuums_within_the_safety_interval(spark, tmp_path, batches):
    config = _config(tmp_path)
    lake = Lakehouse(spark, config.storage)
    with pytest.raises(ValueError, match="below Delta's safety interval of 168 h"):
        lake.maintain(24)
    lake.create(DOCUMENTS)
    for doc in batches[1][:4]:  # four commits, four small files
        _add(spark, lake, [doc])
    steps = lake.maintain(168)
    assert ("documents", "optimize", "4 files -> 1") in steps and ("documents", "vacuum", "retain 168 h") in steps
    assert lake.read(DOCUMENTS.name, 1).count() == 1  # within retention: old versions still readable
    lake.maintain(0, below_safety=True)
    with pytest.raises(Exception, match="(?i)file.*(not exist|not found)|FileNotFound"):
        lake.read(DOCUMENTS.name, 1).collect()  # collect, not count: Delta answers count() from the log's stats
    assert lake.read(DOCUMENTS.name).count() == 4
