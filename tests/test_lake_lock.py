"""The lake lock (a Delta row taken by MERGE), abandoned runs, output versions from the commit itself, and the
benchmark-index cache published atomically."""

from __future__ import annotations

import json
import threading
import time

import pytest
from pyspark.sql import functions as F

from refinery.jobs.base import run_stage
from refinery.jobs.ledger import LakeBusy, _Lock, lake_lock, mark_abandoned
from refinery.jobs.storage import Lakehouse
from refinery.schemas.tables import LOCKS, RUNS

from .conftest import lake_config


def _lake(spark, root, *extra):
    config = lake_config(root, *extra)
    lake = Lakehouse(spark, config.storage)
    lake.create(LOCKS)
    lake.create(RUNS)
    return config, lake


def test_second_run_fails_naming_the_first_then_waits_for_it(spark, tmp_path):
    config, lake = _lake(spark, tmp_path / "lake", "storage.concurrent_runs=fail")
    first = _Lock(lake, config, "first-holder")
    first.acquire("quality")
    spark.sql(f"INSERT INTO {lake.qualified(RUNS.name)} (run_id, stage, status, started_at) "
              "VALUES ('run-in-progress', 'dedup', 'running', current_timestamp())")
    with pytest.raises(LakeBusy, match="in use by run run-in-progress \\(stage dedup\\)"):
        _Lock(lake, config, "second-holder").acquire("quality")

    waiting, _ = _lake(spark, tmp_path / "lake", "storage.concurrent_runs=wait", "storage.lock_timeout_s=300")
    second = _Lock(lake, waiting, "second-holder")
    threading.Timer(3.0, first.release).start()
    started = time.monotonic()
    second.acquire("quality")  # blocks until the first lets go
    assert time.monotonic() - started > 2.0
    assert [r.holder for r in lake.read(LOCKS.name).collect()] == ["second-holder"]
    second.release()
    assert lake.read(LOCKS.name).count() == 0


def test_racing_runs_get_the_lock_one_at_a_time(spark, tmp_path):
    config, lake = _lake(spark, tmp_path / "lake", "storage.concurrent_runs=fail")
    outcomes: dict[str, str] = {}

    def take(holder):
        try:
            _Lock(lake, config, holder).acquire("ingest")
            outcomes[holder] = "got"
        except LakeBusy as err:
            outcomes[holder] = str(err)

    threads = [threading.Thread(target=take, args=(f"h{i}",)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [h for h, o in outcomes.items() if o == "got"]
    assert len(winners) == 1, outcomes  # Delta's optimistic conflict check let exactly one MERGE take the row
    assert all("is in use by a run starting with stage ingest" in o for h, o in outcomes.items() if h not in winners)
    assert [r.holder for r in lake.read(LOCKS.name).collect()] == winners


def test_dead_drivers_lock_is_taken_over_and_its_run_marked_abandoned(spark, tmp_path):
    from refinery.jobs.ingest import IngestStage

    from .conftest import CHUNKED_SAMPLE

    config, lake = _lake(spark, tmp_path / "lake", "ingest.extractor=resiliparse", "storage.stale_after_s=1")
    # A driver that died mid-stage: its lock row (old heartbeat) and its `running` ledger row stay behind.
    dead = _Lock(lake, config, "dead-holder")
    dead.acquire("ingest")
    dead._stop.set()  # its heartbeat stops with it
    spark.sql(f"INSERT INTO {lake.qualified(RUNS.name)} (run_id, stage, status, started_at) "
              "VALUES ('dead-run', 'ingest', 'running', current_timestamp())")
    time.sleep(1.5)
    record = run_stage(IngestStage(input_glob=str(CHUNKED_SAMPLE)), spark, config)
    runs = {r.run_id: r for r in lake.read(RUNS.name).collect()}
    assert runs["dead-run"].status == "abandoned" and runs["dead-run"].ended_at is not None
    assert "driver gone" in runs["dead-run"].error
    assert runs[record.run_id].status == "succeeded"
    assert lake.read(LOCKS.name).count() == 0  # released at the end
    # Output versions come from the commits tagged with the run's id, not from "latest after commit".
    history = lake.table("documents").history().where(F.col("userMetadata") == f"refinery-run:{record.run_id}")
    assert record.output_versions["documents"] == max(r.version for r in history.collect())
    assert mark_abandoned(lake) == 0


def test_lock_is_reentrant_within_a_process(spark, tmp_path):
    config, lake = _lake(spark, tmp_path / "lake")
    with lake_lock(lake, config, "a") as outer, lake_lock(lake, config, "b") as inner:
        assert outer is inner
        assert lake.read(LOCKS.name).count() == 1
    assert lake.read(LOCKS.name).count() == 0


def test_benchmark_index_is_published_atomically(spark, tmp_path):
    from refinery.jobs.benchmark_index import _load, benchmark_files, build_index, publish, published
    from refinery.jobs.config import BenchmarkEntry, DecontaminateConfig

    items = tmp_path / "tiny.jsonl"
    items.write_text("\n".join(json.dumps({"q": f"question {i} " + " ".join(f"word{i}x{j}" for j in range(20))})
                               for i in range(30)) + "\n")
    cfg = DecontaminateConfig()
    entries = [BenchmarkEntry(name="tiny", path=str(items), fields=["q"])]
    index = build_index(spark, benchmark_files(entries), cfg)
    cache = str(tmp_path / "cache")
    assert published(spark, cache, "k") is None
    old = publish(spark, index, cache, "k")
    # A rebuild that dies half-way leaves a folder no pointer names: readers keep the complete old index.
    half = f"{cache}/k/half-written"
    index.ngrams.limit(3).write.parquet(f"{half}/ngrams")
    assert published(spark, cache, "k") == old
    assert _load(spark, old).ngrams.count() == index.ngrams.count()
    # A reader polling during a publish sees the old or the new folder, each complete, never a partial one.
    seen, stop = set(), threading.Event()

    def read():
        while not stop.is_set():
            folder = published(spark, cache, "k")
            assert _load(spark, folder).ngrams.count() == index.ngrams.count()
            seen.add(folder)

    reader = threading.Thread(target=read)
    reader.start()
    new = publish(spark, index, cache, "k")
    stop.set()
    reader.join()
    assert new != old and published(spark, cache, "k") == new and seen <= {old, new}
