"""The one gate every number passes before it leaves Sapat (CLI, dashboard, reports).

- Indicator tables (one row per unit): cells resting on fewer than ``min_n`` respondents
  are hidden, with complementary suppression along the org tree so that no hidden cell
  can be recomputed from its parent and visible siblings
  (:func:`pipeline.methods.disclosure.suppress`).
- Comparison tables (changes, benchmarks, trends, pairwise tests): a row whose groups
  include one smaller than ``min_n`` shows no statistic.
- Comments: only in cells with at least ``comment_min_n`` respondents, and only to the
  quality office (roles are enforced by the caller, e.g. the dashboard's data layer).

``min_n`` is never below :data:`pipeline.methods.disclosure.MIN_N_FLOOR`.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from pipeline.methods.disclosure import DEFAULT_COMMENT_MIN_N, suppress, suppress_comments

#: Slice columns of each indicator table: rows with equal slices form one tree of units.
SLICES = {
    "ind_items": ["instrument", "wave", "item"],
    "ind_dimensions": ["instrument", "wave", "dimension"],
    "ind_outcomes": ["instrument", "wave", "measure"],
    "ind_response": ["instrument", "wave"],
}
N_COLUMN = {"ind_response": "respondents"}
LABELS = ["level", "version", "dimension", "reverse", "ci_method", "confidence", "indicative_only",
          "reliability_reason", "headcount"]  # fmt: skip
#: Columns holding group sizes in comparison tables.
COMPARISON_N = ("n", "n_from", "n_to", "n_unit", "n_rest", "n_a", "n_b")


def gate_units(
    table: pd.DataFrame, kind: str, parent: Mapping[str, str], min_n: int
) -> pd.DataFrame:
    """Suppress small cells of an indicator table (``kind`` = its table name)."""
    if table.empty:
        return table.assign(suppressed=pd.Series(dtype=bool), suppression_reason=None)
    by = [c for c in SLICES.get(kind, ["instrument", "wave"]) if c in table.columns]
    n_col = N_COLUMN.get(kind, "n")
    labels = [c for c in LABELS if c in table.columns and c not in by]
    if kind == "ind_response":
        labels = [c for c in labels if c != "headcount"]
    frames = []
    # teachers are a separate tree (under departments); rows of other levels form the org tree
    is_teacher = table["level"] == "teacher" if "level" in table else pd.Series(False, table.index)
    for part in (table[~is_teacher], table[is_teacher]):
        if part.empty:
            continue
        frames.append(
            suppress(
                part,
                n_col=n_col,
                min_n=min_n,
                hierarchy=dict(parent),
                unit_col="unit",
                by=by,
                labels=labels,
            )  # fmt: skip
        )
    return pd.concat(frames).loc[table.index]


def gate_comparisons(table: pd.DataFrame, min_n: int) -> pd.DataFrame:
    """Blank the statistics of comparison rows that rest on a group smaller than ``min_n``."""
    from pipeline.methods.disclosure import _check_min_n

    _check_min_n(min_n)
    out = table.copy()
    sizes = [c for c in COMPARISON_N if c in out.columns]
    small = np.zeros(len(out), dtype=bool)
    for c in sizes:
        small |= pd.to_numeric(out[c], errors="coerce").fillna(0).to_numpy() < min_n
    keep = {"instrument", "wave", "wave_from", "wave_to", "level", "unit", "item", "dimension",
            "group_a", "group_b", "test", "term", "family", "adjust_method", "effect_size_kind",
            "estimate_kind"}  # fmt: skip
    for c in (c for c in out.columns if c not in keep):
        if pd.api.types.is_numeric_dtype(out[c]) and not pd.api.types.is_bool_dtype(out[c]):
            out[c] = out[c].astype("float64").mask(small)
        else:
            out[c] = out[c].astype(object).mask(small, None)
    out["suppressed"] = small
    out["suppression_reason"] = np.where(small, "small_cell", None)
    return out


def gate_comments(comments: pd.DataFrame, min_n: int = DEFAULT_COMMENT_MIN_N) -> pd.DataFrame:
    """Comments of cells with fewer than ``min_n`` respondents are withheld."""
    return suppress_comments(comments, n_col="n", text_cols=("text",), min_n=min_n)
