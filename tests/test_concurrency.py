"""Readers never block the writer and never see half a publish: four reader processes read
the published snapshot in a loop while another process runs ten loads and recomputes (five
files, each loaded then recomputed; real `sapat` processes, each publishing a snapshot)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from pipeline.instruments import example_catalog
from pipeline.registry import example_registry
from pipeline.synth import synthesize

READER = r"""
import json, sys, time
from pathlib import Path
import duckdb
from pipeline.store.snapshots import checksum, open_current

snaps, stop, out = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
seen, errors, reads = {}, [], 0
while not stop.exists():
    try:
        con = open_current(snaps)
        if con is None:
            time.sleep(0.01)
            continue
        meta = con.execute("SELECT snapshot, table_name, rows, checksum FROM snapshot_meta").fetchall()
        for name, table, rows, total in meta:
            if checksum(con, table) != (rows, total):
                errors.append(f"{name}: {table} does not match its record")
        rows = con.execute("SELECT count(*) FROM ind_items").fetchone()[0]
        seen[meta[0][0]] = rows
        con.close()
        reads += 1
        time.sleep(0.02)
    except Exception as exc:  # every error counts: a lock, a missing file, a bad read
        errors.append(f"{type(exc).__name__}: {exc}")
out.write_text(json.dumps({"seen": seen, "errors": errors, "reads": reads}))
"""


@pytest.mark.slow
def test_four_readers_and_ten_loads_with_recomputes(tmp_path, batsu_workspace):
    env_ws = batsu_workspace
    truth = synthesize(
        tmp_path / "ex",
        example_registry(),
        example_catalog(),
        scale=0.08,
        seed=21,
        instruments=["graduate", "employer", "staff"],
    )
    files = [tmp_path / "ex" / f["file"] for f in truth["files"]][:6]
    assert len(files) == 6
    sapat = [sys.executable, "-c", "import sys; from pipeline.cli import app; sys.exit(app())"]
    # a first load, so there is a snapshot to read
    first = subprocess.run([*sapat, "ingest", str(files[0])], capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    snaps = env_ws / "data" / "processed" / "snapshots"
    script = tmp_path / "reader.py"
    script.write_text(READER, "utf-8")
    stop = tmp_path / "stop"
    readers = [
        subprocess.Popen(
            [sys.executable, str(script), str(snaps), str(stop), str(tmp_path / f"reader{k}.json")]
        )
        for k in range(4)
    ]
    try:
        t0 = time.perf_counter()
        for f in files[1:]:
            r = subprocess.run([*sapat, "ingest", str(f)], capture_output=True, text=True)
            assert r.returncode == 0, r.stderr
            r = subprocess.run(
                [*sapat, "indicators", "--format", "json"], capture_output=True, text=True
            )
            assert r.returncode == 0, r.stderr
        writer_seconds = time.perf_counter() - t0
    finally:
        stop.write_text("stop")
        for p in readers:
            p.wait(timeout=120)
    results = [json.loads((tmp_path / f"reader{k}.json").read_text()) for k in range(4)]
    errors = [e for r in results for e in r["errors"]]
    assert errors == [], errors[:5]
    con = duckdb.connect(str(env_ws / "data" / "processed" / "sapat.duckdb"), read_only=True)
    published = {
        o
        for (o,) in con.execute("SELECT object FROM sys_audit WHERE action = 'publish'").fetchall()
    }
    con.close()
    seen = {name for r in results for name in r["seen"]}
    assert seen <= published and len(published) >= len(files)
    assert all(r["reads"] > 0 for r in results)
    print(
        f"writer {writer_seconds:.1f} s; reads per reader {[r['reads'] for r in results]}; "
        f"{len(seen)} of {len(published)} snapshots seen; 0 errors"
    )
    assert Path(files[0]).exists()
