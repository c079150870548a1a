"""CSV layout and streaming: delimiters, quoting, row numbers, errors found mid-stream."""

from __future__ import annotations

import csv
import io

import pandas as pd
import pytest

from pipeline.errors import InputFileError
from pipeline.readers import csvfile, open_export, sniff_delimiter


def _write(tmp_path, text: str, name: str = "export.csv", encoding: str = "utf-8"):
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


@pytest.mark.parametrize("delimiter", [",", ";", "\t"])
def test_sniff_delimiter_finds_the_consistent_one(delimiter):
    rows = [
        ["Факультет", "Суроо, 1", "Суроо; 2"],
        ["Укук", "4", "5"],
        ["Экономика", "Жакшы, бирок", "3"],
    ]
    out = io.StringIO()
    csv.writer(out, delimiter=delimiter).writerows(rows)
    assert sniff_delimiter(out.getvalue()) == delimiter


def test_sniff_delimiter_prefers_semicolon_when_commas_are_decimal_marks():
    text = "id;score;weight\n1;3,5;0,25\n2;4;1,5\n3;2,5;1\n"
    assert sniff_delimiter(text) == ";"


def test_single_column_file_defaults_to_comma(tmp_path):
    export = open_export(_write(tmp_path, "Comments\nGood\nBad\n"))
    assert export.delimiter == ","
    assert export.columns == ["Comments"]
    assert export.read_all()["Comments"].tolist() == ["Good", "Bad"]


def test_quoted_delimiters_newlines_and_doubled_quotes_survive(tmp_path):
    text = 'id;comment\r\n1;"a; b\r\nc ""d"""\r\n2;plain\r\n'
    frame = open_export(_write(tmp_path, text)).read_all()
    assert frame["comment"].tolist() == ['a; b\r\nc "d"', "plain"]
    assert frame["source_row"].tolist() == [2, 3]


def test_short_rows_are_padded_with_missing(tmp_path):
    # Excel drops trailing empty cells on some rows when saving CSV
    frame = open_export(_write(tmp_path, "a,b,c\n1,2,3\n4\n5,6\n")).read_all()
    assert frame["a"].tolist() == ["1", "4", "5"]
    assert frame["c"].isna().tolist() == [False, True, True]


def test_whitespace_and_lookalike_missing_markers_are_kept_as_text(tmp_path):
    frame = open_export(_write(tmp_path, "a,b,c\nNA, ,null\n")).read_all()
    assert frame.loc[0, ["a", "b", "c"]].tolist() == ["NA", " ", "null"]


def test_blank_lines_above_the_header_count_as_rows(tmp_path):
    export = open_export(_write(tmp_path, "\n\nid,q\n1,2\n"))
    assert export.header_rows == 3
    assert export.read_all()["source_row"].tolist() == [4]


def test_empty_header_cell_is_named_after_its_column_letter(tmp_path):
    export = open_export(_write(tmp_path, "id,,q\n1,x,2\n"))
    assert export.columns == ["id", "(column B)", "q"]


def test_column_named_source_row_is_refused(tmp_path):
    with pytest.raises(InputFileError) as caught:
        open_export(_write(tmp_path, "source_row,q\n1,2\n"))
    assert caught.value.column == "source_row"


def test_row_numbers_stay_right_across_chunks_and_multiline_cells(tmp_path):
    lines = ["id,text"]
    expected = []
    for i in range(1, 2001):
        if i % 97 == 0:
            lines.append("")  # a blank line between data rows: a row with no answer
            expected.append((i + 1, None))
        elif i % 13 == 0:
            lines.append(f'{i},"two\nlines"')
            expected.append((i + 1, str(i)))
        else:
            lines.append(f"{i},t")
            expected.append((i + 1, str(i)))
    export = open_export(_write(tmp_path, "\n".join(lines) + "\n"), chunk_rows=150)
    chunks = list(export.iter_chunks())
    assert all(len(c) <= 150 for c in chunks)
    frame = pd.concat(chunks, ignore_index=True)
    ids = [None if pd.isna(v) else v for v in frame["id"]]
    assert list(zip(frame["source_row"], ids, strict=True)) == expected


def test_ragged_row_after_the_sample_is_found_while_streaming(tmp_path, monkeypatch):
    monkeypatch.setattr(csvfile, "SAMPLE_BYTES", 64)
    lines = ["id,text,score"] + [f'{i},"a\nb",3' for i in range(1, 500)]
    lines[400] = "400,x,3,extra"
    path = _write(tmp_path, "\n".join(lines) + "\n")
    export = open_export(path, chunk_rows=50)
    with pytest.raises(InputFileError) as caught:
        export.read_all()
    assert caught.value.row == 401
    assert caught.value.column == "D"


def test_unclosed_quote_at_the_end_names_its_row(tmp_path, monkeypatch):
    monkeypatch.setattr(csvfile, "SAMPLE_BYTES", 32)
    lines = ["id,text"] + [f"{i},t" for i in range(1, 50)] + ['50,"never closed']
    path = _write(tmp_path, "\n".join(lines) + "\n")
    with pytest.raises(InputFileError) as caught:
        open_export(path).read_all()
    assert caught.value.row == 51
    assert "never closed" in caught.value.message


def test_header_longer_than_the_first_sample_is_still_found(tmp_path, monkeypatch):
    monkeypatch.setattr(csvfile, "SAMPLE_BYTES", 16)
    header = ",".join(f"Суроо номер {i}" for i in range(50))
    row = ",".join(str(i % 5 + 1) for i in range(50))
    export = open_export(_write(tmp_path, f"{header}\n{row}\n{row}\n"))
    assert len(export.columns) == 50
    assert export.read_all()["source_row"].tolist() == [2, 3]


def test_rows_of_only_delimiters_mean_header_only(tmp_path):
    with pytest.raises(InputFileError, match="no responses"):
        open_export(_write(tmp_path, "a,b\n,\n,\n"))


def test_crlf_and_cr_line_ends_are_read(tmp_path):
    for ending in ("\r\n", "\r"):
        frame = open_export(
            _write(tmp_path, ending.join(["a,b", "1,2", "3,4"]) + ending)
        ).read_all()
        assert frame["source_row"].tolist() == [2, 3]
        assert frame["b"].tolist() == ["2", "4"]


def test_cp1251_semicolon_file_streams_in_chunks(tmp_path):
    text = "Вопрос;Ответ\n" + "".join(f"Вопрос {i};Полностью согласен\n" for i in range(300))
    export = open_export(_write(tmp_path, text, encoding="cp1251"), chunk_rows=64)
    assert (export.encoding, export.delimiter) == ("cp1251", ";")
    frame = export.read_all()
    assert len(frame) == 300
    assert frame["Ответ"].unique().tolist() == ["Полностью согласен"]
