"""A small dedup region solved on the driver: the candidate edges, Jaccard check, components and keepers of the Spark
steps (jobs/dedup_edges.py, jobs/components.py, DedupStage._assign), from one bounded collect of the region's band
rows and one of its documents.

An incremental run re-examines a region of a few thousand documents. On Spark every step of it (bucket sizes, star
and pair edges, shingle sets, the Jaccard check, the keeper windows, each with its counting jobs and staged cut) is a
few jobs whatever its size, and those fixed costs made most of a small run; here the same steps take a fraction of
a second of Python. The rules are the Spark steps', rule for rule (tests/test_dedup_spark.py compares the tables of
both paths); a region over the limits, or with a bucket large enough to be salted on Spark, takes the Spark steps.
"""

from __future__ import annotations

from itertools import combinations
from math import isnan

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from refinery.jobs.components import union_find
from refinery.jobs.config import DedupConfig
from refinery.jobs.dedup_edges import Count
from refinery.schemas.tables import DUPLICATES
from refinery.udfs.dedup.minhash import jaccard, shingles

# Band rows collected per region document at most: its own (bands + 1) rows in buckets of about four members.
ROWS_PER_DOC = 4
# Characters of text the driver holds at most for the Jaccard check (1-4 bytes each in a Python string).
MAX_TEXT_CHARS = 100_000_000


def region_on_driver(members: DataFrame, docs: DataFrame, region_docs: int, cfg: DedupConfig, count: Count,
                     run_id: str) -> DataFrame | None:
    """The region's `duplicates` rows as a local DataFrame, or None when the region is over the limits (the caller
    then takes the Spark steps). members: every band row of the buckets the region is in; docs: the region's
    documents (doc_id, text, text_hash, fetch_time, score), region_docs of them."""
    if region_docs > cfg.driver_region_docs:
        return None
    cap = region_docs * (cfg.bands + 1) * ROWS_PER_DOC
    bands = members.select("doc_id", "band", "band_hash").limit(cap + 1).toPandas()
    if len(bands) > cap:
        return None
    sizes = bands.groupby(["band", "band_hash"], sort=False)["doc_id"].agg(list)
    if len(sizes) and sizes.map(len).max() > cfg.max_bucket_size:
        return None  # a bucket the Spark steps salt into sub-buckets: their edges differ from a plain star
    # One partition for the total, so a region whose texts are too large for the driver brings back no text at all.
    whole = Window.partitionBy(F.lit(0))
    # Rows, not pandas: a score that is NaN and one that is null order differently, and pandas makes both NaN.
    rows = (docs.select("doc_id", "text", "text_hash", "fetch_time", "score")
            .withColumn("_chars", F.sum(F.length("text")).over(whole))
            .where(F.col("_chars") <= MAX_TEXT_CHARS).drop("_chars").collect())
    if len(rows) < region_docs:
        return None
    edges = _candidate_edges(sizes, cfg, count, {row.doc_id for row in rows})
    if cfg.verify:
        edges = _verify(edges, {row.doc_id: row.text for row in rows}, cfg, count)
    found = union_find(pd.DataFrame(list(edges), columns=["src", "dst"]))
    component = dict(zip(found["node"], found["component"], strict=True))
    records = [(row.doc_id, row.text_hash, row.fetch_time, row.score) for row in rows]
    return docs.sparkSession.createDataFrame(_assign(records, component, run_id), DUPLICATES.schema)


def _candidate_edges(buckets: pd.Series, cfg: DedupConfig, count: Count, region: set) -> dict[tuple, bool]:
    """{(src, dst): exact} as candidate_edges gives them (no giant buckets here), then kept where both ends are in
    the region, as the stage filters the Spark edges."""
    edges: dict[tuple, bool] = {}
    shared = paired = 0
    for (band, _), members in buckets.items():
        if len(members) < 2:
            continue
        shared += 1
        ids = sorted(members)
        if band >= 0 and len(ids) <= cfg.pair_bucket_size:
            paired += 1
            links = [(b, a) for a, b in combinations(ids, 2) if b > a]
        else:
            links = [(doc, ids[0]) for doc in ids[1:] if doc != ids[0]]
        for link in links:
            edges[link] = edges.get(link, False) or band == -1
    count("shared_buckets", shared)
    count("paired_buckets", paired)
    count("giant_buckets", 0)
    count("giant_bucket_members", 0)
    return {link: exact for link, exact in edges.items() if link[0] in region and link[1] in region}


def _verify(edges: dict[tuple, bool], texts: dict[str, str], cfg: DedupConfig, count: Count) -> list[tuple]:
    """Exact edges, and the others whose exact shingle Jaccard reaches the threshold (verify_edges)."""
    fuzzy = [link for link, exact in edges.items() if not exact]
    ends = {doc for link in fuzzy for doc in link}
    sets = {doc: np.unique(shingles(texts[doc] or "", cfg.ngram)) for doc in ends}
    kept = [(a, b) for a, b in fuzzy if jaccard(sets[a], sets[b]) >= cfg.jaccard_threshold]
    exact = [link for link, is_exact in edges.items() if is_exact]
    count("exact_edges", len(exact))
    count("verified_edges", len(kept))
    count("rejected_edges", len(fuzzy) - len(kept))
    return exact + kept


def _assign(records: list[tuple], component: dict, run_id: str) -> list[tuple]:
    """Rows as DedupStage._assign from (doc_id, text_hash, fetch_time, score): cluster = component (or the document
    alone), keeper = first by score (highest, NaN above any number as Spark orders it, null last), fetch time
    (earliest, null last), doc_id."""
    clusters: dict[str, list] = {}
    for record in records:
        clusters.setdefault(component.get(record[0], record[0]), []).append(record)
    exact_sizes: dict[str, int] = {}
    for record in records:
        exact_sizes[record[1]] = exact_sizes.get(record[1], 0) + 1
    out = []
    for cluster_id, members in clusters.items():
        members.sort(key=_keeper_order)
        keeper = members[0]
        for rank, (doc_id, text_hash, _, _) in enumerate(members):
            size = len(members)
            reason = ("unique" if size == 1 else "kept" if rank == 0
                      else "exact_duplicate" if text_hash == keeper[1] else "near_duplicate")
            out.append((doc_id, text_hash, exact_sizes[text_hash], cluster_id, size, rank == 0, keeper[0], reason,
                        keeper[3], run_id))
    return out


def _keeper_order(record: tuple) -> tuple:
    doc_id, _, fetched, score = record
    score_rank = (2, 0.0) if score is None else (0, 0.0) if isnan(score) else (1, -score)
    return (*score_rank, fetched is None, fetched or 0, doc_id)  # two nulls compare 0 with 0
