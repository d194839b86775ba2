"""Integration: the dedup stage on a real Reuters slice (natural exact and near duplicates) plus planted edits."""

from __future__ import annotations

import gzip
import json
import random
from datetime import datetime, timedelta
from itertools import combinations
from pathlib import Path

import numpy as np
import pytest

from refinery.jobs.base import run_stage
from refinery.jobs.components import connected_components
from refinery.jobs.dedup import DedupStage
from refinery.jobs.storage import Lakehouse
from refinery.schemas.tables import DOCUMENTS
from refinery.udfs.dedup.minhash import jaccard, shingles
from refinery.udfs.ids import doc_id_from_record_id, text_hash

from .conftest import lake_config

SLICE = Path(__file__).parent / "data" / "reuters_dedup_slice.jsonl.gz"
COLUMNS = ["doc_id", "exact_cluster", "exact_cluster_size", "cluster_id", "cluster_size", "is_kept",
           "keeper_doc_id", "reason", "keeper_score"]


def _documents() -> list[dict]:
    """The slice's articles, plus 12 copies with a few words edited and 3 re-sent verbatim (new ids, later)."""
    with gzip.open(SLICE, "rt") as lines:
        articles = [json.loads(line) for line in lines]
    docs = []
    for number, article in enumerate(articles):
        fetched = datetime(1987, 3, 1) + timedelta(minutes=(number * 7919) % 5000)  # not in id order
        docs.append(_row(f"reuters-{article['newid']}", article["text"], fetched))
    rng = random.Random(11)
    for article in rng.sample(articles, 12):
        words = article["text"].split()
        for _ in range(max(1, len(words) // 60)):  # ~2% of the words replaced
            words[rng.randrange(len(words))] = rng.choice(["stocks", "said", "tonnes", "quarter"])
        docs.append(_row(f"edited-{article['newid']}", " ".join(words), datetime(1987, 4, 1)))
    for article in rng.sample(articles, 3):
        docs.append(_row(f"resent-{article['newid']}", article["text"].upper(), datetime(1987, 5, 1)))
    return docs


def _row(record_id: str, text: str, fetched: datetime) -> dict:
    return {"doc_id": doc_id_from_record_id(record_id), "text": text, "text_hash": text_hash(text),
            "fetch_time": fetched, "warc_path": "reuters21578.jsonl.gz", "warc_record_id": record_id,
            "run_id": "test-setup", "text_chars": len(text), "language": "en"}


def _lake(spark, root: Path, docs: list[dict], *extra: str, partitions: int = 1) -> tuple:
    config = lake_config(root, *extra)
    lake = Lakehouse(spark, config.storage)
    lake.create(DOCUMENTS)
    _add(spark, lake, docs, partitions)
    return config, lake


def _add(spark, lake: Lakehouse, docs: list[dict], partitions: int = 1) -> None:
    rows = [tuple(d.get(f) for f in DOCUMENTS.schema.fieldNames()) for d in docs]
    lake.merge(DOCUMENTS.name, spark.createDataFrame(rows, DOCUMENTS.schema).repartition(partitions))


def _rows(lake: Lakehouse) -> dict[str, tuple]:
    return {r.doc_id: tuple(r) for r in lake.read("duplicates").select(*COLUMNS).collect()}


@pytest.fixture(scope="module")
def docs() -> list[dict]:
    return _documents()


@pytest.fixture(scope="module")
def one_batch(spark, docs, tmp_path_factory):
    config, lake = _lake(spark, tmp_path_factory.mktemp("dedup") / "lake", docs)
    record = run_stage(DedupStage(), spark, config)
    return config, lake, record


def _true_components(docs: list[dict]) -> tuple[dict[str, int], set[tuple[str, str]]]:
    """Brute force over all pairs: Jaccard >= 0.8 on the same shingles, or equal text hash."""
    sets = [np.unique(shingles(d["text"])) for d in docs]
    parent = list(range(len(docs)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    pairs = set()
    for i, j in combinations(range(len(docs)), 2):
        same = docs[i]["text_hash"] == docs[j]["text_hash"]
        if same or (len(sets[i]) and len(sets[j]) and jaccard(sets[i], sets[j]) >= 0.8):
            pairs.add((docs[i]["doc_id"], docs[j]["doc_id"]))
            parent[root(i)] = root(j)
    return {d["doc_id"]: root(i) for i, d in enumerate(docs)}, pairs


def test_clusters_hold_only_true_duplicates_and_find_nearly_all(one_batch, docs):
    _, lake, record = one_batch
    assert record.status == "succeeded" and record.validation == "passed"
    rows = _rows(lake)
    assert set(rows) == {d["doc_id"] for d in docs}
    truth, pairs = _true_components(docs)
    cluster = {doc: row[3] for doc, row in rows.items()}
    # Verified edges all have Jaccard >= 0.8: a cluster never spans two true components (precision 1).
    for members in _groups(cluster).values():
        assert len({truth[m] for m in members}) == 1
    found = sum(cluster[a] == cluster[b] for a, b in pairs)
    assert len(pairs) > 50 and found / len(pairs) >= 0.95
    planted = {d["doc_id"] for d in docs if d["warc_record_id"].startswith(("edited-", "resent-"))}
    paired = planted & {doc for pair in pairs for doc in pair}  # edits that left Jaccard >= 0.8 (most)
    assert len(paired) >= 12 and all(rows[p][4] > 1 for p in paired)


def test_one_document_per_cluster_is_kept_the_earliest_fetched(one_batch, docs):
    _, lake, record = one_batch
    rows, fetched = _rows(lake), {d["doc_id"]: d["fetch_time"] for d in docs}
    for cluster_id, members in _groups({d: r[3] for d, r in rows.items()}).items():
        kept = [m for m in members if rows[m][5]]
        assert len(kept) == 1 and cluster_id == min(members) and len(members) == rows[kept[0]][4]
        assert kept[0] == min(members, key=lambda m: (fetched[m], m))
        assert all(rows[m][6] == kept[0] for m in members)
    hashes = {d["doc_id"]: d["text_hash"] for d in docs}
    for doc in (d["doc_id"] for d in docs if d["warc_record_id"].startswith("resent-")):
        # Re-sent in upper case: fetched later than its original, so dropped; exact if the keeper is the original.
        row = rows[doc]
        assert row[2] >= 2 and not row[5]
        assert row[7] == ("exact_duplicate" if hashes[row[6]] == hashes[doc] else "near_duplicate")
    c = record.counters
    assert c["keeper_by_quality_score"] == 0 and c["docs_new"] == len(docs) == record.rows_out
    assert c["dropped_exact_duplicate"] >= 3 and c["dropped_near_duplicate"] >= 10
    assert c["shared_buckets"] > 0 and c["verified_edges"] > 0 and c["rejected_edges"] >= 0
    assert c["giant_buckets"] == 0 and c["components_rounds"] == 0  # a small graph: solved on the driver


def test_rerun_processes_nothing(one_batch, spark):
    config, lake, _ = one_batch
    before = _rows(lake)
    again = run_stage(DedupStage(), spark, config)
    assert again.status == "succeeded" and again.rows_in == 0 and again.rows_out == 0
    assert _rows(lake) == before


def test_same_clusters_and_keepers_under_shuffled_partitioning(one_batch, spark, docs, tmp_path):
    # ... and on Spark with the distributed components rounds, where one_batch solved its region on the driver
    _, lake, first = one_batch
    assert first.counters["region_on_driver"] == 1
    shuffled = docs[:]
    random.Random(3).shuffle(shuffled)
    config, other = _lake(spark, tmp_path / "lake", shuffled, "spark.shuffle_partitions=5",
                          "dedup.driver_components_max_edges=0", "dedup.driver_region_docs=0", partitions=7)
    spark.conf.set("spark.sql.shuffle.partitions", "5")
    spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", "17")
    try:
        record = run_stage(DedupStage(), spark, config)
        assert record.status == "succeeded" and record.counters["components_rounds"] >= 1
    finally:
        spark.conf.set("spark.sql.shuffle.partitions", "2")
        spark.conf.unset("spark.sql.execution.arrow.maxRecordsPerBatch")
    assert _rows(other) == _rows(lake)
    # The driver's edges and checks are the Spark steps' edge for edge: every counter agrees.
    differ = {"components_rounds", "region_on_driver"}
    assert {k: v for k, v in record.counters.items() if k not in differ} == \
        {k: v for k, v in first.counters.items() if k not in differ}


@pytest.mark.parametrize("on_driver", [True, False])
def test_two_batches_give_the_same_clusters_as_one(one_batch, spark, docs, tmp_path, on_driver):
    _, lake, _ = one_batch
    rng = random.Random(5)
    first = [d for d in docs if rng.random() < 0.5]
    rest = [d for d in docs if d not in first]
    config, split = _lake(spark, tmp_path / "lake", first, f"dedup.driver_region_docs={10_000 if on_driver else 0}")
    run_stage(DedupStage(), spark, config)
    _add(spark, split, rest)
    second = run_stage(DedupStage(), spark, config)
    assert second.rows_in == len(rest) and second.counters["docs_reassessed"] > 0
    assert second.counters["region_on_driver"] == on_driver
    assert _rows(split) == _rows(lake)
    assert split.read("minhash_bands").count() == lake.read("minhash_bands").count()


def test_giant_buckets_are_salted_counted_and_change_no_cluster(one_batch, spark, docs, tmp_path):
    _, lake, _ = one_batch
    config, small = _lake(spark, tmp_path / "lake", docs, "dedup.max_bucket_size=2", "dedup.verify=false")
    record = run_stage(DedupStage(), spark, config)
    assert record.counters["giant_buckets"] > 0 and record.counters["giant_bucket_members"] > 0
    config, plain = _lake(spark, tmp_path / "plain", docs, "dedup.verify=false")
    run_stage(DedupStage(), spark, config)
    # Without verification a bucket is one connected piece either way, so clusters are identical.
    assert _rows(small) == _rows(plain)


def test_keeper_prefers_the_highest_quality_score(one_batch, spark, docs, tmp_path):
    _, lake, _ = one_batch
    rows = _rows(lake)
    clusters = [m for m in _groups({d: r[3] for d, r in rows.items()}).values() if len(m) > 1]
    favourite = {max(members) for members in clusters}  # not the default keeper (earliest, smallest id)
    config, scored = _lake(spark, tmp_path / "lake", docs)
    quality = [(d["doc_id"], 0.9 if d["doc_id"] in favourite else 0.1) for d in docs[::2]]
    quality += [(f, 0.9) for f in favourite]
    spark.createDataFrame(sorted(set(quality)), "doc_id string, quality_score double").write.format("delta").save(
        scored.path("quality"))
    record = run_stage(DedupStage(), spark, config)
    assert record.counters["keeper_by_quality_score"] == 1
    result = _rows(scored)
    assert {d for d, r in result.items() if r[5] and r[4] > 1} == favourite
    assert all(result[f][8] == 0.9 for f in favourite)


@pytest.mark.parametrize("driver_max_edges", [0, 280, 1000])
def test_connected_components_match_union_find(spark, driver_max_edges):
    # 0: the distributed rounds; 280 edges: one short of the graph's 281, so still rounds; 1000: on the driver.
    rng = random.Random(1)
    nodes = [f"n{i:03d}" for i in range(300)]
    edges = [(rng.choice(nodes), rng.choice(nodes)) for _ in range(220)]  # many small trees and chains
    edges += [(nodes[i], nodes[i + 1]) for i in range(100, 160)]  # one long path
    edges += [(nodes[7], nodes[7])]  # a self-loop alone adds no node
    result, rounds = connected_components(spark.createDataFrame(edges, "src string, dst string"),
                                          driver_max_edges=driver_max_edges)
    assert (rounds == 0) == (driver_max_edges >= len(edges))
    got = {r.node: r.component for r in result.collect()}
    parent = {n: n for n in nodes}

    def root(n: str) -> str:
        while parent[n] != n:
            n = parent[n]
        return n

    for a, b in edges:
        ra, rb = root(a), root(b)
        parent[max(ra, rb)] = min(ra, rb)
    expected = {n: root(n) for a, b in edges if a != b for n in (a, b)}  # self-loops alone add no node
    assert got == expected and rounds < 20
    assert result.count() == len(got)  # one row per node


def test_connected_components_of_no_edges_on_the_driver(spark):
    edges = spark.createDataFrame([], "src string, dst string")
    result, rounds = connected_components(edges, driver_max_edges=10)
    assert rounds == 0 and result.collect() == []
    assert result.schema.simpleString() == "struct<node:string,component:string>"


def _groups(cluster: dict[str, str]) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    for doc, cid in cluster.items():
        groups.setdefault(cid, []).append(doc)
    return groups


def test_small_buckets_verify_member_pairs_so_two_duplicates_of_each_other_link(spark, docs):
    # One LSH bucket of three: "a" (the smallest id, the star's centre) is another article; "b" and "c" are one
    # article and a copy with a word changed. The star's edges b-a and c-a both fail the Jaccard check, so only
    # the pair edge b-c links the duplicates; a bucket over pair_bucket_size keeps the star (2 edges, both fail).
    from refinery.jobs.config import DedupConfig
    from refinery.jobs.dedup_edges import candidate_edges, verify_edges

    first, second = docs[0]["text"], docs[1]["text"]
    words = second.split()
    words[len(words) // 2] = "tonnes"
    texts = {"a": first, "b": second, "c": " ".join(words)}
    assert jaccard(np.unique(shingles(texts["b"])), np.unique(shingles(texts["c"]))) >= 0.8
    documents = spark.createDataFrame(sorted(texts.items()), "doc_id string, text string")
    members = spark.createDataFrame([(d, 3, 77) for d in texts], "doc_id string, band int, band_hash long")
    for pair_size, expected in ((16, {("c", "b")}), (2, set())):
        cfg, counted = DedupConfig(pair_bucket_size=pair_size), {}
        edges = candidate_edges(members, cfg, counted.__setitem__)
        kept = verify_edges(edges, documents, cfg, counted.__setitem__)
        assert {(r.src, r.dst) for r in kept.collect()} == expected
        assert counted["verified_edges"] + counted["rejected_edges"] == (3 if pair_size == 16 else 2)
        assert counted["paired_buckets"] == (1 if pair_size == 16 else 0)
