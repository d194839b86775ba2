"""Run a table's Great Expectations suite on the DataFrame about to be written."""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass
from functools import lru_cache

import pandas as pd
from pyspark.sql import DataFrame

from refinery.schemas.expectations import SUITES

_names = itertools.count()


class ValidationFailed(Exception):
    """The suite failed: nothing was committed. The message lists each failed expectation."""


@dataclass(frozen=True)
class Failure:
    expectation: str
    column: str | None
    unexpected_count: int | None
    samples: list

    def describe(self) -> str:
        where = f" on column {self.column}" if self.column else ""
        count = f": {self.unexpected_count} unexpected" if self.unexpected_count is not None else ""
        samples = f", e.g. {self.samples}" if self.samples else ""
        return f"{self.expectation}{where}{count}{samples}"


@lru_cache(maxsize=1)
def _context():
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    return gx, context


def validate(table: str, df: DataFrame | pd.DataFrame, settings: dict | None = None, sample_values: int = 5,
             driver_rows: int = 0) -> None:
    """Raise ValidationFailed naming every failed expectation with sample values; return if all pass.

    A pandas DataFrame (rows built on the driver, such as the one `runs` row of a stage) is validated by GX's
    pandas datasource with the same suite: no Spark jobs, a fixed cost each stage would otherwise pay. So is a
    Spark DataFrame of at most `driver_rows` rows (one count, one collect) instead of a Spark job per
    expectation (about 25: a second or two, a fixed cost of every incremental run), unless a row condition of
    the suite is Spark SQL."""
    gx, context = _context()
    expectations = SUITES[table](gx, settings or {})
    if not isinstance(df, pd.DataFrame) and _on_driver(df, expectations, driver_rows):
        df = df.toPandas()
    n = next(_names)
    sources = context.data_sources
    source = sources.add_pandas(f"{table}_source_{n}") if isinstance(df, pd.DataFrame) \
        else sources.add_spark(f"{table}_source_{n}")
    asset = source.add_dataframe_asset(f"{table}_{n}")
    batch = asset.add_batch_definition_whole_dataframe(f"{table}_batch_{n}")
    suite = context.suites.add(gx.ExpectationSuite(name=f"{table}_suite_{n}"))
    for expectation in _for_pandas(gx, expectations) if isinstance(df, pd.DataFrame) else expectations:
        suite.add_expectation(expectation)
    definition = context.validation_definitions.add(
        gx.ValidationDefinition(name=f"{table}_validation_{n}", data=batch, suite=suite)
    )
    result = definition.run(
        batch_parameters={"dataframe": df},
        result_format={"result_format": "SUMMARY", "partial_unexpected_count": sample_values},
    )
    if result.success:
        return
    failures = [_failure(r, sample_values) for r in result.results if not r.success]
    raise ValidationFailed(
        f"table {table}: {len(failures)} expectation(s) failed, nothing was committed:\n  "
        + "\n  ".join(f.describe() for f in failures)
    )


def _on_driver(df: DataFrame, expectations: list, driver_rows: int) -> bool:
    if not driver_rows or any(getattr(e, "condition_parser", None) == "spark" for e in expectations):
        return False
    return df.limit(driver_rows + 1).count() <= driver_rows


def _for_pandas(gx, expectations: list) -> list:
    # GX's Spark datasource lists a struct's fields as columns ("c4.sentences", schemas/expectations.py); a pandas
    # frame holds the struct as one column of dicts, so the column set drops the nested names.
    for expectation in expectations:
        if isinstance(expectation, gx.expectations.ExpectTableColumnsToMatchSet):
            expectation.column_set = [c for c in expectation.column_set if "." not in c]
    return expectations


def _failure(result, sample_values: int) -> Failure:
    config = result.expectation_config
    details = result.result or {}
    samples = details.get("partial_unexpected_list") or []
    if not samples and "observed_value" in details:
        samples = [details["observed_value"]]
    if result.exception_info and result.exception_info.get("raised_exception"):
        samples = [result.exception_info.get("exception_message")]
    # numpy scalars from a pandas batch print as np.int64(3): samples are plain Python values.
    samples = [s.item() if hasattr(s, "item") and not isinstance(s, (list, dict, str)) else s for s in samples]
    return Failure(config.type, config.kwargs.get("column"), details.get("unexpected_count"),
                   samples[:sample_values])
