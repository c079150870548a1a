"""Render coded responses as the exports offices really receive, streaming to disk.

Each sink owns one output file and writes chunk after chunk, so memory stays
bounded whatever the number of rows. Dialects:

``google_forms``  CSV UTF-8 ``,``; ``Timestamp``/``Отметка времени``; question text as
                  headers; grids as ``Group [Row]``; answers as text in the form's language.
``ms_forms``      XLSX; ``ID, Start time, Completion time, Email, Name`` then question text.
``kobo``          XLSX; XML names with group paths (``grp_x/code``), choice names, ``_uuid``…
``limesurvey``    CSV UTF-8 ``,``; ``id, submitdate, …`` then codes ``G1Q1[SQ001]``; ``A1``..
``plain_cp1251``  CSV Windows-1251 ``;``; item codes as headers, numeric answers,
                  Russian text (typed from paper in Excel).
"""

from __future__ import annotations

import csv
import io
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import xlsxwriter

from pipeline.instruments import NOT_APPLICABLE_CODE, Field, Instrument, Role

#: Code written into a frame to plant an answer outside the scale.
OUT_OF_RANGE = 99
#: Programme code planted as an unknown programme.
UNKNOWN_PROGRAMME = "P-UNKNOWN"

DIALECTS = ("google_forms", "ms_forms", "kobo", "limesurvey", "plain_cp1251")
EXTENSIONS = {
    "google_forms": "csv",
    "ms_forms": "xlsx",
    "kobo": "xlsx",
    "limesurvey": "csv",
    "plain_cp1251": "csv",
}
TIMESTAMP_HEADER = {"ky": "Timestamp", "ru": "Отметка времени"}
EMAIL_HEADER = {"ky": "Email Address", "ru": "Адрес электронной почты"}
#: Comment bank; Russian ones stay within Windows-1251.
COMMENTS = {
    "ky": [
        "Жатаканада Wi-Fi начар иштейт, кечинде такыр кошулбайт.",
        "Китепканада адистик боюнча китептер жетишсиз.",
        "Окутуучулар жакшы, бирок практикалык сабактар аз.",
        "Компьютер класстары эски, программалар жаңыртылышы керек.",
        "Деканаттан маалымат убагында келбейт.",
        "Сабактардын жадыбалы көп өзгөрөт.",
        "Карьера борбору жөнүндө эч нерсе уккан эмесмин.",
        "Баары жакшы, рахмат!",
    ],
    "ru": [
        "В общежитии плохой интернет, вечером невозможно работать.",
        "Хотелось бы больше практических занятий.",
        "Расписание часто меняется без предупреждения.",
        "В библиотеке не хватает учебников по специальности.",
        "Преподаватели внимательные, спасибо.",
        "Нужно обновить компьютеры в аудиториях.",
        "Информация от администрации приходит с опозданием.",
        "Всё устраивает.",
    ],
}
UNKNOWN_PROGRAMME_NAME = {"ky": "Белгисиз программа", "ru": "Неизвестная программа"}


@dataclass
class Lookups:
    """Text for codes that live in the org registry (programme, unit, discipline)."""

    names: dict[str, dict[str, str]]  # code -> {lang: name}

    def name(self, code: str, lang: str) -> str:
        """A form's dropdown entry: the name and, since names repeat across institutes,
        the code in brackets (``Математика (KKHPI-MATH-B)``)."""
        if code == UNKNOWN_PROGRAMME:
            return UNKNOWN_PROGRAMME_NAME.get(lang, code)
        return f"{self.names.get(code, {}).get(lang, code)} ({code})"


def _header(f: Field, lang: str, dialect: str) -> str:
    if dialect == "kobo":
        return f"{f.group}/{f.code}" if f.group else f.code
    if dialect == "limesurvey":
        return f.aliases[0] if f.aliases else f.code
    if dialect == "plain_cp1251":
        return f.code
    if dialect == "google_forms" and f.role is Role.ITEM and f.group:
        return f"{f.group_labels.get(lang) or f.group} [{f.label(lang)}]"
    return f.label(lang)


def data_fields(inst: Instrument) -> list[Field]:
    return inst.by_role(Role.CONTEXT, Role.ITEM, Role.OUTCOME, Role.COMMENT)


@dataclass
class Sink:
    """One output file of one dialect and language."""

    path: Path
    dialect: str
    lang: str
    inst: Instrument
    lookups: Lookups
    with_email: bool = False
    rows: int = 0
    faults: list[dict] = field(default_factory=list)
    _fh: object = None
    _book: object = None
    _sheet: object = None
    _fmt: object = None

    @property
    def encoding(self) -> str:
        return "cp1251" if self.dialect == "plain_cp1251" else "utf-8"

    @property
    def delimiter(self) -> str | None:
        if self.dialect == "plain_cp1251":
            return ";"
        return "," if EXTENSIONS[self.dialect] == "csv" else None

    header_rows = 1

    # ------------------------------------------------------------- headers
    def columns(self) -> list[str]:
        fields = [_header(f, self.lang, self.dialect) for f in data_fields(self.inst)]
        d = self.dialect
        if d == "google_forms":
            meta = [TIMESTAMP_HEADER[self.lang]]
            if self.with_email:
                meta.append(EMAIL_HEADER[self.lang])
            return meta + fields
        if d == "ms_forms":
            return ["ID", "Start time", "Completion time", "Email", "Name"] + fields
        if d == "kobo":
            return (
                ["start", "end"]
                + fields
                + [
                    "_id",
                    "_uuid",
                    "_submission_time",
                    "_validation_status",
                    "_status",
                    "_submitted_by",
                    "__version__",
                    "_index",
                ]
            )
        if d == "limesurvey":
            return [
                "id",
                "submitdate",
                "lastpage",
                "startlanguage",
                "seed",
                "startdate",
                "datestamp",
            ] + fields
        return ["Дата"] + fields

    def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        cols = self.columns()
        if EXTENSIONS[self.dialect] == "csv":
            self._fh = open(self.path, "w", encoding=self.encoding, newline="")  # noqa: SIM115
            csv.writer(self._fh, delimiter=self.delimiter, lineterminator="\r\n").writerow(cols)
        else:
            self._book = xlsxwriter.Workbook(str(self.path), {"constant_memory": True})
            # a fixed creation date keeps the bytes identical for a seed
            self._book.set_properties({"created": datetime(2020, 1, 1), "author": "sapat synth"})
            self._sheet = self._book.add_worksheet(
                "Sheet1" if self.dialect == "ms_forms" else self.inst.id[:31]
            )
            self._fmt = self._book.add_format({"num_format": "m/d/yy h:mm:ss"})
            self._sheet.write_row(0, 0, cols)

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
        if self._book is not None:
            self._book.close()

    # ------------------------------------------------------------- values
    @property
    def fixed_language(self) -> bool:
        """Forms written in one language (Kobo and LimeSurvey mix languages per row)."""
        return self.dialect in ("google_forms", "ms_forms", "plain_cp1251")

    def _render_field(self, f: Field, values: pd.Series, langs_of_rows: list[str]) -> list:
        """Vectorised rendering of one field's coded values to cell values."""
        d, lang = self.dialect, self.lang
        scale = self.inst.scale_of(f)
        if f.role is Role.COMMENT:  # indices into COMMENTS, in the file's or row's language
            langs = [lang] * len(values) if self.fixed_language else langs_of_rows
            return [
                "" if pd.isna(k) else COMMENTS[lg][int(k)]
                for k, lg in zip(values.to_numpy(), langs, strict=True)
            ]
        if f.context in ("programme", "unit", "discipline", "teacher") and scale is None:
            codes = values.fillna("").astype(str)
            if d in ("google_forms", "ms_forms") and f.context in ("programme", "unit"):
                return [self.lookups.name(c, lang) if c else "" for c in codes]
            return codes.tolist()
        if scale is None:  # integer fields
            return ["" if pd.isna(v) else str(int(v)) for v in values]
        # choice lists: build a code -> text table once
        table: dict[int, str] = {}
        for pos, c in enumerate(scale.choices, start=1):
            if d in ("google_forms", "ms_forms"):
                text = c.label(lang)
            elif d == "kobo":
                text = c.name
            elif d == "limesurvey":
                text = f"A{pos}"
            else:  # plain: numbers for ordinal scales, Russian words otherwise
                text = (
                    c.name
                    if scale.kind == "ordinal" and c.code != NOT_APPLICABLE_CODE
                    else (c.label("ru"))
                )
            table[c.code] = text
        bad = "A7" if d == "limesurvey" else "7"
        out = []
        for v in values.to_numpy():
            if pd.isna(v):
                out.append("")
            elif v == OUT_OF_RANGE:
                out.append(bad)
            else:
                out.append(table[int(v)])
        return out

    def write(self, frame: pd.DataFrame) -> None:
        """Write one chunk; rows carrying ``_fault`` are recorded with their row number."""
        if frame.empty:
            return
        n = len(frame)
        fields = data_fields(self.inst)
        langs = frame["_lang"].tolist()
        cells = [self._render_field(f, frame[f.code], langs) for f in fields]
        start, end = frame["_start"], frame["_end"]
        d = self.dialect
        if d == "google_forms":
            fmt = "%m/%d/%Y %H:%M:%S" if self.lang == "ky" else "%d.%m.%Y %H:%M:%S"
            meta = [end.dt.strftime(fmt).tolist()]
            if self.with_email:
                meta.append(frame["_email"].tolist())
        elif d == "ms_forms":
            ids = list(range(self.rows + 1, self.rows + n + 1))
            meta = [ids, start.tolist(), end.tolist(), frame["_email"].tolist(), [""] * n]
        elif d == "kobo":
            meta = [
                start.dt.strftime("%Y-%m-%dT%H:%M:%S.000+06:00").tolist(),
                end.dt.strftime("%Y-%m-%dT%H:%M:%S.000+06:00").tolist(),
            ]
        elif d == "limesurvey":
            ids = list(range(self.rows + 1, self.rows + n + 1))
            meta = [
                ids,
                end.dt.strftime("%Y-%m-%d %H:%M:%S").tolist(),
                [str(len(fields))] * n,
                [self.lang] * n,
                frame["_seed"].tolist(),
                start.dt.strftime("%Y-%m-%d %H:%M:%S").tolist(),
                end.dt.strftime("%Y-%m-%d %H:%M:%S").tolist(),
            ]
        else:
            meta = [end.dt.strftime("%d.%m.%Y").tolist()]
        tail = []
        if d == "kobo":
            ids = list(range(self.rows + 1, self.rows + n + 1))
            uuids = [str(uuid.UUID(int=int(s) << 64 | int(s))) for s in frame["_seed"]]
            tail = [
                [100000 + i for i in ids],
                uuids,
                end.dt.strftime("%Y-%m-%dT%H:%M:%S").tolist(),
                [""] * n,
                ["submitted_via_web"] * n,
                [""] * n,
                [self.inst.version] * n,
                ids,
            ]
        columns = meta + cells + tail
        first_row = (
            self.header_rows + self.rows + 1
        )  # spreadsheet numbering of this chunk's 1st row
        faults = frame["_fault"].to_numpy()
        for i in np.flatnonzero(faults != ""):
            for kind in str(faults[i]).split(","):
                self.faults.append(
                    {
                        "file": self.path.name,
                        "row": int(first_row + i),
                        "kind": kind,
                        **_fault_detail(kind, frame.iloc[i], self),
                    }
                )
        if EXTENSIONS[d] == "csv":
            buf = io.StringIO()
            writer = csv.writer(buf, delimiter=self.delimiter, lineterminator="\r\n")
            writer.writerows(zip(*columns, strict=True))
            self._fh.write(buf.getvalue())
        else:
            sheet, r0 = self._sheet, self.rows + 1
            datetime_cols = {1, 2} if d == "ms_forms" else set()
            for i, row in enumerate(zip(*columns, strict=True)):
                for j, v in enumerate(row):
                    if j in datetime_cols:
                        sheet.write_datetime(r0 + i, j, v.to_pydatetime(), self._fmt)
                    elif v != "":
                        sheet.write(r0 + i, j, v)
        self.rows += n


def _fault_detail(kind: str, row: pd.Series, sink: Sink) -> dict:
    if kind == "duplicate_submission":
        return {"column": None, "detail": "same answers submitted again right after"}
    if kind == "out_of_range":
        code = row["_fault_item"]
        f = sink.inst.field(code)
        return {
            "column": _header(f, sink.lang, sink.dialect),
            "item": code,
            "detail": "answer outside the scale",
        }
    if kind == "unknown_programme":
        f = next(f for f in sink.inst.context_fields if f.context == "programme")
        return {
            "column": _header(f, sink.lang, sink.dialect),
            "detail": "programme not in registry",
        }
    if kind == "speeder":
        return {"column": None, "detail": "completed in under 40 seconds"}
    if kind == "straight_liner":
        return {"column": None, "detail": "the same answer to every item"}
    return {"column": None, "detail": ""}
