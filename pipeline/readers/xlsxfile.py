"""XLSX exports, read with python-calamine (7–9× faster than openpyxl).

Cells become strings as a spreadsheet shows them: text as is, whole numbers without
``.0``, other numbers by ``repr``, booleans ``TRUE``/``FALSE``, dates and times as ISO
8601 (``2024-03-01``, ``2024-03-01T10:15:00``). Calamine honours the workbook's date
system, so 1904-based workbooks give the right dates. Error cells (``#N/A``) and empty
strings are missing.

calamine parses a whole sheet at once, so memory grows with the sheet (an XLSX is at
most 1,048,576 rows); the Python strings are built one chunk at a time.
"""

from __future__ import annotations

import datetime as dt
import posixpath
import re
import xml.etree.ElementTree as ElementTree
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

import numpy as np
import pandas as pd
import python_calamine

from pipeline.errors import InputFileError
from pipeline.readers.csvfile import DIALECT_ROWS, header_only_error
from pipeline.readers.dialects import Dialect, detect_dialect, header_row_count, parse_dialect
from pipeline.readers.headers import SOURCE_ROW, Header, column_letter, flatten_header

_MISSING = np.nan
_EXPECTED = "an .xlsx workbook as downloaded from the survey platform"

#: calamine holds a sheet as a dense rectangle (~32 bytes a cell) from its first to its
#: last used cell, and aborts the whole process when that cannot be allocated. Sheets
#: whose rectangle is larger are refused before calamine sees them. 1,048,576 rows ×
#: 95 columns fit.
MAX_CELLS = 100_000_000

_DIMENSION = re.compile(rb"<(?:\w+:)?dimension\s+ref=\"([A-Z]+)(\d+)(?::([A-Z]+)(\d+))?\"")
_ROW_REF = re.compile(rb"<(?:\w+:)?row\b[^>]*?\sr=\"(\d+)\"")
_CELL_REF = re.compile(rb"<(?:\w+:)?c\b[^>]*?\sr=\"([A-Z]+)(\d+)\"")
_REL_NS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"

Merge = tuple[tuple[int, int], tuple[int, int]]


def cell_text(value: object) -> str | float:
    """A calamine cell value as a string, or NaN when empty."""
    kind = type(value)
    if kind is str:
        return value if value else _MISSING  # type: ignore[return-value]
    if kind is float:
        if value.is_integer() and abs(value) < 1e15:  # type: ignore[union-attr]
            return str(int(value))  # type: ignore[call-overload]
        return repr(value)
    if kind is bool:
        return "TRUE" if value else "FALSE"
    if kind is int:
        return str(value)
    if kind in (dt.datetime, dt.date, dt.time):
        return value.isoformat()  # type: ignore[union-attr]
    if kind is dt.timedelta:
        seconds = int(value.total_seconds())  # type: ignore[union-attr]
        sign = "-" if seconds < 0 else ""
        hours, rest = divmod(abs(seconds), 3600)
        return f"{sign}{hours}:{rest // 60:02d}:{rest % 60:02d}"
    if value is None:
        return _MISSING
    return str(value)


def _texts(row: Sequence[object]) -> list:
    return [
        (value if value else _MISSING) if type(value) is str else cell_text(value) for value in row
    ]


@dataclass
class XlsxLayout:
    """Where things are in one sheet of an XLSX export.

    Attributes
    ----------
    sheet_name
        The sheet read.
    dialect, header
        Export dialect and flattened header.
    header_rows
        Spreadsheet rows above the first data row.
    first_column
        0-based spreadsheet column of the first cell calamine returns.
    sheet
        The loaded calamine sheet (kept so chunks can be read more than once).
    """

    sheet_name: str
    dialect: Dialect
    header: Header
    header_rows: int
    first_column: int
    sheet: python_calamine.CalamineSheet


def _is_panic(exc: BaseException) -> bool:
    return type(exc).__name__ == "PanicException"


def _unreadable(file: str, detail: str) -> InputFileError:
    return InputFileError(
        f"The workbook cannot be read ({detail}); it may be truncated, damaged or "
        "password-protected. Download the export again and save it as .xlsx.",
        file=file,
        expected=_EXPECTED,
    )


def _check_archive(path: Path, file: str) -> None:
    """Refuse ZIP files that are not workbooks, e.g. Google Forms' zipped CSV."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (
        zipfile.BadZipFile,
        OSError,
        ValueError,
        EOFError,
        NotImplementedError,
        RuntimeError,
    ) as exc:
        # NotImplementedError: an unknown compression method; RuntimeError: encrypted
        raise _unreadable(file, f"not a complete ZIP archive: {exc}") from None
    if any(name.startswith("xl/") for name in names):
        return
    inner = [name for name in names if name.lower().endswith((".csv", ".tsv", ".txt"))]
    if inner:
        raise InputFileError(
            f"The file is a ZIP archive holding {', '.join(inner[:3])}. Extract the CSV "
            "from it (Google Forms downloads responses zipped) and give Sapat that file.",
            file=file,
            expected="the .csv inside the archive, or an .xlsx workbook",
        )
    raise InputFileError(
        "The file is a ZIP archive but not an Excel workbook (no xl/ part inside).",
        file=file,
        expected=_EXPECTED,
    )


def _column_number(letters: bytes) -> int:
    number = 0
    for letter in letters:
        number = number * 26 + letter - 64
    return number


def _sheet_member(archive: zipfile.ZipFile, name: str) -> str | None:
    """The ZIP member holding the sheet called ``name``, from workbook.xml and its rels."""
    try:
        workbook = ElementTree.fromstring(archive.read("xl/workbook.xml"))
        rels = ElementTree.fromstring(archive.read("xl/_rels/workbook.xml.rels"))
    except Exception:  # best effort: calamine reports a damaged workbook in its own words
        return None
    rel_id = next(
        (
            sheet.get(f"{{{_REL_NS}}}id")
            for sheet in workbook.iter()
            if sheet.tag.endswith("}sheet") and sheet.get("name") == name
        ),
        None,
    )
    target = next(
        (rel.get("Target") for rel in rels.iter() if rel.get("Id") == rel_id and rel_id),
        None,
    )
    if not target:
        return None
    member = target.lstrip("/") if target.startswith("/") else posixpath.join("xl", target)
    return posixpath.normpath(member)


def _sheet_extent(path: Path, name: str) -> tuple[int, int] | None:
    """Rows × columns of the rectangle a sheet's cells span, read without calamine.

    Uses the ``<dimension>`` element at the top of the sheet XML; when it is missing,
    scans the cell references. ``None`` when the sheet XML cannot be found (calamine
    then reports the damage).
    """
    try:
        with zipfile.ZipFile(path) as archive:
            member = _sheet_member(archive, name)
            if member is None:
                return None
            with archive.open(member) as stream:
                head = stream.read(1 << 14)
                if found := _DIMENSION.search(head):
                    c1, r1, c2, r2 = found.groups()
                    c2, r2 = c2 or c1, r2 or r1
                    rows = abs(int(r2) - int(r1)) + 1
                    columns = abs(_column_number(c2) - _column_number(c1)) + 1
                    return rows, columns
                max_row = max_column = 0
                tail = b""
                while True:
                    piece = head if head else stream.read(1 << 20)
                    head = b""
                    if not piece:
                        break
                    text = tail + piece
                    for match in _ROW_REF.finditer(text):
                        max_row = max(max_row, int(match.group(1)))
                    for match in _CELL_REF.finditer(text):
                        max_column = max(max_column, _column_number(match.group(1)))
                        max_row = max(max_row, int(match.group(2)))
                    tail = text[-256:]
                return max_row, max_column
    except Exception:  # best effort, as above
        return None


def _check_extent(path: Path, name: str, file: str) -> None:
    extent = _sheet_extent(path, name)
    if extent and extent[0] * extent[1] > MAX_CELLS:
        rows, columns = extent
        raise InputFileError(
            f"Sheet {name!r} spans {rows:,} rows × {columns:,} columns, usually because "
            "a stray cell far below or right of the data holds a value or format. Delete "
            "the empty rows and columns after the data (or copy the data to a new "
            "workbook) and save again.",
            file=file,
            expected=f"a sheet of at most {MAX_CELLS:,} cells",
        )


def _load_sheet(
    path: Path, sheet: str | int | None, file: str
) -> tuple[str, python_calamine.CalamineSheet]:
    _check_archive(path, file)
    try:
        workbook = python_calamine.CalamineWorkbook.from_path(str(path))
        names = list(workbook.sheet_names)
        if sheet is None:
            visible = [
                meta.name
                for meta in workbook.sheets_metadata
                if meta.typ == python_calamine.SheetTypeEnum.WorkSheet
                and meta.visible == python_calamine.SheetVisibleEnum.Visible
            ]
            if not (visible or names):
                raise InputFileError("The workbook has no sheets.", file=file, expected=_EXPECTED)
            name = (visible or names)[0]
        elif isinstance(sheet, int):
            if not 0 <= sheet < len(names):
                raise InputFileError(
                    f"The workbook has no sheet number {sheet} (it has {len(names)}, "
                    "counted from 0).",
                    file=file,
                    expected="one of " + ", ".join(repr(n) for n in names),
                    value=sheet,
                )
            name = names[sheet]
        else:
            if sheet not in names:
                raise InputFileError(
                    f"The workbook has no sheet named {sheet!r}.",
                    file=file,
                    expected="one of " + ", ".join(repr(n) for n in names),
                    value=sheet,
                )
            name = sheet
        _check_extent(path, name, file)
        return name, workbook.get_sheet_by_name(name)
    except InputFileError:
        raise
    except python_calamine.CalamineError as exc:
        raise _unreadable(file, str(exc) or type(exc).__name__) from None
    except BaseException as exc:
        if _is_panic(exc):
            raise _unreadable(file, "the parser failed on its contents") from None
        raise


def _filled_header(
    rows: list[list], merges: Sequence[Merge], top: int, first_column: int
) -> list[list[str]]:
    """Header rows as strings with each merged range's value copied across it."""
    grid = [["" if isinstance(v, float) else v for v in row] for row in rows]
    for (r0, c0), (r1, c1) in merges:
        if not top <= r0 < top + len(grid):
            continue
        value = grid[r0 - top][c0 - first_column] if c0 - first_column >= 0 else ""
        for r in range(r0, min(r1, top + len(grid) - 1) + 1):
            for c in range(max(c0, first_column), c1 + 1):
                if c - first_column < len(grid[r - top]):
                    grid[r - top][c - first_column] = value
    return grid


def read_xlsx_layout(
    path: Path,
    *,
    sheet: str | int | None = None,
    dialect: str | None = None,
    file: str,
) -> XlsxLayout:
    """Load a sheet and find its dialect, header rows and columns.

    A first header row holding merged cells (group titles over several columns)
    makes a two-row header, flattened to ``"Group | Column"``. A title row above the
    header (one merged cell across the whole width) is skipped.

    Raises
    ------
    InputFileError
        Truncated or damaged workbook, unknown sheet, empty sheet, header only,
        duplicate column names.
    """
    name, loaded = _load_sheet(path, sheet, file)
    if loaded.start is None or loaded.height == 0:
        raise InputFileError(
            f"Sheet {name!r} is empty.", file=file, expected="a header row and responses"
        )
    first_column = loaded.start[1]
    merges: list[Merge] = list(loaded.merged_cell_ranges or [])
    last_column = first_column + loaded.width - 1

    head = [_texts(row) for row in islice(loaded.iter_rows(), 0, loaded.start[0] + 64)]
    lead = 0
    while lead < len(head) and all(isinstance(v, float) for v in head[lead]):
        lead += 1
    if lead < len(head) - 1 and _is_title_row(head[lead], merges, lead, first_column, last_column):
        lead += 1
        while lead < len(head) and all(isinstance(v, float) for v in head[lead]):
            lead += 1
    candidates = head[lead : lead + DIALECT_ROWS]
    if not candidates:
        raise InputFileError(
            f"Sheet {name!r} has only blank rows.", file=file, expected="a header row"
        )
    as_text = [["" if isinstance(v, float) else v for v in row] for row in candidates]
    kind = parse_dialect(dialect, file=file) if dialect else detect_dialect(as_text)
    n_header = header_row_count(kind, as_text)
    merged_header = any(r0 == lead and (c1 > c0 or r1 > r0) for (r0, c0), (r1, c1) in merges)
    if n_header == 1 and merged_header and kind not in (Dialect.QUALTRICS, Dialect.SURVEYMONKEY):
        n_header = 2
    if len(candidates) < n_header:
        raise header_only_error(file, lead + len(candidates))
    grid = _filled_header(candidates[:n_header], merges, lead, first_column)
    width = max(
        (i + 1 for row in grid for i, cell in enumerate(row) if cell),
        default=0,
    )
    if width == 0:
        raise InputFileError(
            f"Sheet {name!r} has an empty header row.", file=file, expected="column titles"
        )
    header = flatten_header(
        [row[:width] for row in grid],
        kind,
        width=width,
        first_column=first_column,
        file=file,
        row=lead + 1,
    )
    if loaded.end is None or loaded.end[0] < lead + n_header:
        raise header_only_error(file, lead + n_header)
    return XlsxLayout(name, kind, header, lead + n_header, first_column, loaded)


def _is_title_row(
    row: list, merges: Sequence[Merge], index: int, first_column: int, last_column: int
) -> bool:
    filled = [i for i, v in enumerate(row) if not isinstance(v, float)]
    if len(filled) != 1:
        return False
    column = first_column + filled[0]
    return any(
        r0 == index and c0 == column and c0 <= first_column and c1 >= last_column and c1 > c0
        for (r0, c0), (r1, c1) in merges
    )


def iter_xlsx_chunks(layout: XlsxLayout, *, chunk_rows: int, file: str) -> Iterator[pd.DataFrame]:
    """Stream the data rows of a sheet as DataFrames of strings.

    Each chunk has ``source_row`` (int64, spreadsheet row) then the header's columns,
    as object columns holding ``str`` or missing (NaN). A row with no value between data
    rows is a respondent who answered nothing and is kept; empty rows after the last data
    row (formatting left in the sheet) are not rows of the survey and are left out.

    Raises
    ------
    InputFileError
        A value right of the last header column; no data rows.
    """
    columns = layout.header.columns
    width = len(columns)
    rows: list[list] = []
    numbers: list[int] = []
    yielded = 0
    empty: list[int] = []  # empty rows since the last data row: kept once data follows
    start = layout.header_rows
    for index, raw in enumerate(islice(layout.sheet.iter_rows(), start, None), start=start):
        cells = _texts(raw)
        if len(cells) > width and filled_any(cells[width:]):
            extra = next(i for i, v in enumerate(cells[width:]) if not isinstance(v, float))
            raise _beyond_header_error(file, index + 1, layout.first_column + width + extra, width)
        cells = cells[:width]
        if not filled_any(cells):
            empty.append(index + 1)
            continue
        if empty and (yielded or rows):
            rows += [[_MISSING] * width for _ in empty]
            numbers += empty
        empty = []
        rows.append(cells + [_MISSING] * (width - len(cells)))
        numbers.append(index + 1)
        if len(rows) >= chunk_rows:
            yielded += len(rows)
            yield _frame(rows, numbers, columns)
            rows, numbers = [], []
    if rows:
        yielded += len(rows)
        yield _frame(rows, numbers, columns)
    if not yielded:
        raise header_only_error(file, layout.header_rows)


def _beyond_header_error(file: str, row: int, column: int, width: int) -> InputFileError:
    letter = column_letter(column)
    return InputFileError(
        f"Row {row} has a value in column {letter}, right of the last of the {width} "
        "header columns. Give that column a title or clear the cell, then save again.",
        file=file,
        row=row,
        column=letter,
        expected=f"values only under the {width} titled columns",
    )


def filled_any(cells: list) -> bool:
    """Whether any cell holds a value (missing cells are NaN floats)."""
    return any(not isinstance(v, float) for v in cells)


def _frame(rows: list[list], numbers: list[int], columns: list[str]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=columns, dtype=object)
    frame.insert(0, SOURCE_ROW, np.asarray(numbers, dtype=np.int64))
    return frame
