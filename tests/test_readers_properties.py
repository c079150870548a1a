"""Property-based tests: whatever arrives, the readers give an Export or an InputFileError.

Inputs: random bytes; committed fixtures (CSV and XLSX) mutated by flipping, inserting,
deleting and truncating bytes; generated CSVs with random delimiters, quoting, BOMs and
encodings, sometimes mutated. A second property checks that well-formed generated CSVs
read back exactly.
"""

from __future__ import annotations

import codecs
import csv
import io
import itertools
import zipfile
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from pipeline.errors import InputFileError
from pipeline.readers import SOURCE_ROW, Export, csvfile, open_export

DATA = Path(__file__).resolve().parent / "data"
FIXTURES = sorted(
    p
    for folder in (DATA / "exports", DATA / "encodings")
    for p in folder.iterdir()
    if p.suffix in (".csv", ".tsv", ".txt", ".xlsx")
)
FIXTURE_BYTES = {p.name: p.read_bytes() for p in FIXTURES}

WORDS = [
    "Факультет",
    "Экономический",
    "согласен",
    "Полностью",
    "Өтө",
    "жакшы",
    "көңүлдүү",
    "Ооба",
    "library",
    "Timestamp",
    "4",
    "5",
    "3,5",
    "A1",
    "—",
    "«да»",
    "",
    " ",
]
TOKENS = [*WORDS, ",", ";", "\t", '"', "\n", "\r\n", "'", "[Row]"]
BOMS = [b"", codecs.BOM_UTF8, codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE, b"\xff\xfe\x00\x00"]
ENCODINGS = ["utf-8", "utf-8-sig", "cp1251", "utf-16", "utf-16-le", "utf-16-be"]
INTERESTING = [b'"', b",", b";", b"\t", b"\n", b"\r", b"\x00", b"\xd0", b"\x98", b"\xff\xfe", b"PK"]

_counter = itertools.count()


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("readers_properties")


def _mutate(data: bytes, edits: list[tuple[int, float, bytes]]) -> bytes:
    out = bytearray(data)
    for op, where, payload in edits:
        at = int(where * len(out))
        if op == 0 and out:  # flip a byte
            at = min(at, len(out) - 1)
            out[at] ^= payload[0] if payload and payload[0] else 0xFF
        elif op == 1:  # insert
            out[at:at] = payload
        elif op == 2:  # delete a stretch
            del out[at : at + 1 + len(payload) * 7]
        else:  # truncate
            del out[at:]
    return bytes(out)


edits = st.lists(
    st.tuples(
        st.integers(0, 3),
        st.floats(0, 1, allow_nan=False),
        st.one_of(st.sampled_from(INTERESTING), st.binary(min_size=1, max_size=8)),
    ),
    max_size=4,
)


@st.composite
def generated_csv(draw) -> bytes:
    n_cols = draw(st.integers(1, 6))
    n_rows = draw(st.integers(0, 12))
    cells = st.lists(st.sampled_from(TOKENS), max_size=4).map("".join)
    rows = [[draw(cells) for _ in range(n_cols)] for _ in range(n_rows + 1)]
    rows[1:] = [r + [draw(cells)] for r in rows[1:] if draw(st.booleans())] or rows[1:]
    delimiter = draw(st.sampled_from([",", ";", "\t", "|"]))
    quoting = draw(st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL, csv.QUOTE_NONNUMERIC]))
    out = io.StringIO()
    csv.writer(out, delimiter=delimiter, quoting=quoting, lineterminator="\r\n").writerows(rows)
    text = out.getvalue()
    encoding = draw(st.sampled_from(ENCODINGS))
    data = text.encode(encoding, errors="replace")
    if draw(st.booleans()):
        data = draw(st.sampled_from(BOMS)) + data
    return _mutate(data, draw(edits))


@st.composite
def mutated_fixture(draw) -> tuple[str, bytes]:
    name = draw(st.sampled_from(sorted(FIXTURE_BYTES)))
    return name, _mutate(FIXTURE_BYTES[name], draw(edits))


XLSX_FIXTURES = [name for name in sorted(FIXTURE_BYTES) if name.endswith(".xlsx")]
XML_PIECES = [b"<", b">", b'"', b"</c>", b"<c r=", b"A1", b"t=", b"s", b"&amp;", b"\xd0"]


@st.composite
def mutated_workbook_part(draw) -> tuple[str, bytes]:
    """A valid ZIP whose XML parts (sheet, shared strings, workbook) are mutated."""
    name = draw(st.sampled_from([n for n in XLSX_FIXTURES if n != "truncated.xlsx"]))
    source = zipfile.ZipFile(io.BytesIO(FIXTURE_BYTES[name]))
    parts = [n for n in source.namelist() if n.endswith(".xml") or n.endswith(".rels")]
    target = draw(st.sampled_from(parts))
    part_edits = draw(
        st.lists(
            st.tuples(
                st.integers(0, 3),
                st.floats(0, 1, allow_nan=False),
                st.one_of(st.sampled_from(XML_PIECES), st.binary(min_size=1, max_size=6)),
            ),
            min_size=1,
            max_size=3,
        )
    )
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for member in source.namelist():
            data = source.read(member)
            if member == target:
                data = _mutate(data, part_edits)
            archive.writestr(member, data)
    return name, out.getvalue()


inputs = st.one_of(
    st.tuples(st.sampled_from(["x.csv", "x.xlsx", "x.txt"]), st.binary(max_size=3000)),
    mutated_fixture(),
    mutated_workbook_part(),
    st.tuples(st.sampled_from(["g.csv", "g.txt"]), generated_csv()),
)


def _check_export(export: Export, frame: pd.DataFrame) -> None:
    assert len(set(export.columns)) == len(export.columns)
    assert list(frame.columns) == [SOURCE_ROW, *export.columns]
    rows = frame[SOURCE_ROW]
    assert rows.is_monotonic_increasing and rows.is_unique
    assert rows.min() > export.header_rows
    for column in export.columns:
        assert all(isinstance(v, str) or pd.isna(v) for v in frame[column])


@settings(
    max_examples=500,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(case=inputs)
def test_any_input_gives_an_export_or_an_input_file_error(workdir, case):
    name, data = case
    path = workdir / f"{next(_counter)}-{name}"
    path.write_bytes(data)
    try:
        export = open_export(path, chunk_rows=3)
        frame = export.read_all()
    except InputFileError as error:
        assert error.file == str(path)
        assert error.message
        event(f"InputFileError: {error.message[:25]}")
        return
    finally:
        path.unlink()
    event(f"Export ({export.kind}, {export.dialect})")
    _check_export(export, frame)


# --- well-formed CSVs read back exactly -------------------------------------------------

HEADER_WORDS = ["Суроо", "Вопрос", "Question", "Жооп", "оценка", "q"]
VALUE_WORDS = [
    "Факультет",
    "Экономический",
    "согласен",
    "Өтө жакшы",
    "көңүлдүү",
    "library",
    "4",
    "3,5",
    "«да»",
    " ",
    "—",
]


@st.composite
def well_formed(draw):
    delimiter = draw(st.sampled_from([",", ";", "\t"]))
    n_cols = draw(st.integers(2, 5))
    columns = [f"c{i} {draw(st.sampled_from(HEADER_WORDS))}" for i in range(n_cols)]
    pieces = [*VALUE_WORDS, delimiter, '"', "\n", "\r\n", ""]
    cell = st.lists(st.sampled_from(pieces), max_size=3).map(" ".join).map(str.strip)
    rows = draw(st.lists(st.lists(cell, min_size=n_cols, max_size=n_cols), min_size=1, max_size=15))
    encoding = draw(st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "utf-16-be-bom", "cp1251"]))
    return delimiter, columns, rows, encoding


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=well_formed())
def test_well_formed_csv_reads_back_exactly(workdir, case):
    delimiter, columns, rows, encoding = case
    out = io.StringIO()
    writer = csv.writer(out, delimiter=delimiter, lineterminator="\r\n")
    writer.writerow(columns)
    writer.writerows(rows)
    text = out.getvalue()
    if encoding == "cp1251":
        try:
            data = text.encode("cp1251")
        except UnicodeEncodeError:
            assume(False)
        # a Windows-1251 file must read as Cyrillic: keep to ones with real words in them
        assume("Факультет" in text or "Экономический" in text or "согласен" in text)
    elif encoding == "utf-16-be-bom":
        data = codecs.BOM_UTF16_BE + text.encode("utf-16-be")
    else:
        data = text.encode(encoding)
    # rows whose cells are all empty are kept between data rows (a respondent who answered
    # nothing), left out before the first and after the last data row
    filled = [i for i, r in enumerate(rows) if any(v != "" for v in r)]
    expected = [(i + 2, r) for i, r in enumerate(rows) if filled and filled[0] <= i <= filled[-1]]
    path = workdir / f"{next(_counter)}-wf.csv"
    path.write_bytes(data)
    try:
        if not expected:
            with pytest.raises(InputFileError, match="no responses"):
                open_export(path).read_all()
            return
        export = open_export(path, chunk_rows=4)
        frame = export.read_all()
    finally:
        path.unlink()
    assert export.delimiter == delimiter
    assert export.columns == columns
    assert frame[SOURCE_ROW].tolist() == [n for n, _ in expected]
    got = frame[columns].astype(object).where(frame[columns].notna(), "").values.tolist()
    assert got == [r for _, r in expected]


# --- the Arrow reader and pandas' parser agree ------------------------------------------

RAW_PIECES = [
    "Факультет",
    "согласен",
    "4",
    "3,5",
    " ",
    '"',
    '""',
    '"a,b"',
    '"x\ny"',
    'x"y',
    ",",
    ";",
    "\n",
    "\r\n",
    "\r",
    "\n\n",
    "",
]


@st.composite
def raw_csv(draw):
    delimiter = draw(st.sampled_from([",", ";"]))
    n_cols = draw(st.integers(1, 4))
    header = delimiter.join(f"c{i}" for i in range(n_cols))
    cell = st.sampled_from(["Факультет", "4", "", '"3,5"', '"x\ny"', '"a""b"', " "])
    good = st.lists(cell, min_size=n_cols, max_size=n_cols).map(delimiter.join)
    messy = st.lists(st.sampled_from(RAW_PIECES), max_size=6).map("".join)
    short = st.lists(cell, min_size=1, max_size=n_cols).map(delimiter.join)
    long = st.lists(cell, min_size=n_cols + 1, max_size=n_cols + 2).map(delimiter.join)
    blank = st.sampled_from(["", " ", delimiter * (n_cols - 1)])
    # mostly well-formed rows, so that Arrow often reads a while before something stops it
    line = st.sampled_from([good] * 30 + [short, long, blank, messy]).flatmap(lambda s: s)
    lines = draw(st.lists(line, min_size=12, max_size=40))
    ending = draw(st.sampled_from(["\n", "\r\n", ""]))
    encoding = draw(st.sampled_from(["utf-8", "utf-8-sig", "cp1251"]))
    # small Arrow blocks, so that Arrow can stop in mid-file and hand over to pandas
    block = draw(st.sampled_from([256, 1024, 1 << 22]))
    return header + "\n" + "\n".join(lines) + ending, encoding, draw(st.integers(1, 6)), block


def _read_outcome(path, chunk_rows):
    try:
        frame = open_export(path, chunk_rows=chunk_rows).read_all()
    except InputFileError as error:
        return ("error", error.message, error.row, error.column)
    values = frame.astype(object).where(frame.notna(), None)
    return ("frame", list(frame.columns), values.values.tolist())


@pytest.mark.slow
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=raw_csv())
def test_arrow_reader_and_pandas_parser_give_the_same_rows_or_error(workdir, case):
    """Messy CSV text (stray and unclosed quotes, blank lines, short and long rows, line
    breaks in quotes, CR endings) read with the Arrow reader and with pandas alone:
    the same rows, row numbers and values, or the same error."""
    text, encoding, chunk_rows, block = case
    try:
        data = text.encode(encoding)
    except UnicodeEncodeError:
        assume(False)
    if encoding == "cp1251":  # must read as Cyrillic, else it is not a cp1251 file
        data = "Факультет согласен;\n".encode("cp1251") + data
    path = workdir / f"{next(_counter)}-raw.csv"
    path.write_bytes(data)
    handed_over = []  # where pandas took over from Arrow, if it did
    read_chunks = csvfile._read_chunks

    def spy(*args, **kwargs):
        handed_over.append(args[5] if len(args) > 5 else kwargs.get("skip", 0))
        return read_chunks(*args, **kwargs)

    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(csvfile, "_read_chunks", spy)
            patch.setattr(csvfile, "ARROW_BLOCK_BYTES", block)
            with_arrow = _read_outcome(path, chunk_rows)
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(csvfile, "ARROW_CODECS", frozenset())
            pandas_only = _read_outcome(path, chunk_rows)
    finally:
        path.unlink()
    event(with_arrow[0])
    event(
        "Arrow only"
        if not handed_over
        else "pandas only"
        if handed_over == [0]
        else "Arrow, then pandas"
    )
    assert with_arrow == pandas_only


@pytest.mark.parametrize("position", [1, 17, 45, 80])
@pytest.mark.parametrize(
    "bad",
    ["4,4", "", "4,4,4,4", '"never closed', 'x"y,1,2'],
    ids=["short row", "blank line", "long row", "unclosed quote", "stray quote"],
)
def test_arrow_hands_over_to_pandas_in_mid_file_with_the_same_result(tmp_path, position, bad):
    """A record Arrow cannot take, early or late in the file: the rows before it come
    from Arrow, the rest from pandas, and the result equals pandas' alone."""
    cells = ["Факультет", "4", "", '"3,5"', '"x\ny"', '"a""b"', " "]
    rows = [",".join(cells[(i + j) % len(cells)] for j in range(3)) for i in range(100)]
    rows[position] = bad
    path = tmp_path / "file.csv"
    path.write_text("c0,c1,c2\n" + "\n".join(rows) + "\n", encoding="utf-8")
    for chunk_rows in (7, 1000):
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(csvfile, "ARROW_BLOCK_BYTES", 256)
            patch.setattr(csvfile, "SAMPLE_BYTES", 64)  # the layout sees the first rows only
            with_arrow = _read_outcome(path, chunk_rows)
            patch.setattr(csvfile, "ARROW_CODECS", frozenset())
            pandas_only = _read_outcome(path, chunk_rows)
        assert with_arrow == pandas_only
