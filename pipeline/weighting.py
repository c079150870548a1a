"""Post-stratification weights and design-based estimates with Taylor-linearised standard errors.

Pure functions on a **respondent-level frame** (one row per respondent, the post-stratum cell
columns, and item columns whose values may be NaN when the respondent skipped the item or
answered "not applicable") and a **headcount frame** (the population count per cell).

They reproduce R's ``survey`` package (checked to 1e-9 against ``tests/data/reference``):

Designs (one design per ``by`` group, e.g. per wave, holding **all** its respondents):

``equal_prob``
    ``svydesign(ids=~1, weights=~1)``: every weight is 1.
``weighted``
    ``svydesign(ids=~1, weights=~w)`` with ``w_i = N_h / n_h`` for the respondent's cell ``h``
    (``N_h`` headcount, ``n_h`` respondents of the cell in the group).
``poststratified``
    ``postStratify(svydesign(ids=~1, weights=~1), ~cells, headcounts)``: the same weights, with
    the variance reduced by calibration to the cell totals.

Estimates, for an item ``y`` (the answer for ``mean``; ``1{y >= positive_from}`` for
``pct_positive``), with ``S`` the respondents who answered the item:

* estimate ``ybar = sum_S w_i y_i / sum_S w_i``;
* scores ``z_i = w_i (y_i - ybar) / sum_S w_i`` for ``i`` in ``S`` and ``z_i = 0`` for
  respondents who skipped the item: **they stay in the design** (domain estimation);
* residuals ``e_i = z_i`` (``equal_prob``, ``weighted``) or ``e_i = z_i - zbar_h`` with ``zbar_h``
  the mean of ``z`` over all respondents of cell ``h`` (``poststratified``), then centred;
* variance ``V = n_resp / (n_resp - 1) * sum e_i^2`` over **all** ``n_resp`` respondents of the
  group (with replacement, no finite population correction: R's default), ``se = sqrt(V)``.

Intervals: ``svymean`` is the normal interval ``ybar +- z se``; ``svyciprop_logit`` is
``expit(logit p +- t(df) se / (p (1 - p)))`` and ``svyciprop_beta`` uses beta quantiles with the
effective sample size ``p (1 - p) / se^2``; both with ``df = n_resp - 1`` (the design's degrees
of freedom, not the number of answers). At ``p = 0`` or ``1`` the design SE is 0 and the two
``svyciprop`` intervals are undefined (NaN), as in R.

Percentages: rows with ``estimate == "pct_positive"`` carry ``value``, ``se``, ``ci_low`` and
``ci_high`` in percent (0-100).
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum

import numpy as np
import pandas as pd
from scipy import special, stats

from pipeline.errors import DeclarationError

__all__ = ["Design", "cell_weights", "respondent_weights", "weighted_estimates"]


class Design(StrEnum):
    """Survey designs as R ``survey`` builds them (see the module docstring)."""

    EQUAL_PROB = "equal_prob"
    WEIGHTED = "weighted"
    POSTSTRATIFIED = "poststratified"


def _check_columns(frame: pd.DataFrame, cols: Sequence[str], what: str) -> None:
    missing = [c for c in cols if c not in frame.columns]
    if missing:
        raise ValueError(f"{what} lacks column(s) {missing}")


def cell_weights(
    respondents: pd.DataFrame,
    headcounts: pd.DataFrame,
    cells: Sequence[str],
    by: Sequence[str] = (),
    headcount_col: str = "headcount",
) -> pd.DataFrame:
    """Headcount, respondents, response rate and post-stratification weight per cell.

    Parameters
    ----------
    respondents
        One row per respondent with the ``by`` and ``cells`` columns.
    headcounts
        Population count per cell: the ``cells`` columns, optionally some ``by`` columns (e.g.
        ``wave`` when headcounts change between waves) and ``headcount_col``. Without ``by``
        columns the same headcounts apply to every group.
    cells
        Post-stratum columns, e.g. ``["faculty", "level"]``.
    by
        Columns separating independent designs, e.g. ``["wave"]``.
    headcount_col
        Name of the headcount column.

    Returns
    -------
    pandas.DataFrame
        One row per ``by`` group (present among the respondents) x cell, sorted by them:

        ``by`` and ``cells`` columns;
        ``headcount``
            ``N_h``;
        ``respondents``
            ``n_h``, all respondents of the cell whatever they answered;
        ``response_rate``
            ``n_h / N_h``;
        ``weight``
            ``N_h / n_h`` (NaN for a cell without respondents).

    Raises
    ------
    pipeline.errors.DeclarationError
        When respondents fall in a cell without a headcount, a headcount is not positive, or a
        cell has more respondents than its headcount.
    ValueError
        On missing columns or duplicate headcount cells.
    """
    by, cells = list(by), list(cells)
    if not cells:
        raise ValueError("cells must name at least one post-stratum column")
    _check_columns(respondents, [*by, *cells], "respondent frame")
    _check_columns(headcounts, [*cells, headcount_col], "headcount frame")
    on_by = [c for c in by if c in headcounts.columns]
    hkeys = [*on_by, *cells]
    hc = headcounts[[*hkeys, headcount_col]].rename(columns={headcount_col: "headcount"})
    if hc.duplicated(hkeys).any():
        dup = hc.loc[hc.duplicated(hkeys, keep=False), hkeys].drop_duplicates().head(3)
        raise ValueError(f"headcount frame has several rows for cell(s) {dup.to_dict('records')}")
    groups = respondents[by].drop_duplicates() if by else None
    if groups is not None:
        hc = groups.merge(hc, on=on_by, how="inner") if on_by else groups.merge(hc, how="cross")
    resp = (
        respondents.groupby([*by, *cells], observed=True, dropna=False)
        .size()
        .rename("respondents")
        .reset_index()
    )
    table = hc.merge(resp, on=[*by, *cells], how="outer", indicator=True)
    orphans = table[table["_merge"] == "right_only"]
    if len(orphans):
        raise DeclarationError(
            f"{len(orphans)} cell(s) have respondents but no headcount, e.g. "
            f"{orphans[[*by, *cells]].head(3).to_dict('records')}; add them to the headcounts",
            column=headcount_col,
        )
    table = table.drop(columns="_merge")
    table["respondents"] = table["respondents"].fillna(0).astype("int64")
    big_n = pd.to_numeric(table["headcount"]).astype(float)
    if (big_n <= 0).any() or big_n.isna().any():
        raise DeclarationError(
            "headcounts must be positive numbers for every cell", column=headcount_col
        )
    over = table["respondents"] > big_n
    if over.any():
        raise DeclarationError(
            f"{int(over.sum())} cell(s) have more respondents than their headcount, e.g. "
            f"{table.loc[over, [*by, *cells]].head(3).to_dict('records')}; "
            "correct the headcounts",
            column=headcount_col,
        )
    table["headcount"] = big_n
    table["response_rate"] = table["respondents"] / big_n
    with np.errstate(divide="ignore"):
        table["weight"] = np.where(table["respondents"] > 0, big_n / table["respondents"], np.nan)
    return table.sort_values([*by, *cells], kind="stable").reset_index(drop=True)


def respondent_weights(
    respondents: pd.DataFrame,
    headcounts: pd.DataFrame,
    cells: Sequence[str],
    by: Sequence[str] = (),
    headcount_col: str = "headcount",
) -> pd.Series:
    """Post-stratification weight ``N_h / n_h`` of each respondent.

    Parameters are as for :func:`cell_weights`.

    Returns
    -------
    pandas.Series
        Named ``weight``, with the index of ``respondents``.

    Raises
    ------
    ValueError
        When a cell of a group has a headcount but no respondent: the weights could not add up
        to the population. Collapse such cells (e.g. merge levels) or leave them out of the
        headcounts.
    """
    table = cell_weights(respondents, headcounts, cells, by, headcount_col)
    empty = table[table["respondents"] == 0]
    if len(empty):
        raise ValueError(
            f"{len(empty)} cell(s) have a headcount but no respondents, e.g. "
            f"{empty[[*by, *cells]].head(3).to_dict('records')}; collapse these cells with a "
            "neighbour or drop them from the headcounts before post-stratifying"
        )
    keys = [*by, *cells]
    merged = respondents[keys].merge(table[[*keys, "weight"]], on=keys, how="left")
    return pd.Series(merged["weight"].to_numpy(), index=respondents.index, name="weight")


def _codes(frame: pd.DataFrame, cols: Sequence[str]) -> np.ndarray:
    if not cols:
        return np.zeros(len(frame), dtype=np.int64)
    return frame.groupby(list(cols), sort=True, observed=True, dropna=False).ngroup().to_numpy()


def _linearised(
    y: np.ndarray, w: np.ndarray, gid: np.ndarray, cid: np.ndarray | None, n_groups: int
) -> tuple[np.ndarray, np.ndarray]:
    """Weighted mean and linearisation SE per group (R survey conventions)."""
    ok = ~np.isnan(y)
    y0 = np.where(ok, y, 0.0)
    wo = np.where(ok, w, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        sw = np.bincount(gid, weights=wo, minlength=n_groups)
        ybar = np.bincount(gid, weights=wo * y0, minlength=n_groups) / sw
        z = np.where(ok, wo * (y0 - ybar[gid]) / sw[gid], 0.0)
        if cid is not None:
            zbar = np.bincount(cid, weights=z) / np.bincount(cid)
            z = z - zbar[cid]
        n_resp = np.bincount(gid, minlength=n_groups).astype(float)
        z = z - (np.bincount(gid, weights=z, minlength=n_groups) / n_resp)[gid]
        var = n_resp / (n_resp - 1.0) * np.bincount(gid, weights=z * z, minlength=n_groups)
        var = np.where(n_resp > 1, var, np.nan)
    return ybar, np.sqrt(var)


def weighted_estimates(
    respondents: pd.DataFrame,
    items: Sequence[str],
    cells: Sequence[str],
    headcounts: pd.DataFrame | None = None,
    by: Sequence[str] = (),
    designs: Sequence[Design | str] | Design | str = (
        Design.EQUAL_PROB,
        Design.WEIGHTED,
        Design.POSTSTRATIFIED,
    ),
    positive_from: int = 4,
    confidence: float = 0.95,
    headcount_col: str = "headcount",
) -> pd.DataFrame:
    """Item means and % positive under equal-probability, weighted and post-stratified designs.

    Parameters
    ----------
    respondents
        One row per respondent: ``by`` columns, ``cells`` columns and the ``items`` (numeric,
        NaN = no valid answer). Every respondent counts in the design of its ``by`` group,
        whether or not it answered a given item.
    items
        Item columns to estimate.
    cells
        Post-stratum columns (e.g. ``["faculty", "level"]``).
    headcounts
        Population per cell (see :func:`cell_weights`); may be omitted when only
        ``equal_prob`` is requested.
    by
        One design per group of these columns (e.g. ``["wave"]``).
    designs
        One or several of ``"equal_prob"``, ``"weighted"``, ``"poststratified"``.
    positive_from
        An answer ``>= positive_from`` counts as positive.
    confidence
        Interval level.
    headcount_col
        Name of the headcount column in ``headcounts``.

    Returns
    -------
    pandas.DataFrame
        Tidy, one row per estimate, ordered by the ``by`` groups, then item (as given),
        design (as given), estimate and method; columns:

        ``by`` columns, ``item``, ``design``;
        ``estimate``
            ``"mean"`` or ``"pct_positive"``;
        ``method``
            ``"svymean"`` (both estimates), ``"svyciprop_logit"``, ``"svyciprop_beta"``
            (``pct_positive`` only);
        ``n_respondents``
            respondents in the design (the group);
        ``n``
            respondents with a valid answer to the item;
        ``population``
            total headcount of the group's cells (NaN without headcounts);
        ``value``, ``se``, ``ci_low``, ``ci_high``
            estimate, linearised SE and interval (percent for ``pct_positive``);
        ``df``
            degrees of freedom of the interval: ``inf`` for ``svymean`` (normal quantile),
            ``n_respondents - 1`` for ``svyciprop_*``.

    Raises
    ------
    ValueError
        On missing columns, unknown designs, or empty cells (see :func:`respondent_weights`).
    pipeline.errors.DeclarationError
        On headcount problems (see :func:`cell_weights`).
    """
    by, cells, items = list(by), list(cells), list(items)
    if isinstance(designs, str):
        designs = [designs]
    designs = [Design(d) for d in designs]
    confidence = float(confidence)
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie strictly between 0 and 1, got {confidence!r}")
    _check_columns(respondents, [*by, *cells, *items], "respondent frame")
    needs_weights = any(d is not Design.EQUAL_PROB for d in designs)
    if needs_weights and headcounts is None:
        raise ValueError("weighted and poststratified designs need headcounts")

    frame = respondents.reset_index(drop=True)
    gid = _codes(frame, by)
    first = np.unique(gid, return_index=True)[1]
    keys = frame[by].iloc[first].reset_index(drop=True) if by else pd.DataFrame(index=[0])
    n_groups = len(first)
    cid = _codes(frame, [*by, *cells])
    n_resp = np.bincount(gid, minlength=n_groups).astype(float)

    population = np.full(n_groups, np.nan)
    w = np.ones(len(frame))
    if headcounts is not None:
        table = cell_weights(frame, headcounts, cells, by, headcount_col)
        if by:
            tot = table.groupby(by, sort=False, observed=True, dropna=False)["headcount"].sum()
            population = keys.merge(tot.reset_index(), on=by, how="left")["headcount"].to_numpy()
        else:
            population = np.array([table["headcount"].sum()])
        if needs_weights:
            w = respondent_weights(frame, headcounts, cells, by, headcount_col).to_numpy()

    alpha = 1.0 - confidence
    z = stats.norm.ppf(1.0 - alpha / 2.0)
    df_prop = n_resp - 1.0
    with np.errstate(invalid="ignore", divide="ignore"):
        t = np.where(df_prop > 0, stats.t.ppf(1.0 - alpha / 2.0, np.maximum(df_prop, 1)), np.nan)

    pieces = []
    for item in items:
        y = pd.to_numeric(frame[item]).to_numpy(dtype=float)
        ok = ~np.isnan(y)
        n_ans = np.bincount(gid, weights=ok.astype(float), minlength=n_groups)
        top = np.where(ok, (y >= positive_from).astype(float), np.nan)
        for design in designs:
            wd = np.ones(len(frame)) if design is Design.EQUAL_PROB else w
            cd = cid if design is Design.POSTSTRATIFIED else None
            mean, se_mean = _linearised(y, wd, gid, cd, n_groups)
            p, se_p = _linearised(top, wd, gid, cd, n_groups)
            with np.errstate(invalid="ignore", divide="ignore"):
                interior = (p > 0) & (p < 1)
                half = t * se_p / (p * (1.0 - p))
                lg = special.logit(np.where(interior, p, 0.5))
                lg_lo = np.where(interior, special.expit(lg - half), np.nan)
                lg_hi = np.where(interior, special.expit(lg + half), np.nan)
                n_eff = p * (1.0 - p) / se_p**2
                b_lo = np.where(
                    interior, stats.beta.ppf(alpha / 2.0, n_eff * p, n_eff * (1 - p) + 1), np.nan
                )
                b_hi = np.where(
                    interior,
                    stats.beta.ppf(1.0 - alpha / 2.0, n_eff * p + 1, n_eff * (1 - p)),
                    np.nan,
                )
            rows = [
                ("mean", "svymean", mean, se_mean, mean - z * se_mean, mean + z * se_mean, np.inf),
                ("pct_positive", "svymean", p, se_p, p - z * se_p, p + z * se_p, np.inf),
                ("pct_positive", "svyciprop_logit", p, se_p, lg_lo, lg_hi, df_prop),
                ("pct_positive", "svyciprop_beta", p, se_p, b_lo, b_hi, df_prop),
            ]
            for estimate, method, val, se, lo, hi, df in rows:
                scale = 100.0 if estimate == "pct_positive" else 1.0
                piece = keys.copy()
                piece["item"] = item
                piece["design"] = design.value
                piece["estimate"] = estimate
                piece["method"] = method
                piece["n_respondents"] = n_resp.astype("int64")
                piece["n"] = n_ans.astype("int64")
                piece["population"] = population
                piece["value"] = scale * val
                piece["se"] = scale * se
                piece["ci_low"] = scale * lo
                piece["ci_high"] = scale * hi
                piece["df"] = np.broadcast_to(df, (n_groups,)).astype(float)
                pieces.append(piece)
    out = pd.concat(pieces, ignore_index=True)
    if by:
        out = out.sort_values(by, kind="stable").reset_index(drop=True)
    return out
