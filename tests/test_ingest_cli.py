"""`sapat ingest`, `sapat quarantine`, `sapat loads`: JSON a script can rely on, exit
codes (0 every file loaded or already loaded, 1 any rejected, 2 usage error),
`--strict`, and errors in plain words, never a Python traceback."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
from ingest_helpers import consistency_problems, sapat_command, sha256_of, tables
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.instruments import example_catalog
from pipeline.registry import example_registry
from pipeline.synth import synthesize

REQUIRED = {
    "file",
    "sha256",
    "status",
    "instrument",
    "wave",
    "rows_read",
    "rows_loaded",
    "rows_quarantined",
    "errors",
}

runner = CliRunner()


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    """Five small exports: graduate (MS Forms; Google Forms ky/ru) and employer
    (Windows-1251 CSV; MS Forms) in two waves; the larger ones carry planted faults."""
    out = tmp_path_factory.mktemp("cli_exports")
    truth = synthesize(
        out,
        example_registry(),
        example_catalog(),
        waves=["2023-2024", "2024-2025"],
        scale=0.1,
        seed=17,
        instruments=["graduate", "employer"],
    )
    files = {f["file"]: {**f, "path": out / f["file"]} for f in truth["files"]}
    faulty = {f["file"] for f in truth["faults"] if f["row"] is not None}
    assert len(files) == 5 and faulty
    return {"out": out, "files": files, "faulty": faulty}


@pytest.fixture
def env(tmp_path, batsu_workspace):
    return {"db": tmp_path / "processed" / "sapat.duckdb", "workspace": batsu_workspace}


def _bad_files(folder: Path) -> dict[str, Path]:
    """An empty CSV, random bytes named .csv and .xlsx, and a path that does not exist."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(5)
    bad = {
        "empty": folder / "empty.csv",
        "garbage_csv": folder / "garbage.csv",
        "garbage_xlsx": folder / "garbage.xlsx",
        "missing": folder / "not-there.csv",
    }
    bad["empty"].write_bytes(b"")
    bad["garbage_csv"].write_bytes(bytes(rng.randrange(256) for _ in range(4096)))
    bad["garbage_xlsx"].write_bytes(bytes(rng.randrange(256) for _ in range(4096)))
    return bad


def _invoke(*args: str):
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"uncaught {result.exception!r}\n{result.output}"
    )
    assert "Traceback" not in result.output
    return result


def _json_lines(result) -> list[dict]:
    lines = result.stdout.strip().splitlines()
    return [json.loads(line) for line in lines]


def _ingest_json(db: Path, files, *options: str):
    result = _invoke("ingest", "--db", db, "--json", *options, *files)
    return result, _json_lines(result)


# ------------------------------------------------------------------------ --json
def test_ingest_json_prints_one_object_per_file(env, exports):
    files = [f["path"] for f in exports["files"].values()]
    result, objs = _ingest_json(env["db"], files)
    assert result.exit_code == 0, result.output
    assert len(objs) == len(files)
    for obj, meta in zip(objs, exports["files"].values(), strict=True):
        assert set(obj) >= REQUIRED, REQUIRED - set(obj)
        assert obj["file"] == str(meta["path"])
        assert obj["sha256"] == sha256_of(meta["path"])
        assert obj["status"] == "loaded", obj["errors"]
        assert (obj["instrument"], obj["wave"]) == (meta["instrument"], meta["wave"])
        assert obj["rows_read"] == meta["rows"]
        assert obj["rows_read"] == obj["rows_loaded"] + obj["rows_quarantined"]
        assert isinstance(obj["errors"], list)
        assert len({e["row"] for e in obj["errors"]}) == obj["rows_quarantined"]
        for e in obj["errors"]:
            assert {"row", "column", "check", "reason"} <= set(e)
    assert any(o["rows_quarantined"] for o in objs)
    # again: every file is a duplicate, nothing changes, still exit 0
    again, objs2 = _ingest_json(env["db"], files)
    assert again.exit_code == 0, again.output
    assert [o["status"] for o in objs2] == ["duplicate"] * len(files)
    assert [o["sha256"] for o in objs2] == [o["sha256"] for o in objs]
    for o in objs2:
        assert set(o) >= REQUIRED
        assert o["rows_read"] == o["rows_loaded"] + o["rows_quarantined"]


def test_ingest_exits_1_when_any_file_is_rejected(tmp_path, env, exports):
    good = next(f["path"] for f in exports["files"].values() if f["dialect"] == "ms_forms")
    bad = _bad_files(tmp_path / "bad")
    result, objs = _ingest_json(env["db"], [good, *bad.values()])
    assert result.exit_code == 1, result.output
    by_file = {o["file"]: o for o in objs}
    assert by_file[str(good)]["status"] == "loaded"
    for name, path in bad.items():
        o = by_file[str(path)]
        assert o["status"] == "rejected", name
        assert o["rows_read"] == o["rows_loaded"] == o["rows_quarantined"] == 0
        assert o["errors"] and o["errors"][0]["message"], name
        assert set(o) >= REQUIRED
    con = duckdb.connect(str(env["db"]), read_only=True)
    try:
        loaded = con.execute("SELECT sha256 FROM sys_loads").fetchall()
    finally:
        con.close()
    assert loaded == [(sha256_of(good),)]
    # a duplicate and a rejected file: still 1; the duplicate alone: 0
    mixed, objs = _ingest_json(env["db"], [good, bad["empty"]])
    assert mixed.exit_code == 1
    assert [o["status"] for o in objs] == ["duplicate", "rejected"]
    assert _ingest_json(env["db"], [good])[0].exit_code == 0
    # the table output says the same in words
    words = _invoke("ingest", "--db", env["db"], bad["garbage_xlsx"], bad["empty"])
    assert words.exit_code == 1
    assert "rejected" in words.output and "0 of 2 files" in words.output


@pytest.mark.parametrize(
    "args, expected",
    [
        (["--wave", "2024-2026"], "YYYY-YYYY"),
        (["--wave", "2024"], "YYYY-YYYY"),
        (["--instrument", "parents"], "student_experience"),
        (["--format", "sas"], "google_forms"),
    ],
    ids=["wave-not-consecutive", "wave-one-year", "unknown-instrument", "unknown-format"],
)
def test_ingest_usage_errors_exit_2(env, exports, args, expected):
    good = next(iter(exports["files"].values()))["path"]
    result = _invoke("ingest", "--db", env["db"], "--json", *args, good)
    assert result.exit_code == 2, result.output
    assert expected in result.output
    assert "Error" in result.output
    assert not env["db"].exists()  # nothing was opened or created


# ----------------------------------------------------------------------- --strict
def test_strict_rejects_a_file_with_failing_rows_and_leaves_no_trace(env, exports):
    faulty = next(f for k, f in exports["files"].items() if k in exports["faulty"])
    clean = [
        f for k, f in exports["files"].items() if k not in exports["faulty"]
    ]  # tiny files: no planted faults
    assert clean
    result, objs = _ingest_json(env["db"], [faulty["path"], clean[0]["path"]], "--strict")
    assert result.exit_code == 1, result.output
    rejected, ok = objs
    assert rejected["status"] == "rejected"
    assert rejected["rows_loaded"] == rejected["rows_quarantined"] == 0
    first = rejected["errors"][0]
    assert "--strict" in first["message"] and first["row"] is not None
    assert ok["status"] == "loaded" and ok["rows_quarantined"] == 0
    sha = sha256_of(faulty["path"])
    con = duckdb.connect(str(env["db"]), read_only=True)
    try:
        assert con.execute("SELECT count(*) FROM sys_loads WHERE sha256 = ?", [sha]).fetchone() == (
            0,
        )
        loads = [r[0] for r in con.execute("SELECT load_id FROM sys_loads").fetchall()]
        per_load = {
            r[0]
            for r in con.execute(
                "SELECT table_name FROM information_schema.columns WHERE column_name = 'load_id'"
            ).fetchall()
        }
        for t in tables(con):
            if t.startswith(("fct_", "qa_")) and t in per_load:  # the office's records aside
                stray = con.execute(
                    f"SELECT count(*) FROM {t} WHERE load_id NOT IN (SELECT unnest(?))", [loads]
                ).fetchone()[0]
                assert stray == 0, f"{t} keeps {stray} rows of the rejected file"
        assert con.execute("SELECT count(*) FROM qa_quarantine").fetchone() == (0,)
        assert consistency_problems(con) == []
    finally:
        con.close()
    # without --strict the same file loads, its failing rows set aside
    result, (obj,) = _ingest_json(env["db"], [faulty["path"]])
    assert result.exit_code == 0 and obj["status"] == "loaded"
    assert obj["rows_quarantined"] > 0


# -------------------------------------------------------- quarantine and loads
def test_quarantine_and_loads_json_list_what_was_loaded(env, exports):
    files = [f["path"] for f in exports["files"].values()]
    _, objs = _ingest_json(env["db"], files)
    by_sha = {o["sha256"]: o for o in objs}
    loads = json.loads(_invoke("loads", "--db", env["db"], "--json").stdout)
    assert len(loads) == len(files)
    assert len({r["load_id"] for r in loads}) == len(files)
    for r in loads:
        o = by_sha[r["sha256"]]
        assert r["file_name"] == Path(o["file"]).name
        assert r["status"] == "loaded"
        for k in (
            "instrument",
            "wave",
            "rows_read",
            "rows_loaded",
            "rows_quarantined",
            "rows_flagged",
        ):
            assert r[k] == o[k], k
    quarantined = json.loads(_invoke("quarantine", "--db", env["db"], "--json").stdout)
    assert quarantined
    assert {(q["sha256"], q["row"], q["column"], q["check"]) for q in quarantined} == {
        (o["sha256"], e["row"], e["column"], e["check"]) for o in objs for e in o["errors"]
    }
    for sha, o in by_sha.items():
        rows = {q["row"] for q in quarantined if q["sha256"] == sha}
        assert len(rows) == o["rows_quarantined"]
    assert all(q["reason"] and q["file"] for q in quarantined)
    assert "@" not in json.dumps(quarantined)  # no e-mail in what the office sees
    one = next(sha for sha, o in by_sha.items() if o["rows_quarantined"])
    only = json.loads(_invoke("quarantine", "--db", env["db"], "--json", "--file", one[:12]).stdout)
    assert only and {q["sha256"] for q in only} == {one}
    wave = by_sha[one]["wave"]
    of_wave = json.loads(_invoke("quarantine", "--db", env["db"], "--json", "--wave", wave).stdout)
    assert {q["wave"] for q in of_wave} == {wave}
    assert len(of_wave) == sum(q["wave"] == wave for q in quarantined)
    two = json.loads(_invoke("quarantine", "--db", env["db"], "--json", "--limit", "2").stdout)
    assert len(two) == 2


def test_quarantine_and_loads_without_a_database_are_usage_errors(tmp_path, env):
    for cmd in ("quarantine", "loads"):
        result = _invoke(cmd, "--db", tmp_path / "nowhere.duckdb", "--json")
        assert result.exit_code == 2, result.output
        assert "sapat ingest" in result.output


# -------------------------------------------------------------- real processes
def _run(*args, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*sapat_command(), *map(str, args)], capture_output=True, text=True, timeout=timeout
    )


@pytest.mark.slow  # starts real `sapat` processes (imports paid each time)
def test_exit_codes_and_messages_of_a_real_process(tmp_path, env, exports):
    good = next(iter(exports["files"].values()))["path"]
    bad = _bad_files(tmp_path / "bad")
    db = env["db"]
    ok = _run("ingest", "--db", db, "--json", good)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["status"] == "loaded"
    rejected = _run("ingest", "--db", db, bad["garbage_csv"], bad["empty"])
    usage = _run("ingest", "--db", db, "--wave", "2024-2026", good)
    no_db = _run("loads", "--db", tmp_path / "nowhere.duckdb")
    assert (rejected.returncode, usage.returncode, no_db.returncode) == (1, 2, 2)
    for p in (ok, rejected, usage, no_db):
        assert "Traceback" not in p.stdout + p.stderr, p.stdout + p.stderr
    assert "empty" in rejected.stdout + rejected.stderr
    assert "2024-2026" in usage.stderr


@pytest.fixture
def writer_holding(tmp_path):
    """Another process with the database open for writing (as a running `sapat ingest`)."""
    procs = []

    def hold(db: Path) -> None:
        db.parent.mkdir(parents=True, exist_ok=True)
        code = (
            "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); "
            "print('ready', flush=True); time.sleep(120)"
        )
        p = subprocess.Popen(
            [sys.executable, "-c", code, str(db)], stdout=subprocess.PIPE, text=True
        )
        procs.append(p)
        assert p.stdout.readline().strip() == "ready"

    yield hold
    for p in procs:
        p.kill()
        p.wait()


def test_ingest_while_another_process_writes_is_a_plain_error(env, exports, writer_holding):
    good = next(iter(exports["files"].values()))["path"]
    assert _invoke("ingest", "--db", env["db"], good).exit_code == 0
    writer_holding(env["db"])
    result = _invoke("ingest", "--db", env["db"], good)
    assert result.exit_code == 1
    assert "another Sapat command" in result.output


@pytest.mark.parametrize("cmd", ["loads", "quarantine"])
def test_reading_while_another_process_writes_is_a_plain_error(env, exports, writer_holding, cmd):
    """`sapat loads` / `sapat quarantine` run while `sapat ingest` is busy in another
    window: a sentence, not a traceback."""
    good = next(iter(exports["files"].values()))["path"]
    assert _invoke("ingest", "--db", env["db"], good).exit_code == 0
    writer_holding(env["db"])
    result = runner.invoke(app, [cmd, "--db", str(env["db"])])
    assert isinstance(result.exception, SystemExit), (
        f"`sapat {cmd}` crashes with {result.exception!r} instead of a plain message"
    )
    assert result.exit_code in (1, 2)
    assert "Traceback" not in result.output
