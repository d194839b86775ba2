"""Stage code stays on the DataFrame API, so it runs over Spark Connect: no SparkContext, RDD or JVM gateway
outside jobs/classic.py (the allow-listed Classic-only helpers, each a no-op over Connect)."""

from __future__ import annotations

import ast

from .conftest import REPO

CLASSIC_ONLY = {"sparkContext", "_sc", "_jsc", "_jvm", "_jsparkSession", "_jdf", "rdd", "statusTracker"}
ALLOWED = {"jobs/classic.py"}


def _offences(source: str) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and node.attr in CLASSIC_ONLY:
            found.append((node.lineno, f".{node.attr}"))
        elif isinstance(node, ast.ImportFrom) and node.module in ("pyspark", "pyspark.core.context") and any(
                alias.name in ("SparkContext", "RDD") for alias in node.names):
            found.append((node.lineno, f"import {', '.join(a.name for a in node.names)}"))
    return found


def test_no_stage_code_needs_spark_classic():
    offences = []
    for path in sorted((REPO / "jobs").rglob("*.py")):
        name = path.relative_to(REPO).as_posix()
        if name not in ALLOWED:
            offences += [f"{name}:{line}: {what}" for line, what in _offences(path.read_text())]
    assert not offences, "Spark Classic-only API outside jobs/classic.py (breaks Spark Connect):\n" + "\n".join(
        offences)


def test_the_guard_sees_what_it_forbids():
    source = ("from pyspark import SparkContext\n"
              "n = spark.sparkContext.defaultParallelism\n"
              "df.rdd.map(f)\n"
              "fs = spark._jvm.org.apache.hadoop.fs.Path('x')\n")
    assert [what for _, what in _offences(source)] == ["import SparkContext", ".sparkContext", ".rdd", "._jvm"]
    assert _offences("df.select(F.broadcast(x)).localCheckpoint()\nspark.addTag('t')\n") == []
