"""The one way to get a SparkSession: the cluster's own, or a local one with Delta on the classpath."""

from __future__ import annotations

import glob
import os
import sys
from pathlib import Path

from pyspark.sql import SparkSession

from .config import SparkConfig

_DELTA_EXTENSION = "io.delta.sql.DeltaSparkSessionExtension"
_DELTA_CATALOG = "org.apache.spark.sql.delta.catalog.DeltaCatalog"


class SetupError(RuntimeError):
    """The environment is missing something the job needs; the message says how to fix it."""


def on_cluster() -> bool:
    # spark-submit starts the Python driver with a gateway already running; Databricks sets its runtime.
    return "PYSPARK_GATEWAY_PORT" in os.environ or "DATABRICKS_RUNTIME_VERSION" in os.environ


def get_spark(cfg: SparkConfig) -> SparkSession:
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
    # A laptop's hostname often resolves to an address Spark then warns about; local mode needs loopback only.
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    builder = (
        SparkSession.builder.master("local[*]" if cfg.master == "auto" else cfg.master)
        .appName(cfg.app_name)
        .config("spark.jars", ",".join(delta_jars(cfg.jars_dir)))
        .config("spark.sql.extensions", _DELTA_EXTENSION)
        .config("spark.sql.catalog.spark_catalog", _DELTA_CATALOG)
        .config("spark.driver.memory", cfg.driver_memory)
        .config("spark.sql.shuffle.partitions", partitions)
        # Delta replays its log with 50 partitions by default: far too many for a laptop.
        .config("spark.databricks.delta.snapshotPartitions", partitions)
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
    )
    for key, value in cfg.conf.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark
