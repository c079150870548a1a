"""Questionnaires as data: XLSForm workbooks plus a version registry (versions.yaml)."""

from pipeline.instruments.catalog import (
    Catalog,
    default_catalog,
    read_catalog,
    read_workbook,
    wave_start_year,
)
from pipeline.instruments.model import (
    NOT_APPLICABLE_CODE,
    Choice,
    Field,
    Instrument,
    InstrumentId,
    Role,
    Scale,
)

__all__ = [
    "NOT_APPLICABLE_CODE",
    "Catalog",
    "Choice",
    "Field",
    "Instrument",
    "InstrumentId",
    "Role",
    "Scale",
    "default_catalog",
    "read_catalog",
    "read_workbook",
    "wave_start_year",
]
