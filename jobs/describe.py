"""Names on Spark jobs: every job a stage starts carries its stage and step, in the Spark UI and as a job tag."""

from __future__ import annotations

import re
from contextlib import contextmanager

from pyspark.sql import SparkSession

from .classic import set_job_description


def job_tag(stage: str, step: str | None = None) -> str:
    """`refinery-<stage>[-<step>]`, with anything but letters, digits, '.', '_' and '-' turned into '_' (a tag
    cannot hold a comma, and Spark Connect puts it inside its own tag)."""
    raw = f"refinery-{stage}" + (f"-{step}" if step else "")
    return re.sub(r"[^\w.-]", "_", raw)


@contextmanager
def job_step(spark: SparkSession, stage: str, step: str | None = None):
    """Tag (Classic and Connect: `SparkSession.addTag`) and describe (Classic: the UI's Description column)
    every job this thread starts inside the block; nested steps add their tag to the stage's."""
    tag = job_tag(stage, step)
    spark.addTag(tag)
    previous = set_job_description(spark, f"refinery {stage}" + (f": {step}" if step else ""))
    try:
        yield
    finally:
        spark.removeTag(tag)
        set_job_description(spark, previous)
