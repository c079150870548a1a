"""The quality office's records (nonconformities, actions, audit findings): written by the
store only, each change audited without the office's words, checked against the
declarations and questionnaires, published in every snapshot, carried over by a rebuild."""

from __future__ import annotations

import json
from datetime import date

import duckdb
import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

import pipeline.cli.main as cli_main
from pipeline import quality
from pipeline.cli.quality import actions_app, findings_app, nonconformities_app
from pipeline.errors import SapatError, UsageError
from pipeline.ingest.pseudonym import load_key
from pipeline.ingest.rebuild import rebuild
from pipeline.store import Store, verify_audit
from pipeline.store.snapshots import checksum, open_current
from pipeline.workspace import Workspace

#: each test makes a workspace and a store and drives the CLI (about 17 s in all)
pytestmark = pytest.mark.slow

runner = CliRunner()

# the `sapat` command's callback with the three groups under it, as main.py will add them
root = typer.Typer(rich_markup_mode="markdown")
root.callback(invoke_without_command=True)(cli_main.main)
root.add_typer(nonconformities_app, name="nonconformities")
root.add_typer(actions_app, name="actions")
root.add_typer(findings_app, name="findings")

DESCRIPTION = "Meet every first-year group about the timetable"
REASON = "Two waves in a row below target"
NOTE = "Timetable published a month earlier; checked with the student council"
DETAIL = "Students complain about the late timetable"


def sapat(*args: str):
    return runner.invoke(root, list(args))


def _says(result, *needles: str) -> bool:
    """Every needle is in the output, however the terminal wrapped it."""
    flat = "".join(result.output.split())
    return all("".join(n.split()) in flat for n in needles)


def _clean(result) -> None:
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


@pytest.fixture
def ws(batsu_workspace, monkeypatch):
    """The BatSU workspace with a database holding the declarations (no answers)."""
    monkeypatch.setenv("SAPAT_ACTOR", "office.tester")
    w = Workspace.at(batsu_workspace)
    with Store(w.settings.db_path, raw_dir=w.settings.raw_dir, audit_key=load_key()) as store:
        store.write_declarations(w.catalog, w.registry.units)
    return w


def _rows(ws, sql: str, params=()) -> list[tuple]:
    con = duckdb.connect(str(ws.settings.db_path), read_only=True)
    try:
        return con.execute(sql, list(params)).fetchall()
    finally:
        con.close()


def _count(ws, table: str) -> int:
    return _rows(ws, f"SELECT count(*) FROM {table}")[0][0]


def _audit(ws) -> list[tuple]:
    return _rows(ws, "SELECT action, object, outcome, actor FROM sys_audit ORDER BY seq")


def _candidates(**extra) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "source": "objective",
                "objective": "OBJ-01",
                "instrument": "student_experience",
                "indicator": "se_overall",
                "unit": "F-NHP",
                "wave": "2024-2025",
                "detail": "72.1 % positive, target 75 %",
            },
            {
                "source": "decline",
                "objective": None,
                "instrument": "student_experience",
                "indicator": "teaching",
                "unit": "P-NHP-ENG-B",
                "wave": "2024-2025",
                "detail": "down 9.3 points from 2023-2024 (p = 0.004)",
            },
        ]
    ).assign(**extra)


def _action_args(**override) -> list[str]:
    options = {
        "--unit": "P-NHP-ENG-B",
        "--instrument": "student_experience",
        "--indicator": "teaching",
        "--owner": "PR-06",
        "--due": "2025-06-30",
        "--description": DESCRIPTION,
        **override,
    }
    return ["actions", "add", *[x for k, v in options.items() if v is not None for x in (k, v)]]


# ---------------------------------------------------------------- the store
def test_the_store_creates_the_three_tables_with_the_declared_columns(ws):
    for table, columns in quality.COLUMNS.items():
        got = _rows(
            ws,
            "SELECT column_name FROM information_schema.columns WHERE table_name = ? "
            "ORDER BY ordinal_position",
            [table],
        )
        assert tuple(c for (c,) in got) == columns, table


def test_a_candidate_recorded_twice_is_recorded_once(ws):
    with Store(ws.settings.db_path, audit_key=load_key()) as store:
        frame = _candidates()
        assert store.record_candidates(pd.concat([frame, frame])) == 2  # twice in one frame
        assert store.record_candidates(frame) == 0  # and again
        store.decide_nonconformity(2, "dismissed", REASON)
        assert store.record_candidates(frame) == 0  # a dismissed one does not come back
        other = _candidates(wave="2025-2026")
        assert store.record_candidates(other.drop(columns=["detail"])) == 2
        with pytest.raises(SapatError, match="unknown source"):
            store.record_candidates(_candidates(source="hunch"))
        with pytest.raises(SapatError, match="without unit"):
            store.record_candidates(_candidates(unit=None))
    rows = _rows(ws, "SELECT nc_id, source, objective, status, detail FROM qa_nonconformities")
    assert [(r[0], r[1], r[2], r[3]) for r in rows] == [
        (1, "objective", "OBJ-01", "candidate"),
        (2, "decline", None, "dismissed"),
        (3, "objective", "OBJ-01", "candidate"),
        (4, "decline", None, "candidate"),
    ]
    assert rows[2][4] is None
    adds = [a for a in _audit(ws) if a[0] == "nonconformity add"]
    assert [a[2] for a in adds] == [
        "2 new of 4 candidates (decline, objective)",
        "0 new of 2 candidates",
        "0 new of 2 candidates",
        "2 new of 2 candidates (decline, objective)",
    ]


def test_read_helpers_work_on_any_connection_even_without_the_tables():
    con = duckdb.connect()
    assert list(quality.actions(con).columns) == [*quality.COLUMNS["qa_actions"], "overdue"]
    assert quality.nonconformities(con, status="candidate").empty
    assert quality.findings(con, year="2024-2025").empty
    with pytest.raises(UsageError, match="--status"):
        quality.actions(con, status="finished")
    with pytest.raises(UsageError, match="--year"):
        quality.findings(con, year="2024")


# ---------------------------------------------------------------- actions
def test_add_list_update_close_an_action(ws):
    nc = sapat(
        *("nonconformities", "add", "--unit", "F-NHP", "--instrument", "student_experience"),
        *("--indicator", "se_overall", "--wave", "2024-2025", "--detail", DETAIL),
        *("--objective", "obj-01"),
    )
    assert nc.exit_code == 0, nc.output
    added = sapat(
        *("actions", "add", "--nc", "1", "--owner", "pr-02", "--due", "2025-06-30"),
        *("--description", DESCRIPTION),
    )
    assert added.exit_code == 0, added.output
    assert _says(added, "Action 1 recorded", "F-NHP", "PR-02", "2025-06-30")
    second = sapat(*_action_args(), "--kind", "preventive", "--wave", "2024-2025")
    assert second.exit_code == 0, second.output

    [one, two] = json.loads(sapat("actions", "list", "--json").stdout)
    assert one["nc_id"] == 1 and one["unit"] == "F-NHP" and one["indicator"] == "se_overall"
    assert one["opened_wave"] == "2024-2025"  # the nonconformity's wave
    assert one["owner_process"] == "PR-02" and one["due_date"] == "2025-06-30"
    assert one["status"] == "open" and one["created_by"] == "office.tester"
    assert two["kind"] == "preventive" and two["nc_id"] is None
    # a faculty's list holds its programmes' actions; another unit's does not
    assert [
        a["action_id"]
        for a in json.loads(sapat("actions", "list", "--unit", "F-NHP", "--json").stdout)
    ] == [1, 2]
    assert json.loads(sapat("actions", "list", "--unit", "P-NHP-LAW-B", "--json").stdout) == []
    shown = sapat("actions", "list")
    assert shown.exit_code == 0 and _says(shown, "overdue")

    updated = sapat("actions", "update", "1", "--status", "in_progress", "--due", "2026-01-31")
    assert updated.exit_code == 0, updated.output
    assert _says(updated, "status in_progress", "due 2026-01-31")
    same = sapat("actions", "update", "1", "--status", "in_progress")
    assert same.exit_code == 0 and _says(same, "nothing changed")
    assert sapat("actions", "update", "1", "--owner", "PR-99").exit_code == 2
    refused = sapat("actions", "update", "1", "--status", "closed")
    assert refused.exit_code == 2 and _says(refused, "sapat actions close")

    closed = sapat("actions", "close", "1", "--note", NOTE)
    assert closed.exit_code == 0, closed.output
    listed = json.loads(sapat("actions", "list", "--status", "closed", "--json").stdout)
    assert [(a["action_id"], a["closed_by"], a["closing_note"]) for a in listed] == [
        (1, "office.tester", NOTE)
    ]
    assert listed[0]["due_date"] == "2026-01-31" and listed[0]["overdue"] is False
    again = sapat("actions", "update", "1", "--description", "something else")
    assert again.exit_code == 2 and _says(again, "action 1 is closed")
    assert sapat("actions", "close", "1", "--note", NOTE).exit_code == 2
    assert sapat("actions", "close", "9", "--note", NOTE).exit_code == 2
    for r in (same, refused, again):
        _clean(r)


@pytest.mark.parametrize(
    ("override", "needles"),
    [
        ({"--due": "30.06.2025"}, ["--due", "is not a date", "YYYY-MM-DD"]),
        ({"--due": "2025-02-30"}, ["--due", "is not a date"]),
        ({"--unit": "F-NHQ"}, ["--unit", "unknown unit 'F-NHQ'", "did you mean F-NHP"]),
        ({"--owner": "PR-99"}, ["--owner", "unknown process 'PR-99'", "processes.csv"]),
        ({"--indicator": "se_overal"}, ["'se_overal' is not an item or dimension", "se_overall"]),
        ({"--instrument": "student_experiense"}, ["unknown questionnaire", "student_experience"]),
        ({"--kind": "curative"}, ["--kind", "corrective | preventive"]),
        ({"--wave": "2024-2026"}, ["--wave", "not an academic year"]),
        ({"--nc": "7"}, ["there is no nonconformity 7"]),
        ({"--description": "  "}, ["--description", "cannot be empty"]),
        ({"--unit": None}, ["--unit is needed", "--nc ID"]),
    ],
)
def test_a_wrong_action_is_refused_with_the_option_named_and_nothing_written(ws, override, needles):
    result = sapat(*_action_args(**override))
    assert result.exit_code == 2, result.output
    assert _says(result, *needles), result.output
    _clean(result)
    assert _count(ws, "qa_actions") == 0
    assert not [a for a in _audit(ws) if a[0].startswith("action")]


def test_an_action_answers_a_confirmed_nonconformity_only(ws):
    with Store(ws.settings.db_path, audit_key=load_key()) as store:
        store.record_candidates(_candidates())
    candidate = sapat(*_action_args(), "--nc", "1")
    assert candidate.exit_code == 2
    assert _says(candidate, "nonconformity 1 is candidate, not confirmed", "confirm 1 --why")
    assert _count(ws, "qa_actions") == 0
    assert sapat("nonconformities", "confirm", "1", "--why", REASON).exit_code == 0
    ok = sapat(*_action_args(), "--nc", "1")
    assert ok.exit_code == 0, ok.output
    # the store checks too, whoever calls it
    with (
        Store(ws.settings.db_path, audit_key=load_key()) as store,
        pytest.raises(UsageError, match="not confirmed"),
    ):
        store.add_action(
            unit="F-NHP",
            instrument="student_experience",
            indicator="se_overall",
            owner_process="PR-02",
            due_date="2025-06-30",
            description=DESCRIPTION,
            nc_id=2,
        )
    assert _count(ws, "qa_actions") == 1


# ---------------------------------------------------------------- nonconformities
def test_confirming_or_dismissing_needs_a_reason(ws):
    with Store(ws.settings.db_path, audit_key=load_key()) as store:
        store.record_candidates(_candidates())
    missing = sapat("nonconformities", "confirm", "1")
    assert missing.exit_code == 2 and _says(missing, "--why")
    blank = sapat("nonconformities", "dismiss", "2", "--why", "   ")
    assert blank.exit_code == 2 and _says(blank, "--why", "cannot be empty")
    unknown = sapat("nonconformities", "confirm", "9", "--why", REASON)
    assert unknown.exit_code == 2 and _says(unknown, "there is no nonconformity 9")
    for r in (missing, blank, unknown):
        _clean(r)
    assert {s for (s,) in _rows(ws, "SELECT status FROM qa_nonconformities")} == {"candidate"}

    assert sapat("nonconformities", "confirm", "1", "--why", REASON).exit_code == 0
    assert sapat("nonconformities", "dismiss", "2", "--why", "Too few answers").exit_code == 0
    twice = sapat("nonconformities", "confirm", "1", "--why", REASON)
    assert twice.exit_code == 2 and _says(twice, "already confirmed")
    rows = _rows(ws, "SELECT nc_id, status, reason, decided_by FROM qa_nonconformities")
    assert [r[:2] for r in rows] == [(1, "confirmed"), (2, "dismissed")]
    assert rows[0][2] == REASON and rows[0][3] == "office.tester"
    # an open action keeps its nonconformity from being dismissed
    assert sapat(*_action_args(), "--nc", "1").exit_code == 0
    held = sapat("nonconformities", "dismiss", "1", "--why", "changed our mind")
    assert held.exit_code == 2 and _says(held, "actions still open (1)")

    listed = json.loads(sapat("nonconformities", "list", "--status", "confirmed", "--json").stdout)
    assert [n["nc_id"] for n in listed] == [1]
    assert (
        json.loads(sapat("nonconformities", "list", "--wave", "2023-2024", "--json").stdout) == []
    )
    table = sapat("nonconformities", "list")
    assert table.exit_code == 0 and _says(table, "OBJ-01", "dismissed")


def test_a_nonconformity_by_hand_is_confirmed_and_not_recorded_twice(ws):
    args = (
        *("nonconformities", "add", "--unit", "P-NHP-ENG-B", "--instrument"),
        *("student_experience", "--indicator", "infrastructure", "--wave", "2024-2025"),
        *("--detail", DETAIL),
    )
    assert sapat(*args).exit_code == 0
    twice = sapat(*args)
    assert twice.exit_code == 2 and _says(twice, "nonconformity 1 records this already")
    lacking = sapat("nonconformities", "add", "--unit", "F-NHP")
    assert lacking.exit_code == 2 and _says(lacking, "--instrument, --indicator, --wave, --detail")
    [row] = _rows(ws, "SELECT source, status, decided_by FROM qa_nonconformities")
    assert row == ("manual", "confirmed", "office.tester")


# ---------------------------------------------------------------- the audit log
def test_every_change_is_audited_without_the_office_words(ws, tmp_path):
    with Store(ws.settings.db_path, audit_key=load_key()) as store:
        store.record_candidates(_candidates())
    steps = [
        ("nonconformities", "confirm", "1", "--why", REASON),
        ("nonconformities", "dismiss", "2", "--why", REASON + " (dismissed)"),
        (
            *("nonconformities", "add", "--unit", "F-NHP", "--instrument", "student_experience"),
            *("--indicator", "support", "--wave", "2024-2025", "--detail", DETAIL),
        ),
        (*_action_args(), "--nc", "1"),
        ("actions", "update", "1", "--description", DESCRIPTION + " and the dean"),
        ("actions", "update", "1", "--status", "done", "--due", "2025-09-01"),
        ("actions", "close", "1", "--note", NOTE),
        (
            *("findings", "add", "--date", "2025-03-14", "--process", "PR-20"),
            *("--unit", "F-NHP", "--kind", "observation", "--description", DESCRIPTION),
        ),
    ]
    for args in steps:
        result = sapat(*args)
        assert result.exit_code == 0, (args, result.output)
    log = _audit(ws)
    records = [(a, o) for a, o, _, _ in log if a not in ("publish",)]
    assert records == [
        ("nonconformity add", "nonconformities 1-2"),
        ("nonconformity confirm", "nonconformity 1"),
        ("nonconformity dismiss", "nonconformity 2"),
        ("nonconformity add", "nonconformity 3"),
        ("action add", "action 1"),
        ("action update", "action 1"),
        ("action update", "action 1"),
        ("action close", "action 1"),
        ("finding add", "finding 1"),
    ]
    assert {actor for *_, actor in log} == {"office.tester"}
    outcomes = {a: out for a, _, out, _ in log}
    assert outcomes["action close"] == "done → closed"
    assert outcomes["nonconformity confirm"] == "candidate → confirmed"
    updates = [out for a, _, out, _ in log if a == "action update"]
    assert updates == [
        "description changed",
        "status open → done; due_date 2025-06-30 → 2025-09-01",
    ]
    text = " ".join(str(v) for row in log for v in row)
    for words in (DESCRIPTION, REASON, NOTE, DETAIL, "dean", "student council"):
        assert words not in text
    frame = duckdb.connect(str(ws.settings.db_path), read_only=True)
    assert (
        verify_audit(frame.execute("SELECT * FROM sys_audit ORDER BY seq").fetchdf(), load_key())
        == []
    )
    frame.close()


# ---------------------------------------------------------------- the snapshot
def test_every_change_is_published_with_the_three_tables(ws):
    assert open_current(ws.settings.snapshots_dir) is None
    assert sapat(*_action_args()).exit_code == 0
    con = open_current(ws.settings.snapshots_dir)
    try:
        meta = {
            t: (rows, total)
            for t, rows, total in con.execute(
                "SELECT table_name, rows, checksum FROM snapshot_meta"
            ).fetchall()
        }
        for table in quality.RECORD_TABLES:
            assert table in meta and checksum(con, table) == meta[table], table
        assert meta["qa_actions"][0] == 1 and meta["qa_nonconformities"][0] == 0
        assert quality.actions(con)["description"].tolist() == [DESCRIPTION]
        assert not con.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE table_name LIKE 'fct_%'"
        ).fetchone()[0]
    finally:
        con.close()
    assert sapat("actions", "close", "1", "--note", NOTE).exit_code == 0
    con = open_current(ws.settings.snapshots_dir)
    assert quality.actions(con)["status"].tolist() == ["closed"]
    con.close()


# ---------------------------------------------------------------- findings
def test_add_and_list_findings_by_academic_year(ws):
    base = ("findings", "add", "--process", "PR-20", "--unit", "F-NHP", "--kind")
    assert sapat(*base, "observation", "--date", "2024-09-01", "--description", "a").exit_code == 0
    assert sapat(*base, "opportunity", "--date", "2025-08-31", "--description", "b").exit_code == 0
    assert (
        sapat(*base, "nonconformity", "--date", "2025-09-01", "--description", "c").exit_code == 0
    )
    future = sapat(*base, "observation", "--date", "2999-01-01", "--description", "d")
    assert future.exit_code == 2 and _says(future, "--date", "is in the future")
    kind = sapat(*base, "remark", "--date", "2025-01-01", "--description", "d")
    assert kind.exit_code == 2 and _says(kind, "nonconformity | observation | opportunity")
    year = json.loads(sapat("findings", "list", "--year", "2024-2025", "--json").stdout)
    assert [(f["description"], f["audit_date"]) for f in year] == [
        ("a", "2024-09-01"),
        ("b", "2025-08-31"),
    ]
    assert len(json.loads(sapat("findings", "list", "--json").stdout)) == 3
    bad = sapat("findings", "list", "--year", "2025")
    assert bad.exit_code == 2 and _says(bad, "--year")


def test_findings_are_recorded_even_before_any_answers_are_loaded(batsu_workspace):
    empty = sapat("findings", "list")
    assert empty.exit_code == 0 and _says(empty, "No finding recorded yet")
    assert json.loads(sapat("actions", "list", "--json").stdout) == []
    refused = sapat(*_action_args())
    assert refused.exit_code == 2 and _says(refused, "there is no database yet")
    added = sapat(
        *("findings", "add", "--date", "2025-03-14", "--process", "PR-20", "--unit", "BatSU"),
        *("--kind", "observation", "--description", DESCRIPTION),
    )
    assert added.exit_code == 0, added.output
    assert len(json.loads(sapat("findings", "list", "--json").stdout)) == 1


SHEET = """\
дата;процесс;подразделение;вид;описание;статус;№
14.03.2025;PR-20;F-NHP;наблюдение;Minutes of the council are not signed;;1
2025-03-14;pr-06;P-NHP-ENG-B;nonconformity;Syllabi of two courses are missing;закрыто;2
2025-03-15;PR-18;BatSU;opportunity;Extend the library's opening hours;open;3
"""


def test_importing_an_audit_sheet_is_all_or_nothing(ws, tmp_path):
    bad = tmp_path / "audit-bad.csv"
    bad.write_text(
        SHEET.replace("F-NHP;", "F-NHQ;").replace("2025-03-15", "2025-15-03"), encoding="utf-8"
    )
    result = sapat("findings", "import", str(bad))
    assert result.exit_code == 2, result.output
    assert _says(
        result,
        "2 problem(s)",
        "nothing was imported",
        "row 2, column 'подразделение': unknown unit 'F-NHQ'",
        "did you mean F-NHP",
        "row 4, column 'дата'",
    )
    _clean(result)
    assert _count(ws, "qa_findings") == 0
    assert not [a for a in _audit(ws) if a[0] == "finding add"]

    good = tmp_path / "audit.csv"
    good.write_text(SHEET, encoding="utf-8")
    done = sapat("findings", "import", str(good))
    assert done.exit_code == 0, done.output
    assert _says(done, "3 finding(s) imported (1–3)")
    rows = _rows(
        ws, "SELECT finding_id, audit_date, process, kind, status FROM qa_findings ORDER BY 1"
    )
    assert rows == [
        (1, date(2025, 3, 14), "PR-20", "observation", "open"),
        (2, date(2025, 3, 14), "PR-06", "nonconformity", "closed"),
        (3, date(2025, 3, 15), "PR-18", "opportunity", "open"),
    ]
    again = sapat("findings", "import", str(good))
    assert again.exit_code == 0 and _says(again, "0 finding(s) imported", "3 recorded already")
    assert _count(ws, "qa_findings") == 3
    outcomes = [out for a, _, out, _ in _audit(ws) if a == "finding add"]
    assert len(outcomes) == 3 and all("imported from audit.csv" in o for o in outcomes)


def test_an_audit_workbook_with_english_headers_and_date_cells(ws, tmp_path):
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    sheet.append(["When", "Process", "Unit", "Kind", "Description"])
    sheet.append([date(2025, 3, 14), "PR-20", "F-NHP", "observation", "Minutes unsigned"])
    sheet.append([date(2025, 3, 14), "PR-20", "F-NHP", "observation", "Minutes unsigned"])
    path = tmp_path / "audit.xlsx"
    book.save(path)
    headers = sapat("findings", "import", str(path))
    assert headers.exit_code == 2, headers.output  # "When" is not a known header
    assert _says(headers, "no column audit_date", "дата")
    sheet["A1"] = "Audit date"
    book.save(path)
    twice = sapat("findings", "import", str(path))
    assert twice.exit_code == 2 and _says(twice, "row 3 repeats row 2")
    sheet.delete_rows(3)
    book.save(path)
    ok = sapat("findings", "import", str(path))
    assert ok.exit_code == 0, ok.output
    assert _rows(ws, "SELECT audit_date, unit FROM qa_findings") == [(date(2025, 3, 14), "F-NHP")]


# ---------------------------------------------------------------- the rebuild
def test_a_rebuild_carries_the_records_over_unchanged(ws, tmp_path):
    with Store(ws.settings.db_path, audit_key=load_key()) as store:
        store.record_candidates(_candidates())
    assert sapat("nonconformities", "confirm", "1", "--why", REASON).exit_code == 0
    assert sapat(*_action_args(), "--nc", "1").exit_code == 0
    assert sapat("actions", "close", "1", "--note", NOTE).exit_code == 0
    assert (
        sapat(
            *("findings", "add", "--date", "2025-03-14", "--process", "PR-20", "--unit", "F-NHP"),
            *("--kind", "observation", "--description", DESCRIPTION),
        ).exit_code
        == 0
    )
    new = tmp_path / "rebuilt.duckdb"
    result = {
        c.table: c
        for c in rebuild(ws.settings.db_path, new, ws.catalog, ws.registry, key=load_key())
    }
    for table in quality.RECORD_TABLES:
        assert result[table].same and result[table].rows_after > 0, result[table]
    before = duckdb.connect(str(ws.settings.db_path), read_only=True)
    after = duckdb.connect(str(new), read_only=True)
    try:
        for table in quality.RECORD_TABLES:
            order = quality.COLUMNS[table][0]
            sql = f"SELECT * FROM {table} ORDER BY {order}"
            assert before.execute(sql).fetchall() == after.execute(sql).fetchall(), table
        assert (
            after.execute("SELECT outcome FROM sys_audit WHERE action = 'carry'").fetchone()[0]
            == "2 rows of qa_nonconformities; 1 rows of qa_actions; 1 rows of qa_findings"
        )
    finally:
        before.close()
        after.close()


def test_a_rebuild_of_a_store_older_than_the_records_finds_them_equal(ws, tmp_path):
    with Store(ws.settings.db_path) as store:
        for table in quality.RECORD_TABLES:
            store.con.execute(f"DROP TABLE {table}")
    old = tmp_path / "old.duckdb"
    old.write_bytes(ws.settings.db_path.read_bytes())
    result = {
        c.table: c
        for c in rebuild(old, tmp_path / "new.duckdb", ws.catalog, ws.registry, key=load_key())
    }
    for table in quality.RECORD_TABLES:
        assert result[table].same and result[table].rows_after == 0


# ---------------------------------------------------------------- help
def test_every_command_has_plain_help():
    for group, commands in (
        ("nonconformities", ("list", "add", "confirm", "dismiss")),
        ("actions", ("add", "list", "update", "close")),
        ("findings", ("add", "list", "import")),
    ):
        for cmd in commands:
            result = runner.invoke(root, [group, cmd, "--help"])
            assert result.exit_code == 0, (group, cmd)
            assert len(result.output.split("Usage:")[-1].strip().splitlines()) > 2
