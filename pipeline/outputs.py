"""Result tables written to files for people: CSV, JSON and Excel workbooks.

Every table Sapat hands over as a file (``--out FILE``) is written here, by
:func:`write_table`; :func:`format_from` tells the format from ``--format`` or the file's
extension.

``csv``
    UTF-8 at full precision. With ``excel_csv=True`` the file is written for Excel in a
    Russian (or any decimal-comma) locale: UTF-8 with a byte-order mark, ``;`` between fields
    and a decimal comma, so Excel opens it by double-click with Cyrillic text intact and
    numbers as numbers.
``json``
    A list of records, one object per row: numbers at full precision, dates in ISO 8601,
    missing values as ``null``. Text is not altered.
``xlsx``
    A workbook whose first sheet holds the table (bold frozen header, filter buttons, fitted
    column widths) and whose second sheet explains the columns in the reader's language.
    Numbers are stored exactly; only their display is rounded (``decimals``).

Formula safety: in CSV and Excel files a text cell starting with ``=``, ``+``, ``-``, ``@``,
a tab or a carriage return gets a leading apostrophe so a spreadsheet never runs it as a
formula (OWASP, "CSV injection"). Numbers are never changed: ``-1.5`` stays a number.

Files are written atomically: to a temporary file in the same folder, then renamed over the
target, so a failed write leaves the previous file (or no file), never half a file.

This module imports neither pandas nor openpyxl until a table is written, so the command
line can use :func:`format_from` without paying for them.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.errors import UsageError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["FORMATS", "format_from", "write_stream", "write_table"]

#: The file formats :func:`write_table` writes.
FORMATS = ("csv", "json", "xlsx")

#: A text starting with one of these is a formula to a spreadsheet (OWASP CSV injection).
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")

#: Column widths in the workbook, in characters.
MAX_WIDTH = 60
MIN_WIDTH = 6

#: Excel's limits: rows and columns of a sheet, characters of a cell, of a sheet name.
EXCEL_MAX_ROWS = 1_048_576
EXCEL_MAX_COLUMNS = 16_384
EXCEL_MAX_CELL_TEXT = 32_767
EXCEL_MAX_SHEET_NAME = 31

#: The second sheet, per language: its name, the heading of its two columns, and the name
#: of the first sheet when the title gives none.
ABOUT_SHEET = {
    "en": {"sheet": "About these columns", "column": "Column", "meaning": "Meaning"},
    "ru": {"sheet": "О столбцах", "column": "Столбец", "meaning": "Значение"},
    "ky": {"sheet": "Мамычалар жөнүндө", "column": "Мамыча", "meaning": "Мааниси"},
}
_DEFAULT_SHEET = {"en": "Table", "ru": "Таблица", "ky": "Таблица"}

_EXPECTED_FORMAT = "table, csv, json or xlsx"
_EXPECTED_FOLDER = (
    "a file in a folder that exists and may be written (close the file if Excel has it open)"
)
# characters Excel refuses in a sheet name, and what stands in for them
_SHEET_NAME_CHARS = str.maketrans(
    {"/": "-", "\\": "-", "[": "(", "]": ")", ":": " ", "*": " ", "?": " "}
)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# characters an xlsx file cannot hold at all (XML 1.0); tab, newline and CR are fine
_ILLEGAL_XML = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")


def format_from(path: Path | None, fmt: str | None) -> str:
    """The output format: ``fmt`` if given, else from the file's extension.

    Parameters
    ----------
    path
        The file to write (``--out``), or ``None`` for the screen.
    fmt
        The format asked for (``--format``): one of :data:`FORMATS` or ``"table"``
        (the screen), in any case. It wins over the extension.

    Returns
    -------
    str
        ``"csv"``, ``"json"``, ``"xlsx"``, or ``"table"`` when there is neither a format
        nor a file.

    Raises
    ------
    UsageError
        An unknown ``--format``; an extension that names no format; ``table`` with a file;
        ``xlsx`` without a file (a workbook cannot be shown on the screen).
    """
    if fmt is not None:
        chosen = fmt.strip().lower()
        if chosen not in (*FORMATS, "table"):
            raise UsageError(f"unknown --format {fmt!r}", expected=_EXPECTED_FORMAT)
        if chosen == "table" and path is not None:
            raise UsageError(
                "--format table is for the screen; give --format csv, json or xlsx with --out",
                file=str(path),
            )
        if chosen == "xlsx" and path is None:
            raise UsageError(
                "--format xlsx writes a workbook, which the screen cannot show",
                expected="--out FILE.xlsx",
            )
        return chosen
    if path is None:
        return "table"
    chosen = Path(path).suffix.lower().lstrip(".")
    if chosen not in FORMATS:
        raise UsageError(
            f"--out {Path(path).name}: cannot tell the format from the extension",
            expected="a .csv, .json or .xlsx file, or --format csv|json|xlsx",
        )
    return chosen


def write_table(
    frame: pd.DataFrame,
    path: Path,
    *,
    fmt: str,
    title: str,
    columns: Mapping[str, str] | None = None,
    decimals: Mapping[str, int] | None = None,
    excel_csv: bool = False,
    lang: str = "en",
    notes: Sequence[str] = (),
) -> None:
    """Write a result table to ``path``, atomically.

    The frame's index is not written; give meaningful keys as columns.

    Parameters
    ----------
    frame
        The table.
    path
        The file to write; an existing file is replaced.
    fmt
        ``"csv"``, ``"json"`` or ``"xlsx"`` (see :func:`format_from`).
    title
        What the table is. Names the workbook's first sheet (shortened to Excel's rules)
        and heads its second; unused by CSV and JSON.
    columns
        Column name -> plain-language explanation, for the workbook's second sheet. Names
        not in the frame are skipped; columns without an explanation are listed empty.
    decimals
        Column name -> decimals shown in the workbook (display only; the value stays
        exact). By default integers show none, floats whose name contains ``pct`` one,
        other floats two.
    excel_csv
        CSV for Excel in a decimal-comma locale: BOM, ``;`` and decimal comma.
    lang
        Language of the workbook's second sheet: ``"ky"``, ``"ru"`` or ``"en"``.
    notes
        Sentences the reader needs beside the numbers (what an interval covers, how the
        p-values were corrected): under the title on the workbook's second sheet.

    Raises
    ------
    UsageError
        The file cannot be written (missing folder, no permission, open in Excel, disk
        full), the format or language is unknown, or the table is too big for a sheet.
    """
    fmt = fmt.strip().lower()
    if fmt not in FORMATS:
        raise UsageError(f"unknown --format {fmt!r}", expected="csv, json or xlsx")
    if lang not in ABOUT_SHEET:
        raise UsageError(f"unknown language {lang!r}", expected="ky, ru or en")
    path = Path(path)
    if fmt == "csv":
        _atomic(path, "w", lambda fh: _write_csv(frame, fh, excel_csv=excel_csv), excel_csv)
    elif fmt == "json":
        _atomic(path, "w", lambda fh: _write_json(frame, fh), False)
    else:
        if len(frame) + 1 > EXCEL_MAX_ROWS or len(frame.columns) > EXCEL_MAX_COLUMNS:
            raise UsageError(
                f"the table has {len(frame):,} rows and {len(frame.columns):,} columns, "
                "more than an Excel sheet holds",
                file=str(path),
                expected="--format csv",
            )
        write = _workbook_writer(
            frame,
            title=title,
            columns=columns or {},
            decimals=decimals or {},
            lang=lang,
            notes=tuple(notes),
        )
        _atomic(path, "b", write, False)


def write_stream(frame: pd.DataFrame, handle, *, fmt: str, excel_csv: bool = False) -> None:
    """Write ``frame`` as CSV or JSON to an open text ``handle`` (the terminal), with the
    same rules as a file: full precision, formula-safe CSV."""
    if fmt == "csv":
        _write_csv(frame, handle, excel_csv=excel_csv)
    elif fmt == "json":
        _write_json(frame, handle)
    else:
        raise UsageError(f"--format {fmt} needs --out FILE.{fmt}")


# --- atomic writing --------------------------------------------------------------------------


def _atomic(path: Path, mode: str, write: Callable[[Any], None], bom: bool) -> None:
    """Call ``write`` with a handle on a temporary file beside ``path``, then rename it over
    ``path``. ``mode`` is ``"w"`` (UTF-8 text, with a BOM if ``bom``) or ``"b"`` (bytes)."""
    tmp = path.with_name(f".{path.name[:100]}.{os.urandom(4).hex()}.tmp")
    done = False
    text = mode != "b"
    try:
        with open(
            tmp,
            "x" if text else "xb",
            encoding=("utf-8-sig" if bom else "utf-8") if text else None,
            newline="" if text else None,
        ) as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        done = True
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise UsageError(
            f"--out: cannot write the file ({reason})", file=str(path), expected=_EXPECTED_FOLDER
        ) from exc
    finally:
        if not done:
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)


# --- formula safety and plain values ---------------------------------------------------------


def _defuse(value: object) -> object:
    """A text a spreadsheet would take for a formula, with a leading apostrophe; anything
    else (numbers included) unchanged."""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def _plain(value: object) -> object:
    """A cell as a plain Python value: ``None`` for every kind of missing (and for infinite
    numbers, which neither JSON nor Excel can hold), numpy scalars as Python ones."""
    import numpy as np
    import pandas as pd

    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, np.generic):
        value = value.item()
        if value is None:  # numpy's NaT
            return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _columns_of(frame: pd.DataFrame) -> list[tuple[str, list[object]]]:
    """Each column's name (as text) and its values as plain Python values."""
    return [
        (_name(name), [_plain(v) for v in frame.iloc[:, i].tolist()])
        for i, name in enumerate(frame.columns)
    ]


def _name(column: object) -> str:
    if isinstance(column, tuple):  # a MultiIndex column
        return " / ".join(str(part) for part in column)
    return str(column)


# --- csv and json ----------------------------------------------------------------------------


def _write_csv(frame: pd.DataFrame, handle, *, excel_csv: bool) -> None:
    import pandas as pd

    safe = frame.copy(deep=False)
    for i in range(len(frame.columns)):
        col = frame.iloc[:, i]
        if not (pd.api.types.is_numeric_dtype(col) or pd.api.types.is_datetime64_any_dtype(col)):
            safe.isetitem(i, col.map(_defuse))
    safe.columns = [_defuse(_name(c)) for c in frame.columns]
    options = {"sep": ";", "decimal": ","} if excel_csv else {}
    # CRLF ends records (RFC 4180), so a text holding a bare CR or LF is quoted, never split
    safe.to_csv(handle, index=False, lineterminator="\r\n", **options)


def _write_json(frame: pd.DataFrame, handle) -> None:
    if not frame.columns.is_unique:
        raise ValueError("JSON records need unique column names")
    cols = _columns_of(frame)
    names = [name for name, _ in cols]
    records = [
        dict(zip(names, (_json_value(v) for v in row), strict=True))
        for row in zip(*(values for _, values in cols), strict=True)
    ]
    if not cols:
        records = [{} for _ in range(len(frame))]
    json.dump(records, handle, ensure_ascii=False, allow_nan=False, default=str)
    handle.write("\n")


def _json_value(value: object) -> object:
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, timedelta):
        import pandas as pd

        return pd.Timedelta(value).isoformat()
    return value


# --- xlsx ------------------------------------------------------------------------------------


def _is_pct(name: str) -> bool:
    return "pct" in name.lower()


def _number_format(places: int) -> str:
    return "0." + "0" * places if places > 0 else "0"


def _places(name: str, value: int | float, decimals: Mapping[str, int]) -> int:
    """Decimals shown for a number in column ``name``."""
    if name in decimals:
        places = int(decimals[name])
        if places < 0:
            raise ValueError(f"decimals for {name!r} must be 0 or more, not {places}")
        return places
    if isinstance(value, int):
        return 0
    return 1 if _is_pct(name) else 2


def _sheet_name(title: str, lang: str, taken: str) -> str:
    """``title`` as a valid Excel sheet name: none of ``[]:*?/\\``, no control characters,
    not starting or ending with an apostrophe, at most 31 characters (UTF-16 units), not
    blank, not Excel's reserved ``History`` and not ``taken`` (case-insensitive)."""
    name = _CONTROL.sub(" ", str(title)).translate(_SHEET_NAME_CHARS)
    name = " ".join(name.split()).strip("'").strip()
    while len(name.encode("utf-16-le")) // 2 > EXCEL_MAX_SHEET_NAME:
        name = name[:-1]
    name = name.rstrip().rstrip("'").rstrip()
    if not name or name.lower() in ("history", taken.lower()):
        name = _DEFAULT_SHEET[lang]
    return name


def _text(value: str) -> str:
    """Text as an xlsx cell can hold it: formula-safe, no characters XML forbids, at most
    Excel's 32,767 characters."""
    text = _ILLEGAL_XML.sub("", str(_defuse(value)))
    # XML turns a carriage return into a newline on reading: write what will be read
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if len(text) > EXCEL_MAX_CELL_TEXT:
        text = text[: EXCEL_MAX_CELL_TEXT - 1] + "…"
    return text


def _display_width(value: object, places: int | None, dates: bool) -> int:
    """Roughly how many characters Excel shows for a cell."""
    if value is None:
        return 0
    if isinstance(value, bool):
        return 5
    if isinstance(value, int | float):
        return len(f"{value:.{places or 0}f}")
    if isinstance(value, datetime):
        return 10 if dates else 19
    if isinstance(value, date):
        return 10
    return max((len(line) for line in str(value).splitlines()), default=0)


def _workbook_writer(
    frame: pd.DataFrame,
    *,
    title: str,
    columns: Mapping[str, str],
    decimals: Mapping[str, int],
    lang: str,
    notes: tuple[str, ...] = (),
) -> Callable[[Any], None]:
    """A function writing the workbook to a binary handle (openpyxl is imported here)."""
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Alignment, Font
    from openpyxl.utils import get_column_letter

    words = ABOUT_SHEET[lang]
    bold = Font(bold=True)
    wrap = Alignment(wrap_text=True, vertical="top")
    cols = [(name, _excel_values(values)) for name, values in _columns_of(frame)]

    def cell(
        ws,
        value: object,
        *,
        places: int | None = None,
        dates: bool = False,
        header: bool = False,
        wraps: bool = True,
    ):
        """A cell for ``value``: text always as text (never a formula or an error code),
        numbers with their display format (``places``), datetimes as dates if ``dates``,
        long or multi-line text wrapped if ``wraps``."""
        if isinstance(value, str):
            text = _text(value)
            c = WriteOnlyCell(ws, value=text)
            c.data_type = "s"
            if wraps and ("\n" in text or len(text) > MAX_WIDTH):
                c.alignment = wrap
        elif isinstance(value, float):
            # openpyxl writes numbers as "%.16g", one digit short of exact (3.5833333333333335
            # would come back as 3.583333333333333): give it the shortest exact text instead
            c = WriteOnlyCell(ws, value=repr(value).replace("e", "E"))
            c.data_type = "n"
            c.number_format = _number_format(places if places is not None else 2)
        else:
            c = WriteOnlyCell(ws, value=value)
            if places is not None:
                c.number_format = _number_format(places)
            elif dates and isinstance(value, datetime):
                c.number_format = "yyyy-mm-dd"
        if header:
            c.font = bold
        return c

    def write(handle) -> None:
        wb = Workbook(write_only=True)
        table = wb.create_sheet(_sheet_name(title, lang, taken=words["sheet"]))
        about = wb.create_sheet(words["sheet"])

        # the table
        table.freeze_panes = "A2"
        places_of: list[list[int | None]] = []
        # datetime columns holding only midnights are dates
        dates_of = [
            all(v.time() == time(0) for v in values if isinstance(v, datetime))
            for _, values in cols
        ]
        for i, (name, values) in enumerate(cols, start=1):
            places = [
                _places(name, v, decimals)
                if isinstance(v, int | float) and not isinstance(v, bool)
                else None
                for v in values
            ]
            places_of.append(places)
            width = max(
                [len(name) + 3]  # the filter button takes room too
                + [
                    _display_width(v, p, dates_of[i - 1])
                    for v, p in zip(values, places, strict=True)
                ]
            )
            table.column_dimensions[get_column_letter(i)].width = max(
                MIN_WIDTH, min(width + 2, MAX_WIDTH)
            )
        if cols:
            last = get_column_letter(len(cols))
            table.auto_filter.ref = f"A1:{last}{len(frame) + 1}"
        table.append([cell(table, name, header=True) for name, _ in cols])
        for r in range(len(frame)):
            table.append(
                [
                    cell(table, values[r], places=places_of[c][r], dates=dates_of[c])
                    if values[r] is not None
                    else None
                    for c, (_, values) in enumerate(cols)
                ]
            )

        # what the columns mean
        about.column_dimensions["A"].width = max(
            [MIN_WIDTH, len(words["column"]) + 2]
            + [min(len(name) + 2, MAX_WIDTH) for name, _ in cols]
        )
        about.column_dimensions["B"].width = MAX_WIDTH + 20
        # the title runs on over the empty cells beside it, unwrapped
        about.append([cell(about, title, header=True, wraps=False)])
        for note in notes:
            about.append([cell(about, note, wraps=False)])
        about.append(
            [cell(about, words["column"], header=True), cell(about, words["meaning"], header=True)]
        )
        meanings = {str(k): v for k, v in columns.items()}
        for name, _ in cols:
            meaning = meanings.get(name)
            about.append([cell(about, name), cell(about, meaning) if meaning else None])
        wb.save(handle)

    return write


def _excel_values(values: list[object]) -> list[object]:
    """Values an xlsx cell can hold: naive datetimes (the wall time of aware ones), text
    for anything Excel has no type for."""
    import pandas as pd

    out: list[object] = []
    for v in values:
        if isinstance(v, pd.Timestamp):
            v = v.tz_localize(None) if v.tzinfo is not None else v
            v = v.to_pydatetime(warn=False)
        elif isinstance(v, datetime) and v.tzinfo is not None:
            v = v.replace(tzinfo=None)
        elif isinstance(v, pd.Timedelta):
            v = v.to_pytimedelta()
        if not (v is None or isinstance(v, str | bool | int | float | date | time | timedelta)):
            v = str(v)
        out.append(v)
    return out
