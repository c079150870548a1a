"""The deans' dashboard: a Dash app over the newest published snapshot.

``create_app(workspace)`` builds it; ``sapat serve`` runs it (a WSGI server with several
worker processes; ``--dev`` for Dash's debug mode on loopback only). The app reads only the
published, read-only snapshot (a newer one is picked up at the next request, no restart),
only through the read door with the logged-in viewer (:mod:`dashboards.guard`), and knows
no questionnaire by name.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
from collections import OrderedDict
from pathlib import Path

import dash
import duckdb
import flask
import pandas as pd
from dash import Input, Output, State, dash_table, dcc, html
from dash.exceptions import PreventUpdate

from dashboards import state
from dashboards.guard import Guard
from dashboards.responses import ResponseCache
from dashboards.views import LEVELS, PAGES, Context, Filters, View, suppressed_text
from pipeline import __version__
from pipeline.locale import number, t
from pipeline.publish import Tree, ViewerRole
from pipeline.store.snapshots import current

ASSETS = Path(__file__).with_name("assets")
#: page id -> path, in the navigation's order
PATHS = {
    "overview": "/",
    "trends": "/trends",
    "compare": "/compare",
    "items": "/items",
    "stakeholders": "/stakeholders",
    "teaching": "/teaching",
    "response": "/response",
    "data": "/data",
    "comments": "/comments",
}
LOCATION = "_pages_location"  # Dash pages' own location component
#: outputs of the callbacks whose answers are kept per snapshot (dashboards.responses):
#: the page router (the rendered page) and the filter bar; never the download
CACHEABLE = ("_pages_content.children", "nav.children")
#: set by `sapat serve` before its workers start: one id per run of the server
SERVE_ID = "SAPAT_SERVE_ID"


class Snapshots:
    """Read-only connections to the current snapshot; a newer one is opened when published
    (each request takes its own cursor; older snapshots stay open for requests running)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._lock = threading.Lock()
        self._open: dict[Path, duckdb.DuckDBPyConnection] = {}
        #: the snapshot the last cursor reads
        self.path: Path | None = None
        #: (snapshot, page, filters, language, viewer) -> (view, rendered page): a published
        #: snapshot never changes, so a view of it is computed once per worker
        self.views: OrderedDict = OrderedDict()

    def view(self, key: tuple, compute):
        """``compute()`` once per ``key`` of the current snapshot (least recently used
        views forgotten beyond 256)."""
        with self._lock:
            if key in self.views:
                self.views.move_to_end(key)
                return self.views[key]
        value = compute()
        with self._lock:
            self.views[key] = value
            while len(self.views) > 256:
                self.views.popitem(last=False)
        return value

    def cursor(self) -> duckdb.DuckDBPyConnection:
        path = current(self.directory)
        if path is None:
            raise LookupError("no snapshot is published yet: run sapat indicators first")
        with self._lock:
            con = self._open.get(path)
            if con is None:
                for attempt in range(5):
                    try:
                        con = duckdb.connect(str(path), read_only=True)
                        break
                    except duckdb.IOException:
                        path = current(self.directory) or path
                        if attempt == 4:
                            raise
                self._open[path] = con
                for old in [p for p in self._open if p != path][:-2]:
                    self._open.pop(old).close()  # keep the two newest open
            self.path = path
            return con.cursor()


def create_app(root: Path | str, *, secure_cookies: bool = False) -> dash.Dash:
    """The dashboard of the workspace at ``root`` (its secret key must exist: see
    :func:`secret_key`)."""
    from pipeline.ingest.pseudonym import load_key
    from pipeline.users import authenticate, viewer_of
    from pipeline.workspace import Workspace

    ws = Workspace.at(root)
    settings = ws.settings
    tree = Tree.of(ws.registry)
    objectives = list(ws.registry.objectives or [])
    snaps = Snapshots(settings.snapshots_dir)
    guard = Guard(
        settings=settings,
        authenticate=lambda n, p: authenticate(settings, n, p),
        viewer_of=lambda n: viewer_of(settings, n),
        audit_key=load_key(),
        secure_cookies=secure_cookies,
    )
    server = flask.Flask("sapat")
    server.secret_key = secret_key(settings)
    guard.install(server)
    responses = ResponseCache(
        snapshot=lambda: current(settings.snapshots_dir),
        person=lambda: (guard.user(), flask.g.get("viewer"), flask.session.get("lang")),
        cacheable=lambda output: any(o in output for o in CACHEABLE),
        directory=settings.data_dir / "cache" / "dashboard",
        snapshot_dir=settings.snapshots_dir,
        # this release and this run of `sapat serve` (its workers share the run's id)
        generation=f"{__version__}:{os.environ.get(SERVE_ID, '')}",
    )
    responses.install(server)
    app = dash.Dash(
        "sapat",
        server=server,
        use_pages=True,
        pages_folder="",
        assets_folder=str(ASSETS),
        title=t("ui.app", settings.language),
        update_title=None,
        suppress_callback_exceptions=True,
        serve_locally=True,
    )
    app.sapat_guard = guard  # for tests and the serve command
    app.sapat_responses = responses

    def context(lang: str) -> Context:
        viewer = getattr(flask.g, "viewer", None) or guard.viewer()
        if viewer is None:
            raise PreventUpdate
        s = settings.stats
        return Context(
            con=snaps.cursor(),
            viewer=viewer,
            tree=tree,
            min_n=settings.min_n,
            alpha=s.alpha,
            adjust=s.adjust,
            lang=lang,
            min_n_reliable=s.min_n_reliable,
            min_rate_reliable=s.min_rate_reliable,
            comment_min_n=settings.comment_min_n,
            objectives=objectives,
        )

    def page_layout(page: str):
        def layout(**query):
            search = "?" + "&".join(
                f"{k}={v}"
                for k, vs in query.items()
                for v in (vs if isinstance(vs, list) else [vs])
            )
            f, lang = state.parse(search, _lang_default())
            try:
                ctx = context(lang)
            except PreventUpdate:
                return html.Div()
            except LookupError as exc:
                return html.P(str(exc), className="message")
            key = (snaps.path, page, f, lang, ctx.viewer)
            return snaps.view(("page", *key), lambda: render(page, cached_view(key, ctx, f), ctx))

        return layout

    def cached_view(key: tuple, ctx: Context, f: Filters) -> View:
        return snaps.view(("view", *key), lambda: PAGES[key[1]](ctx, f))

    def _lang_default() -> str:
        return flask.session.get("lang") or settings.language

    for order, (page, path) in enumerate(PATHS.items()):
        dash.register_page(
            f"sapat.{page}", path=path, name=page, order=order, layout=page_layout(page)
        )

    app.layout = shell(settings.language)
    _callbacks(app, context, tree, guard, _lang_default, snaps, cached_view)
    guard.script_hashes = lambda: list(app.csp_hashes())
    return app


def secret_key(settings) -> bytes:
    """The app's own secret (signs session cookies): ``data/keys/dashboard.secret`` of the
    workspace, made once with 32 random bytes; refused when shorter than that."""
    import secrets as random

    path = settings.data_dir / "keys" / "dashboard.secret"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(random.token_bytes(32))
        path.chmod(0o600)
    key = path.read_bytes()
    if len(key) < 32:
        from pipeline.errors import SapatError

        raise SapatError(
            "the dashboard's secret key is too short", file=str(path), expected="32 bytes or more"
        )
    return key


# --------------------------------------------------------------------- shell
def shell(lang: str) -> html.Div:
    """The page around every page: navigation, language, filters, log-out."""
    return html.Div(
        [
            html.Header(
                [
                    html.Span(t("ui.app", lang), className="brand", id="brand"),
                    html.Nav(id="nav", **{"aria-label": "pages"}),
                    dcc.Dropdown(
                        id="f-lang",
                        options=[{"label": x, "value": x} for x in state.LANGS],
                        clearable=False,
                        searchable=False,
                        className="lang",
                    ),
                    html.Span(id="who", className="who"),
                    html.Form(
                        html.Button(t("ui.logout", lang), id="logout", type="submit"),
                        action="/logout",
                        method="post",
                    ),
                ],
                className="top",
            ),
            html.Section(
                [
                    _filter("instrument", multi=False),
                    _filter("waves", multi=True),
                    _filter("level", multi=False, clearable=False),
                    _filter("unit", multi=False),
                    _filter("item", multi=False),
                    _filter("dimension", multi=False),
                ],
                className="filters",
                **{"aria-label": "filters"},
            ),
            html.Main(_page_container(lang), id="main"),
            dcc.Download(id="download"),
        ]
    )


def _page_container(lang: str) -> html.Div:
    """Dash pages' container, its store holding a title from the start (the page-title
    script reads it before the first page has rendered)."""
    return html.Div(
        [
            dcc.Location(id=LOCATION, refresh="callback-nav"),
            html.Div(id="_pages_content", disable_n_clicks=True),
            dcc.Store(id="_pages_store", data={"title": t("ui.app", lang)}),
            html.Div(id="_pages_dummy", disable_n_clicks=True),
        ]
    )


def _filter(name: str, *, multi: bool, clearable: bool = True) -> html.Div:
    return html.Div(
        [
            html.Label(id=f"l-{name}", htmlFor=f"f-{name}"),
            dcc.Dropdown(id=f"f-{name}", multi=multi, clearable=clearable),
        ],
        className="filter",
    )


def render(page: str, view: View, ctx: Context) -> html.Div:
    """A view as components: figure(s), notes, the table one click away, downloads."""
    children: list = [html.H1(view.title)]
    if view.message:
        children.append(html.P(view.message, className="message", id="page-message"))
        return html.Div(children, id=f"page-{page}")
    graph_config = {
        "displaylogo": False,
        "toImageButtonOptions": {"format": "png", "filename": f"sapat-{page}", "scale": 2},
    }
    if view.figure is not None:
        children.append(dcc.Graph(id="graph", figure=plain(view.figure), config=graph_config))
    extra = getattr(view, "extra", None)
    if extra is not None:
        children.append(dcc.Graph(id="graph-2", figure=plain(extra), config=graph_config))
    if page == "overview" and len(view.table):
        children.append(_tiles(view.table, ctx))
    children.extend(html.P(n, className="note") for n in view.notes)
    children.append(
        html.Div(
            [
                html.Button(t("ui.download_csv", ctx.lang), id="dl-csv", className="download"),
                html.Button(t("ui.download_xlsx", ctx.lang), id="dl-xlsx", className="download"),
            ],
            className="downloads",
        )
    )
    children.append(
        html.Details(
            [html.Summary(t("ui.table", ctx.lang)), table_component(view.table, ctx)],
            open=view.figure is None,
            id="table-details",
        )
    )
    return html.Div(children, id=f"page-{page}")


def plain(figure) -> dict:
    """A figure as plain JSON data, converted once: a cached page then costs a plain
    ``json.dumps`` per request instead of plotly's validation, copy and array encoding
    (6 ms of the 8 ms a warm page took)."""
    return json.loads(figure.to_json())


def display(frame: pd.DataFrame, ctx: Context) -> pd.DataFrame:
    """The table as a person reads it: numbers in the reader's format, a hidden row's
    statistics as "n < 5" (never a number)."""
    out = pd.DataFrame(index=frame.index)
    hidden = (
        frame["suppressed"].fillna(False).astype(bool)
        if "suppressed" in frame
        else pd.Series(False, index=frame.index)
    )
    for c in frame.columns:
        if c in ("suppressed", "suppression_reason"):
            continue
        col = frame[c]
        if pd.api.types.is_bool_dtype(col) or c == "indicative_only":
            text = col.map(
                lambda v: "" if v is None or v != v else t("yes" if v else "no", ctx.lang)
            )
        elif pd.api.types.is_numeric_dtype(col):
            whole = col.dropna().eq(col.dropna().round()).all()
            text = col.map(lambda v, w=whole: number(v, ctx.lang, 0 if w else 1))
        else:
            text = col.map(lambda v: "" if v is None or v != v else str(v))
        out[c] = text
    if "n" in out:
        out.loc[hidden, "n"] = suppressed_text(ctx)
    elif hidden.any() and len(out.columns):
        out.loc[hidden, out.columns[-1]] = suppressed_text(ctx)
    return out


def table_component(frame: pd.DataFrame, ctx: Context):
    shown = display(frame, ctx)
    return dash_table.DataTable(
        id="table",
        columns=[{"name": c, "id": c} for c in shown.columns],
        data=shown.to_dict("records"),
        page_size=100,
        sort_action="native",
        filter_action="native",
        style_table={"overflowX": "auto"},
        style_cell={"textAlign": "left", "whiteSpace": "normal", "height": "auto"},
    )


def _tiles(table: pd.DataFrame, ctx: Context) -> html.Div:
    tiles = []
    for (obj, title), part in table.groupby(["objective", "title"], sort=False):
        counts = part["status"].value_counts()
        lines = [
            html.Li(f"{t('ui.' + s, ctx.lang)}: {int(counts[s])}")
            for s in ("met", "not_met", "undecided", "hidden")
            if s in counts
        ]
        worst = (
            "not_met" if "not_met" in counts else "undecided" if "undecided" in counts else "met"
        )
        tiles.append(
            html.Article(
                [
                    html.H2(f"{obj}"),
                    html.P(title),
                    html.P(
                        f"{t('ui.target', ctx.lang)}: {number(part['target'].iloc[0], ctx.lang)}"
                    ),
                    html.Ul(lines),
                    *(
                        [html.P(part["university_change"].iloc[0], className="note")]
                        if part["university_change"].iloc[0]
                        else []
                    ),
                ],
                className=f"tile {worst}",
            )
        )
    return html.Div(tiles, className="tiles")


# ----------------------------------------------------------------- callbacks
def _callbacks(
    app: dash.Dash, context, tree: Tree, guard: Guard, lang_default, snaps, cached_view
) -> None:
    filter_ids = ["instrument", "waves", "level", "unit", "item", "dimension"]

    @app.callback(
        Output(LOCATION, "search"),
        [Input(f"f-{k}", "value") for k in [*filter_ids, "lang"]],
        State(LOCATION, "search"),
        prevent_initial_call=True,
    )
    def filters_to_url(instrument, waves, level, unit, item, dimension, lang, current):
        f = Filters(
            instrument=instrument,
            waves=tuple(sorted(waves or [])),
            level=level if level in LEVELS else "faculty",
            unit=unit,
            item=item,
            dimension=dimension,
        )
        lang = lang or lang_default()
        if state.parse(current, lang_default()) == (f, lang):
            raise PreventUpdate  # the same view (perhaps in another order): no second render
        return state.search(f, lang)

    @app.callback(
        [Output(f"f-{k}", "options") for k in filter_ids]
        + [Output(f"f-{k}", "value") for k in [*filter_ids, "lang"]]
        + [Output(f"l-{k}", "children") for k in filter_ids]
        + [Output("nav", "children"), Output("who", "children"), Output("logout", "children")]
        + [Output("brand", "children")],
        Input(LOCATION, "search"),
        Input(LOCATION, "pathname"),
    )
    def chrome(search, pathname):
        """The filters' choices and values (from the URL: set together, so a value is never
        dropped for want of its choice), labels and navigation in the reader's language."""
        f, lang = state.parse(search, lang_default())
        ctx = context(lang)
        options = filter_options(ctx, f)
        values = [f.instrument, list(f.waves), f.level, f.unit, f.item, f.dimension, lang]
        labels = [t(f"ui.{k}", lang) for k in filter_ids]
        nav = [
            dcc.Link(
                t(f"ui.{page}", lang),
                href=path + (search or ""),
                className="active" if path == pathname else "",
            )
            for page, path in PATHS.items()
            if _page_allowed(page, ctx)
        ]
        who = f"{guard.user() or ''} · {t('role.' + ctx.viewer.role.value, lang)}"
        return [*options, *values, *labels, nav, who, t("ui.logout", lang), t("ui.app", lang)]

    @app.callback(
        Output("download", "data"),
        Input("dl-csv", "n_clicks"),
        Input("dl-xlsx", "n_clicks"),
        State(LOCATION, "search"),
        State(LOCATION, "pathname"),
        prevent_initial_call=True,
    )
    def download(csv_clicks, xlsx_clicks, search, pathname):
        if not (csv_clicks or xlsx_clicks):
            raise PreventUpdate
        fmt = "xlsx" if dash.ctx.triggered_id == "dl-xlsx" else "csv"
        page = next((p for p, path in PATHS.items() if path == pathname), "overview")
        f, lang = state.parse(search, lang_default())
        ctx = context(lang)
        view = cached_view((snaps.path, page, f, lang, ctx.viewer), ctx, f)
        data = export(view, fmt, lang)
        guard.audit("download", f"{page}{search or ''}", f"{fmt}, {len(view.table)} rows")
        return dcc.send_bytes(data, f"sapat-{page}.{fmt}")


def _page_allowed(page: str, ctx: Context) -> bool:
    if page in ("data", "comments"):
        return ctx.viewer.everything
    if page == "teaching":
        return ctx.viewer.role is not ViewerRole.PROGRAMME_LEADER
    return True


def export(view: View, fmt: str, lang: str) -> bytes:
    """The view's table as a file (after suppression; formula-safe; see pipeline.outputs)."""
    from pipeline.outputs import write_table
    from pipeline.store.tables import column_meanings

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"view.{fmt}"
        meanings = column_meanings()
        write_table(
            view.table,
            path,
            fmt=fmt,
            title=view.title,
            columns={c: meanings.get(c, "") for c in view.table.columns},
            lang=lang,
            notes=view.notes,
        )
        return path.read_bytes()


def filter_options(ctx: Context, f: Filters) -> list[list[dict]]:
    """The choices of each filter, in the reader's language, limited to what the viewer
    may see (units) and to what the snapshot holds."""
    from pipeline.publish import names

    lookup = names(ctx.con, ctx.lang)
    insts = [
        r[0]
        for r in ctx.con.execute("SELECT DISTINCT instrument FROM dim_items ORDER BY 1").fetchall()
    ]
    waves = [
        r[0]
        for r in ctx.con.execute(
            "SELECT DISTINCT wave FROM pub_loads WHERE status = 'loaded' AND wave IS NOT NULL "
            "ORDER BY 1"
        ).fetchall()
    ]
    scope = ctx.tree.scope(ctx.viewer)
    units = [ctx.tree.university, *ctx.tree.parents]
    if scope is not None:
        units = [u for u in units if u in scope]
    if ctx.viewer.role is ViewerRole.TEACHER:
        units = list(ctx.viewer.units)

    def depth(u: str) -> int:
        return len(ctx.tree.ancestors(u))

    items = ctx.con.execute(
        "SELECT DISTINCT item FROM dim_items WHERE role = 'item' AND (? IS NULL OR instrument = ?) "
        "ORDER BY 1",
        [f.instrument, f.instrument],
    ).fetchall()
    dims = ctx.con.execute(
        "SELECT DISTINCT dimension FROM dim_items WHERE dimension IS NOT NULL "
        "AND (? IS NULL OR instrument = ?) ORDER BY 1",
        [f.instrument, f.instrument],
    ).fetchall()
    return [
        [{"label": lookup["instrument"].get(i, i), "value": i} for i in insts],
        [{"label": w, "value": w} for w in waves],
        [{"label": t(f"level.{lv}", ctx.lang), "value": lv} for lv in LEVELS],
        [{"label": "\u2003" * depth(u) + lookup["unit"].get(u, u), "value": u} for u in units],
        [{"label": _short(lookup["item"].get(i, i)), "value": i} for (i,) in items],
        [{"label": lookup["dimension"].get(d, d), "value": d} for (d,) in dims],
    ]


def _short(text: str, width: int = 90) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
