"""`refinery` command line: run stages, show table and run status, query the tables with SQL."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Refinery: web crawls (WARC) to LLM pretraining data on Spark + Delta Lake.")
err = Console(stderr=True)
# Piped output (logs, CI, files) is read whole, not on an 80-column screen: do not truncate it.
out = Console() if sys.stdout.isatty() else Console(width=240)

ConfigOpt = Annotated[str | None, typer.Option("--config", "-c", help="YAML file layered over conf/pipeline.yaml")]
EnvFileOpt = Annotated[str | None, typer.Option("--env-file", help="file of REFINERY_SECTION__KEY=value lines")]
SetOpt = Annotated[list[str] | None, typer.Option("--set", help="override one key: --set storage.root=/tmp/x")]


def _config(config: str | None, env_file: str | None, overrides: list[str] | None):
    from refinery.jobs.config import load_config

    return load_config(config, env_file, overrides or [])


def _fail(message: str, code: int = 2) -> None:
    err.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(code)


def _guard(fn):
    """Known failures print one clear message instead of a traceback."""
    from refinery.jobs.base import InputError, StageFailed
    from refinery.jobs.config import ConfigError
    from refinery.jobs.session import SetupError
    from refinery.jobs.validate import ValidationFailed

    try:
        return fn()
    except (ConfigError, InputError, SetupError) as e:
        _fail(str(e), 2)
    except (ValidationFailed, StageFailed) as e:
        _fail(str(e), 1)


@app.command()
def run(
    stage: Annotated[str | None, typer.Option("--stage", help="run only this stage")] = None,
    input_glob: Annotated[str | None, typer.Option("--input", help="WARC glob(s), comma-separated")] = None,
    force: Annotated[bool, typer.Option("--force", help="re-ingest files already ingested")] = False,
    config: ConfigOpt = None, env_file: EnvFileOpt = None, overrides: SetOpt = None,
) -> None:
    """Run every stage in order (or one with --stage) and print what each did."""
    from refinery.jobs.main import ALL_STAGES, run_pipeline

    if stage is not None and stage not in ALL_STAGES:
        _fail(f"unknown stage {stage!r}; stages: {', '.join(ALL_STAGES)}")
    cfg = _guard(lambda: _config(config, env_file, overrides))
    records = _guard(lambda: run_pipeline(cfg, [stage] if stage else None, input_glob, force or None,
                                          show_progress=sys.stderr.isatty()))
    for record in records:
        counters = ", ".join(f"{k}={v}" for k, v in sorted(record.counters.items()))
        out.print(f"[bold]{record.stage}[/]: {record.status} in {record.seconds:.1f}s, rows in {record.rows_in}, "
                  f"rows out {record.rows_out}, validation {record.validation}, run {record.run_id}")
        out.print(f"  {counters}", highlight=False)


@app.command()
def status(
    runs: Annotated[int, typer.Option("--runs", help="how many recent runs to list")] = 10,
    config: ConfigOpt = None, env_file: EnvFileOpt = None, overrides: SetOpt = None,
) -> None:
    """Each table's row count and Delta version, then the latest runs with their counters."""
    from refinery.jobs.session import get_spark
    from refinery.jobs.storage import Lakehouse
    from refinery.schemas.tables import TABLES

    cfg = _guard(lambda: _config(config, env_file, overrides))
    lake = Lakehouse(_guard(lambda: get_spark(cfg.spark)), cfg.storage)
    tables = Table(title=f"tables in {cfg.storage.metastore or cfg.storage.root}")
    for column in ("table", "rows", "version", "location"):
        tables.add_column(column)
    for name in TABLES:
        if lake.exists(name):
            tables.add_row(name, str(lake.read(name).count()), str(lake.version(name)), lake.qualified(name))
        else:
            tables.add_row(name, "-", "-", "not created yet")
    out.print(tables)
    if not lake.exists("runs"):
        return
    recent = lake.read("runs").orderBy("started_at", ascending=False).limit(runs).collect()
    ledger = Table(title="recent runs")
    for column in ("started (UTC)", "stage", "status", "secs", "in", "out", "docs/s", "validation", "counters"):
        ledger.add_column(column)
    for r in recent:
        counters = ", ".join(f"{k}={v}" for k, v in sorted((r.counters or {}).items()))
        secs = (r.ended_at - r.started_at).total_seconds()
        ledger.add_row(r.started_at.strftime("%Y-%m-%d %H:%M:%S"), r.stage, r.status, f"{secs:.1f}",
                       str(r.rows_in), str(r.rows_out), f"{r.docs_per_s:.1f}", r.validation, counters)
    out.print(ledger)


@app.command()
def sql(
    query: Annotated[str, typer.Argument(help="Spark SQL; every table is registered under its name")],
    limit: Annotated[int, typer.Option("--limit", help="rows to print")] = 50,
    config: ConfigOpt = None, env_file: EnvFileOpt = None, overrides: SetOpt = None,
) -> None:
    """Run Spark SQL over the tables (documents, runs, ...) and print the result."""
    from pyspark.errors import AnalysisException, ParseException

    from refinery.jobs.session import get_spark
    from refinery.jobs.storage import Lakehouse
    from refinery.schemas.tables import TABLES

    cfg = _guard(lambda: _config(config, env_file, overrides))
    spark = _guard(lambda: get_spark(cfg.spark))
    lake = Lakehouse(spark, cfg.storage)
    for name in TABLES:
        if lake.exists(name):
            lake.read(name).createOrReplaceTempView(name)
    try:
        result = spark.sql(query)
        rows = result.limit(limit).collect()
    except (AnalysisException, ParseException) as e:
        _fail(f"query failed: {e.getMessage() if hasattr(e, 'getMessage') else e}")
    table = Table(show_lines=False)
    for column in result.columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*["NULL" if v is None else str(v) for v in row])
    out.print(table)
    out.print(f"{len(rows)} row(s) shown (limit {limit})", style="dim")


if __name__ == "__main__":
    app()
