"""XLSX exports via calamine: merged headers, dates (1900 and 1904), cells, damage."""

from __future__ import annotations

import datetime as dt
import re
import zipfile
from pathlib import Path

import pandas as pd
import pytest
import xlsxwriter

from pipeline.errors import InputFileError
from pipeline.readers import open_export
from pipeline.readers.xlsxfile import cell_text

EXPORTS = Path(__file__).resolve().parent / "data" / "exports"


def test_merged_group_titles_make_a_two_row_header_and_the_title_row_is_skipped():
    export = open_export(EXPORTS / "merged_header.xlsx")
    assert export.sheet == "Результаты"
    assert export.header_rows == 3  # title row, group row, item row
    assert export.columns == [
        "ID",
        "Преподавание | Понятность",
        "Преподавание | Задания",
        "Преподавание | Обратная связь",
        "Инфраструктура | Библиотека",
        "Инфраструктура | Аудитории",
        "Комментарий",
    ]
    frame = export.read_all()
    # row 6 is empty, between data rows: a row with no answer, kept
    assert frame["source_row"].tolist() == [4, 5, 6, 7]
    assert frame["Преподавание | Понятность"].tolist()[:2] == ["5", "4"]
    assert frame.loc[2].drop("source_row").isna().all()
    assert frame["Преподавание | Понятность"].tolist()[3] == "3"
    assert pd.isna(frame.loc[1, "Преподавание | Задания"])
    assert frame.loc[3, "Комментарий"] == "Жакшы"


def test_1904_workbook_fixture_really_uses_the_1904_date_system():
    workbook_xml = zipfile.ZipFile(EXPORTS / "dates_1904.xlsx").read("xl/workbook.xml")
    assert b'date1904="1"' in workbook_xml or b"date1904='1'" in workbook_xml


def test_1904_dates_come_out_as_the_dates_that_were_written():
    frame = open_export(EXPORTS / "dates_1904.xlsx").read_all()
    assert frame["Start time"].tolist() == ["2024-03-01T10:15:30", "2023-12-31T23:59:59"]
    assert frame["Completion time"].tolist() == ["2024-03-01T10:21:02", "2024-01-01T00:05:00"]
    assert frame["Дата рождения"].tolist() == ["2003-05-17", "1999-01-02"]
    assert frame["Балл"].tolist() == ["4.5", "5"]


@pytest.mark.parametrize("date_1904", [False, True])
def test_xlsxwriter_dates_read_back_in_both_date_systems(tmp_path, date_1904):
    path = tmp_path / "dates.xlsx"
    book = xlsxwriter.Workbook(path, {"date_1904": date_1904})
    sheet = book.add_worksheet()
    stamp = book.add_format({"num_format": "yyyy-mm-dd hh:mm"})
    sheet.write_row(0, 0, ["ID", "Start time", "Completion time"])
    sheet.write_number(1, 0, 7)
    sheet.write_datetime(1, 1, dt.datetime(2024, 2, 29, 8, 30), stamp)
    sheet.write_datetime(1, 2, dt.datetime(1904, 1, 2), stamp)
    book.close()
    frame = open_export(path).read_all()
    assert frame.loc[0, "Start time"] == "2024-02-29T08:30:00"
    # calamine hands back a date for a date-time at midnight: a date-only ISO string
    assert frame.loc[0, "Completion time"] == "1904-01-02"


def test_ms_forms_times_are_iso_strings_and_ids_whole_numbers():
    export = open_export(EXPORTS / "ms_forms_ru.xlsx")
    assert export.sheet == "Form1"
    frame = export.read_all()
    assert frame["Идентификатор"].tolist() == ["1", "2"]
    assert frame["Время начала"].tolist() == ["2024-03-01T10:15:30", "2024-03-01T11:00:00"]
    assert frame["Имя"].isna().all()


def test_truncated_workbook_is_an_input_file_error():
    with pytest.raises(InputFileError) as caught:
        open_export(EXPORTS / "truncated.xlsx")
    assert "truncated" in caught.value.message
    assert caught.value.file.endswith("truncated.xlsx")


def test_damaged_sheet_xml_is_an_input_file_error(tmp_path):
    source = zipfile.ZipFile(EXPORTS / "ms_forms_ru.xlsx")
    path = tmp_path / "damaged.xlsx"
    with zipfile.ZipFile(path, "w") as out:
        for item in source.infolist():
            data = source.read(item.filename)
            if item.filename == "xl/worksheets/sheet1.xml":
                data = data[: len(data) // 2]
            out.writestr(item.filename, data)
    with pytest.raises(InputFileError):
        open_export(path).read_all()


def _with_far_cell(path: Path, dimension: bytes) -> Path:
    source = zipfile.ZipFile(EXPORTS / "ms_forms_ru.xlsx")
    with zipfile.ZipFile(path, "w") as out:
        for item in source.infolist():
            data = source.read(item.filename)
            if item.filename == "xl/worksheets/sheet1.xml":
                data = re.sub(rb'<dimension ref="[^"]*"/>', dimension, data)
                data = data.replace(b'<c r="A2"', b'<c r="XFD1048576"', 1)
            out.writestr(item.filename, data)
    return path


@pytest.mark.parametrize("dimension", [b'<dimension ref="A1:XFD1048576"/>', b""])
def test_sheet_spanning_a_stray_far_cell_is_refused_before_calamine_allocates_it(
    tmp_path, dimension
):
    # calamine would try to allocate 1,048,576 × 16,384 cells and abort the process
    path = _with_far_cell(tmp_path / "far.xlsx", dimension)
    with pytest.raises(InputFileError) as caught:
        open_export(path)
    assert "1,048,576 rows × 16,384 columns" in caught.value.message


def _book(path: Path, sheets: dict[str, list[tuple[str, list]]]) -> Path:
    book = xlsxwriter.Workbook(path)
    for name, cells in sheets.items():
        sheet = book.add_worksheet(name)
        for where, values in cells:
            sheet.write_row(where, values)
    book.close()
    return path


def test_sheet_is_chosen_by_name_or_index_and_unknown_sheets_are_listed(tmp_path):
    path = _book(
        tmp_path / "two.xlsx",
        {
            "Сводка": [("A1", ["note"]), ("A2", ["summary only"])],
            "Ответы": [("A1", ["id", "q1"]), ("A2", [1, 5])],
        },
    )
    assert open_export(path).sheet == "Сводка"
    assert open_export(path, sheet="Ответы").read_all()["q1"].tolist() == ["5"]
    assert open_export(path, sheet=1).sheet == "Ответы"
    with pytest.raises(InputFileError) as caught:
        open_export(path, sheet="Лист3")
    assert "'Ответы'" in caught.value.expected
    with pytest.raises(InputFileError):
        open_export(path, sheet=5)


def test_data_away_from_a1_keeps_spreadsheet_rows_and_letters(tmp_path):
    path = _book(tmp_path / "offset.xlsx", {"S": [("C3", ["id", "", "q"]), ("C4", [1, "x", 2])]})
    export = open_export(path)
    assert export.header_rows == 3
    assert export.columns == ["id", "(column D)", "q"]
    assert export.read_all()["source_row"].tolist() == [4]


def test_value_right_of_the_header_names_row_and_column(tmp_path):
    path = _book(
        tmp_path / "extra.xlsx",
        {"S": [("A1", ["id", "q"]), ("A2", [1, 2]), ("A3", [2, 3, "stray"])]},
    )
    with pytest.raises(InputFileError) as caught:
        open_export(path).read_all()
    assert (caught.value.row, caught.value.column) == (3, "C")


def test_header_only_and_empty_sheets_are_refused(tmp_path):
    with pytest.raises(InputFileError, match="no responses"):
        open_export(_book(tmp_path / "h.xlsx", {"S": [("A1", ["id", "q"])]}))
    with pytest.raises(InputFileError, match="empty"):
        open_export(_book(tmp_path / "e.xlsx", {"S": []}))


def test_duplicate_headers_in_a_workbook_are_named(tmp_path):
    path = _book(tmp_path / "dup.xlsx", {"S": [("A1", ["id", "q", "q"]), ("A2", [1, 2, 3])]})
    with pytest.raises(InputFileError) as caught:
        open_export(path)
    assert caught.value.column == "q"


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("Жакшы", "Жакшы"),
        (5.0, "5"),
        (3.25, "3.25"),
        (123456789012.0, "123456789012"),
        (True, "TRUE"),
        (dt.datetime(2024, 3, 1, 10, 15, 30), "2024-03-01T10:15:30"),
        (dt.date(2024, 3, 1), "2024-03-01"),
        (dt.time(10, 15), "10:15:00"),
        (dt.timedelta(hours=1, minutes=2, seconds=3), "1:02:03"),
    ],
)
def test_cell_text_shows_values_as_a_spreadsheet_does(value, text):
    assert cell_text(value) == text


def test_cell_text_of_empty_string_is_missing():
    assert pd.isna(cell_text(""))
