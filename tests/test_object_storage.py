"""The pipeline on object storage: WARCs, the benchmarks file and its benchmark, a classifier model and every Delta
table on s3a:// of a real S3 server started here (moto's standalone server), against the same run on local disk.

Tables and WARC listing go through Hadoop's s3a (hadoop-aws and the AWS SDK from deploy/pom.xml: `make jars-s3`);
the files the Python side reads (WARC bytes, benchmark files, the classifier) through fsspec (s3fs) on executors.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import GOLD_SAMPLE, REPO

JARS_S3 = REPO / "deploy" / "jars-s3"
BENCHMARK = REPO / "data" / "benchmarks" / "gsm8k_test.jsonl.gz"
CLASSIFIER_DATA = REPO / "tests" / "data" / "quality"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def s3_endpoint():
    pytest.importorskip("s3fs", reason="s3fs (the `s3` extra) is not installed")
    pytest.importorskip("moto", reason="moto[server] (the `dev` extra) is not installed")
    port = _free_port()
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        else:
            pytest.fail(f"moto server did not start on {endpoint}")
        yield endpoint
    finally:
        server.terminate()
        server.wait(timeout=30)


def _s3(endpoint: str):
    import s3fs

    return s3fs.S3FileSystem(endpoint_url=endpoint, key="test", secret="test", skip_instance_cache=True)


def test_fingerprint_follows_the_object_and_files_are_copied_once(s3_endpoint, monkeypatch, tmp_path):
    from refinery.udfs import fs

    s3 = _s3(s3_endpoint)
    s3.mkdir("fprint")
    s3.pipe("fprint/models/m.bin", b"first")
    fs.configure({"s3": {"endpoint_url": s3_endpoint, "key": "test", "secret": "test", "skip_instance_cache": True}})
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    assert fs.expand("s3a://fprint/models/*.bin") == ["s3a://fprint/models/m.bin"]
    before, folder = fs.fingerprint("s3a://fprint/models/m.bin"), fs.fingerprint("s3a://fprint/models")
    copy = fs.local_copy("s3a://fprint/models/m.bin")
    assert Path(copy).read_bytes() == b"first" and fs.local_copy("s3a://fprint/models/m.bin") == copy
    s3.pipe("fprint/models/m.bin", b"second")
    assert fs.fingerprint("s3a://fprint/models/m.bin") != before and fs.fingerprint("s3a://fprint/models") != folder
    assert Path(fs.local_copy("s3a://fprint/models/m.bin")).read_bytes() == b"second"  # a new copy, not the stale one
    assert fs.expand("s3a://fprint/nothing/*.bin") == [] and not fs.exists("s3a://fprint/models/missing.bin")
    # an LLM named by URI: the engine loads a node-local copy of the folder (an openai server loads its own)
    from refinery.udfs.llm.base import EngineSpec, _local_model

    s3.pipe("fprint/llm/config.json", b"{}")
    local = _local_model(EngineSpec(engine="transformers", model="s3a://fprint/llm"))
    assert local.model != "s3a://fprint/llm" and (Path(local.model) / "config.json").read_bytes() == b"{}"
    assert _local_model(EngineSpec(engine="openai", model="s3a://fprint/llm")).model == "s3a://fprint/llm"


# Run in a fresh interpreter: hadoop-aws must be on the JVM's classpath from its start (spark.driver.extraClassPath),
# so it cannot join the test session's JVM. Both runs share one session; only storage and input differ.
_DRIVER = """
import json, sys
from refinery.jobs.config import load_config
from refinery.jobs.main import run_pipeline
from refinery.jobs.storage import Lakehouse
from refinery.jobs.session import get_spark
runs = {}
for name, sets in json.loads(sys.argv[1]).items():
    config = load_config(overrides=sets, environ={})
    records = run_pipeline(config)
    lake = Lakehouse(get_spark(config.spark), config.storage)
    tables = {t: lake.read(t).count() for t in ("documents", "contamination", "quality", "duplicates")}
    kept = lake.read("quality").where("scores['clean'] IS NOT NULL").count()
    runs[name] = {"status": [r.status for r in records], "tables": tables, "scored": kept,
                  "seconds": {r.stage: round(r.seconds, 1) for r in records},
                  "counters": {r.stage: r.counters for r in records}, "root": lake.root}
print("RESULT " + json.dumps(runs))
"""


@pytest.mark.slow  # two pipeline runs: `make test-slow`
def test_pipeline_on_s3_matches_the_local_run(s3_endpoint, tmp_path):
    if not list(JARS_S3.glob("hadoop-aws-*.jar")):  # s3a:// needs hadoop-aws on the driver's classpath
        message = f"no hadoop-aws jars in {JARS_S3}: run `make jars-s3`"
        if os.environ.get("REFINERY_REQUIRE_S3"):
            pytest.fail(message)
        pytest.skip(message)
    from refinery.jobs.train_quality import train
    from refinery.udfs.quality.train import TrainSettings

    model = tmp_path / "clean.bin"
    train([str(CLASSIFIER_DATA / "davidson_neither.jsonl.gz")], [str(CLASSIFIER_DATA / "davidson_offensive.jsonl.gz")],
          str(model), settings=TrainSettings(dim=16, bucket=20_000))
    s3 = _s3(s3_endpoint)
    for bucket in ("crawl", "lake"):
        s3.mkdir(bucket)
    s3.put(str(GOLD_SAMPLE), "crawl/warc/gold.warc.gz")
    s3.put(str(BENCHMARK), "crawl/benchmarks/gsm8k.jsonl.gz")
    s3.put(str(model), "crawl/models/clean.bin")
    listing = "benchmarks:\n  - name: gsm8k\n    path: {}\n    fields: [question, answer]\n"
    s3.pipe("crawl/benchmarks.yaml", listing.format("s3a://crawl/benchmarks/*.jsonl.gz").encode())
    (tmp_path / "benchmarks.yaml").write_text(listing.format(BENCHMARK))

    hadoop = {"spark.driver.extraClassPath": f"{JARS_S3}/*", "spark.hadoop.fs.s3a.endpoint": s3_endpoint,
              "spark.hadoop.fs.s3a.endpoint.region": "us-east-1", "spark.hadoop.fs.s3a.path.style.access": "true",
              "spark.hadoop.fs.s3a.connection.ssl.enabled": "false", "spark.hadoop.fs.s3a.access.key": "test",
              "spark.hadoop.fs.s3a.secret.key": "test",
              "spark.hadoop.fs.s3a.aws.credentials.provider":
                  "org.apache.hadoop.fs.s3a.SimpleAWSCredentialsProvider"}
    common = ["spark.master=local[2]", "spark.shuffle_partitions=2", f"spark.jars_dir={REPO / 'deploy/jars'}",
              f"spark.conf={json.dumps(hadoop)}", "ingest.extractor=resiliparse", "ingest.isolate_extraction=false",
              "validation.enabled=false",
              "quality.classifiers=[{name: clean, path: PATH}]"]
    clf = common[-1]
    s3_sets = [*common[:-1], clf.replace("PATH", "s3a://crawl/models/clean.bin"),
               "storage.root=s3a://lake/refinery", "ingest.input=s3a://crawl/warc/*.warc.gz",
               "decontaminate.benchmarks_file=s3a://crawl/benchmarks.yaml",
               "storage.fs_options=" + json.dumps({"s3": {"endpoint_url": s3_endpoint, "key": "test",
                                                           "secret": "test"}})]
    local_sets = [*common[:-1], clf.replace("PATH", str(model)), f"storage.root={tmp_path / 'lake'}",
                  f"ingest.input={GOLD_SAMPLE}", f"decontaminate.benchmarks_file={tmp_path / 'benchmarks.yaml'}"]
    workdir = tmp_path / "elsewhere"
    workdir.mkdir()
    done = subprocess.run([sys.executable, "-c", _DRIVER, json.dumps({"local": local_sets, "s3": s3_sets})],
                          cwd=workdir, capture_output=True, text=True, timeout=1800)
    result = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert done.returncode == 0 and result, done.stderr[-4000:]
    runs = json.loads(result[-1].removeprefix("RESULT "))
    local, remote = runs["local"], runs["s3"]
    print(f"stage seconds, local disk: {local['seconds']}; s3a on moto: {remote['seconds']}")  # shown with -s
    assert remote["status"] == local["status"] == ["succeeded"] * 4
    assert remote["root"] == "s3a://lake/refinery"
    assert remote["tables"] == local["tables"] and local["tables"]["documents"] > 50
    assert remote["scored"] == local["scored"] == local["tables"]["quality"]  # the classifier read from S3
    decon = remote["counters"]["decontaminate"]
    assert decon["benchmark_files"] == 1 and decon["benchmark_ngrams"] == local["counters"]["decontaminate"][
        "benchmark_ngrams"] > 0
    assert remote["counters"]["ingest"]["documents"] == local["counters"]["ingest"]["documents"]
    # every table is a Delta table in the bucket, and nothing landed on the driver's disk
    for table in ("documents", "contamination", "quality", "duplicates", "runs"):
        assert s3.exists(f"lake/refinery/{table}/_delta_log/00000000000000000000.json"), table
    assert not (workdir / "lakehouse").exists()


def test_shipped_benchmarks_name_no_driver_path():
    """The shipped sets travel as `shipped:data/benchmarks/...`, resolved by each executor in its own installed
    package; a user's file keeps its absolute path or URI."""
    from refinery.jobs.benchmark_index import _SHIPPED_ROOT, benchmark_files, resolve
    from refinery.jobs.config import BenchmarkEntry, load_benchmarks

    shipped = [location for _, location in benchmark_files(load_benchmarks())]
    assert len(shipped) == 12 and all(loc.startswith("shipped:data/benchmarks/") for loc in shipped)
    assert all(Path(resolve(loc)).is_file() and Path(resolve(loc)).is_relative_to(_SHIPPED_ROOT) for loc in shipped)
    mine = BenchmarkEntry(name="mine", path=str(CLASSIFIER_DATA / "davidson_neither.jsonl.gz"), fields=["text"])
    assert [loc for _, loc in benchmark_files([mine])] == [str(CLASSIFIER_DATA / "davidson_neither.jsonl.gz")]
