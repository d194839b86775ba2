"""Whole pipeline (ingest -> decontaminate -> quality -> dedup) beside datatrove's equivalent, and its scaling.

Input (written once per run into a temporary folder, the same files for both sides): Reuters-21578 stories
rendered as news pages (bench/_warcs.py) in `--copies` copies with small edits (near duplicates for dedup), in
4 WARCs, plus the gold pages' real HTML (764 pages) and the Common Crawl / dolma excerpts of shared/data/warc.

* refinery: one `run_pipeline` of the four stages in a subprocess, spark.master=local[2], on a fresh
  storage.root (so decontaminate builds its benchmark index in the run, as datatrove builds its index).
  Per stage: RunRecord.seconds. End to end: from before get_spark (JVM start included) to after dedup.
  Kept = rows of the documents_curated view (quality.keep AND NOT contaminated AND dedup is_kept).
  Our pipeline labels the language (fastText lid.176) and keeps every language.
* datatrove 0.10.1, LocalPipelineExecutor(tasks=2, workers=2) per step, as FineWeb ran it:
  WarcReader -> Trafilatura(favour_precision) -> language label (LanguageFilter(label_only)'s FT176LID work:
  keeps every language; the same lid.176 model file as ours) -> JsonlWriter (all extracted documents, for the
  MinHash steps, as our dedup runs over all of `documents`) -> GopherRepetition -> GopherQuality ->
  C4(filter_no_terminal_punct=False) ->
  FineWeb filters -> NGramsDecontFilter (13-grams of our benchmark files: its index is built in the run from
  the same items, with its own compute_hashes, since its indexer imports lighteval for that) -> JsonlWriter;
  then MinhashDedupSignature -> Buckets (14 tasks) -> Cluster (1) -> Filter (14 x 8, 5-grams, 64-bit) over all
  extracted documents. Kept = ids that passed the filters and the MinHash filter. Per stage: the steps' own
  time from datatrove's stats (summed over its tasks, i.e. core-seconds). End to end: wall clock of all steps.
* docs/s per core = documents in / (seconds x 2 cores); per stage for datatrove: documents in / its steps'
  summed time (already core-seconds). The ratio row: refinery end-to-end per core / datatrove's.
* Scaling (--scaling 1,2,4,8,16 --base-stories N): our pipeline alone on k x N distinct stories (k = the
  factor), each in its own fresh process and lake (--index-cache: the benchmark index copied in, as in a scheduled
  run); the driver's peak RSS (the Python driver + its JVM, sampled from /proc every
  0.2 s; the Python workers are excluded) and the time.

Target: refinery >= 1.5x datatrove per core end to end (trafilatura on both sides); scaling time at most 1.1x
linear, driver peak memory flat.
* Fixed cost (--fixed-cost [--before CHECKOUT]): each stage's seconds and Spark jobs on a 1-document input,
  for this checkout and, with --before, another one's code (e.g. `git archive <commit>` unpacked), alternated.

Run:  .venv/bin/python bench/pipeline.py [--copies 3] [--extractors trafilatura resiliparse] [--skip-datatrove]
      .venv/bin/python bench/pipeline.py --scaling 1,2,4,8,16 --base-stories 1000 --extractors resiliparse
      .venv/bin/python bench/pipeline.py --fixed-cost --before /tmp/base --index-cache /tmp/lake/_cache
Writes bench/out/pipeline.json (pipeline_scaling.json, pipeline_fixed_cost.json).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from functools import partial
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from _common import REPO, markdown_table, require_data, versions, write_json
from _warcs import gold_warc, write_reuters_warcs

STAGES = ("ingest", "decontaminate", "quality", "dedup")
CORES = 2
EXTRA_WARCS = ("warc/cc-main-2020-34_sample_resiliparse.warc.gz", "warc/cc-main-2024-22_whirlwind.warc.gz",
               "warc/wget-2024_dolma_sample-0000.warc.gz")
_MARK = "BENCH_RESULT "


def build_input(folder: Path, copies: int, limit: int | None, extras: bool, gold: bool = True) -> list[Path]:
    paths = write_reuters_warcs(folder, files=4, copies=copies, limit=limit)
    if extras:
        root = require_data(*EXTRA_WARCS)
        for src in ((gold_warc(),) if gold else ()) + tuple(root / w for w in EXTRA_WARCS):
            shutil.copy(src, folder / src.name)
            paths.append(folder / src.name)
    return paths


# ---- refinery ------------------------------------------------------------------------------------------------

def _tree_rss(pid: int) -> int:
    """RSS in bytes of pid and its descendants, except Python workers (pyspark.daemon / worker processes)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                ppid = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    total, stack = 0, [pid]
    while stack:
        p = stack.pop()
        try:
            cmd = Path(f"/proc/{p}/cmdline").read_bytes()
            if b"pyspark.daemon" in cmd or b"pyspark.worker" in cmd:
                continue  # executors' Python workers, not the driver
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            continue
        stack += children.get(p, [])
    return total


def run_refinery(input_glob: str, extractor: str, env: dict[str, str] | None = None,
                 index_cache: str | None = None) -> dict[str, Any] | None:
    with tempfile.TemporaryDirectory(prefix="bench-pipeline-lake-") as root:
        if index_cache:  # a scheduled run: the benchmark index was built by an earlier run (decontaminate.cache_index)
            shutil.copytree(index_cache, Path(root) / "_cache")
        cmd = [sys.executable, str(Path(__file__).resolve()), "--child", extractor, input_glob, root]
        env = {**os.environ, "PYSPARK_PYTHON": sys.executable, **(env or {})}
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        peak = {"rss": 0}
        stop = threading.Event()

        def sample() -> None:
            while not stop.is_set():
                peak["rss"] = max(peak["rss"], _tree_rss(proc.pid))
                stop.wait(0.2)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        out, err = proc.communicate()
        stop.set()
        sampler.join()
    lines = [ln for ln in out.splitlines() if ln.startswith(_MARK)]
    if proc.returncode != 0 or not lines:
        print(f"refinery {extractor}: failed (exit {proc.returncode}); stderr tail:\n{err[-3000:]}")
        return None
    return {**json.loads(lines[-1][len(_MARK):]), "driver_peak_rss_mb": peak["rss"] / 2**20}


def _use_checkout(src: str) -> None:
    """Import refinery from another checkout (e.g. the commit before a change) in this child process: the
    editable install's finder maps refinery's packages to folders; point them at src instead."""
    finder = next(m for m in sys.meta_path if "refinery" in getattr(m, "__module__", ""))
    mapping = sys.modules[finder.__module__].MAPPING
    for name, folder in mapping.items():
        mapping[name] = folder.replace(str(REPO), src, 1)


def child(extractor: str, input_glob: str, root: str) -> None:
    start = time.perf_counter()
    if os.environ.get("BENCH_REFINERY_SRC"):
        _use_checkout(os.environ["BENCH_REFINERY_SRC"])
    from refinery.jobs.base import run_stage
    from refinery.jobs.config import load_config
    from refinery.jobs.main import make_stage
    from refinery.jobs.session import get_spark
    from refinery.jobs.storage import Lakehouse

    cfg = load_config(overrides=[f"storage.root={root}", f"spark.master=local[{CORES}]",
                                 f"ingest.extractor={extractor}", f"ingest.input={input_glob}"])
    spark = get_spark(cfg.spark)
    session_s = time.perf_counter() - start
    stages: dict[str, Any] = {}
    tracker = spark.sparkContext.statusTracker()
    for name in STAGES:
        spark.sparkContext.setJobGroup(f"bench-{name}", name)  # to count the stage's Spark jobs
        t0 = time.perf_counter()
        rec = run_stage(make_stage(name), spark, cfg)
        stages[name] = {"status": rec.status, "seconds": rec.seconds, "wall": time.perf_counter() - t0,
                        "rows_in": rec.rows_in, "rows_out": rec.rows_out, "counters": dict(rec.counters),
                        "spark_jobs": len(tracker.getJobIdsForGroup(f"bench-{name}"))}
    total = time.perf_counter() - start
    lake = Lakehouse(spark, cfg.storage)
    lake.register_views()
    kept = spark.sql("SELECT count(*) FROM documents_curated").first()[0]
    docs = spark.read.format("delta").load(lake.path("documents")).count()
    print(_MARK + json.dumps({"extractor": extractor, "session_s": session_s, "total_s": total, "stages": stages,
                              "documents": docs, "kept": kept}), flush=True)


# ---- datatrove -----------------------------------------------------------------------------------------------

def _datatrove_index(folder: Path, n: int) -> int:
    """datatrove's n-gram index of the items our index reads (the shipped benchmarks, their fields and choice
    variants), hashed by its own NGramsDecontIndexer.compute_hashes (its run() imports lighteval for the rest)."""
    import numpy as np
    from datatrove.pipeline.decont import NGramsDecontConfig, NGramsDecontIndexer
    from datatrove.utils.hashing import create_hash_func
    from datatrove.utils.typeshelper import Languages
    from datatrove.utils.word_tokenizers import load_word_tokenizer

    from refinery.jobs.benchmark_index import benchmark_files, resolve
    from refinery.jobs.config import load_benchmarks
    from refinery.udfs.decontaminate.benchmarks import choice_variants, item_text

    # NGramsDecontIndexer refuses to be built without lighteval; its compute_hashes needs only these three.
    config = NGramsDecontConfig(n_grams=n)
    indexer = SimpleNamespace(config=config, tokenizer=load_word_tokenizer(Languages.english),
                              hash_func=create_hash_func(config.hash_config))
    indexer.compute_hashes = partial(NGramsDecontIndexer.compute_hashes, indexer)
    hashes: dict[str, set[int]] = {}
    for spec, location in benchmark_files(load_benchmarks(None)):
        path = resolve(location)  # the shipped files are named `shipped:data/benchmarks/...`
        with gzip.open(path, "rt", encoding="utf-8") if path.endswith(".gz") else open(path) as fh:
            for line in fh:
                record = json.loads(line)
                for text in (item_text(record, spec.fields), *choice_variants(record, spec)):
                    hashes.setdefault(spec.name, set()).update(indexer.compute_hashes(text))
    folder.mkdir(parents=True, exist_ok=True)
    for name, found in hashes.items():
        np.array(sorted(found), dtype=indexer.config.hash_config.np_descr).tofile(folder / f"{name}.index.hashes")
    return sum(len(v) for v in hashes.values())


def _lid_shim(lid: Any) -> None:
    """Point datatrove's FT176LID at the lid.176 model file we use (it would download lid.176.bin)."""
    import fasttext

    from refinery.udfs.ingest.langid import lid176_path

    lid._model = fasttext.load_model(str(lid176_path()))


def run_datatrove(folder: Path, tmp: Path, warm: bool = False) -> dict[str, Any]:
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.decont import NGramsDecontConfig, NGramsDecontFilter
    from datatrove.pipeline.dedup.minhash import (
        MinhashConfig,
        MinhashDedupBuckets,
        MinhashDedupCluster,
        MinhashDedupFilter,
        MinhashDedupSignature,
    )
    from datatrove.pipeline.extractors import Trafilatura
    from datatrove.pipeline.filters import (
        C4QualityFilter,
        FineWebQualityFilter,
        GopherQualityFilter,
        GopherRepetitionFilter,
    )
    from datatrove.pipeline.filters.base_filter import BaseFilter
    from datatrove.pipeline.readers import JsonlReader, WarcReader
    from datatrove.pipeline.writers import JsonlWriter
    from datatrove.utils.hashing import HashConfig
    from datatrove.utils.lid import FT176LID
    from dedup import _datatrove_xxhash_shim
    from loguru import logger

    logger.remove()
    _datatrove_xxhash_shim()
    index_s, n_hashes = 0.0, None
    index = tmp / "index"
    if warm:  # a scheduled run: the index exists before the clock starts (as our --index-cache); kept between runs
        index = Path(tempfile.gettempdir()) / "bench-pipeline-datatrove-index"
        if not index.is_dir():
            n_hashes = _datatrove_index(index, 13)
    start = time.perf_counter()
    if not warm:
        n_hashes = _datatrove_index(index, 13)
        index_s = time.perf_counter() - start
    class LanguageLabel(BaseFilter):
        """LanguageFilter(label_only=True)'s work, FT176LID.predict on the lid.176 model file we use: datatrove's
        class insists on the fasttext-numpy2-wheel distribution (this venv has another build of the module) and
        would download lid.176.bin. The model loads in the worker (it does not pickle)."""
        name = "🌍 Language ID"

        def __init__(self) -> None:
            super().__init__()
            self.lid = FT176LID()

        def filter(self, doc: Any) -> bool:
            if self.lid._model is None:
                _lid_shim(self.lid)
            # FT176LID.predict, less its score.item() (this fasttext build returns floats)
            labels, scores = self.lid._model.predict(doc.text.replace("\n", " "), k=1)
            lang, score = labels[0].split("__")[2], float(scores[0])
            doc.metadata["language"], doc.metadata["language_score"] = lang, score
            return True

    lid = LanguageLabel()
    decont = NGramsDecontFilter(str(index), config=NGramsDecontConfig(n_grams=13))
    minhash = MinhashConfig(hash_config=HashConfig(precision=64))
    buckets = minhash.num_buckets
    steps = [
        ("main", [WarcReader(str(folder), glob_pattern="*.warc*"), Trafilatura(favour_precision=True), lid,
                  JsonlWriter(str(tmp / "extracted")), GopherRepetitionFilter(), GopherQualityFilter(),
                  C4QualityFilter(filter_no_terminal_punct=False), FineWebQualityFilter(), decont,
                  JsonlWriter(str(tmp / "filtered"))], CORES),
        ("signature", [JsonlReader(str(tmp / "extracted")), MinhashDedupSignature(str(tmp / "sigs"), config=minhash)],
         CORES),
        ("buckets", [MinhashDedupBuckets(str(tmp / "sigs"), str(tmp / "buckets"), config=minhash)], buckets),
        ("cluster", [MinhashDedupCluster(str(tmp / "buckets"), str(tmp / "clusters"), config=minhash)], 1),
        ("filter", [JsonlReader(str(tmp / "extracted")), MinhashDedupFilter(str(tmp / "clusters")),
                    JsonlWriter(str(tmp / "deduped"))], CORES),
    ]
    step_time: dict[str, float] = {}
    wall: dict[str, float] = {}
    counts: dict[str, Any] = {}
    for name, pipeline, tasks in steps:
        t0 = time.perf_counter()
        stats = LocalPipelineExecutor(pipeline, tasks=tasks, workers=min(tasks, CORES),
                                      logging_dir=str(tmp / "logs" / name)).run()
        wall[name] = time.perf_counter() - t0
        for s in stats.stats:
            step_time[f"{name}: {s.name}"] = s.time_stats.total
            counts[f"{name}: {s.name}"] = {k: v.total for k, v in s.stats.items()}
    total = time.perf_counter() - start
    filtered = _ids(tmp / "filtered")
    deduped = _ids(tmp / "deduped")
    extracted = len(_ids(tmp / "extracted"))
    per_stage = {"ingest": 0.0, "decontaminate": index_s, "quality": 0.0, "dedup": 0.0}
    for key, seconds in step_time.items():
        step, label = key.split(": ", 1)
        if step != "main":
            per_stage["dedup"] += seconds
        elif "decontaminate" in label:
            per_stage["decontaminate"] += seconds
        elif any(w in label for w in ("Gopher", "C4", "FineWeb")):
            per_stage["quality"] += seconds
        else:
            per_stage["ingest"] += seconds
    return {"total_s": total, "wall": wall, "index_s": index_s, "index_hashes": n_hashes, "step_time": step_time,
            "per_stage_core_s": per_stage, "counts": counts, "extracted": extracted, "passed_filters": len(filtered),
            "kept": len(filtered & deduped)}


def _ids(folder: Path) -> set[str]:
    ids = set()
    for path in folder.glob("*.jsonl.gz"):
        with gzip.open(path, "rt", encoding="utf-8") as fh:
            ids.update(json.loads(line)["id"] for line in fh)
    return ids


# ---- report --------------------------------------------------------------------------------------------------

def compare(copies: int, limit: int | None, extractors: list[str], skip_datatrove: bool, index_cache: str | None,
            gold: bool) -> None:
    load = os.getloadavg()
    result: dict[str, Any] = {"load_average_at_start": load, "copies": copies, "refinery": {},
                              "warm_index": bool(index_cache), "gold_pages": gold}
    with tempfile.TemporaryDirectory(prefix="bench-pipeline-") as tmp:
        folder = Path(tmp) / "warcs"
        paths = build_input(folder, copies, limit, extras=True, gold=gold)
        result["input"] = {"files": [p.name for p in paths], "bytes": sum(p.stat().st_size for p in paths)}
        for extractor in extractors:
            print(f"refinery {extractor} local[{CORES}] ...", flush=True)
            result["refinery"][extractor] = run = run_refinery(str(folder / "*.warc*"), extractor,
                                                               index_cache=index_cache)
            print(f"  {json.dumps(run)}", flush=True)  # kept in the log should a later side fail
        if not skip_datatrove:
            print(f"datatrove tasks={CORES} workers={CORES} ...", flush=True)
            result["datatrove"] = run_datatrove(folder, Path(tmp) / "datatrove", warm=bool(index_cache))
    result["load_average_at_end"] = os.getloadavg()
    print_compare(result)
    print(f"wrote {write_json('pipeline.json', {**result, 'versions': _versions()})}")


def print_compare(result: dict[str, Any]) -> None:
    dt = result.get("datatrove")
    ours = {k: v for k, v in result["refinery"].items() if v}
    header = ["stage", *(f"refinery {k} s" for k in ours), *(f"refinery {k} docs/s/core" for k in ours)]
    if dt:
        header += ["datatrove core-s", "datatrove docs/s/core"]
    rows = []
    for stage in STAGES:
        row: list[Any] = [stage]
        row += [v["stages"][stage]["seconds"] for v in ours.values()]
        row += [v["stages"][stage]["rows_in"] / (v["stages"][stage]["seconds"] * CORES) for v in ours.values()]
        if dt:
            core_s = dt["per_stage_core_s"][stage]
            n = dt["extracted"] if stage in ("ingest", "dedup") else (
                dt["passed_filters"] if stage == "decontaminate" else dt["extracted"])
            row += [core_s, n / core_s if core_s else None]
        rows.append(row)
    end: list[Any] = ["end to end (wall)"]
    end += [v["total_s"] for v in ours.values()]
    end += [v["documents"] / (v["total_s"] * CORES) for v in ours.values()]
    if dt:
        end += [dt["total_s"], dt["extracted"] / (dt["total_s"] * CORES)]
    rows.append(end)
    print()
    print(markdown_table(header, rows))
    base = dt["extracted"] / (dt["total_s"] * CORES) if dt else None
    print()
    summary = []
    for k, v in ours.items():
        rate = v["documents"] / (v["total_s"] * CORES)
        summary.append([f"refinery ({k})", v["documents"], v["kept"], v["total_s"], rate,
                        f"{rate / base:.2f}x" if base else None, v["driver_peak_rss_mb"]])
    if dt:
        summary.append(["datatrove (trafilatura)", dt["extracted"], dt["kept"], dt["total_s"], base, "1.00x", None])
    print(markdown_table(["side", "documents", "kept", "seconds", "docs/s/core", "vs datatrove",
                          "driver peak RSS MB"], summary))
    la, lb = result["load_average_at_start"], result.get("load_average_at_end")
    print(f"\nload average at start {la[0]:.2f} {la[1]:.2f} {la[2]:.2f}; at end {lb[0]:.2f} on {os.cpu_count()} CPUs")


def scaling(factors: list[int], base_stories: int, extractor: str, index_cache: str | None) -> None:
    load = os.getloadavg()
    rows, runs = [], []
    for k in factors:
        with tempfile.TemporaryDirectory(prefix="bench-pipeline-scale-") as tmp:
            folder = Path(tmp) / "warcs"
            build_input(folder, 1, base_stories * k, extras=False)  # k times as many distinct stories
            print(f"scale {k}x ({base_stories * k} stories) ...", flush=True)
            run = run_refinery(str(folder / "*.warc*"), extractor, index_cache=index_cache)
        if run is None:
            continue
        runs.append({"factor": k, **run})
        print(f"  {k}x: {run['documents']} documents, {run['total_s']:.1f} s, driver peak RSS "
              f"{run['driver_peak_rss_mb']:.0f} MB, stages {[round(s['seconds'], 1) for s in run['stages'].values()]}",
              flush=True)
    base = runs[0] if runs else None
    for run in runs:
        linear = base["total_s"] * run["factor"] / base["factor"]
        work = sum(s["seconds"] for s in run["stages"].values())
        rows.append([f"{run['factor']}x", run["documents"], run["total_s"], run["total_s"] / linear,
                     work, work / (sum(s["seconds"] for s in base["stages"].values()) * run["factor"] / base["factor"]),
                     run["documents"] / run["total_s"], run["driver_peak_rss_mb"]])
    print()
    print(markdown_table(["input", "documents", "seconds", "/ linear", "stage seconds", "stages / linear",
                          "docs/s", "driver peak RSS MB"], rows))
    print(f"\nextractor {extractor}, local[{CORES}]; load average at start {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}, "
          f"at end {os.getloadavg()[0]:.2f}")
    payload = {"load_average_at_start": load, "runs": runs, "base_stories": base_stories, "versions": _versions()}
    print(f"wrote {write_json('pipeline_scaling.json', payload)}")


def fixed_cost(before: str | None, extractor: str, repeats: int, index_cache: str | None) -> None:
    """Each stage's time and Spark jobs on a 1-document input: what every run pays whatever its size."""
    load = os.getloadavg()
    sides = [("before", before), ("after", None)] if before else [("this checkout", None)]
    runs: dict[str, list[dict[str, Any]]] = {label: [] for label, _ in sides}
    with tempfile.TemporaryDirectory(prefix="bench-pipeline-fixed-") as tmp:
        folder = Path(tmp) / "warcs"
        write_reuters_warcs(folder, files=1, limit=1)
        for _ in range(repeats):  # alternate the sides so the machine's load falls on both alike
            for label, src in sides:
                print(f"fixed cost: {label} ...", flush=True)
                env = {"BENCH_REFINERY_SRC": src} if src else {}
                if (run := run_refinery(str(folder / "*.warc*"), extractor, env, index_cache)) is not None:
                    runs[label].append(run)
                    print(f"  {label}: " + ", ".join(f"{k} {v['seconds']:.1f} s / {v['spark_jobs']} jobs"
                                                     for k, v in run["stages"].items()), flush=True)
    rows = []
    for stage in (*STAGES, "session start"):
        row: list[Any] = [stage]
        for label, _ in sides:
            got = runs[label]
            if stage == "session start":
                row += [min(r["session_s"] for r in got) if got else None, None]
            else:
                row += [min(r["stages"][stage]["seconds"] for r in got) if got else None,
                        min(r["stages"][stage]["spark_jobs"] for r in got) if got else None]
        rows.append(row)
    print()
    print(markdown_table(["stage", *(f"{label} {what}" for label, _ in sides for what in ("s", "Spark jobs"))],
                         rows))
    print(f"\n1 document, extractor {extractor}, local[{CORES}], best of {repeats}; load average at start "
          f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}, at end {os.getloadavg()[0]:.2f}")
    payload = {"load_average_at_start": load, "before": before, "runs": runs, "versions": _versions()}
    print(f"wrote {write_json('pipeline_fixed_cost.json', payload)}")


def _versions() -> dict[str, str]:
    return versions("pyspark", "delta-spark", "datatrove", "trafilatura", "resiliparse", "fasttext")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=3, help="copies of the Reuters stories (3: ~59k pages)")
    parser.add_argument("--limit", type=int, help="only the first N stories")
    parser.add_argument("--extractors", nargs="+", choices=("trafilatura", "resiliparse"),
                        default=["trafilatura", "resiliparse"])
    parser.add_argument("--skip-datatrove", action="store_true")
    parser.add_argument("--skip-refinery", action="store_true")
    parser.add_argument("--no-gold", action="store_true", help="leave the gold pages' WARC (764 pages) out")
    parser.add_argument("--scaling", help="comma-separated factors, e.g. 1,2,4,8,16: our pipeline alone")
    parser.add_argument("--base-stories", type=int, default=1000, help="stories at 1x for --scaling")
    parser.add_argument("--fixed-cost", action="store_true", help="each stage on a 1-document input")
    parser.add_argument("--before", help="with --fixed-cost: another checkout's folder to measure beside this one")
    parser.add_argument("--repeats", type=int, default=1, help="with --fixed-cost: runs per side (best kept)")
    parser.add_argument("--index-cache", help="a <storage.root>/_cache folder of an earlier run, copied in so "
                        "decontaminate does not rebuild the benchmark index (datatrove's is then built before "
                        "its clock starts)")
    parser.add_argument("--child", nargs=3, metavar=("EXTRACTOR", "GLOB", "ROOT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
    elif args.fixed_cost:
        fixed_cost(args.before, args.extractors[0], args.repeats, args.index_cache)
    elif args.scaling:
        scaling([int(f) for f in args.scaling.split(",")], args.base_stories, args.extractors[0], args.index_cache)
    else:
        compare(args.copies, args.limit, [] if args.skip_refinery else args.extractors, args.skip_datatrove,
                args.index_cache, not args.no_gold)


if __name__ == "__main__":
    main()
