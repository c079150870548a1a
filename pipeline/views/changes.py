"""The change list a dean reads: which figures moved since the previous wave, better or
worse, with the evidence for each.

One row per unit × item compared. The correction for multiple comparisons is made over
the comparisons this list considered (every non-suppressed test of its wave pair, level,
questionnaire and units), so the chance that the list holds any false alarm stays at
about ``alpha`` (Holm) however long it is; with ``adjust = "bh"`` the expected share of
false alarms among the listed changes stays at about ``alpha`` instead. Rows come in order
of strength of evidence (adjusted p, then effect size); "better" or "worse" takes the
item's wording into account (a reverse-worded item improves when agreement falls).
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import numpy as np
import pandas as pd

from pipeline.locale import t
from pipeline.methods.multiplicity import adjust_pvalues
from pipeline.publish import Tree, Viewer, names, read

#: the stored test on % positive and the rank test on the whole answer distribution
PCT_TEST, RANK_TEST = "two_proportion_z", "mann_whitney"


@dataclass(frozen=True)
class ChangeList:
    """A change list and what it rests on."""

    rows: pd.DataFrame
    wave_from: str
    wave_to: str
    #: number of tests the correction was made over
    family_size: int
    adjust: str
    alpha: float
    #: unit × item comparisons read, small ones (hidden) included
    considered: int = 0


def change_list(
    con: duckdb.DuckDBPyConnection,
    *,
    wave: str,
    viewer: Viewer,
    tree: Tree,
    min_n: int,
    alpha: float,
    adjust: str = "holm",
    level: str = "faculty",
    instrument: str | None = None,
    unit: str | None = None,
    lang: str = "en",
    show_all: bool = False,
) -> ChangeList:
    """Changes into ``wave`` from the wave before, at ``level`` (units within ``unit``).

    Returns rows with codes and names (``unit``, ``unit_name``, ``item``, ``item_name``,
    ``instrument``), both waves and both n, % positive then and now (``pct_from``,
    ``pct_to``, ``change_points``), means, ``direction`` (``better``/``worse``) and its
    word in ``lang`` (``direction_text``), ``reverse_worded``, Cohen's h (``effect_size``),
    the listing-corrected p-values of both tests (``p_adjusted_pct``, ``p_adjusted_rank``)
    with how each was obtained (``p_method_pct``, ``p_method_rank``), ``p_adjusted`` (the
    smaller) and ``significant`` (``p_adjusted < alpha``, strictly). Only significant rows
    unless ``show_all``.
    """
    filters = {"wave": wave, "org_level": level, "instrument": instrument}
    frame = read(
        con,
        "ind_changes",
        viewer=viewer,
        tree=tree,
        min_n=min_n,
        filters={k: v for k, v in filters.items() if v is not None},
    )
    if unit is not None:
        frame = frame[frame["unit"].isin(tree.within(unit))]
    froms = sorted(set(frame["wave_from"].dropna()))
    p = pd.to_numeric(frame["p_value"], errors="coerce").to_numpy(dtype=float)
    frame = frame.assign(p_adjusted=adjust_pvalues(p, adjust))
    m = int(np.isfinite(p).sum())
    keys = ["instrument", "unit", "item", "wave_from", "wave_to"]
    pct = frame[frame["test"] == PCT_TEST].set_index(keys)
    rank = frame[frame["test"] == RANK_TEST].set_index(keys)
    out = pct[["n_from", "n_to", "share_from", "share_to", "mean_from", "mean_to"]].copy()
    out["effect_size"] = pd.to_numeric(pct["effect_size"])
    out["p_adjusted_pct"] = pd.to_numeric(pct["p_adjusted"])
    out["p_method_pct"] = pct["p_method"]
    out["p_adjusted_rank"] = pd.to_numeric(rank["p_adjusted"]).reindex(out.index)
    out["p_method_rank"] = rank["p_method"].reindex(out.index)
    out["suppressed"] = pct["suppressed"]
    out = out.reset_index()
    lookup = names(con, lang)
    share_from = pd.to_numeric(out.pop("share_from"))
    share_to = pd.to_numeric(out.pop("share_to"))
    out["pct_from"] = 100 * share_from
    out["pct_to"] = 100 * share_to
    out["change_points"] = out["pct_to"] - out["pct_from"]
    out["p_adjusted"] = out[["p_adjusted_pct", "p_adjusted_rank"]].min(axis=1, skipna=True)
    out["significant"] = (out["p_adjusted"] < alpha).fillna(False).astype(bool)
    reverse = out["item"].map(lookup["reverse"]).fillna("").eq("yes")
    rise = np.where(
        out["change_points"].abs() > 0,
        out["change_points"] > 0,
        pd.to_numeric(out["mean_to"]) > pd.to_numeric(out["mean_from"]),
    )
    better = np.where(reverse, ~rise, rise)
    out["reverse_worded"] = reverse
    out["direction"] = np.where(better, "better", "worse")
    out["direction_text"] = [t(d, lang) for d in out["direction"]]
    out["unit_name"] = out["unit"].map(lookup["unit"]).fillna(out["unit"])
    out["item_name"] = out["item"].map(lookup["item"]).fillna(out["item"])
    out["instrument_name"] = out["instrument"].map(lookup["instrument"]).fillna(out["instrument"])
    if not show_all:
        out = out[out["significant"]]
    out = out.assign(_h=-out["effect_size"].abs()).sort_values(
        ["p_adjusted", "_h", "unit", "item"], na_position="last"
    )
    columns = [
        "instrument",
        "instrument_name",
        "unit",
        "unit_name",
        "item",
        "item_name",
        "wave_from",
        "wave_to",
        "n_from",
        "n_to",
        "pct_from",
        "pct_to",
        "change_points",
        "mean_from",
        "mean_to",
        "direction",
        "direction_text",
        "reverse_worded",
        "effect_size",
        "p_adjusted",
        "p_adjusted_pct",
        "p_method_pct",
        "p_adjusted_rank",
        "p_method_rank",
        "significant",
        "suppressed",
    ]
    return ChangeList(
        rows=out[columns].reset_index(drop=True),
        wave_from=", ".join(froms),
        wave_to=wave,
        family_size=m,
        adjust=adjust,
        alpha=alpha,
        considered=int((frame["test"] == PCT_TEST).sum()),
    )
