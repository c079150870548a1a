"""Indicators: the ``ind_*`` tables computed from the stored answers.

:mod:`pipeline.indicators.compute` holds one pure function per stored table;
:func:`recompute` reads their inputs from the store and writes their results through it.
The statistics libraries load only when something is computed.
"""

from __future__ import annotations

from pipeline.indicators.levels import COMPARED_LEVELS, ORG_LEVELS

__all__ = ["COMPARED_LEVELS", "ORG_LEVELS", "recompute"]


def __getattr__(name: str):
    if name == "recompute":
        from pipeline.indicators.run import recompute

        return recompute
    raise AttributeError(name)
