"""Which text encoding a CSV export is in, and its SHA-256, in one pass over the bytes.

Strategy, in this order:

1. a byte-order mark decides: UTF-8 with BOM, UTF-16 LE or BE (UTF-32 is refused);
2. no BOM but the NUL-byte pattern of UTF-16 text: UTF-16 LE or BE without a BOM;
3. the whole file decodes as strict UTF-8: UTF-8;
4. otherwise Windows-1251, but only when the bytes look like Cyrillic text in that
   code page (mostly Cyrillic letters, no undefined byte 0x98, no control bytes, and
   not UTF-8 Cyrillic with a damaged byte);
5. otherwise :class:`~pipeline.errors.InputFileError` naming the byte offset and line
   of the first byte that is not UTF-8.

Latin-1 and Windows-1252 are never tried: they decode any byte, so a Cyrillic file
read with them "succeeds" as mojibake. Kyrgyz letters ң ө ү are not in Windows-1251,
so a file that holds them can only be UTF-8 (or UTF-16).
"""

from __future__ import annotations

import codecs
import hashlib
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import InputFileError

#: Bytes read per step; bounded memory for any file size.
BLOCK_BYTES = 1 << 24
#: Bytes around the first non-UTF-8 byte on which the Windows-1251 check is judged.
STATS_BYTES = 1 << 20

#: The encodings Sapat reports, as named in :attr:`TextScan.encoding`.
UTF8 = "utf-8"
UTF8_BOM = "utf-8-sig"
CP1251 = "cp1251"
UTF16_LE = "utf-16-le"
UTF16_BE = "utf-16-be"

SUPPORTED = "UTF-8, UTF-8 with BOM, UTF-16 (LE/BE), or Windows-1251 (Cyrillic) text"

_BOMS: tuple[tuple[bytes, str | None], ...] = (
    (b"\xff\xfe\x00\x00", None),  # UTF-32 LE: refused
    (b"\x00\x00\xfe\xff", None),  # UTF-32 BE: refused
    (codecs.BOM_UTF8, UTF8_BOM),
    (codecs.BOM_UTF16_LE, UTF16_LE),
    (codecs.BOM_UTF16_BE, UTF16_BE),
)

# Byte classes for the Windows-1251 plausibility check.
_HIGH = bytes(range(0x80, 0x100))
_CP1251_LETTERS = bytes(range(0xC0, 0x100)) + bytes(
    [0xA8, 0xB8, 0xAA, 0xBA, 0xAF, 0xBF, 0xB2, 0xB3, 0xA5, 0xB4, 0xA1, 0xA2]
)
_CONTROL = bytes([*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20), 0x7F])
_UTF8_CYRILLIC_PAIR = re.compile(rb"[\xd0-\xd3][\x80-\xbf]")
_LETTER_CLASS = b"[" + b"".join(b"\\x%02x" % byte for byte in sorted(_CP1251_LETTERS)) + b"]"
# Cyrillic words: runs of three or more Cyrillic letters in Windows-1251.
_CP1251_WORD = re.compile(_LETTER_CLASS + b"{3,}")
# A high letter glued to an ASCII letter: how accented Latin text (é, ô) looks.
_MIXED_SCRIPT = re.compile(b"[A-Za-z]" + _LETTER_CLASS + b"|" + _LETTER_CLASS + b"[A-Za-z]")


@dataclass(frozen=True)
class TextScan:
    """What one pass over a text file found.

    Attributes
    ----------
    sha256
        Hex digest of the file's bytes.
    size
        File size in bytes.
    encoding
        One of ``utf-8``, ``utf-8-sig``, ``cp1251``, ``utf-16-le``, ``utf-16-be``.
    codec
        The Python codec that decodes the bytes after the BOM.
    bom_length
        Bytes of byte-order mark at the start (0 when none).
    quotes
        Number of ``"`` bytes in the file (meaningful for UTF-8 and Windows-1251: the
        CSV reader checks that quotes pair up before trusting a fast parser).
    """

    sha256: str
    size: int
    encoding: str
    codec: str
    bom_length: int
    quotes: int = 0


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file's bytes, read in bounded blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(BLOCK_BYTES):
            digest.update(block)
    return digest.hexdigest()


def _bom_encoding(head: bytes, file: str) -> tuple[str | None, int]:
    for bom, name in _BOMS:
        if head.startswith(bom):
            if name is None:
                raise InputFileError(
                    "The file is UTF-32 text, which Sapat does not read. "
                    "Save it again as 'CSV UTF-8'.",
                    file=file,
                    expected=SUPPORTED,
                )
            return name, len(bom)
    return None, 0


def _utf16_without_bom(head: bytes) -> str | None:
    """UTF-16 LE/BE guessed from where the NUL bytes sit."""
    sample = head[: 4096 - (min(len(head), 4096) % 2)]
    pairs = len(sample) // 2
    if pairs < 4:
        return None
    even_nul = sample[0::2].count(0)
    odd_nul = sample[1::2].count(0)
    # ASCII characters (delimiters, newlines, digits) leave a NUL in their high byte;
    # Cyrillic ones (U+04xx) do not, so a modest share of NULs, all on one side, will do.
    enough = max(2, 0.05 * pairs)
    if odd_nul >= enough and even_nul <= 0.01 * pairs:
        return UTF16_LE
    if even_nul >= enough and odd_nul <= 0.01 * pairs:
        return UTF16_BE
    return None


def line_of_offset(path: Path, offset: int) -> int:
    """1-based physical line number of the byte at ``offset`` (newlines counted before it)."""
    newlines = 0
    done = 0
    with open(path, "rb") as handle:
        while done < offset and (block := handle.read(min(BLOCK_BYTES, offset - done))):
            newlines += block.count(b"\n")
            done += len(block)
    return newlines + 1


def scan_text_file(path: Path, *, file: str | None = None) -> TextScan:
    """Hash a text export and decide its encoding.

    Reads the file once in blocks of :data:`BLOCK_BYTES` (twice when it is not UTF-8),
    so memory does not grow with file size.

    Raises
    ------
    InputFileError
        Empty file; binary content (NUL bytes); UTF-32; bytes that are neither valid
        UTF-8/UTF-16 nor plausible Windows-1251 Cyrillic (names offset and line).
    """
    file = file or str(path)
    digest = hashlib.sha256()
    nul_at: int | None = None
    bad_at: int | None = None
    # hashlib releases the GIL on large blocks: hash in a worker thread while this
    # thread decodes, which saves most of the hashing time on two cores.
    with open(path, "rb") as handle, ThreadPoolExecutor(1) as hasher:
        head = handle.read(BLOCK_BYTES)
        if not head:
            raise InputFileError(
                "The file is empty (0 bytes). Download the export again.",
                file=file,
                expected="a CSV or XLSX survey export with a header row and responses",
            )
        encoding, bom_length = _bom_encoding(head, file)
        if encoding is None:
            encoding = _utf16_without_bom(head) or UTF8
        codec = UTF8 if encoding == UTF8_BOM else encoding
        decoder = codecs.getincrementaldecoder(codec)("strict")
        check_nul = codec == UTF8
        quotes = 0
        hashing = hasher.submit(digest.update, head)
        block = head[bom_length:]
        base = bom_length
        while True:
            if check_nul and nul_at is None and (at := block.find(b"\x00")) >= 0:
                nul_at = base + at
            quotes += block.count(b'"')
            if bad_at is None:
                pending = len(decoder.getstate()[0])
                try:
                    decoder.decode(block, final=False)
                except UnicodeDecodeError as exc:
                    bad_at = base - pending + exc.start
            base += len(block)
            block = handle.read(BLOCK_BYTES)
            hashing.result()
            if not block:
                break
            hashing = hasher.submit(digest.update, block)
        size = base
        if bad_at is None:
            pending = len(decoder.getstate()[0])
            try:
                decoder.decode(b"", final=True)
            except UnicodeDecodeError as exc:
                bad_at = size - pending + exc.start

    if codec in (UTF16_LE, UTF16_BE):
        if bad_at is not None:
            raise InputFileError(
                f"The file starts like UTF-16 text but byte offset {bad_at} is not valid "
                "UTF-16; the file may be truncated or damaged. Download it again or save "
                "it as 'CSV UTF-8'.",
                file=file,
                expected=SUPPORTED,
            )
        return TextScan(digest.hexdigest(), size, encoding, codec, bom_length, quotes)

    if nul_at is not None:
        raise InputFileError(
            f"The file holds binary data (a NUL byte at byte offset {nul_at}, "
            f"line {line_of_offset(path, nul_at)}), not CSV text. Export the survey "
            "again as CSV or XLSX.",
            file=file,
            row=line_of_offset(path, nul_at),
            expected="a CSV text file or an XLSX workbook",
        )
    if bad_at is None:
        return TextScan(digest.hexdigest(), size, encoding, codec, bom_length, quotes)
    if encoding == UTF8 and _looks_like_cp1251(path, file, bad_at):
        return TextScan(digest.hexdigest(), size, CP1251, CP1251, 0, quotes)
    raise InputFileError(
        "The file is not valid UTF-8 ("
        + _first_bad_byte(path, bad_at)
        + "), and its bytes do not look like Windows-1251 Cyrillic text either. Open "
        "the file and save it again as 'CSV UTF-8', or download the export again.",
        file=file,
        row=line_of_offset(path, bad_at),
        expected=SUPPORTED,
    )


def _first_bad_byte(path: Path, offset: int) -> str:
    with open(path, "rb") as handle:
        handle.seek(offset)
        byte = handle.read(1)
    return (
        f"byte 0x{byte.hex().upper()} at byte offset {offset}, line "
        f"{line_of_offset(path, offset)}, cannot be decoded"
    )


_CP1251_PUNCTUATION = bytes(
    [0xAB, 0xBB, 0x96, 0x97, 0x93, 0x94, 0x84, 0x85, 0xB9, 0x91, 0x92, 0xA0]
)


def _looks_like_cp1251(path: Path, file: str, bad_at: int) -> bool:
    """Whether a non-UTF-8 file reads as Cyrillic text in Windows-1251.

    Judged on :data:`STATS_BYTES` around the first byte that is not UTF-8: true when
    the non-ASCII bytes there are mostly Cyrillic letters in that code page, those
    letters mostly stand in words of three or more Cyrillic letters rather than glued
    to Latin letters (as é and ô are in Western text, whose bytes fall in the same
    range), and they are not UTF-8 Cyrillic with a damaged byte (many lead byte
    D0–D3 + continuation byte pairs). The whole file must also be free of control
    bytes to speak of. Raises when a byte 0x98, which Windows-1251 leaves undefined,
    is the only thing wrong.
    """
    with open(path, "rb") as handle:
        handle.seek(max(0, bad_at - STATS_BYTES // 4))
        window = handle.read(STATS_BYTES)
    # typographic punctuation Russian and Kyrgyz text use (« » — – “ ” „ … № ‘ ’,
    # no-break space) is neither evidence for nor against Cyrillic letters
    high = len(window) - len(window.translate(None, _HIGH))
    high -= len(window) - len(window.translate(None, _CP1251_PUNCTUATION))
    letters = len(window) - len(window.translate(None, _CP1251_LETTERS))
    pairs = _UTF8_CYRILLIC_PAIR.subn(b"", window)[1]
    in_words = len(window) - len(_CP1251_WORD.sub(b"", window))
    mixed = _MIXED_SCRIPT.subn(b"", window)[1]
    if high and 2 * pairs > 0.3 * high:
        raise InputFileError(
            "The file is UTF-8 text, but it is damaged: "
            + _first_bad_byte(path, bad_at)
            + ". Parts of it may have been saved in another encoding or cut off. Download "
            "the export again, or open it and save it again as 'CSV UTF-8'.",
            file=file,
            row=line_of_offset(path, bad_at),
            expected="valid UTF-8 throughout",
        )
    if high == 0 or letters < 0.7 * high:
        return False
    if in_words < 0.5 * letters or mixed > 0.1 * letters:
        return False

    control = size = 0
    first_undefined: int | None = None
    with open(path, "rb") as handle:
        while block := handle.read(BLOCK_BYTES):
            control += len(block) - len(block.translate(None, _CONTROL))
            if first_undefined is None and (at := block.find(b"\x98")) >= 0:
                first_undefined = size + at
            size += len(block)
    if control > max(2, size // 1000):
        return False
    if first_undefined is not None:
        line = line_of_offset(path, first_undefined)
        raise InputFileError(
            f"The file looks like Windows-1251 Cyrillic text, but byte 0x98 at byte offset "
            f"{first_undefined} (line {line}) is undefined in Windows-1251. The file may "
            "be damaged; save it again as 'CSV UTF-8'.",
            file=file,
            row=line,
            expected=SUPPORTED,
        )
    return True
