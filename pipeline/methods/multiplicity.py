"""Corrections for testing many things at once, per family of tests: Holm, Benjamini–
Hochberg, Bonferroni (R ``p.adjust``).

Pure numpy and pandas, no scipy: the read door applies it to the comparisons a listing
shows without paying for the statistics libraries' import.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum

import numpy as np
import pandas as pd

from pipeline.errors import UsageError

__all__ = ["AdjustMethod", "adjust_pvalues"]


class AdjustMethod(StrEnum):
    """Multiple-comparison adjustments (R ``p.adjust`` names in brackets)."""

    HOLM = "holm"  # "holm"
    BH = "bh"  # "BH", statsmodels "fdr_bh"
    BONFERRONI = "bonferroni"  # "bonferroni"
    NONE = "none"  # "none"


_ADJUST_ALIASES = {"fdr_bh": AdjustMethod.BH, "BH": AdjustMethod.BH, "fdr": AdjustMethod.BH}


def _adjust_method(method: str | AdjustMethod) -> AdjustMethod:
    if isinstance(method, str) and method in _ADJUST_ALIASES:
        return _ADJUST_ALIASES[method]
    try:
        return AdjustMethod(method)
    except ValueError:
        raise UsageError(
            f"Unknown p-value adjustment {method!r}.",
            expected=", ".join(m.value for m in AdjustMethod),
        ) from None


def _family_codes(family: object, size: int) -> np.ndarray:
    """Integer family code per position from labels, several label columns, or None."""
    if family is None:
        return np.zeros(size, dtype=np.int64)
    if isinstance(family, pd.DataFrame):
        if family.shape[1] == 0:
            return np.zeros(size, dtype=np.int64)
        frame = family.reset_index(drop=True)
        codes = frame.groupby(list(frame.columns), sort=False, dropna=False, observed=True).ngroup()
        codes = codes.to_numpy(dtype=np.int64)
    else:
        codes, _ = pd.factorize(pd.Series(np.asarray(family, dtype=object)), use_na_sentinel=False)
        codes = np.asarray(codes, dtype=np.int64)
    if codes.shape != (size,):
        raise UsageError(
            f"The family labels have {codes.shape[0]} entries but there are {size} p-values.",
            expected="one family label per p-value",
        )
    return codes


def adjust_pvalues(
    p: Sequence[float] | np.ndarray | pd.Series,
    method: str | AdjustMethod = AdjustMethod.HOLM,
    family: Sequence[object] | np.ndarray | pd.Series | pd.DataFrame | None = None,
) -> np.ndarray | pd.Series:
    """Adjust p-values for multiple comparisons, separately within each family.

    Parameters
    ----------
    p
        Raw p-values. NaN stays NaN and does not count towards its family's size.
    method
        ``"holm"`` (default; R ``p.adjust(method="holm")``), ``"bh"`` (Benjamini–Hochberg, R
        ``"BH"``, statsmodels ``"fdr_bh"``), ``"bonferroni"`` or ``"none"``.
    family
        One family label per p-value, or a DataFrame whose rows' value combinations are the
        families. ``None``: all p-values form one family.

    Returns
    -------
    numpy.ndarray or pandas.Series
        Adjusted p-values in the input order (a Series with the input's index when ``p`` is one).

    Notes
    -----
    With the m non-NaN p-values of a family sorted, ``p_(1) ≤ … ≤ p_(m)``:
    Holm ``adj_(i) = max_{j≤i} min(1, (m − j + 1) p_(j))``;
    BH ``adj_(i) = min_{j≥i} min(1, m/j · p_(j))``; Bonferroni ``min(1, m p)``.
    """
    method = _adjust_method(method)
    values = np.asarray(p, dtype=float).reshape(-1)
    out = np.full(values.shape, np.nan)
    codes = _family_codes(family, values.size)
    valid = ~np.isnan(values)
    if valid.any():
        idx = np.flatnonzero(valid)
        pv, fam = values[idx], codes[idx]
        order = np.lexsort((pv, fam))
        pv, fam, idx = pv[order], fam[order], idx[order]
        new_run = np.r_[True, fam[1:] != fam[:-1]]
        run = np.cumsum(new_run) - 1
        starts = np.flatnonzero(new_run)
        m = np.diff(np.r_[starts, fam.size])[run].astype(float)
        j = (np.arange(fam.size) - starts[run] + 1).astype(float)
        if method is AdjustMethod.HOLM:
            raw = (m - j + 1.0) * pv
            adj = pd.Series(raw).groupby(run).cummax().to_numpy()
        elif method is AdjustMethod.BH:
            raw = (m / j) * pv
            rev = slice(None, None, -1)
            adj = pd.Series(raw[rev]).groupby(run[rev]).cummin().to_numpy()[rev]
        elif method is AdjustMethod.BONFERRONI:
            adj = m * pv
        else:
            adj = pv
        out[idx] = np.minimum(adj, 1.0)
    if isinstance(p, pd.Series):
        return pd.Series(out, index=p.index, name=p.name)
    return out
