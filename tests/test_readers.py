"""open_export: the Export it returns, dialects from realistic fixtures, and errors."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline.errors import InputFileError
from pipeline.readers import DIALECT_NAMES, SOURCE_ROW, Export, open_export

EXPORTS = Path(__file__).resolve().parent / "data" / "exports"


def test_open_export_returns_provenance_and_layout_of_a_csv():
    path = EXPORTS / "google_forms_ky.csv"
    export = open_export(path)
    assert isinstance(export, Export)
    assert export.path == path
    assert export.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert (export.kind, export.encoding, export.delimiter, export.sheet) == (
        "csv",
        "utf-8",
        ",",
        None,
    )
    assert export.dialect == "google_forms"
    assert export.header_rows == 1
    assert export.columns[:3] == ["Убакыт белгиси", "Электрондук почта дареги", "Факультетиңиз"]
    assert export.column_labels is None and export.column_ids is None


def test_chunks_hold_source_row_then_columns_as_strings_with_missing_for_empty_cells():
    export = open_export(EXPORTS / "google_forms_ky.csv")
    frame = export.read_all()
    assert list(frame.columns) == [SOURCE_ROW, *export.columns]
    assert frame[SOURCE_ROW].dtype == "int64"
    # strings: object columns (pandas' parser, XLSX) or categoricals of str (Arrow)
    for c in export.columns:
        dtype = frame[c].dtype
        assert dtype == np.dtype(object) or isinstance(dtype, pd.CategoricalDtype), (c, dtype)
        assert all(isinstance(v, str) for v in frame[c].dropna()), c
    assert frame.loc[1, "Электрондук почта дареги"] is not None
    assert pd.isna(frame.loc[1, "Электрондук почта дареги"])
    assert frame.loc[0, "Баалаңыз [Китепкана]"] == "4"
    assert frame.loc[1, "Сунуштарыңыз"] == "Китепканада орун аз,\nокуу залы кичинекей"
    # the multi-line cell is one spreadsheet row: the next record is row 4
    assert frame[SOURCE_ROW].tolist() == [2, 3, 4]


def test_read_all_equals_the_chunks_concatenated_and_chunks_can_be_read_twice():
    export = open_export(EXPORTS / "limesurvey.csv", chunk_rows=1)
    chunks = list(export.iter_chunks())
    assert [len(c) for c in chunks] == [1, 1, 1]
    again = pd.concat(list(export.iter_chunks()), ignore_index=True)
    pd.testing.assert_frame_equal(export.read_all(), again)


@pytest.mark.parametrize(
    ("name", "dialect", "kind", "delimiter", "header_rows", "n_rows"),
    [
        ("google_forms_en.csv", "google_forms", "csv", ",", 1, 2),
        ("google_forms_ru.csv", "google_forms", "csv", ",", 1, 2),
        ("google_forms_ky.csv", "google_forms", "csv", ",", 1, 3),
        ("ms_forms_ru.xlsx", "ms_forms", "xlsx", None, 1, 2),
        ("kobo_semicolon.csv", "kobo", "csv", ";", 1, 2),
        ("kobo_labels.xlsx", "kobo", "xlsx", None, 1, 1),
        ("limesurvey.csv", "limesurvey", "csv", ",", 1, 3),
        ("surveymonkey_ru.csv", "surveymonkey", "csv", ",", 2, 2),
        ("surveymonkey_ru.xlsx", "surveymonkey", "xlsx", None, 2, 1),
        ("qualtrics_ru.csv", "qualtrics", "csv", ",", 3, 2),
        ("plain_tab.tsv", "plain", "csv", "\t", 1, 2),
        ("merged_header.xlsx", "plain", "xlsx", None, 3, 4),
    ],
)
def test_each_dialect_is_detected_from_a_realistic_export(
    name, dialect, kind, delimiter, header_rows, n_rows
):
    export = open_export(EXPORTS / name)
    assert export.dialect == dialect
    assert export.dialect in DIALECT_NAMES
    assert export.kind == kind
    assert export.delimiter == delimiter
    assert export.header_rows == header_rows
    assert len(export.read_all()) == n_rows


def test_surveymonkey_two_header_rows_are_flattened_question_then_option():
    export = open_export(EXPORTS / "surveymonkey_ru.csv")
    assert export.columns == [
        "Respondent ID",
        "Collector ID",
        "Start Date",
        "End Date",
        "IP Address",
        "Email Address",
        "First Name",
        "Last Name",
        "Custom Data 1",
        "Ваш факультет",
        "Оцените, насколько вы согласны: | Преподаватели объясняют понятно",
        "Оцените, насколько вы согласны: | Задания соответствуют курсу",
        "Оцените, насколько вы согласны: | Обратная связь своевременна",
        "Что бы вы улучшили?",
    ]
    frame = export.read_all()
    assert frame[SOURCE_ROW].tolist() == [3, 4]  # row 3 holds a two-line answer, still one row
    assert frame.loc[0, "Что бы вы улучшили?"] == "Больше практики,\nменьше теории"
    assert frame.loc[1, "Оцените, насколько вы согласны: | Задания соответствуют курсу"] is not None


def test_surveymonkey_xlsx_merged_question_gives_the_same_names_as_csv():
    csv_columns = open_export(EXPORTS / "surveymonkey_ru.csv").columns
    xlsx = open_export(EXPORTS / "surveymonkey_ru.xlsx")
    grid = [c for c in xlsx.columns if c.startswith("Оцените")]
    assert grid == [c for c in csv_columns if c.startswith("Оцените")]
    frame = xlsx.read_all()
    assert frame.loc[0, "Respondent ID"] == "114000000001"
    assert frame.loc[0, "Start Date"] == "2024-03-01T10:15:30"


def test_qualtrics_code_row_names_columns_and_keeps_question_texts_and_import_ids():
    export = open_export(EXPORTS / "qualtrics_ru.csv")
    assert export.encoding == "utf-8-sig"
    assert export.columns[:3] == ["StartDate", "EndDate", "Status"]
    assert export.columns[-4:] == ["Q1", "Q2_1", "Q2_2", "Q3"]
    assert export.column_labels is not None and export.column_ids is not None
    assert len(export.column_labels) == len(export.columns) == len(export.column_ids)
    assert export.column_labels[-3] == "Оцените утверждения:\nПреподаватели объясняют понятно"
    assert export.column_ids[:2] == ["startDate", "endDate"]
    assert export.column_ids[-4:] == ["QID1", "QID2_1", "QID2_2", "QID3_TEXT"]
    frame = export.read_all()
    # three header rows, the second with a line break inside a quoted cell
    assert frame[SOURCE_ROW].tolist() == [4, 5]
    assert frame.loc[0, "ResponseId"] == "R_1a2B3c4D5e6F7g8"
    assert frame.loc[0, "Q1"] == "Экономический"


def test_kobo_group_paths_and_select_multiple_columns_are_kept_as_named():
    export = open_export(EXPORTS / "kobo_semicolon.csv")
    assert "grp_teaching/te_q01" in export.columns
    assert "grp_services/services_used" in export.columns
    assert "grp_services/services_used/library" in export.columns
    frame = export.read_all()
    assert frame["grp_services/comment"].tolist() == ["Китепкана жакшы", "Жатакана; суу жок"]
    assert frame["grp_services/services_used/dormitory"].tolist() == ["0", "1"]


def test_limesurvey_codes_and_answer_codes_are_read_verbatim():
    frame = open_export(EXPORTS / "limesurvey.csv").read_all()
    assert frame["G2Q1[SQ001]"].tolist() == ["A5", "A3", "A1"]
    assert pd.isna(frame.loc[1, "submitdate"])


def test_dialect_override_wins_over_detection():
    export = open_export(EXPORTS / "surveymonkey_ru.csv", dialect="plain")
    assert export.dialect == "plain"
    assert export.header_rows == 1
    # the second header row is now data
    assert export.read_all()[SOURCE_ROW].tolist()[0] == 2


def test_unknown_dialect_name_is_an_input_file_error():
    with pytest.raises(InputFileError, match="Unknown export dialect") as caught:
        open_export(EXPORTS / "limesurvey.csv", dialect="typeform")
    assert "google_forms" in caught.value.expected


def test_source_rows_count_multiline_cells_once_and_blank_lines_as_rows():
    frame = open_export(EXPORTS / "rows_multiline.csv").read_all()
    # row 3 is blank, row 6 is ",,": between data rows, each is a row with no answer
    # (nothing is dropped silently); numbering kept
    assert frame[SOURCE_ROW].tolist() == [2, 3, 4, 5, 6, 7]
    assert frame["id"].dropna().tolist() == ["1", "2", "3", "4"]
    assert frame.loc[[1, 4]].drop(columns=SOURCE_ROW).isna().all().all()
    assert frame.loc[0, "comment"] == "first line\nsecond line\nthird line"
    assert frame.loc[3, "comment"] == 'quoted, with comma and "quotes"'
    assert pd.isna(frame.loc[3, "score"])


# --- errors ---------------------------------------------------------------------------


def _error(path: Path, **kwargs) -> InputFileError:
    with pytest.raises(InputFileError) as caught:
        open_export(path, **kwargs).read_all()
    assert caught.value.file == str(path)
    return caught.value


def test_empty_file_is_reported_as_empty():
    error = _error(EXPORTS / "empty.csv")
    assert "empty" in error.message


def test_header_only_file_names_the_first_missing_data_row():
    error = _error(EXPORTS / "header_only.csv")
    assert "no responses" in error.message
    assert error.row == 2


def test_ragged_row_is_named_with_its_row_and_first_extra_column():
    error = _error(EXPORTS / "ragged.csv")
    assert error.row == 4
    assert error.column == "D"
    assert "4 fields" in error.message and "3 columns" in error.message


def test_duplicate_column_names_are_named_with_their_columns():
    error = _error(EXPORTS / "duplicate_columns.csv")
    assert error.column == "Your faculty"
    assert "columns B, D" in error.message


def test_binary_garbage_is_refused(tmp_path):
    path = tmp_path / "garbage.csv"
    path.write_bytes(bytes(range(256)) * 8)
    error = _error(path)
    assert error.expected


def test_missing_file_is_an_input_file_error(tmp_path):
    error = _error(tmp_path / "nope.csv")
    assert "does not exist" in error.message


def test_zipped_google_forms_csv_says_to_extract_it(tmp_path):
    path = tmp_path / "responses.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.write(EXPORTS / "google_forms_en.csv", "Student survey.csv")
    error = _error(path)
    assert "Student survey.csv" in error.message


def test_old_xls_and_html_disguised_as_export_are_refused(tmp_path):
    xls = tmp_path / "old.xls"
    xls.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(600))
    assert ".xls" in _error(xls).message
    html = tmp_path / "export.xls"
    html.write_text("<html><body><table><tr><td>1</td></tr></table></body></html>")
    assert "web page" in _error(html).message


def test_xlsx_name_on_a_text_file_is_refused(tmp_path):
    path = tmp_path / "export.xlsx"
    path.write_text("a,b\n1,2\n")
    assert "not an Excel workbook" in _error(path).message


def test_sheet_argument_on_a_csv_is_refused():
    with pytest.raises(InputFileError, match="sheet="):
        open_export(EXPORTS / "limesurvey.csv", sheet="Sheet1")


def test_error_messages_render_file_row_and_expectation():
    with pytest.raises(InputFileError) as caught:
        open_export(EXPORTS / "ragged.csv")
    text = str(caught.value)
    assert "ragged.csv" in text and "row 4" in text and "expected" in text
    assert caught.value.as_dict()["error"] == "input_file"
