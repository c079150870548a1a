"""Open a survey export: what it is, where it came from, and its rows as strings."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

import pandas as pd

from pipeline.errors import InputFileError
from pipeline.readers.csvfile import iter_csv_chunks, read_csv_layout
from pipeline.readers.encoding import file_sha256, scan_text_file
from pipeline.readers.headers import SOURCE_ROW
from pipeline.readers.xlsxfile import iter_xlsx_chunks, read_xlsx_layout

DEFAULT_CHUNK_ROWS = 100_000

_ZIP_MAGIC = b"PK\x03\x04"
_EMPTY_ZIP_MAGIC = b"PK\x05\x06"
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"


class ExportKind(StrEnum):
    """File formats Sapat reads."""

    CSV = "csv"
    XLSX = "xlsx"


@dataclass
class Export:
    """An opened survey export: provenance, layout, and a way to stream its rows.

    Attributes
    ----------
    path
        The file.
    sha256
        Hex SHA-256 of the file's bytes.
    kind
        ``"csv"`` or ``"xlsx"``.
    encoding
        CSV text encoding (``utf-8``, ``utf-8-sig``, ``cp1251``, ``utf-16-le``,
        ``utf-16-be``); ``None`` for XLSX.
    delimiter
        CSV delimiter (``,`` ``;`` or tab); ``None`` for XLSX.
    sheet
        XLSX sheet read; ``None`` for CSV.
    dialect
        ``google_forms``, ``ms_forms``, ``kobo``, ``limesurvey``, ``surveymonkey``,
        ``qualtrics`` or ``plain``.
    header_rows
        Spreadsheet rows above the first data row.
    columns
        Flattened column names, unique.
    column_labels
        Qualtrics question texts (second header row); ``None`` otherwise.
    column_ids
        Qualtrics ImportIds (third header row); ``None`` otherwise.
    chunk_rows
        Rows per chunk read by :meth:`iter_chunks`.
    """

    path: Path
    sha256: str
    kind: str
    encoding: str | None
    delimiter: str | None
    sheet: str | None
    dialect: str
    header_rows: int
    columns: list[str]
    column_labels: list[str] | None = None
    column_ids: list[str] | None = None
    chunk_rows: int = DEFAULT_CHUNK_ROWS
    _chunks: Callable[[int], Iterator[pd.DataFrame]] | None = field(
        default=None, repr=False, compare=False
    )

    def iter_chunks(self) -> Iterator[pd.DataFrame]:
        """Yield the data rows in chunks of at most :attr:`chunk_rows` rows.

        Each chunk has columns ``source_row`` (int64: the row number a spreadsheet
        shows for that row; the header starts at row 1) followed by :attr:`columns`,
        holding ``str`` or missing (NaN) for an empty cell: object columns, or
        ``Categorical`` ones (most CSV files, read by Arrow: each distinct text once).
        Rows whose cells are all empty are left out. Can be called more than once.

        Raises
        ------
        InputFileError
            A row with more fields than the header (named by row), an unclosed quote,
            or no data row at all.
        """
        if self._chunks is None:
            raise InputFileError("This export was not opened with open_export.")
        return self._chunks(self.chunk_rows)

    def read_all(self) -> pd.DataFrame:
        """All data rows in one DataFrame (columns as in :meth:`iter_chunks`)."""
        chunks = list(self.iter_chunks())
        if len(chunks) == 1:
            return chunks[0]
        return pd.concat(chunks, ignore_index=True)


def _kind_of(path: Path, head: bytes, file: str) -> ExportKind:
    if head.startswith((_ZIP_MAGIC, _EMPTY_ZIP_MAGIC)):
        return ExportKind.XLSX
    if head.startswith(_OLE_MAGIC):
        raise InputFileError(
            "The file is an old-style Excel 97–2003 .xls workbook or a password-protected "
            "workbook. Open it in Excel, remove any password, and save it as .xlsx "
            "(or CSV UTF-8).",
            file=file,
            expected="an .xlsx workbook or a CSV file",
        )
    if path.suffix.lower() in (".xlsx", ".xlsm") and head:
        raise InputFileError(
            "The file is named .xlsx but is not an Excel workbook (it does not start like "
            "a ZIP archive); it may be truncated or a renamed file. Download it again.",
            file=file,
            expected="an .xlsx workbook",
        )
    stripped = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if stripped.startswith((b"<!doctype html", b"<html", b"<?xml", b"<table")):
        raise InputFileError(
            "The file is a web page or XML document, not a CSV or XLSX export "
            "(some platforms save an HTML table with an .xls name, or the download "
            "was a login page). Download the export again as CSV or XLSX.",
            file=file,
            expected="a CSV file or an .xlsx workbook",
        )
    return ExportKind.CSV


def open_export(
    path: str | os.PathLike[str],
    *,
    sheet: str | int | None = None,
    dialect: str | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
) -> Export:
    """Open a survey export file and read its layout; rows are read later, in chunks.

    Parameters
    ----------
    path
        A CSV (any of the supported encodings and delimiters) or XLSX file.
    sheet
        XLSX only: sheet name, or 0-based index; default the first visible sheet.
    dialect
        Force a dialect instead of detecting it: ``google_forms``, ``ms_forms``,
        ``kobo``, ``limesurvey``, ``surveymonkey``, ``qualtrics`` or ``plain``.
    chunk_rows
        Rows per chunk yielded by :meth:`Export.iter_chunks`.

    Returns
    -------
    Export
        Provenance (path, sha256), layout (kind, encoding, delimiter, sheet,
        dialect, header_rows, columns, Qualtrics labels and ids) and the chunk reader.

    Raises
    ------
    InputFileError
        Missing, empty, binary or undecodable file; truncated workbook; header only;
        duplicate column names; a row with more fields than the header near the start.
        Rows further down are checked while streaming.
    """
    path = Path(path)
    file = str(path)
    if chunk_rows < 1:
        raise InputFileError(
            "chunk_rows must be at least 1.", file=file, expected="a positive number"
        )
    try:
        with open(path, "rb") as handle:
            head = handle.read(4096)
    except FileNotFoundError:
        raise InputFileError(
            "The file does not exist.", file=file, expected="an existing export file"
        ) from None
    except IsADirectoryError:
        raise InputFileError(
            "This is a folder, not a file.", file=file, expected="an export file"
        ) from None
    except OSError as exc:
        raise InputFileError(
            f"The file cannot be opened: {exc.strerror}.", file=file, expected="a readable file"
        ) from None
    if not head:
        raise InputFileError(
            "The file is empty (0 bytes). Download the export again.",
            file=file,
            expected="a CSV or XLSX survey export with a header row and responses",
        )

    kind = _kind_of(path, head, file)
    if kind is ExportKind.XLSX:
        sha256 = file_sha256(path)
        xlsx = read_xlsx_layout(path, sheet=sheet, dialect=dialect, file=file)
        return Export(
            path=path,
            sha256=sha256,
            kind=kind.value,
            encoding=None,
            delimiter=None,
            sheet=xlsx.sheet_name,
            dialect=xlsx.dialect.value,
            header_rows=xlsx.header_rows,
            columns=xlsx.header.columns,
            column_labels=xlsx.header.labels,
            column_ids=xlsx.header.ids,
            chunk_rows=chunk_rows,
            _chunks=lambda rows: iter_xlsx_chunks(xlsx, chunk_rows=rows, file=file),
        )

    if sheet is not None:
        raise InputFileError(
            "sheet= applies to XLSX workbooks, but this file is CSV text.",
            file=file,
            expected="no sheet for a CSV file",
            value=sheet,
        )
    scan = scan_text_file(path, file=file)
    layout = read_csv_layout(path, scan, dialect=dialect, file=file)
    return Export(
        path=path,
        sha256=scan.sha256,
        kind=kind.value,
        encoding=scan.encoding,
        delimiter=layout.delimiter,
        sheet=None,
        dialect=layout.dialect.value,
        header_rows=layout.header_rows,
        columns=layout.header.columns,
        column_labels=layout.header.labels,
        column_ids=layout.header.ids,
        chunk_rows=chunk_rows,
        _chunks=lambda rows: iter_csv_chunks(path, scan, layout, chunk_rows=rows, file=file),
    )


__all__ = ["DEFAULT_CHUNK_ROWS", "SOURCE_ROW", "Export", "ExportKind", "open_export"]
