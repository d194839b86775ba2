"""The sample pipeline (ingest → decontaminate → quality → dedup → rewrite with the tiny model) on a real
standalone cluster (a master and two 1-core workers, separate processes and work directories) and through a
Spark Connect server with Delta, each run as `refinery run` from a directory outside the checkout; the tables
they write must equal those of the same pipeline on the local session, and every job carries its stage."""

from __future__ import annotations

import pytest

from refinery.jobs.config import load_config
from refinery.jobs.main import run_pipeline

from .cluster import (
    SAMPLE_WARCS,
    benchmarks_file,
    connect_server,
    event_log_conf,
    job_properties,
    pipeline_args,
    run_refinery,
    snapshot,
    standalone_cluster,
)

pytestmark = pytest.mark.slow  # several minutes: `make test-slow`

STAGES = ["ingest", "decontaminate", "quality", "dedup", "rewrite"]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, tiny_model):
    folder = tmp_path_factory.mktemp("cluster-inputs")
    return tiny_model, benchmarks_file(folder)


@pytest.fixture(scope="module")
def local_tables(spark, inputs, tmp_path_factory):
    """The reference: the same settings, in this process's local[2] session."""
    lake = tmp_path_factory.mktemp("cluster-local") / "lake"
    args = pipeline_args(lake, *inputs, SAMPLE_WARCS)
    sets = [args[i + 1] for i, a in enumerate(args) if a == "--set"]
    config = load_config(overrides=sets, environ={})
    records = run_pipeline(config, STAGES, input_glob=",".join(map(str, SAMPLE_WARCS)))
    assert [r.status for r in records] == ["succeeded"] * len(STAGES)
    tables = snapshot(spark, lake)
    assert tables["documents"] and tables["synthetic"], "the sample must reach the rewrite stage"
    return tables


def _assert_tagged(properties: list[dict[str, str]], *expected: str) -> None:
    """Spark prefixes a session's tags (`spark-session-<id>-<tag>`, Connect `..._Tag_<tag>`); ours end them."""
    tags = {tag for p in properties for tag in p.get("spark.job.tags", "").split(",") if tag}
    for tag in expected:
        assert any(t.endswith(tag) for t in tags), (tag, sorted(tags)[:20])


def test_pipeline_on_a_standalone_cluster(spark, inputs, local_tables, tmp_path):
    events = tmp_path / "events"
    conf = "{" + ", ".join(f'"{k}": "{v}"' for k, v in event_log_conf(events).items()) + "}"
    with standalone_cluster(tmp_path / "cluster") as url:
        result = run_refinery(pipeline_args(tmp_path / "lake", *inputs, SAMPLE_WARCS, f"spark.master={url}",
                                            f"spark.conf={conf}"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-4000:]
    assert snapshot(spark, tmp_path / "lake") == local_tables
    # Both workers ran tasks, in executors of their own, under their own work directories.
    for worker in ("worker-0", "worker-1"):
        logs = list((tmp_path / "cluster" / worker).glob("app-*/*/stderr"))
        assert any("Running task" in log.read_text(errors="replace") for log in logs), worker
    # Each stage's summary reached stderr, and every job named its stage (and step) in the Spark UI.
    for stage in STAGES:
        assert f"INFO refinery: stage {stage} succeeded" in result.stderr
    properties = job_properties(events)
    descriptions = {p.get("spark.job.description") for p in properties}
    # (Delta describes its own internal jobs, e.g. a MERGE's, inside ours; the tags below still cover those.)
    assert {"refinery ingest: extract WARCs", "refinery decontaminate: scan",
            "refinery rewrite: validate synthetic"} <= descriptions, descriptions
    # The ledger step's jobs are Delta's MERGE of `runs`, described as ours followed by Delta's operation.
    assert any((d or "").startswith("refinery dedup: ledger - MERGE") for d in descriptions), descriptions
    _assert_tagged(properties, "refinery-ingest-extract_WARCs", "refinery-quality-validate_quality",
                   "refinery-rewrite-merge_synthetic", "refinery-rewrite-ledger")


def test_pipeline_through_spark_connect(spark, inputs, local_tables, tmp_path):
    events = tmp_path / "events"
    with connect_server(tmp_path / "connect", conf=event_log_conf(events)) as url:
        result = run_refinery(pipeline_args(tmp_path / "lake", *inputs, SAMPLE_WARCS, f"spark.remote={url}"),
                              cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-4000:]
    assert snapshot(spark, tmp_path / "lake") == local_tables
    # Connect has no job descriptions of ours; the tags travel with every operation to the server's jobs.
    _assert_tagged(job_properties(events), "refinery-ingest-extract_WARCs", "refinery-decontaminate-scan",
                   "refinery-rewrite-ledger")
