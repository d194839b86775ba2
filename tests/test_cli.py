"""The `refinery` CLI and `spark-submit jobs/ingest.py`, end to end on real sample WARCs."""

from __future__ import annotations

import os
import subprocess
import sys

from typer.testing import CliRunner

from refinery.cli import app
from refinery.jobs.session import delta_jars

from .conftest import CC_SAMPLE, CHUNKED_SAMPLE, REPO

runner = CliRunner()


def test_run_then_status_then_sql(spark, tmp_path):
    root = f"storage.root={tmp_path / 'lake'}"
    ran = runner.invoke(app, ["run", "--input", str(CC_SAMPLE), "--set", root,
                              "--set", "ingest.extractor=resiliparse"])
    assert ran.exit_code == 0, ran.output
    assert "ingest: succeeded" in ran.output and "skipped_request=17" in ran.output

    status = runner.invoke(app, ["status", "--set", root])
    assert status.exit_code == 0, status.output
    assert "documents" in status.output and "ingest_files" in status.output and "succeeded" in status.output

    sql = runner.invoke(app, ["sql", "SELECT language, count(*) AS n FROM documents GROUP BY language "
                                     "ORDER BY n DESC, language LIMIT 1", "--set", root])
    assert sql.exit_code == 0, sql.output
    assert "zh" in sql.output and "1 row(s) shown" in sql.output


def test_bad_config_and_bad_sql_print_one_clear_error(spark, tmp_path):
    bad = runner.invoke(app, ["run", "--set", "ingest.extractor=goose"])
    assert bad.exit_code == 2
    assert "config key ingest.extractor" in bad.output and "Traceback" not in bad.output

    query = runner.invoke(app, ["sql", "SELECT * FROM no_such_table", "--set", f"storage.root={tmp_path}"])
    assert query.exit_code == 2
    assert "query failed" in query.output and "no_such_table" in query.output


def test_unknown_stage_lists_the_stages():
    result = runner.invoke(app, ["run", "--stage", "nope"])
    assert result.exit_code == 2 and "stages: ingest, decontaminate, quality, dedup" in result.output


def test_spark_submit_runs_the_ingest_job(tmp_path):
    spark_submit = os.path.join(os.path.dirname(sys.executable), "spark-submit")
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable}
    done = subprocess.run(
        [spark_submit, "--master", "local[2]", "--jars", ",".join(delta_jars("deploy/jars")),
         str(REPO / "jobs" / "ingest.py"), "--input", str(CHUNKED_SAMPLE),
         "--set", f"storage.root={tmp_path / 'lake'}", "--set", "ingest.extractor=resiliparse"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "ingest: succeeded, 1 rows out" in done.stdout


def test_relative_storage_root_is_resolved_against_the_working_directory(spark, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    ran = runner.invoke(app, ["run", "--stage", "ingest", "--input", str(CHUNKED_SAMPLE),
                              "--set", "storage.root=./lakehouse",
                              "--set", "ingest.extractor=resiliparse"])
    assert ran.exit_code == 0, ran.output
    assert (tmp_path / "lakehouse" / "documents" / "_delta_log").is_dir()


def test_dedup_curve_prints_the_candidate_probability_and_the_splits():
    result = runner.invoke(app, ["dedup-curve", "--bands", "14", "--rows", "8", "--target", "0.8"])
    assert result.exit_code == 0, result.output
    assert "threshold ~0.719" in result.output and "0.9235" in result.output  # 1 - (1 - 0.8^8)^14
    assert "0.9769" in result.output  # the 16 x 7 split of the same 112 hashes
