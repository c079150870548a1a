"""A load under the wrong academic year is refused, can be forced, and can be taken back; the
file then loads under the right wave, leaving the store as if it had been loaded right the
first time. Missing and empty columns are refused with what to do."""

from __future__ import annotations

import json
import shutil

import duckdb
import pandas as pd
import pytest
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.instruments import example_catalog
from pipeline.registry import example_registry
from pipeline.synth import synthesize

runner = CliRunner()


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    """A Google Forms export of the 2025-2026 graduate survey (dates from autumn 2025)."""
    out = tmp_path_factory.mktemp("unload")
    truth = synthesize(out, example_registry(), example_catalog(), waves=["2025-2026"],
                       scale=0.1, seed=5, instruments=["graduate"], dialect="google_forms")  # fmt: skip
    src = out / truth["files"][0]["file"]
    plain = out / "graduates.csv"  # a name and folder without a wave in it
    shutil.copyfile(src, plain)
    return plain


def _ingest(*args):
    r = runner.invoke(app, ["ingest", "--json", *map(str, args)])
    return r, json.loads(r.stdout.strip().splitlines()[-1]) if r.stdout.strip() else None


def _content(db) -> dict:
    """What a dean would read, and the answers, without the load numbers."""
    con = duckdb.connect(str(db), read_only=True)
    out = {}
    for t in ("ind_items", "ind_outcomes", "ind_response"):
        out[t] = con.execute(f"SELECT * FROM {t} ORDER BY ALL").fetchdf()
    out["answers"] = con.execute(
        "SELECT * EXCLUDE (load_id, response_id) FROM fct_graduate ORDER BY ALL").fetchdf()  # fmt: skip
    out["counts"] = con.execute(
        "SELECT * EXCLUDE (load_id) FROM fct_answer_counts ORDER BY ALL").fetchdf()  # fmt: skip
    con.close()
    return out


@pytest.mark.slow
def test_a_wrong_wave_is_refused_forced_taken_back_and_loaded_right(export, batsu_workspace):
    db = batsu_workspace / "data" / "processed" / "sapat.duckdb"
    r, res = _ingest("--wave", "1900-1901", export)
    assert r.exit_code == 1 and res["status"] == "rejected"
    msg = res["errors"][0]
    assert "1900-1901" in msg["message"] and "2025-2026" in msg["message"]
    assert "--accept-dates" in msg["expected"]
    assert not db.exists() or not duckdb.connect(str(db), read_only=True).execute(
        "SELECT count(*) FROM sys_loads").fetchone()[0]  # fmt: skip
    r, res = _ingest("--wave", "1900-1901", "--accept-dates", export)
    assert r.exit_code == 0 and res["status"] == "loaded"
    assert any("--accept-dates" in n for n in res["notes"])
    again = runner.invoke(app, ["ingest", "--wave", "2025-2026", str(export)])
    assert "duplicate" in again.output  # the same file, loaded: taken back first
    bad = runner.invoke(app, ["unload", "1"])
    assert bad.exit_code == 2 and "--why" in bad.output
    r = runner.invoke(app, ["unload", "1", "--why", "loaded under the wrong academic year"])
    assert r.exit_code == 0, r.output
    loads = json.loads(runner.invoke(app, ["loads", "--json"]).stdout)
    assert loads[0]["status"] == "withdrawn"
    con = duckdb.connect(str(db), read_only=True)
    assert con.execute("SELECT count(*) FROM fct_graduate").fetchone()[0] == 0
    assert con.execute("SELECT withdrawn_why FROM sys_loads").fetchone()[0].startswith("loaded")
    con.close()
    assert list((batsu_workspace / "data" / "raw").rglob("*.csv"))  # the original stays
    r, res = _ingest("--wave", "2025-2026", export)
    assert r.exit_code == 0 and res["status"] == "loaded", res
    assert runner.invoke(app, ["indicators"]).exit_code == 0
    after = _content(db)
    # the same file loaded right the first time, in a workspace of its own
    right = batsu_workspace.parent / "right"
    from pipeline.workspace import init_workspace

    init_workspace(right, "batsu")
    env = {"SAPAT_WORKSPACE": str(right)}
    assert (
        runner.invoke(app, ["ingest", "--wave", "2025-2026", str(export)], env=env).exit_code == 0
    )
    assert runner.invoke(app, ["indicators"], env=env).exit_code == 0
    first = _content(right / "data" / "processed" / "sapat.duckdb")
    for name in first:
        pd.testing.assert_frame_equal(after[name], first[name], check_dtype=False, obj=name)
    assert runner.invoke(app, ["audit", "verify"]).exit_code == 0
    log = json.loads(runner.invoke(app, ["audit", "list", "--json"]).stdout)
    assert any(e["action"] == "unload" and "wrong academic year" in e["outcome"] for e in log)
    rebuilt = runner.invoke(app, ["rebuild"])
    assert rebuilt.exit_code == 0, rebuilt.output  # withdrawals honoured


def test_missing_and_empty_columns_are_refused_with_what_to_do(export, batsu_workspace,
                                                               tmp_path):  # fmt: skip
    frame = pd.read_csv(export, dtype=str, keep_default_na=False)
    prog = next(c for c in frame.columns if "программ" in c.lower() or "programme" in c.lower())
    item = next(c for c in frame.columns[5:] if c != prog)
    no_prog = tmp_path / "2025-2026" / "no_programme.csv"
    no_prog.parent.mkdir()
    frame.drop(columns=[prog]).to_csv(no_prog, index=False)
    r, res = _ingest(no_prog)
    assert r.exit_code == 1 and res["status"] == "rejected", res
    assert "--set programme=" in res["errors"][0]["expected"]
    no_item = tmp_path / "2025-2026" / "no_item.csv"
    frame.drop(columns=[item]).to_csv(no_item, index=False)
    r, res = _ingest(no_item)
    assert r.exit_code == 1 and "sapat_optional" in res["errors"][0]["expected"]
    empty = tmp_path / "2025-2026" / "empty_programme.csv"
    frame.assign(**{prog: ""}).to_csv(empty, index=False)
    r, res = _ingest(empty)
    assert r.exit_code == 1 and res["status"] == "rejected"
    # all three refused, nothing loaded; a batch goes on past a refused file
    r = runner.invoke(app, ["ingest", str(no_prog), str(export), str(no_item)])
    assert r.exit_code == 1 and "1 of 3 files loaded" in r.output
