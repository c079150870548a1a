"""CSV exports: delimiter, header rows and streamed chunks of strings.

The layout (delimiter, dialect, header, where the data start) is read from a sample
at the start of the file with :mod:`csv`; the data are then streamed from that byte
offset in chunks, memory bounded by the chunk size, not the file size:

- UTF-8 and Windows-1251 files are parsed by Arrow (``pyarrow.csv.open_csv``) on a
  background thread, cells as bytes, and each column is dictionary-encoded there, so
  each distinct text is decoded once and a chunk's columns arrive as pandas
  ``Categorical`` of ``str``: the parsing runs beside the typing of the previous chunk
  and no Python object is made per cell (about twice as fast as pandas' parser).
- Anything Arrow refuses (a blank line between rows, a short or long row, an unclosed
  quote) and UTF-16 files go to pandas' C parser (``dtype=object``: strings, empty →
  missing), which continues from the first record Arrow did not deliver, names the
  row of any error, and fills short rows with missing values.

Both give the same strings for the same file (tested record by record).

Row numbers are spreadsheet rows: one per CSV record, so a quoted cell holding line
breaks still counts as one row, and blank lines count (as a spreadsheet shows them)
but yield no data row. A row whose fields are all empty is a respondent who answered
nothing when data rows follow it, and is kept; such rows after the last data row are not.
"""

from __future__ import annotations

import codecs
import csv
import io
import queue
import re
import threading
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from pipeline.errors import InputFileError
from pipeline.readers.dialects import (
    Dialect,
    detect_dialect,
    header_row_count,
    parse_dialect,
)
from pipeline.readers.encoding import TextScan
from pipeline.readers.headers import SOURCE_ROW, Header, column_letter, flatten_header

#: Delimiters tried, in order of preference on a tie.
DELIMITERS = (",", ";", "\t")
#: Bytes first read to find the layout; grown up to MAX_SAMPLE_BYTES for huge headers.
SAMPLE_BYTES = 1 << 18
MAX_SAMPLE_BYTES = 1 << 25
#: Records looked at when choosing the delimiter.
SNIFF_RECORDS = 200
#: Rows looked at to detect the dialect.
DIALECT_ROWS = 3
#: Bytes Arrow parses per block (measured fastest at 1–4 MiB); blocks are gathered into
#: chunks of ``chunk_rows`` rows.
ARROW_BLOCK_BYTES = 1 << 22
#: Codecs the Arrow reader handles: one byte per character or UTF-8, so a cell's bytes
#: decode on their own. UTF-16 goes to pandas.
ARROW_CODECS = frozenset({"utf-8", "cp1251"})

_DELIMITER_NAMES = {",": "comma", ";": "semicolon", "\t": "tab"}
_TOO_MANY = re.compile(r"Expected (\d+) fields in line (\d+), saw (\d+)")
_OPEN_QUOTE = re.compile(r"EOF inside string starting at row (\d+)")


@dataclass(frozen=True)
class CsvLayout:
    """Where things are in a CSV export.

    Attributes
    ----------
    delimiter
        ``,``, ``;`` or tab.
    dialect
        The export dialect.
    header
        Flattened column names (and Qualtrics labels/ids).
    header_rows
        Spreadsheet rows before the first data row (header rows plus any blank
        rows above the header).
    data_offset
        Byte offset where the first data record starts.
    header_quotes
        ``"`` characters before ``data_offset``.
    """

    delimiter: str
    dialect: Dialect
    header: Header
    header_rows: int
    data_offset: int
    header_quotes: int = 0


class _CountedLines:
    """Lines of ``text`` for :func:`csv.reader`, counting the characters handed out."""

    def __init__(self, text: str) -> None:
        self._lines = io.StringIO(text, newline="")
        self.chars = 0

    def __iter__(self) -> _CountedLines:
        return self

    def __next__(self) -> str:
        line = self._lines.readline()
        if not line:
            raise StopIteration
        self.chars += len(line)
        return line


def _is_blank(record: Sequence[str]) -> bool:
    return not any(cell.strip() for cell in record)


def parse_records(
    text: str, delimiter: str, *, complete: bool, limit: int | None = None
) -> tuple[list[list[str]], list[int]]:
    """CSV records of ``text`` and the character offset where each one ends.

    When ``complete`` is false the text is a prefix of the file and its last record,
    which may be cut short, is left out. Raises :class:`csv.Error`.
    """
    lines = _CountedLines(text)
    records: list[list[str]] = []
    ends: list[int] = []
    for record in csv.reader(lines, delimiter=delimiter, quotechar='"', doublequote=True):
        records.append(record)
        ends.append(lines.chars)
        if limit is not None and len(records) > limit:
            return records[:limit], ends[:limit]
    if not complete and records:
        records.pop()
        ends.pop()
    return records, ends


def sniff_delimiter(text: str, *, complete: bool = True) -> str:
    """The delimiter among ``,`` ``;`` tab that splits ``text`` most consistently.

    Scores each candidate on the first :data:`SNIFF_RECORDS` non-blank records: the
    header must have two or more fields; then the share of records with as many fields
    as the header wins (records with more count against it), then the wider header.
    A single-column file gets ``,``.
    """
    best, best_key = ",", None
    for delimiter in DELIMITERS:
        try:
            records, _ = parse_records(text, delimiter, complete=complete, limit=SNIFF_RECORDS)
        except csv.Error:
            continue
        widths = [len(r) for r in records if not _is_blank(r)]
        if not widths or widths[0] < 2:
            continue
        head, rest = widths[0], widths[1:]
        same = sum(w == head for w in rest) / len(rest) if rest else 1.0
        over = sum(w > head for w in rest) / len(rest) if rest else 0.0
        key = (same - over, head)
        if best_key is None or key > best_key:
            best, best_key = delimiter, key
    return best


def _read_sample(path: Path, scan: TextScan, size: int) -> tuple[str, bool]:
    with open(path, "rb") as handle:
        handle.seek(scan.bom_length)
        raw = handle.read(size)
    complete = scan.bom_length + len(raw) >= scan.size
    text = codecs.getincrementaldecoder(scan.codec)("strict").decode(raw, final=complete)
    return text, complete


def ragged_row_error(
    file: str, row: int, fields: int, width: int, delimiter: str | None
) -> InputFileError:
    """The error for a row with more fields than the header has columns."""
    how = (
        f" A value may hold the {_DELIMITER_NAMES.get(delimiter, repr(delimiter))} "
        "delimiter without quotes, or cells were pasted beyond the last column."
        if delimiter
        else " Cells were filled in beyond the last column."
    )
    return InputFileError(
        f"Row {row} has {fields} fields but the header has {width} columns.{how} "
        "Fix or remove that row and export again.",
        file=file,
        row=row,
        column=column_letter(width),
        expected=f"at most {width} fields per row, as many as header columns",
    )


def header_only_error(file: str, header_rows: int) -> InputFileError:
    """The error for an export with a header but no responses."""
    return InputFileError(
        f"The file has a header ({header_rows} row(s)) but no responses below it. "
        "Check that the survey has answers and export again.",
        file=file,
        row=header_rows + 1,
        expected="at least one data row below the header",
    )


def read_csv_layout(
    path: Path, scan: TextScan, *, dialect: str | None = None, file: str
) -> CsvLayout:
    """Find the delimiter, dialect, header and start of data of a CSV export.

    Raises
    ------
    InputFileError
        No text; header only; a row in the sample with more fields than the header;
        duplicate column names; a header longer than :data:`MAX_SAMPLE_BYTES`.
    """
    size = SAMPLE_BYTES
    while True:
        text, complete = _read_sample(path, scan, size)
        if complete and not text.strip():
            raise InputFileError(
                "The file holds no text (only a byte-order mark or blank space). "
                "Download the export again.",
                file=file,
                expected="a header row and responses",
            )
        delimiter = sniff_delimiter(text, complete=complete)
        try:
            records, ends = parse_records(text, delimiter, complete=complete)
        except csv.Error as exc:
            raise InputFileError(
                f"The file cannot be read as CSV near its start ({exc}); a quoted value "
                "may never be closed. Download the export again.",
                file=file,
                expected="CSV text with balanced quotes",
            ) from None
        lead = 0
        while lead < len(records) and _is_blank(records[lead]):
            lead += 1
        if complete or len(records) > lead + DIALECT_ROWS:
            break
        if size >= MAX_SAMPLE_BYTES:
            raise InputFileError(
                f"The first rows of the file are longer than {MAX_SAMPLE_BYTES >> 20} MB; "
                "this does not look like a survey export.",
                file=file,
                expected="a CSV survey export",
            )
        size *= 4

    candidates = records[lead : lead + DIALECT_ROWS]
    if not candidates:
        raise InputFileError(
            "The file has only blank rows, no header.",
            file=file,
            expected="a header row and responses",
        )
    kind = parse_dialect(dialect, file=file) if dialect else detect_dialect(candidates)
    n_header = header_row_count(kind, candidates)
    if len(candidates) < n_header:
        raise header_only_error(file, lead + len(candidates))
    header_records = candidates[:n_header]
    header_rows = lead + n_header
    width = max(len(r) for r in header_records)
    header = flatten_header(header_records, kind, width=width, file=file, row=lead + 1)

    data = records[header_rows:]
    for i, record in enumerate(data):
        if len(record) > width:
            raise ragged_row_error(file, header_rows + i + 1, len(record), width, delimiter)
    if complete and all(all(cell == "" for cell in record) for record in data):
        raise header_only_error(file, header_rows)
    head = text[: ends[header_rows - 1]]
    data_offset = scan.bom_length + len(head.encode(scan.codec))
    return CsvLayout(delimiter, kind, header, header_rows, data_offset, head.count('"'))


def _parser_error(exc: Exception, layout: CsvLayout, file: str) -> InputFileError:
    message = str(exc)
    width = len(layout.header.columns)
    if match := _TOO_MANY.search(message):
        row = layout.header_rows + int(match.group(2))
        return ragged_row_error(file, row, int(match.group(3)), width, layout.delimiter)
    if match := _OPEN_QUOTE.search(message):
        row = layout.header_rows + int(match.group(1)) + 1
        return InputFileError(
            f"A quoted value starting at row {row} is never closed, so the rest of the "
            "file reads as one cell; the file may be truncated. Download it again.",
            file=file,
            row=row,
            expected='a closing double quote (")',
        )
    if isinstance(exc, pd.errors.ParserWarning):
        row = layout.header_rows + 1
        return ragged_row_error(file, row, width + 1, width, layout.delimiter)
    return InputFileError(
        f"The file cannot be parsed as CSV: {message.strip()}",
        file=file,
        expected="well-formed CSV",
    )


def _blank_rows(chunk: pd.DataFrame) -> np.ndarray:
    """Which rows of a chunk have every cell empty."""
    first_missing = chunk.iloc[:, 0].isna().to_numpy()
    blank = np.zeros(len(chunk), dtype=bool)
    if first_missing.any():
        blank[first_missing] = chunk.loc[first_missing].isna().all(axis=1).to_numpy()
    return blank


def _empty_rows(columns: list[str], rows: np.ndarray) -> pd.DataFrame:
    frame = pd.DataFrame({c: pd.Series([np.nan] * len(rows), dtype=object) for c in columns})
    frame.insert(0, SOURCE_ROW, rows)
    return frame


def _csv_reader(handle, layout: CsvLayout, codec: str, chunk_rows: int):
    return pd.read_csv(
        handle,
        sep=layout.delimiter,
        header=None,
        names=list(range(len(layout.header.columns))),
        index_col=False,
        dtype=object,
        keep_default_na=False,
        na_values=[""],
        skip_blank_lines=False,
        quotechar='"',
        doublequote=True,
        encoding=codec,
        encoding_errors="strict",
        chunksize=chunk_rows,
        engine="c",
    )


def _read_chunks(
    path: Path, scan: TextScan, layout: CsvLayout, chunk_rows: int, file: str, skip: int = 0
) -> Iterator[pd.DataFrame]:
    """Raw chunks from pandas, from data record ``skip`` on (0-based; the records before
    it were read by Arrow), its errors turned into InputFileError.

    The first ``skip`` records are parsed and dropped rather than passed over with
    ``skiprows``: pandas' skipping ignores a quoted line break in a record that starts
    with an empty field (it counts the record as two).
    """
    with open(path, "rb") as handle:
        handle.seek(layout.data_offset)
        reader = None
        while True:
            # ParserWarning: pandas would drop the extra fields of a long first row
            with warnings.catch_warnings():
                warnings.simplefilter("error", pd.errors.ParserWarning)
                try:
                    if reader is None:
                        reader = _csv_reader(handle, layout, scan.codec, chunk_rows)
                    chunk = next(reader)
                except (StopIteration, pd.errors.EmptyDataError):
                    return
                except (pd.errors.ParserError, pd.errors.ParserWarning) as exc:
                    raise _parser_error(exc, layout, file) from None
                except UnicodeDecodeError as exc:
                    raise _damaged(scan, file, exc) from None
            if skip >= len(chunk):
                skip -= len(chunk)
                continue
            if skip:
                chunk, skip = chunk.iloc[skip:].reset_index(drop=True), 0
            yield chunk


def _damaged(scan: TextScan, file: str, exc: UnicodeDecodeError) -> InputFileError:
    return InputFileError(
        f"The file changed or is damaged: a byte cannot be decoded as "
        f"{scan.encoding} ({exc.reason}).",
        file=file,
        expected=f"{scan.encoding} text",
    )


class _ArrowStopped(Exception):
    """Arrow cannot parse the rest of the file; pandas takes over at record ``records``."""

    def __init__(self, records: int) -> None:
        super().__init__(records)
        self.records = records


def _arrow_batches(path: Path, layout: CsvLayout) -> Iterator[pa.RecordBatch]:
    """Record batches of the data rows, every cell as bytes (empty → null)."""
    names = [str(i) for i in range(len(layout.header.columns))]
    source = pa.OSFile(str(path))
    try:
        source.seek(layout.data_offset)
        reader = pacsv.open_csv(
            source,
            read_options=pacsv.ReadOptions(column_names=names, block_size=ARROW_BLOCK_BYTES),
            parse_options=pacsv.ParseOptions(
                delimiter=layout.delimiter,
                quote_char='"',
                double_quote=True,
                escape_char=False,
                newlines_in_values=True,
                # a blank line then has one field and stops Arrow: pandas numbers it
                ignore_empty_lines=False,
            ),
            convert_options=pacsv.ConvertOptions(
                column_types=dict.fromkeys(names, pa.binary()),
                null_values=[""],
                strings_can_be_null=True,
                quoted_strings_can_be_null=True,
            ),
        )
        yield from reader
    finally:
        source.close()


def _arrow_tables(path: Path, layout: CsvLayout, chunk_rows: int) -> Iterator[pa.Table]:
    """Tables of ``chunk_rows`` rows (the last may be shorter); when Arrow stops on a
    record it cannot parse, the rows before it, then :class:`_ArrowStopped`."""
    pending: list[pa.RecordBatch] = []
    rows = done = 0
    try:
        for batch in _arrow_batches(path, layout):
            pending.append(batch)
            rows += batch.num_rows
            while rows >= chunk_rows:
                table = pa.Table.from_batches(pending)
                yield table.slice(0, chunk_rows)
                done += chunk_rows
                rest = table.slice(chunk_rows)
                pending, rows = rest.to_batches(), rest.num_rows
    except pa.ArrowInvalid:
        if rows:
            yield pa.Table.from_batches(pending)
        raise _ArrowStopped(done + rows) from None
    if rows:
        yield pa.Table.from_batches(pending)


def _narrowest(codes: np.ndarray, n: int) -> np.ndarray:
    """Codes in the narrowest integer type for ``n`` categories (as a Categorical keeps
    them: one byte per cell for most survey columns)."""
    for dtype in (np.int8, np.int16):
        if n < np.iinfo(dtype).max:
            return codes.astype(dtype)
    return codes


def _decoded_columns(table: pa.Table, codec: str) -> list[tuple[np.ndarray, list[str]]]:
    """Per column, (codes, distinct texts): codes index the texts, -1 = missing."""
    out = []
    for column in table.columns:
        encoded = pc.dictionary_encode(column)
        if encoded.num_chunks:
            dictionary = encoded.chunk(0).dictionary
            codes = pc.fill_null(
                pa.chunked_array([c.indices for c in encoded.chunks]), -1
            ).to_numpy()
        else:
            dictionary, codes = pa.array([], pa.binary()), np.empty(0, np.int32)
        if codec == "utf-8":  # Arrow checks the bytes; the file scan already did
            texts = dictionary.cast(pa.string()).to_pylist()
        else:
            texts = [value.decode(codec) for value in dictionary.to_pylist()]
        out.append((_narrowest(codes, len(texts)), texts))
    return out


_DONE = object()


def _arrow_producer(path, scan, layout, chunk_rows, out: queue.Queue, stop: threading.Event):
    """Background thread: parse and encode chunks, hand them over one at a time."""

    def put(item) -> bool:
        while not stop.is_set():
            try:
                out.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    try:
        for table in _arrow_tables(path, layout, chunk_rows):
            columns = _decoded_columns(table, scan.codec)
            del table  # not held while waiting for the consumer
            if not put(columns):
                return
        put(_DONE)
    except BaseException as exc:  # handed to the consumer, raised there
        put(exc)


def _frame(columns: list[tuple[np.ndarray, list[str]]]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            i: pd.Categorical.from_codes(codes, pd.Index(texts, dtype=object), validate=False)
            for i, (codes, texts) in enumerate(columns)
        },
        copy=False,
    )


def _arrow_chunks(
    path: Path, scan: TextScan, layout: CsvLayout, chunk_rows: int, file: str
) -> Iterator[pd.DataFrame]:
    """Raw chunks parsed by Arrow ahead of the caller; :class:`_ArrowStopped` when pandas
    must read on."""
    out: queue.Queue = queue.Queue(maxsize=1)
    stop = threading.Event()
    thread = threading.Thread(
        target=_arrow_producer,
        args=(path, scan, layout, chunk_rows, out, stop),
        name="sapat-csv-reader",
        daemon=True,
    )
    thread.start()
    try:
        while True:
            item = out.get()
            if item is _DONE:
                return
            if isinstance(item, UnicodeDecodeError):
                raise _damaged(scan, file, item)
            if isinstance(item, BaseException):
                raise item
            yield _frame(item)
    finally:
        stop.set()
        thread.join()


def _raw_chunks(
    path: Path, scan: TextScan, layout: CsvLayout, chunk_rows: int, file: str
) -> Iterator[pd.DataFrame]:
    """Every data record in order, by Arrow while it can, then by pandas.

    Arrow takes a quote left open at the end of the file as a value running to the end,
    where pandas names the row; so an odd number of quotes in the data (an unclosed
    quote, unless a stray quote inside an unquoted value evens the count) sends the whole
    file to pandas.
    """
    skip = 0
    if scan.codec in ARROW_CODECS and (scan.quotes - layout.header_quotes) % 2 == 0:
        try:
            yield from _arrow_chunks(path, scan, layout, chunk_rows, file)
            return
        except _ArrowStopped as stopped:
            skip = stopped.records
    yield from _read_chunks(path, scan, layout, chunk_rows, file, skip)


def iter_csv_chunks(
    path: Path, scan: TextScan, layout: CsvLayout, *, chunk_rows: int, file: str
) -> Iterator[pd.DataFrame]:
    """Stream the data rows of a CSV export as DataFrames of strings.

    Each chunk has ``source_row`` (int64, spreadsheet row) then the columns of
    ``layout.header`` holding ``str`` or missing (NaN): ``Categorical`` columns from the
    Arrow reader, object columns from pandas'.

    Raises
    ------
    InputFileError
        A row with more fields than the header; an unclosed quote; no data rows.
    """
    columns = layout.header.columns
    first_row = layout.header_rows + 1
    records = 0
    yielded = 0
    # rows whose every field is empty (",,,"): a respondent who answered nothing when
    # data rows follow (kept), formatting left after the data when none do (left out)
    held = np.zeros(0, dtype=np.int64)
    if layout.data_offset < scan.size:
        for chunk in _raw_chunks(path, scan, layout, chunk_rows, file):
            n = len(chunk)
            rows = np.arange(first_row + records, first_row + records + n, dtype=np.int64)
            records += n
            chunk.columns = columns
            blank = _blank_rows(chunk)
            if blank.all():
                held = np.concatenate([held, rows])
                continue
            last = len(blank) - 1 - int(np.argmax(~blank[::-1]))
            if len(held) and yielded:
                yielded += len(held)
                yield _empty_rows(columns, held)
            held = rows[last + 1 :]
            keep = np.ones(len(chunk), dtype=bool)
            keep[last + 1 :] = False
            if not yielded:  # empty rows before the first data row: not respondents
                first = int(np.argmax(~blank))
                keep[:first] = False
            chunk, rows = chunk.loc[keep].reset_index(drop=True), rows[keep]
            if len(chunk):
                chunk.insert(0, SOURCE_ROW, rows)
                yielded += len(chunk)
                yield chunk
    if not yielded:
        raise header_only_error(file, layout.header_rows)
