"""Rebuild the small XLSX fixtures in this folder (run from the repository root).

    .venv/bin/python tests/data/exports/make_workbooks.py

The CSV fixtures beside them are written by hand; workbooks are binary, so this
script is their source. The tests read the committed files.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import openpyxl
import xlsxwriter
from openpyxl.utils.datetime import CALENDAR_MAC_1904

HERE = Path(__file__).resolve().parent


def ms_forms_ru() -> None:
    """Microsoft Forms, Russian UI: ID, start and completion times as Excel dates."""
    book = xlsxwriter.Workbook(HERE / "ms_forms_ru.xlsx")
    sheet = book.add_worksheet("Form1")
    when = book.add_format({"num_format": "m/d/yy h:mm:ss"})
    sheet.write_row(
        0,
        0,
        [
            "Идентификатор",
            "Время начала",
            "Время завершения",
            "Адрес электронной почты",
            "Имя",
            "Время последнего изменения",
            "Ваш факультет",
            "Насколько вы довольны преподаванием?",
            "Ваши предложения",
        ],
    )
    rows = [
        (
            1,
            dt.datetime(2024, 3, 1, 10, 15, 30),
            dt.datetime(2024, 3, 1, 10, 21, 2),
            "Экономический",
            5,
            "Больше практики",
        ),
        (
            2,
            dt.datetime(2024, 3, 1, 11, 0, 0),
            dt.datetime(2024, 3, 1, 11, 4, 10),
            "Юридический",
            4,
            None,
        ),
    ]
    for r, (rid, start, end, faculty, score, comment) in enumerate(rows, start=1):
        sheet.write_number(r, 0, rid)
        sheet.write_datetime(r, 1, start, when)
        sheet.write_datetime(r, 2, end, when)
        sheet.write_string(r, 3, "anonymous")
        sheet.write_blank(r, 4, None)
        sheet.write_blank(r, 5, None)
        sheet.write_string(r, 6, faculty)
        sheet.write_number(r, 7, score)
        if comment:
            sheet.write_string(r, 8, comment)
    book.close()


def surveymonkey_ru() -> None:
    """SurveyMonkey XLSX: two header rows, the grid question's text merged over its columns."""
    book = xlsxwriter.Workbook(HERE / "surveymonkey_ru.xlsx")
    sheet = book.add_worksheet("Sheet")
    meta = ["Respondent ID", "Collector ID", "Start Date", "End Date", "IP Address"]
    sheet.write_row(0, 0, [*meta, "Ваш факультет"])
    sheet.merge_range(0, 6, 0, 8, "Оцените, насколько вы согласны:")
    sheet.write_string(0, 9, "Что бы вы улучшили?")
    sheet.write_row(
        1,
        5,
        [
            "Response",
            "Преподаватели объясняют понятно",
            "Задания соответствуют курсу",
            "Обратная связь своевременна",
            "Open-Ended Response",
        ],
    )
    when = book.add_format({"num_format": "mm/dd/yyyy hh:mm:ss AM/PM"})
    sheet.write_number(2, 0, 114000000001)
    sheet.write_number(2, 1, 431000001)
    sheet.write_datetime(2, 2, dt.datetime(2024, 3, 1, 10, 15, 30), when)
    sheet.write_datetime(2, 3, dt.datetime(2024, 3, 1, 10, 21, 2), when)
    sheet.write_row(
        2,
        4,
        [
            "192.0.2.10",
            "Экономический",
            "Полностью согласен",
            "Согласен",
            "Не согласен",
            "Больше практики",
        ],
    )
    book.close()


def merged_header() -> None:
    """A hand-made results sheet: title row, two header rows with merged group titles."""
    book = xlsxwriter.Workbook(HERE / "merged_header.xlsx")
    sheet = book.add_worksheet("Результаты")
    sheet.merge_range("A1:G1", "Опрос студентов, весна 2024")
    sheet.merge_range("A2:A3", "ID")
    sheet.merge_range("B2:D2", "Преподавание")
    sheet.merge_range("E2:F2", "Инфраструктура")
    sheet.merge_range("G2:G3", "Комментарий")
    sheet.write_row("B3", ["Понятность", "Задания", "Обратная связь", "Библиотека", "Аудитории"])
    sheet.write_row("A4", [1, 5, 4, 4, 3, 2, "Мало розеток"])
    sheet.write_row("A5", [2, 4, None, 5, 4, 4])
    # row 6 left blank on purpose
    sheet.write_row("A7", [3, 3, 3, 2, None, 5, "Жакшы"])
    book.close()


def dates_1904() -> None:
    """A workbook in the 1904 date system (Excel for Mac), written by openpyxl."""
    book = openpyxl.Workbook()
    book.epoch = CALENDAR_MAC_1904
    sheet = book.active
    sheet.title = "Ответы"
    sheet.append(["ID", "Start time", "Completion time", "Дата рождения", "Балл"])
    sheet.append(
        [
            1,
            dt.datetime(2024, 3, 1, 10, 15, 30),
            dt.datetime(2024, 3, 1, 10, 21, 2),
            dt.date(2003, 5, 17),
            4.5,
        ]
    )
    sheet.append(
        [
            2,
            dt.datetime(2023, 12, 31, 23, 59, 59),
            dt.datetime(2024, 1, 1, 0, 5, 0),
            dt.date(1999, 1, 2),
            5,
        ]
    )
    for row in sheet.iter_rows(min_row=2, max_col=3):
        for cell in row[1:]:
            cell.number_format = "yyyy-mm-dd hh:mm:ss"
    for (cell,) in sheet.iter_rows(min_row=2, min_col=4, max_col=4):
        cell.number_format = "yyyy-mm-dd"
    book.save(HERE / "dates_1904.xlsx")


def kobo_labels() -> None:
    """KoboToolbox XLSX export with labels as headers and the usual meta columns."""
    book = xlsxwriter.Workbook(HERE / "kobo_labels.xlsx")
    sheet = book.add_worksheet("Студенттик сурамжылоо")
    sheet.write_row(
        0,
        0,
        [
            "start",
            "end",
            "Факультетиңиз",
            "Окутуунун сапаты",
            "Кайсы кызматтарды колдоносуз?",
            "Кайсы кызматтарды колдоносуз?/Китепкана",
            "Кайсы кызматтарды колдоносуз?/Ашкана",
            "_id",
            "_uuid",
            "_submission_time",
            "_index",
        ],
    )
    sheet.write_row(
        1,
        0,
        [
            "2024-03-01T10:15:30.000+06:00",
            "2024-03-01T10:21:02.000+06:00",
            "Экономика",
            "Өтө жакшы",
            "Китепкана Ашкана",
            1,
            1,
            101,
            "6f1c2a9e-0001",
            "2024-03-01T04:21:05",
            1,
        ],
    )
    book.close()


def truncated() -> None:
    """The first half of a valid workbook, as an interrupted download leaves it."""
    data = (HERE / "ms_forms_ru.xlsx").read_bytes()
    (HERE / "truncated.xlsx").write_bytes(data[: len(data) // 2])


if __name__ == "__main__":
    ms_forms_ru()
    surveymonkey_ru()
    merged_header()
    dates_1904()
    kobo_labels()
    truncated()
