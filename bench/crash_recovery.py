"""Crash recovery: the pipeline (ingest → decontaminate → quality → dedup → rewrite with a tiny local model, on the
shipped sample) is SIGKILLed at each of 20 named points (REFINERY_KILL_AT, see jobs/ledger.kill_point), run
again, and its tables compared row for row (keys + a content hash per row) with an uninterrupted run's.

    .venv/bin/python bench/crash_recovery.py [--points a,b,...]

Prints one row per point: whether the kill fired, rows the rerun resumed from staging (`resumed_rows`), runs the
rerun marked abandoned, tables equal, and the seconds of the killed run and of the rerun beside the uninterrupted
run's (the peer)."""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _common import markdown_table, versions, write_json  # noqa: E402

POINTS = [
    "ingest.extract", "merge.before:documents", "merge.after:documents", "merge.after:ingest_files", "ingest.end",
    "benchmark_index.saved", "decontaminate.scanned", "merge.after:contamination_matches",
    "merge.after:contamination", "quality.scored", "merge.before:quality", "merge.after:quality",
    "dedup.bands_staged", "merge.after:minhash_bands", "merge.after:duplicates", "rewrite.start",
    "rewrite.generate", "rewrite.generated", "merge.after:synthetic", "rewrite.end",
]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--points", help="comma-separated kill points (default: the 20 above)")
    args = parser.parse_args()
    points = args.points.split(",") if args.points else POINTS

    from pyspark.sql import functions as F

    from refinery.jobs.config import load_config
    from refinery.jobs.session import get_spark
    from refinery.jobs.storage import Lakehouse
    from refinery.udfs.llm.tiny import build_tiny_llama
    from tests.conftest import sample_texts
    from tests.crash_driver import run_child, table_digests

    work = Path(tempfile.mkdtemp(prefix="crash-bench-"))
    model = str(build_tiny_llama(work / "tiny-llama", sample_texts()))
    spark = get_spark(load_config(overrides=["spark.master=local[2]", "spark.shuffle_partitions=2"],
                                  environ={}).spark)
    started = time.perf_counter()
    assert run_child(str(work / "reference"), model) == 0, "the uninterrupted run failed"
    peer = time.perf_counter() - started
    reference = table_digests(spark, str(work / "reference"))
    rows = []
    for point in points:
        root = str(work / point.replace(":", "_").replace("@", "_"))
        started = time.perf_counter()
        killed = run_child(root, model, kill_at=point) == -9
        killed_s = time.perf_counter() - started
        started = time.perf_counter()
        rc = run_child(root, model)
        rerun_s = time.perf_counter() - started
        runs = Lakehouse(spark, load_config(overrides=[f"storage.root={root}"], environ={}).storage).read("runs")
        resumed = runs.agg(F.sum(F.col("counters")["resumed_rows"])).first()[0] or 0
        abandoned = runs.where("status = 'abandoned'").count()
        equal = rc == 0 and table_digests(spark, root) == reference
        rows.append((point, "yes" if killed else "not reached", resumed, abandoned, "yes" if equal else "NO",
                     killed_s, rerun_s, peer))
        print(markdown_table(["point", "killed", "resumed rows", "abandoned", "tables equal", "killed run s",
                              "rerun s", "uninterrupted s"], rows[-1:]).splitlines()[-1], flush=True)
    header = ["point", "killed", "resumed rows", "abandoned", "tables equal", "killed run s", "rerun s",
              "uninterrupted s (peer)"]
    print()
    print(markdown_table(header, rows))
    write_json("crash_recovery.json", {"versions": versions("pyspark", "delta-spark"),
                                       "rows": [dict(zip(header, r, strict=True)) for r in rows]})
    spark.stop()


if __name__ == "__main__":
    main()
