"""The only place stage code touches Spark Classic's driver-side API (SparkContext, the JVM).

Spark Connect (Databricks serverless, Unity Catalog shared clusters, `spark.remote`) has no SparkContext, no
RDDs and no JVM gateway; everything else in jobs/ uses the DataFrame API alone, and
tests/test_connect_guard.py keeps it that way. Each helper here is optional polish that does nothing over
Connect.
"""

from __future__ import annotations

from pyspark.sql import SparkSession


def is_connect(spark: SparkSession) -> bool:
    # Connect sessions are pyspark.sql.connect.session.SparkSession; importing that module needs grpc.
    return type(spark).__module__.startswith("pyspark.sql.connect")


def quiet_logs(spark: SparkSession) -> None:
    if not is_connect(spark):
        spark.sparkContext.setLogLevel("ERROR")


def status_tracker(spark: SparkSession):
    """Spark's status tracker, or None where there is none (Connect)."""
    return None if is_connect(spark) else spark.sparkContext.statusTracker()


def set_job_description(spark: SparkSession, text: str | None) -> str | None:
    """Set the Spark UI's job description for jobs started by this thread; returns the previous one."""
    if is_connect(spark):
        return None
    context = spark.sparkContext
    previous = context.getLocalProperty("spark.job.description")
    context.setJobDescription(text)  # type: ignore[arg-type]  # None clears it
    return previous


def delete_hadoop_path(spark: SparkSession, path: str) -> None:
    """Delete a folder through the session's Hadoop FileSystem (any URI scheme it knows); nothing over Connect.
    Cleanup only: a failure is ignored, the data it held is committed already."""
    if is_connect(spark):
        return
    try:
        jvm = spark._jvm  # noqa: SLF001
        target = jvm.org.apache.hadoop.fs.Path(path)
        target.getFileSystem(spark._jsc.hadoopConfiguration()).delete(target, True)  # noqa: SLF001
    except Exception:  # noqa: BLE001
        pass


def delete_hadoop_children(spark: SparkSession, path: str, keep: str) -> bool:
    """Delete every entry of a folder but `keep`, through the session's Hadoop FileSystem; False over Connect."""
    if is_connect(spark):
        return False
    jvm = spark._jvm  # noqa: SLF001
    folder = jvm.org.apache.hadoop.fs.Path(path)
    fs = folder.getFileSystem(spark._jsc.hadoopConfiguration())  # noqa: SLF001
    for status in fs.listStatus(folder):
        if status.getPath().getName() != keep:
            fs.delete(status.getPath(), True)
    return True
