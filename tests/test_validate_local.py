"""The `runs` row is validated on the driver (GX's pandas datasource): same suite, no Spark job."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
import pytest

from refinery.jobs.validate import ValidationFailed, validate
from refinery.schemas.tables import RUNS


def _row(**changes) -> pd.DataFrame:
    now = datetime.now(UTC)
    row = {"run_id": "r1", "stage": "quality", "status": "succeeded", "started_at": now, "ended_at": now,
           "input_versions": {"documents": 3}, "output_versions": {"quality": 1}, "rows_in": 5, "rows_out": 5,
           "counters": {"kept": 4}, "docs_per_s": 1.0, "validation": "passed", "error": None, "config_json": "{}",
           "spark_cores": 2, "settings_digest": "d1"}
    row.update(changes)
    assert list(row) == RUNS.schema.fieldNames()  # the row this test builds is the table's row
    return pd.DataFrame([row], columns=RUNS.schema.fieldNames())


def test_a_good_runs_row_passes():
    validate(RUNS.name, _row())


def test_a_bad_runs_row_fails_naming_the_expectation():
    with pytest.raises(ValidationFailed, match=r"expect_column_values_to_be_in_set on column status.*'done'"):
        validate(RUNS.name, _row(status="done"))


def test_a_missing_column_fails():
    with pytest.raises(ValidationFailed, match="expect_table_columns_to_match_set"):
        validate(RUNS.name, _row().drop(columns=["error"]))
