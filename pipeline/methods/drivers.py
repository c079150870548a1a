"""Key-driver analysis: which dimensions matter most for overall satisfaction.

Relative importance is the Shapley (LMG, Lindeman–Merenda–Gold) decomposition of the R² of an
ordinary least-squares regression of the outcome on the predictors: each predictor's importance is
its increase in R² when it joins a model, averaged over all orders in which the predictors can
enter. The importances sum exactly to the full model's R², whatever the correlations between the
predictors, which is why it is preferred over standardised coefficients for correlated survey
dimensions. Computed by exact enumeration of all 2^p subsets (R package ``relaimpo``,
``calc.relimp(type="lmg")``).
"""

from __future__ import annotations

from collections.abc import Sequence
from math import factorial

import numpy as np
import pandas as pd

from pipeline.errors import UsageError

__all__ = ["key_drivers"]

_DRIVER_COLUMNS = [
    "outcome",
    "predictor",
    "n",
    "r2",
    "importance",
    "share",
    "rank",
    "correlation",
    "std_coef",
    "predictor_mean",
]


def _subset_r2(cross: np.ndarray, cross_y: np.ndarray, ss_y: float) -> np.ndarray:
    """R² of every subset of predictors (index = bit mask) from centred cross-products."""
    p = cross.shape[0]
    r2 = np.zeros(2**p)
    for mask in range(1, 2**p):
        idx = [k for k in range(p) if mask >> k & 1]
        sub = cross[np.ix_(idx, idx)]
        rhs = cross_y[idx]
        try:
            beta = np.linalg.solve(sub, rhs)
        except np.linalg.LinAlgError:
            beta = np.linalg.lstsq(sub, rhs, rcond=None)[0]
        r2[mask] = float(rhs @ beta) / ss_y
    return r2


def key_drivers(
    wide: pd.DataFrame,
    outcome: str,
    predictors: Sequence[str],
    *,
    max_predictors: int = 15,
) -> pd.DataFrame:
    """Relative importance of the predictors of ``outcome``: Shapley/LMG decomposition of R².

    Parameters
    ----------
    wide
        One row per respondent; numeric columns ``outcome`` and ``predictors`` (e.g. the overall
        satisfaction item and the dimension scores). Rows with a missing value in any of these
        columns are dropped (listwise complete cases).
    outcome
        The outcome column.
    predictors
        Two or more predictor columns.
    max_predictors
        Refuse more predictors than this: the exact enumeration costs 2^p regressions
        (p = 12 takes well under a second, every extra predictor doubles it).

    Returns
    -------
    pandas.DataFrame
        One row per predictor, in the order given, columns:

        - ``outcome``, ``predictor``: the column names.
        - ``n``: complete cases used.
        - ``r2``: R² of the full OLS model (the same on every row).
        - ``importance``: the predictor's Shapley/LMG share of R²; the importances sum to ``r2``.
        - ``share``: ``importance / r2``; the shares sum to 1.
        - ``rank``: 1 for the most important predictor (ties share the smaller rank).
        - ``correlation``: Pearson correlation with the outcome.
        - ``std_coef``: standardised coefficient in the full model.
        - ``predictor_mean``: mean of the predictor (its "performance", for a driver matrix).

    Raises
    ------
    UsageError
        A column is missing or not numeric, a predictor is repeated or equals the outcome, there
        are too many predictors, fewer complete cases than predictors + 2, or the outcome does
        not vary.
    """
    predictors = list(predictors)
    if not isinstance(wide, pd.DataFrame):
        raise UsageError(f"wide must be a pandas DataFrame, got {type(wide).__name__}.")
    for col in [outcome, *predictors]:
        if col not in wide.columns:
            raise UsageError(
                f"The data have no column {col!r}.",
                column=col,
                expected=f"one of {list(wide.columns)}",
            )
    if len(predictors) < 1 or len(set(predictors)) != len(predictors) or outcome in predictors:
        raise UsageError(
            "key_drivers needs distinct predictor columns that do not include the outcome.",
            value=predictors,
        )
    if len(predictors) > max_predictors:
        raise UsageError(
            f"{len(predictors)} predictors is more than max_predictors={max_predictors}; "
            "the exact decomposition needs 2^p regressions. Group items into dimensions first.",
        )
    try:
        data = wide[[outcome, *predictors]].apply(pd.to_numeric).to_numpy(float, na_value=np.nan)
    except (TypeError, ValueError) as exc:
        raise UsageError(f"key_drivers needs numeric columns: {exc}") from None
    complete = ~np.isnan(data).any(axis=1)
    data = data[complete]
    n, p = data.shape[0], len(predictors)
    if n < p + 2:
        raise UsageError(
            f"Only {n} complete cases for {p} predictors; key_drivers needs at least {p + 2}.",
        )
    means = data.mean(axis=0)
    centred = data - means
    y, x = centred[:, 0], centred[:, 1:]
    ss_y = float(y @ y)
    if ss_y <= 0:
        raise UsageError(f"The outcome {outcome!r} does not vary among the complete cases.")
    cross = x.T @ x
    cross_y = x.T @ y
    r2 = _subset_r2(cross, cross_y, ss_y)

    masks = np.arange(2**p)
    size = np.array([bin(m).count("1") for m in masks])
    weight = np.array([factorial(s) * factorial(p - s - 1) / factorial(p) for s in range(p)])
    importance = np.empty(p)
    for k in range(p):
        without = masks[(masks >> k & 1) == 0]
        importance[k] = np.sum(weight[size[without]] * (r2[without | (1 << k)] - r2[without]))
    full = r2[-1]

    sd = np.sqrt(np.diag(cross) / (n - 1))
    sd_y = np.sqrt(ss_y / (n - 1))
    try:
        beta = np.linalg.solve(cross, cross_y)
    except np.linalg.LinAlgError:
        beta = np.linalg.lstsq(cross, cross_y, rcond=None)[0]
    with np.errstate(divide="ignore", invalid="ignore"):
        correlation = cross_y / np.sqrt(np.diag(cross) * ss_y)
        share = importance / full if full > 0 else np.full(p, np.nan)
    out = pd.DataFrame(
        {
            "outcome": outcome,
            "predictor": predictors,
            "n": n,
            "r2": full,
            "importance": importance,
            "share": share,
            "rank": pd.Series(importance).rank(ascending=False, method="min").astype(np.int64),
            "correlation": correlation,
            "std_coef": beta * sd / sd_y,
            "predictor_mean": means[1:],
        }
    )
    return out[_DRIVER_COLUMNS]
