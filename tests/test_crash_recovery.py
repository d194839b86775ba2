"""Crash recovery and executor loss on the real pipeline (ingest → decontaminate → quality → dedup → rewrite with
the tiny model), each run a fresh driver process.

One lake is driven through a chain of runs, each SIGKILLed at a later named point (REFINERY_KILL_AT), then a last
run completes it; every table must equal, row for row, the tables of an uninterrupted run. The chain also kills a
Python worker once during quality scoring (REFINERY_WORKER_KILL_ONCE, master local[2,4] retries the task)."""

from __future__ import annotations

import pytest
from pyspark.sql import functions as F

from refinery.jobs.config import load_config
from refinery.jobs.storage import Lakehouse

from .crash_driver import run_child, table_digests

pytestmark = pytest.mark.slow  # several minutes: `make test-slow`

# In pipeline order: every kill lands later than the last, so each rerun also resumes the killed run's work.
# (bench/crash_recovery.py runs 20 points, each on a fresh lake.)
KILL_CHAIN = [
    "ingest.extract",                         # during extraction, in a Python worker
    "merge.after:contamination_matches",     # between the two commits of a two-table stage
    "merge.before:quality",                   # inside quality's commit: scores staged, not committed
    "merge.before:duplicates",               # inside dedup: bands committed, duplicates not
    "rewrite.generated@2",                    # during generation: group 1 committed, group 2 staged only
]


@pytest.fixture(scope="module")
def reference(tmp_path_factory, tiny_model, spark):
    root = str(tmp_path_factory.mktemp("crash") / "reference")
    assert run_child(root, str(tiny_model)) == 0
    return table_digests(spark, root)


def test_killed_runs_resume_to_the_same_tables(reference, tiny_model, spark, tmp_path):
    root = str(tmp_path / "lake")
    marker = tmp_path / "worker-killed"
    env = {"REFINERY_WORKER_KILL_ONCE": f"quality.score:{marker}"}
    for point in KILL_CHAIN:
        assert run_child(root, str(tiny_model), kill_at=point, env=env, master="local[2,4]") == -9, point
    assert run_child(root, str(tiny_model), env=env, master="local[2,4]") == 0
    assert marker.exists()  # a Python worker died once mid-quality and its task was retried

    got = table_digests(spark, root)
    assert set(got) == set(reference)
    for name in reference:
        assert got[name] == reference[name], name
    assert reference["synthetic"] and reference["quality"] and reference["duplicates"]

    runs = Lakehouse(spark, load_config(overrides=[f"storage.root={root}"], environ={}).storage).read("runs")
    statuses = {r.status for r in runs.collect()}
    assert "running" not in statuses and "abandoned" in statuses
    # One current status per run, and every killed stage run was marked abandoned by a later run.
    assert runs.groupBy("run_id").count().where("count > 1").count() == 0
    assert runs.where("status = 'abandoned'").count() == len(KILL_CHAIN)
    resumed = {r.stage: r.n for r in runs.where("status = 'succeeded'").groupBy("stage")
               .agg(F.sum(F.col("counters")["resumed_rows"]).alias("n")).collect()}
    assert resumed["quality"] > 0 and resumed["dedup"] > 0 and resumed["rewrite"] > 0
    # Staging was dropped after each successful commit: nothing left to resume from.
    lake = Lakehouse(spark, load_config(overrides=[f"storage.root={root}"], environ={}).storage)
    for name in ("_staging_quality_scored", "_staging_dedup_bands", "_staging_rewrite_generations"):
        assert not lake.exists(name) or lake.read(name).count() == 0, name
