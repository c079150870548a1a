"""Wrong inputs get a clear answer that says what to do; screens and files say what they hold."""

from __future__ import annotations

import json

import openpyxl
import pandas as pd
import pytest
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.instruments import example_catalog
from pipeline.registry import example_registry
from pipeline.synth import synthesize

runner = CliRunner()


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    out = tmp_path_factory.mktemp("answers")
    truth = synthesize(
        out,
        example_registry(),
        example_catalog(),
        scale=0.05,
        seed=12,
        waves=["2024-2025", "2025-2026"],
        instruments=["staff"],
    )
    return {f["wave"]: out / f["file"] for f in truth["files"]}


def _json(args, **kw):
    r = runner.invoke(app, args, **kw)
    return r, [json.loads(line) for line in r.stdout.strip().splitlines() if line.startswith("{")]


def test_counts_printed_while_loading_are_the_ones_loads_shows(exports, batsu_workspace):
    r, results = _json(["ingest", "--json", *map(str, exports.values())])
    assert r.exit_code == 0
    loads = json.loads(runner.invoke(app, ["loads", "--json"]).stdout)
    for res, load in zip(results, loads, strict=True):
        assert (res["rows_flagged"], res["rows_excluded"]) == (
            load["rows_flagged"],
            load["rows_excluded"],
        )
        assert res["flag_counts"] == load["flag_counts"]
    flagged = json.loads(runner.invoke(app, ["flags", "--json", "--limit", "100000"]).stdout)
    assert len({(f["file"], f["row"]) for f in flagged}) == sum(x["rows_flagged"] for x in loads)


def test_quarantine_by_file_name_and_out_by_extension(exports, batsu_workspace, tmp_path):
    # one answer out of range in the second data row: that row alone goes to quarantine
    frame = pd.read_csv(exports["2025-2026"], dtype=str, keep_default_na=False)
    item = next(c for c in frame.columns if "[" in c)
    frame.loc[1, item] = "оч. странно"
    bad_copy = tmp_path / "2025-2026" / "staff_bad_row.csv"
    bad_copy.parent.mkdir()
    frame.to_csv(bad_copy, index=False)
    runner.invoke(app, ["ingest", *map(str, exports.values()), str(bad_copy)])
    name = bad_copy.name
    by_name = json.loads(runner.invoke(app, ["quarantine", "--json", "--file", name]).stdout)
    assert by_name and {q["file"] for q in by_name} == {name}
    out = tmp_path / "items.json"
    r = runner.invoke(app, ["indicators", "--out", str(out)])
    assert r.exit_code == 0 and isinstance(json.loads(out.read_text("utf-8")), list)
    out = tmp_path / "items.csv"
    assert runner.invoke(app, ["indicators", "--out", str(out)]).exit_code == 0
    assert out.read_text("utf-8").startswith("instrument,")
    bad = runner.invoke(app, ["indicators", "--out", str(tmp_path / "nowhere" / "x.csv")])
    assert bad.exit_code == 2 and "--out" in bad.output and "Traceback" not in bad.output
    odd = runner.invoke(app, ["indicators", "--out", str(tmp_path / "items.txt")])
    assert odd.exit_code == 2 and "extension" in odd.output


def test_changes_name_both_waves_and_unknown_names_are_errors(exports, batsu_workspace):
    runner.invoke(app, ["ingest", *map(str, exports.values())])
    r = runner.invoke(app, ["changes", "--wave", "2025-2026", "--show-all"], env={"COLUMNS": "120"})
    assert r.exit_code == 0 and "2024-2025 → 2025-2026" in r.output
    for args, words in (
        (["--item", "st_pay99"], "unknown item"),
        (["--instrument", "staf"], "did you mean staff"),
        (["--dimension", "payy"], "did you mean pay"),
    ):
        r = runner.invoke(app, ["indicators", *args])
        assert r.exit_code == 2 and words in r.output, r.output


def test_a_workbook_with_the_answers_on_another_sheet_is_told_which(
    exports, batsu_workspace, tmp_path
):
    from pipeline.readers import open_export

    frame = open_export(exports["2025-2026"]).read_all().drop(columns="source_row")
    book = tmp_path / "2025-2026" / "staff.xlsx"
    book.parent.mkdir()
    with pd.ExcelWriter(book) as xw:
        notes = pd.DataFrame({"Notes": ["exported by the HR office"]})
        notes.to_excel(xw, sheet_name="About", index=False)
        frame.to_excel(xw, sheet_name="Answers", index=False)
    wb = openpyxl.load_workbook(book)
    assert wb.sheetnames[0] != "Answers" or len(wb.sheetnames) == 1
    r, (res,) = _json(["ingest", "--json", str(book)])
    assert res["status"] == "rejected"
    assert "--sheet 'Answers'" in res["errors"][0]["message"]
    r, (res,) = _json(["ingest", "--json", "--sheet", "Answers", str(book)])
    assert res["status"] == "loaded"


def test_columns_of_another_questionnaire_are_named(exports, batsu_workspace):
    r, (res,) = _json(["ingest", "--json", "--instrument", "employer", str(exports["2024-2025"])])
    assert res["status"] == "rejected"
    assert "--instrument staff" in res["errors"][0]["message"]


def _commands(command, path=()):
    yield path
    for name, sub in getattr(command, "commands", {}).items():
        yield from _commands(sub, (*path, name))


def test_help_shows_plain_placeholders_not_python_types():
    """Every command's --help says what an option holds (YYYY-YYYY, FILE, N), never
    <str>, <list[Path]> or <bool>, and paragraphs are not broken mid-sentence."""
    import re

    import typer.main

    paths = list(_commands(typer.main.get_command(app)))
    assert len(paths) > 15
    python_type = re.compile(r"<(?:str|int|float|bool|path|Path|list\[[^\]]*\])>")
    for path in paths:
        r = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "120"})
        assert r.exit_code == 0, (path, r.output)
        assert not python_type.search(r.output), (path, python_type.findall(r.output))
        assert "%%" not in r.output, path
    ingest = runner.invoke(app, ["ingest", "--help"], env={"COLUMNS": "120"}).output
    assert "FILE..." in ingest and "YYYY-YYYY" in ingest and "FIELD=VALUE" in ingest
    # a paragraph wraps at the terminal's width, not where the docstring's line ended
    header = ingest.split("╭")[0]
    for paragraph in re.split(r"\n\s*\n", header):
        lines = [line.strip() for line in paragraph.splitlines() if line.strip()]
        assert all(len(line) > 80 for line in lines[:-1]), lines


def test_a_setting_out_of_range_in_the_environment_is_named_as_such(batsu_workspace, monkeypatch):
    monkeypatch.setenv("SAPAT_MIN_N", "2")
    r = runner.invoke(app, ["indicators"])
    assert r.exit_code != 0 and "Traceback" not in r.output
    assert "SAPAT_MIN_N = '2'" in r.output or "SAPAT_MIN_N = 2" in r.output
    assert "at least 3" in r.output and "sapat.toml" not in r.output
