"""The worker's claim on the SQL engines reads its rows by position (shared.record_from_values), so
the columns it returns must be JobRecord's fields in JobRecord's order."""

from __future__ import annotations

import dataclasses
import re

from conveyor.backends.shared import JOB_COLUMNS
from conveyor.backends.sql_files import load_sql
from conveyor.job import JobRecord


def test_job_columns_are_the_records_fields_in_order() -> None:
    fields = [f.name for f in dataclasses.fields(JobRecord) if f.name != "created"]
    assert [("errors_json" if c == "errors" else c) for c in JOB_COLUMNS] == fields


def test_the_sqlite_claim_returns_the_job_columns_in_order() -> None:
    claim = load_sql("conveyor.backends.sqlite", "claim")
    returning = re.search(r"RETURNING\s+(.*)\Z", claim, re.S)
    assert returning is not None
    assert tuple(c.strip() for c in returning.group(1).split(",")) == JOB_COLUMNS
