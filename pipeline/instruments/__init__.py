"""Questionnaires as data: XLSForm workbooks plus a version registry (versions.yaml)."""

from pipeline.instruments.catalog import (
    Catalog,
    closest,
    example_catalog,
    read_catalog,
    read_workbook,
    read_workbook_with_warnings,
    wave_start_year,
)
from pipeline.instruments.model import (
    DONT_KNOW_CODE,
    MISSING_CODES,
    NOT_APPLICABLE_CODE,
    Choice,
    ContextRole,
    Field,
    Instrument,
    Measure,
    Missing,
    Role,
    Scale,
    Statistic,
)

__all__ = [
    "DONT_KNOW_CODE",
    "MISSING_CODES",
    "NOT_APPLICABLE_CODE",
    "Catalog",
    "Choice",
    "ContextRole",
    "Field",
    "Instrument",
    "Measure",
    "Missing",
    "Role",
    "Scale",
    "Statistic",
    "closest",
    "example_catalog",
    "read_catalog",
    "read_workbook",
    "read_workbook_with_warnings",
    "wave_start_year",
]
