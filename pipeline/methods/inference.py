"""Statistical tests for Likert answers, computed exactly from answer counts.

Every test here is a pure function: frames or arrays in, a new tidy frame out, no I/O and no
mutation of the arguments. The Likert tests take a **long answer-count table**, the sufficient
statistic the store keeps (see ``PERFORMANCE.md``)::

    <group columns ...>  answer  count
    2024-2025  FAC-A  q03     1     12
    2024-2025  FAC-A  q03     2     30
    ...

``answer`` holds the integer answer code (ordered: a larger code is a more favourable answer) and
``count`` how many valid answers carry that code. Rows whose answer is missing are ignored: blanks
and "not applicable" are not valid answers. Ranks are mid-ranks of the pooled answers, so the rank
tests are the textbook tests with the tie correction, computed without ever expanding the counts
into individual answers, for all tests of a call at once (vectorised over families).

Conventions (all agree with R and scipy, see ``tests/data/reference/README.md``):

* two-proportion test: pooled z without continuity correction, ``p = 2 Φ(−|z|)``, unpooled Wald
  interval for the difference (R ``prop.test(correct=FALSE)``), Cohen's h. Where the normal
  approximation is poor (:func:`approximation_poor`: an expected count of the 2 × 2 table below
  5, Cochran's rule) the p-value is Fisher's exact test instead (R ``fisher.test``); the row's
  ``p_method`` says which.
* Mann–Whitney: normal approximation with tie and continuity correction (R
  ``wilcox.test(exact=FALSE, correct=TRUE)``, scipy ``mannwhitneyu(method="asymptotic")``);
  effect size is the rank-biserial correlation ``r = 2U/(n_a n_b) − 1``. With fewer than
  :data:`MIN_N_RANK_TEST` answers on either side the approximation is not trusted (scipy's
  guidance for tied data) and no p-value is given (``p_method`` ``too_few_answers``); the exact
  test on % positive covers those comparisons.
* Kruskal–Wallis with the tie correction (R ``kruskal.test``, scipy ``kruskal``); effect size
  epsilon squared ``H / (N − 1)``. Dunn's pairwise z with the tie correction.
* logistic trend: maximum likelihood by Newton's method to machine precision, Wald statistics from
  the Fisher information at the estimate (R ``glm(binomial)`` refitted tightly).

Test families
-------------
A **family** is the set of tests whose p-values are adjusted together (Holm by default, or
Benjamini–Hochberg). Every function that returns p-values takes ``family``: a list of the
returned group columns whose value combinations each make one family. Tests of different kinds
(``test`` column: a two-proportion test and a Mann–Whitney test on the same data) are always in
different families. NaN p-values (a test that could not be computed) stay NaN and do not count in
their family. ``family=None`` means the function's default:

================================  ===========================================================
function                          default family
================================  ===========================================================
:func:`wave_change`               all groups of the call (pass e.g. ``["item"]`` when ``by``
                                  holds item and unit: all units for one item × wave pair)
:func:`unit_vs_rest`              ``by``: all units for one combination of ``by`` (e.g. one
                                  item × wave) — the dean's benchmark family
:func:`kruskal_from_counts`       all omnibus tests of the call
:func:`dunn_pairwise`,            ``by``: the pairs of one omnibus test
:func:`pairwise_mann_whitney`
:func:`trend_logistic`,           all groups of the call
:func:`mann_kendall`
================================  ===========================================================

Typical families: all units for one item and wave (pair); all teachers of a faculty for one item;
all items of one unit. Every output carries ``family`` (a readable label), ``family_size``
(the number of non-NaN p-values in it), ``adjust_method`` and ``p_adjusted`` beside the raw
``p_value``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from math import comb

import numpy as np
import pandas as pd
from scipy import special, stats

from pipeline.errors import UsageError
from pipeline.methods.multiplicity import (
    AdjustMethod,
    _adjust_method,
    adjust_pvalues,
)

__all__ = [
    "AdjustMethod",
    "EffectSize",
    "PMethod",
    "approximation_poor",
    "StatTest",
    "adjust_pvalues",
    "dunn_pairwise",
    "fisher_exact_p",
    "kruskal_from_counts",
    "mann_kendall",
    "mann_whitney_from_counts",
    "pairwise_mann_whitney",
    "trend_logistic",
    "two_proportion_test",
    "unit_vs_rest",
    "wave_change",
]


class StatTest(StrEnum):
    """Values of the ``test`` column."""

    TWO_PROPORTION = "two_proportion_z"
    MANN_WHITNEY = "mann_whitney"
    KRUSKAL_WALLIS = "kruskal_wallis"
    DUNN = "dunn"
    LOGISTIC_TREND = "logistic_trend"
    MANN_KENDALL = "mann_kendall"


class EffectSize(StrEnum):
    """Values of the ``effect_size_kind`` column."""

    COHENS_H = "cohens_h"
    RANK_BISERIAL = "rank_biserial"
    EPSILON_SQUARED = "epsilon_squared"
    ODDS_RATIO = "odds_ratio"
    KENDALL_TAU_B = "kendall_tau_b"


# ---------------------------------------------------------------------------------------------
# Multiple comparisons
# ---------------------------------------------------------------------------------------------


class PMethod(StrEnum):
    """How a row's p-value was obtained (``p_method`` column)."""

    NORMAL = "normal"
    FISHER_EXACT = "fisher_exact"
    TOO_FEW_ANSWERS = "too_few_answers"


def _with_adjustment(
    frame: pd.DataFrame,
    family: Sequence[str],
    method: str | AdjustMethod,
    codes: np.ndarray | None = None,
) -> pd.DataFrame:
    """Add ``family``, ``family_size``, ``adjust_method``, ``p_adjusted`` (per family × test).

    ``codes``: the family × test code of each row when the caller has it already (equal
    codes exactly for equal family and test values)."""
    method = _adjust_method(method)
    missing = [c for c in family if c not in frame.columns]
    if missing:
        raise UsageError(
            f"Family column(s) {missing} are not among the result's group columns.",
            column=missing[0],
            expected="columns named in by (or the unit column)",
        )
    keys = [*family, "test"]
    if codes is None:
        codes = frame.groupby(keys, sort=False, dropna=False, observed=True).ngroup().to_numpy()
    p = frame["p_value"].to_numpy(dtype=float)
    size = np.bincount(codes, weights=~np.isnan(p), minlength=codes.max(initial=-1) + 1)
    # one label per family, from its first row (families are few, rows many)
    _, first = np.unique(codes, return_index=True)
    heads = frame.iloc[first]
    labels = np.array(
        [
            "; ".join(f"{c}={v}" for c, v in zip(keys, row, strict=True))
            for row in zip(*(heads[c].astype(str) for c in keys), strict=True)
        ]
        or [""],
        dtype=object,
    )
    # a categorical column: the rows share a few thousand labels (no string per row)
    compact = np.searchsorted(np.unique(codes), codes) if len(frame) else codes
    frame["family"] = pd.Categorical.from_codes(compact, categories=pd.Index(labels[: len(first)]))
    frame["family_size"] = size[codes].astype(np.int64)
    frame["adjust_method"] = method.value
    frame["p_adjusted"] = adjust_pvalues(p, method, family=codes)
    return frame


# ---------------------------------------------------------------------------------------------
# Core formulas on arrays
# ---------------------------------------------------------------------------------------------


def _z_quantile(confidence: float) -> float:
    if not 0.0 < confidence < 1.0:
        raise UsageError(f"confidence must lie strictly between 0 and 1, got {confidence!r}.")
    return float(stats.norm.ppf(0.5 + confidence / 2.0))


def _threshold(positive_from: object) -> float:
    try:
        value = float(positive_from)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        value = np.nan
    if not np.isfinite(value):
        raise UsageError(
            "positive_from must be the smallest answer code counted as positive.",
            value=positive_from,
            expected="a number such as 4 on a 5-point scale",
        )
    return value


#: below this many answers on either side, the Mann–Whitney normal approximation is not used
MIN_N_RANK_TEST = 10
#: Cochran's rule: the normal approximation needs every expected count of the 2 × 2 table ≥ 5
MIN_EXPECTED_COUNT = 5.0


def approximation_poor(x_from, n_from, x_to, n_to) -> np.ndarray:
    """Whether the pooled z test's normal approximation is poor for each comparison.

    True when any expected count of the 2 × 2 table (sample × positive / not positive) under
    the null of equal shares is below :data:`MIN_EXPECTED_COUNT` (Cochran's rule, the rule R's
    ``chisq.test`` warns on); then Fisher's exact test is used. Empty samples are not poor
    (their test is NaN anyway)."""
    x_from, n_from, x_to, n_to = np.broadcast_arrays(
        *(np.asarray(v, dtype=float) for v in (x_from, n_from, x_to, n_to))
    )
    total = n_from + n_to
    with np.errstate(divide="ignore", invalid="ignore"):
        share = (x_from + x_to) / total
        smallest = np.minimum(share, 1.0 - share) * np.minimum(n_from, n_to)
    return (n_from > 0) & (n_to > 0) & (smallest < MIN_EXPECTED_COUNT)


def fisher_exact_p(x_from, n_from, x_to, n_to) -> np.ndarray:
    """Two-sided Fisher exact p-values, one per comparison, vectorised (R ``fisher.test``).

    Under the null the positives of the later sample follow the hypergeometric law given
    both margins; the p-value is the probability of every table no more likely than the
    observed one, with R's relative tolerance of 1e-7. Computed for all comparisons at
    once on log-probabilities (``gammaln``), in chunks of bounded memory."""
    cols = [np.atleast_1d(np.asarray(v, dtype=np.int64)) for v in (x_from, n_from, x_to, n_to)]
    x_from, n_from, x_to, n_to = (c.ravel() for c in np.broadcast_arrays(*cols))
    out = np.full(x_from.shape, np.nan)
    rows = np.flatnonzero((n_from > 0) & (n_to > 0))
    if not rows.size:
        return out
    n1, n2, a = n_to[rows], n_from[rows], x_to[rows]
    k = x_from[rows] + a
    total = n1 + n2
    lo = np.maximum(0, k - n2)
    hi = np.minimum(k, n1)
    size = hi - lo + 1
    order = np.argsort(size, kind="stable")
    tolerance = np.log1p(1e-7)

    def log_choose(n, r):
        return special.gammaln(n + 1) - special.gammaln(r + 1) - special.gammaln(n - r + 1)

    start = 0
    while start < order.size:
        # rows come sorted by support size: halve the chunk until its widest row fits
        m = max(1, 4_000_000 // int(size[order[start]]))
        while m > 1 and m * int(size[order[min(start + m, order.size) - 1]]) > 4_000_000:
            m //= 2
        stop = start + m
        chunk = order[start:stop]
        width = int(size[chunk].max())
        grid = lo[chunk, None] + np.arange(width)[None, :]
        valid = grid <= hi[chunk, None]
        kk, nn, tt = k[chunk, None], n1[chunk, None], total[chunk, None]
        g = np.where(valid, grid, lo[chunk, None])
        logp = log_choose(kk, g) + log_choose(tt - kk, nn - g) - log_choose(tt, nn)
        ac = a[chunk]
        observed = (
            log_choose(k[chunk], ac)
            + log_choose(total[chunk] - k[chunk], n1[chunk] - ac)
            - log_choose(total[chunk], n1[chunk])
        )
        keep = valid & (logp <= observed[:, None] + tolerance)
        out[rows[chunk]] = np.minimum(np.where(keep, np.exp(logp), 0.0).sum(axis=1), 1.0)
        start = stop
    return out


def _two_proportion(x_from, n_from, x_to, n_to, confidence: float) -> dict[str, np.ndarray]:
    q = _z_quantile(confidence)
    x_from, n_from, x_to, n_to = np.broadcast_arrays(
        *(np.asarray(v, dtype=float) for v in (x_from, n_from, x_to, n_to))
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        p_from = x_from / n_from
        p_to = x_to / n_to
        diff = p_to - p_from
        pooled = (x_from + x_to) / (n_from + n_to)
        z = diff / np.sqrt(pooled * (1.0 - pooled) * (1.0 / n_from + 1.0 / n_to))
        p_value = 2.0 * stats.norm.sf(np.abs(z))
        se = np.sqrt(p_from * (1.0 - p_from) / n_from + p_to * (1.0 - p_to) / n_to)
        h = 2.0 * np.arcsin(np.sqrt(p_to)) - 2.0 * np.arcsin(np.sqrt(p_from))
    return {
        "n_from": n_from,
        "n_to": n_to,
        "x_from": x_from,
        "x_to": x_to,
        "share_from": p_from,
        "share_to": p_to,
        "estimate": diff,
        "se": se,
        "ci_low": np.maximum(diff - q * se, -1.0),
        "ci_high": np.minimum(diff + q * se, 1.0),
        "statistic": z,
        "z": z,
        "p_value": p_value,
        "effect_size": h,
    }


def _exact_where_poor(prop: dict[str, np.ndarray]) -> np.ndarray:
    """Replace ``prop``'s p-values by Fisher's where the approximation is poor; the methods."""
    poor = approximation_poor(prop["x_from"], prop["n_from"], prop["x_to"], prop["n_to"])
    if poor.any():
        p = prop["p_value"].copy()
        p[poor] = fisher_exact_p(
            prop["x_from"][poor], prop["n_from"][poor], prop["x_to"][poor], prop["n_to"][poor]
        )
        prop["p_value"] = p
    method = np.where(poor, PMethod.FISHER_EXACT.value, PMethod.NORMAL.value).astype(object)
    return method


def _mann_whitney(a: np.ndarray, b: np.ndarray) -> dict[str, np.ndarray]:
    """U of ``a`` against ``b`` from counts over the same ascending answer levels (last axis)."""
    n_a = a.sum(axis=-1)
    n_b = b.sum(axis=-1)
    b_below = np.cumsum(b, axis=-1) - b
    u = (a * (b_below + 0.5 * b)).sum(axis=-1)
    n = n_a + n_b
    tied = a + b
    tie_term = (tied**3 - tied).sum(axis=-1)
    mu = n_a * n_b / 2.0
    with np.errstate(divide="ignore", invalid="ignore"):
        sigma = np.sqrt(n_a * n_b / 12.0 * ((n + 1.0) - tie_term / (n * (n - 1.0))))
        dev = u - mu
        z = (dev - 0.5 * np.sign(dev)) / sigma
        z = np.where(sigma > 0, z, np.nan)
        p_value = 2.0 * stats.norm.sf(np.abs(z))
        r = dev / mu
    return {"n_a": n_a, "n_b": n_b, "u": u, "z": z, "p_value": p_value, "r": r}


# ---------------------------------------------------------------------------------------------
# Count tables
# ---------------------------------------------------------------------------------------------


def _as_list(cols: str | Sequence[str] | None) -> list[str]:
    if cols is None:
        return []
    if isinstance(cols, str):
        return [cols]
    return list(cols)


def _require_columns(frame: pd.DataFrame, cols: Sequence[str], what: str) -> None:
    if not isinstance(frame, pd.DataFrame):
        raise UsageError(f"{what} must be a pandas DataFrame, got {type(frame).__name__}.")
    for col in cols:
        if col not in frame.columns:
            raise UsageError(
                f"{what} has no column {col!r}.",
                column=col,
                expected=f"one of {list(frame.columns)}",
            )


@dataclass(frozen=True)
class _Counts:
    """A count table as a dense array: one row per key combination, one column per answer."""

    keys: pd.DataFrame  # one row per key combination, sorted
    levels: np.ndarray  # ascending answer codes
    x: np.ndarray  # (rows, levels) counts


def _aggregate(
    counts: pd.DataFrame, keys: Sequence[str], answer_col: str, count_col: str
) -> _Counts:
    keys = list(keys)
    _require_columns(counts, [*keys, answer_col, count_col], "The count table")
    answers = pd.to_numeric(counts[answer_col], errors="coerce").to_numpy(
        dtype=float, na_value=np.nan
    )
    weights = pd.to_numeric(counts[count_col], errors="coerce").to_numpy(
        dtype=float, na_value=np.nan
    )
    keep = ~np.isnan(answers)
    bad = keep & ~(np.isfinite(weights) & (weights >= 0) & (weights == np.round(weights)))
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise UsageError(
            "The count table has a missing, negative, fractional or infinite count.",
            row=row + 1,
            column=count_col,
            value=counts[count_col].iloc[row],
            expected="a whole number ≥ 0 on every row with an answer",
        )
    answers, weights = answers[keep], weights[keep]
    levels, level_idx = np.unique(answers, return_inverse=True)
    n_levels = max(levels.size, 1)
    if keys:
        sub = counts.loc[keep, keys]
        grouped = sub.groupby(keys, sort=True, dropna=False, observed=True)
        codes = grouped.ngroup().to_numpy(dtype=np.int64)
        key_frame = grouped.size().index.to_frame(index=False)
    else:
        codes = np.zeros(answers.size, dtype=np.int64)
        key_frame = pd.DataFrame(index=range(1 if answers.size else 0))
    n_rows = len(key_frame)
    x = np.bincount(
        codes * n_levels + level_idx, weights=weights, minlength=n_rows * n_levels
    ).reshape(n_rows, n_levels)
    if levels.size == 0:
        x = x[:, :0]
    return _Counts(key_frame.reset_index(drop=True), levels, x)


def _run_codes(frame: pd.DataFrame, cols: Sequence[str]) -> np.ndarray:
    """Consecutive codes 0, 1, … for the value combinations of sorted ``cols``."""
    cols = list(cols)
    if not cols or len(frame) == 0:
        return np.zeros(len(frame), dtype=np.int64)
    return (
        frame.groupby(cols, sort=False, dropna=False, observed=True)
        .ngroup()
        .to_numpy(dtype=np.int64)
    )


@dataclass(frozen=True)
class _Families:
    """Groups nested in families: rows sorted by family, each family a contiguous run."""

    keys: pd.DataFrame
    levels: np.ndarray
    x: np.ndarray  # (rows, levels)
    fam: np.ndarray  # (rows,) family code
    starts: np.ndarray  # (families,) first row of each family
    size: np.ndarray  # (families,) groups in each family
    totals: np.ndarray  # (families, levels) pooled counts
    n_total: np.ndarray  # (families,)
    mid: np.ndarray  # (families, levels) mid-rank of each answer level
    tie_term: np.ndarray  # (families,) Σ (t³ − t)


def _families(
    counts: pd.DataFrame, group_col: str, by: Sequence[str], answer_col: str, count_col: str
) -> _Families:
    if group_col in by:
        raise UsageError(f"group_col {group_col!r} must not also be in by.", column=group_col)
    table = _aggregate(counts, [*by, group_col], answer_col, count_col)
    n = table.x.sum(axis=1)
    keep = n > 0
    keys = table.keys.loc[keep].reset_index(drop=True)
    x = table.x[keep]
    fam = _run_codes(keys, by)
    if fam.size:
        starts = np.flatnonzero(np.r_[True, fam[1:] != fam[:-1]])
        totals = np.add.reduceat(x, starts, axis=0)
    else:
        starts = np.zeros(0, dtype=np.int64)
        totals = np.zeros((0, x.shape[1]))
    size = np.diff(np.r_[starts, fam.size])
    n_total = totals.sum(axis=1)
    mid = np.cumsum(totals, axis=1) - totals + (totals + 1.0) / 2.0
    tie_term = (totals**3 - totals).sum(axis=1)
    return _Families(keys, table.levels, x, fam, starts, size, totals, n_total, mid, tie_term)


def _pairs(fams: _Families) -> tuple[np.ndarray, np.ndarray]:
    """Row indices (a, b), a before b, of every pair of groups within each family."""
    ra_parts, rb_parts = [], []
    for k in np.unique(fams.size):
        if k < 2:
            continue
        ia, ib = np.triu_indices(int(k), 1)
        start = fams.starts[fams.size == k][:, None]
        ra_parts.append((start + ia).ravel())
        rb_parts.append((start + ib).ravel())
    if not ra_parts:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    ra = np.concatenate(ra_parts)
    rb = np.concatenate(rb_parts)
    order = np.lexsort((rb, ra))
    return ra[order], rb[order]


def _check_columns_free(reserved: Sequence[str], cols: Sequence[str]) -> None:
    clash = [c for c in cols if c in reserved]
    if clash:
        raise UsageError(
            f"Group column {clash[0]!r} clashes with a result column name; rename it first.",
            column=clash[0],
        )


# ---------------------------------------------------------------------------------------------
# Two proportions and Mann–Whitney
# ---------------------------------------------------------------------------------------------


_TWO_PROPORTION_COLUMNS = [
    "n_from",
    "n_to",
    "x_from",
    "x_to",
    "share_from",
    "share_to",
    "estimate",
    "se",
    "ci_low",
    "ci_high",
    "statistic",
    "p_value",
    "effect_size",
    "effect_size_kind",
]


def two_proportion_test(
    x_from: float | Sequence[float] | np.ndarray,
    n_from: float | Sequence[float] | np.ndarray,
    x_to: float | Sequence[float] | np.ndarray,
    n_to: float | Sequence[float] | np.ndarray,
    *,
    confidence: float = 0.95,
) -> pd.DataFrame:
    """Two-proportion z-test of ``x_to/n_to`` against ``x_from/n_from``, vectorised.

    The statistic is the signed pooled z without continuity correction,
    ``z = (p_to − p_from) / √(p̄(1 − p̄)(1/n_from + 1/n_to))`` with
    ``p̄ = (x_from + x_to)/(n_from + n_to)``, and ``p = 2Φ(−|z|)``: R
    ``prop.test(c(x_to, x_from), c(n_to, n_from), correct=FALSE)`` (whose X-squared is z²) and
    statsmodels ``proportions_ztest``. Arguments broadcast against each other.

    Parameters
    ----------
    x_from, n_from
        Positive answers and valid answers in the reference sample (earlier wave, the rest).
    x_to, n_to
        The same in the compared sample (later wave, the unit).
    confidence
        Level of the interval for the difference.

    Returns
    -------
    pandas.DataFrame
        One row per comparison with columns:

        - ``n_from``, ``n_to``, ``x_from``, ``x_to``: the inputs.
        - ``share_from``, ``share_to``: ``x/n``.
        - ``estimate``: ``share_to − share_from``.
        - ``se``: unpooled ``√(p_from(1−p_from)/n_from + p_to(1−p_to)/n_to)``.
        - ``ci_low``, ``ci_high``: Wald interval ``estimate ± z·se``, clipped to [−1, 1] as R
          does.
        - ``statistic``: the pooled z; ``p_value``: two-sided.
        - ``effect_size``: Cohen's h ``2·asin√p_to − 2·asin√p_from`` (negative for a drop);
          ``effect_size_kind``: ``"cohens_h"``.

        A comparison with an empty sample, or with all or no answers positive in both samples,
        has NaN statistic and p-value.
    """
    res = _two_proportion(x_from, n_from, x_to, n_to, confidence)
    frame = pd.DataFrame({k: np.atleast_1d(v) for k, v in res.items() if k != "z"})
    frame["effect_size_kind"] = EffectSize.COHENS_H.value
    return frame[_TWO_PROPORTION_COLUMNS]


def _count_matrix(values: object, name: str) -> tuple[np.ndarray, pd.Index | None]:
    if isinstance(values, pd.Series):
        return values.to_numpy(dtype=float)[None, :], values.index
    if isinstance(values, pd.DataFrame):
        return values.to_numpy(dtype=float), values.columns
    arr = np.asarray(values, dtype=float)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2:
        raise UsageError(f"{name} must be one count vector or a 2-D array of count vectors.")
    return arr, None


def mann_whitney_from_counts(
    counts_a: Sequence[float] | np.ndarray | pd.Series | pd.DataFrame,
    counts_b: Sequence[float] | np.ndarray | pd.Series | pd.DataFrame,
) -> pd.DataFrame:
    """Mann–Whitney U test of sample a against sample b from their answer counts.

    Equals ``scipy.stats.mannwhitneyu(a, b, method="asymptotic", use_continuity=True)`` and R
    ``wilcox.test(a, b, exact=FALSE, correct=TRUE)`` on the expanded answers: the statistic is
    ``U_a`` = (rank sum of a in the pooled sample, mid-ranks) − n_a(n_a + 1)/2 (R's W), and
    ``z = (U_a − n_a n_b/2 − ½·sign(U_a − n_a n_b/2)) / σ`` with the tie-corrected
    ``σ² = n_a n_b/12 · [(N + 1) − Σ(t³ − t)/(N(N − 1))]``.

    Parameters
    ----------
    counts_a, counts_b
        Answer counts over the same ascending answer levels: two vectors (one test), two 2-D
        arrays with one row per test (many tests at once), two Series indexed by answer code, or
        two DataFrames with answer codes as columns (aligned on the union of codes).

    Returns
    -------
    pandas.DataFrame
        One row per test with columns ``n_a``, ``n_b``, ``statistic`` (U of a; W in R),
        ``z`` (continuity-corrected), ``p_value`` (two-sided), ``effect_size`` (rank-biserial
        correlation ``2U/(n_a n_b) − 1`` = P(a > b) − P(a < b); positive when a tends to answer
        higher), ``effect_size_kind`` (``"rank_biserial"``). When either sample is empty or all
        answers are equal, z and p are NaN.
    """
    if isinstance(counts_a, pd.Series | pd.DataFrame) and isinstance(
        counts_b, pd.Series | pd.DataFrame
    ):
        if isinstance(counts_a, pd.Series):
            counts_a = counts_a.to_frame().T
        if isinstance(counts_b, pd.Series):
            counts_b = counts_b.to_frame().T
        cols = counts_a.columns.union(counts_b.columns).sort_values()
        counts_a = counts_a.reindex(columns=cols, fill_value=0).reset_index(drop=True)
        counts_b = counts_b.reindex(columns=cols, fill_value=0).reset_index(drop=True)
    a, _ = _count_matrix(counts_a, "counts_a")
    b, _ = _count_matrix(counts_b, "counts_b")
    try:
        a, b = np.broadcast_arrays(a, b)
    except ValueError:
        raise UsageError(
            f"counts_a {a.shape} and counts_b {b.shape} do not cover the same answer levels.",
            expected="the same number of answer levels (columns) in both",
        ) from None
    for arr in (a, b):
        if not (np.isfinite(arr).all() and (arr >= 0).all() and (arr == np.round(arr)).all()):
            raise UsageError("Answer counts must be whole numbers ≥ 0.")
    res = _mann_whitney(a, b)
    return pd.DataFrame(
        {
            "n_a": res["n_a"].astype(np.int64),
            "n_b": res["n_b"].astype(np.int64),
            "statistic": res["u"],
            "z": res["z"],
            "p_value": res["p_value"],
            "effect_size": res["r"],
            "effect_size_kind": EffectSize.RANK_BISERIAL.value,
        }
    )


_CHANGE_COLUMNS = [
    "test",
    "n_from",
    "n_to",
    "x_from",
    "x_to",
    "share_from",
    "share_to",
    "mean_from",
    "mean_to",
    "estimate",
    "estimate_kind",
    "se",
    "ci_low",
    "ci_high",
    "statistic",
    "z",
    "p_value",
    "p_method",
    "family",
    "family_size",
    "adjust_method",
    "p_adjusted",
    "effect_size",
    "effect_size_kind",
]


def _comparison_frame(
    keys: pd.DataFrame,
    ref: np.ndarray,
    cmp: np.ndarray,
    levels: np.ndarray,
    positive_from: float,
    confidence: float,
) -> pd.DataFrame:
    """Two-proportion and Mann–Whitney rows for comparing ``cmp`` against ``ref`` per key row."""
    positive = levels >= _threshold(positive_from)
    x_ref, x_cmp = ref[:, positive].sum(axis=1), cmp[:, positive].sum(axis=1)
    n_ref, n_cmp = ref.sum(axis=1), cmp.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean_ref, mean_cmp = ref @ levels / n_ref, cmp @ levels / n_cmp
    prop = _two_proportion(x_ref, n_ref, x_cmp, n_cmp, confidence)
    prop_method = _exact_where_poor(prop)
    mw = _mann_whitney(cmp, ref)
    few = np.minimum(n_ref, n_cmp) < MIN_N_RANK_TEST
    mw["p_value"] = np.where(few, np.nan, mw["p_value"])
    mw_method = np.where(few, PMethod.TOO_FEW_ANSWERS.value, PMethod.NORMAL.value).astype(object)
    common = {
        "n_from": n_ref.astype(np.int64),
        "n_to": n_cmp.astype(np.int64),
        "x_from": x_ref.astype(np.int64),
        "x_to": x_cmp.astype(np.int64),
        "share_from": prop["share_from"],
        "share_to": prop["share_to"],
        "mean_from": mean_ref,
        "mean_to": mean_cmp,
    }
    nan = np.full(n_ref.shape, np.nan)
    prop_rows = keys.assign(
        test=StatTest.TWO_PROPORTION.value,
        **common,
        estimate=prop["estimate"],
        estimate_kind="share_difference",
        se=prop["se"],
        ci_low=prop["ci_low"],
        ci_high=prop["ci_high"],
        statistic=prop["statistic"],
        z=prop["z"],
        p_value=prop["p_value"],
        p_method=prop_method,
        effect_size=prop["effect_size"],
        effect_size_kind=EffectSize.COHENS_H.value,
    )
    mw_rows = keys.assign(
        test=StatTest.MANN_WHITNEY.value,
        **common,
        estimate=mean_cmp - mean_ref,
        estimate_kind="mean_difference",
        se=nan,
        ci_low=nan,
        ci_high=nan,
        statistic=mw["u"],
        z=mw["z"],
        p_value=mw["p_value"],
        p_method=mw_method,
        effect_size=mw["r"],
        effect_size_kind=EffectSize.RANK_BISERIAL.value,
    )
    out = pd.concat([prop_rows, mw_rows], ignore_index=True)
    order = np.argsort(np.r_[np.arange(len(keys)), np.arange(len(keys))], kind="stable")
    return out.iloc[order].reset_index(drop=True)


def wave_change(
    counts: pd.DataFrame,
    by: str | Sequence[str],
    wave_col: str,
    wave_from: object,
    wave_to: object,
    positive_from: float = 4,
    *,
    family: Sequence[str] | None = None,
    adjust: str | AdjustMethod = AdjustMethod.HOLM,
    confidence: float = 0.95,
    answer_col: str = "answer",
    count_col: str = "count",
) -> pd.DataFrame:
    """Change between two waves per group: two-proportion z-test and Mann–Whitney.

    For each combination of ``by`` the answers of ``wave_to`` are compared with those of
    ``wave_from``: the share of positive answers (``answer ≥ positive_from``) by the pooled
    two-proportion z-test with Cohen's h (:func:`two_proportion_test`), and the whole answer
    distribution by Mann–Whitney, ``W`` as R ``wilcox.test(y_to, y_from, exact=FALSE,
    correct=TRUE)`` with the rank-biserial correlation (:func:`mann_whitney_from_counts`).

    Parameters
    ----------
    counts
        Long count table with the ``by`` columns, ``wave_col``, ``answer_col``, ``count_col``.
    by
        Group columns, e.g. ``["item", "faculty"]``. A group missing from one wave gets NaN
        tests.
    wave_col, wave_from, wave_to
        The wave column and the two waves compared (from = earlier, to = later).
    positive_from
        Smallest answer code that counts as positive (4 on a 5-point scale).
    family
        Columns of ``by`` whose combinations are the adjustment families; default: all groups
        of the call (per test). Pass ``["item"]`` for "all units for one item × wave pair".
    adjust
        ``"holm"`` (default), ``"bh"``, ``"bonferroni"`` or ``"none"``.
    confidence
        Level of the interval for the difference in shares.
    answer_col, count_col
        Names of the answer-code and count columns.

    Returns
    -------
    pandas.DataFrame
        Two rows per group (``test`` = ``"two_proportion_z"`` then ``"mann_whitney"``), columns:
        the ``by`` columns, ``wave_from``, ``wave_to``, ``test``, ``n_from``, ``n_to`` (valid
        answers), ``x_from``, ``x_to`` (positive answers), ``share_from``, ``share_to``,
        ``mean_from``, ``mean_to``, ``estimate`` (share difference to − from, or mean difference
        for Mann–Whitney), ``estimate_kind``, ``se``, ``ci_low``, ``ci_high`` (unpooled Wald,
        proportion rows only), ``statistic`` (pooled z, or W), ``z``, ``p_value``, ``family``,
        ``family_size``, ``adjust_method``, ``p_adjusted``, ``effect_size`` (Cohen's h, or
        rank-biserial r of to against from), ``effect_size_kind``.
    """
    by = _as_list(by)
    family = by[:0] if family is None else _as_list(family)
    _check_columns_free(_CHANGE_COLUMNS + ["wave_from", "wave_to"], by)
    _require_columns(counts, [*by, wave_col], "The count table")
    if wave_from == wave_to:
        raise UsageError(
            f"wave_from and wave_to are the same wave ({wave_from!r}).", column=wave_col
        )
    sub = counts.loc[counts[wave_col].isin([wave_from, wave_to])]
    table = _aggregate(sub, [*by, wave_col], answer_col, count_col)
    is_to = (table.keys[wave_col] == wave_to).to_numpy()
    group = _run_codes(table.keys, by)
    n_groups = int(group.max(initial=-1)) + 1
    ref = np.zeros((n_groups, table.x.shape[1]))
    cmp = np.zeros_like(ref)
    ref[group[~is_to]] = table.x[~is_to]
    cmp[group[is_to]] = table.x[is_to]
    first = np.r_[True, group[1:] != group[:-1]] if group.size else np.zeros(0, dtype=bool)
    keys = table.keys.loc[first, by].reset_index(drop=True)
    keys = keys.assign(wave_from=wave_from, wave_to=wave_to)
    out = _comparison_frame(keys, ref, cmp, table.levels, positive_from, confidence)
    out = _with_adjustment(out, family, adjust)
    return out[[*by, "wave_from", "wave_to", *_CHANGE_COLUMNS]]


_VS_REST_COLUMNS = [
    "test",
    "n_unit",
    "n_rest",
    "x_unit",
    "x_rest",
    "share_unit",
    "share_rest",
    "mean_unit",
    "mean_rest",
    "estimate",
    "estimate_kind",
    "se",
    "ci_low",
    "ci_high",
    "statistic",
    "z",
    "p_value",
    "p_method",
    "family",
    "family_size",
    "adjust_method",
    "p_adjusted",
    "effect_size",
    "effect_size_kind",
]


def unit_vs_rest(
    counts: pd.DataFrame,
    unit_col: str,
    by: str | Sequence[str] = (),
    positive_from: float = 4,
    *,
    family: Sequence[str] | None = None,
    adjust: str | AdjustMethod = AdjustMethod.HOLM,
    confidence: float = 0.95,
    answer_col: str = "answer",
    count_col: str = "count",
) -> pd.DataFrame:
    """Each unit against the rest of the university: two-proportion z-test and Mann–Whitney.

    Within each combination of ``by`` (e.g. wave × item), the answers of one unit are compared
    with the pooled answers of all other units of that combination, with the same tests as
    :func:`wave_change` ("from" = the rest, "to" = the unit).

    Parameters
    ----------
    counts
        Long count table with ``unit_col``, the ``by`` columns, ``answer_col``, ``count_col``.
    unit_col
        The unit column (faculty, programme, teacher, …).
    by
        Columns that define "the university" a unit is compared with, e.g. ``["wave", "item"]``.
    positive_from
        Smallest answer code that counts as positive.
    family
        Adjustment families; default ``by``: all units for one combination of ``by``.
    adjust, confidence, answer_col, count_col
        As in :func:`wave_change`.

    Returns
    -------
    pandas.DataFrame
        Two rows per unit (``test`` = ``"two_proportion_z"`` then ``"mann_whitney"``), columns:
        the ``by`` columns, ``unit_col``, ``test``, ``n_unit``, ``n_rest``, ``x_unit``,
        ``x_rest``, ``share_unit``, ``share_rest``, ``mean_unit``, ``mean_rest``, ``estimate``
        (unit − rest: share difference, or mean difference for Mann–Whitney),
        ``estimate_kind``, ``se``, ``ci_low``, ``ci_high``, ``statistic`` (pooled z, or U of the
        unit), ``z``, ``p_value``, ``family``, ``family_size``, ``adjust_method``,
        ``p_adjusted``, ``effect_size`` (Cohen's h, or rank-biserial r of unit against rest;
        positive when the unit is more positive), ``effect_size_kind``. A unit that is alone in
        its ``by`` group has NaN tests.
    """
    by = _as_list(by)
    family = by if family is None else _as_list(family)
    _check_columns_free(_VS_REST_COLUMNS, [*by, unit_col])
    fams = _families(counts, unit_col, by, answer_col, count_col)
    unit = fams.x
    rest = fams.totals[fams.fam] - unit
    out = _comparison_frame(
        fams.keys[[*by, unit_col]], rest, unit, fams.levels, positive_from, confidence
    )
    out = out.rename(
        columns={
            "n_from": "n_rest",
            "n_to": "n_unit",
            "x_from": "x_rest",
            "x_to": "x_unit",
            "share_from": "share_rest",
            "share_to": "share_unit",
            "mean_from": "mean_rest",
            "mean_to": "mean_unit",
        }
    )
    out = _with_adjustment(out, family, adjust)
    return out[[*by, unit_col, *_VS_REST_COLUMNS]]


# ---------------------------------------------------------------------------------------------
# Kruskal–Wallis and pairwise tests
# ---------------------------------------------------------------------------------------------


_KRUSKAL_COLUMNS = [
    "test",
    "n",
    "n_groups",
    "statistic",
    "df",
    "p_value",
    "family",
    "family_size",
    "adjust_method",
    "p_adjusted",
    "effect_size",
    "effect_size_kind",
]


def kruskal_from_counts(
    counts: pd.DataFrame,
    group_col: str,
    by: str | Sequence[str] = (),
    *,
    family: Sequence[str] | None = None,
    adjust: str | AdjustMethod = AdjustMethod.HOLM,
    answer_col: str = "answer",
    count_col: str = "count",
) -> pd.DataFrame:
    """Kruskal–Wallis test across the groups of ``group_col``, one test per ``by`` combination.

    ``H = 12/(N(N+1)) Σ_g n_g (R̄_g − (N+1)/2)² / (1 − Σ(t³ − t)/(N³ − N))`` with mid-ranks,
    ``df = groups − 1``, p from χ²(df): R ``kruskal.test`` and ``scipy.stats.kruskal``. Groups
    without answers are left out.

    Parameters
    ----------
    counts
        Long count table with ``group_col``, the ``by`` columns, ``answer_col``, ``count_col``.
    group_col
        The compared groups (faculty, programme, teacher, …).
    by
        One test per combination of these columns, e.g. ``["wave", "item"]``.
    family
        Adjustment families (columns of ``by``); default: all tests of the call form one family.
    adjust, answer_col, count_col
        As in :func:`wave_change`.

    Returns
    -------
    pandas.DataFrame
        One row per test, columns: the ``by`` columns, ``test`` (``"kruskal_wallis"``), ``n``
        (valid answers), ``n_groups`` (groups with answers), ``statistic`` (H), ``df``,
        ``p_value``, ``family``, ``family_size``, ``adjust_method``, ``p_adjusted``,
        ``effect_size`` (epsilon squared ``H/(N − 1)``), ``effect_size_kind``. Fewer than two
        groups, or all answers equal, give NaN.
    """
    by = _as_list(by)
    family = [] if family is None else _as_list(family)
    _check_columns_free(_KRUSKAL_COLUMNS, by)
    fams = _families(counts, group_col, by, answer_col, count_col)
    n_total = fams.n_total
    dev = (fams.x * (fams.mid - ((n_total + 1.0) / 2.0)[:, None])[fams.fam]).sum(axis=1)
    n_group = fams.x.sum(axis=1)
    between = np.zeros(0)
    if fams.fam.size:
        between = np.add.reduceat(dev**2 / n_group, fams.starts)
    with np.errstate(divide="ignore", invalid="ignore"):
        tie = 1.0 - fams.tie_term / (n_total**3 - n_total)
        h = 12.0 / (n_total * (n_total + 1.0)) * between / tie
        h = np.where((fams.size >= 2) & (tie > 0), h, np.nan)
        df = (fams.size - 1).astype(float)
        p_value = stats.chi2.sf(h, df)
        eps2 = h / (n_total - 1.0)
    keys = fams.keys.loc[fams.starts, by].reset_index(drop=True)
    out = keys.assign(
        test=StatTest.KRUSKAL_WALLIS.value,
        n=n_total.astype(np.int64),
        n_groups=fams.size.astype(np.int64),
        statistic=h,
        df=df,
        p_value=p_value,
        effect_size=eps2,
        effect_size_kind=EffectSize.EPSILON_SQUARED.value,
    )
    out = _with_adjustment(out, family, adjust)
    return out[[*by, *_KRUSKAL_COLUMNS]]


_PAIRWISE_COLUMNS = [
    "group_a",
    "group_b",
    "test",
    "n_a",
    "n_b",
    "mean_rank_a",
    "mean_rank_b",
    "statistic",
    "z",
    "p_value",
    "family",
    "family_size",
    "adjust_method",
    "p_adjusted",
    "effect_size",
    "effect_size_kind",
]


def _pairwise(
    counts: pd.DataFrame,
    group_col: str,
    by: list[str],
    family: Sequence[str] | None,
    adjust: str | AdjustMethod,
    answer_col: str,
    count_col: str,
    dunn: bool,
) -> pd.DataFrame:
    family = by if family is None else _as_list(family)
    _check_columns_free(_PAIRWISE_COLUMNS, by)
    fams = _families(counts, group_col, by, answer_col, count_col)
    ra, rb = _pairs(fams)
    f = fams.fam[ra]
    x_a, x_b = fams.x[ra], fams.x[rb]
    mw = _mann_whitney(x_a, x_b)
    n_a, n_b = mw["n_a"], mw["n_b"]
    mid = fams.mid[f]
    mean_rank_a = (x_a * mid).sum(axis=1) / n_a
    mean_rank_b = (x_b * mid).sum(axis=1) / n_b
    if dunn:
        n = fams.n_total[f]
        with np.errstate(divide="ignore", invalid="ignore"):
            var = (n * (n + 1.0) / 12.0 - fams.tie_term[f] / (12.0 * (n - 1.0))) * (
                1.0 / n_a + 1.0 / n_b
            )
            z = (mean_rank_a - mean_rank_b) / np.sqrt(var)
            z = np.where(var > 0, z, np.nan)
        statistic, p_value, test = z, 2.0 * stats.norm.sf(np.abs(z)), StatTest.DUNN
    else:
        z, statistic, p_value, test = mw["z"], mw["u"], mw["p_value"], StatTest.MANN_WHITNEY
    keys = fams.keys
    out = keys[by].take(ra).reset_index(drop=True)
    out = out.assign(
        group_a=keys[group_col].take(ra).to_numpy(),
        group_b=keys[group_col].take(rb).to_numpy(),
        test=test.value,
        n_a=n_a.astype(np.int64),
        n_b=n_b.astype(np.int64),
        mean_rank_a=mean_rank_a,
        mean_rank_b=mean_rank_b,
        statistic=statistic,
        z=z,
        p_value=p_value,
        effect_size=mw["r"],
        effect_size_kind=EffectSize.RANK_BISERIAL.value,
    )
    # the pairs of one by-combination are one family when family = by (one test here)
    codes = f if list(family) == list(by) else None
    out = _with_adjustment(out, family, adjust, codes)
    return out[[*by, *_PAIRWISE_COLUMNS]]


def dunn_pairwise(
    counts: pd.DataFrame,
    group_col: str,
    by: str | Sequence[str] = (),
    *,
    family: Sequence[str] | None = None,
    adjust: str | AdjustMethod = AdjustMethod.HOLM,
    answer_col: str = "answer",
    count_col: str = "count",
) -> pd.DataFrame:
    """Dunn's pairwise test after Kruskal–Wallis, for every pair of groups of each ``by`` combination.

    ``z = (R̄_a − R̄_b) / √([N(N+1)/12 − Σ(t³ − t)/(12(N − 1))] (1/n_a + 1/n_b))``, with the
    mid-ranks of the whole ``by`` combination (the Kruskal–Wallis ranking) and its tie term;
    ``p = 2Φ(−|z|)``. This is Dunn (1964) as in R ``dunn.test`` and ``FSA::dunnTest``.

    Parameters
    ----------
    counts, group_col, by, answer_col, count_col
        As in :func:`kruskal_from_counts`.
    family
        Adjustment families; default ``by``: the pairs of one Kruskal–Wallis test.
    adjust
        ``"holm"`` (default), ``"bh"``, ``"bonferroni"`` or ``"none"``.

    Returns
    -------
    pandas.DataFrame
        One row per pair (``group_a`` before ``group_b`` in sort order), columns: the ``by``
        columns, ``group_a``, ``group_b`` (values of ``group_col``), ``test`` (``"dunn"``),
        ``n_a``, ``n_b``, ``mean_rank_a``, ``mean_rank_b``, ``statistic`` (z, positive when a
        ranks higher), ``z``, ``p_value``, ``family``, ``family_size``, ``adjust_method``,
        ``p_adjusted``, ``effect_size`` (rank-biserial r of a against b from the pair's own
        answers), ``effect_size_kind``.
    """
    return _pairwise(
        counts, group_col, _as_list(by), family, adjust, answer_col, count_col, dunn=True
    )


def pairwise_mann_whitney(
    counts: pd.DataFrame,
    group_col: str,
    by: str | Sequence[str] = (),
    *,
    family: Sequence[str] | None = None,
    adjust: str | AdjustMethod = AdjustMethod.HOLM,
    answer_col: str = "answer",
    count_col: str = "count",
) -> pd.DataFrame:
    """Mann–Whitney test for every pair of groups of each ``by`` combination.

    Each pair is ranked on its own answers (unlike :func:`dunn_pairwise`), exactly as
    :func:`mann_whitney_from_counts` / ``scipy.stats.mannwhitneyu(a, b, method="asymptotic")``.

    Returns
    -------
    pandas.DataFrame
        Same columns as :func:`dunn_pairwise`, with ``test`` = ``"mann_whitney"``,
        ``statistic`` = U of ``group_a``, ``z`` the continuity-corrected z, and ``mean_rank_a``,
        ``mean_rank_b`` the mean ranks in the whole ``by`` combination.
    """
    return _pairwise(
        counts, group_col, _as_list(by), family, adjust, answer_col, count_col, dunn=False
    )


# ---------------------------------------------------------------------------------------------
# Trends over waves
# ---------------------------------------------------------------------------------------------


def _wave_grid(
    counts: pd.DataFrame,
    by: list[str],
    wave_col: str,
    waves: Sequence[object] | None,
    answer_col: str,
    count_col: str,
) -> tuple[pd.DataFrame, list[object], _Counts, np.ndarray, np.ndarray, int]:
    _require_columns(counts, [*by, wave_col], "The count table")
    if waves is None:
        waves = sorted(pd.unique(counts[wave_col].dropna()))
    waves = list(waves)
    if len(set(waves)) != len(waves):
        raise UsageError("waves lists a wave twice.", column=wave_col, value=waves)
    sub = counts.loc[counts[wave_col].isin(waves)]
    table = _aggregate(sub, [*by, wave_col], answer_col, count_col)
    group = _run_codes(table.keys, by)
    wave_index = (
        table.keys[wave_col].map({w: i for i, w in enumerate(waves)}).to_numpy(dtype=np.int64)
    )
    n_groups = int(group.max(initial=-1)) + 1
    first = np.r_[True, group[1:] != group[:-1]] if group.size else np.zeros(0, dtype=bool)
    keys = table.keys.loc[first, by].reset_index(drop=True)
    return keys, waves, table, group, wave_index, n_groups


_TREND_COLUMNS = [
    "test",
    "term",
    "n",
    "n_positive",
    "n_waves",
    "estimate",
    "se",
    "ci_low",
    "ci_high",
    "statistic",
    "p_value",
    "family",
    "family_size",
    "adjust_method",
    "p_adjusted",
    "odds_ratio",
    "odds_ratio_ci_low",
    "odds_ratio_ci_high",
    "effect_size",
    "effect_size_kind",
    "converged",
]


def _logistic_newton(
    successes: np.ndarray, trials: np.ndarray, x: np.ndarray, max_iter: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Vectorised Newton fit of logit P = b0 + b1·x per row of aggregated binomial data."""
    total_s, total_n = successes.sum(axis=1), trials.sum(axis=1)
    fit = ((trials > 0).sum(axis=1) >= 2) & (total_s > 0) & (total_s < total_n)
    with np.errstate(divide="ignore", invalid="ignore"):
        b0 = np.where(fit, special.logit(total_s / total_n), 0.0)
    b1 = np.zeros_like(b0)
    done = ~fit
    converged = np.zeros_like(fit)
    tol = 1e-13
    with np.errstate(all="ignore"):
        for _ in range(max_iter):
            active = ~done
            if not active.any():
                break
            prob = special.expit(b0[active, None] + b1[active, None] * x)
            t, s = trials[active], successes[active]
            w = t * prob * (1.0 - prob)
            r = s - t * prob
            g0, g1 = r.sum(axis=1), (r * x).sum(axis=1)
            h00, h01, h11 = w.sum(axis=1), (w * x).sum(axis=1), (w * x * x).sum(axis=1)
            det = h00 * h11 - h01 * h01
            d0 = (h11 * g0 - h01 * g1) / det
            d1 = (h00 * g1 - h01 * g0) / det
            b0[active] += d0
            b1[active] += d1
            small = (np.abs(d0) <= tol * (1.0 + np.abs(b0[active]))) & (
                np.abs(d1) <= tol * (1.0 + np.abs(b1[active]))
            )
            broken = ~np.isfinite(d0) | ~np.isfinite(d1)
            idx = np.flatnonzero(active)
            converged[idx[small & ~broken]] = True
            done[idx[small | broken]] = True
        prob = special.expit(b0[:, None] + b1[:, None] * x)
        w = trials * prob * (1.0 - prob)
        h00, h01, h11 = w.sum(axis=1), (w * x).sum(axis=1), (w * x * x).sum(axis=1)
        det = h00 * h11 - h01 * h01
        se0, se1 = np.sqrt(h11 / det), np.sqrt(h00 / det)
    bad = ~converged
    for arr in (b0, b1, se0, se1):
        arr[bad] = np.nan
    return b0, b1, se0, se1, converged


def trend_logistic(
    counts: pd.DataFrame,
    by: str | Sequence[str] = (),
    wave_col: str = "wave",
    waves: Sequence[object] | None = None,
    positive_from: float = 4,
    *,
    family: Sequence[str] | None = None,
    adjust: str | AdjustMethod = AdjustMethod.HOLM,
    confidence: float = 0.95,
    answer_col: str = "answer",
    count_col: str = "count",
    max_iter: int = 100,
) -> pd.DataFrame:
    """Logistic trend of the positive share over waves, per group, from answer counts.

    Fits ``logit P(answer ≥ positive_from) = b0 + b1 · wave_index`` by maximum likelihood on the
    aggregated binomial counts (successes and trials per wave), which is the same likelihood as
    R ``glm(top2 ~ wave_index, family = binomial)`` on one row per answer. Newton's method runs
    to machine precision (step ≤ 1e-13 relative) and the standard errors come from the Fisher
    information at the estimate; Wald ``z = b/se``, ``p = 2Φ(−|z|)``, CI ``b ± z·se``.

    Parameters
    ----------
    counts
        Long count table with the ``by`` columns, ``wave_col``, ``answer_col``, ``count_col``.
    by
        One model per combination of these columns, e.g. ``["item", "faculty"]``.
    wave_col, waves
        The wave column and the waves in time order; ``wave_index`` is the position in
        ``waves`` (0, 1, 2, …), so a group that skipped a wave keeps the gap. Rows of other
        waves are ignored. Default: the sorted distinct waves of ``counts``.
    positive_from
        Smallest answer code that counts as positive.
    family
        Adjustment families for the slope tests; default: all groups of the call.
    adjust, confidence, answer_col, count_col
        As in :func:`wave_change`.
    max_iter
        Newton iterations before a fit is declared not converged.

    Returns
    -------
    pandas.DataFrame
        Two rows per group (``term`` = ``"intercept"`` then ``"slope"``), columns: the ``by``
        columns, ``test`` (``"logistic_trend"``), ``term``, ``n`` (valid answers used),
        ``n_positive``, ``n_waves`` (waves with answers), ``estimate`` (log-odds), ``se``,
        ``ci_low``, ``ci_high``, ``statistic`` (Wald z), ``p_value``, ``family``,
        ``family_size``, ``adjust_method``, ``p_adjusted`` (slope rows only),
        ``odds_ratio``, ``odds_ratio_ci_low``, ``odds_ratio_ci_high`` (``exp`` of estimate and
        CI: the odds ratio per wave on slope rows, the odds at wave index 0 on intercept rows),
        ``effect_size`` (odds ratio per wave, slope rows), ``effect_size_kind``, ``converged``.
        Groups with fewer than two waves with answers, all or no answers positive, or complete
        separation have NaN estimates and ``converged = False``.
    """
    by = _as_list(by)
    family = [] if family is None else _as_list(family)
    _check_columns_free(_TREND_COLUMNS, by)
    q = _z_quantile(confidence)
    keys, waves, table, group, wave_index, n_groups = _wave_grid(
        counts, by, wave_col, waves, answer_col, count_col
    )
    n_waves = len(waves)
    trials = np.zeros((n_groups, n_waves))
    successes = np.zeros((n_groups, n_waves))
    trials[group, wave_index] = table.x.sum(axis=1)
    positive = table.levels >= _threshold(positive_from)
    successes[group, wave_index] = table.x[:, positive].sum(axis=1)
    x = np.arange(n_waves, dtype=float)
    b0, b1, se0, se1, converged = _logistic_newton(successes, trials, x, max_iter)
    est = np.column_stack([b0, b1]).ravel()
    se = np.column_stack([se0, se1]).ravel()
    with np.errstate(invalid="ignore", over="ignore"):
        z = est / se
        lo, hi = est - q * se, est + q * se
        p_value = 2.0 * stats.norm.sf(np.abs(z))
        odds, odds_lo, odds_hi = np.exp(est), np.exp(lo), np.exp(hi)
    rep = np.repeat(np.arange(n_groups), 2)
    is_slope = np.tile([False, True], n_groups)
    out = keys.iloc[rep].reset_index(drop=True)
    out = out.assign(
        test=StatTest.LOGISTIC_TREND.value,
        term=np.where(is_slope, "slope", "intercept"),
        n=trials.sum(axis=1)[rep].astype(np.int64),
        n_positive=successes.sum(axis=1)[rep].astype(np.int64),
        n_waves=(trials > 0).sum(axis=1)[rep].astype(np.int64),
        estimate=est,
        se=se,
        ci_low=lo,
        ci_high=hi,
        statistic=z,
        p_value=np.where(is_slope, p_value, np.nan),
        odds_ratio=odds,
        odds_ratio_ci_low=odds_lo,
        odds_ratio_ci_high=odds_hi,
        effect_size=np.where(is_slope, odds, np.nan),
        effect_size_kind=np.where(is_slope, EffectSize.ODDS_RATIO.value, None),
        converged=converged[rep],
    )
    out = _with_adjustment(out, family, adjust)
    out["p_value"] = p_value
    for col in ("family", "adjust_method"):
        out[col] = out[col].where(is_slope, None)
    out["family_size"] = np.where(is_slope, out["family_size"], 0)
    return out[[*by, *_TREND_COLUMNS]]


_MK_COLUMNS = [
    "test",
    "n_waves",
    "n",
    "statistic",
    "tau",
    "z",
    "p_value",
    "p_method",
    "sen_slope",
    "family",
    "family_size",
    "adjust_method",
    "p_adjusted",
    "effect_size",
    "effect_size_kind",
]


def _kendall_exact_sf(n: int) -> np.ndarray:
    """P(S ≥ s) for s = −n0 … n0 (index s + n0) of Kendall's S under no ties, n values."""
    dist = np.ones(1)
    for k in range(2, n + 1):  # convolve with uniform inversions 0..k-1
        dist = np.convolve(dist, np.full(k, 1.0 / k))
    # inversions i ↔ S = n0 − 2i; dist over i = 0..n0
    n0 = comb(n, 2)
    by_s = np.zeros(2 * n0 + 1)
    by_s[n0 - 2 * np.arange(n0 + 1) + n0] = dist
    return np.cumsum(by_s[::-1])[::-1]


def mann_kendall(
    counts: pd.DataFrame,
    by: str | Sequence[str] = (),
    wave_col: str = "wave",
    waves: Sequence[object] | None = None,
    *,
    min_waves: int = 3,
    exact_max_waves: int = 50,
    family: Sequence[str] | None = None,
    adjust: str | AdjustMethod = AdjustMethod.HOLM,
    answer_col: str = "answer",
    count_col: str = "count",
) -> pd.DataFrame:
    """Mann–Kendall trend test on the wave means of each group (an alternative for ≥ 3 waves).

    ``S = Σ_{i<j} sign(m_j − m_i)`` over the mean answers ``m`` of the waves with answers, in
    wave order. Without ties in the means the two-sided p-value is exact (the permutation
    distribution of Kendall's S, as ``scipy.stats.kendalltau(method="exact")``); with ties, or
    more than ``exact_max_waves`` waves, it is the normal approximation with the tie-corrected
    variance ``[n(n−1)(2n+5) − Σ t(t−1)(2t+5)]/18`` and continuity correction
    ``z = (S − sign S)/σ``. The test ignores how many answers each mean rests on; prefer
    :func:`trend_logistic` for the positive share.

    Parameters
    ----------
    counts, by, wave_col, waves, answer_col, count_col
        As in :func:`trend_logistic`.
    min_waves
        Groups with fewer waves with answers get NaN (at least 3).
    exact_max_waves
        Largest number of waves for the exact p-value.
    family, adjust
        Adjustment families (default: all groups of the call) and method.

    Returns
    -------
    pandas.DataFrame
        One row per group, columns: the ``by`` columns, ``test`` (``"mann_kendall"``),
        ``n_waves``, ``n`` (valid answers over all waves), ``statistic`` (S), ``tau``
        (Kendall's tau-b of mean against time), ``z``, ``p_value``, ``p_method``
        (``"exact"`` or ``"normal"``), ``sen_slope`` (median of pairwise slopes of the mean per
        wave), ``family``, ``family_size``, ``adjust_method``, ``p_adjusted``, ``effect_size``
        (tau), ``effect_size_kind`` (``"kendall_tau_b"``).
    """
    by = _as_list(by)
    family = [] if family is None else _as_list(family)
    min_waves = max(int(min_waves), 3)
    _check_columns_free(_MK_COLUMNS, by)
    keys, waves, table, group, wave_index, n_groups = _wave_grid(
        counts, by, wave_col, waves, answer_col, count_col
    )
    n_w = len(waves)
    n_rows = table.x.sum(axis=1)
    means = np.full((n_groups, n_w), np.nan)
    totals = np.zeros((n_groups, n_w))
    with np.errstate(divide="ignore", invalid="ignore"):
        means[group, wave_index] = np.where(n_rows > 0, table.x @ table.levels / n_rows, np.nan)
    totals[group, wave_index] = n_rows
    ok = ~np.isnan(means)
    n = ok.sum(axis=1)
    i, j = np.triu_indices(n_w, 1)
    pair_ok = ok[:, i] & ok[:, j]
    diff = means[:, j] - means[:, i]
    s = np.where(pair_ok, np.sign(diff), 0.0).sum(axis=1)
    # ties among the means: Σ over values of t(t−1)(2t+5) = Σ over elements of (t_i−1)(2t_i+5)
    eq = (means[:, :, None] == means[:, None, :]) & ok[:, :, None] & ok[:, None, :]
    t_i = eq.sum(axis=2).astype(float)
    tie_var = np.where(ok, (t_i - 1.0) * (2.0 * t_i + 5.0), 0.0).sum(axis=1)
    tie_pairs = np.where(ok, (t_i - 1.0), 0.0).sum(axis=1) / 2.0
    has_ties = tie_pairs > 0
    n0 = n * (n - 1) / 2.0
    var = (n * (n - 1.0) * (2.0 * n + 5.0) - tie_var) / 18.0
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (s - np.sign(s)) / np.sqrt(var)
        z = np.where(var > 0, z, np.nan)
        p_value = 2.0 * stats.norm.sf(np.abs(z))
        tau = s / np.sqrt(n0 * (n0 - tie_pairs))
        slopes = np.where(pair_ok, diff / (j - i), np.nan)
        sen = np.full(n_groups, np.nan)
        if slopes.shape[1]:
            rows = pair_ok.any(axis=1)
            sen[rows] = np.nanmedian(slopes[rows], axis=1)
    exact = ~has_ties & (n <= exact_max_waves) & (n >= min_waves)
    p_method = np.where(exact, "exact", "normal").astype(object)
    for k in np.unique(n[exact]):
        sf = _kendall_exact_sf(int(k))
        rows = exact & (n == k)
        s_abs = np.abs(s[rows]).astype(np.int64)
        n0k = comb(int(k), 2)
        p_value[rows] = np.minimum(1.0, 2.0 * sf[s_abs + n0k])
    valid = n >= min_waves
    for arr in (s, tau, z, p_value, sen):
        arr[~valid] = np.nan
    p_method[~valid] = None
    out = keys.assign(
        test=StatTest.MANN_KENDALL.value,
        n_waves=n.astype(np.int64),
        n=totals.sum(axis=1).astype(np.int64),
        statistic=s,
        tau=tau,
        z=z,
        p_value=p_value,
        p_method=p_method,
        sen_slope=sen,
        effect_size=tau,
        effect_size_kind=EffectSize.KENDALL_TAU_B.value,
    )
    out = _with_adjustment(out, family, adjust)
    return out[[*by, *_MK_COLUMNS]]
