"""`refinery` command line: run stages, show table and run status, query the tables with SQL."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Refinery: web crawls (WARC) to LLM pretraining data on Spark + Delta Lake.")
err = Console(stderr=True) if sys.stderr.isatty() else Console(stderr=True, width=240)
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
    stage: Annotated[str | None, typer.Option("--stage", help="run only these stages (comma-separated)")] = None,
    input_glob: Annotated[str | None, typer.Option("--input", help="WARC glob(s), comma-separated")] = None,
    force: Annotated[bool, typer.Option("--force", help="re-ingest files already ingested")] = False,
    full_refresh: Annotated[bool, typer.Option(
        "--full-refresh", help="ignore the watermarks: every stage reads its whole input")] = False,
    debug: Annotated[bool, typer.Option("--debug", help="on failure, print the full traceback")] = False,
    config: ConfigOpt = None, env_file: EnvFileOpt = None, overrides: SetOpt = None,
) -> None:
    """Run every stage in order (or those given with --stage) and print what each did."""
    from refinery.jobs.main import configure_logging, run_pipeline, stage_names

    configure_logging()
    stages = [s.strip() for s in stage.split(",") if s.strip()] if stage else None
    for name in stages or []:
        if name not in stage_names():
            _fail(f"unknown stage {name!r}; stages: {', '.join(stage_names())}")
    overrides = [*(overrides or []), *(["storage.full_refresh=true"] if full_refresh else [])]
    cfg = _guard(lambda: _config(config, env_file, overrides))
    done = []

    def report(record) -> None:
        done.append(record.stage)
        counters = ", ".join(f"{k}={v}" for k, v in sorted(record.counters.items()))
        out.print(f"[bold]{record.stage}[/]: {record.status} in {record.seconds:.1f}s, rows in {record.rows_in}, "
                  f"rows out {record.rows_out}, validation {record.validation}, run {record.run_id}")
        out.print(f"  {counters}", highlight=False)

    def pipeline():
        return run_pipeline(cfg, stages, input_glob, force or None, show_progress=sys.stderr.isatty(),
                            on_record=report)

    try:
        pipeline() if debug else _guard(pipeline)  # --debug: every error raises, with its traceback
    except typer.Exit:
        _summary(done)
        raise
    except Exception as e:
        _summary(done)
        if debug:
            raise
        _fail(f"{type(e).__name__}: {_first_line(e)} (run again with --debug for the traceback)", 1)


def _summary(done: list[str]) -> None:
    err.print(f"stages succeeded: {', '.join(done) or 'none'}", highlight=False)


def _first_line(e: BaseException) -> str:
    """Spark's errors run to pages of JVM stack; the first non-empty line says what happened."""
    line = next((ln.strip() for ln in str(e).splitlines() if ln.strip()), "")
    return line if len(line) <= 300 else line[:297] + "..."


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
def maintain(
    retention_hours: Annotated[float | None, typer.Option(
        "--retention-hours", help="VACUUM keeps files this long (default storage.vacuum_retention_hours)")] = None,
    below_safety: Annotated[bool, typer.Option(
        "--below-safety-interval", help="allow a retention under Delta's 168 h safety interval")] = False,
    config: ConfigOpt = None, env_file: EnvFileOpt = None, overrides: SetOpt = None,
) -> None:
    """OPTIMIZE (compact small files, apply clustering) and VACUUM every lake table."""
    from refinery.jobs.session import get_spark
    from refinery.jobs.storage import Lakehouse
    from refinery.schemas.tables import TABLES

    cfg = _guard(lambda: _config(config, env_file, overrides))
    hours = cfg.storage.vacuum_retention_hours if retention_hours is None else retention_hours
    lake = Lakehouse(_guard(lambda: get_spark(cfg.spark)), cfg.storage)
    try:
        for name in TABLES:  # old lakes get today's columns, properties and clustering first
            if lake.exists(name):
                lake.migrate(TABLES[name])
        steps = lake.maintain(hours, below_safety)
    except ValueError as e:
        _fail(str(e))
    for name, step, outcome in steps:
        out.print(f"{name}: {step} {outcome}", highlight=False)


@app.command()
def sql(
    query: Annotated[str, typer.Argument(help="Spark SQL; every table and view is registered under its name")],
    limit: Annotated[int, typer.Option("--limit", help="rows to print")] = 50,
    config: ConfigOpt = None, env_file: EnvFileOpt = None, overrides: SetOpt = None,
) -> None:
    """Run Spark SQL over the tables (documents, runs, ...) and views (documents_quality) and print the result."""
    from pyspark.errors import AnalysisException, ParseException

    from refinery.jobs.session import get_spark
    from refinery.jobs.storage import Lakehouse

    cfg = _guard(lambda: _config(config, env_file, overrides))
    spark = _guard(lambda: get_spark(cfg.spark))
    _guard(Lakehouse(spark, cfg.storage).register_views)
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


@app.command()
def export(
    recipe: Annotated[str, typer.Option("--recipe", "-r", help="mix recipe YAML, e.g. conf/mixes/wrap_1to1.yaml")],
    output: Annotated[str, typer.Option("--output", "-o", help="folder or URI for the shards and manifest.json")],
    overwrite: Annotated[bool, typer.Option("--overwrite", help="replace an export already there")] = False,
    config: ConfigOpt = None, env_file: EnvFileOpt = None, overrides: SetOpt = None,
) -> None:
    """Export a training mix: shuffled shards (Parquet, JSONL.zst) and a manifest, by a recipe's token budgets."""
    from refinery.jobs.export import export_mix
    from refinery.jobs.session import get_spark
    from refinery.udfs.export.mix import RecipeError

    cfg = _guard(lambda: _config(config, env_file, overrides))
    spark = _guard(lambda: get_spark(cfg.spark))
    try:
        manifest = _guard(lambda: export_mix(spark, cfg, recipe, output, overwrite))
    except RecipeError as e:
        _fail(str(e))
    table = Table(title=f"{manifest['recipe']['name']}: {manifest['totals']['tokens']} tokens "
                        f"({manifest['tokenizer']}), {manifest['totals']['shards']} shard(s) in {output}")
    for column in ("source", "kind", "budget", "tokens", "docs", "available tokens"):
        table.add_column(column)
    for name, s in manifest["sources"].items():
        table.add_row(name, s["kind"], str(s["budget_tokens"]), str(s["tokens"]), str(s["docs"]),
                      str(s["available_tokens"]))
    out.print(table)


@app.command()
def report(
    output: Annotated[str, typer.Option("--output", "-o", help="the HTML file to write")] = "report.html",
    config: ConfigOpt = None, env_file: EnvFileOpt = None, overrides: SetOpt = None,
) -> None:
    """Write one self-contained HTML report (plots, works offline) of the lakehouse: funnel, languages, quality,
    dedup, contamination, taxonomy, synthetic rows and runs."""
    from refinery.jobs.report import build_report
    from refinery.jobs.session import get_spark

    cfg = _guard(lambda: _config(config, env_file, overrides))
    spark = _guard(lambda: get_spark(cfg.spark))
    sections = _guard(lambda: build_report(spark, cfg, output))
    missing = [s.title for s in sections if not s.figures]
    out.print(f"wrote {output}: {len(sections)} sections" + (f"; without data: {', '.join(missing)}" if missing
                                                              else ""), highlight=False)


@app.command("train-quality")
def train_quality(
    positive: Annotated[list[str], typer.Option("--positive", help="high-quality texts: .jsonl(.gz), .parquet, Delta")],
    negative: Annotated[list[str], typer.Option("--negative", help="low-quality texts, same formats")],
    output: Annotated[str, typer.Option("--output", "-o", help="where to save the fastText model (.bin)")],
    text_field: Annotated[str, typer.Option("--text-field", help="field/column holding the text")] = "text",
    epoch: Annotated[int, typer.Option(help="training epochs")] = 5,
    lr: Annotated[float, typer.Option(help="learning rate")] = 0.1,
    word_ngrams: Annotated[int, typer.Option("--word-ngrams", help="word n-gram length (DCLM: 2)")] = 2,
    dim: Annotated[int, typer.Option(help="vector size")] = 64,
    bucket: Annotated[int, typer.Option(help="hash buckets for n-grams (model size grows with it)")] = 200_000,
    valid_fraction: Annotated[float, typer.Option("--valid-fraction", help="held-out share")] = 0.1,
    seed: Annotated[int, typer.Option(help="split and shuffle seed")] = 0,
) -> None:
    """Train a fastText quality classifier (DCLM-style) and print held-out precision, recall and AUC."""
    from refinery.jobs.train_quality import train
    from refinery.udfs.quality.train import TrainSettings

    settings = TrainSettings(epoch=epoch, lr=lr, word_ngrams=word_ngrams, dim=dim, bucket=bucket,
                             valid_fraction=valid_fraction, seed=seed)
    report = _guard(lambda: train(positive, negative, output, text_field, settings))
    out.print(f"trained on {report.train_positive} positive / {report.train_negative} negative texts; "
              f"held out {report.valid_positive} / {report.valid_negative}")
    out.print(f"held-out precision {report.precision:.3f}  recall {report.recall:.3f}  F1 {report.f1:.3f}  "
              f"accuracy {report.accuracy:.3f}  AUC {report.auc:.3f}")
    out.print(f"model: {report.model_path} (label __label__hq); use it with "
              f"--set 'quality.classifiers=[{{name: mine, path: {report.model_path}}}]'", highlight=False)
@app.command("dedup-curve")
def dedup_curve(
    bands: Annotated[int, typer.Option("--bands", "-b", help="LSH bands (dedup.bands)")] = 14,
    rows: Annotated[int, typer.Option("--rows", "-r", help="MinHash values per band (dedup.rows)")] = 8,
    target: Annotated[float | None, typer.Option("--target", help="also list b x r splits of the same budget "
                                                 "with their chance of catching a pair at this Jaccard")] = None,
) -> None:
    """Print the chance that two documents of a given Jaccard similarity become a candidate pair."""
    from refinery.udfs.dedup.minhash import candidate_probability, threshold, threshold_curve

    if bands < 1 or rows < 1:
        _fail("--bands and --rows must be >= 1")
    table = Table(title=f"{bands} x {rows} = {bands * rows} hashes, threshold ~{threshold(bands, rows):.3f}")
    table.add_column("Jaccard")
    table.add_column("P(candidate)")
    for similarity, probability in threshold_curve(bands, rows):
        table.add_row(f"{similarity:.2f}", f"{probability:.4f}")
    out.print(table)
    if target is not None:
        splits = Table(title=f"splits of {bands * rows} hashes at Jaccard {target}")
        for column in ("bands", "rows", "threshold", f"P(catch at {target})", "P(false candidate at 0.5)"):
            splits.add_column(column)
        for b in range(1, bands * rows + 1):
            if (bands * rows) % b == 0:
                r = bands * rows // b
                splits.add_row(str(b), str(r), f"{threshold(b, r):.3f}", f"{candidate_probability(target, b, r):.4f}",
                               f"{candidate_probability(0.5, b, r):.4f}")
        out.print(splits)


@app.command()
def agreement(
    first: Annotated[str, typer.Argument(help="labeling A: `taxonomy` (this lakehouse), a lakehouse or Delta folder, "
                                              "or a .parquet / .jsonl(.gz) file with doc_id and the code columns")],
    second: Annotated[str, typer.Argument(help="labeling B, the same forms (e.g. a reference labeling)")],
    weighted: Annotated[bool, typer.Option("--weighted", help="match = Jaccard of the sets, not overlap")] = False,
    pooled: Annotated[bool, typer.Option("--pooled", help="one shared chance model (Fleiss-style) instead of "
                                                          "one smoothed model per labeling (Cohen)")] = False,
    top_pick: Annotated[bool, typer.Option("--top-pick", help="primary codes only")] = False,
    config: ConfigOpt = None, env_file: EnvFileOpt = None, overrides: SetOpt = None,
) -> None:
    """Modified Cohen's kappa per EAI category between two labelings, and NMI between the categories of A."""
    from refinery.jobs.agreement import compare, load_labeling

    lake = None
    if any(s == "taxonomy" or Path(s).is_dir() for s in (first, second)):
        from refinery.jobs.session import get_spark
        from refinery.jobs.storage import Lakehouse

        cfg = _guard(lambda: _config(config, env_file, overrides))
        lake = Lakehouse(_guard(lambda: get_spark(cfg.spark)), cfg.storage)
    a, b = (_guard(lambda s=s: load_labeling(s, lake)) for s in (first, second))
    report = compare(a, b, weighted=weighted, pooled=pooled, top_pick=top_pick)
    if not report.rows:
        _fail(f"the labelings share no document with status ok ({len(a)} and {len(b)} rows); they are aligned on "
              "doc_id", 1)
    kappas = Table(title=f"agreement over {report.rows} documents ({'Jaccard' if weighted else 'overlap'} match, "
                         f"{'pooled' if pooled else 'per-labeling'} chance{', primary only' if top_pick else ''})")
    for column in ("category", "P_o", "P_e", "kappa"):
        kappas.add_column(column)
    for k in report.kappas:
        kappas.add_row(k.category, f"{k.po:.4f}", f"{k.pe:.4f}", f"{k.kappa:.4f}")
    mean = sum(k.kappa for k in report.kappas) / len(report.kappas)
    kappas.add_row("mean", "", "", f"{mean:.4f}")
    out.print(kappas)
    categories = list(dict.fromkeys(x for x, _ in report.nmi))
    matrix = Table(title=f"NMI between categories of A (length-weighted); average {report.nmi_average:.4f} "
                         "(without fdc_l1, fdc_l2, document_type_v2)")
    matrix.add_column("")
    for c in categories:
        matrix.add_column(c, overflow="fold")
    for x in categories:
        matrix.add_row(x, *[f"{report.nmi[(x, y)]:.3f}" for y in categories])
    out.print(matrix)


if __name__ == "__main__":
    app()
