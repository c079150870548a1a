"""Indicators benchmark: a full and an incremental recompute of every indicator and test
against one bare DuckDB GROUP BY over the same answers, measured in the same run.

Run from the repository root::

    .venv/bin/python benchmarks/bench_indicators.py [--responses 1000000] [--waves 10]
        [--out benchmarks/results/indicators.json]

The store (``--responses`` student_experience responses over ``--waves`` academic years,
ingested with :func:`pipeline.ingest.ingest_file`) and the exports of one more wave are made
once and cached under ``--work``. Every measured step runs in its own Python process on a
fresh copy of the cached store, so each peak memory figure (maximum resident set, from
``wait4``) belongs to that step alone. See benchmarks/README.md for how to read the output.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
INSTRUMENT = "student_experience"
FIRST_YEAR = 2016
#: Respondents per unit of ``--scale`` for one wave of student_experience (measured).
ROWS_PER_SCALE = 5457.4
LIBRARIES = ("numpy", "pandas", "scipy", "duckdb", "pyarrow", "statsmodels", "threadpoolctl")
# Targets (design/PERFORMANCE.md, "Goals")
FULL_RATIO_MAX = 10.0
INCREMENTAL_RATIO_MAX = 0.25


def wave_names(n: int) -> list[str]:
    return [f"{y}-{y + 1}" for y in range(FIRST_YEAR, FIRST_YEAR + n)]


# ------------------------------------------------------------------ child steps
def _peak_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _tools():
    from pipeline.instruments import example_catalog
    from pipeline.registry import example_registry

    return example_catalog(), example_registry()


def bench_registry(waves: list[str], scale: float):
    """The shipped registry with headcounts for every benchmark wave (waves it has none for
    get its latest, as the synthetic generator does) scaled as the synthetic population is,
    so respondents never outnumber headcounts and every wave is weighted."""
    import dataclasses

    import numpy as np
    import pandas as pd

    catalog, reg = _tools()
    h = reg.headcounts
    latest = h[h["wave"] == reg.waves[-1]]
    extra = [latest.assign(wave=w) for w in waves if w not in set(h["wave"])]
    h = pd.concat([h, *extra], ignore_index=True)
    h["headcount"] = np.rint(h["headcount"].to_numpy(dtype=float) * scale).astype("int64")
    h["headcount"] = h["headcount"].astype("Int64")
    return catalog, dataclasses.replace(reg, headcounts=h)


def step_generate(folder: str, waves: str, scale: str, fmt: str, seed: str) -> dict:
    """Write one export per wave (all waves in one plan, so planted effects span them)."""
    from pipeline.synth import synthesize

    catalog, registry = _tools()
    truth = synthesize(
        folder,
        registry,
        catalog,
        waves=waves.split(","),
        seed=int(seed),
        scale=float(scale),
        instruments=[INSTRUMENT],
        dialect=fmt,
    )
    return {"files": len(truth["files"]), "rows": sum(f["rows"] for f in truth["files"])}


def step_ingest(db: str, files: str) -> dict:
    """Ingest the given exports (comma-separated) into the store ``db``, in order."""
    from pipeline.ingest import ingest_file
    from pipeline.ingest.pseudonym import load_key
    from pipeline.store import Store

    catalog, registry = _tools()
    key = load_key()
    out = {"rows_read": 0, "rows_loaded": 0, "rows_quarantined": 0}
    t0 = time.perf_counter()
    with Store(db, raw_dir=Path(db).parent / "raw") as store:
        for file in files.split(","):
            r = ingest_file(file, store, catalog, registry, key=key, instrument=INSTRUMENT)
            if r.status != "loaded":
                raise SystemExit(f"ingest of {file} failed: {r.status} {r.errors[:3]}")
            for k in out:
                out[k] += getattr(r, k)
    out["seconds"] = time.perf_counter() - t0
    return out


def step_long(db: str, long_db: str) -> dict:
    """Outside any timing: the valid item answers of ``db`` as a long table in ``long_db``
    (wave, programme, item, answer), one row per respondent × answered item."""
    import duckdb

    catalog, _ = _tools()
    items = sorted({f.code for inst in catalog.all() if inst.id == INSTRUMENT for f in inst.items})
    con = duckdb.connect(long_db)
    con.execute(f"ATTACH '{db}' AS src (READ_ONLY)")
    have = {
        r[0]
        for r in con.execute(
            "SELECT column_name FROM duckdb_columns() WHERE database_name = 'src' AND table_name = ?",
            [f"fct_{INSTRUMENT}"],
        ).fetchall()
    }
    cols = ", ".join(f'"{c}"' for c in items if c in have)
    t0 = time.perf_counter()
    con.execute(f"""CREATE OR REPLACE TABLE answers_long AS
        SELECT wave, programme, item, answer FROM (
            UNPIVOT (SELECT wave, programme, {cols} FROM src.fct_{INSTRUMENT} WHERE NOT excluded)
            ON {cols} INTO NAME item VALUE answer)
        WHERE answer >= 0""")
    rows = con.execute("SELECT count(*) FROM answers_long").fetchone()[0]
    seconds = time.perf_counter() - t0
    con.close()
    return {"rows": rows, "seconds": seconds}


def step_groupby(long_db: str, repeat: str) -> dict:
    """The bare baseline: one GROUP BY (wave, programme, item → n, sum, count ≥ 4)."""
    import duckdb

    con = duckdb.connect(long_db, read_only=True)
    runs = []
    groups = 0
    for _ in range(int(repeat)):
        t0 = time.perf_counter()
        res = con.execute(
            """SELECT wave, programme, item, count(*) AS n, sum(answer) AS total,
                      count(*) FILTER (answer >= 4) AS x_positive
               FROM answers_long GROUP BY wave, programme, item"""
        ).fetchall()
        runs.append(time.perf_counter() - t0)
        groups = len(res)
    con.close()
    return {"seconds": statistics.median(runs), "runs": runs, "groups": groups}


def step_compute(db: str, full: str, waves: str, scale: str, profile: str) -> dict:
    """``indicators.recompute`` on the store ``db`` (full or incremental), timed."""
    from pipeline.config import Statistics
    from pipeline.indicators import recompute
    from pipeline.store import Store
    from pipeline.store.tables import TABLES

    catalog, registry = bench_registry(waves.split(","), float(scale))
    store = Store(db, raw_dir=Path(db).parent / "raw")
    con = store.con
    base = _peak_mb()
    prof = None
    if profile:
        import cProfile

        prof = cProfile.Profile()
        prof.enable()
    t0 = time.perf_counter()
    touched = recompute(store, registry, catalog, Statistics(), full=full == "1")
    seconds = time.perf_counter() - t0
    if prof is not None:
        import io
        import pstats

        prof.disable()
        prof.dump_stats(profile + ".pstats")
        text = io.StringIO()
        pstats.Stats(prof, stream=text).sort_stats("cumulative").print_stats(60)
        Path(profile).write_text(text.getvalue(), encoding="utf-8")
    tables = {}
    for t in TABLES:
        exists = con.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE table_name = ?", [t]
        ).fetchone()[0]
        if exists:
            tables[t] = con.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
    store.close()
    return {
        "seconds": seconds,
        "touched": touched[["instrument", "wave"]].values.tolist(),
        "rows": tables,
        "rss_after_import_mb": base,
    }


STEPS = {
    "generate": step_generate,
    "ingest": step_ingest,
    "long": step_long,
    "groupby": step_groupby,
    "compute": step_compute,
}


def _child(argv: list[str]) -> None:
    name, *args = argv
    sys.path.insert(0, str(ROOT))
    out = STEPS[name](*args)
    out["peak_rss_mb_self"] = _peak_mb()
    print("RESULT " + json.dumps(out))


# ------------------------------------------------------------------ parent side
def run_step(name: str, *args: str) -> dict:
    """Run one step in a new process; its own peak RSS comes from ``wait4``."""
    cmd = [sys.executable, __file__, "--child", name, *map(str, args)]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, cwd=ROOT, env=os.environ.copy())
    stdout = proc.stdout.read().decode()
    _, status, usage = os.wait4(proc.pid, 0)
    code = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - t0
    if code != 0:
        raise SystemExit(f"step {name} failed (exit {code})")
    line = next(x for x in stdout.splitlines() if x.startswith("RESULT "))
    out = json.loads(line[len("RESULT ") :])
    out["peak_rss_mb"] = usage.ru_maxrss / 1024
    out["process_seconds"] = wall
    out["cpu_seconds"] = usage.ru_utime + usage.ru_stime
    return out


def prepare(work: Path, responses: int, n_waves: int, fmt: str, seed: int) -> dict:
    """Cached: exports of ``n_waves + 1`` waves, the store of the first ``n_waves``, the
    long table of its answers. Returns paths and sizes."""
    per_wave = round(responses / n_waves)
    scale = per_wave / ROWS_PER_SCALE
    tag = f"{INSTRUMENT}_{fmt}_{responses}x{n_waves}_seed{seed}"
    folder = work / tag
    waves = wave_names(n_waves + 1)
    truth_path = folder / "exports" / "truth.json"
    if not truth_path.exists():
        if folder.exists():
            shutil.rmtree(folder)
        print(f"  generating {n_waves + 1} waves × ~{per_wave:,} {fmt} responses ...", flush=True)
        r = run_step("generate", folder / "exports", ",".join(waves), scale, fmt, seed)
        print(f"    {r['rows']:,} rows in {r['process_seconds']:.0f} s", flush=True)
    truth = json.loads(truth_path.read_text(encoding="utf-8"))
    by_wave = {f["wave"]: f for f in truth["files"] if f["instrument"] == INSTRUMENT}
    files = [folder / "exports" / by_wave[w]["file"] for w in waves]
    base = folder / "base" / "sapat.duckdb"
    done = folder / "base" / "ingested.json"
    if not done.exists():
        if base.parent.exists():
            shutil.rmtree(base.parent)
        base.parent.mkdir(parents=True)
        print(f"  ingesting {n_waves} waves into {base} ...", flush=True)
        r = run_step("ingest", base, ",".join(map(str, files[:n_waves])))
        print(f"    {r['rows_loaded']:,} rows loaded in {r['seconds']:.0f} s", flush=True)
        done.write_text(json.dumps(r), encoding="utf-8")
    ingested = json.loads(done.read_text(encoding="utf-8"))
    long_db = folder / "long.duckdb"
    long_done = folder / "long.json"
    if not long_done.exists():
        long_db.unlink(missing_ok=True)
        print("  building the long table (outside the timing) ...", flush=True)
        r = run_step("long", base, long_db)
        print(f"    {r['rows']:,} answers in {r['seconds']:.1f} s", flush=True)
        long_done.write_text(json.dumps(r), encoding="utf-8")
    long = json.loads(long_done.read_text(encoding="utf-8"))
    return {
        "folder": folder,
        "waves": waves,
        "scale": scale,
        "files": files,
        "base": base,
        "responses_loaded": ingested["rows_loaded"],
        "responses_read": ingested["rows_read"],
        "extra_wave_rows": by_wave[waves[-1]]["rows"],
        "long_db": long_db,
        "long_rows": long["rows"],
        "long_build_seconds": long["seconds"],
    }


def machine_info() -> dict:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gb = None
    try:
        kb = next(
            int(x.split()[1])
            for x in Path("/proc/meminfo").read_text().splitlines()
            if x.startswith("MemTotal")
        )
        mem_gb = round(kb / 1024**2, 1)
    except (OSError, StopIteration):
        pass
    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "memory_gb": mem_gb,
    }


def versions() -> dict:
    out = {}
    for name in LIBRARIES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def _summary(runs: list[dict]) -> dict:
    """Medians over the runs (time and peak memory), with every run kept."""
    return {
        "seconds": statistics.median(r["seconds"] for r in runs),
        "peak_rss_mb": statistics.median(r["peak_rss_mb"] for r in runs),
        "runs": runs,
    }


def measure(
    prep: dict, work: Path, repeat: int, groupby_runs: int, profile_dir: Path | None
) -> dict:
    """``repeat`` rounds of: the bare GROUP BY, a full recompute on a fresh copy of the
    store, an incremental recompute on a fresh copy of the store after a full recompute
    and the new wave's ingest (made in round 1). Medians of the rounds."""
    scratch = work / "scratch"
    if scratch.exists():
        shutil.rmtree(scratch)
    scratch.mkdir(parents=True)
    db, after_ingest = scratch / "sapat.duckdb", scratch / "after_ingest.duckdb"
    waves, scale = ",".join(prep["waves"]), str(prep["scale"])

    def prof(name: str, i: int) -> str:
        return str(profile_dir / f"{name}.txt") if profile_dir and i == 0 else ""

    bare, full, inc, added = [], [], [], None
    for i in range(repeat):
        tag = f"[{i + 1}/{repeat}]"
        print(
            f"  {tag} bare DuckDB GROUP BY on the long table ({prep['long_rows']:,} rows, "
            f"median of {groupby_runs} in one process) ...",
            flush=True,
        )
        bare.append(run_step("groupby", prep["long_db"], groupby_runs))
        print(f"    {bare[-1]['seconds']:.3f} s, {bare[-1]['peak_rss_mb']:.0f} MB", flush=True)
        print(f"  {tag} indicators.compute(full=True) ...", flush=True)
        shutil.copyfile(prep["base"], db)
        full.append(run_step("compute", db, "1", waves, scale, prof("full", i)))
        print(f"    {full[-1]['seconds']:.2f} s, {full[-1]['peak_rss_mb']:.0f} MB", flush=True)
        if added is None:
            print(f"  {tag} ingesting wave {prep['waves'][-1]} (not timed) ...", flush=True)
            added = run_step("ingest", db, str(prep["files"][-1]))
            print(f"    {added['rows_loaded']:,} rows loaded", flush=True)
            shutil.copyfile(db, after_ingest)
        print(f"  {tag} indicators.compute() after the new wave (incremental) ...", flush=True)
        shutil.copyfile(after_ingest, db)
        inc.append(run_step("compute", db, "0", waves, scale, prof("incremental", i)))
        print(f"    {inc[-1]['seconds']:.2f} s, {inc[-1]['peak_rss_mb']:.0f} MB", flush=True)
    shutil.rmtree(scratch)
    bare_s, full_s, inc_s = _summary(bare), _summary(full), _summary(inc)
    bare_s["groups"] = bare[0]["groups"]
    full_s["rows"], full_s["touched"] = full[0]["rows"], len(full[0]["touched"])
    inc_s["rows"], inc_s["touched"] = inc[0]["rows"], inc[0]["touched"]
    full_per_round = [f["seconds"] / b["seconds"] for f, b in zip(full, bare, strict=True)]
    inc_per_round = [n["seconds"] / f["seconds"] for n, f in zip(inc, full, strict=True)]
    return {
        "bare_groupby": bare_s,
        "full": full_s,
        "added_wave": added,
        "incremental": inc_s,
        "full_ratio": full_s["seconds"] / bare_s["seconds"],
        "incremental_ratio": inc_s["seconds"] / full_s["seconds"],
        "full_ratio_per_round": full_per_round,
        "incremental_ratio_per_round": inc_per_round,
        "full_memory_mb": full_s["peak_rss_mb"],
    }


def targets(res: dict) -> list[dict]:
    m = res["measured"]
    return [
        {
            "what": "full recompute / bare GROUP BY (time)",
            "value": m["full_ratio"],
            "limit": f"≤ {FULL_RATIO_MAX:g}",
            "ok": m["full_ratio"] <= FULL_RATIO_MAX,
        },
        {
            "what": "incremental recompute after one wave / full recompute (time)",
            "value": m["incremental_ratio"],
            "limit": f"≤ {INCREMENTAL_RATIO_MAX:g}",
            "ok": m["incremental_ratio"] <= INCREMENTAL_RATIO_MAX,
        },
    ]


def report(res: dict) -> str:
    m, mach = res["measured"], res["machine"]
    lines = []
    add = lines.append
    add(
        f"Sapat indicators benchmark — {res['started']}  ({mach['cpu']}, {mach['cores']} cores, "
        f"{mach['memory_gb']} GB; medians of {res['repeat']} round(s))"
    )
    add(
        f"store: {res['responses_loaded']:,} {INSTRUMENT} responses over {res['waves']} waves "
        f"({res['first_wave']} … {res['last_wave']}); long table {res['long_rows']:,} answers; "
        f"new wave {res['added_wave']}: {m['added_wave']['rows_loaded']:,} responses"
    )
    add("")
    add(f"{'step':<58}{'time s':>9}{'peak MB':>10}{'× bare':>9}")
    bare = m["bare_groupby"]["seconds"]
    for label, part in (
        ("bare DuckDB GROUP BY (wave, programme, item)", m["bare_groupby"]),
        ("indicators.compute(full=True), all waves", m["full"]),
        ("indicators.compute() after one new wave (incremental)", m["incremental"]),
    ):
        add(
            f"  {label:<56}{part['seconds']:>9.3f}{part['peak_rss_mb']:>10.0f}"
            f"{part['seconds'] / bare:>9.1f}"
        )
    add(f"  incremental / full: {m['incremental_ratio']:.3f}")
    if res["repeat"] > 1:
        per = ", ".join(f"{x:.1f}" for x in m["full_ratio_per_round"])
        add(
            f"  per round: full / bare {per}; incremental / full "
            + ", ".join(f"{x:.3f}" for x in m["incremental_ratio_per_round"])
        )
    add("")
    add("targets (design/PERFORMANCE.md):")
    for t in res["targets"]:
        add(
            f"  {'meets' if t['ok'] else 'MISSES':<7} {t['what']}: {t['value']:.3f} "
            f"(limit {t['limit']})"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--responses",
        type=int,
        default=1_000_000,
        help="responses in the store, spread evenly over the waves",
    )
    ap.add_argument("--waves", type=int, default=10, help="waves in the store (one more is added)")
    ap.add_argument("--format", default="plain_cp1251", choices=("plain_cp1251", "limesurvey"))
    ap.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="rounds of GROUP BY, full and incremental recompute (medians reported)",
    )
    ap.add_argument(
        "--groupby-runs",
        type=int,
        default=3,
        help="runs of the bare GROUP BY in its process per round (median)",
    )
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument(
        "--profile",
        type=Path,
        default=None,
        help="write cProfile profiles of both recomputes to this folder",
    )
    ap.add_argument(
        "--work",
        type=Path,
        default=Path(tempfile.gettempdir()) / "sapat-bench-indicators",
        help="cache of generated exports, the store and scratch copies",
    )
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "indicators.json")
    args = ap.parse_args(argv)
    if args.waves < 3:
        ap.error("--waves must be at least 3 (trends need three waves)")

    args.work.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("SAPAT_KEY_FILE", str(args.work / "bench.key"))
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
    print(f"store: {args.responses:,} responses over {args.waves} waves (+1)", flush=True)
    prep = prepare(args.work, args.responses, args.waves, args.format, args.seed)
    res: dict = {
        "benchmark": "indicators",
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),  # noqa: UP017
        "instrument": INSTRUMENT,
        "format": args.format,
        "waves": args.waves,
        "first_wave": prep["waves"][0],
        "last_wave": prep["waves"][args.waves - 1],
        "added_wave": prep["waves"][-1],
        "responses_read": prep["responses_read"],
        "responses_loaded": prep["responses_loaded"],
        "long_rows": prep["long_rows"],
        "long_build_seconds": prep["long_build_seconds"],
        "machine": machine_info(),
        "versions": versions(),
    }
    res["repeat"] = args.repeat
    res["measured"] = measure(prep, args.work, args.repeat, args.groupby_runs, args.profile)
    res["targets"] = targets(res)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print()
    print(report(res))
    print(f"\nwritten to {args.out}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        _child(sys.argv[2:])
    else:
        raise SystemExit(main())
