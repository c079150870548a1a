"""What each dashboard page shows, as data and figures: importable and tested without a
browser or a server.

Every function takes a :class:`Context` (a read-only connection to the published snapshot,
the viewer, the reporting tree and the thresholds) and the page's :class:`Filters`, reads
only through the door (:func:`pipeline.publish.read` and the views built on it), and
returns a :class:`View`: a title, a plotly figure (or none), the table behind it (what a
download writes: after suppression, codes and names) and notes. Nothing here knows a
questionnaire by name; every scale length is drawn from the rows' own scale columns.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import duckdb
import numpy as np
import pandas as pd
import plotly.graph_objects as go

from pipeline.locale import number, t
from pipeline.methods.multiplicity import adjust_pvalues
from pipeline.publish import Tree, Viewer, ViewerRole, names, read

#: Okabe–Ito: a palette told apart with every common colour-vision deficiency
PALETTE = (
    "#0072B2",
    "#E69F00",
    "#009E73",
    "#CC79A7",
    "#56B4E9",
    "#D55E00",
    "#F0E442",
    "#000000",
)
#: answer colours from the most unfavourable to the most favourable (blue-orange diverging,
#: safe for colour-blind readers); a neutral middle is grey
NEGATIVE, NEUTRAL, POSITIVE = (
    ("#B35806", "#F1A340", "#FEE0B6"),
    "#D9D9D9",
    (
        "#D8DAEB",
        "#998EC3",
        "#542788",
    ),
)
LEVELS = ("faculty", "department", "programme")


@dataclass(frozen=True)
class Context:
    """What every view needs besides its filters."""

    con: duckdb.DuckDBPyConnection
    viewer: Viewer
    tree: Tree
    min_n: int = 5
    alpha: float = 0.05
    adjust: str = "holm"
    lang: str = "en"
    min_n_reliable: int = 10
    min_rate_reliable: float = 0.5
    comment_min_n: int = 10
    objectives: Sequence[dict] = ()

    def read(self, table: str, **filters) -> pd.DataFrame:
        filters = {k: v for k, v in filters.items() if v is not None}
        return read(
            self.con,
            table,
            viewer=self.viewer,
            tree=self.tree,
            min_n=self.min_n,
            filters=filters,
        )


@dataclass(frozen=True)
class Filters:
    """The filter bar's state (also the URL's query string)."""

    instrument: str | None = None
    waves: tuple[str, ...] = ()
    level: str = "faculty"
    unit: str | None = None
    item: str | None = None
    dimension: str | None = None

    @property
    def wave(self) -> str | None:
        """The one wave a single-wave page shows: the latest chosen."""
        return max(self.waves) if self.waves else None


@dataclass
class View:
    """What a page shows: a figure, the table behind it (the download) and notes."""

    title: str
    figure: go.Figure | None = None
    table: pd.DataFrame = field(default_factory=pd.DataFrame)
    notes: list[str] = field(default_factory=list)
    #: a message instead of a figure (nothing to show, not allowed for this role)
    message: str | None = None


# ------------------------------------------------------------------ helpers
def _names(ctx: Context) -> dict[str, dict[str, str]]:
    return names(ctx.con, ctx.lang)


def _within(ctx: Context, frame: pd.DataFrame, unit: str | None) -> pd.DataFrame:
    if unit is None or "unit" not in frame:
        return frame
    return frame[frame["unit"].isin(ctx.tree.within(unit))]


def _name_columns(ctx: Context, frame: pd.DataFrame) -> pd.DataFrame:
    from pipeline.views.indicators import with_names

    return with_names(ctx.con, frame, ctx.lang)


def _subject(f: Filters) -> tuple[str, str, str | None]:
    """(table, subject column, value): a dimension's scores or an item's."""
    if f.dimension:
        return "ind_dimensions", "dimension", f.dimension
    return "ind_items", "item", f.item


def _default_item(ctx: Context, instrument: str | None) -> str | None:
    """The questionnaire's overall item, else its first rating item; without a
    questionnaire, that of the one with the most answers loaded."""
    if instrument is None:
        top = ctx.con.execute(
            "SELECT instrument FROM pub_loads WHERE status = 'loaded' GROUP BY instrument "
            "ORDER BY sum(rows_loaded) DESC, instrument LIMIT 1"
        ).fetchone()
        instrument = top[0] if top else None
    rows = ctx.con.execute(
        "SELECT item, dimension FROM dim_items WHERE role = 'item' "
        "AND (? IS NULL OR instrument = ?) ORDER BY instrument, version DESC, item",
        [instrument, instrument],
    ).fetchall()
    if not rows:
        return None
    overall = [r[0] for r in rows if r[0].endswith("overall")]
    return overall[0] if overall else rows[0][0]


def suppressed_text(ctx: Context) -> str:
    """What a hidden cell shows: never a number."""
    return f"n < {ctx.min_n}"


def _empty(title: str, message: str) -> View:
    return View(title=title, message=message)


def _layout(fig: go.Figure, title: str, ctx: Context, *, x: str = "", y: str = "") -> go.Figure:
    fig.update_layout(
        title=title,
        template="plotly_white",
        colorway=list(PALETTE),
        separators=", " if ctx.lang in ("ky", "ru") else ".,",
        margin={"l": 60, "r": 20, "t": 60, "b": 50},
        legend={"orientation": "h", "y": -0.2},
        xaxis_title=x,
        yaxis_title=y,
        font={"family": "system-ui, sans-serif"},
    )
    return fig


# ------------------------------------------------------------------- trends
def trends(ctx: Context, f: Filters) -> View:
    """An indicator over waves for the chosen units: % positive with its interval as a
    band, a marker where the change from the wave before is significant after the
    correction over every comparison the chart shows, and a break where the question
    changed between waves (not comparable)."""
    table, subject, value = _subject(f)
    value = value or _default_item(ctx, f.instrument)
    title = t("ui.trends", ctx.lang)
    if value is None:
        return _empty(title, t("ui.nothing", ctx.lang))
    level = f.level or "faculty"
    rows = ctx.read(table, org_level=level, instrument=f.instrument, **{subject: value})
    rows = _within(ctx, rows, f.unit)
    uni = ctx.read(table, org_level="university", instrument=f.instrument, **{subject: value})
    rows = pd.concat([uni, rows], ignore_index=True)
    if f.waves:
        rows = rows[rows["wave"].isin(f.waves)]
    if rows.empty:
        return _empty(title, t("ui.nothing", ctx.lang))
    changes = pd.DataFrame()
    if subject == "item":
        changes = ctx.read(
            "ind_changes",
            instrument=f.instrument,
            item=value,
            test="two_proportion_z",
            org_level=[level, "university"],
        )
        changes = changes[changes["unit"].isin(set(rows["unit"]))]
        if f.waves:
            changes = changes[changes["wave"].isin(f.waves)]
        p = pd.to_numeric(changes["p_value"], errors="coerce").to_numpy(dtype=float)
        changes = changes.assign(p_chart=adjust_pvalues(p, ctx.adjust))
    lookup = _names(ctx)
    fig = go.Figure()
    hidden = []
    for i, (unit, part) in enumerate(rows.groupby("unit", sort=False)):
        part = part.sort_values("wave")
        colour = PALETTE[i % len(PALETTE)]
        name = lookup["unit"].get(unit, unit)
        shown = part[~part["suppressed"].astype(bool)]
        if shown.empty:
            hidden.append(name)
            continue
        waves = list(shown["wave"])
        y = pd.to_numeric(shown["pct_positive"]).tolist()
        lo = pd.to_numeric(shown["pct_positive_ci_low"]).tolist()
        hi = pd.to_numeric(shown["pct_positive_ci_high"]).tolist()
        if not changes.empty:
            # a wave whose predecessor was not compared (another wording): break the line
            compared = set(changes.loc[changes["unit"] == unit, "wave"])
            xs, ys, los, his = [], [], [], []
            for k, w in enumerate(waves):
                if k and w not in compared:
                    xs.append(None), ys.append(None), los.append(None), his.append(None)
                xs.append(w), ys.append(y[k]), los.append(lo[k]), his.append(hi[k])
            waves, y, lo, hi = xs, ys, los, his
        fig.add_trace(
            go.Scatter(
                x=waves + waves[::-1],
                y=hi + lo[::-1],
                fill="toself",
                fillcolor=_alpha(colour, 0.15),
                mode="lines",
                line={"width": 0},
                hoverinfo="skip",
                showlegend=False,
                connectgaps=False,
            )
        )
        fig.add_trace(
            go.Scatter(
                x=waves,
                y=y,
                mode="lines+markers",
                name=name,
                line={"color": colour, "width": 3 if unit == ctx.tree.university else 2},
                connectgaps=False,
            )
        )
        if not changes.empty:
            sig = changes[(changes["unit"] == unit) & (changes["p_chart"] < ctx.alpha)]
            if len(sig):
                at = shown.set_index("wave")["pct_positive"]
                fig.add_trace(
                    go.Scatter(
                        x=list(sig["wave"]),
                        y=[float(at.get(w, np.nan)) for w in sig["wave"]],
                        mode="markers",
                        marker={"symbol": "star", "size": 16, "color": colour},
                        name=f"{name}: {t('ui.significant', ctx.lang)}",
                        showlegend=False,
                    )
                )
    label = (lookup["dimension"] if subject == "dimension" else lookup["item"]).get(value, value)
    _layout(fig, label, ctx, y=t("col.pct_positive", ctx.lang))
    fig.update_yaxes(range=[0, 100])
    notes = [t("note.interval", ctx.lang), t("ui.star", ctx.lang)]
    if hidden:
        notes.append(f"{suppressed_text(ctx)}: {', '.join(hidden)}")
    keep = [
        c
        for c in (
            "instrument",
            "wave",
            "org_level",
            "unit",
            subject,
            "n",
            "mean",
            "pct_positive",
            "pct_positive_ci_low",
            "pct_positive_ci_high",
            "indicative_only",
            "suppressed",
        )
        if c in rows
    ]
    return View(title=title, figure=fig, table=_name_columns(ctx, rows[keep]), notes=notes)


def _alpha(colour: str, a: float) -> str:
    r, g, b = (int(colour[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{a})"


# ------------------------------------------------------------------ compare
def compare(ctx: Context, f: Filters) -> View:
    """Units of one level ranked by % positive with their intervals against the
    university's value, and a funnel plot (% positive against n with the limits chance
    alone would keep a unit within); units that differ from the rest of the university
    after correction are marked."""
    table, subject, value = _subject(f)
    value = value or _default_item(ctx, f.instrument)
    title = t("ui.compare", ctx.lang)
    if value is None:
        return _empty(title, t("ui.nothing", ctx.lang))
    level = f.level or "faculty"
    rows = ctx.read(table, org_level=level, instrument=f.instrument, **{subject: value})
    rows = _within(ctx, rows, f.unit)
    wave = f.wave or (max(rows["wave"]) if len(rows) else None)
    rows = rows[rows["wave"] == wave]
    if rows.empty:
        return _empty(title, t("ui.nothing", ctx.lang))
    uni = ctx.read(
        table, org_level="university", wave=wave, instrument=f.instrument, **{subject: value}
    )
    uni_value = float(uni["pct_positive"].iloc[0]) if len(uni) else math.nan
    rows = rows.copy()
    rows["vs_rest"] = ""
    if subject == "item":
        bench = ctx.read(
            "ind_benchmark", wave=wave, org_level=level, item=value, test="two_proportion_z"
        )
        bench = bench.set_index("unit")
        p = pd.to_numeric(rows["unit"].map(bench["p_adjusted"]), errors="coerce")
        diff = pd.to_numeric(rows["unit"].map(bench["estimate"]), errors="coerce")
        rows.loc[(p < ctx.alpha) & (diff > 0), "vs_rest"] = t("higher", ctx.lang)
        rows.loc[(p < ctx.alpha) & (diff < 0), "vs_rest"] = t("lower", ctx.lang)
    lookup = _names(ctx)
    rows["unit_name"] = rows["unit"].map(lookup["unit"]).fillna(rows["unit"])
    shown = rows[~rows["suppressed"].astype(bool)].sort_values("pct_positive")
    hidden = rows[rows["suppressed"].astype(bool)]
    y = pd.to_numeric(shown["pct_positive"])
    lo = y - pd.to_numeric(shown["pct_positive_ci_low"])
    hi = pd.to_numeric(shown["pct_positive_ci_high"]) - y
    marked = shown["vs_rest"] != ""
    fig = go.Figure(
        go.Scatter(
            x=y,
            y=shown["unit_name"],
            mode="markers",
            error_x={"type": "data", "array": hi, "arrayminus": lo},
            marker={
                "size": 11,
                "color": [PALETTE[5] if m else PALETTE[0] for m in marked],
                "symbol": ["diamond" if m else "circle" for m in marked],
            },
            name=t("col.pct_positive", ctx.lang),
        )
    )
    if not math.isnan(uni_value):
        fig.add_vline(
            x=uni_value,
            line_dash="dash",
            annotation_text=f"{t('col.university_pct', ctx.lang)} {number(uni_value, ctx.lang)}",
        )
    _layout(fig, f"{lookup['item'].get(value, value)} · {wave}", ctx)
    fig.update_xaxes(range=[0, 100], title=t("col.pct_positive", ctx.lang))
    fig.update_layout(height=max(320, 40 * len(shown) + 120))
    funnel = funnel_plot(ctx, shown, uni_value)
    notes = [t("note.interval", ctx.lang), t("ui.diamond", ctx.lang)]
    if len(hidden):
        notes.append(f"{suppressed_text(ctx)}: {', '.join(hidden['unit_name'])}")
    keep = [
        c
        for c in (
            "instrument",
            "wave",
            "org_level",
            "unit",
            subject,
            "n",
            "pct_positive",
            "pct_positive_ci_low",
            "pct_positive_ci_high",
            "vs_rest",
            "suppressed",
        )
        if c in rows
    ]
    view = View(title=title, figure=fig, table=_name_columns(ctx, rows[keep]), notes=notes)
    view.extra = funnel  # type: ignore[attr-defined]
    return view


def funnel_plot(ctx: Context, rows: pd.DataFrame, centre: float) -> go.Figure:
    """% positive against n, with the 95 % and 99.8 % limits around the university's value
    (Spiegelhalter's funnel plot): a unit outside them is unlikely to differ by chance."""
    fig = go.Figure()
    n = pd.to_numeric(rows["n"], errors="coerce")
    if len(rows) and not math.isnan(centre):
        p = centre / 100
        grid = np.linspace(max(2.0, float(n.min()) * 0.8), float(n.max()) * 1.1, 100)
        for z, dash in ((1.96, "dash"), (3.09, "dot")):
            half = 100 * z * np.sqrt(p * (1 - p) / grid)
            for sign in (1, -1):
                fig.add_trace(
                    go.Scatter(
                        x=grid,
                        y=np.clip(centre + sign * half, 0, 100),
                        mode="lines",
                        line={"dash": dash, "color": "#777777", "width": 1},
                        hoverinfo="skip",
                        showlegend=False,
                    )
                )
        fig.add_hline(y=centre, line_color="#777777")
    fig.add_trace(
        go.Scatter(
            x=n,
            y=pd.to_numeric(rows["pct_positive"]),
            mode="markers",
            text=rows.get("unit_name", rows["unit"]),
            marker={"size": 10, "color": PALETTE[0]},
            name=t("col.unit_name", ctx.lang),
        )
    )
    _layout(fig, t("ui.funnel", ctx.lang), ctx, x=t("col.n", ctx.lang))
    fig.update_yaxes(title=t("col.pct_positive", ctx.lang))
    return fig


# -------------------------------------------------------------------- items
def items(ctx: Context, f: Filters) -> View:
    """Every item's whole answer distribution for one unit and wave, as diverging stacked
    bars (unfavourable answers left of zero, favourable right), for any scale length."""
    title = t("ui.items", ctx.lang)
    unit = f.unit or _home(ctx)
    level_rows = ctx.read("ind_items", instrument=f.instrument, unit=unit)
    if f.wave:
        level_rows = level_rows[level_rows["wave"] == f.wave]
    elif len(level_rows):
        level_rows = level_rows[level_rows["wave"] == level_rows["wave"].max()]
    if level_rows.empty:
        return _empty(title, t("ui.nothing", ctx.lang))
    if f.dimension:
        level_rows = level_rows[level_rows["dimension"] == f.dimension]
    lookup = _names(ctx)
    rows = level_rows[~level_rows["suppressed"].astype(bool)]
    fig = go.Figure()
    labels = [lookup["item"].get(i, i) for i in rows["item"]]
    short = [(x if len(x) <= 60 else x[:57] + "…") for x in labels]
    low = int(rows["scale_low"].min()) if len(rows) else 1
    high = int(rows["scale_high"].max()) if len(rows) else 5
    for code in range(low, high + 1):
        col = f"pct_{code}"
        if col not in rows:
            continue
        share = pd.to_numeric(rows[col], errors="coerce").fillna(0.0)
        lo_, hi_ = rows["scale_low"].astype(float), rows["scale_high"].astype(float)
        positive = rows["positive_from"].astype(float)
        negative = rows["negative_to"].astype(float)
        side = np.where(code >= positive, 1.0, np.where(code <= negative, -1.0, 0.0))
        inside = (code >= lo_) & (code <= hi_)
        # a neutral answer sits half on each side of zero
        values = np.where(side == 0, share / 2, share * side) * inside
        colour = _answer_colour(code, low, high)
        fig.add_trace(
            go.Bar(
                y=short,
                x=values,
                orientation="h",
                name=str(code),
                marker_color=colour,
                customdata=share,
                hovertemplate="%{y}: %{customdata:.1f} %<extra>" + str(code) + "</extra>",
            )
        )
        if (side == 0).any():
            fig.add_trace(
                go.Bar(
                    y=short,
                    x=-np.where(side == 0, share / 2, 0.0) * inside,
                    orientation="h",
                    marker_color=colour,
                    showlegend=False,
                    hoverinfo="skip",
                )
            )
    _layout(fig, f"{lookup['unit'].get(unit, unit)} · {rows['wave'].max()}", ctx)
    fig.update_layout(barmode="relative", height=max(320, 32 * len(rows) + 140))
    fig.update_xaxes(title="%", range=[-100, 100])
    fig.update_yaxes(autorange="reversed")
    pct_cols = [c for c in level_rows.columns if c.startswith("pct_") and c[4:].isdigit()]
    keep = ["instrument", "wave", "unit", "item", "n", *pct_cols, "pct_positive", "suppressed"]
    table = _name_columns(ctx, level_rows[keep].dropna(axis=1, how="all"))
    notes = []
    if (level_rows["suppressed"].astype(bool)).any():
        notes.append(f"{suppressed_text(ctx)}: {t('ui.hidden_items', ctx.lang)}")
    return View(title=title, figure=fig, table=table, notes=notes)


def _answer_colour(code: int, low: int, high: int) -> str:
    """Colour of an answer code on a diverging scale of any length: darker the further
    from the middle, orange for unfavourable, purple for favourable, grey in the middle."""
    mid = (low + high) / 2
    if code == mid or high == low:
        return NEUTRAL
    k = round(abs(code - mid) / (high - mid) * (len(POSITIVE) - 1))
    return NEGATIVE[len(NEGATIVE) - 1 - k] if code < mid else POSITIVE[k]


def _home(ctx: Context) -> str:
    """The unit a viewer starts from: their own, or the university."""
    return ctx.viewer.units[0] if ctx.viewer.units else ctx.tree.university


# ------------------------------------------------------------- stakeholders
def stakeholders(ctx: Context, f: Filters) -> View:
    """For one unit (a programme): each questionnaire's dimension scores side by side:
    students', graduates', employers' views of the same programme."""
    title = t("ui.stakeholders", ctx.lang)
    unit = f.unit or _home(ctx)
    rows = ctx.read("ind_dimensions", unit=unit)
    if f.wave:
        rows = rows[rows["wave"] == f.wave]
    elif len(rows):
        latest = rows.groupby("instrument")["wave"].transform("max")
        rows = rows[rows["wave"] == latest]
    if rows.empty:
        return _empty(title, t("ui.nothing", ctx.lang))
    lookup = _names(ctx)
    fig = go.Figure()
    for i, (inst, part) in enumerate(rows.groupby("instrument", sort=True)):
        part = part[~part["suppressed"].astype(bool)]
        fig.add_trace(
            go.Bar(
                x=[lookup["dimension"].get(d, d) for d in part["dimension"]],
                y=pd.to_numeric(part["pct_positive"]),
                name=lookup["instrument"].get(inst, inst),
                marker_color=PALETTE[i % len(PALETTE)],
                error_y={
                    "type": "data",
                    "array": pd.to_numeric(part["pct_positive_ci_high"])
                    - pd.to_numeric(part["pct_positive"]),
                    "arrayminus": pd.to_numeric(part["pct_positive"])
                    - pd.to_numeric(part["pct_positive_ci_low"]),
                },
            )
        )
    _layout(fig, lookup["unit"].get(unit, unit), ctx, y=t("col.pct_positive", ctx.lang))
    fig.update_layout(barmode="group")
    fig.update_yaxes(range=[0, 100])
    keep = [
        "instrument",
        "wave",
        "unit",
        "dimension",
        "n",
        "pct_positive",
        "pct_positive_ci_low",
        "pct_positive_ci_high",
        "suppressed",
    ]
    return View(
        title=title,
        figure=fig,
        table=_name_columns(ctx, rows[[c for c in keep if c in rows]]),
        notes=[t("note.interval", ctx.lang)],
    )


# ----------------------------------------------------------------- teaching
def teaching(ctx: Context, f: Filters) -> View:
    """Teaching evaluation per teacher × discipline (``ind_teaching``), for the roles that
    may see teachers (the quality office and the rector all, a dean the teachers of their
    faculty's departments, each teacher their own; the door decides which): each
    item's % positive as a heatmap whose rows are "teacher · discipline" (a hidden cell
    reads "n < 5", never a number), on the chosen wave (else the latest); the table
    gives n, % positive and its interval."""
    title = t("ui.teaching", ctx.lang)
    if ctx.viewer.role is ViewerRole.PROGRAMME_LEADER:
        return _empty(title, t("ui.not_for_role", ctx.lang))
    rows = ctx.read("ind_teaching", instrument=f.instrument, wave=f.wave, item=f.item)
    if f.unit is not None:
        rows = rows[rows["teacher"].isin(ctx.tree.within(f.unit))]
    if f.dimension:
        rows = rows[rows["dimension"] == f.dimension]
    if rows.empty:
        return _empty(title, t("ui.nothing", ctx.lang))
    if f.instrument is None:  # the questionnaire with the most cells
        sizes = rows.groupby("instrument").size()
        rows = rows[rows["instrument"] == sizes.sort_index().idxmax()]
    rows = rows[rows["wave"] == rows["wave"].max()].copy()
    wave = rows["wave"].iloc[0]
    lookup = _names(ctx)
    rows["row"] = _teaching_rows(ctx, rows, lookup)
    hidden = rows["suppressed"].astype(bool)
    pct = pd.to_numeric(rows["pct_positive"], errors="coerce").where(~hidden)
    rows["cell"] = [
        suppressed_text(ctx) if h else number(v, ctx.lang, 0)
        for h, v in zip(hidden, pct, strict=True)
    ]
    rows["hover"] = [
        suppressed_text(ctx)
        if h
        else f"{number(v, ctx.lang)} % ({number(lo, ctx.lang)}–{number(hi, ctx.lang)}), "
        f"n = {number(n, ctx.lang, 0)}"
        for h, v, lo, hi, n in zip(
            hidden,
            pct,
            pd.to_numeric(rows["pct_positive_ci_low"], errors="coerce"),
            pd.to_numeric(rows["pct_positive_ci_high"], errors="coerce"),
            pd.to_numeric(rows["n"], errors="coerce"),
            strict=True,
        )
    ]
    order = list(dict.fromkeys(rows["row"]))
    items = list(dict.fromkeys(rows.sort_values(["dimension", "item"], na_position="last")["item"]))
    x = [lookup["item"].get(i, i) for i in items]
    x = [(v if len(v) <= 40 else v[:37] + "…") for v in x]
    x = [v if x.count(v) == 1 else f"{v} ({i})" for v, i in zip(x, items, strict=True)]
    # a reverse-worded question (agreeing is unfavourable) is marked, and said so below
    reverse = set(rows.loc[rows["reverse"].fillna(False).astype(bool), "item"])
    x = [f"↺ {v}" if i in reverse else v for v, i in zip(x, items, strict=True)]

    def grid(values: pd.Series) -> np.ndarray:
        table = rows.assign(_v=values).pivot(index="row", columns="item", values="_v")
        return table.reindex(index=order, columns=items).to_numpy()

    text, hover = grid(rows["cell"]), grid(rows["hover"])
    fig = go.Figure(
        go.Heatmap(
            z=grid(pct).astype(float),
            x=x,
            y=order,
            text=text,
            texttemplate="%{text}",
            customdata=hover,
            hovertemplate="%{y}<br>%{x}: %{customdata}<extra></extra>",
            colorscale="Cividis",
            zmin=0,
            zmax=100,
            colorbar={"title": "%"},
            xgap=1,
            ygap=1,
        )
    )
    if hidden.any():  # hidden cells in grey, reading "n < 5"
        fig.add_trace(
            go.Heatmap(
                z=np.where(grid(hidden.astype(float)) == 1, 1.0, np.nan),
                x=x,
                y=order,
                text=text,
                texttemplate="%{text}",
                customdata=hover,
                hovertemplate="%{y}<br>%{x}: %{customdata}<extra></extra>",
                colorscale=[[0, NEUTRAL], [1, NEUTRAL]],
                showscale=False,
                xgap=1,
                ygap=1,
            )
        )
    _layout(fig, f"{t('ui.teaching', ctx.lang)} · {wave}", ctx)
    fig.update_layout(height=max(320, 24 * len(order) + 180))
    fig.update_yaxes(autorange="reversed")
    notes = [t("note.interval", ctx.lang)]
    if reverse:
        notes.append(t("note.reverse_mark", ctx.lang))
    if hidden.any():
        notes.append(f"{suppressed_text(ctx)}: {t('ui.hidden_cells', ctx.lang)}")
    keep = [
        "instrument",
        "wave",
        "teacher",
        "discipline",
        "item",
        "n",
        "mean",
        "pct_positive",
        "pct_positive_ci_low",
        "pct_positive_ci_high",
        "indicative_only",
        "suppressed",
    ]
    table = _name_columns(ctx, rows[keep].reset_index(drop=True))
    none = t("ui.no_discipline", ctx.lang)
    table["discipline_name"] = table["discipline_name"].where(table["discipline"].notna(), none)
    return View(title=title, figure=fig, table=table, notes=notes)


def _teaching_rows(ctx: Context, rows: pd.DataFrame, lookup: dict) -> pd.Series:
    """Each row's "teacher · discipline" in the reader's language (the discipline's code
    added where two of a teacher's disciplines share a name)."""
    teacher = rows["teacher"].map(lambda c: lookup["unit"].get(c, c))
    code = rows["discipline"]
    name = code.map(lambda c: lookup["discipline"].get(c, c) if isinstance(c, str) else None)
    name = name.where(code.notna(), t("ui.no_discipline", ctx.lang))
    label = teacher + " · " + name
    pairs = pd.DataFrame({"label": label, "code": code.fillna("")}).drop_duplicates()
    twice = set(pairs.loc[pairs["label"].duplicated(keep=False), "label"])
    return label.where(~label.isin(twice), label + " (" + code.fillna("") + ")")


# ----------------------------------------------------------------- response
def response(ctx: Context, f: Filters) -> View:
    """Respondents against headcounts per unit, the reliability flag, and how many more
    answers each unit needs to reach the reliability threshold."""
    title = t("ui.response", ctx.lang)
    level = f.level or "faculty"
    rows = ctx.read("ind_response", org_level=level, instrument=f.instrument)
    rows = _within(ctx, rows, f.unit)
    wave = f.wave or (max(rows["wave"]) if len(rows) else None)
    rows = rows[rows["wave"] == wave].copy()
    if rows.empty:
        return _empty(title, t("ui.nothing", ctx.lang))
    head = pd.to_numeric(rows["headcount"], errors="coerce")
    resp = pd.to_numeric(rows["respondents"], errors="coerce")
    need = np.ceil(ctx.min_rate_reliable * head) - resp
    rows["more_needed"] = need.clip(lower=0)
    rows["response_rate_pct"] = 100 * pd.to_numeric(rows["response_rate"], errors="coerce")
    lookup = _names(ctx)
    rows["unit_name"] = rows["unit"].map(lookup["unit"]).fillna(rows["unit"])
    shown = rows[~rows["suppressed"].astype(bool)].sort_values("response_rate_pct")
    fig = go.Figure(
        go.Bar(
            x=shown["response_rate_pct"],
            y=shown["unit_name"],
            orientation="h",
            marker_color=[PALETTE[1] if bool(v) else PALETTE[0] for v in shown["indicative_only"]],
            customdata=np.stack([resp[shown.index], head[shown.index]], axis=-1),
            hovertemplate="%{y}: %{x:.1f} % (%{customdata[0]} / %{customdata[1]})<extra></extra>",
        )
    )
    fig.add_vline(x=100 * ctx.min_rate_reliable, line_dash="dash")
    _layout(fig, f"{t('ui.response', ctx.lang)} · {wave}", ctx, x=t("col.response_rate", ctx.lang))
    fig.update_layout(height=max(320, 32 * len(shown) + 140))
    fig.update_xaxes(range=[0, 100])
    keep = [
        "instrument",
        "wave",
        "unit",
        "unit_name",
        "respondents",
        "headcount",
        "response_rate",
        "indicative_only",
        "more_needed",
        "suppressed",
    ]
    return View(
        title=title,
        figure=fig,
        table=rows[[c for c in keep if c in rows]],
        notes=[
            t("ui.more_needed", ctx.lang, rate=number(100 * ctx.min_rate_reliable, ctx.lang, 0))
        ],
    )


# --------------------------------------------------------------------- data
def data(ctx: Context, f: Filters) -> View:
    """Loads, rows set aside and flag counts (the quality office and the rector)."""
    title = t("ui.data", ctx.lang)
    if not ctx.viewer.everything:
        return _empty(title, t("ui.not_for_role", ctx.lang))
    loads = ctx.con.execute(
        "SELECT load_id, file_name, instrument, wave, status, rows_read, rows_loaded, "
        "rows_quarantined, rows_excluded, rows_flagged FROM pub_loads ORDER BY load_id"
    ).fetchdf()
    if f.instrument:
        loads = loads[loads["instrument"] == f.instrument]
    if f.waves:
        loads = loads[loads["wave"].isin(f.waves)]
    fig = go.Figure()
    for i, col in enumerate(("rows_loaded", "rows_quarantined", "rows_excluded", "rows_flagged")):
        fig.add_trace(
            go.Bar(
                x=loads["load_id"].astype(str),
                y=loads[col],
                name=t(f"ui.{col}", ctx.lang),
                marker_color=PALETTE[i],
            )
        )
    _layout(fig, title, ctx)
    fig.update_layout(barmode="group")
    fig.update_yaxes(type="log")
    return View(title=title, figure=fig, table=loads)


# ----------------------------------------------------------------- comments
def comments(ctx: Context, f: Filters) -> View:
    """Free-text answers of a unit, for the roles that may read them, and only where a
    unit has at least ``comment_min_n`` of them (no respondent is ever linked)."""
    title = t("ui.comments", ctx.lang)
    if not ctx.viewer.everything:
        return _empty(title, t("ui.not_for_role", ctx.lang))
    rows = ctx.con.execute(
        "SELECT instrument, wave, unit, item, text FROM pub_comments "
        "WHERE (? IS NULL OR instrument = ?)",
        [f.instrument, f.instrument],
    ).fetchdf()
    rows = _within(ctx, rows, f.unit)
    if f.waves:
        rows = rows[rows["wave"].isin(f.waves)]
    size = rows.groupby(["instrument", "wave", "unit"])["text"].transform("size")
    rows = rows[size >= ctx.comment_min_n]
    if rows.empty:
        return _empty(title, t("ui.nothing", ctx.lang))
    return View(title=title, table=_name_columns(ctx, rows.head(500)))


# ---------------------------------------------------------------- overview
def overview(ctx: Context, f: Filters) -> View:
    """Each quality objective on the chosen (else latest) wave, per unit of its scope the
    viewer may see: met, not met, or not distinguishable from the target given the
    interval (:mod:`pipeline.views.objectives`); with the university's latest change."""
    from pipeline.views.objectives import evaluate

    title = t("ui.overview", ctx.lang)
    if not ctx.objectives:
        return _empty(title, t("ui.nothing", ctx.lang))
    judged = evaluate(
        ctx.con,
        ctx.objectives,
        viewer=ctx.viewer,
        tree=ctx.tree,
        min_n=ctx.min_n,
        alpha=ctx.alpha,
        lang=ctx.lang,
        unit=f.unit,
    )
    judged = judged[judged["status"] != "no_data"]
    if judged.empty:
        return _empty(title, t("ui.nothing", ctx.lang))
    latest = judged.groupby("objective")["wave"].transform("max")
    wave = f.wave
    table = judged[judged["wave"] == wave] if wave else judged[judged["wave"] == latest]
    if table.empty:
        return _empty(title, t("ui.nothing", ctx.lang))
    table = table.assign(
        university_change=table["latest_change"].where(table["unit"] == ctx.tree.university, "")
    )
    firsts = table.groupby("objective")["university_change"].transform(
        lambda s: next((x for x in s if x), "")
    )
    table = table.assign(university_change=firsts)
    return View(
        title=title, table=table.reset_index(drop=True), notes=[t("note.objectives", ctx.lang)]
    )


PAGES = {
    "overview": overview,
    "trends": trends,
    "compare": compare,
    "items": items,
    "stakeholders": stakeholders,
    "teaching": teaching,
    "response": response,
    "data": data,
    "comments": comments,
}


def with_filters(f: Filters, **changes) -> Filters:
    return replace(f, **changes)
