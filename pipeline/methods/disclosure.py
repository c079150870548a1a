"""The privacy gate: every table that leaves Sapat passes :func:`suppress` first.

Primary suppression
-------------------
A cell (row) resting on fewer than ``min_n`` respondents (``n < min_n``, or ``n`` missing) shows
no statistic: every statistic column, ``n`` included, is set to missing and the row is flagged
``suppressed = True`` with ``suppression_reason = "small_cell"``. ``min_n`` defaults to 5 and can
be raised but never set below :data:`MIN_N_FLOOR` (3): lower values raise ``ValueError``.

Which columns are statistics is decided **fail-closed**: every column except the key columns
(``by``, ``unit_col``, the hierarchy column) and the ``labels`` the caller names is blanked. A new
statistic column added upstream is therefore hidden by default, never leaked.

Complementary suppression
-------------------------
A table may hold a parent and its children, e.g. a faculty total and its programmes, for the
same wave and item. The hierarchy is given as a **child -> parent mapping**: either a column of
the table holding each row's parent unit id (missing for a top unit), or a dict
``{child_unit: parent_unit}``. Rows are matched within a **slice**: rows sharing the values of
the ``by`` columns (e.g. wave, item, level). Each row is linked to its nearest ancestor published
in the same slice (a programme links to the university total when its faculty's row is absent).
A **family** is a published parent with its published children; its relation is
``n(parent) = sum n(children) + r`` where ``r`` (respondents of the parent in no listed child) is
assumed known to an intruder, which is the cautious assumption. The same relation holds for every
additive statistic (``n * mean``, counts of positive answers, ...), so protecting ``n`` protects
them all.

The gate hides further cells until, in every slice:

1. **No family has exactly one hidden member** (the parent counts as a member). With one hidden
   member it could be recomputed as parent - visible siblings (or, for a hidden parent, as the
   sum of its children). This is the case "exactly one child suppressed" and also "a parent
   with a single child".
2. **No small group can be isolated by subtraction.** For a published parent, the hidden
   children's total is known (parent - visible children - r). It must be at least ``min_n``,
   otherwise those few respondents' combined statistics are disclosed. The same holds one level
   down: a hidden child that has hidden children of its own may be replaced by them (an
   intruder knows hidden child - its visible children), so the smallest total reachable that
   way, ``m(c) = min(n(c), sum of m over c's hidden children)``, summed over the hidden children
   of the published parent, must be at least ``min_n``.

Repair: the family in violation (deepest first) hides its **visible child with the smallest
n** (ties: the first in table order) with reason ``"complementary"``; if no child is visible, it
hides the parent itself, which then counts as a hidden member of its own parent's family. This
repeats until every family passes. Each round hides at least one more cell, so it terminates.

Why this is enough: in a tree every hidden cell appears in at most two relations (as a child and
as a parent). Treat relations as nodes and hidden cells as edges (a hidden leaf or root is an
edge to a common "outside" node). A hidden cell is determined by the published figures exactly
when its edge lies on no cycle; rule 1 gives every relation node at least two hidden edges, and
in a forest that puts every edge on a cycle through "outside". The quantities an intruder *can*
derive are totals over sets of hidden cells; rule 2 keeps each of those totals at ``min_n`` or
above.

Limits: the gate sees one table. Additive relations must be expressed through the hierarchy
(e.g. a level breakdown next to an all-levels row needs its own unit ids); figures published
in another table are not seen here. :mod:`pipeline.publish` carries the decisions across
tables: a table splitting another's rows is gated with them as parents, and a table
comparing cells of another (changes, benchmarks, pairwise tests, trends) hides every row
resting on a cell this gate hid there (``rests_on`` in :mod:`pipeline.store.tables`).

Comments
--------
Free-text comments are more identifying than numbers: :func:`suppress_comments` hides them in
cells with fewer than ``min_n`` respondents (default 10, also never below the floor of 3),
with reason ``"comment_small_cell"``.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from enum import StrEnum

import numpy as np
import pandas as pd

# the privacy floor and defaults are settings, defined once in pipeline.config
from pipeline.config import DEFAULT_COMMENT_MIN_N, DEFAULT_MIN_N, MIN_N_FLOOR

__all__ = [
    "DEFAULT_COMMENT_MIN_N",
    "DEFAULT_MIN_N",
    "MIN_N_FLOOR",
    "SuppressionReason",
    "suppress",
    "suppress_comments",
]


FLAG_COL = "suppressed"
REASON_COL = "suppression_reason"


class SuppressionReason(StrEnum):
    """Why a row was suppressed."""

    SMALL_CELL = "small_cell"
    COMPLEMENTARY = "complementary"
    COMMENT_SMALL_CELL = "comment_small_cell"


def _check_min_n(min_n, what: str = "min_n") -> float:
    if isinstance(min_n, bool) or not isinstance(min_n, int | float | np.integer | np.floating):
        raise ValueError(f"{what} must be a number, got {min_n!r}")
    if min_n != min_n or min_n in (np.inf, -np.inf) or min_n < MIN_N_FLOOR:
        raise ValueError(
            f"{what} must be at least {MIN_N_FLOOR} (the privacy floor), got {min_n!r}"
        )
    return float(min_n)


def _slice_codes(table: pd.DataFrame, by: Sequence[str]) -> np.ndarray:
    if not by:
        return np.zeros(len(table), dtype=np.int64)
    return (
        table.groupby(list(by), sort=False, observed=True, dropna=False)
        .ngroup()
        .to_numpy()
        .astype(np.int64)
    )


def _parent_rows(
    table: pd.DataFrame,
    unit_col: str,
    hierarchy: str | Mapping[Hashable, Hashable],
    by: Sequence[str],
) -> np.ndarray:
    """Row position of each row's nearest published ancestor in its slice (-1 for none)."""
    units = table[unit_col]
    if units.isna().any():
        raise ValueError(f"column {unit_col!r} has missing unit ids; every row needs a unit")
    if isinstance(hierarchy, str):
        if hierarchy not in table.columns:
            raise ValueError(f"hierarchy column {hierarchy!r} is not in the table")
        pairs = pd.DataFrame({"child": units.to_numpy(), "parent": table[hierarchy].to_numpy()})
        pairs = pairs[pairs["parent"].notna()].drop_duplicates()
        clash = pairs["child"].duplicated(keep=False)
        if clash.any():
            bad = sorted({str(v) for v in pairs.loc[clash, "child"]})[:3]
            raise ValueError(
                f"unit(s) {bad} have more than one parent in column {hierarchy!r}; "
                "a unit must have a single parent"
            )
        mapping = dict(zip(pairs["child"], pairs["parent"], strict=True))
    elif isinstance(hierarchy, Mapping):
        mapping = {k: v for k, v in hierarchy.items() if v is not None and not pd.isna(v)}
    else:
        raise TypeError("hierarchy must be a column name or a child -> parent mapping")

    ids = pd.Index(pd.unique(pd.Series([*units.tolist(), *mapping.keys(), *mapping.values()])))
    n_ids = len(ids)
    parent_code = np.full(n_ids, -1, dtype=np.int64)
    if mapping:
        parent_code[ids.get_indexer(list(mapping.keys()))] = ids.get_indexer(list(mapping.values()))
    # Cycle check: following parents from any unit must end within n_ids steps.
    walk = np.arange(n_ids)
    for _ in range(n_ids + 1):
        walk = np.where(walk >= 0, parent_code[np.maximum(walk, 0)], -1)
        if (walk < 0).all():
            break
    else:
        raise ValueError("the hierarchy contains a cycle (a unit is its own ancestor)")

    row_code = ids.get_indexer(units.tolist()).astype(np.int64)
    slices = _slice_codes(table, by)
    keys = pd.Index(slices * n_ids + row_code)
    if not keys.is_unique:
        dup = table.loc[keys.duplicated(keep=False), [*by, unit_col]].head(3)
        raise ValueError(
            f"several rows share the same unit within a slice, e.g. {dup.to_dict('records')}; "
            "pass every column that distinguishes them (wave, item, ...) as `by`"
        )
    parent_row = np.full(len(table), -1, dtype=np.int64)
    cand = parent_code[row_code]
    active = np.flatnonzero(cand >= 0)
    while active.size:
        pos = keys.get_indexer(slices[active] * n_ids + cand[active])
        found = pos >= 0
        parent_row[active[found]] = pos[found]
        rest = active[~found]
        cand[rest] = parent_code[cand[rest]]
        active = rest[cand[rest] >= 0]
    return parent_row


def _depths(parent_row: np.ndarray) -> np.ndarray:
    depth = np.zeros(len(parent_row), dtype=np.int64)
    has_parent = parent_row >= 0
    for _ in range(len(parent_row) + 1):
        new = np.where(has_parent, depth[np.maximum(parent_row, 0)] + 1, 0)
        if np.array_equal(new, depth):
            break
        depth = new
    return depth


def _complementary(
    n: np.ndarray, parent_row: np.ndarray, hidden: np.ndarray, min_n: float
) -> np.ndarray:
    """Cells to hide in addition to ``hidden`` so that every family satisfies rules 1 and 2."""
    hidden = hidden.copy()
    extra = np.zeros(len(n), dtype=bool)
    r = len(n)
    if r == 0 or not (parent_row >= 0).any():
        return extra
    n0 = np.nan_to_num(n, nan=0.0)
    child = np.flatnonzero(parent_row >= 0)
    par = parent_row[child]
    n_kids = np.bincount(par, minlength=r)
    is_family = n_kids > 0
    depth = _depths(parent_row)
    levels = [np.flatnonzero(depth == d) for d in range(int(depth.max()), -1, -1)]
    for _ in range(r + 1):
        hid_kids = np.bincount(par, weights=hidden[child].astype(float), minlength=r)
        members_hidden = hid_kids + hidden
        violation = is_family & (members_hidden == 1)
        # m: the smallest total an intruder can isolate in place of a hidden cell.
        reach = np.zeros(r)
        m = np.zeros(r)
        for lvl in levels:
            m[lvl] = np.where(is_family[lvl], np.minimum(n0[lvl], reach[lvl]), n0[lvl])
            up = lvl[hidden[lvl] & (parent_row[lvl] >= 0)]
            np.add.at(reach, parent_row[up], m[up])
        violation |= is_family & ~hidden & (hid_kids > 0) & (reach < min_n)
        if not violation.any():
            return extra
        # Repair the deepest violating families first; hiding a parent propagates upward.
        worst = depth[violation].max()
        fix = violation & (depth == worst)
        cand = child[fix[par] & ~hidden[child]]
        order = np.lexsort((cand, n0[cand], parent_row[cand]))
        cand = cand[order]
        _, first = np.unique(parent_row[cand], return_index=True)
        chosen = cand[first]
        no_visible_child = fix.copy()
        no_visible_child[parent_row[chosen]] = False
        newly = np.concatenate([chosen, np.flatnonzero(no_visible_child)])
        hidden[newly] = True
        extra[newly] = True
    raise RuntimeError("complementary suppression did not converge")  # pragma: no cover


def suppress(
    table: pd.DataFrame,
    n_col: str = "n",
    min_n: int = DEFAULT_MIN_N,
    *,
    hierarchy: str | Mapping[Hashable, Hashable] | None = None,
    unit_col: str | None = None,
    by: Sequence[str] = (),
    labels: Sequence[str] = (),
) -> pd.DataFrame:
    """Hide small cells and the cells that would let them be recomputed.

    See the module docstring for the rule and why it is safe.

    Parameters
    ----------
    table
        One row per published cell, with the respondent count in ``n_col``.
    n_col
        Column with the number of respondents the row's statistics rest on.
    min_n
        Smallest ``n`` shown; at least :data:`MIN_N_FLOOR`.
    hierarchy
        Child -> parent relation between units: the name of a column of ``table`` holding each
        row's parent unit id (missing for a top unit), or a mapping ``{child: parent}``.
        A column can only link through units that appear somewhere in the table; pass a
        mapping when intermediate levels are left out (e.g. university and programmes
        without faculties). ``None``: primary suppression only (use this only for tables
        without totals and sub-totals).
    unit_col
        Column with the unit id of each row; required with ``hierarchy``.
    by
        Columns that, together with ``unit_col``, identify a row (e.g. ``["wave", "item"]``);
        parents and children are matched within equal ``by`` values.
    labels
        Further columns to keep visible (names, labels). All other columns are statistics and
        are blanked in suppressed rows.

    Returns
    -------
    pandas.DataFrame
        A copy of ``table`` (same index and row order) with statistic columns set to missing in
        suppressed rows (integer columns become float or nullable), plus

        ``suppressed``
            bool;
        ``suppression_reason``
            ``"small_cell"``, ``"complementary"`` or missing.

        Rows already marked ``suppressed`` in the input stay suppressed with their reason.
        Applying the gate twice is safe but may hide more: a blanked ``n`` counts as 0.

    Raises
    ------
    ValueError
        When ``min_n`` is below the floor, columns are missing, the hierarchy has a cycle or a
        unit with two parents, or rows are not unique per unit within a slice.
    """
    min_n = _check_min_n(min_n)
    by, labels = list(by), list(labels)
    hier_col = hierarchy if isinstance(hierarchy, str) else None
    if hierarchy is not None and unit_col is None:
        raise ValueError("complementary suppression needs unit_col, the column of unit ids")
    if n_col in {*by, *labels}:
        raise ValueError(f"{n_col!r} is the count column; it cannot be a key or a label")
    needed = [n_col, *by, *labels] + ([unit_col] if unit_col else [])
    missing = [c for c in needed if c not in table.columns]
    if missing:
        raise ValueError(f"table lacks column(s) {missing}")

    n = pd.to_numeric(table[n_col], errors="coerce").to_numpy(dtype=float)
    prior = np.zeros(len(table), dtype=bool)
    prior_reason = pd.Series(pd.NA, index=table.index, dtype="string")
    if FLAG_COL in table.columns:
        prior = table[FLAG_COL].fillna(False).to_numpy(dtype=bool)
        if REASON_COL in table.columns:
            prior_reason = table[REASON_COL].astype("string")
    small = ~(n >= min_n)
    hidden = prior | small
    extra = np.zeros(len(table), dtype=bool)
    if hierarchy is not None:
        parent_row = _parent_rows(table, unit_col, hierarchy, by)
        extra = _complementary(n, parent_row, hidden, min_n)

    suppressed = hidden | extra
    reason = np.full(len(table), None, dtype=object)
    reason[extra] = SuppressionReason.COMPLEMENTARY.value
    reason[small] = SuppressionReason.SMALL_CELL.value
    prior_vals = prior_reason.to_numpy(dtype=object, na_value=None)
    keep_prior = prior & np.array([v is not None for v in prior_vals], dtype=bool)
    reason[keep_prior] = prior_vals[keep_prior]
    reason[prior & ~keep_prior & ~small] = SuppressionReason.SMALL_CELL.value

    keys = {*by, *labels, FLAG_COL, REASON_COL}
    if unit_col:
        keys.add(unit_col)
    if hier_col:
        keys.add(hier_col)
    out = table.copy()
    mask = pd.Series(suppressed, index=table.index)
    for col in out.columns:
        if col not in keys:
            out[col] = out[col].mask(mask)
    out[FLAG_COL] = suppressed
    out[REASON_COL] = pd.array(reason, dtype="string")
    return out


def suppress_comments(
    comments: pd.DataFrame,
    n_col: str = "n",
    text_cols: Sequence[str] = ("comment",),
    min_n: int = DEFAULT_COMMENT_MIN_N,
) -> pd.DataFrame:
    """Hide free-text comments from cells with fewer than ``min_n`` respondents.

    Parameters
    ----------
    comments
        One row per comment, with the number of respondents of the comment's cell (e.g. the
        programme x wave) in ``n_col`` (not the number of comments).
    n_col
        Column with the cell's respondent count.
    text_cols
        Columns holding comment text (or anything else to hide with it).
    min_n
        Smallest cell shown; default 10, never below :data:`MIN_N_FLOOR`.

    Returns
    -------
    pandas.DataFrame
        A copy with ``text_cols`` set to missing where the cell is too small, plus ``suppressed``
        (bool) and ``suppression_reason`` (``"comment_small_cell"`` or missing).
    """
    min_n = _check_min_n(min_n)
    missing = [c for c in [n_col, *text_cols] if c not in comments.columns]
    if missing:
        raise ValueError(f"comments frame lacks column(s) {missing}")
    n = pd.to_numeric(comments[n_col], errors="coerce").to_numpy(dtype=float)
    hidden = ~(n >= min_n)
    out = comments.copy()
    mask = pd.Series(hidden, index=comments.index)
    for col in text_cols:
        out[col] = out[col].mask(mask)
    out[FLAG_COL] = hidden
    reason = np.where(hidden, SuppressionReason.COMMENT_SMALL_CELL.value, None)
    out[REASON_COL] = pd.array(reason, dtype="string")
    return out
