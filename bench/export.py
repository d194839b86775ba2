"""Export throughput and report build time on the sample lakehouse.

Builds a lakehouse from data/sample/*.warc* (ingest with resiliparse, decontaminate, quality, dedup), then:

1. `refinery export` end to end (data/real_only recipe: every curated document, whitespace tokens): tokens/s per core
   = exported tokens / (wall seconds x Spark cores), on local[1] and local[N];
2. the pure export work in one process on the same texts (token counting, shuffle keys, sort, Parquet and
   JSONL.zst encoding; `udfs/export/mix.py`), tokens/s per core (CPU time): the ceiling the Spark job pays
   overhead over;
3. `refinery report`: wall seconds to aggregate and write the HTML file.

No shared data needed; the load average is printed with the table."""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, markdown_table, versions, write_json  # noqa: E402

RECIPE = REPO / "conf" / "mixes" / "real_only.yaml"


def build_lake(root: Path, master: str):
    from refinery.jobs.base import run_stage
    from refinery.jobs.config import load_config
    from refinery.jobs.main import make_stage
    from refinery.jobs.session import get_spark

    config = load_config(overrides=[f"storage.root={root}", f"spark.master={master}", "spark.shuffle_partitions=2",
                                    "ingest.extractor=resiliparse", f"ingest.input={REPO}/data/sample/*.warc*"],
                         environ={})
    spark = get_spark(config.spark)
    for stage in ("ingest", "decontaminate", "quality", "dedup"):
        run_stage(make_stage(stage), spark, config)
    return spark, config


def pure_export(texts: list[str], repeats: int) -> tuple[float, int]:
    """CPU seconds (best of repeats) and tokens of the per-item work, in one process."""
    import pandas as pd

    from refinery.udfs.export.mix import jsonl_zst_bytes, parquet_bytes, shuffle_key, token_counter

    count = token_counter("whitespace", None)
    best, tokens = float("inf"), 0
    for _ in range(repeats):
        start = time.process_time()
        frame = pd.DataFrame({"text": texts, "source": "real", "doc_id": [f"{i:032x}" for i in range(len(texts))],
                              "synth_id": None})
        frame["tokens"] = [count(t) for t in frame["text"]]
        frame["key"] = [shuffle_key(0, "real", i) for i in frame["doc_id"]]
        frame = frame.sort_values(["key", "doc_id"])
        parquet_bytes(frame)
        jsonl_zst_bytes(frame)
        best = min(best, time.process_time() - start)
        tokens = int(frame["tokens"].sum())
    return best, tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cores", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--report-copy", help="also keep the sample lakehouse's report.html here")
    args = parser.parse_args()

    from refinery.jobs.export import export_mix
    from refinery.jobs.report import build_report
    from refinery.jobs.session import get_spark

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        spark, config = build_lake(tmp / "lake", f"local[{args.cores}]")
        for cores in sorted({1, args.cores}):
            spark.stop()
            config = config.model_copy(update={"spark": config.spark.model_copy(update={"master": f"local[{cores}]"})})
            spark = get_spark(config.spark)
            export_mix(spark, config, str(RECIPE), str(tmp / "warm"), overwrite=True)  # JIT, caches
            walls = []
            for i in range(args.repeats):
                start = time.perf_counter()
                manifest = export_mix(spark, config, str(RECIPE), str(tmp / f"out{cores}-{i}"))
                walls.append(time.perf_counter() - start)
            wall = statistics.median(walls)
            tokens = manifest["totals"]["tokens"]
            rows.append([f"export end to end (Spark local[{cores}])", manifest["totals"]["docs"], tokens,
                         round(wall, 2), round(tokens / wall / cores)])
        import pyarrow.parquet as pq

        # the same items the export wrote (the curated documents), for the pure side
        texts = [t for path in sorted((tmp / f"out{args.cores}-0").glob("shard-*.parquet"))
                 for t in pq.read_table(path, columns=["text"]).column("text").to_pylist()]
        cpu, tokens = pure_export(texts, args.repeats)
        rows.append(["pure export work (one process, the same items)", len(texts), tokens, round(cpu, 3),
                     round(tokens / cpu)])
        report_walls = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            build_report(spark, config, str(tmp / "report.html"))
            report_walls.append(time.perf_counter() - start)
        size = (tmp / "report.html").stat().st_size
        if args.report_copy:
            shutil.copy(tmp / "report.html", args.report_copy)
        spark.stop()
    print(f"load average: {', '.join(f'{x:.1f}' for x in os.getloadavg())}; cores: {os.cpu_count()}")
    print(markdown_table(["what", "items", "tokens", "seconds (median / CPU best)", "tokens/s per core"], rows))
    report = statistics.median(report_walls)
    print(f"\nreport build on the sample lakehouse: {report:.2f} s (median of {args.repeats}), {size / 1e6:.1f} MB "
          f"HTML")
    write_json("export.json", {"rows": rows, "report_seconds": report, "report_bytes": size,
                               "versions": versions("pyspark", "delta-spark", "plotly", "zstandard", "pyarrow")})


if __name__ == "__main__":
    main()
