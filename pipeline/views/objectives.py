"""Quality objectives against the data (quality manual 7.1, management review 12.1 a).

Each objective of the workspace's ``declarations/objectives.yaml`` names a questionnaire,
a measure (``pct_positive``, ``mean``, ``response_rate`` or an outcome measure such as
``employment_rate``), an item or a dimension, a scope (``university``, ``faculty``,
``department``, ``programme``: the target must hold in every unit of that kind) and a
target. :func:`evaluate` reads the stored figures through the door and says, per unit of
the scope and per wave, whether the objective is **met** (the whole interval on the right
side of the target), **not met** (the whole interval on the wrong side), **undecided**
(the interval straddles the target: the data cannot tell), or **hidden** (too few
respondents to show). A measure without an interval (a response rate: a count, not an
estimate) is met or not by its value. Each row carries the trend (the value in the waves
before) and the latest significant change of its indicator.

:func:`candidates` turns the objectives not met and the significant declines of a wave into
nonconformity candidates for the quality office to confirm or dismiss.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import duckdb
import numpy as np
import pandas as pd

from pipeline.locale import number
from pipeline.publish import Tree, Viewer, names, read

#: measures kept in the outcome table (graduates, employers)
OUTCOME_MEASURES = (
    "employment_rate",
    "median_months_to_job",
    "pct_in_field",
    "pct_recommend",
    "pct_hire_again",
)
STATUSES = ("met", "not_met", "undecided", "hidden", "no_data")
COLUMNS = [
    "objective",
    "title",
    "process",
    "instrument",
    "indicator",
    "measure",
    "scope",
    "wave",
    "unit",
    "unit_name",
    "comparator",
    "target",
    "value",
    "ci_low",
    "ci_high",
    "n",
    "status",
    "trend",
    "latest_change",
]


def _level(scope: str) -> str:
    return scope if scope in ("university", "faculty", "department", "programme") else "faculty"


def _title(obj: Mapping, lang: str) -> str:
    title = obj.get("title") or {}
    if isinstance(title, Mapping):
        return title.get(lang) or title.get("en") or next(iter(title.values()), obj.get("id", ""))
    return str(title)


def status(value, low, high, target: float, comparator: str = ">=") -> str:
    """met / not_met / undecided (the interval straddles the target) / hidden."""
    if value is None or value != value:
        return "hidden"
    higher = comparator in (">=", ">")
    strict = comparator in (">", "<")

    def ok(x: float) -> bool:
        if higher:
            return x > target if strict else x >= target
        return x < target if strict else x <= target

    if low is None or high is None or low != low or high != high:
        return "met" if ok(float(value)) else "not_met"
    worst, best = (low, high) if higher else (high, low)
    if ok(float(worst)):
        return "met"
    if not ok(float(best)):
        return "not_met"
    return "undecided"


def _rows(
    con: duckdb.DuckDBPyConnection,
    obj: Mapping,
    *,
    viewer: Viewer,
    tree: Tree,
    min_n: int,
) -> pd.DataFrame:
    """The stored figures an objective is judged on: wave, unit, value, ci_low, ci_high, n."""
    measure = obj.get("measure")
    level = _level(obj.get("scope", "university"))
    base = {"org_level": level, "instrument": obj.get("instrument")}

    def gated(table, **filters):
        return read(
            con,
            table,
            viewer=viewer,
            tree=tree,
            min_n=min_n,
            filters={**base, **{k: v for k, v in filters.items() if v is not None}},
        )

    if measure == "response_rate":
        rows = gated("ind_response")
        return pd.DataFrame(
            {
                "wave": rows["wave"],
                "unit": rows["unit"],
                "value": 100 * pd.to_numeric(rows["response_rate"], errors="coerce"),
                "ci_low": np.nan,
                "ci_high": np.nan,
                "n": rows["respondents"],
                "suppressed": rows["suppressed"],
            }
        )
    if measure in OUTCOME_MEASURES:
        rows = gated("ind_outcomes", measure=measure)
        return pd.DataFrame(
            {
                "wave": rows["wave"],
                "unit": rows["unit"],
                "value": rows["value"],
                "ci_low": rows["ci_low"],
                "ci_high": rows["ci_high"],
                "n": rows["n"],
                "suppressed": rows["suppressed"],
            }
        )
    if obj.get("dimension"):
        rows = gated("ind_dimensions", dimension=obj["dimension"])
    else:
        rows = gated("ind_items", item=obj.get("item"))
    low, high = (
        ("pct_positive_ci_low", "pct_positive_ci_high")
        if measure == "pct_positive"
        else ("mean_ci_low", "mean_ci_high")
    )
    if measure not in rows:
        return pd.DataFrame(columns=["wave", "unit", "value", "ci_low", "ci_high", "n"])
    return pd.DataFrame(
        {
            "wave": rows["wave"],
            "unit": rows["unit"],
            "value": rows[measure],
            "ci_low": rows.get(low, np.nan),
            "ci_high": rows.get(high, np.nan),
            "n": rows["n"],
            "suppressed": rows["suppressed"],
        }
    )


def evaluate(
    con: duckdb.DuckDBPyConnection,
    objectives: Sequence[Mapping],
    *,
    viewer: Viewer,
    tree: Tree,
    min_n: int,
    alpha: float = 0.05,
    lang: str = "en",
    wave: str | None = None,
    unit: str | None = None,
) -> pd.DataFrame:
    """Every objective per unit of its scope and per wave (only ``wave`` when given; only
    units within ``unit``), with status, trend and latest significant change.

    An objective whose scope has no stored figure in that wave gets one row with status
    ``no_data`` (the pack shows it, never leaves it out)."""
    lookup = names(con, lang)
    out = []
    changes = _changes(con, viewer=viewer, tree=tree, min_n=min_n, alpha=alpha)
    for obj in objectives:
        rows = _rows(con, obj, viewer=viewer, tree=tree, min_n=min_n)
        if unit is not None:
            rows = rows[rows["unit"].isin(tree.within(unit))]
        waves = sorted(set(rows["wave"]))
        wanted = obj.get("waves", "all")
        if isinstance(wanted, list):
            waves = [w for w in waves if w in wanted]
        if wave is not None:
            waves = [wave]
        indicator = obj.get("dimension") or obj.get("item")
        base = {
            "objective": obj.get("id"),
            "title": _title(obj, lang),
            "process": obj.get("process"),
            "instrument": obj.get("instrument"),
            "indicator": indicator,
            "measure": obj.get("measure"),
            "scope": obj.get("scope"),
            "comparator": obj.get("comparator", ">="),
            "target": float(obj.get("target")),
        }
        for w in waves:
            now = rows[rows["wave"] == w]
            if now.empty:
                out.append({**base, "wave": w, "status": "no_data"})
                continue
            for r in now.itertuples():
                hidden = bool(r.suppressed)
                history = rows[(rows["unit"] == r.unit) & (rows["wave"] < w)].sort_values("wave")
                trend = " → ".join(
                    number(x, lang) if x == x else "·"
                    for x in [
                        *pd.to_numeric(history["value"], errors="coerce").tail(3),
                        float(r.value) if not hidden and r.value == r.value else np.nan,
                    ]
                )
                out.append(
                    {
                        **base,
                        "wave": w,
                        "unit": r.unit,
                        "unit_name": lookup["unit"].get(r.unit, r.unit),
                        "value": None if hidden else r.value,
                        "ci_low": None if hidden else r.ci_low,
                        "ci_high": None if hidden else r.ci_high,
                        "n": None if hidden else r.n,
                        "status": "hidden"
                        if hidden
                        else status(
                            r.value, r.ci_low, r.ci_high, base["target"], base["comparator"]
                        ),
                        "trend": trend,
                        "latest_change": changes.get(
                            (obj.get("instrument"), r.unit, indicator), ""
                        ),
                    }
                )
    frame = pd.DataFrame(out)
    for c in COLUMNS:
        if c not in frame:
            frame[c] = None
    return frame[COLUMNS]


def _changes(con, *, viewer, tree, min_n, alpha) -> dict[tuple, str]:
    """(instrument, unit, item) → its latest significant change of % positive, in words."""
    rows = read(
        con,
        "ind_changes",
        viewer=viewer,
        tree=tree,
        min_n=min_n,
        filters={"test": "two_proportion_z"},
    )
    rows = rows[pd.to_numeric(rows["p_adjusted"], errors="coerce") < alpha]
    out: dict[tuple, str] = {}
    for r in rows.sort_values("wave").itertuples():
        out[(r.instrument, r.unit, r.item)] = (
            f"{r.wave_from} → {r.wave_to}: {100 * r.share_from:.1f} → {100 * r.share_to:.1f}"
        )
    return out


def candidates(
    con: duckdb.DuckDBPyConnection,
    objectives: Sequence[Mapping],
    *,
    viewer: Viewer,
    tree: Tree,
    min_n: int,
    wave: str,
    alpha: float = 0.05,
    adjust: str = "holm",
) -> pd.DataFrame:
    """Nonconformity candidates of ``wave``: every objective not met in a unit, and every
    significant fall in % positive (the change list's correction; a reverse-worded item
    counts when agreement rises). Columns: source, objective, instrument, indicator, unit,
    wave, detail."""
    from pipeline.views.changes import change_list

    judged = evaluate(
        con, objectives, viewer=viewer, tree=tree, min_n=min_n, alpha=alpha, wave=wave
    )
    missed = judged[judged["status"] == "not_met"]
    rows = [
        {
            "source": "objective",
            "objective": r.objective,
            "instrument": r.instrument,
            "indicator": r.indicator,
            "unit": r.unit,
            "wave": wave,
            "detail": f"{r.measure} {r.value:.1f} (CI {_ci(r)}) against target "
            f"{r.comparator} {r.target:g}",
        }
        for r in missed.itertuples()
    ]
    for level in ("university", "faculty", "programme"):
        found = change_list(
            con,
            wave=wave,
            viewer=viewer,
            tree=tree,
            min_n=min_n,
            alpha=alpha,
            adjust=adjust,
            level=level,
        ).rows
        for r in found[found["direction"] == "worse"].itertuples():
            rows.append(
                {
                    "source": "decline",
                    "objective": None,
                    "instrument": r.instrument,
                    "indicator": r.item,
                    "unit": r.unit,
                    "wave": wave,
                    "detail": f"% positive {r.pct_from:.1f} → {r.pct_to:.1f} "
                    f"(p adj. {r.p_adjusted:.3g})",
                }
            )
    return pd.DataFrame(
        rows, columns=["source", "objective", "instrument", "indicator", "unit", "wave", "detail"]
    )


def _ci(r) -> str:
    if r.ci_low is None or r.ci_low != r.ci_low:
        return "none"
    return f"{r.ci_low:.1f}–{r.ci_high:.1f}"
