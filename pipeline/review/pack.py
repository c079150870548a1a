"""The management-review pack (quality manual 12.1 a–g; ISO 9001:2015 9.3.2) as data.

:func:`build` reads everything through the door (:mod:`pipeline.publish`) as the quality
office and returns a :class:`Pack`: sections in the manual's order, each with paragraphs,
tables (every one stating its n and its interval method) and figures. A section for which
Sapat holds no data is present and marked for the office to complete; proposals drafted
from the data are marked as drafts. The renderers (:mod:`pipeline.review.render`) write
the same pack as DOCX, XLSX or HTML.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import duckdb
import pandas as pd

from pipeline.locale import number, t
from pipeline.publish import OFFICE, Tree, names, read

#: stakeholder questionnaires in the order the pack reports them (any others follow)
STAKEHOLDER_ORDER = ("student_experience", "teaching_evaluation", "graduate", "employer", "staff")


@dataclass
class Table:
    """One numbered table: a caption, the rows as shown (hidden cells as "n < 5") and a
    note stating its n and interval method."""

    caption: str
    frame: pd.DataFrame
    note: str = ""


@dataclass
class Figure:
    caption: str
    figure: object  # a plotly figure
    png: bytes | None = None


@dataclass
class Section:
    key: str  # "a" … "g", or a word for the added sections
    title: str
    paragraphs: list[str] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)
    subsections: list[Section] = field(default_factory=list)
    #: data (from Sapat), draft (from data, for the office to edit), or to_complete
    state: str = "data"


@dataclass
class Pack:
    title: str
    year: str
    lang: str
    university: str
    sections: list[Section]
    notes: list[str] = field(default_factory=list)

    def tables(self) -> list[Table]:
        out = []

        def walk(s: Section) -> None:
            out.extend(s.tables)
            for sub in s.subsections:
                walk(sub)

        for s in self.sections:
            walk(s)
        return out


@dataclass(frozen=True)
class Inputs:
    con: duckdb.DuckDBPyConnection
    tree: Tree
    min_n: int
    alpha: float
    adjust: str
    lang: str
    objectives: Sequence[Mapping]
    processes: pd.DataFrame | None = None

    def read(self, table: str, **filters) -> pd.DataFrame:
        return read(
            self.con,
            table,
            viewer=OFFICE,
            tree=self.tree,
            min_n=self.min_n,
            filters={k: v for k, v in filters.items() if v is not None},
        )


def _hidden(i: Inputs) -> str:
    return f"n < {i.min_n}"


def _fmt(x, lang: str, decimals: int = 1) -> str:
    return number(x, lang, decimals)


def _method_note(i: Inputs, frame: pd.DataFrame) -> str:
    methods = sorted({str(m) for m in frame.get("ci_method", pd.Series(dtype=str)).dropna()})
    conf = sorted({float(c) for c in frame.get("confidence", pd.Series(dtype=float)).dropna()})
    return t(
        "review.note_table",
        i.lang,
        method=", ".join(methods) or "—",
        level=", ".join(f"{100 * c:g} %" for c in conf) or "—",
        min_n=i.min_n,
    )


def _previous(waves: Sequence[str], year: str) -> str | None:
    before = [w for w in sorted(set(waves)) if w < year]
    return before[-1] if before else None


# ------------------------------------------------------------------ sections
def build(
    con: duckdb.DuckDBPyConnection,
    ws,
    *,
    year: str,
    lang: str,
    charts: bool = True,
) -> Pack:
    """The pack for academic ``year`` in ``lang`` (see the module's docstring)."""
    s = ws.settings
    inputs = Inputs(
        con=con,
        tree=Tree.of(ws.registry),
        min_n=s.min_n,
        alpha=s.stats.alpha,
        adjust=s.stats.adjust,
        lang=lang,
        objectives=list(ws.registry.objectives or []),
        processes=getattr(ws.registry, "processes", None),
    )
    lookup = names(con, lang)
    sections = [
        _objectives(inputs, year),
        _audits(inputs, year),
        _feedback(inputs, year, lookup, charts),
        _graduates(inputs, year),
        _nonconformities(inputs, year),
        _actions(inputs, year, lookup),
        _proposals(inputs, year, lookup),
        _response(inputs, year, lookup),
        _to_complete(inputs, "changes"),
        _to_complete(inputs, "research"),
    ]
    university = lookup["unit"].get(inputs.tree.university, inputs.tree.university)
    return Pack(
        title=t("review.title", lang, year=year),
        year=year,
        lang=lang,
        university=university,
        sections=sections,
        notes=[t("note.interval", lang), t("review.note_privacy", lang, min_n=s.min_n)],
    )


def _objectives(i: Inputs, year: str) -> Section:
    from pipeline.views.objectives import evaluate

    sec = Section("a", t("review.a", i.lang))
    if not i.objectives:
        return _mark(sec, i)
    judged = evaluate(
        i.con,
        i.objectives,
        viewer=OFFICE,
        tree=i.tree,
        min_n=i.min_n,
        alpha=i.alpha,
        lang=i.lang,
        wave=year,
    )
    counts = judged["status"].value_counts()
    sec.paragraphs.append(
        t(
            "review.a_summary",
            i.lang,
            n=judged["objective"].nunique(),
            met=int(counts.get("met", 0)),
            not_met=int(counts.get("not_met", 0)),
            undecided=int(counts.get("undecided", 0)),
            no_data=int(counts.get("no_data", 0)),
        )
    )
    shown = pd.DataFrame(
        {
            t("col.objective", i.lang): judged["objective"],
            t("review.col_title", i.lang): judged["title"],
            t("col.unit_name", i.lang): judged["unit_name"].fillna("—"),
            t("ui.target", i.lang): [
                f"{c} {_fmt(x, i.lang)}"
                for c, x in zip(judged["comparator"], judged["target"], strict=True)
            ],
            t("col.value", i.lang): [
                _hidden(i) if s == "hidden" else _fmt(v, i.lang)
                for s, v in zip(judged["status"], judged["value"], strict=True)
            ],
            t("col.ci", i.lang): [
                "" if lo is None or lo != lo else f"{_fmt(lo, i.lang)}–{_fmt(hi, i.lang)}"
                for lo, hi in zip(judged["ci_low"], judged["ci_high"], strict=True)
            ],
            t("col.status", i.lang): [t(f"ui.{s}", i.lang) for s in judged["status"]],
            t("col.trend", i.lang): judged["trend"].fillna(""),
        }
    )
    sec.tables.append(
        Table(
            t("review.a_table", i.lang, year=year),
            shown,
            t("note.objectives", i.lang) + " " + t("review.note_n_objectives", i.lang),
        )
    )
    sec.data = judged  # type: ignore[attr-defined] - for tests and the XLSX
    return sec


def _stored(i: Inputs, table: str) -> pd.DataFrame | None:
    have = {r[0] for r in i.con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
    if table not in have:
        return None
    return i.con.execute(f"SELECT * FROM {table}").fetchdf()  # a declared name, no value


def _audits(i: Inputs, year: str) -> Section:
    sec = Section("b", t("review.b", i.lang))
    rows = _stored(i, "qa_findings")
    if rows is None or rows.empty:
        return _mark(sec, i, t("review.b_none", i.lang))
    start, end = _year_bounds(year)
    dates = pd.to_datetime(rows["audit_date"], errors="coerce")
    rows = rows[(dates >= start) & (dates <= end)]
    if rows.empty:
        return _mark(sec, i, t("review.b_none", i.lang))
    sec.tables.append(
        Table(
            t("review.b_table", i.lang, year=year),
            _plain(rows.drop(columns=["created_by"], errors="ignore")),
        )
    )
    return sec


def _year_bounds(year: str) -> tuple[pd.Timestamp, pd.Timestamp]:
    first = int(year[:4])
    return pd.Timestamp(first, 9, 1), pd.Timestamp(first + 1, 8, 31)


def _plain(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.copy()
    for c in out.columns:
        if pd.api.types.is_datetime64_any_dtype(out[c]):
            out[c] = out[c].dt.strftime("%Y-%m-%d")
    return out.fillna("")


def _feedback(i: Inputs, year: str, lookup, charts: bool) -> Section:
    """12.1 c and 9.3.2 c 1): satisfaction per stakeholder group, with trends and the
    significant changes since the year before."""
    from pipeline.views.changes import change_list

    sec = Section("c", t("review.c", i.lang))
    dims = i.read("ind_dimensions", org_level=["university", "faculty"])
    present = [x for x in STAKEHOLDER_ORDER if x in set(dims["instrument"])]
    present += sorted(set(dims["instrument"]) - set(present))
    for inst in present:
        title = lookup["instrument"].get(inst, inst)
        sub = Section(f"c-{inst}", title)
        part = dims[dims["instrument"] == inst]
        uni = part[(part["org_level"] == "university")]
        waves = sorted(set(uni["wave"]))
        if year not in waves:
            sub.paragraphs.append(t("review.no_wave", i.lang, year=year))
            sub.state = "to_complete"
            sec.subsections.append(sub)
            continue
        trend = uni.pivot_table(
            index="dimension", columns="wave", values="pct_positive", aggfunc="first"
        )
        table = pd.DataFrame(
            {t("col.dimension_name", i.lang): [lookup["dimension"].get(d, d) for d in trend.index]}
        )
        for w in trend.columns:
            table[w] = [_fmt(v, i.lang) for v in trend[w]]
        now = uni[uni["wave"] == year].set_index("dimension")
        table[t("col.n", i.lang)] = [
            _fmt(now["n"].get(d), i.lang, 0) if d in now.index else "" for d in trend.index
        ]
        table[t("col.ci", i.lang) + f" {year}"] = [
            f"{_fmt(now.loc[d, 'pct_positive_ci_low'], i.lang)}–"
            f"{_fmt(now.loc[d, 'pct_positive_ci_high'], i.lang)}"
            if d in now.index and not now.loc[d, "suppressed"]
            else _hidden(i)
            for d in trend.index
        ]
        sub.tables.append(
            Table(
                t("review.c_trend", i.lang, name=title),
                table,
                _method_note(i, uni),
            )
        )
        fac = part[(part["org_level"] == "faculty") & (part["wave"] == year)]
        if len(fac):
            grid = fac.pivot_table(
                index="unit", columns="dimension", values="pct_positive", aggfunc="first"
            )
            hidden = fac[fac["suppressed"].astype(bool)].set_index(["unit", "dimension"]).index
            shown = pd.DataFrame(
                {t("col.unit_name", i.lang): [lookup["unit"].get(u, u) for u in grid.index]}
            )
            for d in grid.columns:
                shown[lookup["dimension"].get(d, d)] = [
                    _hidden(i) if (u, d) in hidden else _fmt(grid.loc[u, d], i.lang)
                    for u in grid.index
                ]
            sub.tables.append(
                Table(
                    t("review.c_units", i.lang, name=title, year=year),
                    shown,
                    _method_note(i, fac),
                )
            )
            if charts:
                sub.figures.append(
                    Figure(t("review.c_units", i.lang, name=title, year=year), _bar(fac, lookup, i))
                )
        changes = change_list(
            i.con,
            wave=year,
            viewer=OFFICE,
            tree=i.tree,
            min_n=i.min_n,
            alpha=i.alpha,
            adjust=i.adjust,
            level="faculty",
            instrument=inst,
            lang=i.lang,
        )
        if changes.considered:
            rows = changes.rows
            if rows.empty:
                sub.paragraphs.append(
                    t("review.c_no_changes", i.lang, m=changes.family_size, base=changes.wave_from)
                )
            else:
                sub.tables.append(
                    Table(
                        t("review.c_changes", i.lang, base=changes.wave_from, year=year),
                        pd.DataFrame(
                            {
                                t("col.unit_name", i.lang): rows["unit_name"],
                                t("col.item_name", i.lang): rows["item_name"],
                                t("col.n_change", i.lang): [
                                    f"{int(a)} → {int(b)}"
                                    for a, b in zip(rows["n_from"], rows["n_to"], strict=True)
                                ],
                                t("col.pct_change", i.lang): [
                                    f"{_fmt(a, i.lang)} → {_fmt(b, i.lang)}"
                                    for a, b in zip(rows["pct_from"], rows["pct_to"], strict=True)
                                ],
                                t("col.direction", i.lang): rows["direction_text"],
                                t("col.p_adjusted", i.lang): [
                                    "<0.001" if p < 0.001 else _fmt(p, i.lang, 3)
                                    for p in rows["p_adjusted"]
                                ],
                            }
                        ),
                        t(
                            "note.changes",
                            i.lang,
                            adjust=changes.adjust,
                            m=changes.family_size,
                            alpha=_fmt(changes.alpha, i.lang, 2),
                        ),
                    )
                )
        sec.subsections.append(sub)
    if not sec.subsections:
        return _mark(sec, i)
    return sec


def _bar(frame: pd.DataFrame, lookup, i: Inputs):
    import plotly.graph_objects as go

    shown = frame[~frame["suppressed"].astype(bool)]
    fig = go.Figure()
    palette = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442")
    for k, (dim, part) in enumerate(shown.groupby("dimension", sort=True)):
        fig.add_trace(
            go.Bar(
                x=[lookup["unit"].get(u, u) for u in part["unit"]],
                y=part["pct_positive"],
                name=lookup["dimension"].get(dim, dim),
                marker_color=palette[k % len(palette)],
            )
        )
    fig.update_layout(
        barmode="group",
        template="plotly_white",
        height=460,
        width=1100,
        margin={"l": 50, "r": 10, "t": 20, "b": 160},
        yaxis={"range": [0, 100], "title": t("col.pct_positive", i.lang)},
        legend={"x": 1.02, "y": 1, "font": {"size": 10}},
        separators=", " if i.lang in ("ky", "ru") else ".,",
    )
    return fig


def _graduates(i: Inputs, year: str) -> Section:
    """12.1 d: graduates' results (employment, work in the field, recommendation)."""
    sec = Section("d", t("review.d", i.lang))
    rows = i.read("ind_outcomes", org_level=["university", "faculty"], wave=year)
    if rows.empty:
        return _mark(sec, i, t("review.no_wave", i.lang, year=year))
    lookup = names(i.con, i.lang)
    shown = pd.DataFrame(
        {
            t("ui.instrument", i.lang): [
                lookup["instrument"].get(x, x) for x in rows["instrument"]
            ],
            t("col.unit_name", i.lang): [lookup["unit"].get(u, u) for u in rows["unit"]],
            t("review.col_measure", i.lang): [t(f"measure.{m}", i.lang) for m in rows["measure"]],
            t("col.n", i.lang): [
                _hidden(i) if h else _fmt(n, i.lang, 0)
                for h, n in zip(rows["suppressed"], rows["n"], strict=True)
            ],
            t("col.value", i.lang): [
                "" if h else _fmt(v, i.lang)
                for h, v in zip(rows["suppressed"], rows["value"], strict=True)
            ],
            t("col.ci", i.lang): [
                "" if h or lo != lo else f"{_fmt(lo, i.lang)}–{_fmt(hi, i.lang)}"
                for h, lo, hi in zip(
                    rows["suppressed"], rows["ci_low"], rows["ci_high"], strict=True
                )
            ],
        }
    )
    sec.tables.append(Table(t("review.d_table", i.lang, year=year), shown, _method_note(i, rows)))
    return sec


def _nonconformities(i: Inputs, year: str) -> Section:
    sec = Section("e", t("review.e", i.lang))
    rows = _stored(i, "qa_nonconformities")
    if rows is None or rows.empty:
        return _mark(sec, i, t("review.e_none", i.lang))
    rows = rows[rows["wave"].isna() | (rows["wave"] <= year)]
    wanted = ("nc_id", "source", "unit", "instrument", "indicator", "wave", "detail")
    keep = [c for c in (*wanted, "status", "reason") if c in rows]
    sec.tables.append(Table(t("review.e_table", i.lang, year=year), _plain(rows[keep])))
    return sec


def _actions(i: Inputs, year: str, lookup) -> Section:
    """12.1 f and 9.3.2 a: every action's status and, once a later wave exists, whether its
    indicator moved, with the test that says so (the PDCA cycle, measured)."""
    sec = Section("f", t("review.f", i.lang))
    rows = _stored(i, "qa_actions")
    if rows is None or rows.empty:
        return _mark(sec, i, t("review.f_none", i.lang))
    follow = [followup(i, r, year) for r in rows.itertuples()]
    shown = pd.DataFrame(
        {
            "#": rows["action_id"],
            t("col.unit_name", i.lang): [lookup["unit"].get(u, u) for u in rows["unit"]],
            t("review.col_indicator", i.lang): [
                lookup["item"].get(x, lookup["dimension"].get(x, x)) for x in rows["indicator"]
            ],
            t("review.col_owner", i.lang): rows["owner_process"],
            t("review.col_due", i.lang): rows["due_date"].astype(str),
            t("review.col_description", i.lang): rows["description"],
            t("col.status", i.lang): [t(f"action.{s}", i.lang) for s in rows["status"]],
            t("review.col_followup", i.lang): [f["text"] for f in follow],
        }
    )
    sec.tables.append(
        Table(t("review.f_table", i.lang, year=year), shown, t("review.f_note", i.lang))
    )
    sec.data = pd.DataFrame(follow)  # type: ignore[attr-defined]
    return sec


def followup(i: Inputs, action, year: str) -> dict:
    """Did the action's indicator move between the wave that prompted it and ``year``?
    % positive then and now for the action's unit, tested (Fisher's exact test where counts
    are small, else the two-proportion z test); a dimension is judged on its score's %
    positive."""
    from pipeline.methods.inference import approximation_poor, fisher_exact_p, two_proportion_test

    base = getattr(action, "opened_wave", None)
    out = {"action_id": action.action_id, "from": base, "to": year, "text": ""}
    if not base or base >= year:
        out["text"] = t("review.f_wait", i.lang)
        return out
    table = "ind_items"
    filters = {"item": action.indicator}
    dims = i.read("ind_dimensions", unit=action.unit, dimension=action.indicator)
    if len(dims):
        table, filters = "ind_dimensions", {"dimension": action.indicator}
    rows = i.read(table, unit=action.unit, wave=[base, year], **filters)
    if action.instrument:
        rows = rows[rows["instrument"] == action.instrument]
    rows = rows[~rows["suppressed"].astype(bool)].set_index("wave")
    if base not in rows.index or year not in rows.index:
        out["text"] = t("review.f_nodata", i.lang)
        return out
    a, b = rows.loc[base], rows.loc[year]
    n0, n1 = int(a["n"]), int(b["n"])
    x0 = round(float(a["pct_positive"]) * n0 / 100)
    x1 = round(float(b["pct_positive"]) * n1 / 100)
    res = two_proportion_test(x0, n0, x1, n1).iloc[0]
    p, method = float(res["p_value"]), "z"
    if approximation_poor(x0, n0, x1, n1).all():
        p, method = float(fisher_exact_p(x0, n0, x1, n1)[0]), "Fisher"
    moved = p < i.alpha
    if not moved:
        word = t("review.f_same", i.lang)
    else:
        word = t("review.f_up" if x1 / n1 > x0 / n0 else "review.f_down", i.lang)
    out.update(
        pct_from=float(a["pct_positive"]),
        pct_to=float(b["pct_positive"]),
        n_from=n0,
        n_to=n1,
        p_value=p,
        test=method,
        moved=moved,
        text=f"{base} → {year}: {_fmt(a['pct_positive'], i.lang)} → "
        f"{_fmt(b['pct_positive'], i.lang)} % (n {n0} → {n1}; {method}, p = "
        f"{_fmt(p, i.lang, 3)}): {word}",
    )
    return out


def _proposals(i: Inputs, year: str, lookup) -> Section:
    """12.1 g: proposals drafted from the data, for the office to edit."""
    from pipeline.views.changes import change_list
    from pipeline.views.objectives import evaluate

    sec = Section("g", t("review.g", i.lang), state="draft")
    sec.paragraphs.append(t("review.g_draft", i.lang))
    falls = change_list(
        i.con,
        wave=year,
        viewer=OFFICE,
        tree=i.tree,
        min_n=i.min_n,
        alpha=i.alpha,
        adjust=i.adjust,
        level="faculty",
        lang=i.lang,
    ).rows
    falls = falls[falls["direction"] == "worse"].head(5)
    for r in falls.itertuples():
        sec.paragraphs.append(
            t(
                "review.g_decline",
                i.lang,
                unit=r.unit_name,
                item=r.item_name,
                then=_fmt(r.pct_from, i.lang),
                now=_fmt(r.pct_to, i.lang),
            )
        )
    if i.objectives:
        judged = evaluate(
            i.con, i.objectives, viewer=OFFICE, tree=i.tree, min_n=i.min_n, lang=i.lang, wave=year
        )
        missed = judged[judged["status"] == "not_met"]
        for obj, part in missed.groupby("objective", sort=True):
            sec.paragraphs.append(
                t(
                    "review.g_objective",
                    i.lang,
                    objective=obj,
                    title=part["title"].iloc[0],
                    n=len(part),
                )
            )
    drivers = i.read("ind_drivers", wave=year)
    dims = i.read("ind_dimensions", org_level="university", wave=year)
    if len(drivers) and len(dims):
        score = dims.set_index(["instrument", "dimension"])["pct_positive"]
        ranked = drivers[drivers["rank"] <= 2]
        for r in ranked.itertuples():
            value = score.get((r.instrument, r.predictor))
            if value is not None and value == value and value < 50:
                sec.paragraphs.append(
                    t(
                        "review.g_driver",
                        i.lang,
                        dimension=lookup["dimension"].get(r.predictor, r.predictor),
                        outcome=lookup["item"].get(r.outcome, r.outcome),
                        pct=_fmt(value, i.lang),
                    )
                )
    return sec


def _response(i: Inputs, year: str, lookup) -> Section:
    sec = Section("response", t("review.response", i.lang))
    rows = i.read("ind_response", org_level=["university", "faculty"], wave=year)
    if rows.empty:
        return _mark(sec, i, t("review.no_wave", i.lang, year=year))
    shown = pd.DataFrame(
        {
            t("ui.instrument", i.lang): [
                lookup["instrument"].get(x, x) for x in rows["instrument"]
            ],
            t("col.unit_name", i.lang): [lookup["unit"].get(u, u) for u in rows["unit"]],
            t("review.col_respondents", i.lang): [
                _hidden(i) if h else _fmt(n, i.lang, 0)
                for h, n in zip(rows["suppressed"], rows["respondents"], strict=True)
            ],
            t("review.col_headcount", i.lang): [_fmt(n, i.lang, 0) for n in rows["headcount"]],
            t("col.response_rate", i.lang): [
                "" if h else _fmt(100 * r, i.lang)
                for h, r in zip(rows["suppressed"], rows["response_rate"], strict=True)
            ],
            t("col.indicative", i.lang): [
                "" if v is None or v != v else t("yes" if v else "no", i.lang)
                for v in rows["indicative_only"]
            ],
        }
    )
    sec.tables.append(Table(t("review.response_table", i.lang, year=year), shown))
    return sec


def _to_complete(i: Inputs, key: str) -> Section:
    return _mark(Section(key, t(f"review.{key}", i.lang)), i)


def _mark(sec: Section, i: Inputs, why: str | None = None) -> Section:
    sec.state = "to_complete"
    sec.paragraphs.append(why or t("review.to_complete", i.lang))
    return sec
