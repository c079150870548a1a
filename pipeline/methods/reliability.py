"""Scale reliability (Cronbach's alpha) and per-respondent dimension scores.

Pure functions on a **wide respondent x item frame**: one row per respondent, one numeric column
per item, NaN for a missing or "not applicable" answer. Reverse-coded items are flipped with
``low + high - x`` (``points + 1 - x`` on a scale coded 1..points) before anything is
computed; the flip of a scale's items only changes signs of covariances, so alpha does not
depend on where the scale starts.

Missing answers
---------------
Cronbach's alpha, alpha if item deleted and the corrected item-total correlations of a scale use
**listwise deletion**: only respondents who answered every item of that scale (``n`` in the
output). With many items and a few per cent missing per item this can drop most respondents, so
``n`` is always reported. Dimension scores instead use the respondent's available items when at
least ``min_share`` of them are answered.

Definitions (``k`` items, item variances ``s_j^2`` and total-score variance ``s_T^2``, all with
denominator ``n - 1``)::

    alpha = k / (k - 1) * (1 - sum_j s_j^2 / s_T^2)

*alpha if item deleted* is alpha of the other ``k - 1`` items on the same respondents, and the
*corrected item-total correlation* is Pearson's correlation of item ``j`` with the sum of the
other items.
"""

from __future__ import annotations

from collections.abc import Collection, Hashable, Mapping, Sequence

import numpy as np
import pandas as pd

__all__ = ["cronbach_alpha", "dimension_scores", "item_total_statistics", "reliability_tables"]


def _scale_matrix(
    wide: pd.DataFrame,
    items: Sequence[str],
    reverse: Collection[str],
    points: int,
    name: str,
    low: int = 1,
) -> tuple[np.ndarray, np.ndarray]:
    """(answers, reversed): the items' answers as a respondents × items float matrix, as
    given (not flipped; read-only, often a view of the frame's memory), and which of its
    columns are reverse-coded. Consumers flip arithmetically (``points + 1 - x``) rather
    than in a copy of the matrix."""
    missing = [c for c in items if c not in wide.columns]
    if missing:
        raise ValueError(f"scale {name!r}: item column(s) {missing} are not in the frame")
    cols = wide[list(items)]
    if not all(pd.api.types.is_numeric_dtype(t) for t in cols.dtypes):
        cols = cols.apply(pd.to_numeric)
    x = cols.to_numpy(dtype=float)
    x = x.view()
    x.flags.writeable = False
    # smallest and largest answer, missing (NaN) left out: two passes, no temporaries
    high = low + points - 1
    if x.size and (np.fmin.reduce(x, axis=None) < low or np.fmax.reduce(x, axis=None) > high):
        raise ValueError(
            f"scale {name!r}: answers must lie in {low}..{high}; recode 'not applicable' to missing"
        )
    return x, np.array([c in reverse for c in items], dtype=bool)


def _scale_matrices(
    wide: pd.DataFrame,
    scales: Mapping[Hashable, Sequence[str]],
    reverse: Collection[str],
    points: int,
    low: int = 1,
) -> dict[Hashable, tuple[np.ndarray, np.ndarray]]:
    """:func:`_scale_matrix` of every scale, from one conversion of all their items (a
    scale's matrix is then a selection of columns); the same errors, naming the scale."""
    items = list(dict.fromkeys(c for scale_items in scales.values() for c in scale_items))
    try:
        x, flip = _scale_matrix(wide, items, reverse, points, "", low)
    except ValueError:  # name the first scale at fault
        for name, scale_items in scales.items():
            _scale_matrix(wide, scale_items, reverse, points, name, low)
        raise
    at = {c: i for i, c in enumerate(items)}
    out = {}
    for name, scale_items in scales.items():
        cols = [at[c] for c in scale_items]
        first = cols[0] if cols else 0
        if cols == list(range(first, first + len(cols))):  # a run of columns: a view
            cols = slice(first, first + len(cols))
        out[name] = (x[:, cols], flip[cols])
    return out


def _groups(wide: pd.DataFrame, by: Sequence[str]):
    if not by:
        yield {}, wide
        return
    for key, sub in wide.groupby(list(by), sort=True, observed=True, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        yield dict(zip(by, key, strict=True)), sub


def _alpha_parts(x: np.ndarray, flip: np.ndarray):
    """Covariance-based pieces on the listwise-complete rows of ``x``, with the ``flip``
    columns reverse-coded: flipping an item (``c - x``) only changes the sign of its
    covariances with the others."""
    # column-major: np.cov of respondents x items is then one BLAS call (10x faster)
    full = np.asfortranarray(x[~np.isnan(x).any(axis=1)])
    n, k = full.shape
    if n < 2:
        return n, None
    cov = np.atleast_2d(np.cov(full, rowvar=False, ddof=1))
    if flip.any():
        sign = np.where(flip, -1.0, 1.0)
        cov = cov * np.outer(sign, sign)
    return n, cov


def _alpha_from_cov(cov: np.ndarray) -> float:
    k = cov.shape[0]
    total = cov.sum()
    if k < 2 or not total > 0:
        return np.nan
    return k / (k - 1) * (1.0 - np.trace(cov) / total)


def cronbach_alpha(
    wide: pd.DataFrame,
    scales: Mapping[str, Sequence[str]],
    reverse: Collection[str] = (),
    points: int = 5,
    by: Sequence[str] = (),
    min_alpha: float = 0.7,
) -> pd.DataFrame:
    """Cronbach's alpha per scale (and per group), with listwise deletion.

    Parameters
    ----------
    wide
        Respondent x item frame (NaN = missing), plus any ``by`` columns.
    scales
        Scale name -> its item columns (at least two each).
    reverse
        Reverse-coded item columns, flipped as ``points + 1 - x``.
    points
        Number of answer codes on the scale.
    by
        Optional grouping columns (e.g. ``["wave"]``); one row per group and scale.
    min_alpha
        Alpha below this is flagged.

    Returns
    -------
    pandas.DataFrame
        Columns: the ``by`` columns, then

        ``scale``
            scale name;
        ``k``
            number of items;
        ``n``
            respondents used (all ``k`` items answered);
        ``alpha``
            Cronbach's alpha (NaN when ``n < 2`` or the total score does not vary);
        ``low_alpha``
            ``alpha < min_alpha`` (False when alpha is NaN).

    Raises
    ------
    ValueError
        When a scale has fewer than two items, an item column is missing, or an answer lies
        outside ``1..points``.
    """
    return reliability_tables(wide, scales, reverse, points, by, min_alpha, items=False)[0]


def item_total_statistics(
    wide: pd.DataFrame,
    scales: Mapping[str, Sequence[str]],
    reverse: Collection[str] = (),
    points: int = 5,
    by: Sequence[str] = (),
) -> pd.DataFrame:
    """Alpha if item deleted and corrected item-total correlation, per scale item.

    Both use the same listwise-complete respondents as the scale's alpha in
    :func:`cronbach_alpha`.

    Parameters
    ----------
    wide, scales, reverse, points, by
        As for :func:`cronbach_alpha`.

    Returns
    -------
    pandas.DataFrame
        One row per group, scale and item; columns: the ``by`` columns, then

        ``scale``, ``item``
            names;
        ``reversed``
            whether the item was flipped;
        ``n``
            respondents used;
        ``alpha_if_deleted``
            alpha of the scale without this item (NaN when fewer than two items remain);
        ``item_total_corr``
            Pearson correlation of the item with the sum of the other items.
    """
    return reliability_tables(wide, scales, reverse, points, by, alpha=False)[1]


def reliability_tables(
    wide: pd.DataFrame,
    scales: Mapping[str, Sequence[str]],
    reverse: Collection[str] = (),
    points: int = 5,
    by: Sequence[str] = (),
    min_alpha: float = 0.7,
    *,
    alpha: bool = True,
    items: bool = True,
    low: int = 1,
) -> tuple[pd.DataFrame | None, pd.DataFrame | None]:
    """(:func:`cronbach_alpha`, :func:`item_total_statistics`) with each scale's
    covariance matrix computed once for both; a table not asked for is None."""
    by = list(by)
    _check_scales(scales)
    alpha_rows, item_rows = [], []
    for key, sub in _groups(wide, by):
        matrices = _scale_matrices(sub, scales, reverse, points, low)
        for name, scale_items in scales.items():
            n, cov = _alpha_parts(*matrices[name])
            if alpha:
                a = np.nan if cov is None else _alpha_from_cov(cov)
                alpha_rows.append({**key, "scale": name, "k": len(scale_items), "n": n, "alpha": a})
            if items:
                item_rows.extend(_item_rows(key, name, scale_items, reverse, n, cov))
    alpha_out = items_out = None
    if alpha:
        alpha_out = pd.DataFrame(alpha_rows, columns=[*by, "scale", "k", "n", "alpha"])
        alpha_out["alpha"] = alpha_out["alpha"].astype(float)
        alpha_out["low_alpha"] = (alpha_out["alpha"] < min_alpha).fillna(False).astype(bool)
    if items:
        cols = [*by, "scale", "item", "reversed", "n", "alpha_if_deleted", "item_total_corr"]
        items_out = pd.DataFrame(item_rows, columns=cols)
        items_out["alpha_if_deleted"] = items_out["alpha_if_deleted"].astype(float)
        items_out["item_total_corr"] = items_out["item_total_corr"].astype(float)
    return alpha_out, items_out


def _item_rows(
    key: dict, name, items: Sequence[str], reverse: Collection[str], n: int, cov: np.ndarray | None
) -> list[dict]:
    rows = []
    k = len(items)
    for j, item in enumerate(items):
        if cov is None:
            a_del, r_it = np.nan, np.nan
        else:
            keep = [i for i in range(k) if i != j]
            a_del = _alpha_from_cov(cov[np.ix_(keep, keep)])
            rest_var = cov[np.ix_(keep, keep)].sum()
            cov_jr = cov[j, keep].sum()
            denom = np.sqrt(cov[j, j] * rest_var)
            r_it = cov_jr / denom if denom > 0 else np.nan
        rows.append(
            {
                **key,
                "scale": name,
                "item": item,
                "reversed": item in reverse,
                "n": n,
                "alpha_if_deleted": a_del,
                "item_total_corr": r_it,
            }
        )
    return rows


def _check_scales(scales: Mapping[Hashable, Sequence[str]]) -> None:
    for name, items in scales.items():
        if len(items) < 2:
            raise ValueError(f"scale {name!r} needs at least two items, got {list(items)}")
        if len(set(items)) != len(items):
            raise ValueError(f"scale {name!r} lists an item twice: {list(items)}")


def dimension_scores(
    wide: pd.DataFrame,
    dimensions: Mapping[str, Sequence[str]],
    reverse: Collection[str] = frozenset(),
    points: int = 5,
    min_share: float = 0.5,
    low: int = 1,
) -> pd.DataFrame:
    """Per-respondent dimension scores: the mean of the dimension's answered items.

    A respondent gets a score when at least ``min_share`` of the dimension's items are answered
    (default: at least half), else NaN. Reverse-coded items are flipped (``low + high - x``)
    first.

    Parameters
    ----------
    wide
        Respondent x item frame (NaN = missing).
    dimensions
        Dimension name -> its item columns (at least one each).
    reverse
        Reverse-coded item columns.
    points
        Number of answer codes.
    low
        The first answer code (1, or 0 for a scale coded 0..points-1).
    min_share
        Minimum share of answered items, in (0, 1].

    Returns
    -------
    pandas.DataFrame
        Same index as ``wide``; one float column per dimension, named after it.

    Raises
    ------
    ValueError
        On unknown item columns, an empty dimension, answers outside ``1..points`` or
        ``min_share`` outside (0, 1].
    """
    if not 0.0 < min_share <= 1.0:
        raise ValueError(f"min_share must lie in (0, 1], got {min_share!r}")
    out = {}
    for name, items in dimensions.items():
        if len(items) == 0:
            raise ValueError(f"dimension {name!r} has no items")
    matrices = _scale_matrices(wide, dimensions, reverse, points, low)
    for name, items in dimensions.items():
        x, flip = matrices[name]
        present = ~np.isnan(x)
        answered = present.sum(axis=1)
        # the sum of the answers with reverse items flipped: sum(x) over the others plus
        # sum(low + high - x) over the reversed ones
        total = np.where(present, x, 0.0) @ np.where(flip, -1.0, 1.0)
        if flip.any():
            total += (2 * low + points - 1) * present[:, flip].sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            score = total / answered
        enough = answered >= min_share * len(items) - 1e-9
        out[name] = np.where(enough & (answered > 0), score, np.nan)
    return pd.DataFrame(out, index=wide.index, columns=list(dimensions))
