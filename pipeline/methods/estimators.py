"""Per-group estimators from answer counts: descriptives, proportion intervals, response rates.

Everything here is pure and vectorised with numpy: frames or arrays in, new frames or arrays
out, no I/O, arguments never modified. There is no Python loop over groups, so a million
groups take about as long as a few numpy passes.

The input of :func:`describe_counts` is the **answer-count table**, the sufficient statistic for
every per-item indicator: a long frame with the group columns, ``answer`` (integer code ``1..k``)
and ``count``. "Not applicable" and blank answers are not in it, so ``n`` is the number of valid
answers of the group (available-case analysis, item by item).

Units: columns named ``pct_*`` are **percentages** (0-100), including their ``_se``, ``_ci_low``
and ``_ci_high`` companions. :func:`proportion_ci` works on **proportions** (0-1): its ``p``,
``se``, ``ci_low`` and ``ci_high`` are shares.

Finite population correction (FPC)
-----------------------------------
When the headcount ``N`` of a group is known (and ``n <= N``), intervals are narrowed for
sampling without replacement:

* ``wilson``, ``agresti_coull``, ``clopper_pearson``: the interval is computed with the
  **effective sample size** ``n_eff = n (N - 1) / (N - n)`` in place of ``n`` and the same
  ``p = x / n`` (so ``x_eff = p n_eff``). This is the reference kit's ``wilson_fpc``: because
  ``p(1 - p) / n_eff = p(1 - p) / n * (N - n) / (N - 1)``, the interval matches the
  FPC-corrected standard error. The same substitution is used for Agresti-Coull (QILT's method)
  and Clopper-Pearson (whose beta quantiles then have non-integer shape parameters).
* ``svy_logit``, ``svy_beta``: as R ``survey`` does with ``svydesign(ids=~1, fpc=~N)``, the
  variance is multiplied by ``1 - n/N``: ``se^2 = (1 - n/N) p(1 - p) / (n - 1)``; the degrees
  of freedom stay ``n - 1``.
* The **mean**: ``se_mean = sd / sqrt(n) * sqrt(1 - n/N)`` (Cochran's formula for a sample
  variance with denominator ``n - 1``); the t interval keeps ``n - 1`` degrees of freedom.

A census (``n == N``) gives a zero-width interval. A missing headcount (NaN) means "unknown":
no correction for that group. A headcount smaller than ``n`` is an error in the headcount
declaration and raises :class:`pipeline.errors.DeclarationError`.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum

import numpy as np
import pandas as pd
from scipy import special, stats

from pipeline.errors import DeclarationError

__all__ = [
    "CIMethod",
    "describe_counts",
    "proportion_ci",
    "reliability_flag",
    "response_rate",
]


class CIMethod(StrEnum):
    """Confidence-interval methods for a proportion.

    ``wilson``
        Wilson score interval without continuity correction (R ``prop.test(correct=FALSE)``).
    ``agresti_coull``
        Agresti-Coull, clipped to [0, 1].
    ``clopper_pearson``
        The exact beta interval (R ``binom.test``); its ``se`` is NaN.
    ``svy_logit``
        R ``survey::svyciprop(method="logit")`` under an equal-probability design on the ``n``
        answers: ``expit(logit p +- t(n-1) se / (p (1-p)))`` with ``se = sqrt(p(1-p)/(n-1))``.
        At ``p = 0`` or ``1`` the logit is infinite; the ``svy_beta`` bounds are returned there.
    ``svy_beta``
        R ``survey::svyciprop(method="beta")``: Clopper-Pearson-type beta quantiles with the
        effective sample size ``p(1-p)/se^2 = n - 1``.

    Both ``svy_*`` methods need ``n >= 2`` (they return NaN bounds otherwise).
    """

    WILSON = "wilson"
    AGRESTI_COULL = "agresti_coull"
    CLOPPER_PEARSON = "clopper_pearson"
    SVY_LOGIT = "svy_logit"
    SVY_BETA = "svy_beta"


def _check_confidence(confidence: float) -> float:
    confidence = float(confidence)
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie strictly between 0 and 1, got {confidence!r}")
    return confidence


def _as_float(values, name: str) -> np.ndarray:
    arr = np.asarray(values, dtype=float)
    if arr.ndim > 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    return np.atleast_1d(arr)


def _t_quantile(q: float, df: np.ndarray) -> np.ndarray:
    """Student t quantile for many degrees of freedom, computing each distinct df once."""
    out = np.full(df.shape, np.nan)
    ok = np.isfinite(df) & (df > 0)
    if ok.any():
        uniq, inv = np.unique(df[ok], return_inverse=True)
        out[ok] = stats.t.ppf(q, uniq)[inv]
    return out


def _proportion_interval(
    x: np.ndarray,
    n: np.ndarray,
    confidence: float,
    method: CIMethod,
    population: np.ndarray | None,
) -> dict[str, np.ndarray]:
    """Arrays ``p, se, ci_low, ci_high, n_eff`` for a proportion x/n (see :func:`proportion_ci`)."""
    if np.any(n < 0) or np.any(x < 0):
        raise ValueError("counts x and n must be non-negative")
    if np.any(x > n):
        bad = int(np.sum(x > n))
        raise ValueError(f"x exceeds n in {bad} group(s); x counts a subset of the n answers")
    alpha = 1.0 - confidence
    z = stats.norm.ppf(1.0 - alpha / 2.0)
    z2 = z * z
    with np.errstate(divide="ignore", invalid="ignore"):
        p = np.where(n > 0, x / n, np.nan)
        if population is None:
            big_n = np.full(n.shape, np.nan)
        else:
            big_n = population
            bad = np.isfinite(big_n) & (big_n < n)
            if bad.any():
                raise DeclarationError(
                    f"the headcount is smaller than the number of answers in {int(bad.sum())} "
                    "group(s); correct the headcount declaration for these units",
                    expected="headcount >= respondents",
                )
        has_pop = np.isfinite(big_n)
        census = has_pop & (big_n == n) & (n > 0)
        valid = n > 0

        if method in (CIMethod.SVY_LOGIT, CIMethod.SVY_BETA):
            # R survey: equal-probability design on the n answers, fpc = 1 - n/N.
            fpc = np.where(has_pop, 1.0 - n / big_n, 1.0)
            df = n - 1.0
            se = np.sqrt(fpc * p * (1.0 - p) / df)
            n_eff = np.where(census, np.inf, df / fpc)
            a_lo, b_lo = n_eff * p, n_eff * (1.0 - p) + 1.0
            a_hi, b_hi = n_eff * p + 1.0, n_eff * (1.0 - p)
            lo = np.where(p == 0.0, 0.0, stats.beta.ppf(alpha / 2.0, a_lo, b_lo))
            hi = np.where(p == 1.0, 1.0, stats.beta.ppf(1.0 - alpha / 2.0, a_hi, b_hi))
            if method is CIMethod.SVY_LOGIT:
                t = _t_quantile(1.0 - alpha / 2.0, df)
                interior = (p > 0.0) & (p < 1.0)
                half = t * se / (p * (1.0 - p))
                lg = special.logit(p)
                lo = np.where(interior, special.expit(lg - half), lo)
                hi = np.where(interior, special.expit(lg + half), hi)
            lo = np.where(census, p, lo)
            hi = np.where(census, p, hi)
            valid = n >= 2
        else:
            # Effective n for the finite population correction: n (N - 1) / (N - n).
            f = np.where(has_pop, np.where(big_n == n, 0.0, (big_n - n) / (big_n - 1.0)), 1.0)
            n_eff = np.where(has_pop, n / f, n)
            x_eff = np.where(has_pop, p * n_eff, x)
            if method is CIMethod.WILSON:
                denom = 1.0 + z2 / n_eff
                centre = (p + z2 / (2.0 * n_eff)) / denom
                half = z / denom * np.sqrt(p * (1.0 - p) / n_eff + z2 / (4.0 * n_eff * n_eff))
                lo, hi = centre - half, centre + half
                se = np.sqrt(p * (1.0 - p) / n_eff)
            elif method is CIMethod.AGRESTI_COULL:
                n_t = n_eff + z2
                p_t = (x_eff + z2 / 2.0) / n_t
                se = np.sqrt(p_t * (1.0 - p_t) / n_t)
                lo = np.clip(p_t - z * se, 0.0, 1.0)
                hi = np.clip(p_t + z * se, 0.0, 1.0)
            elif method is CIMethod.CLOPPER_PEARSON:
                lo = np.where(
                    x_eff == 0.0, 0.0, stats.beta.ppf(alpha / 2.0, x_eff, n_eff - x_eff + 1.0)
                )
                hi = np.where(
                    x_eff == n_eff,
                    1.0,
                    stats.beta.ppf(1.0 - alpha / 2.0, x_eff + 1.0, n_eff - x_eff),
                )
                se = np.full(n.shape, np.nan)
            else:  # pragma: no cover - CIMethod is closed
                raise ValueError(f"unknown CI method {method!r}")
            lo = np.where(census, p, lo)
            hi = np.where(census, p, hi)
            if method is not CIMethod.CLOPPER_PEARSON:
                se = np.where(census, 0.0, se)
    nan = np.nan
    return {
        "n_eff": np.where(n > 0, n_eff, nan),
        "p": p,
        "se": np.where(valid, se, nan),
        "ci_low": np.where(valid, lo, nan),
        "ci_high": np.where(valid, hi, nan),
    }


def proportion_ci(
    x,
    n,
    confidence: float = 0.95,
    method: CIMethod | str = CIMethod.WILSON,
    population=None,
) -> pd.DataFrame:
    """Confidence intervals for many proportions ``x / n`` at once.

    Parameters
    ----------
    x, n
        Counts of "successes" (e.g. answers >= 4) and of valid answers; array-likes of the same
        length (scalars are accepted). If ``x`` is a Series its index is kept.
    confidence
        Confidence level, strictly between 0 and 1.
    method
        A :class:`CIMethod` or its value: ``"wilson"`` (default), ``"agresti_coull"``,
        ``"clopper_pearson"``, ``"svy_logit"``, ``"svy_beta"``.
    population
        Optional headcount ``N`` per proportion for the finite population correction (see the
        module docstring); NaN entries mean "unknown" and get no correction.

    Returns
    -------
    pandas.DataFrame
        One row per proportion, with columns:

        ``x``, ``n``
            the inputs (float);
        ``population``
            the headcount used for the FPC (NaN when none); only when ``population`` is given;
        ``n_eff``
            the sample size the interval is computed with: ``n`` without FPC, ``n (N-1)/(N-n)``
            with FPC for Wilson/Agresti-Coull/Clopper-Pearson, ``(n-1)/(1-n/N)`` for ``svy_*``;
        ``p``
            ``x / n`` (NaN when ``n = 0``);
        ``se``
            the standard error the interval rests on: ``sqrt(p(1-p)/n_eff)`` (Wilson),
            ``sqrt(p~(1-p~)/n~)`` (Agresti-Coull), ``sqrt(fpc p(1-p)/(n-1))`` (svy_*), NaN for
            Clopper-Pearson;
        ``ci_low``, ``ci_high``
            the interval bounds (shares, 0-1);
        ``method``, ``confidence``
            what was computed.

    Raises
    ------
    ValueError
        On an unknown method, a confidence outside (0, 1), negative counts or ``x > n``.
    pipeline.errors.DeclarationError
        When a headcount is smaller than ``n``.
    """
    method = CIMethod(method)
    confidence = _check_confidence(confidence)
    index = x.index if isinstance(x, pd.Series) else None
    x_arr = _as_float(x, "x")
    n_arr = _as_float(n, "n")
    x_arr, n_arr = np.broadcast_arrays(x_arr, n_arr)
    pop = None
    if population is not None:
        pop = np.broadcast_to(_as_float(population, "population"), n_arr.shape)
    res = _proportion_interval(x_arr, n_arr, confidence, method, pop)
    cols: dict[str, object] = {"x": x_arr, "n": n_arr}
    if pop is not None:
        cols["population"] = pop
    cols.update(res)
    cols["method"] = method.value
    cols["confidence"] = confidence
    frame = pd.DataFrame(cols)
    if index is not None and len(index) == len(frame):
        frame.index = index
    return frame


def _group_index(frame: pd.DataFrame, by: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Dense group ids (in sorted key order) and the first row position of each group."""
    if len(by) == 0:
        gid = np.zeros(len(frame), dtype=np.int64)
        return gid, np.zeros(1 if len(frame) else 0, dtype=np.int64)
    code = np.zeros(len(frame), dtype=np.int64)
    for col in by:
        c, uniques = pd.factorize(frame[col], sort=True, use_na_sentinel=False)
        code = code * len(uniques) + c
        code, _ = pd.factorize(code, sort=True)
        code = code.astype(np.int64, copy=False)
    _, first, gid = np.unique(code, return_index=True, return_inverse=True)
    return gid.astype(np.int64, copy=False), first


def _headcounts_for_groups(
    keys: pd.DataFrame, counts: pd.DataFrame, gid: np.ndarray, population, by: Sequence[str]
) -> np.ndarray:
    if isinstance(population, str):
        if population not in counts.columns:
            raise ValueError(f"population column {population!r} is not in the counts frame")
        vals = pd.to_numeric(counts[population]).to_numpy(dtype=float)
        g = len(keys)
        with np.errstate(invalid="ignore"):
            lo = np.full(g, np.inf)
            hi = np.full(g, -np.inf)
            np.minimum.at(lo, gid, np.where(np.isnan(vals), np.inf, vals))
            np.maximum.at(hi, gid, np.where(np.isnan(vals), -np.inf, vals))
        if np.any((lo != hi) & np.isfinite(lo) & np.isfinite(hi)):
            raise ValueError(
                f"population column {population!r} must hold one headcount per group; "
                "it differs within some groups"
            )
        return np.where(np.isfinite(hi), hi, np.nan)
    if isinstance(population, pd.DataFrame):
        if "headcount" not in population.columns:
            raise ValueError("a population frame needs a 'headcount' column")
        on = [c for c in population.columns if c != "headcount"]
        extra = [c for c in on if c not in by]
        if extra:
            raise ValueError(
                f"population frame columns {extra} are not group columns {list(by)}; "
                "keep only group columns and 'headcount'"
            )
        if on and population.duplicated(on).any():
            raise ValueError(f"population frame has more than one headcount per {on}")
        if not on:
            if len(population) != 1:
                raise ValueError("a population frame without key columns must have one row")
            return np.full(len(keys), float(population["headcount"].iloc[0]))
        merged = keys.merge(population, on=on, how="left", validate="m:1")
        return pd.to_numeric(merged["headcount"]).to_numpy(dtype=float)
    raise TypeError("population must be None, a column name or a frame with 'headcount'")


def describe_counts(
    counts: pd.DataFrame,
    by: Sequence[str],
    points: int = 5,
    positive_from: int = 4,
    negative_to: int = 2,
    confidence: float = 0.95,
    method: CIMethod | str = CIMethod.WILSON,
    population: str | pd.DataFrame | None = None,
    low: int = 1,
) -> pd.DataFrame:
    """Descriptive statistics per group from an answer-count table.

    Parameters
    ----------
    counts
        Long frame with the ``by`` columns, ``answer`` (integer code ``low..low+points-1``) and
        ``count`` (non-negative). Several rows for the same group and answer are added up.
        Not applicable / blank answers must not be in it.
    by
        Group columns (e.g. ``["wave", "unit", "item"]``); one output row per distinct
        combination, sorted by them.
    points
        Number of answer codes ``k`` on the scale.
    low
        The first answer code: 1 (codes ``1..k``, the default) or 0 (``0..k-1``, e.g. a
        0-10 scale).
    positive_from, negative_to
        An answer ``>= positive_from`` is positive, ``<= negative_to`` negative (defaults: top
        two and bottom two boxes of a 5-point scale).
    confidence
        Level of the mean and proportion intervals.
    method
        Interval method for ``pct_positive`` (:class:`CIMethod`).
    population
        Optional headcount ``N`` for the finite population correction: either the name of a
        column of ``counts`` (constant within a group) or a frame with a ``headcount`` column and
        some of the ``by`` columns as keys (e.g. wave and unit, shared by all items). Groups
        without a headcount get no correction.

    Returns
    -------
    pandas.DataFrame
        One row per group with the ``by`` columns, then:

        ``n``
            number of valid answers (int64 when the counts are whole numbers, as are
            ``x_positive`` and ``x_negative``);
        ``mean``, ``sd``
            mean answer code and sample SD (denominator ``n - 1``; NaN when ``n < 2``);
        ``se_mean``
            ``sd / sqrt(n)``, times ``sqrt(1 - n/N)`` with a headcount;
        ``mean_ci_low``, ``mean_ci_high``
            t interval ``mean +- t(n-1) se_mean``;
        ``median_interpolated``
            the grouped-data interpolated median: with ``m`` the lowest code whose cumulative
            count reaches ``n/2``, ``F`` the count below ``m`` and ``f`` the count at ``m``,
            ``median = m - 0.5 + (n/2 - F) / f`` (classes of width 1). When exactly half the
            answers lie at or below ``m`` and the codes just above are empty, the value is
            halfway across that empty gap, ``(m + 0.5 + m' - 0.5) / 2`` with ``m'`` the next
            code used (the usual "mean of the two middle values" rule; the formula above gives
            the same value when code ``m + 1`` is used);
        ``pct_<code>`` for each code ``low`` ... ``low + k - 1``
            the distribution, percent of valid answers per code;
        ``x_positive``, ``x_negative``
            counts of positive / negative answers;
        ``pct_positive``, ``pct_negative``
            their percentages;
        ``pct_positive_se``, ``pct_positive_ci_low``, ``pct_positive_ci_high``
            standard error and interval of ``pct_positive`` by ``method`` (percent), see
            :func:`proportion_ci`;
        ``headcount``
            the ``N`` used (only when ``population`` is given);
        ``ci_method``, ``confidence``
            what the intervals are.

        Statistics of a group with ``n = 0`` are NaN.

    Raises
    ------
    ValueError
        On missing columns, answer codes outside ``1..points``, negative or missing counts, or
        thresholds that do not fit the scale.
    """
    method = CIMethod(method)
    confidence = _check_confidence(confidence)
    by = list(by)
    k = int(points)
    low = int(low)
    high = low + k - 1
    if k < 2:
        raise ValueError(f"points must be at least 2, got {points!r}")
    if not low <= negative_to < positive_from <= high:
        raise ValueError(
            f"need {low} <= negative_to < positive_from <= {high}, got negative_to="
            f"{negative_to}, positive_from={positive_from}, points={points}, low={low}"
        )
    missing = [c for c in [*by, "answer", "count"] if c not in counts.columns]
    if missing:
        raise ValueError(f"counts frame lacks column(s) {missing}")

    answer = pd.to_numeric(counts["answer"]).to_numpy(dtype=float)
    bad = ~np.isin(answer, np.arange(low, high + 1))
    if bad.any():
        found = sorted({str(v) for v in answer[bad]})[:5]
        raise ValueError(
            f"answer codes must be integers {low}..{high}; found {found} in {int(bad.sum())} "
            "row(s). Drop 'not applicable' and blanks before counting."
        )
    cnt = pd.to_numeric(counts["count"]).to_numpy(dtype=float)
    if np.isnan(cnt).any() or (cnt < 0).any():
        raise ValueError("counts must be non-negative numbers, without missing values")

    gid, first = _group_index(counts, by)
    g = len(first)
    keys = counts[by].iloc[first].reset_index(drop=True) if by else pd.DataFrame(index=range(g))
    c = np.bincount(gid * k + (answer.astype(np.int64) - low), weights=cnt, minlength=g * k)
    c = c.reshape(g, k)

    big_n = None
    if population is not None:
        big_n = _headcounts_for_groups(keys, counts, gid, population, by)

    codes = np.arange(low, high + 1, dtype=float)
    n = c.sum(axis=1)
    alpha = 1.0 - confidence
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = (c @ codes) / n
        ss = (c * (codes[None, :] - mean[:, None]) ** 2).sum(axis=1)
        sd = np.where(n >= 2, np.sqrt(ss / (n - 1.0)), np.nan)
        fpc = np.ones(g)
        if big_n is not None:
            bad_pop = np.isfinite(big_n) & (big_n < n)
            if bad_pop.any():
                raise DeclarationError(
                    f"the headcount is smaller than the number of answers in "
                    f"{int(bad_pop.sum())} group(s); correct the headcount declaration",
                    expected="headcount >= respondents",
                )
            fpc = np.where(np.isfinite(big_n), 1.0 - n / big_n, 1.0)
        se_mean = sd / np.sqrt(n) * np.sqrt(fpc)
        t = _t_quantile(1.0 - alpha / 2.0, n - 1.0)
        mean_lo = mean - t * se_mean
        mean_hi = mean + t * se_mean

        cum = np.cumsum(c, axis=1)
        half = n / 2.0
        m_idx = np.argmax(cum >= half[:, None], axis=1)
        rows = np.arange(g)
        f_m = c[rows, m_idx]
        below = cum[rows, m_idx] - f_m
        median = low + m_idx - 0.5 + (half - below) / f_m
        tie = cum[rows, m_idx] == half
        after = (np.arange(k)[None, :] > m_idx[:, None]) & (c > 0)
        nxt = np.argmax(after, axis=1)
        median = np.where(tie & after.any(axis=1), low + (m_idx + nxt) / 2.0, median)
        median = np.where(n > 0, median, np.nan)

        pct = 100.0 * c / n[:, None]
        x_pos = c[:, positive_from - low :].sum(axis=1)
        x_neg = c[:, : negative_to - low + 1].sum(axis=1)
        ci = _proportion_interval(x_pos, n, confidence, method, big_n)

    integral = bool(np.all(cnt == np.round(cnt)))
    as_count = (lambda a: a.astype(np.int64)) if integral else (lambda a: a)
    out = keys.copy()
    out["n"] = as_count(n)
    out["mean"] = mean
    out["sd"] = sd
    out["se_mean"] = se_mean
    out["mean_ci_low"] = mean_lo
    out["mean_ci_high"] = mean_hi
    out["median_interpolated"] = median
    for j in range(k):
        out[f"pct_{low + j}"] = pct[:, j]
    out["x_positive"] = as_count(x_pos)
    out["x_negative"] = as_count(x_neg)
    out["pct_positive"] = 100.0 * ci["p"]
    out["pct_negative"] = 100.0 * x_neg / np.where(n > 0, n, np.nan)
    out["pct_positive_se"] = 100.0 * ci["se"]
    out["pct_positive_ci_low"] = 100.0 * ci["ci_low"]
    out["pct_positive_ci_high"] = 100.0 * ci["ci_high"]
    if big_n is not None:
        out["headcount"] = big_n
    out["ci_method"] = method.value
    out["confidence"] = confidence
    return out


def response_rate(respondents, headcount):
    """Share of the headcount that responded, ``respondents / headcount``.

    Parameters
    ----------
    respondents, headcount
        Array-likes (or Series) of the same length; a NaN headcount means unknown.

    Returns
    -------
    numpy.ndarray or pandas.Series
        The rate (0-1), NaN where the headcount is unknown. A Series named ``response_rate``
        (with the index of ``respondents``) when ``respondents`` is a Series.

    Raises
    ------
    pipeline.errors.DeclarationError
        When a headcount is zero or negative, or smaller than the number of respondents.
    ValueError
        On negative respondent counts.
    """
    index = respondents.index if isinstance(respondents, pd.Series) else None
    r = _as_float(respondents, "respondents")
    h = _as_float(headcount, "headcount")
    r, h = np.broadcast_arrays(r, h)
    if np.any(r < 0):
        raise ValueError("respondent counts must be non-negative")
    known = np.isfinite(h)
    bad = known & ((h <= 0) | (h < r))
    if bad.any():
        raise DeclarationError(
            f"headcount is zero or smaller than the number of respondents in {int(bad.sum())} "
            "cell(s); correct the headcount declaration",
            expected="headcount >= respondents > 0",
        )
    with np.errstate(divide="ignore", invalid="ignore"):
        rate = np.where(known, r / h, np.nan)
    if index is not None:
        return pd.Series(rate, index=index, name="response_rate")
    return rate


def reliability_flag(
    n, response_rate, min_n: int = 10, min_rate: float = 0.5, unknown_rate_indicative: bool = False
) -> pd.DataFrame:
    """NSS-style reliability flag: results resting on few answers are "indicative only".

    A result is indicative only when ``n < min_n`` or ``response_rate < min_rate`` (the UK
    National Student Survey publishes only with n >= 10 and a response rate >= 50 %). A missing
    response rate (headcount unknown) is judged on ``n`` alone, unless
    ``unknown_rate_indicative`` is true.

    Parameters
    ----------
    n
        Respondents (or answers) per cell, array-like or Series.
    response_rate
        Rates 0-1 per cell (NaN = unknown).
    min_n, min_rate
        Thresholds.
    unknown_rate_indicative
        Treat an unknown response rate as too low.

    Returns
    -------
    pandas.DataFrame
        One row per cell (index of ``n`` when it is a Series), columns:

        ``indicative_only``
            bool;
        ``reliability_reason``
            ``"low_n"``, ``"low_response_rate"``, ``"unknown_response_rate"`` or several joined
            by ``";"``; missing when the result is reliable.
    """
    index = n.index if isinstance(n, pd.Series) else None
    n_arr = _as_float(n, "n")
    rate = _as_float(response_rate, "response_rate")
    n_arr, rate = np.broadcast_arrays(n_arr, rate)
    low_n = ~(n_arr >= min_n)
    unknown = np.isnan(rate)
    low_rate = ~unknown & (rate < min_rate)
    unknown_flag = unknown & bool(unknown_rate_indicative)
    names = ("low_n", "low_response_rate", "unknown_response_rate")
    table = np.array(
        [";".join(nm for b, nm in enumerate(names) if code >> b & 1) or None for code in range(8)],
        dtype=object,
    )
    code = low_n.astype(int) + 2 * low_rate.astype(int) + 4 * unknown_flag.astype(int)
    reasons = table[code]
    frame = pd.DataFrame(
        {
            "indicative_only": low_n | low_rate | unknown_flag,
            "reliability_reason": pd.array(reasons, dtype="string"),
        }
    )
    if index is not None:
        frame.index = index
    return frame
