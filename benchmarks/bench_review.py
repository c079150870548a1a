"""Review-pack benchmark: `sapat review` on a national-scale store.

Run from the repository root::

    .venv/bin/python benchmarks/bench_review.py [--responses 1000000] [--out benchmarks/results/review.json]

Makes (once, cached under ``--work``) a BatSU workspace whose store holds ``--responses``
student-experience responses over two academic years plus the graduate, employer and staff
surveys at their usual size, computes the indicators (``sapat indicators``, which
publishes a snapshot), then times ``sapat review --year <latest> --out pack.<ext>`` for
DOCX, XLSX and HTML, each in a fresh process (wall time, imports and chart drawing
included). Target (issue "The management-review pack"): under a minute on a 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAPAT = str(Path(sys.executable).with_name("sapat"))
#: respondents per unit of ``scale`` for one wave of student_experience (measured)
ROWS_PER_SCALE = 5457.4
WAVES = ["2024-2025", "2025-2026"]
TARGET_SECONDS = 60.0


def _env(work: Path, ws: Path) -> dict:
    return {**os.environ, "SAPAT_WORKSPACE": str(ws), "SAPAT_KEY_FILE": str(work / "bench.key")}


def build(work: Path, responses: int) -> tuple[Path, dict]:
    """The cached workspace (made when missing) and what it holds."""
    ws = work / f"ws-{responses}"
    marker = ws / "built.json"
    if marker.exists():
        return ws, json.loads(marker.read_text())
    from pipeline.workspace import Workspace, init_workspace

    work.mkdir(parents=True, exist_ok=True)
    if ws.exists():
        import shutil

        shutil.rmtree(ws)
    init_workspace(ws, "batsu")
    w = Workspace.at(ws)
    from pipeline.synth import synthesize

    t0 = time.perf_counter()
    scale = responses / len(WAVES) / ROWS_PER_SCALE
    big = synthesize(
        ws / "exports" / "students",
        w.registry,
        w.catalog,
        waves=WAVES,
        seed=2026,
        scale=scale,
        instruments=["student_experience"],
        dialect="plain_cp1251",
    )
    small = synthesize(
        ws / "exports" / "others",
        w.registry,
        w.catalog,
        waves=WAVES,
        seed=2026,
        scale=1.0,
        instruments=["graduate", "employer", "staff"],
    )
    generated = time.perf_counter() - t0
    files = [ws / "exports" / "students" / f["file"] for f in big["files"]]
    files += [ws / "exports" / "others" / f["file"] for f in small["files"]]
    env = _env(work, ws)
    t0 = time.perf_counter()
    subprocess.run([SAPAT, "ingest", *map(str, files)], env=env, check=True, capture_output=True)
    ingested = time.perf_counter() - t0
    t0 = time.perf_counter()
    subprocess.run([SAPAT, "indicators", "--all"], env=env, check=True, capture_output=True)
    computed = time.perf_counter() - t0
    import duckdb

    con = duckdb.connect(str(w.settings.db_path), read_only=True)
    rows = dict(
        con.execute(
            "SELECT instrument, sum(rows_loaded) FROM sys_loads WHERE status = 'loaded' GROUP BY 1"
        ).fetchall()
    )
    con.close()
    info = {
        "rows_loaded": {k: int(v) for k, v in rows.items()},
        "responses": int(sum(rows.values())),
        "seconds": {"generate": generated, "ingest": ingested, "indicators": computed},
    }
    marker.write_text(json.dumps(info, indent=2))
    return ws, info


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--responses", type=int, default=1_000_000)
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "sapat-bench-review")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "review.json")
    args = ap.parse_args()
    ws, info = build(args.work, args.responses)
    env = _env(args.work, ws)
    runs = {}
    for ext in ("docx", "xlsx", "html"):
        out = args.work / f"pack.{ext}"
        t0 = time.perf_counter()
        done = subprocess.run(
            [SAPAT, "review", "--year", WAVES[-1], "--lang", "ru", "--out", str(out)],
            env=env,
            capture_output=True,
            text=True,
        )
        seconds = time.perf_counter() - t0
        runs[ext] = {
            "seconds": seconds,
            "exit_code": done.returncode,
            "bytes": out.stat().st_size if out.exists() else 0,
            "said": done.stdout.strip()[-300:],
        }
        print(f"sapat review → .{ext}: {seconds:.1f} s (exit {done.returncode})")
    worst = max(r["seconds"] for r in runs.values())
    result = {
        "when": datetime.now(UTC).isoformat(),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "store": info,
        "review": runs,
        "target": {
            "what": "sapat review (any format) on the national-scale store",
            "max_seconds": TARGET_SECONDS,
            "worst_seconds": worst,
            "ok": worst < TARGET_SECONDS and all(r["exit_code"] == 0 for r in runs.values()),
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(
        f"{info['responses']:,} responses loaded; worst {worst:.1f} s against the "
        f"{TARGET_SECONDS:.0f} s target: {'meets' if result['target']['ok'] else 'MISSES'}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
