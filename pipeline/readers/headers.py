"""Turn the header rows of an export into one flat, unique list of column names.

- One header row: the cells, stripped.
- Two header rows (SurveyMonkey; any XLSX whose first header row has merged group
  titles): ``"Question | Sub-option"``. The sub-option is left out when it is empty,
  equals the question, or is SurveyMonkey's ``Response``/``Open-Ended Response``;
  the question is left out when it is empty. SurveyMonkey writes a grid question's
  text only above its first column, so an empty question cell above a non-empty
  sub-option takes the question text from its left.
- Qualtrics (three rows): the code row names the columns; the question-text row is
  kept as ``labels`` and the ImportId row as ``ids``.
- An empty heading becomes ``(column D)``, after its spreadsheet column letter.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from pipeline.errors import InputFileError
from pipeline.readers.dialects import SURVEYMONKEY_RESPONSE, Dialect, import_id

#: Joins a group title or question and its sub-option in a flattened heading.
SEPARATOR = " | "

#: Name of the provenance column added to every chunk.
SOURCE_ROW = "source_row"


@dataclass(frozen=True)
class Header:
    """A flattened header.

    Attributes
    ----------
    columns
        One unique name per column.
    labels
        Qualtrics question texts (second header row), else ``None``.
    ids
        Qualtrics ImportIds (third header row), else ``None``.
    """

    columns: list[str]
    labels: list[str] | None = None
    ids: list[str] | None = None


def column_letter(index: int) -> str:
    """Spreadsheet letter of a 0-based column index: 0 → ``A``, 27 → ``AB``."""
    letters = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        letters = chr(ord("A") + rest) + letters
    return letters


def _padded(row: Sequence[str], width: int) -> list[str]:
    cells = [(cell or "").strip() for cell in row[:width]]
    return cells + [""] * (width - len(cells))


def _combined(top: str, sub: str) -> str:
    if not sub or sub == top or sub.casefold() in SURVEYMONKEY_RESPONSE:
        return top
    if not top:
        return sub
    return f"{top}{SEPARATOR}{sub}"


def flatten_header(
    rows: Sequence[Sequence[str]],
    dialect: Dialect,
    *,
    width: int,
    first_column: int = 0,
    file: str | None = None,
    row: int | None = None,
) -> Header:
    """Flatten ``rows`` (the header rows, merged cells already filled in).

    Parameters
    ----------
    rows
        Header rows, top first.
    dialect
        The export dialect.
    width
        Number of columns.
    first_column
        0-based spreadsheet column of the first cell (for ``(column D)`` names).
    file, row
        Where the header is, for error messages (``row``: spreadsheet row of its
        first line).

    Raises
    ------
    InputFileError
        Two columns end up with the same name, or a column is named ``source_row``.
    """
    grid = [_padded(r, width) for r in rows]
    labels = ids = None
    if dialect is Dialect.QUALTRICS:
        names = grid[0]
        if len(grid) >= 2:
            labels = grid[1]
        if len(grid) >= 3:
            ids = [import_id(cell) or cell for cell in grid[2]]
    elif len(grid) >= 2:
        tops, subs = grid[0], grid[1]
        if dialect is Dialect.SURVEYMONKEY:
            previous = ""
            for i, (top, sub) in enumerate(zip(tops, subs, strict=True)):
                if top:
                    previous = top
                elif sub:
                    tops[i] = previous
        names = [_combined(top, sub) for top, sub in zip(tops, subs, strict=True)]
    else:
        names = grid[0]
    columns = [
        name or f"(column {column_letter(first_column + i)})" for i, name in enumerate(names)
    ]
    _check_unique(columns, first_column=first_column, file=file, row=row)
    return Header(columns, labels, ids)


def _check_unique(
    columns: list[str], *, first_column: int, file: str | None, row: int | None
) -> None:
    if SOURCE_ROW in columns:
        raise InputFileError(
            f"A column is named {SOURCE_ROW!r}, a name Sapat keeps for the row number it "
            "adds. Rename that column in the file.",
            file=file,
            row=row,
            column=SOURCE_ROW,
            expected=f"no column named {SOURCE_ROW!r}",
        )
    counts = Counter(columns)
    duplicates = [name for name, n in counts.items() if n > 1]
    if duplicates:
        where = {
            name: [column_letter(first_column + i) for i, c in enumerate(columns) if c == name]
            for name in duplicates
        }
        listing = "; ".join(f"{name!r} in columns {', '.join(where[name])}" for name in duplicates)
        raise InputFileError(
            f"Column names repeat after reading the header: {listing}. Give each question "
            "a distinct title in the survey (or rename the header cells) and export again.",
            file=file,
            row=row,
            column=duplicates[0],
            expected="unique column names",
        )
