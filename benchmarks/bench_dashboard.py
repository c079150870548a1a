"""Dashboard benchmark: the deans' dashboard served by ``sapat serve`` under simulated users,
against a bare DuckDB query for the same rows and against building the same view from the
raw answers, measured in the same run.

Run from the repository root::

    .venv/bin/python benchmarks/bench_dashboard.py [--rows 5000000] [--waves 10]
        [--requests 250] [--requests-many 25] [--out benchmarks/results/dashboard.json]

The workspace (the BatSU example with ``--rows`` synthetic student_experience responses
over ``--waves`` academic years, ingested, indicators computed and published, one dean
account per faculty) is built once and cached under ``--work``. Then ``sapat serve
--workers 4`` is started on a free loopback port and simulated deans (threads, one
``requests.Session`` each) ask for whole pages through the page router callback: 4 users,
20 users, and 4 users while new snapshots are published. See benchmarks/README.md for how
to read the output.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
INSTRUMENT = "student_experience"
ITEM = "se_overall"
FIRST_YEAR = 2016
PASSWORD = "bench dashboard password"
#: the pages each simulated dean asks for, in turn: path -> page id
PAGES = {"/trends": "trends", "/compare": "compare", "/items": "items", "/response": "response"}
LIBRARIES = ("dash", "flask", "plotly", "pandas", "numpy", "duckdb", "gunicorn", "requests")
# Targets (design/PERFORMANCE.md, "Goals")
BARE_RATIO_MAX = 15.0
RAW_SPEEDUP_MIN = 10.0


def _rows_per_scale() -> float:
    """Respondents per unit of ``synthesize(scale=...)`` for one wave (bench_ingest's
    measured constant)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_ingest import ROWS_PER_SCALE

    return ROWS_PER_SCALE


def wave_names(n: int) -> list[str]:
    return [f"{y}-{y + 1}" for y in range(FIRST_YEAR, FIRST_YEAR + n)]


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine has spent busy (all processes, all cores), from
    /proc/stat: what the server and the load generator did not use was someone else's."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    ticks = [int(x) for x in fields[:8]]
    idle = ticks[3] + ticks[4]  # idle, iowait
    return (sum(ticks) - idle) / os.sysconf("SC_CLK_TCK")


def _pct(values: list[float], q: float) -> float:
    """The ``q``-th percentile (linear interpolation, as numpy's default)."""
    if not values:
        return float("nan")
    xs = sorted(values)
    k = (len(xs) - 1) * q / 100
    lo = int(k)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def _dist(values: list[float]) -> dict:
    return {
        "count": len(values),
        "p50": _pct(values, 50),
        "p95": _pct(values, 95),
        "p99": _pct(values, 99),
        "mean": statistics.fmean(values) if values else float("nan"),
        "min": min(values) if values else float("nan"),
        "max": max(values) if values else float("nan"),
    }


# ------------------------------------------------------------------ child steps
def _peak_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def step_init(root: str) -> dict:
    from pipeline.workspace import init_workspace

    init_workspace(root, "batsu")
    return {}


def step_generate(root: str, folder: str, waves: str, scale: str, fmt: str, seed: str) -> dict:
    """One export per wave, with the workspace's (unscaled) registry and questionnaires."""
    from pipeline.synth import synthesize
    from pipeline.workspace import Workspace

    ws = Workspace.at(root)
    t0 = time.perf_counter()
    truth = synthesize(
        folder,
        ws.registry,
        ws.catalog,
        waves=waves.split(","),
        seed=int(seed),
        scale=float(scale),
        instruments=[INSTRUMENT],
        dialect=fmt,
    )
    files = [f for f in truth["files"] if f["instrument"] == INSTRUMENT]
    return {
        "seconds": time.perf_counter() - t0,
        "files": [f["file"] for f in files],
        "rows": sum(int(f["rows"]) for f in files),
    }


def step_ingest(root: str, files: str) -> dict:
    """Every export into the workspace's database, as ``sapat ingest`` does."""
    from pipeline.ingest import ingest_file
    from pipeline.ingest.pseudonym import load_key
    from pipeline.store import Store
    from pipeline.workspace import Workspace

    ws = Workspace.at(root)
    s = ws.settings
    key = load_key()
    out = {"rows_read": 0, "rows_loaded": 0, "rows_quarantined": 0, "rows_excluded": 0}
    t0 = time.perf_counter()
    with Store(s.db_path, raw_dir=s.raw_dir, audit_key=key) as store:
        for file in files.split(","):
            r = ingest_file(file, store, ws.catalog, ws.registry, key=key, instrument=INSTRUMENT)
            if r.status != "loaded":
                raise SystemExit(f"ingest of {file} failed: {r.status} {r.errors[:3]}")
            for k in out:
                out[k] += int(getattr(r, k, 0) or 0)
    out["seconds"] = time.perf_counter() - t0
    return out


def step_users(root: str, password: str) -> dict:
    """One dean per faculty-level unit holding indicators of the item (made or kept)."""
    from pipeline.publish import ViewerRole
    from pipeline.store.snapshots import open_current
    from pipeline.users import add_user, list_users
    from pipeline.workspace import Workspace

    ws = Workspace.at(root)
    con = open_current(ws.settings.snapshots_dir)
    units = [
        r[0]
        for r in con.execute(
            "SELECT DISTINCT unit FROM ind_items WHERE org_level = 'faculty' AND instrument = ? "
            "AND item = ? ORDER BY unit",
            [INSTRUMENT, ITEM],
        ).fetchall()
    ]
    con.close()
    have = {u.name for u in list_users(ws.settings)}
    deans = []
    for unit in units:
        name = f"dean-{unit}"
        if name not in have:
            add_user(ws.settings, name, ViewerRole.DEAN, [unit], password)
        deans.append([name, unit])
    return {"deans": deans}


def step_bare(snapshot: str, faculty: str, university: str, runs: str) -> dict:
    """The plain SQL of the rows the trends page shows, on a warm read-only connection."""
    import duckdb

    sql = """SELECT wave, org_level, unit, n, pct_positive, pct_positive_ci_low,
                    pct_positive_ci_high
             FROM ind_items
             WHERE instrument = ? AND item = ?
               AND ((org_level = 'faculty' AND unit = ?)
                    OR (org_level = 'university' AND unit = ?))
             ORDER BY unit, wave"""
    params = [INSTRUMENT, ITEM, faculty, university]
    con = duckdb.connect(snapshot, read_only=True)
    out: dict = {}
    for label, fetch in (("fetchall", "fetchall"), ("fetchdf", "fetchdf")):
        for _ in range(20):  # warm
            getattr(con.execute(sql, params), fetch)()
        times = []
        for _ in range(int(runs)):
            t0 = time.perf_counter()
            res = getattr(con.execute(sql, params), fetch)()
            times.append((time.perf_counter() - t0) * 1000)
        out[label] = _dist(times)
        out["rows"] = len(res)
    con.close()
    out["sql"] = " ".join(sql.split())
    return out


RAW_SQL = """
WITH a AS (
    SELECT f.wave, l.faculty, f."{item}" AS answer
    FROM {table} f LEFT JOIN lookup l ON l.unit = coalesce(f.programme, f.unit)
    WHERE NOT f.excluded
)
SELECT wave,
       count(*) AS resp_uni,
       count(*) FILTER (answer >= 0) AS n_uni,
       count(*) FILTER (answer >= $pos) AS x_uni,
       count(*) FILTER (faculty = $faculty) AS resp_fac,
       count(*) FILTER (faculty = $faculty AND answer >= 0) AS n_fac,
       count(*) FILTER (faculty = $faculty AND answer >= $pos) AS x_fac
FROM a GROUP BY wave ORDER BY wave"""


def _wilson(x, n, big_n, z):
    """Wilson interval of x/n (arrays), with the finite population correction where a
    headcount ``big_n`` is given (NaN: none), as pipeline.methods.estimators does."""
    import numpy as np

    with np.errstate(divide="ignore", invalid="ignore"):
        p = np.where(n > 0, x / n, np.nan)
        has = np.isfinite(big_n)
        f = np.where(has, np.where(big_n == n, 0.0, (big_n - n) / (big_n - 1.0)), 1.0)
        n_eff = np.where(has, n / f, n)
        z2 = z * z
        denom = 1.0 + z2 / n_eff
        centre = (p + z2 / (2.0 * n_eff)) / denom
        half = z / denom * np.sqrt(p * (1.0 - p) / n_eff + z2 / (4.0 * n_eff * n_eff))
        lo, hi = centre - half, centre + half
        census = has & (big_n == n) & (n > 0)
        lo, hi = np.where(census, p, lo), np.where(census, p, hi)
    return 100 * p, 100 * lo, 100 * hi


def step_raw(root: str, faculty: str, runs: str) -> dict:
    """The trends page's numbers (n, % positive, Wilson interval with the finite population
    correction, per wave, for the faculty and the university) from the raw answers: a new
    read-only connection to the live database, one scan of the answer table, the
    interval in numpy. Timed from the connection to the last number; the declarations
    (programme -> faculty, headcounts) are read before."""
    from statistics import NormalDist

    import duckdb
    import numpy as np
    import pandas as pd

    from pipeline.store.snapshots import open_current
    from pipeline.workspace import Workspace

    ws = Workspace.at(root)
    s, reg = ws.settings, ws.registry
    uni = reg.university
    inst = ws.catalog.for_wave(INSTRUMENT, reg.waves[-1])
    pos = next(inst.scale_of(f).positive_from for f in inst.items if f.code == ITEM)
    population = inst.population
    lookup_frame = reg.rollup[["unit", "faculty"]].copy()
    heads_frame = reg.headcounts
    heads_frame = heads_frame[heads_frame["population"] == population][
        ["wave", "unit_code", "headcount"]
    ]
    z = NormalDist().inv_cdf(1 - (1 - s.stats.confidence) / 2)
    min_rate = s.stats.min_rate_reliable
    sql = RAW_SQL.format(item=ITEM, table=f"fct_{INSTRUMENT}")

    def build(con) -> pd.DataFrame:
        counts = con.execute(sql, {"pos": pos, "faculty": faculty}).fetchdf()
        # headcounts of the faculty and the university per wave (sums of declared units)
        h = heads_frame.merge(lookup_frame, left_on="unit_code", right_on="unit", how="left")
        h_uni = h.groupby("wave")["headcount"].sum().astype(float)
        h_fac = h[h["faculty"] == faculty].groupby("wave")["headcount"].sum().astype(float)
        parts = []
        for unit, level, heads, suffix in (
            (uni, "university", h_uni, "uni"),
            (faculty, "faculty", h_fac, "fac"),
        ):
            n = counts[f"n_{suffix}"].to_numpy(dtype=float)
            x = counts[f"x_{suffix}"].to_numpy(dtype=float)
            resp = counts[f"resp_{suffix}"].to_numpy(dtype=float)
            big = counts["wave"].map(heads).to_numpy(dtype=float)
            # the correction applies where the headcount holds the respondents and the
            # response rate reaches the reliability threshold (fpc = "auto")
            ok = np.isfinite(big) & (big > 0) & (big >= resp)
            ok &= np.where(ok, resp / np.where(ok, big, 1.0), 0.0) >= min_rate
            p, lo, hi = _wilson(x, n, np.where(ok, big, np.nan), z)
            parts.append(
                pd.DataFrame(
                    {
                        "wave": counts["wave"],
                        "org_level": level,
                        "unit": unit,
                        "n": n.astype("int64"),
                        "pct_positive": p,
                        "pct_positive_ci_low": lo,
                        "pct_positive_ci_high": hi,
                    }
                )
            )
        return pd.concat(parts, ignore_index=True)

    # as a one-off request would: a new read-only connection each time
    times, result = [], None
    for _ in range(int(runs)):
        t0 = time.perf_counter()
        con = duckdb.connect(str(s.db_path), read_only=True)
        con.register("lookup", lookup_frame)
        result = build(con)
        con.close()
        times.append((time.perf_counter() - t0) * 1000)
    # as a server would: one connection kept open (one untimed run first)
    con = duckdb.connect(str(s.db_path), read_only=True)
    con.register("lookup", lookup_frame)
    build(con)
    open_times = []
    for _ in range(int(runs)):
        t0 = time.perf_counter()
        build(con)
        open_times.append((time.perf_counter() - t0) * 1000)
    con.close()
    # the same numbers as the published indicators?
    snap = open_current(s.snapshots_dir)
    stored = snap.execute(
        """SELECT wave, org_level, unit, n, pct_positive, pct_positive_ci_low,
                  pct_positive_ci_high FROM ind_items
           WHERE instrument = ? AND item = ?
             AND ((org_level = 'faculty' AND unit = ?) OR org_level = 'university')""",
        [INSTRUMENT, ITEM, faculty],
    ).fetchdf()
    snap.close()
    both = result.merge(stored, on=["wave", "org_level", "unit"], suffixes=("", "_stored"))
    diffs = {
        c: float((both[c] - both[f"{c}_stored"]).abs().max())
        for c in ("n", "pct_positive", "pct_positive_ci_low", "pct_positive_ci_high")
    }
    same = (
        len(both) == len(result) == len(stored) and diffs["n"] == 0 and max(diffs.values()) < 1e-6
    )
    rows = duckdb.connect(str(s.db_path), read_only=True)
    scanned = rows.execute(f"SELECT count(*) FROM fct_{INSTRUMENT}").fetchone()[0]
    rows.close()
    return {
        **_dist(times),
        "runs": times,
        "open_connection": {**_dist(open_times), "runs": open_times},
        "rows": len(result),
        "answer_rows_scanned": int(scanned),
        "max_abs_difference_from_published": diffs,
        "same_numbers_as_published": bool(same),
        "positive_from": int(pos),
        "sql": " ".join(sql.split()),
    }


def step_breakdown(
    root: str, user: str, faculty: str, password: str, runs: str, profile: str = ""
) -> dict:
    """Where a callback's time goes, one request at a time in one process: the door's reads
    (trends), the view (reads, pandas, the plotly figure), rendering into Dash components,
    JSON encoding (Dash's, plotly's encoder), and the whole callback through Flask's test
    client (guard, Dash's dispatch, the page router)."""
    import duckdb
    from dash._utils import to_json

    from dashboards import state
    from dashboards.app import create_app, render
    from dashboards.views import PAGES as VIEWS
    from dashboards.views import Context
    from pipeline.publish import Tree, Viewer, ViewerRole
    from pipeline.store.snapshots import current
    from pipeline.workspace import Workspace

    ws = Workspace.at(root)
    s = ws.settings
    app = create_app(root)
    client = app.server.test_client()
    client.get("/healthz")
    r = client.post("/login", data={"user": user, "password": password})
    if r.status_code != 302:
        raise SystemExit(f"log-in failed: {r.status_code}")
    client.get("/")
    key = next(k for k in app.callback_map if "_pages_content.children" in k)
    cb = app.callback_map[key]
    csrf = client.get_cookie("_csrf_token").value
    headers = {"X-CSRFToken": csrf, "Content-Type": "application/json"}
    search = _search(faculty)
    st = s.stats
    con = duckdb.connect(str(current(s.snapshots_dir)), read_only=True)
    ctx = Context(
        con=con.cursor(),
        viewer=Viewer(ViewerRole.DEAN, (faculty,)),
        tree=Tree.of(ws.registry),
        min_n=s.min_n,
        alpha=st.alpha,
        adjust=st.adjust,
        lang="en",
        min_n_reliable=st.min_n_reliable,
        min_rate_reliable=st.min_rate_reliable,
        comment_min_n=s.comment_min_n,
        objectives=list(ws.registry.objectives or []),
    )
    f, _ = state.parse(search, "en")
    n = int(runs)

    def timed(fn) -> tuple[list[float], object]:
        for _ in range(3):
            out = fn()
        times = []
        for _ in range(n):
            t0 = time.perf_counter()
            out = fn()
            times.append((time.perf_counter() - t0) * 1000)
        return times, out

    def door_reads():
        ctx.read("ind_items", org_level="faculty", instrument=f.instrument, item=f.item)
        ctx.read("ind_items", org_level="university", instrument=f.instrument, item=f.item)
        ctx.read(
            "ind_changes",
            instrument=f.instrument,
            item=f.item,
            test="two_proportion_z",
            org_level=["faculty", "university"],
        )

    out: dict = {"runs": n, "search": search}
    for path, page in PAGES.items():
        body = json.dumps(_router_body(key, cb, path, search))
        call, resp = timed(
            lambda body=body: client.post("/_dash-update-component", data=body, headers=headers)
        )
        if resp.status_code != 200:
            raise SystemExit(f"{page}: {resp.status_code} {resp.get_data(as_text=True)[:300]}")
        view_t, view = timed(lambda page=page: VIEWS[page](ctx, f))
        render_t, comp = timed(lambda page=page, view=view: render(page, view, ctx))
        json_t, text = timed(lambda comp=comp: to_json(comp))
        part = {
            "callback_ms": _dist(call),
            "view_ms": _dist(view_t),
            "render_ms": _dist(render_t),
            "json_ms": _dist(json_t),
            "response_bytes": len(resp.get_data()),
            "component_json_bytes": len(text),
        }
        # the callback is answered from what its worker kept after the first time
        # (dashboards.responses); the first time costs the view, rendering and JSON
        part["first_time_ms_median"] = sum(
            part[k]["p50"] for k in ("view_ms", "render_ms", "json_ms")
        )
        if page == "trends":
            door_t, _ = timed(door_reads)
            part["door_reads_ms"] = _dist(door_t)
        if profile:
            import cProfile
            import io
            import pstats

            prof = cProfile.Profile()
            prof.enable()
            for _ in range(n):
                render(page, VIEWS[page](ctx, f), ctx)
            prof.disable()
            text = io.StringIO()
            pstats.Stats(prof, stream=text).sort_stats("cumulative").print_stats(60)
            Path(profile, f"{page}.txt").write_text(text.getvalue(), encoding="utf-8")
        out[page] = part
    con.close()
    return out


STEPS = {
    "init": step_init,
    "generate": step_generate,
    "ingest": step_ingest,
    "users": step_users,
    "bare": step_bare,
    "raw": step_raw,
    "breakdown": step_breakdown,
}


def _child(argv: list[str]) -> None:
    name, *args = argv
    sys.path.insert(0, str(ROOT))
    out = STEPS[name](*args)
    out["peak_rss_mb_self"] = _peak_mb()
    print("RESULT " + json.dumps(out))


# ------------------------------------------------------------------ parent side
def _env(ws: Path, work: Path) -> dict:
    """The environment of every subprocess: this workspace and key, no other SAPAT_*."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SAPAT_")}
    env["SAPAT_WORKSPACE"] = str(ws)
    env["SAPAT_KEY_FILE"] = str(work / "bench.key")
    return env


def run_step(env: dict, name: str, *args) -> dict:
    """Run one step in a new process; returns its RESULT with its wall time."""
    cmd = [sys.executable, __file__, "--child", name, *map(str, args)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, cwd=ROOT, env=env)
    if proc.returncode != 0:
        raise SystemExit(f"step {name} failed (exit {proc.returncode})")
    line = next(x for x in proc.stdout.decode().splitlines() if x.startswith("RESULT "))
    out = json.loads(line[len("RESULT ") :])
    out["process_seconds"] = time.perf_counter() - t0
    return out


def _sapat() -> list[str]:
    exe = Path(sys.executable).with_name("sapat")
    if exe.exists():
        return [str(exe)]
    return [sys.executable, "-c", "import sys; from pipeline.cli.main import run; sys.exit(run())"]


def _scale_headcounts(ws: Path, waves: list[str], scale: float) -> None:
    """The workspace's headcounts times the generator's scale, the latest wave's copied to
    waves that have none (as the generator does): respondents never outnumber them."""
    path = ws / "declarations" / "headcounts.csv"
    with open(path, encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    fields = list(rows[0])
    latest = max(r["wave"] for r in rows)
    have = {r["wave"] for r in rows}
    out = [r for r in rows]
    for w in waves:
        if w not in have:
            out += [{**r, "wave": w} for r in rows if r["wave"] == latest]
    for r in out:
        r["headcount"] = str(round(float(r["headcount"]) * scale))
    with open(path, "w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        writer.writerows(out)


def build(args, work: Path) -> tuple[Path, dict]:
    """The cached workspace: made, generated, ingested, computed, published, with users."""
    per_wave = args.rows / args.waves
    scale = per_wave / _rows_per_scale()
    waves = wave_names(args.waves)
    tag = f"{INSTRUMENT}_{args.format}_{args.rows}x{args.waves}_seed{args.seed}"
    folder = work / tag
    ws = folder / "ws"
    exports = folder / "exports"
    marker = folder / "built.json"
    env = _env(ws, work)
    if marker.exists():
        info = json.loads(marker.read_text(encoding="utf-8"))
        info["cached"] = True
        print(f"  using the cached workspace {ws} (built {info['built_at']})", flush=True)
        return ws, info
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    phases: dict = {}
    t_all = time.perf_counter()
    print(f"  making the BatSU workspace {ws} ...", flush=True)
    run_step(env, "init", ws)
    print(
        f"  generating {args.waves} waves × ~{per_wave:,.0f} {args.format} responses "
        f"(scale {scale:.2f}) ...",
        flush=True,
    )
    gen = run_step(env, "generate", ws, exports, ",".join(waves), scale, args.format, args.seed)
    phases["generate"] = gen["process_seconds"]
    print(f"    {gen['rows']:,} rows in {gen['process_seconds']:.0f} s", flush=True)
    _scale_headcounts(ws, waves, scale)
    files = ",".join(str(exports / f) for f in gen["files"])
    print(f"  ingesting {len(gen['files'])} files ...", flush=True)
    ing = run_step(env, "ingest", ws, files)
    phases["ingest"] = ing["process_seconds"]
    print(
        f"    {ing['rows_loaded']:,} rows loaded ({ing['rows_read']:,} read) in "
        f"{ing['process_seconds']:.0f} s",
        flush=True,
    )
    shutil.rmtree(exports)  # the workspace keeps its raw copies
    print("  sapat indicators (recompute every wave, publish a snapshot) ...", flush=True)
    t0 = time.perf_counter()
    r = subprocess.run(
        [*_sapat(), "indicators", "--instrument", INSTRUMENT, "--item", ITEM, "--format", "json"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    if r.returncode != 0:
        raise SystemExit(f"sapat indicators failed: {r.stderr[-2000:]}")
    phases["indicators"] = time.perf_counter() - t0
    print(f"    {phases['indicators']:.0f} s", flush=True)
    users = run_step(env, "users", ws, PASSWORD)
    phases["users"] = users["process_seconds"]
    phases["total"] = time.perf_counter() - t_all
    info = {
        "built_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),  # noqa: UP017
        "rows_requested": args.rows,
        "scale": scale,
        "waves": waves,
        "responses_generated": gen["rows"],
        "responses_read": ing["rows_read"],
        "responses_loaded": ing["rows_loaded"],
        "responses_quarantined": ing["rows_quarantined"],
        "responses_excluded": ing["rows_excluded"],
        "deans": users["deans"],
        "build_seconds": phases,
        "db_bytes": (ws / "data" / "processed" / "sapat.duckdb").stat().st_size,
    }
    marker.write_text(json.dumps(info, indent=2), encoding="utf-8")
    info["cached"] = False
    print(f"  built in {phases['total']:.0f} s", flush=True)
    return ws, info


def _search(faculty: str) -> str:
    return f"?instrument={INSTRUMENT}&item={ITEM}&unit={faculty}&level=faculty&lang=en"


def _outputs(key: str) -> list[dict]:
    parts = [p for p in key.strip(".").split("...") if p]
    out = []
    for p in parts:
        cid, prop = p.rsplit(".", 1)
        out.append({"id": cid, "property": prop})
    return out


def _router_body(key: str, cb: dict, path: str, search: str) -> dict:
    """The page router's request, as the browser sends it (see tests/dash_client.py)."""
    values = {"_pages_location.pathname": path, "_pages_location.search": search}

    def fill(deps):
        return [{**d, "value": values.get(f"{d['id']}.{d['property']}")} for d in deps]

    inputs = fill(cb["inputs"])
    return {
        "output": key,
        "outputs": _outputs(key),
        "inputs": inputs,
        "state": fill(cb.get("state", [])),
        "changedPropIds": [f"{inputs[0]['id']}.{inputs[0]['property']}"],
    }


class Server:
    """``sapat serve`` on a free loopback port, in its own process group."""

    def __init__(self, env: dict, workers: int, log: Path) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = log
        cmd = [*_sapat(), "serve", "--host", "127.0.0.1", "--port", str(self.port)]
        cmd += ["--workers", str(workers)]
        self.fh = open(log, "wb")  # noqa: SIM115 (open while the server runs)
        self.proc = subprocess.Popen(
            cmd, env=env, cwd=ROOT, stdout=self.fh, stderr=subprocess.STDOUT, start_new_session=True
        )

    def wait(self, timeout: float = 120.0) -> float:
        import requests

        t0 = time.perf_counter()
        while time.perf_counter() - t0 < timeout:
            if self.proc.poll() is not None:
                raise SystemExit(f"sapat serve exited: {self.log.read_text()[-2000:]}")
            try:
                if requests.get(self.base + "/healthz", timeout=2).status_code == 200:
                    return time.perf_counter() - t0
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise SystemExit("sapat serve did not answer /healthz in time")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # gunicorn's master stops its workers
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.fh.close()

    def cpu_seconds(self) -> float:
        """CPU seconds used so far by gunicorn's master and its workers (all threads,
        DuckDB's included), from /proc."""
        tick = os.sysconf("SC_CLK_TCK")
        master = self.proc.pid
        total = 0
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                rest = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(entry.name) == master or int(rest[1]) == master:
                total += int(rest[11]) + int(rest[12])
        return total / tick

    def log_problems(self) -> list[str]:
        text = self.log.read_text(encoding="utf-8", errors="replace")
        return [
            line
            for line in text.splitlines()
            if "Traceback" in line or "[ERROR]" in line or "Exception" in line
        ]


class Dean:
    """One simulated dean: a browser session that logs in and asks for whole pages.

    The log-in goes through ``requests`` (not timed); the pages through one kept-alive
    ``http.client`` connection with the session's cookies, so that the load generator
    spends little of the machine's two cores on itself (``requests`` took about as much
    CPU per request as the server). A connection the server closed while idle is opened
    again once, as a browser does."""

    def __init__(self, base: str, name: str, faculty: str) -> None:
        from urllib.parse import urlsplit

        import requests

        self.base, self.name, self.faculty = base, name, faculty
        http = requests.Session()
        r = http.post(
            base + "/login", data={"user": name, "password": PASSWORD}, allow_redirects=False
        )
        if r.status_code != 302:
            raise SystemExit(f"log-in of {name} failed: {r.status_code} {r.text[:200]}")
        http.get(base + "/")  # the page itself, as a browser loads it
        cookies = "; ".join(f"{c.name}={c.value}" for c in http.cookies)
        self.headers = {
            "X-CSRFToken": http.cookies.get("_csrf_token") or "",
            "Content-Type": "application/json",
            "Origin": base,
            "Cookie": cookies,
        }
        http.close()
        self.address = urlsplit(base)
        self.conn = None

    def _post(self, body: bytes) -> tuple[int, bytes]:
        import http.client

        for attempt in (1, 2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(
                    self.address.hostname, self.address.port, timeout=180
                )
            try:
                self.conn.request("POST", "/_dash-update-component", body, self.headers)
                resp = self.conn.getresponse()
                return resp.status, resp.read()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.conn.close()
                self.conn = None
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()

    def ask(self, path: str, body: bytes) -> dict:
        t0 = time.perf_counter()
        try:
            status, content = self._post(body)
            ms = (time.perf_counter() - t0) * 1000
            ok = status == 200 and b'"_pages_content"' in content
            return {
                "page": PAGES[path],
                "ms": ms,
                "ok": ok,
                "status": status,
                "bytes": len(content),
                "message": b'"page-message"' in content,
                "start": t0,
                "sample": "" if ok else content[:300].decode("utf-8", "replace"),
            }
        except Exception as exc:  # noqa: BLE001 - any failure is an error of the run
            return {
                "page": PAGES[path],
                "ms": (time.perf_counter() - t0) * 1000,
                "ok": False,
                "status": None,
                "bytes": 0,
                "message": False,
                "start": t0,
                "sample": repr(exc)[:300],
            }


def run_users(
    server: Server,
    deans: list[list[str]],
    key: str,
    cb: dict,
    users: int,
    requests_each: int | None,
    stop=None,
) -> dict:
    """``users`` deans at once, each in a process of its own (as browsers are: simulated
    users in threads of one process would wait for each other's Python lock and add that
    wait to the server's latency), each logged in first (not timed), then asking for the
    pages in turn, ``requests_each`` times (or until ``stop``, a multiprocessing event, is
    set). Returns the results, the wall time of the asking, the load generator's own CPU
    seconds and the server's CPU seconds in it."""
    import multiprocessing as mp

    ctx = mp.get_context("fork")
    bodies = {}
    for _name, faculty in deans:
        bodies[faculty] = {
            path: json.dumps(_router_body(key, cb, path, _search(faculty))).encode()
            for path in PAGES
        }
    go = ctx.Barrier(users + 1)
    queue = ctx.Queue()
    paths = list(PAGES)

    def user(i: int) -> None:
        name, faculty = deans[i % len(deans)]
        try:
            dean = Dean(server.base, name, faculty)
        except BaseException as exc:  # noqa: BLE001 - reported to the parent
            go.abort()
            queue.put((i, None, 0.0, repr(exc)))
            return
        go.wait()
        cpu0 = time.process_time()
        mine: list[dict] = []
        k = i  # each user starts on another page: the mix is the same at every moment
        while True:
            if requests_each is not None and len(mine) >= requests_each:
                break
            if stop is not None and stop.is_set():
                break
            path = paths[k % len(paths)]
            mine.append(dean.ask(path, bodies[dean.faculty][path]))
            k += 1
        cpu = time.process_time() - cpu0
        dean.close()
        queue.put((i, mine, cpu, ""))

    procs = [ctx.Process(target=user, args=(i,)) for i in range(users)]
    for pr in procs:
        pr.start()
    with contextlib.suppress(threading.BrokenBarrierError):
        go.wait()
    busy0 = machine_busy_seconds()
    server0, t0 = server.cpu_seconds(), time.perf_counter()
    parts = [queue.get() for _ in procs]
    wall = time.perf_counter() - t0
    server_cpu = server.cpu_seconds() - server0
    busy = machine_busy_seconds() - busy0
    for pr in procs:
        pr.join()
    failed = [msg for _, res, _, msg in parts if res is None]
    if failed:
        raise SystemExit(f"a simulated user could not log in: {failed[0]}")
    parts.sort(key=lambda x: x[0])
    return {
        "results": [r for _, res, _, _ in parts for r in res],
        "wall": wall,
        "cpu": sum(c for _, _, c, _ in parts),
        "server_cpu": server_cpu,
        "machine_busy": busy,
        "users": users,
    }


def summarise(run: dict) -> dict:
    results, wall, users = run["results"], run["wall"], run["users"]
    ok = [r for r in results if r["ok"]]
    errors = [r for r in results if not r["ok"]]
    out = {
        "users": users,
        "requests": len(results),
        "errors": len(errors),
        "error_rate": len(errors) / len(results) if results else float("nan"),
        "latency_ms": _dist([r["ms"] for r in ok]),
        "wall_seconds": wall,
        "requests_per_second": len(results) / wall if wall else float("nan"),
        "load_generator_cpu_seconds": run["cpu"],
        "server_cpu_seconds": run["server_cpu"],
        "server_cpu_ms_per_request": 1000 * run["server_cpu"] / len(results) if results else 0,
        "server_cpu_busy": run["server_cpu"] / (wall * (os.cpu_count() or 1)) if wall else 0,
        # CPU used meanwhile by other processes (publishes, other people's jobs)
        "other_cpu_seconds": max(0.0, run["machine_busy"] - run["server_cpu"] - run["cpu"]),
        "other_cpu_share": (
            max(0.0, run["machine_busy"] - run["server_cpu"] - run["cpu"])
            / (wall * (os.cpu_count() or 1))
            if wall
            else 0
        ),
        "pages": {},
        "error_samples": [
            {"page": r["page"], "status": r["status"], "body": r["sample"]} for r in errors[:5]
        ],
    }
    for page in PAGES.values():
        mine = [r for r in results if r["page"] == page]
        good = [r for r in mine if r["ok"]]
        out["pages"][page] = {
            "requests": len(mine),
            "errors": len(mine) - len(good),
            "latency_ms": _dist([r["ms"] for r in good]),
            "mean_bytes": statistics.fmean(r["bytes"] for r in good) if good else 0,
            "empty_views": sum(r["message"] for r in good),
        }
    return out


def publish_phase(
    server: Server, env: dict, deans, key, cb, users: int, publishes: int, snapshots: Path
) -> dict:
    """``users`` deans asking for pages while ``sapat publish`` runs ``publishes`` times,
    a few seconds apart; the users go on for a few seconds after the last one."""
    import multiprocessing as mp

    stop = mp.get_context("fork").Event()
    runs: list[dict] = []
    before = (snapshots / "CURRENT").read_text().strip()

    def publisher() -> None:
        try:
            for _ in range(publishes):
                time.sleep(3)
                t0 = time.perf_counter()
                r = subprocess.run(
                    [*_sapat(), "publish"], env=env, cwd=ROOT, capture_output=True, text=True
                )
                runs.append(
                    {
                        "start": t0,
                        "seconds": time.perf_counter() - t0,
                        "exit": r.returncode,
                        "output": (r.stdout + r.stderr).strip()[-300:],
                    }
                )
            time.sleep(4)
        finally:
            stop.set()

    th = threading.Thread(target=publisher)
    th.start()
    run = run_users(server, deans, key, cb, users, None, stop)
    th.join()
    results = run["results"]
    out = summarise(run)
    windows = [(r["start"], r["start"] + r["seconds"]) for r in runs]
    during = [
        r
        for r in results
        if any(a <= r["start"] + r["ms"] / 1000 and r["start"] <= b for a, b in windows)
    ]
    out["publishes"] = [{k: v for k, v in r.items() if k != "start"} for r in runs]
    out["requests_during_publishes"] = len(during)
    out["errors_during_publishes"] = sum(not r["ok"] for r in during)
    out["snapshot_before"] = before
    out["snapshot_after"] = (snapshots / "CURRENT").read_text().strip()
    return out


def measure(args, ws: Path, info: dict, work: Path) -> dict:
    import requests

    env = _env(ws, work)
    deans = info["deans"]
    if args.faculty not in {f for _, f in deans}:
        raise SystemExit(f"--faculty {args.faculty} has no dean; have {[f for _, f in deans]}")
    # the chosen faculty's dean first: a run with few users still covers it
    deans = sorted(deans, key=lambda d: d[1] != args.faculty)
    res: dict = {}
    print(f"  sapat serve --workers {args.workers} ...", flush=True)
    server = Server(env, args.workers, work / "serve.log")
    try:
        res["server_start_seconds"] = server.wait()
        # the callback map, as the page's JavaScript gets it
        s = requests.Session()
        s.post(server.base + "/login", data={"user": deans[0][0], "password": PASSWORD})
        deps = s.get(server.base + "/_dash-dependencies").json()
        s.close()
        cb = next(d for d in deps if "_pages_content.children" in d["output"])
        key = cb["output"]
        print("  warming up (every worker builds its app; not counted) ...", flush=True)
        warm = run_users(server, deans, key, cb, args.users * 2, len(PAGES) * 4)["results"]
        res["warmup"] = {"requests": len(warm), "errors": sum(not r["ok"] for r in warm)}
        print(f"  1 user × {len(PAGES) * 5} requests (one at a time) ...", flush=True)
        res["users_1"] = summarise(run_users(server, deans, key, cb, 1, len(PAGES) * 5))
        _print_phase(res["users_1"])
        print(f"  {args.users} users × {args.requests} requests ...", flush=True)
        res["users_4"] = summarise(run_users(server, deans, key, cb, args.users, args.requests))
        _print_phase(res["users_4"])
        print(f"  {args.many_users} users × {args.requests_many} requests ...", flush=True)
        r20 = run_users(server, deans, key, cb, args.many_users, args.requests_many)
        res["users_20"] = summarise(r20)
        _print_phase(res["users_20"])
        print(
            f"  {args.users} users while `sapat publish` runs {args.publishes} times ...",
            flush=True,
        )
        snaps = ws / "data" / "processed" / "snapshots"
        res["publish"] = publish_phase(
            server, env, deans, key, cb, args.users, args.publishes, snaps
        )
        _print_phase(res["publish"])
    finally:
        server.stop()
    res["server_log_problems"] = server.log_problems()[:20]
    snapshot = (ws / "data" / "processed" / "snapshots" / "CURRENT").read_text().strip()
    snapshot_path = ws / "data" / "processed" / "snapshots" / snapshot
    print(f"  bare DuckDB query, {args.bare_runs} runs ...", flush=True)
    uni = _university(ws)
    res["bare"] = run_step(env, "bare", snapshot_path, args.faculty, uni, args.bare_runs)
    print(
        f"    p50 {res['bare']['fetchall']['p50']:.2f} ms, p95 "
        f"{res['bare']['fetchall']['p95']:.2f} ms ({res['bare']['rows']} rows)",
        flush=True,
    )
    print(f"  the same view from the raw answers, {args.raw_runs} runs ...", flush=True)
    res["raw"] = run_step(env, "raw", ws, args.faculty, args.raw_runs)
    print(
        f"    median {res['raw']['p50']:.0f} ms over {res['raw']['answer_rows_scanned']:,} "
        f"rows; same numbers as published: {res['raw']['same_numbers_as_published']}",
        flush=True,
    )
    print(f"  where a callback's time goes (one at a time, {args.breakdown_runs} runs) ...")
    dean = next(name for name, f in deans if f == args.faculty)
    profile = ""
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
        profile = str(args.profile.resolve())
    res["breakdown"] = run_step(
        env, "breakdown", ws, dean, args.faculty, PASSWORD, args.breakdown_runs, profile
    )
    return res


def _university(ws: Path) -> str:
    with open(ws / "declarations" / "org_units.csv", encoding="utf-8", newline="") as fh:
        return next(r["code"] for r in csv.DictReader(fh) if r["kind"] == "university")


def _print_phase(p: dict) -> None:
    lat = p["latency_ms"]
    print(
        f"    {p['requests']} requests, {p['errors']} errors, p50 {lat['p50']:.0f} ms, "
        f"p95 {lat['p95']:.0f} ms, {p['requests_per_second']:.1f} req/s, server CPU "
        f"{p['server_cpu_ms_per_request']:.0f} ms a request, {100 * p['server_cpu_busy']:.0f} % "
        f"of the cores (others: {100 * p['other_cpu_share']:.0f} %)",
        flush=True,
    )


def targets(res: dict) -> list[dict]:
    m = res["measured"]
    r = res["ratios"]
    return [
        {
            "what": "trends callback p95 (4 users) / bare DuckDB query p95",
            "value": r["trends_p95_over_bare_p95"],
            "limit": f"≤ {BARE_RATIO_MAX:g}",
            "ok": r["trends_p95_over_bare_p95"] <= BARE_RATIO_MAX,
        },
        {
            "what": "same view from raw answers (median, new connection) / trends callback "
            "p95 (4 users)",
            "value": r["raw_over_trends_p95"],
            "limit": f"≥ {RAW_SPEEDUP_MIN:g}",
            "ok": r["raw_over_trends_p95"] >= RAW_SPEEDUP_MIN,
        },
        {
            "what": "same view from raw answers (median, connection kept open) / trends "
            "callback p95 (4 users)",
            "value": r["raw_open_connection_over_trends_p95"],
            "limit": f"≥ {RAW_SPEEDUP_MIN:g}",
            "ok": r["raw_open_connection_over_trends_p95"] >= RAW_SPEEDUP_MIN,
        },
        {
            "what": "errors at 20 concurrent users",
            "value": m["users_20"]["errors"],
            "limit": "= 0",
            "ok": m["users_20"]["errors"] == 0,
        },
        {
            "what": "errors at 4 users while snapshots are published",
            "value": m["publish"]["errors"],
            "limit": "= 0",
            "ok": m["publish"]["errors"] == 0,
        },
    ]


def ratios(m: dict) -> dict:
    bare = m["bare"]["fetchall"]["p95"]
    trends = m["users_4"]["pages"]["trends"]["latency_ms"]["p95"]
    every = m["users_4"]["latency_ms"]["p95"]
    return {
        "bare_query_p95_ms": bare,
        "trends_callback_p95_ms_4_users": trends,
        "all_callbacks_p95_ms_4_users": every,
        "raw_view_median_ms": m["raw"]["p50"],
        "trends_p95_over_bare_p95": trends / bare,
        "all_callbacks_p95_over_bare_p95": every / bare,
        "raw_over_trends_p95": m["raw"]["p50"] / trends,
        "raw_min_over_trends_p95": m["raw"]["min"] / trends,
        "raw_open_connection_median_ms": m["raw"]["open_connection"]["p50"],
        "raw_open_connection_over_trends_p95": m["raw"]["open_connection"]["p50"] / trends,
        "bare_ratio_max": BARE_RATIO_MAX,
        "raw_speedup_min": RAW_SPEEDUP_MIN,
    }


def report(res: dict) -> str:
    m, mach, st = res["measured"], res["machine"], res["store"]
    lines = []
    add = lines.append
    add(
        f"Sapat dashboard benchmark — {res['started']}  ({mach['cpu']}, {mach['cores']} cores, "
        f"{mach['memory_gb']} GB)"
    )
    add(
        f"store: {st['responses_loaded']:,} {INSTRUMENT} responses loaded "
        f"({st['responses_read']:,} read) over {len(st['waves'])} waves "
        f"({st['waves'][0]} … {st['waves'][-1]}); "
        + ("cached" if st["cached"] else f"built in {st['build_seconds']['total']:.0f} s")
        + f"; sapat serve --workers {res['workers']} (gunicorn gthread, 4 threads each)"
    )
    add(f"pages: {', '.join(PAGES.values())}; query {res['search_example']}")
    add("")
    add(
        f"{'phase':<40}{'requests':>9}{'errors':>8}{'p50 ms':>9}{'p95 ms':>9}{'req/s':>8}"
        f"{'CPU ms/req':>11}{'busy':>6}{'others':>7}"
    )
    for key, label in (
        ("users_1", "1 user, one request at a time"),
        ("users_4", f"{m['users_4']['users']} users"),
        ("users_20", f"{m['users_20']['users']} users"),
        ("publish", f"{m['publish']['users']} users + {len(m['publish']['publishes'])} publishes"),
    ):
        p = m[key]
        lat = p["latency_ms"]
        add(
            f"  {label:<38}{p['requests']:>9}{p['errors']:>8}{lat['p50']:>9.0f}{lat['p95']:>9.0f}"
            f"{p['requests_per_second']:>8.1f}{p['server_cpu_ms_per_request']:>11.0f}"
            f"{100 * p['server_cpu_busy']:>5.0f}%{100 * p['other_cpu_share']:>6.0f}%"
        )
        for page, q in p["pages"].items():
            ql = q["latency_ms"]
            add(
                f"    {page:<36}{q['requests']:>9}{q['errors']:>8}{ql['p50']:>9.0f}"
                f"{ql['p95']:>9.0f}   {q['mean_bytes'] / 1000:.0f} kB"
            )
    pub = m["publish"]
    runs = ", ".join(f"{x['seconds']:.1f} s (exit {x['exit']})" for x in pub["publishes"])
    add(
        f"  publishes: {runs}; {pub['requests_during_publishes']} requests overlapped them, "
        f"{pub['errors_during_publishes']} errors"
    )
    add("")
    b, raw = m["bare"], m["raw"]
    add(
        f"bare DuckDB query ({b['rows']} rows, warm connection): p50 {b['fetchall']['p50']:.2f} ms, "
        f"p95 {b['fetchall']['p95']:.2f} ms (fetchdf: p95 {b['fetchdf']['p95']:.2f} ms)"
    )
    add(
        f"same view from raw answers ({raw['answer_rows_scanned']:,} rows, new connection): "
        f"median {raw['p50']:.0f} ms, min {raw['min']:.0f} ms, max {raw['max']:.0f} ms; "
        f"same numbers as published: {raw['same_numbers_as_published']}"
    )
    ro = raw["open_connection"]
    add(
        f"  the same on one connection kept open: median {ro['p50']:.0f} ms, min "
        f"{ro['min']:.0f} ms, max {ro['max']:.0f} ms"
    )
    add("")
    add("one callback at a time, in-process (medians, ms; the callback answered from what was")
    add("kept; the first time for a person and snapshot costs view + render + JSON):")
    add(f"  {'page':<12}{'callback':>9}{'view':>8}{'render':>8}{'JSON':>8}{'first':>8}{'kB':>8}")
    for page in PAGES.values():
        q = m["breakdown"][page]
        add(
            f"  {page:<12}{q['callback_ms']['p50']:>9.1f}{q['view_ms']['p50']:>8.1f}"
            f"{q['render_ms']['p50']:>8.1f}{q['json_ms']['p50']:>8.1f}"
            f"{q['first_time_ms_median']:>8.1f}"
            f"{q['response_bytes'] / 1000:>8.0f}"
        )
    door = m["breakdown"]["trends"]["door_reads_ms"]
    add(f"  trends' three reads through the door: {door['p50']:.1f} ms")
    add("")
    r = res["ratios"]
    add(
        f"ratios: trends p95 / bare p95 = {r['trends_p95_over_bare_p95']:.1f}×; all pages p95 / "
        f"bare p95 = {r['all_callbacks_p95_over_bare_p95']:.1f}×; raw view / trends p95 = "
        f"{r['raw_over_trends_p95']:.1f}× (connection kept open: "
        f"{r['raw_open_connection_over_trends_p95']:.1f}×)"
    )
    add("targets (design/PERFORMANCE.md):")
    for t in res["targets"]:
        v = t["value"]
        add(
            f"  {'meets' if t['ok'] else 'MISSES':<7} {t['what']}: "
            f"{v if isinstance(v, int) else f'{v:.2f}'} (limit {t['limit']})"
        )
    for i, rd in enumerate(res.get("rounds", []), 1):
        add(
            f"  round {i}: p95 ms 1 user {rd['users_1_p95']:.0f}, 4 users {rd['users_4_p95']:.0f}, "
            f"20 users {rd['users_20_p95']:.0f}; trends p95 / bare p95 "
            f"{rd['ratios']['trends_p95_over_bare_p95']:.0f}×, raw / trends p95 "
            f"{rd['ratios']['raw_over_trends_p95']:.2f}×; errors at 20 users "
            f"{rd['users_20_errors']}, while publishing {rd['publish_errors']}"
        )
    if m["server_log_problems"]:
        add(f"server log: {len(m['server_log_problems'])} problem line(s), first:")
        add(f"  {m['server_log_problems'][0]}")
    return "\n".join(lines)


def machine_info() -> dict:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_ingest import machine_info as info

    return info()


def versions() -> dict:
    out = {}
    for name in LIBRARIES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--rows", type=int, default=5_000_000, help="responses in the store, over all waves"
    )
    ap.add_argument("--waves", type=int, default=10, help="waves (academic years) in the store")
    ap.add_argument("--format", default="plain_cp1251", choices=("plain_cp1251", "limesurvey"))
    ap.add_argument("--workers", type=int, default=4, help="sapat serve --workers")
    ap.add_argument("--users", type=int, default=4, help="concurrent users of the main phase")
    ap.add_argument("--requests", type=int, default=250, help="requests per user (main phase)")
    ap.add_argument("--many-users", type=int, default=20, help="concurrent users, second phase")
    ap.add_argument(
        "--requests-many", type=int, default=25, help="requests per user (second phase)"
    )
    ap.add_argument("--publishes", type=int, default=2, help="sapat publish runs under load")
    ap.add_argument("--faculty", default="F-NHP", help="the faculty of the baselines")
    ap.add_argument("--bare-runs", type=int, default=2000, help="runs of the bare query")
    ap.add_argument("--raw-runs", type=int, default=5, help="runs of the raw-answer view")
    ap.add_argument(
        "--breakdown-runs", type=int, default=30, help="runs per stage of the breakdown"
    )
    ap.add_argument("--repeat", type=int, default=1, help="rounds of the whole measurement")
    ap.add_argument(
        "--profile",
        type=Path,
        default=None,
        help="write cProfile output of each page's view and rendering to this folder",
    )
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument(
        "--work",
        type=Path,
        default=Path(tempfile.gettempdir()) / "sapat-bench-dashboard",
        help="cache of the built workspace, the key and the server's log",
    )
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "dashboard.json")
    args = ap.parse_args(argv)
    if args.waves < 3:
        ap.error("--waves must be at least 3 (trends need three waves)")

    args.work = args.work.resolve()
    args.work.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    print(f"store: {args.rows:,} responses over {args.waves} waves", flush=True)
    ws, info = build(args, args.work)
    res: dict = {
        "benchmark": "dashboard",
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),  # noqa: UP017
        "instrument": INSTRUMENT,
        "item": ITEM,
        "faculty": args.faculty,
        "search_example": _search(args.faculty),
        "workers": args.workers,
        "store": {k: v for k, v in info.items() if k != "deans"},
        "deans": info["deans"],
        "machine": machine_info(),
        "versions": versions(),
        "settings": {
            k: getattr(args, k)
            for k in ("users", "requests", "many_users", "requests_many", "publishes")
        },
    }
    rounds = []
    for i in range(args.repeat):
        if args.repeat > 1:
            print(f"round {i + 1}/{args.repeat}", flush=True)
        rounds.append(measure(args, ws, info, args.work))
    res["measured"] = rounds[-1]
    if args.repeat > 1:
        res["rounds"] = [
            {
                "ratios": ratios(r),
                **{
                    f"{k}_{q}": r[k]["latency_ms"][q]
                    for k in ("users_1", "users_4", "users_20", "publish")
                    for q in ("p50", "p95")
                },
                "users_20_errors": r["users_20"]["errors"],
                "publish_errors": r["publish"]["errors"],
            }
            for r in rounds
        ]
    res["ratios"] = ratios(res["measured"])
    res["targets"] = targets(res)
    res["total_seconds"] = time.perf_counter() - t_start
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print()
    print(report(res))
    print(f"\nwhole run {res['total_seconds']:.0f} s; written to {args.out}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        _child(sys.argv[2:])
    else:
        raise SystemExit(main())
