"""Domain errors. Every message names what was wrong, where, and what to do.

The CLI turns any :class:`SapatError` into a readable message and an exit code;
a Python traceback reaching a user is a bug.
"""

from __future__ import annotations


class SapatError(Exception):
    """Base class of every error Sapat reports to a user.

    Parameters
    ----------
    message
        A plain-language sentence: what went wrong and what to do.
    file, row, column
        Where, when known. ``row`` is the 1-based row number as a spreadsheet shows it.
    expected
        What was expected there, when it helps.
    """

    code = "error"

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        row: int | None = None,
        column: str | None = None,
        expected: str | None = None,
        value: object | None = None,
    ) -> None:
        self.message = message
        self.file = file
        self.row = row
        self.column = column
        self.expected = expected
        self.value = value
        super().__init__(str(self))

    def where(self) -> str:
        parts = []
        if self.file:
            parts.append(f"file {self.file}")
        if self.row is not None:
            parts.append(f"row {self.row}")
        if self.column:
            parts.append(f"column {self.column!r}")
        return ", ".join(parts)

    def __str__(self) -> str:
        text = self.message
        where = self.where()
        if where:
            text = f"{where}: {text}"
        if self.value is not None:
            text += f" (found {self.value!r})"
        if self.expected:
            text += f"; expected {self.expected}"
        return text

    def as_dict(self) -> dict:
        return {
            "error": self.code,
            "message": self.message,
            "file": self.file,
            "row": self.row,
            "column": self.column,
            "expected": self.expected,
            "value": None if self.value is None else str(self.value),
        }


class DeclarationError(SapatError):
    """An instrument workbook, org-unit table, headcount or objective file is wrong."""

    code = "declaration"


class InputFileError(SapatError):
    """A survey export cannot be read: empty, garbage, truncated, unknown encoding."""

    code = "input_file"


class MappingError(SapatError):
    """Columns or answers of an export cannot be matched to an instrument."""

    code = "mapping"


class ValidationFailed(SapatError):
    """A file failed validation under ``--strict``."""

    code = "validation"


class UsageError(SapatError):
    """The command was called with options that do not fit together."""

    code = "usage"
