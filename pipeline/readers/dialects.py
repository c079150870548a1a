"""Export dialects: which platform wrote a file, told from its first rows.

Rules, tried in this order on the first (up to three) non-blank rows:

qualtrics
    Row 1 has ``StartDate``, ``EndDate`` and ``ResponseId`` (legacy ``ResponseID``).
    Three header rows when row 3 holds ``{"ImportId":...}`` cells, two when row 2
    repeats the meta labels (``Start Date``, ``Response ID``), else one.
surveymonkey
    Row 1 has ``Respondent ID`` and ``Collector ID``; always two header rows.
limesurvey
    Row 1 has ``id`` and ``submitdate`` plus one of ``lastpage``, ``startlanguage``,
    ``seed``, ``startdate``, ``datestamp`` (or three of the full-text headings
    ``Response ID``, ``Date submitted``, ``Last page``, ``Start language``).
ms_forms
    Row 1 has ``ID``, ``Start time``, ``Completion time`` (Russian UI:
    ``Идентификатор``, ``Время начала``, ``Время завершения``).
kobo
    Row 1 has two or more KoboToolbox meta columns (``_id``, ``_uuid``,
    ``_submission_time``, ``_index``, ``_status``, ``_submitted_by``,
    ``__version__``, ``_validation_status``), or starts ``start``, ``end`` and has
    group paths such as ``grp_teaching/te_q01``.
google_forms
    The first cell is ``Timestamp`` (Russian ``Отметка времени``, Kyrgyz
    ``Убакыт белгиси``).
plain
    Anything else; one header row.

Headings are compared stripped and case-folded.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from enum import StrEnum

from pipeline.errors import InputFileError


class Dialect(StrEnum):
    """The export dialects Sapat knows. Values are the names used in ``dialect=``."""

    GOOGLE_FORMS = "google_forms"
    MS_FORMS = "ms_forms"
    KOBO = "kobo"
    LIMESURVEY = "limesurvey"
    SURVEYMONKEY = "surveymonkey"
    QUALTRICS = "qualtrics"
    PLAIN = "plain"


DIALECT_NAMES: tuple[str, ...] = tuple(d.value for d in Dialect)

GOOGLE_TIMESTAMP = frozenset({"timestamp", "отметка времени", "метка времени", "убакыт белгиси"})
MS_FORMS_META = (
    frozenset({"id", "start time", "completion time"}),
    frozenset({"идентификатор", "время начала", "время завершения"}),
)
KOBO_META = frozenset(
    {
        "_id",
        "_uuid",
        "_submission_time",
        "_index",
        "_status",
        "_submitted_by",
        "__version__",
        "_validation_status",
        "_notes",
        "_tags",
    }
)
LIMESURVEY_CODES = frozenset({"lastpage", "startlanguage", "seed", "startdate", "datestamp"})
LIMESURVEY_TEXTS = frozenset({"response id", "date submitted", "last page", "start language"})
SURVEYMONKEY_META = frozenset({"respondent id", "collector id"})
QUALTRICS_META = frozenset({"startdate", "enddate"})
QUALTRICS_LABELS = frozenset({"start date", "end date", "response id", "response type"})

#: SurveyMonkey's second-row word for "this column is the whole answer".
SURVEYMONKEY_RESPONSE = frozenset(
    {"response", "open-ended response", "ответ", "открытый ответ", "ответ в свободной форме"}
)


def _keys(row: Sequence[str]) -> set[str]:
    return {cell.strip().casefold() for cell in row if cell and cell.strip()}


def parse_dialect(name: str, *, file: str | None = None) -> Dialect:
    """The :class:`Dialect` called ``name`` (as passed to ``dialect=``)."""
    try:
        return Dialect(name.strip().lower())
    except ValueError:
        raise InputFileError(
            f"Unknown export dialect {name!r}.",
            file=file,
            expected="one of " + ", ".join(DIALECT_NAMES),
            value=name,
        ) from None


def detect_dialect(rows: Sequence[Sequence[str]]) -> Dialect:
    """The dialect whose header the first non-blank ``rows`` of a file match."""
    if not rows:
        return Dialect.PLAIN
    first = _keys(rows[0])
    if first >= QUALTRICS_META and ({"responseid"} & first):
        return Dialect.QUALTRICS
    if first >= SURVEYMONKEY_META:
        return Dialect.SURVEYMONKEY
    if ({"id", "submitdate"} <= first and first & LIMESURVEY_CODES) or len(
        first & LIMESURVEY_TEXTS
    ) >= 3:
        return Dialect.LIMESURVEY
    if any(meta <= first for meta in MS_FORMS_META):
        return Dialect.MS_FORMS
    cells = [cell.strip().casefold() for cell in rows[0]]
    if len(first & KOBO_META) >= 2 or (
        cells[:2] == ["start", "end"] and any("/" in cell for cell in cells)
    ):
        return Dialect.KOBO
    if cells and cells[0] in GOOGLE_TIMESTAMP:
        return Dialect.GOOGLE_FORMS
    return Dialect.PLAIN


def import_id(cell: str) -> str | None:
    """The ``ImportId`` of a Qualtrics third-row cell such as ``{"ImportId":"QID1_1"}``."""
    text = cell.strip()
    if not text.startswith("{"):
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    if isinstance(value, dict) and isinstance(value.get("ImportId"), str):
        return value["ImportId"]
    return None


def header_row_count(dialect: Dialect, rows: Sequence[Sequence[str]]) -> int:
    """How many of the first non-blank ``rows`` form the header, for ``dialect``."""
    if dialect is Dialect.SURVEYMONKEY:
        return 2
    if dialect is Dialect.QUALTRICS:
        if len(rows) >= 3 and any(import_id(cell) for cell in rows[2]):
            return 3
        if len(rows) >= 2 and _keys(rows[1]) & QUALTRICS_LABELS:
            return 2
        return 1
    return 1
