"""Connected components of an edge DataFrame on Spark: large-star / small-star (Kiveris et al., SoCC 2014).

Every round is two joins and two aggregations over the edges, never a collect: the graph may be far larger than
the driver. Lineage is cut once per round (`cut`: a staging table in a stage, so an executor lost mid-dedup loses
no state; a local checkpoint otherwise), so round 20 plans as cheaply as round 1. At the end
each edge points from a node to the smallest node of its component, so the component id is deterministic.

A graph of at most `driver_max_edges` edges (an incremental run's region, a small crawl) is solved on the driver
instead, by union-find in one bounded step: each distributed round costs a few Spark jobs and a staged write
whatever its size, which dominates a run that adds a few hundred documents. The result is the same.
"""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F


class ComponentsDidNotConverge(RuntimeError):
    """Large-star/small-star needs O(log n) rounds; hitting the cap means a bug or a pathological graph."""


def connected_components(edges: DataFrame, max_iterations: int = 50,
                         cut: Callable[[int, DataFrame], DataFrame] | None = None,
                         driver_max_edges: int = 0) -> tuple[DataFrame, int]:
    """(node, component) for every node that has an edge, component = smallest node id; and the rounds used
    (0: solved on the driver, when there are at most driver_max_edges edges).
    `edges` has columns src and dst (undirected, same type, comparable); self-loops and repeats are fine.
    `cut(round, df)` materialises a round; it must not overwrite the previous round's storage."""
    if driver_max_edges > 0:
        # One job reads at most driver_max_edges + 1 edges: the driver never holds more, whatever the graph.
        few = edges.select("src", "dst").limit(driver_max_edges + 1).toPandas()
        if len(few) <= driver_max_edges:
            field = edges.schema["src"].dataType.simpleString()
            return edges.sparkSession.createDataFrame(union_find(few), f"node {field}, component {field}"), 0
    cut = cut or (lambda _, df: df.localCheckpoint(eager=True))
    current = cut(0, edges.select(F.greatest("src", "dst").alias("u"), F.least("src", "dst").alias("v"))
                  .where(F.col("u") != F.col("v")).distinct())
    fingerprint = _fingerprint(current)
    for rounds in range(1, max_iterations + 1):
        current = cut(rounds, _small_star(_large_star(current)))
        previous, fingerprint = fingerprint, _fingerprint(current)
        if fingerprint == previous:
            # Converged: every edge is (node, component minimum); the minimum itself is named by its edges.
            nodes = current.select(F.col("u").alias("node"), F.col("v").alias("component"))
            roots = current.select(F.col("v").alias("node"), F.col("v").alias("component"))
            return nodes.unionByName(roots).distinct(), rounds
    raise ComponentsDidNotConverge(f"connected components: no fixed point after {max_iterations} rounds; "
                                   "raise dedup.max_iterations if the graph is a very long chain")


def union_find(edges: pd.DataFrame) -> pd.DataFrame:
    """(node, component = smallest node of its component) for every node of a non-self-loop edge."""
    parent: dict = {}

    def root(node):
        path = []
        while (up := parent.setdefault(node, node)) != node:
            path.append(node)
            node = up
        for step in path:  # path compression: later lookups are near O(1)
            parent[step] = node
        return node

    for src, dst in zip(edges["src"], edges["dst"], strict=True):
        if src == dst:
            continue  # a self-loop alone adds no node (as in the distributed rounds)
        a, b = root(src), root(dst)
        if a != b:
            parent[max(a, b)] = min(a, b)  # the smaller root wins, so each root is its component's minimum
    nodes = list(parent)
    return pd.DataFrame({"node": nodes, "component": [root(n) for n in nodes]})


def _large_star(edges: DataFrame) -> DataFrame:
    """Each node's larger neighbours are re-attached to the smallest node of its closed neighbourhood."""
    both = edges.unionByName(edges.select(F.col("v").alias("u"), F.col("u").alias("v")))
    smallest = both.groupBy("u").agg(F.min("v").alias("m")).withColumn("m", F.least("u", "m"))
    return (both.join(smallest, "u").where(F.col("v") > F.col("u"))
            .select(F.col("v").alias("u"), F.col("m").alias("v")).where(F.col("u") != F.col("v")))


def _small_star(edges: DataFrame) -> DataFrame:
    """Each node and its smaller neighbours are re-attached to the smallest of them."""
    directed = edges.select(F.greatest("u", "v").alias("u"), F.least("u", "v").alias("v")).distinct()
    smallest = directed.groupBy("u").agg(F.min("v").alias("m"))
    neighbours = directed.join(smallest, "u").select(F.col("v").alias("u"), F.col("m").alias("v"))
    selves = smallest.select(F.col("u"), F.col("m").alias("v"))
    return (neighbours.unionByName(selves).where(F.col("u") != F.col("v"))
            .select(F.greatest("u", "v").alias("u"), F.least("u", "v").alias("v")).distinct())


def _fingerprint(edges: DataFrame) -> tuple[int, int]:
    # Count and an order-free checksum of the edge set: equal on consecutive rounds only at the fixed point
    # (a 64-bit checksum collision would stop early, with odds far below any hardware error rate).
    row = edges.agg(F.count("*").alias("n"), F.sum(F.xxhash64("u", "v").cast("decimal(38,0)")).alias("h")).first()
    return int(row["n"]), int(row["h"] or 0)
