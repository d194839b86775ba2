"""The pipeline runner and the entry point shared by `refinery run` and `spark-submit jobs/<stage>.py`."""

from __future__ import annotations

import argparse
import sys

from . import registry
from .base import RunRecord, Stage, run_stage
from .config import PipelineConfig, load_config
from .session import get_spark

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
                 force: bool | None = None, show_progress: bool = False) -> list[RunRecord]:
    spark = get_spark(config.spark)
    records = []
    for name in stages or default_stages(config):
        stage = make_stage(name, input_glob=input_glob, force=force)
        records.append(run_stage(stage, spark, config, show_progress=show_progress))
    return records


def stage_main(name: str, argv: list[str] | None = None) -> None:
    """`spark-submit jobs/<stage>.py --config pipeline.yaml [--input GLOB] [--set key=value ...]`."""
    parser = argparse.ArgumentParser(prog=f"jobs/{name}.py")
    parser.add_argument("--config")
    parser.add_argument("--env-file")
    parser.add_argument("--input")
    parser.add_argument("--force", action="store_true", default=None)
    parser.add_argument("--set", action="append", default=[], dest="overrides", metavar="KEY=VALUE")
    args = parser.parse_args(argv)
    config = load_config(args.config, args.env_file, args.overrides)
    record = run_pipeline(config, [name], input_glob=args.input, force=args.force)[0]
    print(f"{name}: {record.status}, {record.rows_out} rows out, run {record.run_id}")
    sys.exit(0 if record.status == "succeeded" else 1)
