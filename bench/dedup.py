"""Dedup: accuracy and docs/s per core of the `dedup` stage on Reuters-21578, beside datatrove's MinHash dedup.

Corpus: Reuters-21578 (shared/data/corpus), every article with non-empty text (19.8k), each a `documents` row.
Measured, all in one run:

* Truth: every pair with Jaccard >= 0.8 on the word 5-gram shingles of datatrove-simplified text (the stage's
  shingles, which equal datatrove's: tests/test_minhash_units.py), found exactly by an all-pairs prefix-filter
  join (complete for Jaccard, Bayardo et al. 2007) and cross-checked by brute force (sparse products) for a seeded
  sample of documents against all. Documents under 5 words have no shingles and are left out on both sides.
* Accuracy: recall and precision of the pairs that end in one cluster, for our stage (verification on and off)
  and datatrove 0.10.1's MinhashDedupSignature -> Buckets -> Cluster -> Filter (14 x 8, 5-grams, 64-bit).
  "precision (component)" counts a pair right when both documents lie in one component of the truth graph.
* Speed, one core: the whole Spark stage with spark.master=local[1] in a subprocess, timed by the stage's
  RunRecord (JVM start-up and writing `documents` excluded; validation and both MERGEs included), against
  datatrove's four steps with LocalPipelineExecutor(tasks=1 / 14, workers=1) on in-memory Documents. The signature
  step alone (text -> signature, in-process): ours, datatrove's get_shingles + get_signature, datasketch.
* Scaling: the stage on 1x, 2x, 4x, 8x the corpus; copies of real articles with 1-3 words replaced (seeded).

Targets: recall >= 0.95 and precision >= 0.98 (verification on), never below datatrove; >= 3x datatrove per core.
Run:  .venv/bin/python bench/dedup.py [--limit-docs N] [--scales 1,2,4,8] [--skip-spark] [--skip-datatrove]
Writes bench/out/dedup.json.
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import os
import random
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from datetime import datetime, timedelta
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np
from _common import REPO, markdown_table, require_data, versions, write_json

from refinery.udfs.dedup.minhash import band_hashes, permutations, shingles, signatures, simplify_text, word_tokens
from refinery.udfs.ids import doc_id_from_record_id, text_hash

CORPUS, THRESHOLD, SEED, SAMPLE, TARGET_SPEEDUP = "corpus/reuters21578.jsonl.gz", 0.8, 21578, 1000, 3.0
Doc = dict[str, Any]


def load_docs(data: Path, limit: int | None) -> list[Doc]:
    docs = []
    with gzip.open(data / CORPUS, "rt", encoding="utf-8") as lines:
        for rec in map(json.loads, lines):
            if rec.get("text", "").strip():
                docs.append(_doc(f"reuters-{rec['newid']}", rec["text"], datetime(1987, 1, 1)
                                 + timedelta(seconds=int(rec["newid"]))))
            if limit is not None and len(docs) >= limit:
                break
    return docs


def _doc(record_id: str, text: str, fetched: datetime) -> Doc:
    return {"doc_id": doc_id_from_record_id(record_id), "text": text, "text_hash": text_hash(text),
            "fetch_time": fetched, "warc_path": CORPUS, "warc_record_id": record_id, "run_id": "bench-setup",
            "text_chars": len(text), "language": "en"}


def scaled(docs: list[Doc], factor: int) -> list[Doc]:
    """The corpus plus factor-1 copies of every article with 1-3 random words replaced (known near-duplicates)."""
    rng, out = random.Random(SEED + factor), list(docs)
    for copy in range(1, factor):
        for d in docs:
            words = d["text"].split()
            for _ in range(rng.randint(1, 3)):
                words[rng.randrange(len(words))] = rng.choice(words) + rng.choice("sdy")
            out.append(_doc(f"copy{copy}-{d['warc_record_id']}", " ".join(words),
                            d["fetch_time"] + timedelta(days=copy)))
    return out


# ---- truth -------------------------------------------------------------------------------------------------

def shingle_sets(docs: list[Doc]) -> list[np.ndarray]:
    return [np.unique(shingles(d["text"])) for d in docs]


def true_pairs(sets: list[np.ndarray]) -> set[tuple[int, int]]:
    """All (i, j), i < j, with Jaccard >= THRESHOLD: prefix filter on rarest-first shingle ranks, then exact check."""
    allv, counts = np.unique(np.concatenate([s for s in sets if len(s)]), return_counts=True)
    rank_of = np.empty(len(allv), dtype=np.int64)
    rank_of[np.lexsort((allv, counts))] = np.arange(len(allv))
    ranked = [np.sort(rank_of[np.searchsorted(allv, s)]) if len(s) else s for s in sets]
    index: dict[int, list[int]] = defaultdict(list)
    pairs = set()
    for x in sorted((i for i in range(len(sets)) if len(sets[i])), key=lambda i: len(sets[i])):
        size = len(ranked[x])
        prefix = ranked[x][: size - math.ceil(THRESHOLD * size - 1e-9) + 1]
        candidates = {y for token in prefix.tolist() for y in index[token]}
        for y in candidates:  # every y is no larger than x (sorted by size); size filter first
            if len(ranked[y]) >= THRESHOLD * size - 1e-9 and _jaccard(sets[x], sets[y]) >= THRESHOLD:
                pairs.add((min(x, y), max(x, y)))
        for token in prefix.tolist():
            index[token].append(x)
    return pairs


def _jaccard(a: np.ndarray, b: np.ndarray) -> float:
    common = len(np.intersect1d(a, b, assume_unique=True))
    return common / (len(a) + len(b) - common)


def brute_force_check(sets: list[np.ndarray], pairs: set[tuple[int, int]], sample: int) -> dict[str, Any]:
    """A seeded sample of documents against all, by sparse matrix products: every pair >= THRESHOLD found?"""
    from scipy import sparse

    allv = np.unique(np.concatenate([s for s in sets if len(s)]))
    rows = np.repeat(np.arange(len(sets)), [len(s) for s in sets])
    cols = np.searchsorted(allv, np.concatenate(sets))
    matrix = sparse.csr_matrix((np.ones(len(cols), np.float32), (rows, cols)), shape=(len(sets), len(allv)))
    sizes = np.array([len(s) for s in sets], dtype=np.float64)
    chosen = sorted(random.Random(SEED).sample([i for i in range(len(sets)) if len(sets[i])], sample))
    common = (matrix[chosen] @ matrix.T).tocoo()
    jac = common.data / (sizes[np.array(chosen)[common.row]] + sizes[common.col] - common.data)
    found = {(min(chosen[r], c), max(chosen[r], c)) for r, c, j in zip(common.row, common.col, jac, strict=True)
             if j >= THRESHOLD - 1e-9 and chosen[r] != c}
    expected = {p for p in pairs if p[0] in set(chosen) or p[1] in set(chosen)}
    return {"sample_docs": sample, "pairs_in_sample": len(found), "agrees": found == expected}


def score(cluster_of: dict[int, Any], truth: set[tuple[int, int]], components: dict[int, int],
          with_shingles: set[int]) -> dict[str, Any]:
    members: dict[Any, list[int]] = defaultdict(list)
    for doc, cluster in cluster_of.items():
        if doc in with_shingles:
            members[cluster].append(doc)
    predicted = {(a, b) for group in members.values() for a, b in combinations(sorted(group), 2)}
    hit = len(predicted & truth)
    same_component = sum(components.get(a, -1) == components.get(b, -2) for a, b in predicted)
    return {"pairs": len(predicted), "recall": hit / max(len(truth), 1), "precision": hit / max(len(predicted), 1),
            "precision_component": same_component / max(len(predicted), 1)}


def truth_components(n: int, truth: set[tuple[int, int]]) -> dict[int, int]:
    parent = list(range(n))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for a, b in truth:
        parent[root(a)] = root(b)
    return {i: root(i) for i in range(n)}


# ---- datatrove and the signature step ----------------------------------------------------------------------

def _datatrove_xxhash_shim() -> None:
    """datatrove 0.10.1 passes str to xxhash, which xxhash >= 4 rejects ("Strings must be encoded before hashing");
    xxhash 3 encoded UTF-8 itself, so encoding here is the same hash at the same cost."""
    import xxhash
    from datatrove.utils.hashes import xxhash as theirs

    theirs.xxhash64 = lambda data: xxhash.xxh64_intdigest(data.encode() if isinstance(data, str) else data)
    theirs.xxhash32 = lambda data: xxhash.xxh32_intdigest(data.encode() if isinstance(data, str) else data)


def run_datatrove(docs: list[Doc], tmp: Path) -> dict[str, Any]:
    from datatrove.data import Document
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.dedup.minhash import (
        MinhashConfig,
        MinhashDedupBuckets,
        MinhashDedupCluster,
        MinhashDedupFilter,
        MinhashDedupSignature,
    )
    from datatrove.utils.hashing import HashConfig
    from loguru import logger

    logger.remove()  # its per-step progress and stats tables would bury the results
    _datatrove_xxhash_shim()
    # In-memory Documents (datatrove takes a list as its first step): its reading costs nothing here.
    documents = [Document(text=d["text"], id=str(number)) for number, d in enumerate(docs)]
    config = MinhashConfig(hash_config=HashConfig(precision=64))  # 5-grams, 14 x 8: FineWeb's set-up
    steps = [
        ("signature", [documents, MinhashDedupSignature(str(tmp / "sigs"), config=config)], 1),
        ("buckets", [MinhashDedupBuckets(str(tmp / "sigs"), str(tmp / "buckets"), config=config)],
         config.num_buckets),
        ("cluster", [MinhashDedupCluster(str(tmp / "buckets"), str(tmp / "clusters"), config=config,
                                         save_cluster_id=True)], 1),
        ("filter", [documents, MinhashDedupFilter(str(tmp / "clusters"))], 1),
    ]
    seconds = {}
    for name, pipeline, tasks in steps:
        start = time.perf_counter()
        LocalPipelineExecutor(pipeline, tasks=tasks, workers=1, logging_dir=str(tmp / "logs" / name)).run()
        seconds[name] = time.perf_counter() - start
    cluster_of: dict[int, Any] = {i: ("single", i) for i in range(len(docs))}
    raw = (tmp / "clusters" / "000000.clusters").read_bytes() if (tmp / "clusters" / "000000.clusters").exists() \
        else b""
    pairs = np.frombuffer(raw, dtype="<u4").reshape(-1, 2)
    for doc, cluster in pairs.tolist():
        cluster_of[doc] = ("cluster", cluster)
    return {"seconds": seconds, "cluster_of": cluster_of}


def signature_step(docs: list[Doc]) -> list[list[Any]]:
    """text -> signature on one core: ours (batched), datatrove's per-document methods, datasketch's bulk."""
    texts = [d["text"] for d in docs]
    perms = permutations(112, 1)
    rows = []

    def ours() -> None:
        for start in range(0, len(texts), 512):
            band_hashes(signatures([shingles(t) for t in texts[start : start + 512]], perms), 14, 8)

    rows.append(_timed_row("ours: udfs.minhash shingles + batch signatures + band hashes (64-bit)", len(texts), ours))
    from datatrove.pipeline.dedup.minhash import MinhashConfig, MinhashDedupSignature
    from datatrove.utils.hashing import HashConfig

    _datatrove_xxhash_shim()
    theirs = MinhashDedupSignature("/tmp/unused", config=MinhashConfig(hash_config=HashConfig(precision=64)))

    def datatrove() -> None:
        for t in texts:
            if (s := theirs.get_shingles(t)).size:
                theirs.get_signature(s)

    rows.append(_timed_row("datatrove: get_shingles + get_signature (spaCy words, 64-bit)", len(texts), datatrove))
    try:
        from datasketch import MinHash
    except ImportError:
        rows.append(["datasketch: not installed (pip install datasketch)", len(texts), None, None, None])
        return rows
    grams = [[" ".join(g).encode() for g in zip(*(w[i:] for i in range(5)), strict=False)]
             for w in (word_tokens(simplify_text(t)) for t in texts)]
    rows.append(_timed_row("datasketch MinHash.bulk, default sha1 32-bit (from shingle strings)", len(texts),
                           lambda: MinHash.bulk([g for g in grams if g], num_perm=112)))
    sets = [shingles(t) for t in texts]
    rows.append(_timed_row("datasketch MinHash.bulk, scheme affine64, from our 64-bit shingle hashes", len(texts),
                           lambda: MinHash.bulk([s.tolist() for s in sets if len(s)], num_perm=112,
                                                hashfunc=int, scheme="affine64")))
    rows.append(_timed_row("ours: batch signatures from the same shingle hashes", len(texts),
                           lambda: [signatures(sets[i : i + 512], perms) for i in range(0, len(sets), 512)]))
    return rows


def _timed_row(name: str, n: int, fn) -> list[Any]:
    start = time.perf_counter()
    fn()
    seconds = time.perf_counter() - start
    return [name, n, seconds, n / seconds, None]


# ---- the Spark stage ---------------------------------------------------------------------------------------

def run_spark(docs: list[Doc], scales: list[int], tmp: Path) -> dict[str, Any] | None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from refinery.schemas.tables import DOCUMENTS

    plan = []
    for factor in scales:
        rows = scaled(docs, factor)
        path = tmp / f"docs_{factor}x.parquet"
        pq.write_table(pa.Table.from_pylist([{f: d.get(f) for f in DOCUMENTS.schema.fieldNames()} for d in rows]),
                       path)
        plan.append((factor, str(path), len(rows)))
    (tmp / "plan.json").write_text(json.dumps(plan))
    proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--spark-child", str(tmp)], cwd=REPO,
                          env={**os.environ, "PYSPARK_PYTHON": sys.executable}, capture_output=True, text=True)
    if proc.returncode != 0 or not (tmp / "spark.json").exists():
        print(f"spark: failed (exit {proc.returncode}); stderr tail:\n{proc.stderr[-3000:]}")
        return None
    return json.loads((tmp / "spark.json").read_text())


def spark_child(tmp: str) -> None:
    from pyspark.sql import functions as F

    from refinery.jobs.config import load_config
    from refinery.jobs.main import run_pipeline
    from refinery.jobs.session import get_spark
    from refinery.jobs.storage import Lakehouse
    from refinery.schemas.tables import DOCUMENTS

    plan, result = json.loads((Path(tmp) / "plan.json").read_text()), {"runs": []}
    # Untimed warm-up on 300 documents: JVM JIT, Python workers, the Great Expectations import (datatrove's
    # imports are likewise done before it is timed).
    warm = [(0, plan[0][1], 300)] + plan
    for factor, path, n in warm:
        # at 1x also: verification off, and the star-only verification of before pair_bucket_size (0)
        for verify, pairs in ([(True, 16), (True, 0), (False, 16)] if factor == 1 else [(True, 16)]):
            cfg = load_config(overrides=[f"storage.root={tmp}/lake_{factor}x_{verify}_{pairs}", "spark.master=local[1]",
                                         f"dedup.verify={str(verify).lower()}", f"dedup.pair_bucket_size={pairs}"])
            lake = Lakehouse(spark := get_spark(cfg.spark), cfg.storage)
            lake.create(DOCUMENTS)
            source = spark.read.parquet(path).limit(n)
            lake.merge(DOCUMENTS.name, source.select(*[F.col(f.name).cast(f.dataType)
                                                       for f in DOCUMENTS.schema.fields]))
            record = run_pipeline(cfg, ["dedup"])[0]
            if factor == 0:
                break
            run = {"factor": factor, "docs": n, "verify": verify, "pair_bucket_size": pairs, "seconds": record.seconds,
                   "status": record.status, "counters": dict(record.counters)}
            if factor == 1:
                run["clusters"] = {r.doc_id: r.cluster_id for r in lake.read("duplicates").collect()}
            result["runs"].append(run)
            print(f"spark {factor}x verify={verify} pairs<={pairs}: {n} docs in {record.seconds:.1f}s", file=sys.stderr,
                  flush=True)
    (Path(tmp) / "spark.json").write_text(json.dumps(result, default=str))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit-docs", type=int, help="only the first N Reuters articles with text")
    parser.add_argument("--scales", default="1,2,4,8", help="corpus multiples for the scaling curve")
    parser.add_argument("--skip-spark", action="store_true")
    parser.add_argument("--skip-datatrove", action="store_true")
    parser.add_argument("--spark-child", metavar="TMP", help=argparse.SUPPRESS)  # internal: the Spark runs
    args = parser.parse_args()
    if args.spark_child:
        return spark_child(args.spark_child)
    data, load = require_data(CORPUS), os.getloadavg()
    docs = load_docs(data, args.limit_docs)
    sets = shingle_sets(docs)
    with_shingles = {i for i, s in enumerate(sets) if len(s)}
    print(f"{len(docs)} documents ({len(with_shingles)} with shingles); exact all-pairs join ...", flush=True)
    truth, truth_s = _timed(true_pairs, sets)
    check = brute_force_check(sets, truth, min(SAMPLE, len(with_shingles)))
    components = truth_components(len(docs), truth)
    print(f"truth: {len(truth)} pairs with Jaccard >= {THRESHOLD} ({truth_s:.1f}s); brute-force check on "
          f"{check['sample_docs']} sampled docs x all: {'agrees' if check['agrees'] else 'DISAGREES'}", flush=True)
    accuracy, speed, curve, result = [], [], [], {}
    index = {d["doc_id"]: i for i, d in enumerate(docs)}
    with tempfile.TemporaryDirectory(prefix="bench-dedup-") as tmp:
        if not args.skip_datatrove:
            print("datatrove: 4 MinHash steps ...", flush=True)
            result["datatrove"] = run_datatrove(docs, Path(tmp) / "datatrove")
            dt_seconds = sum(result["datatrove"]["seconds"].values())
            accuracy.append(["datatrove 0.10.1 MinHash (14 x 8, no verification)",
                             *_acc(score(result["datatrove"]["cluster_of"], truth, components, with_shingles)),
                             None, None])
            speed.append(["datatrove: Signature + Buckets + Cluster + Filter", len(docs), dt_seconds,
                          len(docs) / dt_seconds, None])
            speed += [[f"  {k}", None, v, None, None] for k, v in result["datatrove"]["seconds"].items()]
        if not args.skip_spark:
            print("spark local[1]: dedup stage ...", flush=True)
            spark = run_spark(docs, [int(s) for s in args.scales.split(",")], Path(tmp))
            for run in (spark or {}).get("runs", []):
                rate = run["docs"] / run["seconds"]
                ratio = rate / (len(docs) / dt_seconds) if not args.skip_datatrove else None
                if run["factor"] == 1:
                    cluster_of = {index[d]: c for d, c in run["clusters"].items()}
                    how = f"verification {'on' if run['verify'] else 'off'}" + (
                        ", star edges only (pair_bucket_size=0, as before)" if not run["pair_bucket_size"] else "")
                    accuracy.append([f"ours: dedup stage ({how})",
                                     *_acc(score(cluster_of, truth, components, with_shingles)),
                                     run["counters"].get("verified_edges"), run["counters"].get("rejected_edges")])
                    speed.append([f"spark local[1]: dedup stage, {how}", run["docs"], run["seconds"], rate, ratio])
                if run["verify"] and run["pair_bucket_size"]:
                    curve.append([f"{run['factor']}x", run["docs"], run["seconds"], rate,
                                  run["seconds"] / (curve[0][2] if curve else run["seconds"]) / run["factor"],
                                  run["counters"].get("components_rounds")])
                result.setdefault("spark_runs", []).append({k: v for k, v in run.items() if k != "clusters"})
    sig_rows = signature_step(docs)
    print(f"\n## Accuracy: pairs in one cluster vs all {len(truth)} pairs with Jaccard >= {THRESHOLD} "
          f"(exact all-pairs join; brute force on {check['sample_docs']} sampled docs x all "
          f"{'agrees' if check['agrees'] else 'DISAGREES'})")
    print(markdown_table(["system", "pairs predicted", "recall", "precision", "precision (component)",
                          "verified edges", "rejected edges"], accuracy))
    print("\n## Speed, one core (docs/s)")
    print(markdown_table(["engine", "docs", "seconds", "docs/s", "x datatrove"], speed))
    print("\n## Signature step alone (text -> MinHash signature, in-process, one core)")
    print(markdown_table(["implementation", "docs", "seconds", "docs/s", ""], sig_rows))
    if curve:
        print("\n## Scaling (copies with 1-3 words replaced; verification on; spark local[1])")
        print(markdown_table(["corpus", "docs", "seconds", "docs/s", "seconds / (1x seconds x factor)",
                              "CC rounds"], curve))
    print(f"\nLoad average at start {load[0]:.2f} on {os.cpu_count()} CPUs; timings are wall-clock.")
    path = write_json("dedup.json", {
        "limit_docs": args.limit_docs, "load_average_at_start": load,
        "versions": versions("pyspark", "numpy", "datatrove", "datasketch"), "docs": len(docs),
        "truth_pairs": len(truth), "brute_force_check": check, "accuracy": accuracy, "speed": speed,
        "signature_step": sig_rows, "scaling": curve, "spark_runs": result.get("spark_runs"),
        "datatrove_seconds": result.get("datatrove", {}).get("seconds")})
    print(f"wrote {path}")


def _acc(s: dict[str, Any]) -> list[Any]:
    return [s["pairs"], s["recall"], s["precision"], s["precision_component"]]


def _timed(fn, *args):
    start = time.perf_counter()
    value = fn(*args)
    return value, time.perf_counter() - start


if __name__ == "__main__":
    main()
