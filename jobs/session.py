"""The one way to get a SparkSession: the cluster's own, or a local one with Delta on the classpath."""

from __future__ import annotations

import glob
import os
import re
import sys
from pathlib import Path

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from .classic import quiet_logs
from .config import SparkConfig

_DELTA_EXTENSION = "io.delta.sql.DeltaSparkSessionExtension"
_DELTA_CATALOG = "org.apache.spark.sql.delta.catalog.DeltaCatalog"


class SetupError(RuntimeError):
    """The environment is missing something the job needs; the message says how to fix it."""


def on_cluster() -> bool:
    # spark-submit starts the Python driver with a gateway already running; Databricks sets its runtime.
    return "PYSPARK_GATEWAY_PORT" in os.environ or "DATABRICKS_RUNTIME_VERSION" in os.environ


def get_spark(cfg: SparkConfig) -> SparkSession:
    if cfg.remote:
        return _remote_session(cfg)
    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    if cfg.master == "auto" and on_cluster():
        # spark-submit: the cluster's settings apply; Delta's jars come with --jars/--packages.
        builder = SparkSession.builder.appName(cfg.app_name)
        if "DATABRICKS_RUNTIME_VERSION" not in os.environ:
            builder = builder.config("spark.sql.extensions", _DELTA_EXTENSION).config(
                "spark.sql.catalog.spark_catalog", _DELTA_CATALOG)
        for key, value in cfg.conf.items():
            builder = builder.config(key, value)
        return builder.getOrCreate()
    return _local_session(cfg)


def delta_jars(jars_dir: str) -> list[str]:
    candidates = [Path(jars_dir), Path(__file__).resolve().parents[1] / jars_dir]
    for folder in candidates:
        jars = sorted(glob.glob(str(folder / "*.jar")))
        if jars:
            return jars
    raise SetupError(
        f"no Delta Lake jars in {jars_dir!r}: run `make jars` "
        "(mvn -f deploy/pom.xml dependency:copy-dependencies) or set spark.jars_dir"
    )


def _local_session(cfg: SparkConfig) -> SparkSession:
    partitions = str(cfg.shuffle_partitions)
    # Python workers must use this interpreter (the venv with pyarrow and the udfs), not `python3` on PATH.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    master = "local[*]" if cfg.master == "auto" else cfg.master
    if master.startswith("local"):
        # A laptop's hostname often resolves to an address Spark then warns about; local mode needs loopback
        # only (a cluster's executors must reach the driver, so not for spark://, yarn, k8s://).
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    builder = (
        SparkSession.builder.master(master)
        .appName(cfg.app_name)
        .config("spark.jars", ",".join(delta_jars(cfg.jars_dir)))
        .config("spark.sql.extensions", _DELTA_EXTENSION)
        .config("spark.sql.catalog.spark_catalog", _DELTA_CATALOG)
        .config("spark.driver.memory", cfg.driver_memory)
        .config("spark.sql.shuffle.partitions", partitions)
        # Delta replays its log with 50 partitions by default, and every scan of a table lists its files with a job
        # over them: far too many tasks for a laptop, where more than one per core only queues them.
        .config("spark.databricks.delta.snapshotPartitions", str(_log_partitions(master, cfg.shuffle_partitions)))
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
    )
    for key, value in cfg.conf.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    quiet_logs(spark)
    return spark


def _log_partitions(master: str, shuffle_partitions: int) -> int:
    """Partitions of Delta's log replay: one per core of a local master (local, local[N], local[*], local[N,F]),
    else the shuffle partitions."""
    local = re.fullmatch(r"local(?:\[(\*|\d+)(?:,\d+)?\])?", master)
    if local is None:
        return shuffle_partitions
    cores = local.group(1) or "1"
    return max(1, min(shuffle_partitions, (os.cpu_count() or 1) if cores == "*" else int(cores)))


def _remote_session(cfg: SparkConfig) -> SparkSession:
    """A Spark Connect session (`spark.remote: sc://host:port`): the server owns the cluster, Delta's jars and
    extension, and the Python workers (which must import refinery); only session settings are ours to set."""
    try:
        builder = SparkSession.builder.remote(cfg.remote)
    except ImportError as err:  # pyspark's connect client needs grpcio & co.
        raise SetupError(f"spark.remote={cfg.remote} needs the Spark Connect client: pip install 'refinery[connect]' "
                         f"({err})") from err
    spark = builder.getOrCreate()
    spark.conf.set("spark.sql.session.timeZone", "UTC")
    spark.conf.set("spark.sql.shuffle.partitions", str(cfg.shuffle_partitions))
    for key, value in cfg.conf.items():
        spark.conf.set(key, value)
    return spark


def default_parallelism(spark: SparkSession) -> int:
    """Spark's default parallelism without SparkContext (absent over Connect): a range given no partition
    count is split into exactly that many partitions. One tiny job."""
    ids = spark.range(0, 1 << 16).select(F.spark_partition_id().alias("p"))
    return ids.agg(F.max("p")).first()[0] + 1
