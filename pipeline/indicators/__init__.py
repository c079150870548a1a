"""Indicators: the ``ind_*`` tables computed from the stored answers."""

from pipeline.indicators.compute import LEVELS, TABLES, Computer, Options, compute, unit_tables

__all__ = ["LEVELS", "TABLES", "Computer", "Options", "compute", "unit_tables"]
