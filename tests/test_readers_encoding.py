"""Encoding detection: golden files per encoding, and what must never happen."""

from __future__ import annotations

import codecs
import hashlib
from pathlib import Path

import pytest

from pipeline.errors import InputFileError
from pipeline.readers import encoding, open_export, scan_text_file

ENCODINGS = Path(__file__).resolve().parent / "data" / "encodings"

KYRGYZ = [
    ["Факультет", "Суроо", "Жооп"],
    ["Информатика", "Окутуунун сапаты", "Өтө жакшы"],
    ["Экономика", "Китепкана, ресурстар", "Жакшы эмес"],
    ["Укук", "Мугалимдер менен байланыш", "Ооба — көңүлдүү"],
]
RUSSIAN = [
    ["Факультет", "Вопрос", "Ответ"],
    ["Экономический", "Качество преподавания", "Полностью согласен"],
    ["Юридический", "Библиотека; ресурсы", "Скорее не согласен"],
    ["Филологический", "Ёмкость аудиторий — «достаточно»", "Затрудняюсь ответить"],
]


@pytest.mark.parametrize(
    ("name", "encoding_name", "delimiter", "table"),
    [
        ("ky_utf8.csv", "utf-8", ",", KYRGYZ),
        ("ky_utf8_bom.csv", "utf-8-sig", ",", KYRGYZ),
        ("ru_cp1251_semicolon.csv", "cp1251", ";", RUSSIAN),
        ("ky_utf16le_bom_tab.txt", "utf-16-le", "\t", KYRGYZ),
        ("ru_utf16be_bom.csv", "utf-16-be", ";", RUSSIAN),
    ],
)
def test_golden_file_is_read_back_exactly(name, encoding_name, delimiter, table):
    export = open_export(ENCODINGS / name)
    assert export.encoding == encoding_name
    assert export.delimiter == delimiter
    assert export.columns == table[0]
    frame = export.read_all()
    assert frame[export.columns].values.tolist() == table[1:]
    assert frame["source_row"].tolist() == [2, 3, 4]


def test_cp1251_file_is_never_read_as_latin1():
    export = open_export(ENCODINGS / "ru_cp1251_semicolon.csv")
    text = " ".join(export.columns) + " ".join(export.read_all().iloc[:, 1:].stack().tolist())
    latin1 = (ENCODINGS / "ru_cp1251_semicolon.csv").read_bytes().decode("latin-1")
    assert "Ã" not in text and "Ð" not in text and "Ô" not in text
    assert "Факультет" in text
    assert export.columns[0] != latin1.split(";")[0]


def test_kyrgyz_letters_only_come_from_utf8():
    # ң ө ү do not exist in Windows-1251: a file holding them decodes as UTF-8
    scan = scan_text_file(ENCODINGS / "ky_utf8.csv")
    assert scan.encoding == "utf-8"
    with pytest.raises(UnicodeEncodeError):
        "көңүлдүү".encode("cp1251")


def test_damaged_utf8_kyrgyz_is_not_taken_for_cp1251_and_names_the_byte():
    path = ENCODINGS / "ky_utf8_damaged.csv"
    with pytest.raises(InputFileError) as caught:
        open_export(path)
    error = caught.value
    assert "damaged" in error.message
    assert "offset 95" in error.message
    assert error.row == 2


def test_western_cp1252_text_is_refused_not_guessed(tmp_path):
    with pytest.raises(InputFileError) as caught:
        open_export(ENCODINGS / "fr_cp1252.csv")
    error = caught.value
    assert "not valid UTF-8" in error.message
    assert "offset 6" in error.message  # the é of "Faculté"
    assert "Windows-1251" in error.expected


def test_scan_hashes_the_whole_file_including_the_bom():
    path = ENCODINGS / "ky_utf8_bom.csv"
    scan = scan_text_file(path)
    assert scan.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert (scan.bom_length, scan.codec, scan.size) == (3, "utf-8", path.stat().st_size)


def test_multibyte_characters_split_across_blocks_still_decode(tmp_path, monkeypatch):
    monkeypatch.setattr(encoding, "BLOCK_BYTES", 7)
    path = tmp_path / "ky.csv"
    text = "а,б\n" + "көңүлдүү,өтө\n" * 20
    path.write_bytes(text.encode("utf-8"))
    scan = scan_text_file(path)
    assert scan.encoding == "utf-8"
    assert scan.sha256 == hashlib.sha256(text.encode()).hexdigest()


def test_offset_of_a_bad_byte_is_exact_across_blocks(tmp_path, monkeypatch):
    monkeypatch.setattr(encoding, "BLOCK_BYTES", 5)
    data = "id,текст\n1,ок\n2,".encode() + b"\xff" + b"\n"
    path = tmp_path / "bad.csv"
    path.write_bytes(data)
    with pytest.raises(InputFileError) as caught:
        scan_text_file(path)
    bad = data.index(b"\xff")
    assert f"offset {bad}" in caught.value.message
    assert caught.value.row == 3


def test_truncated_utf8_sequence_at_the_end_is_reported(tmp_path):
    path = tmp_path / "cut.csv"
    path.write_bytes("a,b\n1,ө".encode()[:-1])
    with pytest.raises(InputFileError, match="offset"):
        scan_text_file(path)


def test_utf16_without_bom_is_recognised(tmp_path):
    path = tmp_path / "u16.csv"
    path.write_bytes("Факультет,Жооп\nУкук,Ооба\n".encode("utf-16-le"))
    export = open_export(path)
    assert export.encoding == "utf-16-le"
    assert export.read_all()["Жооп"].tolist() == ["Ооба"]


def test_utf32_is_refused_with_advice(tmp_path):
    path = tmp_path / "u32.csv"
    path.write_bytes(codecs.BOM_UTF32_LE + "a,b\n1,2\n".encode("utf-32-le"))
    with pytest.raises(InputFileError, match="UTF-32"):
        open_export(path)


def test_odd_length_utf16_is_reported_as_damaged(tmp_path):
    path = tmp_path / "u16.csv"
    path.write_bytes(codecs.BOM_UTF16_LE + "a,b\n1,2\n".encode("utf-16-le") + b"\x00")
    with pytest.raises(InputFileError, match="UTF-16"):
        open_export(path)


def test_undefined_cp1251_byte_is_named(tmp_path):
    path = tmp_path / "ru.csv"
    path.write_bytes("Факультет;Ответ\nЮридический;Согласен".encode("cp1251") + b"\x98\n")
    with pytest.raises(InputFileError, match="0x98") as caught:
        open_export(path)
    assert caught.value.row == 2


def test_cp1251_detected_when_cyrillic_starts_late_in_the_file(tmp_path):
    path = tmp_path / "late.csv"
    rows = "id;comment\n" + "".join(f"{i};ok\n" for i in range(20_000))
    path.write_bytes((rows + "20000;Библиотека работает хорошо\n").encode("cp1251"))
    export = open_export(path)
    assert export.encoding == "cp1251"
    assert export.read_all()["comment"].iloc[-1] == "Библиотека работает хорошо"


def test_nul_bytes_in_a_text_file_mean_binary(tmp_path):
    path = tmp_path / "bin.csv"
    path.write_bytes(b"a,b\n1,2\n" + b"\x00\x01\x02" * 10)
    with pytest.raises(InputFileError, match="binary"):
        open_export(path)
