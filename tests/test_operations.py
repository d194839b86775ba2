"""Operations: a failing `refinery run` says which stages succeeded and why, in one line (the traceback only
with --debug); stage summaries reach stderr; Spark jobs carry their stage and step."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from refinery.cli import app
from refinery.jobs.base import InputError
from refinery.jobs.describe import job_step

from .conftest import SAMPLE

WHIRLWIND = SAMPLE / "cc-main-2024-22_whirlwind.warc.gz"
runner = CliRunner()


def _args(tmp_path, *extra: str) -> list[str]:
    bad_model = tmp_path / "not-a-model.bin"
    bad_model.write_bytes(b"this is not a fastText model")
    sets = [f"storage.root={tmp_path / 'lake'}", "spark.master=local[2]", "spark.shuffle_partitions=2",
            "ingest.extractor=resiliparse", f"quality.classifiers=[{{name: dclm, path: {bad_model}}}]"]
    return ["run", "--stage", "ingest,quality", "--input", str(WHIRLWIND), *extra,
            *[a for s in sets for a in ("--set", s)]]


def test_a_failing_pipeline_names_the_stages_done_and_one_line_cause(spark, tmp_path):
    ran = runner.invoke(app, _args(tmp_path))
    assert ran.exit_code == 2, ran.output
    assert "ingest: succeeded" in ran.stdout
    assert "INFO refinery: stage ingest succeeded" in ran.stderr  # the stage summary, logged to stderr
    assert "INFO refinery: stage quality failed" in ran.stderr
    assert "stages succeeded: ingest\n" in ran.stderr
    error = [line for line in ran.stderr.splitlines() if line.startswith("error:")]
    assert len(error) == 1 and "quality classifier 'dclm'" in error[0] and "not-a-model.bin" in error[0]
    assert "Traceback" not in ran.stderr

    debug = runner.invoke(app, _args(tmp_path, "--debug"))
    assert debug.exit_code == 1
    assert isinstance(debug.exception, InputError)  # raised with its traceback, not summarised
    assert "stages succeeded: ingest\n" in debug.stderr  # ingest: already done, skipped, succeeded again


def test_job_step_tags_and_describes_the_threads_jobs_then_restores(spark):
    def description():
        return spark.sparkContext.getLocalProperty("spark.job.description")

    spark.sparkContext.setJobDescription("outer")
    try:
        with job_step(spark, "dedup"):
            with job_step(spark, "dedup", "merge duplicates"):
                assert description() == "refinery dedup: merge duplicates"
                assert {"refinery-dedup", "refinery-dedup-merge_duplicates"} <= spark.getTags()
            assert description() == "refinery dedup"
            assert "refinery-dedup-merge_duplicates" not in spark.getTags()
        assert description() == "outer"
        assert not {t for t in spark.getTags() if t.startswith("refinery-")}
    finally:
        spark.sparkContext.setJobDescription(None)


@pytest.mark.parametrize("message", ["[CODE] first line\n\tat org.apache...\n" * 3, "\n\n  x" + "y" * 400])
def test_the_cause_is_one_short_line(message):
    from refinery.cli import _first_line

    line = _first_line(RuntimeError(message))
    assert "\n" not in line and 0 < len(line) <= 300
