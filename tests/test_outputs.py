"""Result tables written for people: CSV (plain and for Excel), JSON and xlsx workbooks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import openpyxl
import pandas as pd
import pytest

from pipeline import outputs
from pipeline.errors import UsageError
from pipeline.outputs import FORMATS, format_from, write_table

FACULTY = "Табигый илимдер факультети"
KYRGYZ = "Көңүл бурууга татыктуу: өнүгүү жана үйрөнүү"
FORMULAS = ["=1+1", "+7 700", "@SUM(A1)", "-x", "\tTAB", "\rCR"]


@pytest.fixture
def frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "unit": [FACULTY, KYRGYZ, "Медицина; хирургия"],
            "n": [12, 7, 30],
            "mean": [3.5833333333333335, 0.1 + 0.2, -1.5],
            "pct_agree": [66.66666666666667, 57.142857142857146, np.nan],
            "met": [True, False, True],
        }
    )


def _sheet(path: Path, index: int = 0):
    return openpyxl.load_workbook(path).worksheets[index]


def _column(ws, name: str) -> list:
    header = [c.value for c in ws[1]]
    return [row[header.index(name)] for row in ws.iter_rows(min_row=2)]


# --- csv and json ----------------------------------------------------------------------------


def test_csv_round_trips_at_full_precision(tmp_path, frame):
    path = tmp_path / "t.csv"
    write_table(frame, path, fmt="csv", title="Satisfaction")
    raw = path.read_bytes()
    assert not raw.startswith(b"\xef\xbb\xbf")
    assert "3.5833333333333335" in raw.decode("utf-8")
    pd.testing.assert_frame_equal(pd.read_csv(path, encoding="utf-8"), frame, check_dtype=False)


def test_excel_csv_has_a_bom_semicolons_and_decimal_commas(tmp_path, frame):
    path = tmp_path / "t.csv"
    write_table(frame, path, fmt="csv", title="Satisfaction", excel_csv=True)
    raw = path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    text = raw.decode("utf-8-sig")
    assert text.splitlines()[0] == "unit;n;mean;pct_agree;met"
    assert "3,5833333333333335" in text and "-1,5" in text
    back = pd.read_csv(path, sep=";", decimal=",", encoding="utf-8-sig")
    pd.testing.assert_frame_equal(back, frame, check_dtype=False)
    assert back.loc[0, "mean"] == 3.5833333333333335


def test_json_is_records_at_full_precision_with_iso_dates_and_nulls(tmp_path, frame):
    frame = frame.assign(
        wave=pd.to_datetime(["2024-03-01 00:00", "2024-10-15 09:30", None]),
        n=pd.array([12, None, 30], dtype="Int64"),
    )
    path = tmp_path / "t.json"
    write_table(frame, path, fmt="json", title="Satisfaction")
    text = path.read_text(encoding="utf-8")
    assert FACULTY in text  # not \u-escaped
    records = json.loads(text)
    assert records[0] == {
        "unit": FACULTY,
        "n": 12,
        "mean": 3.5833333333333335,
        "pct_agree": 66.66666666666667,
        "met": True,
        "wave": "2024-03-01T00:00:00",
    }
    assert records[1]["wave"] == "2024-10-15T09:30:00"
    assert records[1]["n"] is None
    assert records[2]["pct_agree"] is None and records[2]["wave"] is None
    back = pd.DataFrame(records)
    pd.testing.assert_series_equal(back["mean"], frame["mean"])
    pd.testing.assert_series_equal(back["unit"], frame["unit"], check_dtype=False)


# --- xlsx ------------------------------------------------------------------------------------


def test_xlsx_header_is_bold_frozen_and_filtered(tmp_path, frame):
    path = tmp_path / "t.xlsx"
    write_table(frame, path, fmt="xlsx", title="Satisfaction")
    ws = _sheet(path)
    assert ws.title == "Satisfaction"
    assert [c.value for c in ws[1]] == list(frame.columns)
    assert all(c.font.b for c in ws[1])
    assert not ws["A2"].font.b
    assert ws.freeze_panes == "A2"
    assert ws.auto_filter.ref == "A1:E4"
    assert ws.max_row == len(frame) + 1


def test_xlsx_numbers_are_exact_and_only_their_display_is_rounded(tmp_path, frame):
    path = tmp_path / "t.xlsx"
    write_table(frame, path, fmt="xlsx", title="Satisfaction")
    ws = _sheet(path)
    mean = _column(ws, "mean")
    assert [c.value for c in mean] == frame["mean"].tolist()
    assert mean[0].value == 3.5833333333333335
    assert all(c.data_type == "n" and c.number_format == "0.00" for c in mean)
    pct = _column(ws, "pct_agree")
    assert pct[0].value == 66.66666666666667 and pct[0].number_format == "0.0"
    n = _column(ws, "n")
    assert [c.value for c in n] == [12, 7, 30] and n[0].number_format == "0"


def test_xlsx_decimals_asked_for_win_over_the_defaults(tmp_path, frame):
    path = tmp_path / "t.xlsx"
    write_table(frame, path, fmt="xlsx", title="Satisfaction", decimals={"mean": 3, "pct_agree": 0})
    ws = _sheet(path)
    assert _column(ws, "mean")[0].number_format == "0.000"
    assert _column(ws, "mean")[0].value == 3.5833333333333335
    assert _column(ws, "pct_agree")[0].number_format == "0"
    assert _column(ws, "pct_agree")[0].value == 66.66666666666667


def test_xlsx_keeps_cyrillic_missing_values_and_booleans(tmp_path, frame):
    path = tmp_path / "t.xlsx"
    write_table(frame, path, fmt="xlsx", title="Satisfaction")
    ws = _sheet(path)
    assert [c.value for c in _column(ws, "unit")] == frame["unit"].tolist()
    assert _column(ws, "unit")[1].value == KYRGYZ
    assert _column(ws, "pct_agree")[2].value is None
    met = _column(ws, "met")
    assert [c.value for c in met] == [True, False, True]
    assert all(c.data_type == "b" for c in met)


def test_xlsx_dates_are_dates(tmp_path):
    frame = pd.DataFrame(
        {
            "wave": pd.to_datetime(["2024-03-01", None]),
            "at": pd.to_datetime(["2024-03-01 09:30", "2024-03-02 10:00"], utc=True),
        }
    )
    path = tmp_path / "t.xlsx"
    write_table(frame, path, fmt="xlsx", title="Waves")
    ws = _sheet(path)
    assert ws["A2"].is_date and ws["A2"].number_format == "yyyy-mm-dd"
    assert ws["A2"].value == pd.Timestamp("2024-03-01").to_pydatetime()
    assert ws["A3"].value is None
    assert ws["B2"].is_date and ws["B2"].value == pd.Timestamp("2024-03-01 09:30").to_pydatetime()


def test_xlsx_column_widths_fit_the_content_and_long_text_wraps(tmp_path):
    long = "Студенттер окутуунун сапатына канааттанышат " * 4
    frame = pd.DataFrame({"code": ["A1", "B2"], "comment": [long, "кыска"]})
    path = tmp_path / "t.xlsx"
    write_table(frame, path, fmt="xlsx", title="Comments")
    ws = _sheet(path)
    assert ws.column_dimensions["A"].width < 15
    assert ws.column_dimensions["B"].width == outputs.MAX_WIDTH
    assert ws["B2"].alignment.wrap_text
    assert not ws["B3"].alignment.wrap_text


@pytest.mark.parametrize(
    ("lang", "sheet", "heading"),
    [
        ("en", "About these columns", ("Column", "Meaning")),
        ("ru", "О столбцах", ("Столбец", "Значение")),
        ("ky", "Мамычалар жөнүндө", ("Мамыча", "Мааниси")),
    ],
)
def test_xlsx_second_sheet_explains_every_column(tmp_path, frame, lang, sheet, heading):
    path = tmp_path / "t.xlsx"
    meanings = {"mean": "Орточо баа (1–5)", "pct_agree": "Макул болгондордун үлүшү, %"}
    write_table(
        frame,
        path,
        fmt="xlsx",
        title="Канааттануу 2024",
        columns={**meanings, "not_in_the_frame": "skipped"},
        lang=lang,
    )
    book = openpyxl.load_workbook(path)
    assert book.sheetnames == ["Канааттануу 2024", sheet]
    rows = list(book[sheet].iter_rows(values_only=True))
    assert rows[0][0] == "Канааттануу 2024"
    assert rows[1] == heading
    assert rows[2:] == [(c, meanings.get(c)) for c in frame.columns]


@pytest.mark.parametrize(
    ("title", "sheet"),
    [
        ("Satisfaction: 2024/25 [spring]?", "Satisfaction 2024-25 (spring)"),
        ("'quoted'", "quoted"),
        ("A very long title that Excel would refuse as a sheet name", None),
        ("", "Table"),
        ("History", "Table"),
        ("About these columns", "Table"),
    ],
)
def test_xlsx_first_sheet_name_follows_excel_rules(tmp_path, frame, title, sheet):
    path = tmp_path / "t.xlsx"
    write_table(frame, path, fmt="xlsx", title=title)
    name = openpyxl.load_workbook(path).sheetnames[0]
    assert len(name) <= 31
    assert not set(name) & set("[]:*?/\\")
    assert name == (sheet or title[:31].rstrip())


# --- formula safety --------------------------------------------------------------------------


@pytest.fixture
def risky() -> pd.DataFrame:
    return pd.DataFrame({"text": [*FORMULAS, "safe"], "value": [-1.5, 2, 3, 4, 5, 6, 7]})


@pytest.mark.parametrize("excel_csv", [False, True])
def test_csv_neutralises_formulas_but_not_negative_numbers(tmp_path, risky, excel_csv):
    path = tmp_path / "t.csv"
    write_table(risky, path, fmt="csv", title="t", excel_csv=excel_csv)
    options = {"sep": ";", "decimal": ",", "encoding": "utf-8-sig"} if excel_csv else {}
    back = pd.read_csv(path, keep_default_na=False, **options)
    assert back["text"].tolist() == [*("'" + f for f in FORMULAS), "safe"]
    assert back["value"].tolist() == [-1.5, 2, 3, 4, 5, 6, 7]
    assert back["value"].dtype == float
    assert risky["text"].iloc[0] == "=1+1"  # the caller's frame is untouched


def test_xlsx_neutralises_formulas_and_keeps_them_text(tmp_path, risky):
    path = tmp_path / "t.xlsx"
    frame = risky.assign(other=["#N/A", "x\x0by", "", "a", "b", "c", "d"])
    write_table(frame, path, fmt="xlsx", title="t")
    ws = _sheet(path)
    text = _column(ws, "text")
    # XML reads a bare carriage return back as a newline, so one is written as such
    expected = [*("'" + f.replace("\r", "\n") for f in FORMULAS), "safe"]
    assert [c.value for c in text] == expected
    assert all(c.data_type == "s" for c in text)
    assert ws["B2"].value == -1.5 and ws["B2"].data_type == "n"
    assert ws["C2"].value == "#N/A" and ws["C2"].data_type == "s"  # text, not an error
    assert ws["C3"].value == "xy"  # a character xlsx cannot hold is dropped


def test_formula_looking_column_names_are_neutralised(tmp_path):
    frame = pd.DataFrame({"=cmd": [1.5]})
    write_table(frame, tmp_path / "t.csv", fmt="csv", title="t")
    write_table(frame, tmp_path / "t.xlsx", fmt="xlsx", title="t")
    assert (tmp_path / "t.csv").read_text(encoding="utf-8").splitlines()[0] == "'=cmd"
    assert _sheet(tmp_path / "t.xlsx")["A1"].value == "'=cmd"


# --- format_from -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "fmt", "expected"),
    [
        (Path("out/report.csv"), None, "csv"),
        (Path("report.json"), None, "json"),
        (Path("report.xlsx"), None, "xlsx"),
        (Path("REPORT.XLSX"), None, "xlsx"),
        (None, None, "table"),
        (Path("report.csv"), "xlsx", "xlsx"),  # --format wins over the extension
        (Path("report.txt"), "json", "json"),
        (None, "csv", "csv"),
        (None, "table", "table"),
        (Path("report.csv"), "CSV", "csv"),
    ],
)
def test_format_from(path, fmt, expected):
    assert format_from(path, fmt) == expected


@pytest.mark.parametrize("name", ["report.txt", "report.xls", "report"])
def test_format_from_an_unknown_extension_raises(name):
    with pytest.raises(UsageError) as info:
        format_from(Path(name), None)
    assert "--out" in info.value.message
    assert ".xlsx" in info.value.expected and "--format" in info.value.expected


def test_format_from_an_unknown_format_raises():
    with pytest.raises(UsageError) as info:
        format_from(Path("report.csv"), "pdf")
    assert "--format" in info.value.message and "'pdf'" in info.value.message
    assert all(f in info.value.expected for f in FORMATS)


@pytest.mark.parametrize(("path", "fmt"), [(Path("r.csv"), "table"), (None, "xlsx")])
def test_format_from_refuses_what_cannot_be_shown_or_written(path, fmt):
    with pytest.raises(UsageError):
        format_from(path, fmt)


def test_write_table_refuses_an_unknown_format(tmp_path, frame):
    with pytest.raises(UsageError):
        write_table(frame, tmp_path / "t.txt", fmt="txt", title="t")
    assert list(tmp_path.iterdir()) == []


# --- atomic writing --------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_missing_folder_raises_a_usage_error_and_leaves_no_file(tmp_path, frame, fmt):
    path = tmp_path / "missing" / f"t.{fmt}"
    with pytest.raises(UsageError) as info:
        write_table(frame, path, fmt=fmt, title="t")
    assert info.value.message == "--out: cannot write the file (No such file or directory)"
    assert info.value.file == str(path)
    assert not path.parent.exists()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("fmt", FORMATS)
def test_no_temporary_file_is_left_after_success(tmp_path, frame, fmt):
    path = tmp_path / f"t.{fmt}"
    write_table(frame, path, fmt=fmt, title="t")
    write_table(frame, path, fmt=fmt, title="t")  # replacing an existing file
    assert [p.name for p in tmp_path.iterdir()] == [path.name]


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary_file(
    tmp_path, frame, fmt, monkeypatch
):
    path = tmp_path / f"t.{fmt}"
    path.write_bytes(b"the previous file")

    def refuse(src, dst):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(outputs.os, "replace", refuse)
    with pytest.raises(UsageError) as info:
        write_table(frame, path, fmt=fmt, title="t")
    assert "(Permission denied)" in info.value.message
    assert path.read_bytes() == b"the previous file"
    assert [p.name for p in tmp_path.iterdir()] == [path.name]


def test_an_error_while_writing_leaves_no_temporary_file(tmp_path, frame):
    with pytest.raises(ValueError):
        write_table(frame, tmp_path / "t.xlsx", fmt="xlsx", title="t", decimals={"mean": -1})
    assert list(tmp_path.iterdir()) == []


# --- import cost -----------------------------------------------------------------------------


def test_importing_the_module_loads_neither_pandas_nor_openpyxl():
    code = (
        "import sys, pipeline.outputs; "
        "print(sorted(m for m in ('pandas', 'openpyxl', 'scipy', 'statsmodels') "
        "if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
