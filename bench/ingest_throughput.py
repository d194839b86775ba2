"""Ingest throughput per core: datatrove (WarcReader + Trafilatura, as FineWeb) vs Refinery.

Input: shared/data/warc/built_from_gold_pages.warc.gz (764 real HTML pages in `response` records).
Every row is one core and reports documents out per wall-clock second:

* datatrove 0.10.1: LocalPipelineExecutor(tasks=1, workers=1) running WarcReader -> Trafilatura
  (favour_precision=True, other settings default: a 1 s per-page timeout, and each page extracted in its
  ExtractorSandbox subprocess, which is datatrove's normal design; the reader blocks while it works).
  Time includes the executor's set-up and the sandbox start. No language identification.
* refinery in-process: `read_warc_documents` (read + HTTP parse + charset + extraction + fastText LID,
  i.e. one ingest task's work) with trafilatura and with resiliparse, 10 s per-page timeout; imports and
  model loading included in the time, no Spark.
* refinery Spark: the whole `ingest` stage (extraction, Great Expectations validation, Delta MERGE) in a
  subprocess with spark.master=local[1]; seconds = the stage's own RunRecord.seconds (JVM start-up
  excluded), in a fresh temporary storage.root each time; then, in the same session, a second pass of
  only the stage's extraction (mapInArrow over the WARC, counted) to show how the stage time splits.

Targets: refinery trafilatura >= 1.5x datatrove per core, refinery resiliparse >= 10x.
Run:  .venv/bin/python bench/ingest_throughput.py [--limit N] [--skip-spark] [--skip-datatrove]
(--limit N: only the first N response records). Writes bench/out/ingest_throughput.json.
datatrove's WarcReader needs faust-cchardet and python-magic (`.venv/bin/pip install faust-cchardet
python-magic`); without them its row is skipped with a message.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from _common import REPO, markdown_table, require_data, versions, write_json

WARC = "warc/built_from_gold_pages.warc.gz"
TARGETS = {"trafilatura": 1.5, "resiliparse": 10.0}
_MARK = "BENCH_RESULT "
EXTRACT_PASS = "spark local[1], extract pass only"


@dataclass
class Result:
    engine: str
    extractor: str
    responses: int | None  # response records read (None: not known)
    docs: int
    seconds: float
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def docs_per_s(self) -> float:
        return self.docs / self.seconds if self.seconds else 0.0


def run_datatrove(warc: Path, limit: int | None) -> Result | None:
    missing = [m for m in ("cchardet", "magic", "warcio") if importlib.util.find_spec(m) is None]
    if missing:
        print(f"datatrove row skipped: its WarcReader needs {', '.join(missing)} "
              "(.venv/bin/pip install faust-cchardet python-magic warcio)")
        return None
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.extractors import Trafilatura
    from datatrove.pipeline.readers import WarcReader

    out = {"docs": 0}

    def count(data: Any, rank: int = 0, world_size: int = 1) -> Any:
        for _ in data:
            out["docs"] += 1
        yield from ()

    with tempfile.TemporaryDirectory(prefix="bench-datatrove-") as logs:
        executor = LocalPipelineExecutor(
            pipeline=[WarcReader(str(warc.parent), glob_pattern=warc.name, limit=limit or -1),
                      Trafilatura(favour_precision=True), count],
            tasks=1, workers=1, logging_dir=logs)
        start = time.perf_counter()
        stats = executor.run()
        seconds = time.perf_counter() - start
    steps = {s.name: {k: v.total for k, v in s.stats.items()} for s in getattr(stats, "stats", [])}
    read = next((v.get("documents") for k, v in steps.items() if "Warc" in k), None)
    return Result("datatrove", "trafilatura", read, out["docs"], seconds, {"step_stats": steps})


def run_ours(warc: Path, extractor: str, limit: int | None, timeout_s: float) -> Result:
    from refinery.udfs.ingest.warc import FileOutcome, IngestSettings, read_warc_documents

    outcome = FileOutcome(str(warc))
    docs = 0
    start = time.perf_counter()
    for _doc in read_warc_documents(str(warc), IngestSettings(extractor, timeout_s), outcome):  # type: ignore[arg-type]
        docs += 1
        if limit and outcome.counters["responses"] >= limit:
            break  # a response dropped just before this one may make it read a few past N
    seconds = time.perf_counter() - start
    return Result("refinery in-process", extractor, outcome.counters["responses"], docs, seconds,
                  {"counters": dict(outcome.counters), "timeout_s": timeout_s})


def truncated_copy(warc: Path, limit: int, folder: Path) -> Path:
    """The first `limit` response records of warc, cut at a record (gzip member) boundary."""
    from fastwarc.warc import ArchiveIterator, WarcRecordType

    cut = None
    seen = 0
    with open(warc, "rb") as stream:
        for record in ArchiveIterator(stream, parse_http=False):
            if record.record_type == WarcRecordType.response:
                if seen == limit:
                    cut = record.stream_pos
                    break
                seen += 1
    data = warc.read_bytes()
    path = folder / warc.name
    path.write_bytes(data if cut is None else data[:cut])
    return path


def run_spark(warc: Path, extractor: str, timeout_s: float) -> list[Result]:
    with tempfile.TemporaryDirectory(prefix="bench-spark-lake-") as root:
        cmd = [sys.executable, str(Path(__file__).resolve()), "--spark-child", extractor, str(warc), root,
               str(timeout_s)]
        env = {**os.environ, "PYSPARK_PYTHON": sys.executable}
        proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, check=False)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(_MARK)]
    if proc.returncode != 0 or not lines:
        print(f"spark {extractor}: failed (exit {proc.returncode}); stderr tail:\n{proc.stderr[-3000:]}")
        return []
    rec = json.loads(lines[-1][len(_MARK):])
    responses = rec["counters"].get("responses")
    extract = rec.pop("extract_pass")
    return [Result("refinery spark local[1]", extractor, responses, rec["rows_out"], rec["seconds"], rec),
            Result(EXTRACT_PASS, extractor, responses, extract["docs"], extract["seconds"],
                   {"note": "2nd pass in the warm session: read_files(...).count(), no validation/MERGE"})]


def spark_child(extractor: str, warc: str, root: str, timeout_s: str) -> None:
    from refinery.jobs.config import load_config
    from refinery.jobs.ingest import read_files
    from refinery.jobs.main import run_pipeline
    from refinery.jobs.session import get_spark
    from refinery.udfs.ingest.warc import IngestSettings

    cfg = load_config(overrides=[f"storage.root={root}", "spark.master=local[1]",
                                 f"ingest.extractor={extractor}", f"ingest.input={warc}",
                                 f"ingest.timeout_s={timeout_s}"])
    record = run_pipeline(cfg, ["ingest"])[0]
    summary = {"status": record.status, "seconds": record.seconds, "rows_out": record.rows_out,
               "counters": dict(record.counters), "validation": record.validation}
    # Second pass, same session: only the extraction (mapInArrow) part of the stage, to split its time.
    settings = IngestSettings(cfg.ingest.extractor, cfg.ingest.timeout_s)
    start = time.perf_counter()
    frame = read_files(get_spark(cfg.spark), [(warc, os.path.getsize(warc))], settings)
    docs = frame.where("kind = 'doc'").count()
    summary["extract_pass"] = {"seconds": time.perf_counter() - start, "docs": docs}
    print(_MARK + json.dumps(summary), flush=True)


def report(results: list[Result]) -> list[list[Any]]:
    base = next((r for r in results if r.engine == "datatrove"), None)
    rows = []
    for r in results:
        ratio = r.docs_per_s / base.docs_per_s if base and base.docs_per_s else None
        target = TARGETS[r.extractor] if r.engine not in ("datatrove", EXTRACT_PASS) else None
        verdict = ""
        if target is not None and ratio is not None:
            verdict = f"{'met' if ratio >= target else 'NOT met'} (>= {target}x)"
        rows.append([r.engine, r.extractor, r.responses, r.docs, r.seconds, r.docs_per_s,
                     None if ratio is None else f"{ratio:.2f}x", verdict])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, help="only the first N response records")
    parser.add_argument("--timeout", type=float, default=10.0, help="refinery's per-page limit (s)")
    parser.add_argument("--extractors", nargs="+", choices=list(TARGETS), default=list(TARGETS),
                        help="refinery extractors to run (default: both)")
    parser.add_argument("--skip-spark", action="store_true")
    parser.add_argument("--skip-datatrove", action="store_true")
    parser.add_argument("--spark-child", nargs=4, metavar=("EXTRACTOR", "WARC", "ROOT", "TIMEOUT"),
                        help=argparse.SUPPRESS)  # internal: one Spark run, in its own process
    args = parser.parse_args()
    if args.spark_child:
        spark_child(*args.spark_child)
        return
    warc = (require_data(WARC) / WARC).resolve()
    load = os.getloadavg()
    results: list[Result] = []
    if not args.skip_datatrove:
        print("datatrove: WarcReader + Trafilatura ...", flush=True)
        if (res := run_datatrove(warc, args.limit)) is not None:
            results.append(res)
    for extractor in args.extractors:
        print(f"refinery in-process: {extractor} ...", flush=True)
        results.append(run_ours(warc, extractor, args.limit, args.timeout))
    if not args.skip_spark:
        with tempfile.TemporaryDirectory(prefix="bench-warc-") as tmp:
            spark_warc = truncated_copy(warc, args.limit, Path(tmp)) if args.limit else warc
            for extractor in args.extractors:
                print(f"refinery spark local[1]: {extractor} ...", flush=True)
                results += run_spark(spark_warc, extractor, args.timeout)

    header = ["engine", "extractor", "responses in", "docs out", "seconds", "docs/s per core",
              "vs datatrove", "target"]
    print()
    print(markdown_table(header, report(results)))
    print(f"\ninput: {warc.name}" + (f", first {args.limit} response records" if args.limit else "")
          + f"; load average at start {load[0]:.2f} on {os.cpu_count()} CPUs (timings are wall-clock).\n"
          "refinery rows include fastText language ID, datatrove's do not. datatrove extracts in its sandbox "
          f"subprocess with a 1 s per-page timeout (its default); refinery's timeout is {args.timeout:g} s.")
    if not args.skip_spark:
        print("Spark rows: whole ingest stage (extract + validation + Delta MERGE), JVM start-up excluded; "
              "'extract pass only' re-runs just the stage's extraction in the same (warm) session.")
    path = write_json("ingest_throughput.json", {
        "warc": str(warc), "limit": args.limit, "load_average_at_start": load,
        "versions": versions("datatrove", "trafilatura", "resiliparse", "fastwarc", "pyspark", "delta-spark"),
        "targets_vs_datatrove": TARGETS,
        "results": [{**asdict(r), "docs_per_s": r.docs_per_s} for r in results],
    })
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
