"""Read benchmark: how fast stored indicators come out of the door out (`pipeline.publish`).

Makes the demo workspace (`sapat demo`, cached under ``--work``), then measures, each in a
fresh process so imports are paid as a user pays them:

* ``sapat indicators --instrument student_experience --item se_overall`` (nothing to
  recompute: it reads the published snapshot), wall time;
* the same read from Python: import ``pipeline.publish``, open the current snapshot,
  ``read("ind_items", …)`` for the quality office, with the modules it imported (no
  statistics library may be among them).

Target (issue "one door out"): under 0.5 s on the demo store. Results as JSON in
``benchmarks/results/read.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PY_READ = r"""
import json, sys, time
t0 = time.perf_counter()
from pathlib import Path
from pipeline.publish import OFFICE, Tree, read
from pipeline.registry import read_registry
from pipeline.store.snapshots import open_current
ws = Path(sys.argv[1])
con = open_current(ws / "data" / "processed" / "snapshots")
tree = Tree.of(read_registry(ws / "declarations"))
frame = read(con, "ind_items", viewer=OFFICE, tree=tree, min_n=5,
             filters={"instrument": "student_experience", "item": "se_overall",
                      "org_level": "faculty"})
seconds = time.perf_counter() - t0
heavy = sorted(m for m in ("scipy", "statsmodels", "pandera", "polars") if m in sys.modules)
print(json.dumps({"seconds": seconds, "rows": len(frame), "statistics_modules": heavy}))
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "sapat-bench-read")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/read.json"))
    args = ap.parse_args()
    sapat = [sys.executable, "-c", "import sys; from pipeline.cli import app; sys.exit(app())"]
    ws = args.work / "demo"
    env = {**os.environ, "SAPAT_KEY_FILE": str(args.work / "bench.key")}
    if not (ws / "data" / "processed" / "sapat.duckdb").exists():
        args.work.mkdir(parents=True, exist_ok=True)
        print(f"making the demo workspace in {ws} ...", flush=True)
        subprocess.run([*sapat, "demo", str(ws)], check=True, env=env, capture_output=True)
    env["SAPAT_WORKSPACE"] = str(ws)
    cli, python = [], []
    args_read = [
        "indicators",
        "--instrument",
        "student_experience",
        "--item",
        "se_overall",
        "--format",
        "json",
    ]
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        r = subprocess.run([*sapat, *args_read], env=env, capture_output=True, text=True)
        cli.append(time.perf_counter() - t0)
        assert r.returncode == 0 and "Recomputed" not in r.stderr, r.stderr
        r = subprocess.run(
            [sys.executable, "-c", PY_READ, str(ws)],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        python.append(json.loads(r.stdout))
    result = {
        "cli_seconds": {"median": statistics.median(cli), "runs": cli},
        "python_seconds": {
            "median": statistics.median(p["seconds"] for p in python),
            "runs": [p["seconds"] for p in python],
        },
        "rows": python[0]["rows"],
        "statistics_modules_imported": python[0]["statistics_modules"],
        "target_seconds": 0.5,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2), "utf-8")
    ok_cli = result["cli_seconds"]["median"] < 0.5
    ok_py = result["python_seconds"]["median"] < 0.5
    print(
        f"sapat indicators (read, no recompute): median {result['cli_seconds']['median']:.3f} s "
        f"over {args.repeat} runs — {'meets' if ok_cli else 'MISSES'} < 0.5 s"
    )
    print(
        f"Python: import + open snapshot + read: median "
        f"{result['python_seconds']['median']:.3f} s — {'meets' if ok_py else 'MISSES'} "
        f"< 0.5 s; statistics libraries imported: "
        f"{', '.join(result['statistics_modules_imported']) or 'none'}"
    )
    print(f"written: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
