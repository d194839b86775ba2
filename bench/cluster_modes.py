"""Wall time of the sample pipeline (ingest → decontaminate → quality → dedup → rewrite, tiny model) in the three
ways it can run: a local[2] session, a standalone cluster of two 1-core workers, and through Spark Connect
(a local[2] server). Each run is `refinery run` in a fresh process from a directory outside the checkout, so
every figure includes the JVM start; the tables each mode wrote are compared with local[2]'s.

    .venv/bin/python bench/cluster_modes.py [--modes local,cluster,connect] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import markdown_table, versions, write_json  # noqa: E402

from tests.cluster import (  # noqa: E402
    SAMPLE_WARCS,
    benchmarks_file,
    connect_server,
    pipeline_args,
    run_refinery,
    snapshot,
    standalone_cluster,
)


def _tiny_model(folder: Path) -> Path:
    from refinery.udfs.ingest.warc import FileOutcome, IngestSettings, read_warc_documents
    from refinery.udfs.llm.tiny import build_tiny_llama
    from tests.conftest import CC_SAMPLE

    docs = read_warc_documents(str(CC_SAMPLE), IngestSettings(extractor="resiliparse"), FileOutcome(str(CC_SAMPLE)))
    return build_tiny_llama(folder, [d["text"] for d in docs])


def _run(mode: str, work: Path, model: Path, benchmarks: Path) -> tuple[float | None, Path]:
    lake = work / "lake"
    if (lake / "runs").exists():  # --keep: a finished run of an earlier invocation is reused, not repeated
        saved = work / "wall_s.json"
        return (json.loads(saved.read_text()) if saved.exists() else None), lake
    work.mkdir(parents=True, exist_ok=True)

    def go(*extra: str) -> float:
        start = time.monotonic()
        result = run_refinery(pipeline_args(lake, model, benchmarks, SAMPLE_WARCS, *extra), cwd=work, timeout=1800)
        seconds = time.monotonic() - start
        if result.returncode != 0:
            raise SystemExit(f"{mode}: refinery run failed ({result.returncode}):\n{result.stderr[-3000:]}")
        (work / "wall_s.json").write_text(json.dumps(seconds))
        print(f"{mode}: {seconds:.1f}s", flush=True)
        return seconds

    if mode == "local":
        return go("spark.master=local[2]"), lake
    if mode == "cluster":
        with standalone_cluster(work / "cluster") as url:
            return go(f"spark.master={url}"), lake
    with connect_server(work / "connect") as url:
        return go(f"spark.remote={url}"), lake


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modes", default="local,cluster,connect")
    parser.add_argument("--keep", help="work folder to keep (default: a temporary one)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="refinery-modes-") as tmp:
        root = Path(args.keep or tmp)
        model = root / "tiny-llama"
        if not (model / "config.json").exists():
            model = _tiny_model(model)
        benchmarks = benchmarks_file(root)
        results = {mode: _run(mode, root / mode, model, benchmarks) for mode in args.modes.split(",")}

        from refinery.jobs.config import load_config
        from refinery.jobs.session import get_spark

        spark = get_spark(load_config(overrides=["spark.master=local[2]"], environ={}).spark)
        tables = {mode: snapshot(spark, lake) for mode, (_, lake) in results.items()}
        spans = {mode: _stage_seconds(spark, lake) for mode, (_, lake) in results.items()}
    first = next(iter(tables))
    rows = [(mode, "n/a" if seconds is None else f"{seconds:.1f}", f"{spans[mode]:.1f}",
             len(tables[mode]["documents"]), len(tables[mode]["synthetic"]),
             "yes" if tables[mode] == tables[first] else "NO") for mode, (seconds, _) in results.items()]
    print(markdown_table(["mode", "process wall s", "stages s (ledger)", "documents", "synthetic rows",
                          f"tables equal {first}'s"], rows))
    print(f"load average during the runs: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    write_json("cluster_modes.json", {"versions": versions("pyspark", "delta-spark"),
                                      "runs": {m: {"wall_s": s, "stages_s": spans[m]} for m, (s, _) in results.items()},
                                      "tables_equal": {m: tables[m] == tables[first] for m in tables}})


def _stage_seconds(spark, lake: Path) -> float:
    """First stage's start to last stage's end, from the `runs` ledger (the session start not included)."""
    from pyspark.sql import functions as F

    span = spark.read.format("delta").load(str(lake / "runs")).agg(F.min("started_at"), F.max("ended_at")).first()
    return (span[1] - span[0]).total_seconds()


if __name__ == "__main__":
    main()
