"""Decontamination: docs/s per core, recall on planted benchmark items, Bloom filter size and false positives.

Corpus: Reuters-21578 (shared/data/corpus, non-empty `text`) plus the gold pages' text (shared/data/warc,
extracted with resiliparse). 200 real items of the shipped conf/benchmarks.yaml (seeded, spread over all 12
sets, >= 8 normalised tokens) are planted mid-text in a seeded sample of 200 documents, verbatim or transformed
(upper case, ASCII punctuation stripped, whitespace -> newlines + spaces, extra punctuation). Measured:

* Spark: the whole `decontaminate` stage (index, Bloom scan, exact join, validation, Delta MERGE) in a
  subprocess, spark.master=local[1]: on a fresh storage.root (builds and caches the benchmark index), then on
  fresh tables with that cache copied in (a scheduled run against unchanged benchmarks); docs/s per core =
  docs_scanned / RunRecord.seconds (JVM start-up and writing `documents` excluded); then the Bloom scan alone.
  Recall: each planted (doc_id, benchmark, item_id) must be in `contamination_matches`.
* In-process, one core: `bloom_candidates` per document, and `bloom_candidates_batch` over 256-document
  slices (as the stage scans), + verification against a dict of the exact n-grams; vs a user's
  baseline: a Python set of n-gram strings (13 tokens, or the whole 8-12 token item), each document's n-grams
  joined and looked up; same normalize_tokens. Build times start from the items' tokens; the set's memory
  is measured with tracemalloc around a second build.
* Bloom false-positive rate: (hits not in the exact set) / (n-grams checked not in it), at 1e-6 and 1e-3.

Targets: >= 2,000 docs/s per core (Spark stage and in-process), 100% recall on planted items.
Run:  .venv/bin/python bench/decontamination.py [--limit-docs N] [--skip-spark]
(--limit-docs N: the first N Reuters documents and first N/10 gold pages). Writes bench/out/decontamination.json.
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import os
import pickle
import random
import re
import shutil
import string
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from _common import REPO, markdown_table, require_data, versions, write_json

from refinery.udfs.decontaminate.bloom import BloomFilter
from refinery.udfs.decontaminate.ngrams import ngram_hashes, normalize_tokens, token_hashes
from refinery.udfs.decontaminate.scan import bloom_candidates, bloom_candidates_batch

CORPUS, WARC = "corpus/reuters21578.jsonl.gz", "warc/built_from_gold_pages.warc.gz"
N, MIN_N, PLANTS, SEED, TARGET, FPRS = 13, 8, 200, 21578, 2000.0, (1e-6, 1e-3)
ARROW_BATCH = 256  # the slice the stage scans at once (jobs/decontaminate.py _SCAN_SLICE)
TRANSFORMS = {
    "verbatim": lambda t: t,
    "upper case": str.upper,
    "punctuation stripped": lambda t: t.translate(str.maketrans("", "", string.punctuation)),
    "newlines + spaces": lambda t: "\n  ".join(t.split()),
    "extra punctuation": lambda t: " -- ".join(f'"{w}",' if i % 3 else w + "..." for i, w in enumerate(t.split())),
}
Doc = dict[str, Any]


@dataclass
class Item:
    benchmark: str
    item_id: str
    text: str
    tokens: list[str]


def load_items() -> list[Item]:
    """Items of the shipped list with >= MIN_N tokens; ids as read_benchmark makes them (id field or line)."""
    from refinery.jobs.config import load_benchmarks
    from refinery.udfs.decontaminate.benchmarks import item_text

    items = []
    for entry in load_benchmarks():
        with gzip.open(REPO / entry.path, "rb") as raw:
            for line, row in enumerate(io.TextIOWrapper(raw, encoding="utf-8", errors="replace", newline=""), 1):
                if row.strip():
                    rec = json.loads(row)
                    text, key = item_text(rec, tuple(entry.fields)), entry.id and rec.get(entry.id)
                    if len(tokens := normalize_tokens(text)) >= MIN_N:
                        items.append(Item(entry.name, f"line {line}" if key is None else str(key), text, tokens))
    return items


def load_docs(data: Path, limit: int | None) -> list[Doc]:
    """Reuters articles and gold pages as `documents` rows (dicts by column name)."""
    from refinery.udfs.ids import doc_id_from_record_id
    from refinery.udfs.ingest.warc import FileOutcome, IngestSettings, read_warc_documents

    docs: list[Doc] = []
    with gzip.open(data / CORPUS, "rt", encoding="utf-8") as lines:
        for rec in map(json.loads, lines):
            if limit is not None and len(docs) >= limit:
                break
            if rec.get("text", "").strip():
                rid = f"reuters-{rec['newid']}"
                docs.append({"doc_id": doc_id_from_record_id(rid), "crawl": "reuters", "title": rec.get("title"),
                             "text": rec["text"], "language": "en", "warc_path": CORPUS, "warc_record_id": rid})
    warc = str(data / WARC)
    for number, doc in enumerate(read_warc_documents(warc, IngestSettings("resiliparse"), FileOutcome(warc))):
        if limit is not None and number >= limit // 10:
            break
        docs.append(doc | {"crawl": "gold page"})
    return list({d["doc_id"]: d for d in docs}.values())


def plant(docs: list[Doc], items: list[Item], rng: random.Random) -> list[dict[str, str]]:
    """Insert PLANTS items (round-robin over the benchmarks) mid-text into as many sampled documents."""
    groups: dict[str, list[Item]] = defaultdict(list)
    for item in items:
        groups[item.benchmark].append(item)
    names = sorted(groups)
    quota = Counter(names[i % len(names)] for i in range(min(PLANTS, len(docs))))
    chosen = [it for name in names for it in rng.sample(groups[name], min(quota[name], len(groups[name])))]
    rng.shuffle(chosen)
    plants = []
    for number, (item, target) in enumerate(zip(chosen, rng.sample(range(len(docs)), len(chosen)), strict=True)):
        kind, text = list(TRANSFORMS)[number % len(TRANSFORMS)], docs[target]["text"]
        cut = m.start() if (m := re.compile(r"\s").search(text, len(text) // 2)) else len(text)
        docs[target]["text"] = f"{text[:cut]}\n{TRANSFORMS[kind](item.text)}\n{text[cut:]}"
        plants.append({"doc_id": docs[target]["doc_id"], "benchmark": item.benchmark, "item_id": item.item_id,
                       "transform": kind})
    return plants


def item_strings(tokens: list[str]) -> list[str]:
    n = min(N, len(tokens))
    return [" ".join(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]


def timed(fn: Any, *args: Any) -> tuple[Any, float]:
    start = time.perf_counter()
    return fn(*args), time.perf_counter() - start


def item_hashes(tokens: list[str]) -> np.ndarray:
    return ngram_hashes(token_hashes(tokens), [min(N, len(tokens))]).popitem()[1]


def string_set(items: list[Item]) -> set[str]:
    return {g for it in items for g in item_strings(it.tokens)}


def build(items: list[Item]) -> dict[str, Any]:
    """Sorted n-gram hashes + owning item, Bloom filters, the exact dict and the baseline's set, with times."""
    ix: dict[str, Any] = {"lengths": sorted({min(N, len(it.tokens)) for it in items}), "s": {}, "blooms": {}}
    per_item, ix["s"]["hashes"] = timed(lambda: [item_hashes(it.tokens) for it in items])
    order = np.argsort(hashes := np.concatenate(per_item), kind="stable")
    ix["hashes"], ix["owners"] = hashes[order], np.repeat(np.arange(len(items)), [len(h) for h in per_item])[order]
    for fpr in FPRS:
        ix["blooms"][fpr] = BloomFilter.for_capacity(int(np.count_nonzero(np.diff(ix["hashes"]))) + 1, fpr)
        _, ix["s"][fpr] = timed(ix["blooms"][fpr].add, ix["hashes"])
    pairs = zip(items, per_item, strict=True)
    ix["exact"], ix["s"]["exact"] = timed(lambda: {h: g for it, hs in pairs for h, g in zip(
        hs.view(np.int64).tolist(), item_strings(it.tokens), strict=True)})
    ix["set"], ix["s"]["set"] = timed(string_set, items)
    tracemalloc.start()
    again = string_set(items)
    ix["set_bytes"] = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    del again
    return ix


def scan_ours(docs: list[Doc], ix: dict[str, Any], batch: int) -> tuple[dict[str, list[int]], int, int]:
    """Bloom candidates (per document, or bloom_candidates_batch over `batch` documents), verified exactly."""
    found, checked, candidates, bloom, lengths = {}, 0, 0, ix["blooms"][FPRS[0]], ix["lengths"]
    for start in range(0, len(docs), batch):
        chunk = docs[start : start + batch]
        results = ([bloom_candidates(chunk[0]["text"], bloom, lengths)] if batch == 1
                   else bloom_candidates_batch([d["text"] for d in chunk], bloom, lengths))
        for doc, (count, hits) in zip(chunk, results, strict=True):
            checked, candidates = checked + count, candidates + len(hits)
            if verified := [h for h, g in hits.items() if ix["exact"].get(h) == g]:
                found[doc["doc_id"]] = verified
    return found, checked, candidates


def scan_baseline(docs: list[Doc], ix: dict[str, Any]) -> dict[str, set[str]]:
    found, strings = {}, ix["set"]
    for doc in docs:
        tokens = normalize_tokens(doc["text"])
        if hits := {g for n in ix["lengths"] for i in range(len(tokens) - n + 1)
                    if (g := " ".join(tokens[i : i + n])) in strings}:
            found[doc["doc_id"]] = hits
    return found


def false_positives(docs: list[Doc], ix: dict[str, Any]) -> tuple[int, Counter]:
    """(n-grams checked that are no benchmark n-gram, Bloom hits among them per filter)."""
    outside_total, hits, known = 0, Counter(), ix["hashes"]
    for doc in docs:
        for keys in ngram_hashes(token_hashes(normalize_tokens(doc["text"])), ix["lengths"]).values():
            outside = known[np.minimum(np.searchsorted(known, keys), len(known) - 1)] != keys
            outside_total += int(outside.sum())
            for fpr, bloom in ix["blooms"].items():
                hits[fpr] += int((bloom.contains(keys) & outside).sum())
    return outside_total, hits


def owned(ix: dict[str, Any], items: list[Item], signed: list[int]) -> set[tuple[str, str]]:
    """(benchmark, item_id) of every item that has one of these n-gram hashes."""
    keys = np.array(signed, dtype=np.int64).view(np.uint64)
    bounds = zip(np.searchsorted(ix["hashes"], keys), np.searchsorted(ix["hashes"], keys, "right"), strict=True)
    return {(items[o].benchmark, items[o].item_id) for lo, hi in bounds for o in ix["owners"][lo:hi]}


def run_spark(docs: list[Doc]) -> dict[str, Any] | None:
    with tempfile.TemporaryDirectory(prefix="bench-decontam-") as tmp:
        (Path(tmp) / "docs.pkl").write_bytes(pickle.dumps(docs))
        proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--spark-child", tmp], cwd=REPO,
                              env={**os.environ, "PYSPARK_PYTHON": sys.executable}, capture_output=True, text=True)
        if proc.returncode != 0 or not (Path(tmp) / "spark.json").exists():
            print(f"spark: failed (exit {proc.returncode}); stderr tail:\n{proc.stderr[-3000:]}")
            return None
        return json.loads((Path(tmp) / "spark.json").read_text())


def spark_child(tmp: str) -> None:
    from refinery.jobs import decontaminate
    from refinery.jobs.config import load_benchmarks, load_config
    from refinery.jobs.main import run_pipeline
    from refinery.jobs.session import get_spark
    from refinery.jobs.storage import Lakehouse
    from refinery.schemas.tables import DOCUMENTS

    docs, result = pickle.loads((Path(tmp) / "docs.pkl").read_bytes()), {"errors": []}

    def stage(root: str) -> tuple[Any, Lakehouse, Any]:
        cfg = load_config(overrides=[f"storage.root={root}", "spark.master=local[1]"])
        lake = Lakehouse(spark := get_spark(cfg.spark), cfg.storage)
        lake.create(DOCUMENTS)
        lake.merge(DOCUMENTS.name, spark.createDataFrame(
            [tuple(d.get(f) for f in DOCUMENTS.schema.fieldNames()) for d in docs], DOCUMENTS.schema))
        return cfg, lake, run_pipeline(cfg, ["decontaminate"])[0]

    try:
        cfg, lake, record = stage(f"{tmp}/cold")
    except Exception as err:  # noqa: BLE001 - reported in the table's place
        result["errors"].append(f"{type(err).__name__}: {str(err)[:1200]}")
        (Path(tmp) / "spark.json").write_text(json.dumps(result))
        return
    spark, root = get_spark(cfg.spark), Path(lake.root)
    result.update(cold={"seconds": record.seconds, "counters": dict(record.counters)}, matches=[
        r.asDict() for r in lake.read("contamination_matches").select("doc_id", "benchmark", "item_id").collect()])
    result["flagged"] = [r.doc_id for r in lake.read("contamination").where("contaminated").collect()]
    if (root / "_cache").is_dir():  # the same stage on fresh tables, with the index built above cached
        shutil.copytree(root / "_cache", root.parent / "warm" / "_cache")
        warm = stage(str(root.parent / "warm"))[2]
        result["warm"] = {"seconds": warm.seconds, "counters": dict(warm.counters)}
    cache = f"{root}/_cache/benchmark_index"  # the stage's cache folder: loaded, not rebuilt, if it is still there
    index = decontaminate.load_or_build_index(spark, load_benchmarks(), cfg.decontaminate, cache)
    bloom = spark.sparkContext.broadcast(index.bloom)  # the Bloom scan alone (mapInArrow, counted)
    result["scan_docs"], result["scan_seconds"] = timed(lambda: decontaminate.scan(
        lake.read(DOCUMENTS.name).select("doc_id", "text"), bloom, index.lengths).count())
    (Path(tmp) / "spark.json").write_text(json.dumps(result, default=str))


def recall(plants: list[dict[str, str]], found: dict[str, set]) -> list[list[Any]]:
    rows = []
    for kind in [*TRANSFORMS, "all"]:
        chosen = [p for p in plants if kind in (p["transform"], "all")]
        hit = sum((p["benchmark"], p["item_id"]) in found.get(p["doc_id"], ()) for p in chosen)
        rows.append([kind, len(chosen), hit, f"{hit / max(len(chosen), 1):.1%}"])
    return rows


def choice_recall(docs: list[Doc], rng: random.Random, per_benchmark: int = 200) -> list[list[Any]]:
    """Recall on "context + gold answer" pages for the multiple-choice sets, with per-choice variants off and on.

    Items whose gold answer is not the first choice and whose context is under N tokens (so no n-gram of the
    context alone matches), up to `per_benchmark` of them (seeded), each planted mid-text in a sampled document;
    found = some n-gram that read_benchmark gives the item occurs in that document (exact strings, all lengths)."""
    from refinery.jobs.config import load_benchmarks
    from refinery.udfs.decontaminate.benchmarks import BenchmarkNgram, BenchmarkSpec, item_text, read_benchmark

    rows = []
    for entry in load_benchmarks():
        if not entry.choices or not entry.answer:
            continue
        spec = BenchmarkSpec(entry.name, str(REPO / entry.path), tuple(entry.fields), entry.id,
                             tuple(entry.choices), entry.answer)
        grams = {variants: defaultdict(set) for variants in (False, True)}
        for variants, table in grams.items():
            for r in read_benchmark(spec, spec.path, N, MIN_N, variants):
                if isinstance(r, BenchmarkNgram):
                    table[r.item_id].add(r.ngram)
        context_fields = tuple(f for f in entry.fields if f not in entry.choices)
        pages = []
        with gzip.open(spec.path, "rt", encoding="utf-8") as lines:
            for line, rec in enumerate(map(json.loads, lines), 1):
                gold, choices = rec.get(entry.answer), rec.get(entry.choices[0])
                context = item_text(rec, context_fields)
                if (isinstance(gold, int) and 0 < gold < len(choices or [])
                        and len(normalize_tokens(context)) < N):
                    key = entry.id and rec.get(entry.id)
                    pages.append((f"line {line}" if key is None else str(key), f"{context} {choices[gold]}"))
        pages = rng.sample(pages, min(per_benchmark, len(pages)))
        found = {False: 0, True: 0}
        for item_id, planted in pages:
            host = docs[rng.randrange(len(docs))]["text"]
            tokens = normalize_tokens(f"{host[:len(host) // 2]}\n{planted}\n{host[len(host) // 2:]}")
            for variants, table in grams.items():
                wanted = table.get(item_id, set())
                lengths = {len(g.split()) for g in wanted}
                present = {" ".join(tokens[i:i + n]) for n in lengths for i in range(len(tokens) - n + 1)}
                found[variants] += bool(wanted & present)
        n = max(len(pages), 1)
        rows.append([entry.name, len(pages), found[False] / n, found[True] / n])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit-docs", type=int, help="the first N Reuters documents and first N/10 gold pages")
    parser.add_argument("--skip-spark", action="store_true")
    parser.add_argument("--choice-recall-only", action="store_true",
                        help="only the multiple-choice recall table (choice_variants off vs on)")
    parser.add_argument("--spark-child", metavar="TMP", help=argparse.SUPPRESS)  # internal: the Spark run
    args = parser.parse_args()
    if args.spark_child:
        return spark_child(args.spark_child)
    data, load = require_data(CORPUS, WARC), os.getloadavg()
    from refinery.udfs.ids import text_hash

    choice_rows = choice_recall(load_docs(data, args.limit_docs), random.Random(SEED))
    choice_table = markdown_table(["benchmark", "context + gold pages (gold not first, context < 13 tokens)",
                                   "recall, choice_variants off (before)", "recall, on (after)"], choice_rows)
    if args.choice_recall_only:
        print(choice_table)
        write_json("decontamination_choices.json", {"choice_recall": choice_rows})
        return

    items, read_s = timed(load_items)
    docs = load_docs(data, args.limit_docs)
    plants = plant(docs, items, random.Random(SEED))
    for doc in docs:
        doc.update(text_chars=len(doc["text"]), text_hash=text_hash(doc["text"]), run_id="bench-setup")
    print(f"{len(items)} benchmark items, {len(docs)} documents, {len(plants)} planted; indexing ...", flush=True)
    ix = build(items)
    for batch in (1, ARROW_BATCH):  # warm-up, untimed: first touches of the filter's pages cost a lot
        scan_ours(docs[:200], ix, batch)
    scan_baseline(docs[:200], ix)
    (ours, checked, candidates), ours_s = timed(scan_ours, docs, ix, 1)
    batched, batch_s = timed(scan_ours, docs, ix, ARROW_BATCH)
    base, base_s = timed(scan_baseline, docs, ix)
    (outside, fp), found = false_positives(docs, ix), {d: owned(ix, items, hs) for d, hs in ours.items()}
    if not args.skip_spark:
        print("spark local[1]: decontaminate ...", flush=True)
    spark = None if args.skip_spark else run_spark(docs)
    ok = spark is not None and "cold" in spark

    def row(name: str, n: int | None, s: float, target: bool = True) -> list[Any]:
        rate = n / s if n else None
        return [name, n, s, rate, f"{'met' if rate >= TARGET else 'NOT met'} (>= 2,000)" if target and rate else ""]

    speed = [row("in-process: bloom_candidates per doc + exact dict", len(docs), ours_s),
             row(f"in-process: bloom_candidates_batch ({ARROW_BATCH:,} docs) + exact dict", len(docs), batch_s),
             row("in-process: Python set of n-gram strings (baseline)", len(docs), base_s, False)]
    if ok:
        cold, warm = spark["cold"], spark.get("warm")
        speed.append(row("spark local[1]: decontaminate stage, builds index",
                         cold["counters"].get("docs_scanned", 0), cold["seconds"]))
        if warm:
            speed += [row("spark local[1]: same stage, fresh tables, index cached",
                          warm["counters"].get("docs_scanned", 0), warm["seconds"]),
                      row("  index build (difference)", None, cold["seconds"] - warm["seconds"])]
        speed.append(row("  Bloom scan alone (mapInArrow, counted)", spark["scan_docs"], spark["scan_seconds"], False))
    for error in (spark or {}).get("errors", []):
        print(f"\nSPARK STAGE FAILED, {' '.join(error.splitlines()[:2])[:400]} ...")
    print("\n" + markdown_table(["engine (one core)", "docs", "seconds", "docs/s", "target"], speed))
    s, blooms = ix["s"], ix["blooms"]
    print("\n" + markdown_table(["index (2.55M n-grams when complete)", "build s", "bytes", "note"], [
        ["read + normalise items (shared by all)", read_s, None, f"{len(items)} items, {len(ix['exact'])} n-grams"],
        *[[f"Bloom filter {f:g} (hash + add)", s["hashes"] + s[f], blooms[f].nbytes, f"k={blooms[f].num_hashes}"]
          for f in FPRS],
        ["exact dict hash -> n-gram (in-process verify)", s["exact"], None, "Spark joins a table instead"],
        ["Python set of n-gram strings (baseline)", s["set"], ix["set_bytes"], "tracemalloc"]]))
    outside = max(outside, 1)
    fprs = [[f"{f:g}", f"{blooms[f].expected_false_positive_rate():.2e}", outside, fp[f], f"{fp[f] / outside:.2e}",
             f"{(fp[f] + 1 + 2 * (fp[f] + 1) ** 0.5) / outside:.2e}"] for f in FPRS]  # ~Poisson 95% upper
    print("\n" + markdown_table(["target FPR", "expected fill^k", "non-member n-grams", "false positives",
                                 "measured", "~95% upper"], fprs))
    table = recall(plants, found)
    matched: dict[str, set] = defaultdict(set)
    for m in (matched_rows := spark["matches"] if ok else []):
        matched[m["doc_id"]].add((m["benchmark"], m["item_id"]))
    if ok:
        table = [[*a, *b[2:]] for a, b in zip(table, recall(plants, matched), strict=True)]
    planted, meta = {p["doc_id"] for p in plants}, {d["doc_id"]: d for d in docs}
    print("\n" + markdown_table(["transform", "planted", "in-process", "recall", "spark", "recall spark"]
                                [: len(table[0])], table) + "\n(target: 100%; an item counts when it is matched)")
    print(f"planted documents flagged: in-process {len(planted & set(found))}/{len(planted)}"
          + (f", spark (contamination.contaminated) {len(planted & set(spark['flagged']))}" if ok else ""))
    per_doc, misses = Counter(m["doc_id"] for m in matched_rows), [p for p in plants if ok and (
        p["benchmark"], p["item_id"]) not in matched[p["doc_id"]]]
    if misses:
        print(markdown_table(["missed by spark: doc_id", "benchmark", "item_id", "transform", "spark rows for doc",
                              "in-process n-grams / items"], [
            [p["doc_id"][:12], p["benchmark"], p["item_id"], p["transform"], per_doc[p["doc_id"]],
             f"{len(ours.get(p['doc_id'], []))} / {len(found.get(p['doc_id'], ()))}"] for p in misses]))
        print("(spark rows = decontaminate.max_matches_per_doc: the item was cut by the per-document cap)")
    others = sorted(set(found) - planted, key=lambda d: -len(ours[d]))
    print(f"\n{len(others)} documents flagged that were not planted (in-process)"
          + (f"; spark: {len(set(spark['flagged']) - planted)}" if ok else ""))
    if others:
        print(markdown_table(["doc_id", "source", "title / url", "n-grams", "benchmarks", "example n-gram", "kind"], [
            [d[:12], meta[d]["crawl"], (meta[d].get("title") or meta[d].get("url") or "")[:40], len(ours[d]),
             ", ".join(sorted({b for b, _ in found[d]})), (g := ix["exact"][ours[d][0]])[:70],
             "numbers only: false alarm" if g.replace(" ", "").isdigit() else "text: read it"] for d in others[:10]]))
        print("(every row is an exact, verified n-gram match, never a Bloom false positive)")
    same = {d: {ix["exact"][h] for h in hs} for d, hs in ours.items()} == base and batched[0] == ours
    print(f"\nin-process: {checked} n-grams checked, {candidates} Bloom candidates, same matches as the baseline: "
          f"{'yes' if same else 'NO'}. Load average at start {load[0]:.2f} on {os.cpu_count()} CPUs (wall-clock).")
    print("\n## Multiple choice: a page with a short context and its gold answer (not the first choice)")
    print(choice_table)
    path = write_json("decontamination.json", {
        "choice_recall": choice_rows,
        "limit_docs": args.limit_docs, "load_average_at_start": load, "versions": versions("pyspark", "numpy"),
        "docs": len(docs), "plants": plants, "speed": speed, "build_seconds": {str(k): v for k, v in s.items()},
        "bloom_bytes": {str(f): b.nbytes for f, b in blooms.items()}, "python_set_bytes": ix["set_bytes"],
        "false_positives": fprs, "recall": table, "same_as_baseline": same,
        "unplanted_flagged": [{"doc_id": d, "source": meta[d]["crawl"], "ngrams": [ix["exact"][h] for h in ours[d]],
                               "items": sorted(found[d])} for d in others],
        "spark": spark and {k: v for k, v in spark.items() if k != "matches"}})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
