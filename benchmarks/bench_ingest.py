"""Ingest benchmark: Sapat's CSV ingest against a bare DuckDB ``read_csv``, and calamine
against openpyxl on the same XLSX workbook.

Run from the repository root::

    .venv/bin/python benchmarks/bench_ingest.py [--rows 1000000] [--big 5000000]
        [--xlsx-rows 100000] [--out benchmarks/results/ingest.json]

Every measured step runs in its own Python process, so each peak memory figure (the
process's maximum resident set, from ``wait4``) belongs to that step alone. Synthetic
exports are made once with :mod:`pipeline.synth` and cached under ``--work``.
See benchmarks/README.md for how to read the output.
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
WAVE = "2025-2026"
#: Respondents per unit of ``--scale`` for one wave of student_experience (measured).
ROWS_PER_SCALE = 5457.4
#: DuckDB cannot decode Windows-1251 without an extension; latin-1 maps every byte to one
#: character, so the bare load parses the same bytes with the same amount of transcoding.
DUCKDB_ENCODING = {"cp1251": "latin-1", "utf-8": "utf-8", "utf-8-sig": "utf-8"}
CSV_FORMATS = ("plain_cp1251", "limesurvey")
XLSX_FORMATS = ("kobo", "ms_forms")
LIBRARIES = (
    "numpy",
    "pandas",
    "pyarrow",
    "duckdb",
    "pandera",
    "polars",
    "python-calamine",
    "openpyxl",
)
# Targets (design/PERFORMANCE.md, "Goals")
TIME_RATIO_MAX = 2.0
MEMORY_RATIO_MAX = 2.0
BIG_MEMORY_RATIO_MAX = 1.5
XLSX_SPEEDUP_MIN = 5.0


# ------------------------------------------------------------------ child steps
def _peak_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _fresh(path: Path) -> None:
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)


def step_bare_csv(file: str, encoding: str, workdir: str) -> dict:
    """``CREATE TABLE t AS SELECT * FROM read_csv(file)`` into a new database file."""
    import duckdb

    work = Path(workdir)
    _fresh(work)
    base = _peak_mb()
    t0 = time.perf_counter()
    con = duckdb.connect(str(work / "bare.duckdb"))
    con.execute(
        "CREATE TABLE t AS SELECT * FROM read_csv(?, encoding = ?)",
        [file, DUCKDB_ENCODING.get(encoding, encoding)],
    )
    rows = con.execute("SELECT count(*) FROM t").fetchone()[0]
    con.close()
    seconds = time.perf_counter() - t0
    size = (work / "bare.duckdb").stat().st_size
    shutil.rmtree(work)
    return {"seconds": seconds, "rows": rows, "rss_after_import_mb": base, "db_bytes": size}


def step_sapat_csv(file: str, encoding: str, workdir: str) -> dict:
    """The full ingest (read, map, type, validate, store) into a new database file."""
    from pipeline.ingest import ingest_file
    from pipeline.ingest.pseudonym import load_key
    from pipeline.instruments import example_catalog
    from pipeline.registry import example_registry
    from pipeline.store import Store

    work = Path(workdir)
    _fresh(work)
    catalog, registry, key = example_catalog(), example_registry(), load_key()
    base = _peak_mb()
    t0 = time.perf_counter()
    with Store(work / "processed" / "sapat.duckdb", raw_dir=work / "raw") as store:
        result = ingest_file(
            file, store, catalog, registry, key=key, instrument=INSTRUMENT, wave=WAVE
        )
    seconds = time.perf_counter() - t0
    size = (work / "processed" / "sapat.duckdb").stat().st_size
    shutil.rmtree(work)
    if result.status != "loaded":
        raise SystemExit(f"ingest failed: {result.errors[:3]}")
    return {
        "seconds": seconds,
        "rows": result.rows_read,
        "rows_loaded": result.rows_loaded,
        "rows_quarantined": result.rows_quarantined,
        "rows_flagged": result.rows_flagged,
        "rss_after_import_mb": base,
        "db_bytes": size,
    }


def step_xlsx_calamine(file: str, encoding: str, workdir: str) -> dict:
    """Every cell of the first sheet with python-calamine, no Sapat code."""
    import python_calamine

    base = _peak_mb()
    t0 = time.perf_counter()
    sheet = python_calamine.CalamineWorkbook.from_path(file).get_sheet_by_index(0)
    rows = sheet.to_python()
    return {"seconds": time.perf_counter() - t0, "rows": len(rows) - 1, "rss_after_import_mb": base}


def step_xlsx_openpyxl(file: str, encoding: str, workdir: str) -> dict:
    """Every cell of the first sheet with openpyxl (read-only, values only)."""
    import openpyxl

    base = _peak_mb()
    t0 = time.perf_counter()
    book = openpyxl.load_workbook(file, read_only=True, data_only=True)
    rows = list(book.worksheets[0].iter_rows(values_only=True))
    book.close()
    return {"seconds": time.perf_counter() - t0, "rows": len(rows) - 1, "rss_after_import_mb": base}


def step_xlsx_sapat(file: str, encoding: str, workdir: str) -> dict:
    """Sapat's XLSX reader (calamine): layout, then every chunk of strings."""
    from pipeline.readers import open_export

    base = _peak_mb()
    t0 = time.perf_counter()
    rows = sum(len(chunk) for chunk in open_export(file).iter_chunks())
    return {"seconds": time.perf_counter() - t0, "rows": rows, "rss_after_import_mb": base}


STEPS = {
    "bare_csv": step_bare_csv,
    "sapat_csv": step_sapat_csv,
    "xlsx_calamine": step_xlsx_calamine,
    "xlsx_openpyxl": step_xlsx_openpyxl,
    "xlsx_sapat": step_xlsx_sapat,
}


def _child(argv: list[str]) -> None:
    name, file, encoding, workdir = argv
    sys.path.insert(0, str(ROOT))
    out = STEPS[name](file, encoding, workdir)
    out["peak_rss_mb_self"] = _peak_mb()
    print("RESULT " + json.dumps(out))


# ------------------------------------------------------------------ parent side
def run_step(name: str, file: Path, encoding: str, work: Path) -> dict:
    """Run one step in a new process; its own peak RSS comes from ``wait4``."""
    cmd = [
        sys.executable,
        __file__,
        "--child",
        name,
        str(file),
        encoding,
        str(work / f"step-{name}"),
    ]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, cwd=ROOT, env=os.environ.copy())
    stdout = proc.stdout.read().decode()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"step {name} on {file} failed (exit {proc.returncode})")
    line = next(x for x in stdout.splitlines() if x.startswith("RESULT "))
    out = json.loads(line[len("RESULT ") :])
    out["peak_rss_mb"] = usage.ru_maxrss / 1024
    out["launcher_rss_mb"] = _peak_mb()  # a child's peak is never below this (fork + exec)
    out["process_seconds"] = wall
    out["cpu_seconds"] = usage.ru_utime + usage.ru_stime
    return out


def _generate(folder: str, rows: str, fmt: str, seed: str) -> None:
    """Child: write the synthetic export (kept out of the parent, whose memory children
    would inherit as their starting peak)."""
    sys.path.insert(0, str(ROOT))
    from pipeline.instruments import example_catalog
    from pipeline.registry import example_registry
    from pipeline.synth import synthesize

    synthesize(
        folder,
        example_registry(),
        example_catalog(),
        waves=[WAVE],
        seed=int(seed),
        scale=int(rows) / ROWS_PER_SCALE,
        instruments=[INSTRUMENT],
        dialect=fmt,
    )


def synth_file(work: Path, rows: int, fmt: str, seed: int) -> tuple[Path, str, int]:
    """(file, encoding, rows) of a cached single-file export of about ``rows`` responses."""
    folder = work / "data" / f"{INSTRUMENT}_{fmt}_{rows}_seed{seed}"
    truth_path = folder / "truth.json"
    if not truth_path.exists():
        if folder.exists():
            shutil.rmtree(folder)
        t0 = time.perf_counter()
        print(f"  generating ~{rows:,} {fmt} responses in {folder} ...", flush=True)
        subprocess.run(
            [sys.executable, __file__, "--generate", str(folder), str(rows), fmt, str(seed)],
            check=True,
            cwd=ROOT,
        )
        print(f"  generated in {time.perf_counter() - t0:.1f} s", flush=True)
    truth = json.loads(truth_path.read_text(encoding="utf-8"))
    files = [f for f in truth["files"] if f["instrument"] == INSTRUMENT]
    if len(files) != 1:
        raise SystemExit(f"format {fmt} writes {len(files)} files; use one that writes one")
    meta = files[0]
    return folder / meta["file"], meta.get("encoding") or "utf-8", int(meta["rows"])


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


def _median(runs: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def _summary(runs: list[dict]) -> dict:
    return {
        "seconds": _median(runs, "seconds"),
        "peak_rss_mb": _median(runs, "peak_rss_mb"),
        "rows": runs[0]["rows"],
        "runs": runs,
    }


def measure_pair(file: Path, encoding: str, work: Path, repeat: int, label: str) -> dict:
    """Bare read_csv and Sapat ingest, alternated ``repeat`` times (medians)."""
    bare, sapat = [], []
    for i in range(repeat):
        print(f"  [{label} {i + 1}/{repeat}] bare DuckDB read_csv ...", flush=True)
        bare.append(run_step("bare_csv", file, encoding, work))
        print(f"    {bare[-1]['seconds']:.2f} s, {bare[-1]['peak_rss_mb']:.0f} MB", flush=True)
        print(f"  [{label} {i + 1}/{repeat}] Sapat ingest ...", flush=True)
        sapat.append(run_step("sapat_csv", file, encoding, work))
        print(f"    {sapat[-1]['seconds']:.2f} s, {sapat[-1]['peak_rss_mb']:.0f} MB", flush=True)
    b, s = _summary(bare), _summary(sapat)
    return {
        "file": str(file),
        "file_bytes": file.stat().st_size,
        "encoding": encoding,
        "rows": s["rows"],
        "bare_read_csv": b,
        "sapat_ingest": s,
        "rows_per_second": s["rows"] / s["seconds"],
        "bare_rows_per_second": b["rows"] / b["seconds"],
        "time_ratio": s["seconds"] / b["seconds"],
        "memory_ratio": s["peak_rss_mb"] / b["peak_rss_mb"],
    }


def measure_xlsx(file: Path, work: Path, repeat: int) -> dict:
    out = {"file": str(file), "file_bytes": file.stat().st_size}
    for name in ("xlsx_calamine", "xlsx_sapat", "xlsx_openpyxl"):
        runs = []
        for i in range(repeat):
            print(f"  [xlsx {i + 1}/{repeat}] {name} ...", flush=True)
            runs.append(run_step(name, file, "", work))
            print(f"    {runs[-1]['seconds']:.2f} s, {runs[-1]['peak_rss_mb']:.0f} MB", flush=True)
        out[name.removeprefix("xlsx_")] = _summary(runs)
    out["rows"] = out["sapat"]["rows"]
    out["speedup_calamine_vs_openpyxl"] = out["openpyxl"]["seconds"] / out["calamine"]["seconds"]
    out["speedup_sapat_reader_vs_openpyxl"] = out["openpyxl"]["seconds"] / out["sapat"]["seconds"]
    return out


# ------------------------------------------------------------------ reporting
def _verdict(ok: bool) -> str:
    return "meets" if ok else "MISSES"


def report(res: dict) -> str:
    lines = []
    add = lines.append
    m = res["machine"]
    add(
        f"Sapat ingest benchmark — {res['started']}  ({m['cpu']}, {m['cores']} cores, "
        f"{m['memory_gb']} GB; medians of {res['repeat']} run(s))"
    )
    add("")
    head = f"{'step':<44}{'rows':>11}{'time s':>9}{'rows/s':>12}{'peak MB':>10}"
    for key, label in (("main", "main"), ("big", "big")):
        r = res.get(key)
        if not r:
            continue
        add(f"{label}: {Path(r['file']).name}, {r['file_bytes'] / 1e6:.0f} MB, {r['encoding']}")
        add(head)
        for name, part in (
            ("bare DuckDB read_csv → database file", r["bare_read_csv"]),
            ("Sapat ingest (map, type, validate, store)", r["sapat_ingest"]),
        ):
            add(
                f"  {name:<42}{part['rows']:>11,}{part['seconds']:>9.2f}"
                f"{part['rows'] / part['seconds']:>12,.0f}{part['peak_rss_mb']:>10.0f}"
            )
        add(
            f"  ratio Sapat / bare: time {r['time_ratio']:.2f}×, peak memory "
            f"{r['memory_ratio']:.2f}×"
        )
        add("")
    x = res.get("xlsx")
    if x:
        add(f"xlsx: {Path(x['file']).name}, {x['file_bytes'] / 1e6:.0f} MB, {x['rows']:,} rows")
        add(f"{'reader':<44}{'time s':>9}{'peak MB':>10}")
        for name, label in (
            ("calamine", "python-calamine, all cells"),
            ("sapat", "Sapat reader (calamine → string chunks)"),
            ("openpyxl", "openpyxl read-only, all cells"),
        ):
            add(f"  {label:<42}{x[name]['seconds']:>9.2f}{x[name]['peak_rss_mb']:>10.0f}")
        add(
            f"  openpyxl / calamine: {x['speedup_calamine_vs_openpyxl']:.1f}×, openpyxl / Sapat "
            f"reader: {x['speedup_sapat_reader_vs_openpyxl']:.1f}×"
        )
        add("")
    add("targets (design/PERFORMANCE.md):")
    for t in res["targets"]:
        add(f"  {_verdict(t['ok']):<7} {t['what']}: {t['value']:.2f} (limit {t['limit']})")
    return "\n".join(lines)


def targets(res: dict) -> list[dict]:
    out = []
    if main := res.get("main"):
        out.append(
            {
                "what": "1M ingest time / bare read_csv",
                "value": main["time_ratio"],
                "limit": f"≤ {TIME_RATIO_MAX}",
                "ok": main["time_ratio"] <= TIME_RATIO_MAX,
            }
        )
        out.append(
            {
                "what": "1M ingest peak memory / bare read_csv",
                "value": main["memory_ratio"],
                "limit": f"≤ {MEMORY_RATIO_MAX}",
                "ok": main["memory_ratio"] <= MEMORY_RATIO_MAX,
            }
        )
    if main and (big := res.get("big")):
        ratio = big["sapat_ingest"]["peak_rss_mb"] / main["sapat_ingest"]["peak_rss_mb"]
        res["big_to_main_memory_ratio"] = ratio
        out.append(
            {
                "what": "5M ingest peak memory / 1M ingest peak memory",
                "value": ratio,
                "limit": f"≤ {BIG_MEMORY_RATIO_MAX}",
                "ok": ratio <= BIG_MEMORY_RATIO_MAX,
            }
        )
    if x := res.get("xlsx"):
        out.append(
            {
                "what": "XLSX: openpyxl time / Sapat reader (calamine) time",
                "value": x["speedup_sapat_reader_vs_openpyxl"],
                "limit": f"≥ {XLSX_SPEEDUP_MIN}",
                "ok": x["speedup_sapat_reader_vs_openpyxl"] >= XLSX_SPEEDUP_MIN,
            }
        )
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000, help="responses in the main CSV")
    ap.add_argument(
        "--big",
        type=int,
        default=5_000_000,
        help="responses in the large CSV (memory bound); 0 skips it",
    )
    ap.add_argument(
        "--xlsx-rows", type=int, default=100_000, help="responses in the XLSX workbook; 0 skips it"
    )
    ap.add_argument(
        "--format", default="plain_cp1251", choices=CSV_FORMATS, help="synthetic CSV export format"
    )
    ap.add_argument("--xlsx-format", default="kobo", choices=XLSX_FORMATS)
    ap.add_argument("--repeat", type=int, default=1, help="runs per step (medians reported)")
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument(
        "--work",
        type=Path,
        default=Path(tempfile.gettempdir()) / "sapat-bench",
        help="cache of generated data and scratch databases",
    )
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "ingest.json")
    args = ap.parse_args(argv)

    os.environ.setdefault("SAPAT_KEY_FILE", str(args.work / "bench.key"))
    args.work.mkdir(parents=True, exist_ok=True)
    res: dict = {
        "benchmark": "ingest",
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),  # noqa: UP017
        "instrument": INSTRUMENT,
        "format": args.format,
        "repeat": args.repeat,
        "machine": machine_info(),
        "versions": versions(),
    }
    scratch = args.work / "scratch"
    print(f"main CSV ({args.rows:,} responses, {args.format})", flush=True)
    file, enc, _ = synth_file(args.work, args.rows, args.format, args.seed)
    res["main"] = measure_pair(file, enc, scratch, args.repeat, "main")
    if args.big:
        print(f"big CSV ({args.big:,} responses, {args.format})", flush=True)
        file, enc, _ = synth_file(args.work, args.big, args.format, args.seed)
        res["big"] = measure_pair(file, enc, scratch, args.repeat, "big")
    if args.xlsx_rows:
        print(f"XLSX ({args.xlsx_rows:,} responses, {args.xlsx_format})", flush=True)
        file, _, _ = synth_file(args.work, args.xlsx_rows, args.xlsx_format, args.seed)
        res["xlsx"] = measure_xlsx(file, scratch, args.repeat)
    res["targets"] = targets(res)
    if scratch.exists():
        shutil.rmtree(scratch)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print()
    print(report(res))
    print(f"\nwritten: {args.out}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        _child(sys.argv[2:])
    elif len(sys.argv) > 1 and sys.argv[1] == "--generate":
        _generate(*sys.argv[2:])
    else:
        sys.exit(main())
