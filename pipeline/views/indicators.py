"""Indicator rows in context: names in the reader's language beside the codes, the
university's value of the same indicator beside each unit, and whether the unit differs
from the rest of the university after correction (from ``ind_benchmark``)."""

from __future__ import annotations

import duckdb
import pandas as pd

from pipeline.locale import t as say
from pipeline.publish import Tree, Viewer, names, read
from pipeline.store.tables import Table

#: name columns added after their code column
_NAMED = {
    "instrument": "instrument_name",
    "unit": "unit_name",
    "item": "item_name",
    "dimension": "dimension_name",
    "discipline": "discipline_name",
}


def with_names(con: duckdb.DuckDBPyConnection, frame: pd.DataFrame, lang: str) -> pd.DataFrame:
    """``frame`` with a ``<code>_name`` column in ``lang`` after each code column it has."""
    lookup = names(con, lang)
    out = frame.copy()
    for code, name in _NAMED.items():
        if code in out and name not in out:
            values = out[code].map(lookup.get(code, {})).fillna(out[code])
            out.insert(out.columns.get_loc(code) + 1, name, values)
    return out


def in_context(
    con: duckdb.DuckDBPyConnection,
    frame: pd.DataFrame,
    table: Table,
    *,
    viewer: Viewer,
    tree: Tree,
    min_n: int,
    lang: str,
    alpha: float,
    unit: str | None = None,
) -> pd.DataFrame:
    """Rows of ``table`` (already read through the door) limited to ``unit`` and the units
    below it, with names, and for item and dimension rows the university's ``mean`` and
    ``pct_positive`` beside each unit (``university_mean``, ``university_pct_positive``);
    item rows also carry ``vs_rest`` (``higher``/``lower`` in ``lang`` when the unit
    differs from the rest of the university after correction, else empty) and
    ``vs_rest_p_adjusted``."""
    one = table.unit_columns[0] if len(table.unit_columns) == 1 else None
    if unit is not None and one in frame:
        frame = frame[frame[one].isin(tree.within(unit))]
    subject = next((c for c in ("item", "dimension") if c in table.names), None)
    units_below = "org_level" in frame and (frame["org_level"] != "university").any()
    if subject and units_below and {"mean", "pct_positive"} <= set(frame.columns):
        keys = ["instrument", "wave", subject]
        uni = read(
            con,
            table.name,
            viewer=viewer,
            tree=tree,
            min_n=min_n,
            filters={
                "org_level": "university",
                "wave": sorted(set(frame["wave"])),
                subject: sorted(set(frame[subject])),
            },
        )
        uni = uni[keys + ["mean", "pct_positive"]].rename(
            columns={"mean": "university_mean", "pct_positive": "university_pct_positive"}
        )
        frame = frame.merge(uni.drop_duplicates(keys), on=keys, how="left")
        if subject == "item":
            bench = read(
                con,
                "ind_benchmark",
                viewer=viewer,
                tree=tree,
                min_n=min_n,
                filters={"test": "two_proportion_z", "wave": sorted(set(frame["wave"]))},
            )
            bench = bench[
                ["instrument", "wave", "org_level", "unit", "item", "estimate", "p_adjusted"]
            ]
            bench = bench.rename(columns={"p_adjusted": "vs_rest_p_adjusted", "estimate": "_diff"})
            frame = frame.merge(
                bench, on=["instrument", "wave", "org_level", "unit", "item"], how="left"
            )
            p = pd.to_numeric(frame["vs_rest_p_adjusted"], errors="coerce")
            diff = pd.to_numeric(frame.pop("_diff"), errors="coerce")
            word = pd.Series("", index=frame.index, dtype=object)
            word[(p < alpha) & (diff > 0)] = say("higher", lang)
            word[(p < alpha) & (diff < 0)] = say("lower", lang)
            frame["vs_rest"] = word
    return with_names(con, frame.reset_index(drop=True), lang)
