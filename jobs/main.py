"""The pipeline runner and the entry point shared by `refinery run` and `spark-submit jobs/<stage>.py`."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable

from refinery.udfs import fs

from . import registry
from .base import RunRecord, Stage, run_stage
from .config import PipelineConfig, load_config
from .session import SetupError, get_spark, on_cluster

DEFAULT_ROOT = "./lakehouse"
# Stages register themselves (jobs/registry.py); these read the registry, in pipeline order. LLM stages run after
# the cheap ones, and in a bare `refinery run` only when llm.model is configured: without a model they cannot run,
# and a default run should not fail for want of one.


def stage_names(llm: bool | None = None) -> tuple[str, ...]:
    return registry.names(llm)


def default_stages(config: PipelineConfig) -> list[str]:
    return list(registry.names(llm=False)) + (list(registry.names(llm=True)) if config.llm.model else [])


def make_stage(name: str, input_glob: str | None = None, force: bool | None = None) -> Stage:
    return registry.make(name, input_glob=input_glob, force=force)


def run_pipeline(config: PipelineConfig, stages: list[str] | None = None, input_glob: str | None = None,
                 force: bool | None = None, show_progress: bool = False,
                 on_record: Callable[[RunRecord], None] | None = None) -> list[RunRecord]:
    import os

    from .ledger import lake_lock
    from .storage import Lakehouse

    os.environ.setdefault("REFINERY_DRIVER_PID", str(os.getpid()))  # for kill_point in workers (tests only)
    names = stages or default_stages(config)
    for name in names:
        registry.get(name)  # an unknown name fails before any stage runs or the lake is locked
    spark = get_spark(config.spark)
    check_storage_root(config, spark.conf.get("spark.master", "local"))
    fs.configure(config.storage.fs_options)  # the driver's own reads (benchmark globs, model checks)
    records = []
    # One lock for the whole pipeline, so another run cannot slip in between two of its stages.
    with lake_lock(Lakehouse(spark, config.storage), config, names[0]):
        for name in names:
            stage = make_stage(name, input_glob=input_glob, force=force)
            records.append(run_stage(stage, spark, config, show_progress=show_progress))
            if on_record is not None:
                on_record(records[-1])
    return records


def configure_logging() -> None:
    """Stage summaries (logger `refinery`, INFO) to stderr, once; Spark's and py4j's loggers are left alone."""
    log = logging.getLogger("refinery")
    if not any(isinstance(h, _Stderr) for h in log.handlers):
        handler = _Stderr()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        log.addHandler(handler)
    log.setLevel(logging.INFO)


class _Stderr(logging.StreamHandler):
    """Whatever sys.stderr is when a record is written (the CLI's test runner swaps it per invocation)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


def check_storage_root(config: PipelineConfig, master: str) -> None:
    """The default root ./lakehouse is the driver's disk: under spark-submit or Databricks with a cluster master,
    executors on other machines would write their parts elsewhere. Such a run must name where tables live."""
    storage = config.storage
    if storage.metastore or storage.root != DEFAULT_ROOT or not on_cluster() or master.startswith("local"):
        return
    raise SetupError(f"storage.root is the default {DEFAULT_ROOT!r}, a folder on the driver's disk, and this is a "
                     f"cluster ({master}): set storage.root to a URI every node reaches (s3a://bucket/lake, "
                     "gs://..., abfss://...) or storage.metastore to a catalog.schema")


def stage_parser(name: str) -> argparse.ArgumentParser:
    """The arguments of `jobs/<stage>.py` (tests/test_deploy.py parses the deploy files' job args with it)."""
    parser = argparse.ArgumentParser(prog=f"jobs/{name}.py")
    parser.add_argument("--config")
    parser.add_argument("--env-file")
    parser.add_argument("--input")
    parser.add_argument("--force", action="store_true", default=None)
    parser.add_argument("--full-refresh", action="store_true", help="ignore the watermarks: read every input whole")
    parser.add_argument("--set", action="append", default=[], dest="overrides", metavar="KEY=VALUE")
    return parser


def stage_main(name: str, argv: list[str] | None = None) -> None:
    """`spark-submit jobs/<stage>.py --config pipeline.yaml [--input GLOB] [--set key=value ...]`."""
    args = stage_parser(name).parse_args(argv)
    configure_logging()
    overrides = [*args.overrides, *(["storage.full_refresh=true"] if args.full_refresh else [])]
    config = load_config(args.config, args.env_file, overrides)
    record = run_pipeline(config, [name], input_glob=args.input, force=args.force)[0]
    print(f"{name}: {record.status}, {record.rows_out} rows out, run {record.run_id}")
    sys.exit(0 if record.status == "succeeded" else 1)
