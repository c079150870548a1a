"""Indicators: the ``ind_*`` tables computed from the stored answers.

:mod:`pipeline.indicators.compute` holds one pure function per stored table;
:func:`recompute` reads their inputs from the store and writes their results through it.
"""

from pipeline.indicators.compute import COMPARED_LEVELS, ORG_LEVELS
from pipeline.indicators.run import recompute

__all__ = ["COMPARED_LEVELS", "ORG_LEVELS", "recompute"]
