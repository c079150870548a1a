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

from collections.abc import Mapping, Sequence
from enum import StrEnum

import numpy as np
import pandas as pd
from scipy import special, stats

from pipeline.errors import DeclarationError

__all__ = [
    "Design",
    "cell_weights",
    "respondent_weights",
    "weighted_estimates",
    "weighted_estimates_from_counts",
]


class Design(StrEnum):
    """Survey designs as R ``survey`` builds them (see the module docstring)."""

    EQUAL_PROB = "equal_prob"
    WEIGHTED = "weighted"
    POSTSTRATIFIED = "poststratified"


def _threshold(positive_from: int | Mapping[str, int], item: str) -> float:
    if isinstance(positive_from, Mapping):
        return float(positive_from[item])
    return float(positive_from)


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
    resp = (
        respondents.groupby([*by, *cells], observed=True, dropna=False)
        .size()
        .rename("respondents")
        .reset_index()
    )
    groups = respondents[by].drop_duplicates() if by else None
    return _cell_table(resp, groups, headcounts, cells, by, headcount_col)


def _cell_table(
    resp: pd.DataFrame,
    groups: pd.DataFrame | None,
    headcounts: pd.DataFrame,
    cells: list[str],
    by: list[str],
    headcount_col: str,
) -> pd.DataFrame:
    """:func:`cell_weights` from respondents per cell (``by``, ``cells``, ``respondents``)."""
    _check_columns(headcounts, [*cells, headcount_col], "headcount frame")
    on_by = [c for c in by if c in headcounts.columns]
    hkeys = [*on_by, *cells]
    hc = headcounts[[*hkeys, headcount_col]].rename(columns={headcount_col: "headcount"})
    if hc.duplicated(hkeys).any():
        dup = hc.loc[hc.duplicated(hkeys, keep=False), hkeys].drop_duplicates().head(3)
        raise ValueError(f"headcount frame has several rows for cell(s) {dup.to_dict('records')}")
    if groups is not None:
        hc = groups.merge(hc, on=on_by, how="inner") if on_by else groups.merge(hc, how="cross")
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


def _check_no_empty_cells(table: pd.DataFrame, keys: list[str]) -> None:
    empty = table[table["respondents"] == 0]
    if len(empty):
        raise ValueError(
            f"{len(empty)} cell(s) have a headcount but no respondents, e.g. "
            f"{empty[keys].head(3).to_dict('records')}; collapse these cells with a "
            "neighbour or drop them from the headcounts before post-stratifying"
        )


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
    _check_no_empty_cells(table, [*by, *cells])
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
    positive_from: int | Mapping[str, int] = 4,
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
        An answer ``>= positive_from`` counts as positive: one code for every item, or a
        mapping item -> code (items on scales of different lengths).
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

    def linearise(item: str, design: Design):
        y = pd.to_numeric(frame[item]).to_numpy(dtype=float)
        ok = ~np.isnan(y)
        n_ans = np.bincount(gid, weights=ok.astype(float), minlength=n_groups)
        top = np.where(ok, (y >= _threshold(positive_from, item)).astype(float), np.nan)
        wd = np.ones(len(frame)) if design is Design.EQUAL_PROB else w
        cd = cid if design is Design.POSTSTRATIFIED else None
        mean, se_mean = _linearised(y, wd, gid, cd, n_groups)
        p, se_p = _linearised(top, wd, gid, cd, n_groups)
        return n_ans, mean, se_mean, p, se_p

    return _estimate_table(keys, by, items, designs, linearise, n_resp, population, confidence)


def weighted_estimates_from_counts(
    counts: pd.DataFrame,
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
    positive_from: int | Mapping[str, int] = 4,
    confidence: float = 0.95,
    headcount_col: str = "headcount",
) -> pd.DataFrame:
    """:func:`weighted_estimates` from answer counts instead of one row per respondent.

    Within a post-stratum cell every respondent has the same weight, so the estimates and
    their linearised variances depend on the respondents only through how many in each
    cell gave each answer (and how many are in the cell). The result equals
    :func:`weighted_estimates` on the respondents the counts describe, up to the rounding
    of sums taken in another order, at a cost that does not grow with the respondents.

    Parameters
    ----------
    counts
        Valid answers: the ``by`` and ``cells`` columns, ``item``, ``answer`` (numeric) and
        ``count`` (respondents of the cell who gave that answer to that item). Missing and
        "not applicable" answers are not listed.
    respondents
        All respondents per cell, whatever they answered: the ``by`` and ``cells`` columns
        and ``respondents``. Each (``by``, ``cells``) combination appears once.
    items, cells, headcounts, by, designs, positive_from, confidence, headcount_col
        As for :func:`weighted_estimates`.

    Returns
    -------
    pandas.DataFrame
        As :func:`weighted_estimates`.

    Raises
    ------
    ValueError
        On missing columns, unknown designs, empty cells, duplicate cells in
        ``respondents`` or answers in a cell without respondents.
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
    keys_cols = [*by, *cells]
    _check_columns(respondents, [*keys_cols, "respondents"], "respondents frame")
    _check_columns(counts, [*keys_cols, "item", "answer", "count"], "counts frame")
    needs_weights = any(d is not Design.EQUAL_PROB for d in designs)
    if needs_weights and headcounts is None:
        raise ValueError("weighted and poststratified designs need headcounts")

    sizes = respondents[[*keys_cols, "respondents"]]
    sizes = sizes[sizes["respondents"] > 0].reset_index(drop=True)
    if sizes.duplicated(keys_cols).any():
        raise ValueError("respondents frame lists a cell twice")
    # groups in the order weighted_estimates gives them (sorted, missing last)
    gid_c = _codes(sizes, by)
    first = np.unique(gid_c, return_index=True)[1]
    keys = sizes[by].iloc[first].reset_index(drop=True) if by else pd.DataFrame(index=[0])
    n_groups = len(first)
    n_c = sizes["respondents"].to_numpy(dtype=float)
    n_resp = np.bincount(gid_c, weights=n_c, minlength=n_groups)

    population = np.full(n_groups, np.nan)
    w_c = np.ones(len(sizes))
    if headcounts is not None:
        groups = sizes[by].drop_duplicates() if by else None
        table = _cell_table(sizes, groups, headcounts, cells, by, headcount_col)
        if by:
            tot = table.groupby(by, sort=False, observed=True, dropna=False)["headcount"].sum()
            population = keys.merge(tot.reset_index(), on=by, how="left")["headcount"].to_numpy()
        else:
            population = np.array([table["headcount"].sum()])
        if needs_weights:
            _check_no_empty_cells(table, keys_cols)
            w_c = (
                sizes[keys_cols]
                .merge(table[[*keys_cols, "weight"]], on=keys_cols, how="left")["weight"]
                .to_numpy()
            )

    # every count row -> its cell
    c = counts[[*keys_cols, "item", "answer", "count"]]
    c = c[c["item"].isin(items) & (c["count"] > 0)]
    cell_of = sizes[keys_cols].assign(_cell=np.arange(len(sizes)))
    c = c.merge(cell_of, on=keys_cols, how="left")
    if c["_cell"].isna().any():
        raise ValueError("counts hold answers in a cell without respondents")
    by_item = {
        item: (
            sub["_cell"].to_numpy(dtype=np.int64),
            pd.to_numeric(sub["answer"]).to_numpy(dtype=float),
            sub["count"].to_numpy(dtype=float),
        )
        for item, sub in c.groupby("item", sort=False)
    }
    empty = (np.zeros(0, np.int64), np.zeros(0), np.zeros(0))

    def linearise(item: str, design: Design):
        cell, y, m = by_item.get(item, empty)
        wd = np.ones(len(sizes)) if design is Design.EQUAL_PROB else w_c
        post = design is Design.POSTSTRATIFIED
        args = (cell, m, wd, gid_c, n_c, n_resp, post)
        n_ans = np.bincount(gid_c[cell], weights=m, minlength=n_groups)
        mean, se_mean = _linearised_counts(y, *args)
        p, se_p = _linearised_counts((y >= _threshold(positive_from, item)).astype(float), *args)
        return n_ans, mean, se_mean, p, se_p

    return _estimate_table(keys, by, items, designs, linearise, n_resp, population, confidence)


def _linearised_counts(
    y: np.ndarray,
    cell: np.ndarray,
    m: np.ndarray,
    w_c: np.ndarray,
    gid_c: np.ndarray,
    n_c: np.ndarray,
    n_resp: np.ndarray,
    post: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_linearised` over answer counts: ``m`` respondents of cell ``cell`` answered
    ``y``; the cell's other ``n_c - answered`` respondents have a score of 0."""
    n_groups = len(n_resp)
    g = gid_c[cell]
    w = w_c[cell]
    with np.errstate(divide="ignore", invalid="ignore"):
        sw = np.bincount(g, weights=m * w, minlength=n_groups)
        ybar = np.bincount(g, weights=m * w * y, minlength=n_groups) / sw
        z = w * (y - ybar[g]) / sw[g]
        z_skip = np.zeros(len(n_c))
        if post:
            zbar = np.bincount(cell, weights=m * z, minlength=len(n_c)) / n_c
            z = z - zbar[cell]
            z_skip = z_skip - zbar
        skipped = n_c - np.bincount(cell, weights=m, minlength=len(n_c))
        total = np.bincount(g, weights=m * z, minlength=n_groups) + np.bincount(
            gid_c, weights=skipped * z_skip, minlength=n_groups
        )
        mu = total / n_resp
        ss = np.bincount(g, weights=m * (z - mu[g]) ** 2, minlength=n_groups) + np.bincount(
            gid_c, weights=skipped * (z_skip - mu[gid_c]) ** 2, minlength=n_groups
        )
        var = n_resp / (n_resp - 1.0) * ss
        var = np.where(n_resp > 1, var, np.nan)
    return ybar, np.sqrt(var)


def _estimate_table(
    keys: pd.DataFrame,
    by: list[str],
    items: list[str],
    designs: list[Design],
    linearise,
    n_resp: np.ndarray,
    population: np.ndarray,
    confidence: float,
) -> pd.DataFrame:
    """Intervals and the tidy output of :func:`weighted_estimates` from the per-group
    ``(n answered, mean, se of mean, share positive, its se)`` of every item x design."""
    n_groups = len(n_resp)
    alpha = 1.0 - confidence
    z = stats.norm.ppf(1.0 - alpha / 2.0)
    df_prop = n_resp - 1.0
    with np.errstate(invalid="ignore", divide="ignore"):
        t = np.where(df_prop > 0, stats.t.ppf(1.0 - alpha / 2.0, np.maximum(df_prop, 1)), np.nan)

    # one row of arrays per item x design (every array holds one value per group)
    combos = [(item, design) for item in items for design in designs]
    parts = [linearise(item, design) for item, design in combos]
    n_ans, mean, se_mean, p, se_p = (
        np.array([r[i] for r in parts], dtype=float).reshape(len(combos), n_groups)
        for i in range(5)
    )
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
    df_inf = np.full_like(p, np.inf)
    df_p = np.broadcast_to(df_prop, p.shape).astype(float)
    rows = [
        ("mean", "svymean", mean, se_mean, mean - z * se_mean, mean + z * se_mean, df_inf),
        ("pct_positive", "svymean", p, se_p, p - z * se_p, p + z * se_p, df_inf),
        ("pct_positive", "svyciprop_logit", p, se_p, lg_lo, lg_hi, df_p),
        ("pct_positive", "svyciprop_beta", p, se_p, b_lo, b_hi, df_p),
    ]
    scales = np.array([100.0 if r[0] == "pct_positive" else 1.0 for r in rows])

    def stack(i: int) -> np.ndarray:
        # (item x design, estimate row, group), flattened in that order
        return np.stack([r[i] for r in rows], axis=1) * scales[None, :, None]

    n_combos, n_rows = len(combos), len(rows)
    reps = n_combos * n_rows
    out = keys.iloc[np.tile(np.arange(n_groups), reps)].reset_index(drop=True)
    out["item"] = np.repeat([c[0] for c in combos], n_rows * n_groups)
    out["design"] = np.repeat([c[1].value for c in combos], n_rows * n_groups)
    out["estimate"] = np.tile(np.repeat([r[0] for r in rows], n_groups), n_combos)
    out["method"] = np.tile(np.repeat([r[1] for r in rows], n_groups), n_combos)
    out["n_respondents"] = np.tile(n_resp.astype("int64"), reps)
    out["n"] = np.repeat(n_ans.astype("int64"), n_rows, axis=0).ravel()
    out["population"] = np.tile(population, reps)
    out["value"] = stack(2).ravel()
    out["se"] = stack(3).ravel()
    out["ci_low"] = stack(4).ravel()
    out["ci_high"] = stack(5).ravel()
    out["df"] = np.stack([r[6] for r in rows], axis=1).astype(float).ravel()
    if by:
        out = out.sort_values(by, kind="stable").reset_index(drop=True)
    return out
