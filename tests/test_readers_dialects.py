"""Dialect detection rules and header flattening, on header rows alone."""

from __future__ import annotations

import pytest

from pipeline.errors import InputFileError
from pipeline.readers.dialects import Dialect, detect_dialect, header_row_count, import_id
from pipeline.readers.headers import column_letter, flatten_header

QUALTRICS_CODES = [
    "StartDate",
    "EndDate",
    "Status",
    "IPAddress",
    "Progress",
    "Duration (in seconds)",
    "Finished",
    "RecordedDate",
    "ResponseId",
    "Q1_1",
]


@pytest.mark.parametrize(
    ("first_row", "dialect"),
    [
        (["Timestamp", "Email Address", "Q [Row]"], Dialect.GOOGLE_FORMS),
        (["Отметка времени", "Адрес электронной почты", "Вопрос"], Dialect.GOOGLE_FORMS),
        (["Убакыт белгиси", "Суроо"], Dialect.GOOGLE_FORMS),
        (["ID", "Start time", "Completion time", "Email", "Name", "Q1"], Dialect.MS_FORMS),
        (
            ["Идентификатор", "Время начала", "Время завершения", "Адрес электронной почты"],
            Dialect.MS_FORMS,
        ),
        (["start", "end", "grp_teaching/te_q01", "te_q02"], Dialect.KOBO),
        (["Факультет", "Оценка", "_id", "_uuid", "_submission_time"], Dialect.KOBO),
        (
            ["id", "submitdate", "lastpage", "startlanguage", "seed", "G2Q1[SQ001]"],
            Dialect.LIMESURVEY,
        ),
        (
            ["Response ID", "Date submitted", "Last page", "Start language", "Q1"],
            Dialect.LIMESURVEY,
        ),
        (["Respondent ID", "Collector ID", "Start Date", "End Date", "Q"], Dialect.SURVEYMONKEY),
        (QUALTRICS_CODES, Dialect.QUALTRICS),
        (["id", "faculty", "q01"], Dialect.PLAIN),
        (["Time stamp", "q"], Dialect.PLAIN),
    ],
)
def test_detect_dialect_from_the_first_header_row(first_row, dialect):
    assert detect_dialect([first_row]) is dialect


def test_qualtrics_header_rows_follow_what_rows_two_and_three_hold():
    labels = ["Start Date", "End Date", "Response Type", "IP Address", "Progress"]
    ids = ['{"ImportId":"startDate","timeZone":"Asia/Bishkek"}', '{"ImportId":"endDate"}']
    assert header_row_count(Dialect.QUALTRICS, [QUALTRICS_CODES, labels, ids]) == 3
    assert header_row_count(Dialect.QUALTRICS, [QUALTRICS_CODES, labels, ["2024-03-01"]]) == 2
    assert header_row_count(Dialect.QUALTRICS, [QUALTRICS_CODES, ["2024-03-01"]]) == 1
    assert header_row_count(Dialect.SURVEYMONKEY, [["Respondent ID"]]) == 2
    assert header_row_count(Dialect.GOOGLE_FORMS, [["Timestamp"]]) == 1


def test_import_id_reads_the_json_cell_and_ignores_anything_else():
    assert import_id('{"ImportId":"QID2_1"}') == "QID2_1"
    assert import_id("QID2_1") is None
    assert import_id('{"ImportId":') is None
    assert import_id("[1]") is None


def test_surveymonkey_grid_title_is_carried_right_over_its_sub_options():
    rows = [
        ["Respondent ID", "Оцените:", "", "", "Комментарий"],
        ["", "Лекции", "Семинары", "Other (please specify)", "Open-Ended Response"],
    ]
    header = flatten_header(rows, Dialect.SURVEYMONKEY, width=5)
    assert header.columns == [
        "Respondent ID",
        "Оцените: | Лекции",
        "Оцените: | Семинары",
        "Оцените: | Other (please specify)",
        "Комментарий",
    ]


def test_generic_two_row_header_uses_only_what_is_filled():
    rows = [["ID", "Group", "Group", ""], ["ID", "a", "b", "solo"]]
    assert flatten_header(rows, Dialect.PLAIN, width=4).columns == [
        "ID",
        "Group | a",
        "Group | b",
        "solo",
    ]


def test_header_cells_are_stripped_and_short_rows_padded():
    header = flatten_header([[" a ", "b\u00a0"]], Dialect.PLAIN, width=3, first_column=2)
    assert header.columns == ["a", "b", "(column E)"]


def test_duplicates_after_flattening_are_an_error_naming_them():
    rows = [["Q", "Q"], ["Response", ""]]
    with pytest.raises(InputFileError) as caught:
        flatten_header(rows, Dialect.SURVEYMONKEY, width=2, file="x.csv", row=1)
    assert caught.value.column == "Q"
    assert "columns A, B" in caught.value.message


@pytest.mark.parametrize(
    ("index", "letter"), [(0, "A"), (25, "Z"), (26, "AA"), (27, "AB"), (701, "ZZ"), (702, "AAA")]
)
def test_column_letter_matches_spreadsheet_letters(index, letter):
    assert column_letter(index) == letter
