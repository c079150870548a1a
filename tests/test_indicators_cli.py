"""`sapat indicators` and `sapat changes`: stored column names in JSON, small cells hidden,
clear errors."""

from __future__ import annotations

import json

import duckdb
import pytest
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.ingest import ingest_file
from pipeline.ingest.pseudonym import load_key
from pipeline.instruments import example_catalog
from pipeline.registry import example_registry
from pipeline.store import Store
from pipeline.synth import synthesize

runner = CliRunner()


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    from pipeline.workspace import init_workspace

    root = tmp_path_factory.mktemp("cli_ind")
    mp = pytest.MonkeyPatch()
    mp.setenv("SAPAT_WORKSPACE", str(init_workspace(root / "ws", "batsu")))
    mp.delenv("SAPAT_MIN_N", raising=False)
    cat, reg = example_catalog(), example_registry()
    truth = synthesize(
        root / "ex", reg, cat, seed=4, scale=0.3, instruments=["student_experience", "graduate"]
    )
    key = load_key(root / "key")
    with Store(root / "sapat.duckdb") as store:
        for meta in truth["files"]:
            ingest_file(root / "ex" / meta["file"], store, cat, reg, key=key)
    yield root / "sapat.duckdb", truth
    mp.undo()


def test_indicators_json_uses_stored_column_names(db):
    path, _ = db
    result = runner.invoke(
        app, ["indicators", "--db", str(path), "--level", "programme", "--format", "json"]
    )
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout.strip().splitlines()[-1])
    with duckdb.connect(str(path), read_only=True) as con:
        stored = con.execute("SELECT * FROM ind_items LIMIT 0").fetchdf().columns
    assert rows and set(stored) <= set(rows[0])
    assert {r["org_level"] for r in rows} == {"programme"}
    for r in rows:
        if not r["suppressed"]:
            assert r["n"] >= 5
        else:
            assert r["pct_positive"] is None and r["n"] is None


def test_indicators_for_a_dimension_and_outcomes(db, tmp_path):
    path, _ = db
    out = tmp_path / "dims.csv"
    r = runner.invoke(
        app,
        [
            "indicators",
            "--db",
            str(path),
            "--dimension",
            "teaching",
            "--format",
            "csv",
            "--out",
            str(out),
        ],
    )
    assert r.exit_code == 0, r.output
    text = out.read_text("utf-8")
    assert text.startswith("instrument,") and "teaching" in text
    r = runner.invoke(
        app,
        [
            "indicators",
            "--db",
            str(path),
            "--outcomes",
            "--level",
            "university",
            "--format",
            "json",
        ],
    )
    measures = {row["measure"] for row in json.loads(r.stdout.strip().splitlines()[-1])}
    assert {"employment_rate", "pct_in_field", "pct_recommend", "median_months_to_job"} <= measures


def test_changes_lists_the_planted_change(db):
    path, truth = db
    ch = truth["planted_changes"][0]
    r = runner.invoke(
        app, ["changes", "--db", str(path), "--wave", ch["wave_to"], "--format", "json"]
    )
    assert r.exit_code == 0, r.output
    rows = json.loads(r.stdout.strip().splitlines()[-1])
    hits = [x for x in rows if x["unit"] == ch["unit"] and x["item"] == ch["item"]]
    assert len(hits) == 1 and hits[0]["p_adjusted"] < 0.05
    assert hits[0]["direction"] == ("better" if ch["delta_points"] > 0 else "worse")
    # strongest evidence first: adjusted p, then the size of the effect
    ps = [x["p_adjusted"] for x in rows]
    assert ps == sorted(ps)
    assert all(x["significant"] and x["p_adjusted"] < 0.05 for x in rows)


def test_changes_table_shows_percent_positive_as_the_indicator_tables_do(db):
    """On screen, before → after, with % positive in per cent (48.5) as pct_positive
    elsewhere, and p to three decimals or as <0.001; the JSON keeps the stored values."""
    path, truth = db
    ch = truth["planted_changes"][0]
    args = ["changes", "--db", str(path), "--wave", ch["wave_to"], "--lang", "en"]
    rows = json.loads(runner.invoke(app, [*args, "--format", "json"]).stdout.splitlines()[-1])
    hit = next(x for x in rows if x["unit"] == ch["unit"] and x["item"] == ch["item"])
    table = runner.invoke(app, args, env={"COLUMNS": "200"})
    assert table.exit_code == 0, table.output
    assert "% positive (then → now)" in table.output
    line = next(ln for ln in table.output.splitlines() if "→" in ln and hit["unit_name"][:12] in ln)
    cells = [c.strip() for c in line.split("│")]

    def pct(x):
        return f"{x:.1f}".removesuffix(".0")

    assert f"{pct(hit['pct_from'])} → {pct(hit['pct_to'])}" in cells
    assert f"{int(hit['n_from'])} → {int(hit['n_to'])}" in cells
    p = hit["p_adjusted"]
    assert ("<0.001" if p < 0.001 else f"{p:.3f}") in cells
    assert hit["direction_text"] in cells
    # an 80-column terminal shows every value whole (nothing cut short with "…")
    narrow = runner.invoke(app, args, env={"COLUMNS": "80"})
    body = [ln for ln in narrow.output.splitlines() if ln.startswith("│")]
    assert body and not any("…" in ln for ln in body), narrow.output


def test_counts_are_whole_numbers_in_json_and_csv(db):
    """Counts stay integers through the disclosure gate (which blanks small cells)."""
    path, truth = db
    ch = truth["planted_changes"][0]
    r = runner.invoke(
        app,
        ["changes", "--db", str(path), "--wave", ch["wave_to"], "--show-all", "--format", "json"],
    )
    rows = json.loads(r.stdout.strip().splitlines()[-1])
    for key in ("n_from", "n_to"):
        assert all(isinstance(x[key], int) or x[key] is None for x in rows), key
    assert any(x["n_from"] is None for x in rows) or all(x["n_from"] >= 3 for x in rows)
    r = runner.invoke(
        app, ["indicators", "--db", str(path), "--level", "programme", "--format", "csv"]
    )
    lines = r.stdout.strip().splitlines()
    header = lines[0].split(",")
    at = header.index("n")
    values = [ln.split(",")[at] for ln in lines[1:] if ln.count(",") == len(header) - 1]
    assert values and all(v == "" or v.isdigit() for v in values), values[:5]


@pytest.mark.parametrize(
    "args, words",
    [
        (["indicators", "--level", "campus"], "unknown --level"),
        (["indicators", "--ci-method", "bayes"], "unknown --ci-method"),
        (["indicators", "--confidence", "1.5"], "--confidence"),
        (["changes", "--wave", "2023-2024"], "nothing to compare"),
        (["changes", "--wave", "2024"], "YYYY-YYYY"),
    ],
)
def test_clear_usage_errors(db, args, words):
    path, _ = db
    r = runner.invoke(app, [*args, "--db", str(path)])
    assert r.exit_code == 2, r.output
    assert words in r.output and "Traceback" not in r.output


def test_no_database_yet_is_explained(tmp_path, batsu_workspace):
    r = runner.invoke(app, ["indicators", "--db", str(tmp_path / "none.duckdb")])
    assert r.exit_code == 2 and "sapat ingest" in r.output


def test_screen_tables_explain_their_less_obvious_columns(db):
    """'indicative' is explained under the table that shows it."""
    path, _ = db
    args = ["indicators", "--item", "se_overall", "--db", str(path)]
    r = runner.invoke(app, [*args, "--lang", "en"], env={"COLUMNS": "200"})
    assert r.exit_code == 0, r.output
    assert "Indicative" in r.output and "fewer than 10 answers" in r.output
    assert "sampling error only" in r.output  # what an interval covers
    # the workspace's language (Kyrgyz for BatSU) by default
    ky = runner.invoke(app, args, env={"COLUMNS": "200"})
    assert "Болжолдуу гана" in ky.output and "10дон аз" in ky.output
    assert "факультет" in ky.output.lower() and "(faculty)" not in ky.output


def test_a_deans_workbook_in_kyrgyz_with_the_university_beside_each_row(db, tmp_path):
    """sapat indicators --unit F-NHP --lang ky --out f.xlsx: Kyrgyz names, the university's
    value beside each row, display rounded while the cell keeps the full value."""
    import openpyxl

    path, _ = db
    out = tmp_path / "f.xlsx"
    args = ["indicators", "--db", str(path), "--unit", "F-NHP", "--lang", "ky"]
    r = runner.invoke(app, [*args, "--out", str(out)])
    assert r.exit_code == 0, r.output
    full = json.loads(runner.invoke(app, [*args, "--format", "json"]).stdout.splitlines()[-1])
    wb = openpyxl.load_workbook(out)
    sheet = wb.worksheets[0]
    header = [c.value for c in sheet[1]]
    rows = [dict(zip(header, [c for c in row], strict=True)) for row in sheet.iter_rows(min_row=2)]
    assert rows and {r["unit"].value for r in rows} == {"F-NHP"}
    assert {r["unit_name"].value for r in rows} == {
        "Табигый-гуманитардык жана педагогикалык факультет"
    }
    se = [r for r in rows if r["item"].value == "se_it02"]
    assert se and se[0]["item_name"].value.startswith("Компьютер класстары")
    shown = [r for r in rows if r["pct_positive"].value is not None]
    assert shown and all(r["university_pct_positive"].value is not None for r in shown)
    by_key = {(x["wave"], x["item"]): x for x in full}
    for r in shown[:20]:
        x = by_key[(r["wave"].value, r["item"].value)]
        assert r["pct_positive"].value == x["pct_positive"]  # the exact value is kept
        assert r["pct_positive"].number_format == "0.0"  # ...and shown rounded
        assert r["university_pct_positive"].value == x["university_pct_positive"]
    about = [row for row in wb.worksheets[1].iter_rows(values_only=True)]
    assert wb.worksheets[1].title == "Мамычалар жөнүндө"
    assert any(row[0] == "university_pct_positive" for row in about)
    assert any(row[0] and "Ишеним аралыгы" in str(row[0]) for row in about)


def test_csv_for_a_decimal_comma_excel_holds_one_wave(db, tmp_path):
    import pandas as pd

    path, truth = db
    wave = truth["waves"][-1]
    out = tmp_path / "f.csv"
    args = ["indicators", "--db", str(path), "--unit", "F-NHP", "--wave", wave]
    r = runner.invoke(app, [*args, "--excel", "--out", str(out)])
    assert r.exit_code == 0, r.output
    raw = out.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf") and b";" in raw.splitlines()[0]
    frame = pd.read_csv(out, sep=";", decimal=",", encoding="utf-8-sig")
    assert set(frame["wave"]) == {wave} and set(frame["unit"]) == {"F-NHP"}
    assert pd.api.types.is_float_dtype(frame["pct_positive"])
    plain = runner.invoke(app, [*args, "--format", "csv"]).stdout
    assert plain.splitlines()[0].startswith("instrument,")
