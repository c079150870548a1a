"""Readers: the first step of ingestion.

Turn a survey export file as it arrives (CSV in UTF-8, UTF-8 with BOM, UTF-16 or
Windows-1251, delimited by comma, semicolon or tab; or XLSX) into a stream of
DataFrames of strings with a ``source_row`` column, plus its provenance (path,
SHA-256) and layout (encoding, delimiter, sheet, dialect, header rows, columns).

>>> export = open_export("responses.csv")            # doctest: +SKIP
>>> export.dialect, export.columns[:2]                # doctest: +SKIP
('google_forms', ['Timestamp', 'Email Address'])
>>> for chunk in export.iter_chunks(): ...            # doctest: +SKIP

Mapping columns to questionnaire items and validating answers happen later.
Every failure is a :class:`pipeline.errors.InputFileError` naming the file and,
where it applies, the row, column and what was expected.
"""

from pipeline.readers.csvfile import sniff_delimiter
from pipeline.readers.dialects import DIALECT_NAMES, Dialect, detect_dialect
from pipeline.readers.encoding import TextScan, scan_text_file
from pipeline.readers.export import DEFAULT_CHUNK_ROWS, Export, ExportKind, open_export
from pipeline.readers.headers import SEPARATOR, SOURCE_ROW, flatten_header

__all__ = [
    "DEFAULT_CHUNK_ROWS",
    "DIALECT_NAMES",
    "SEPARATOR",
    "SOURCE_ROW",
    "Dialect",
    "Export",
    "ExportKind",
    "TextScan",
    "detect_dialect",
    "flatten_header",
    "open_export",
    "scan_text_file",
    "sniff_delimiter",
]
