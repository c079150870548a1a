"""The dashboard without a browser: every page's callback, every role × page × forged
input (0 foreign-unit values in any answer or download), no callback without a session,
CSRF and origin checks, security headers, suppressed cells as "n < 5", rate-limited
log-ins, the audit of log-ins and downloads."""

from __future__ import annotations

import base64
import json
import re

import pytest
from dash_client import DashClient
from dashboard_fixtures import PASSWORD, SCRIPT, build, foreign_units

from dashboards.app import PATHS, create_app

PAGES = list(PATHS.values())
#: builds and loads a small university (about 15 s) before the first test
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    s = build(tmp_path_factory.mktemp("dash"), mp)
    yield s
    mp.undo()


@pytest.fixture(scope="module")
def app(site):
    return create_app(site.root)


def _client(app, name):
    c = DashClient(app)
    r = c.login(name, PASSWORD)
    assert r.status_code == 302 and r.headers["Location"] == "/", r.get_data(as_text=True)
    return c


def _names_of(site, codes):
    reg = site.ws.registry
    return {reg.name(c, lang) for c in codes for lang in ("ky", "ru", "en")}


def _leaks(site, name, text):
    """Foreign unit codes (as JSON strings) and names unique to foreign units in ``text``."""
    foreign = foreign_units(site, name)
    allowed = {site.tree.university, *site.tree.parents, *site.tree.teacher_department} - foreign
    codes = {c for c in foreign if f'"{c}"' in text or f",{c}," in text or f"\n{c}," in text}
    names = _names_of(site, foreign) - _names_of(site, allowed)
    # a name as a value of its own (a table cell, a chart label, a title's first part)
    shown = {n for n in names if n and any(f'"{n}{end}' in text for end in ('"', ":", " ·", ","))}
    return codes | shown


def test_every_page_renders_for_the_quality_office(site, app):
    c = _client(app, "office")
    for path in PAGES:
        r = c.page(path, "?lang=en")
        assert r.status_code == 200, (path, r.get_data(as_text=True)[:300])
        body = r.get_json()["response"]["_pages_content"]["children"]
        text = json.dumps(body)
        page = next(p for p, v in PATHS.items() if v == path)
        assert f"page-{page}" in text
        if page not in ("overview",):
            assert '"graph"' in text or '"table"' in text or "page-message" in text, page


def test_charts_and_tables_carry_what_a_dean_needs(site, app):
    c = _client(app, "office")
    trends = json.dumps(c.page("/trends", "?lang=en&item=se_overall").get_json())
    assert "scatter" in trends and "Batken State University" in trends
    compare = json.dumps(c.page("/compare", "?lang=en&item=se_overall&level=faculty").get_json())
    assert "Funnel plot" in compare and "graph-2" in compare
    items = json.dumps(c.page("/items", "?lang=en&unit=F-NHP").get_json())
    assert '"barmode": "relative"' in items  # diverging stacked bars
    ky = json.dumps(c.page("/compare", "?lang=ky&item=se_overall").get_json(), ensure_ascii=False)
    assert "Табигый-гуманитардык жана педагогикалык факультет" in ky
    assert "Воронка" in ky


@pytest.mark.slow
@pytest.mark.parametrize("name", ["dean", "leader", "teacher"])
def test_no_role_ever_receives_a_foreign_unit(site, app, name):
    """Every page, with honest and forged URL state (another faculty, another programme,
    every level, made-up codes), and every download: no foreign unit in any answer."""
    c = _client(app, name)
    forged = [
        "",
        "?unit=KKHPI",
        "?unit=P-KKH-PRIM-B&level=programme",
        "?level=department&item=se_overall",
        "?unit=BatSU&level=programme",
        "?unit=%3Cscript%3E&instrument=teaching_evaluation",
    ]
    #: downloads: the honest view and the two most telling forgeries
    downloaded = {"", "?unit=KKHPI", "?unit=BatSU&level=programme"}
    for path in PAGES:
        for search in forged:
            for lang in ("en", "ky") if not search else ("en",):
                q = (search + ("&" if search else "?") + f"lang={lang}").replace("?&", "?")
                r = c.page(path, q)
                assert r.status_code == 200, (path, q, r.status_code)
                text = r.get_data(as_text=True)
                leaked = _leaks(site, name, json.dumps(json.loads(text), ensure_ascii=False))
                assert not leaked, (name, path, q, sorted(leaked)[:5])
            for fmt in ("dl-csv", "dl-xlsx") if search in downloaded else ():
                r = c.call(
                    "download.data",
                    {
                        f"{fmt}.n_clicks": 1,
                        "_pages_location.search": search,
                        "_pages_location.pathname": path,
                    },
                    trigger=f"{fmt}.n_clicks",
                )
                if r.status_code == 204:
                    continue
                assert r.status_code == 200, (path, search, fmt, r.get_data(as_text=True)[:200])
                content = r.get_json()["response"]["download"]["data"]["content"]
                data = base64.b64decode(content)
                if fmt == "dl-csv":
                    leaked = _leaks(site, name, "\n" + data.decode("utf-8-sig"))
                else:
                    leaked = _xlsx_leaks(site, name, data)
                assert not leaked, (name, path, search, fmt, sorted(leaked)[:5])
        # the filter's choices: only what the viewer may see
        r = c.call(
            "f-instrument.options",
            {"_pages_location.search": "?lang=en", "_pages_location.pathname": path},
        )
        units = r.get_json()["response"]["f-unit"]["options"]
        assert not {o["value"] for o in units} & foreign_units(site, name)


def _xlsx_leaks(site, name, data: bytes) -> set[str]:
    import io

    import openpyxl

    wb = openpyxl.load_workbook(io.BytesIO(data))
    cells = [
        str(v) for ws in wb.worksheets for row in ws.iter_rows(values_only=True) for v in row if v
    ]
    return _leaks(site, name, "\n" + "\n".join(f"{v}," for v in cells))


def test_no_callback_answers_without_a_session(site, app):
    anonymous = DashClient(app)
    anonymous.http.get("/")  # registers the pages' router
    keys = list(app.callback_map)
    assert len(keys) >= 5
    for key in keys:
        output = key.strip(".").split("...")[0]
        r = anonymous.call(output, {"_pages_location.pathname": "/compare"})
        assert r.status_code == 401, (key, r.status_code)
        assert b"KKHPI" not in r.data and b"F-NHP" not in r.data
    assert anonymous.http.get("/compare").status_code == 302  # to the log-in page
    assert anonymous.http.get("/_dash-layout").status_code == 401


def test_forged_requests_are_refused(site, app):
    c = _client(app, "dean")
    assert c.page("/compare", headers={"X-CSRFToken": "forged"}).status_code == 403
    r = c.page("/compare", headers={"Origin": "https://evil.example"})
    assert r.status_code == 403
    ok = c.page("/compare", headers={"Origin": "http://localhost"})
    assert ok.status_code == 200
    # a disabled user's session stops working at the next request
    from pipeline.users import disable_user, enable_user

    disable_user(site.ws.settings, "dean")
    try:
        assert c.page("/compare").status_code == 401
    finally:
        enable_user(site.ws.settings, "dean")


def test_every_response_carries_the_security_headers(site, app):
    c = _client(app, "office")
    for r in (c.http.get("/login"), c.http.get("/"), c.page("/trends")):
        csp = r.headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in csp and "'unsafe-inline'" not in csp.split(";")[1]
        assert r.headers["X-Content-Type-Options"] == "nosniff"
        assert r.headers["Referrer-Policy"] == "same-origin"
    cookies = c.http.get("/").headers.getlist("Set-Cookie")
    session = [x for x in cookies if x.startswith("sapat_session=")]
    if session:
        assert "HttpOnly" in session[0] and "SameSite=Strict" in session[0]


def test_log_in_attempts_are_limited_and_audited(site, app):
    c = DashClient(app)
    for _ in range(5):
        r = c.http.post("/login?lang=en", data={"user": "rector", "password": "wrong password 1"})
        assert r.status_code == 200 and "Wrong user name or password" in r.get_data(as_text=True)
    # right, but too many failures just now
    r = c.http.post("/login?lang=en", data={"user": "rector", "password": PASSWORD})
    assert r.status_code == 200 and "Too many attempts" in r.get_data(as_text=True)
    log = (site.ws.settings.data_dir / "audit" / "dashboard.jsonl").read_text("utf-8")
    entries = [json.loads(x) for x in log.splitlines()]
    assert any(e["action"] == "login" and e["outcome"] == "failed" for e in entries)
    assert any(e["action"] == "login" and e["outcome"].startswith("refused") for e in entries)
    assert PASSWORD not in log and "wrong password" not in log
    assert DashClient(app).login("office", PASSWORD).status_code == 302  # others still can


def test_downloads_are_audited_and_formula_safe(site, app):
    c = _client(app, "office")
    r = c.call(
        "download.data",
        {
            "dl-csv.n_clicks": 1,
            "_pages_location.search": f"?lang=en&instrument=student_experience&unit={site.script_unit}",
            "_pages_location.pathname": "/comments",
        },
        trigger="dl-csv.n_clicks",
    )
    assert r.status_code == 200
    text = base64.b64decode(r.get_json()["response"]["download"]["data"]["content"]).decode(
        "utf-8-sig"
    )
    assert "window.__sapat_xss" in text  # the comment, as text
    assert not re.search(r"^[=+@]", text, re.M)
    log = (site.ws.settings.data_dir / "audit" / "dashboard.jsonl").read_text("utf-8")
    assert '"action": "download"' in log


def test_a_small_cell_shows_n_below_the_threshold_never_a_number(site, app):
    c = _client(app, "office")
    r = c.page("/compare", "?lang=en&level=programme&item=se_overall")
    body = r.get_json()["response"]["_pages_content"]["children"]
    assert "n < 5" in json.dumps(body, ensure_ascii=False)
    rows = _table_rows(body)
    hidden = [r for r in rows if r.get("n") == "n < 5"]
    assert hidden and all(not r.get("pct_positive") for r in hidden)


def _table_rows(node):
    if isinstance(node, dict):
        if node.get("props", {}).get("id") == "table":
            return node["props"]["data"]
        for v in node.values():
            found = _table_rows(v)
            if found is not None:
                return found
    if isinstance(node, list):
        for v in node:
            found = _table_rows(v)
            if found is not None:
                return found
    return None


def test_comments_are_data_never_markup(site, app):
    c = _client(app, "office")
    r = c.page("/comments", f"?lang=en&instrument=student_experience&unit={site.script_unit}")
    body = r.get_json()["response"]["_pages_content"]["children"]
    rows = _table_rows(body) or []
    assert any(row.get("text") == SCRIPT for row in rows)
    dean = _client(app, "dean")
    assert "page-message" in dean.page("/comments").get_data(as_text=True)


def test_the_dashboards_audit_log_verifies_and_shows_tampering(site, app):
    from typer.testing import CliRunner

    from pipeline.cli import app as cli

    _client(app, "office")  # at least one log-in in the log
    runner = CliRunner()
    ok = runner.invoke(cli, ["audit", "verify"])
    assert ok.exit_code == 0, ok.output
    assert "dashboard's log" in ok.output
    path = site.ws.settings.data_dir / "audit" / "dashboard.jsonl"
    text = path.read_text("utf-8")
    try:
        path.write_text(text.replace('"outcome": "ok"', '"outcome": "failed"', 1), "utf-8")
        bad = runner.invoke(cli, ["audit", "verify"])
        assert bad.exit_code == 1 and "dashboard log: entry" in bad.output
    finally:
        path.write_text(text, "utf-8")


def test_kept_answers_never_cross_people_sessions_or_snapshots(site, app):
    """The page answers kept per snapshot (dashboards.responses): the same request by
    another person is answered for that person; a disabled account is refused before any
    kept answer; a new snapshot makes every answer new; downloads are never kept."""
    import duckdb

    from pipeline.store.snapshots import current, publish
    from pipeline.users import add_user, disable_user, enable_user

    kept = app.sapat_responses
    s = site.ws.settings
    other = next(
        u
        for u, parent in site.tree.parents.items()
        if parent == site.tree.university and u != "F-NHP"
    )
    add_user(s, "dean-other", site.people["dean"][0], [other], PASSWORD)
    site.people["dean-other"] = (site.people["dean"][0], [other])
    query = "?lang=en&item=se_overall&level=programme"
    office, dean, dean2 = (_client(app, n) for n in ("office", "dean", "dean-other"))
    first = office.page("/compare", query)
    hits = kept.hits
    again = office.page("/compare", query)
    assert again.data == first.data and kept.hits == hits + 1  # kept, the same bytes
    for name, c in (("dean", dean), ("dean-other", dean2)):
        for _ in range(2):  # asked, then answered from what was kept
            r = c.page("/compare", query)
            assert r.status_code == 200 and r.data != first.data
            assert not _leaks(site, name, r.get_data(as_text=True)), name
    assert dean.page("/compare", query).data != dean2.page("/compare", query).data
    # a disabled account gets nothing, kept or not
    disable_user(s, "dean")
    try:
        assert dean.page("/compare", query).status_code == 401
    finally:
        enable_user(s, "dean")
    # another worker process (another app) finds what this one computed
    other_worker = create_app(site.root)
    c2 = _client(other_worker, "office")
    assert c2.page("/compare", query).data == first.data
    assert (other_worker.sapat_responses.hits, other_worker.sapat_responses.misses) == (1, 0)
    # another run of the server (another release, other templates) computes anew
    mp = pytest.MonkeyPatch()
    mp.setenv("SAPAT_SERVE_ID", "a later run")
    try:
        later = create_app(site.root)
        assert _client(later, "office").page("/compare", query).data == first.data
        assert (later.sapat_responses.hits, later.sapat_responses.misses) == (0, 1)
    finally:
        mp.undo()
    # a new snapshot: the same request is answered afresh; folders of snapshots no longer
    # published are removed
    folder = s.data_dir / "cache" / "dashboard"
    (folder / "snapshot-gone").mkdir()
    misses = kept.misses
    live = duckdb.connect(str(s.db_path), read_only=True)  # as other readers of it here
    try:
        publish(live, s.snapshots_dir, s.stats.signature())
    finally:
        live.close()
    assert office.page("/compare", query).status_code == 200
    assert kept.misses == misses + 1
    assert not (folder / "snapshot-gone").exists()
    assert (folder / current(s.snapshots_dir).name).is_dir()
    # downloads are never kept: each is written to the audit log
    log = s.data_dir / "audit" / "dashboard.jsonl"
    before = log.read_text("utf-8").count('"action": "download"')
    hits = kept.hits
    for _ in range(2):
        r = office.call(
            "download.data",
            {
                "dl-csv.n_clicks": 1,
                "_pages_location.search": query,
                "_pages_location.pathname": "/compare",
            },
            trigger="dl-csv.n_clicks",
        )
        assert r.status_code == 200
    assert log.read_text("utf-8").count('"action": "download"') == before + 2
    assert kept.hits == hits


def test_the_header_and_filters_follow_the_chosen_language(site, app):
    c = _client(app, "dean")
    words = {}
    for lang in ("ky", "ru", "en"):
        r = c.call(
            "nav.children",
            {"_pages_location.search": f"?lang={lang}", "_pages_location.pathname": "/trends"},
        )
        assert r.status_code == 200, r.get_data(as_text=True)[:300]
        out = r.get_json()["response"]
        words[lang] = (out["brand"]["children"], out["l-unit"]["children"])
        assert out["f-lang"]["value"] == lang
    from pipeline.locale import t

    assert words == {lang: (t("ui.app", lang), t("ui.unit", lang)) for lang in ("ky", "ru", "en")}
    assert len({w[0] for w in words.values()}) == 3  # three different titles
