"""Columns and answer text of an export → item codes and scale codes.

Nothing is matched by guesswork: a column matches an item by its code, a platform
alias, its label in Kyrgyz, Russian or English (normalised for case, spacing,
punctuation and look-alike letters), the Google Forms grid form ``Group [Row]``, a
KoboToolbox group path ``grp/code``, or an explicit YAML mapping file. Columns that
match nothing or more than one item stop the load with a report and suggestions.
Metadata columns (timestamps, e-mails, names, platform ids) are recognised; e-mails
and names are never stored.
"""

from __future__ import annotations

import difflib
import functools
import re
import unicodedata
from dataclasses import dataclass, field
from enum import StrEnum

from pipeline.errors import MappingError
from pipeline.instruments import Field, Instrument, Role
from pipeline.readers.headers import SEPARATOR

# Kyrgyz letters typed without a Kyrgyz keyboard, ё, and Latin look-alikes in Cyrillic text
_FOLD = str.maketrans(
    {"ң": "н", "ө": "о", "ү": "у", "ё": "е", "һ": "х", "ӊ": "н", "ҥ": "н", "ұ": "у", "ә": "а"}
)
_LATIN_LOOKALIKE = str.maketrans(
    {
        "a": "а",
        "e": "е",
        "o": "о",
        "p": "р",
        "c": "с",
        "x": "х",
        "y": "у",
        "k": "к",
        "m": "м",
        "t": "т",
        "h": "н",
        "b": "в",
    }
)
_NON_WORD = re.compile(r"[\W_]+", re.UNICODE)
_BRACKET = re.compile(r"^(?P<outer>.*?)\s*\[(?P<inner>[^\[\]]+)\]\s*$")
_CODE_IN_BRACKETS = re.compile(r"\(([^()]+)\)\s*$")
_CYRILLIC = re.compile(r"[а-я]")


def normalise(text: object) -> str:
    """Case-, spacing- and punctuation-insensitive key; folds Kyrgyz letters and ё.

    Latin look-alike letters inside a Cyrillic word are read as Cyrillic (a typist's
    ``Maкул`` matches ``Макул``). Keys of texts seen before are remembered (the same
    registry names and answer labels come back with every file).
    """
    return _normalise(text if isinstance(text, str) else str(text))


@functools.lru_cache(maxsize=1 << 16)
def _normalise(text: str) -> str:
    s = unicodedata.normalize("NFKC", text).casefold().translate(_FOLD)
    words = []
    for w in _NON_WORD.sub(" ", s).split():
        if _CYRILLIC.search(w):
            w = w.translate(_LATIN_LOOKALIKE)
        words.append(w)
    return " ".join(words)


class Meta(StrEnum):
    """What a recognised metadata column holds."""

    SUBMITTED_AT = "submitted_at"
    STARTED_AT = "started_at"
    COMPLETED_AT = "completed_at"
    DURATION = "duration_s"
    SUBMISSION_ID = "submission_id"
    EMAIL = "email"  # pseudonymised into person_key, never stored
    NAME = "name"  # never stored
    DROP = "drop"  # platform bookkeeping, IP addresses, locations: not stored


_META_NAMES = {
    Meta.SUBMITTED_AT: [
        "Timestamp",
        "Отметка времени",
        "Убакыт белгиси",
        "submitdate",
        "_submission_time",
        "RecordedDate",
        "Дата",
        "Date",
        "Күнү",
    ],
    Meta.STARTED_AT: [
        "Start time",
        "Время начала",
        "start",
        "startdate",
        "StartDate",
        "Start Date",
    ],
    Meta.COMPLETED_AT: [
        "Completion time",
        "Время завершения",
        "end",
        "datestamp",
        "EndDate",
        "End Date",
    ],
    Meta.DURATION: ["Duration (in seconds)"],
    Meta.SUBMISSION_ID: [
        "ID",
        "Идентификатор",
        "id",
        "_id",
        "_uuid",
        "ResponseId",
        "Respondent ID",
        "meta/instanceID",
    ],
    Meta.EMAIL: [
        "Email",
        "Email Address",
        "E-mail",
        "Адрес электронной почты",
        "Электрондук почта",
        "RecipientEmail",
        "Email Address | Response",
    ],
    Meta.NAME: [
        "Name",
        "Имя",
        "ФИО",
        "Аты-жөнү",
        "First Name",
        "Last Name",
        "RecipientFirstName",
        "RecipientLastName",
        "_submitted_by",
    ],
    Meta.DROP: [
        "Last modified time",
        "Время последнего изменения",
        "_index",
        "_status",
        "_validation_status",
        "__version__",
        "_notes",
        "_tags",
        "_geolocation",
        "lastpage",
        "startlanguage",
        "seed",
        "refurl",
        "ipaddr",
        "Progress",
        "Finished",
        "Status",
        "IPAddress",
        "IP Address",
        "ExternalReference",
        "LocationLatitude",
        "LocationLongitude",
        "DistributionChannel",
        "UserLanguage",
        "Collector ID",
        "Custom Data 1",
        "today",
        "deviceid",
        "username",
        "formhub/uuid",
        "meta/rootUuid",
        "_xform_id_string",
    ],
}
META_COLUMNS = {normalise(n): kind for kind, names in _META_NAMES.items() for n in names}


@dataclass
class ColumnMap:
    """How each column of an export is read.

    Attributes
    ----------
    fields
        column → field code (items, outcomes, context, comments).
    meta
        column → :class:`Meta` kind.
    how
        column → how it was matched (``code``, ``alias``, ``label:ky``, ``grid``,
        ``path``, ``mapping``, ``meta``), for the load report.
    """

    instrument: Instrument
    fields: dict[str, str] = field(default_factory=dict)
    meta: dict[str, Meta] = field(default_factory=dict)
    how: dict[str, str] = field(default_factory=dict)


def _field_keys(f: Field) -> list[tuple[str, str]]:
    """(normalised key, how) pairs under which a field may appear as a column."""
    keys = [(normalise(f.code), "code")]
    keys += [(normalise(a), "alias") for a in f.aliases]
    if f.group:
        keys.append((normalise(f"{f.group}/{f.code}"), "path"))
    for lang, label in f.labels.items():
        keys.append((normalise(label), f"label:{lang}"))
        glabel = f.group_labels.get(lang)
        if glabel:
            keys.append((normalise(f"{glabel} [{label}]"), "grid"))
            keys.append((normalise(f"{glabel}{SEPARATOR}{label}"), "grid"))
    return keys


def _candidates(column: str) -> list[str]:
    """The whole heading first, then its parts (grid row, sub-option, path tail)."""
    out = [column]
    m = _BRACKET.match(column)
    if m:
        out.append(m.group("inner"))
    if SEPARATOR in column:
        out.append(column.rsplit(SEPARATOR, 1)[1])
    if "/" in column and " " not in column:
        out.append(column.rsplit("/", 1)[1])
    if " - " in column:
        out.append(column.rsplit(" - ", 1)[1])
    return out


def map_columns(
    columns: list[str],
    inst: Instrument,
    *,
    explicit: dict[str, str] | None = None,
    labels: list[str] | None = None,
    file: str | None = None,
    report: bool = True,
) -> ColumnMap:
    """Match every column of an export to an item, a context field or metadata.

    ``labels`` are alternative headings (the Qualtrics question-text row), tried
    after the column's own name.

    Raises
    ------
    MappingError
        Listing every unmatched or ambiguous column with suggested matches (with
        ``report=False`` a short message, and the number of problems in ``.problems``).
    """
    explicit = explicit or {}
    data_fields = inst.by_role(Role.CONTEXT, Role.ITEM, Role.OUTCOME, Role.COMMENT)
    index: dict[str, set[str]] = {}
    how_of: dict[tuple[str, str], str] = {}
    for f in data_fields:
        for key, how in _field_keys(f):
            index.setdefault(key, set()).add(f.code)
            how_of.setdefault((key, f.code), how)
    cmap = ColumnMap(inst)
    unmatched: list[str] = []
    ambiguous: dict[str, list[str]] = {}
    for i, col in enumerate(columns):
        if col in explicit:
            target = explicit[col]
            if target in ("ignore", "drop"):
                cmap.meta[col], cmap.how[col] = Meta.DROP, "mapping"
            elif target in {m.value for m in Meta}:
                cmap.meta[col], cmap.how[col] = Meta(target), "mapping"
            elif inst.has(target):
                cmap.fields[col], cmap.how[col] = target, "mapping"
            else:
                raise MappingError(
                    f"the mapping file sends column {col!r} to {target!r}, which is not a "
                    f"field of {inst.id} {inst.version}",
                    column=col,
                    file=file,
                    expected="an item code, a context field, or 'ignore'",
                )
            continue
        meta = META_COLUMNS.get(normalise(col))
        if meta is not None and not (meta is Meta.SUBMITTED_AT and normalise(col) in index):
            cmap.meta[col], cmap.how[col] = meta, "meta"
            continue
        found: set[str] = set()
        how = ""
        tries = _candidates(col) + (_candidates(labels[i]) if labels and labels[i] else [])
        for cand in tries:
            key = normalise(cand)
            found = index.get(key, set())
            if found:
                how = how_of[(key, next(iter(found)))]
                break
        if "/" in col and not found:  # Kobo select_multiple option columns: q/option
            head = col.rsplit("/", 1)[0].rsplit("/", 1)[-1]
            if inst.has(head) and inst.field(head).base_type.startswith("select_multiple"):
                cmap.meta[col], cmap.how[col] = Meta.DROP, "option"
                continue
        if len(found) == 1:
            cmap.fields[col], cmap.how[col] = next(iter(found)), how
        elif len(found) > 1:
            ambiguous[col] = sorted(found)
        else:
            unmatched.append(col)
    twice: dict[str, list[str]] = {}
    for col, code in cmap.fields.items():
        twice.setdefault(code, []).append(col)
    twice = {code: cols for code, cols in twice.items() if len(cols) > 1}
    if unmatched or ambiguous or twice:
        if not report:  # a quick no (used when trying every questionnaire in turn)
            exc = MappingError(f"the columns do not all match {inst.id} {inst.version}", file=file)
            exc.problems = len(unmatched) + len(ambiguous) + len(twice)
            raise exc
        raise MappingError(
            _mapping_report(unmatched, ambiguous, twice, data_fields, inst),
            file=file,
            expected="every column matched to exactly one item; give --mapping FILE for the rest",
        )
    return cmap


def _mapping_report(unmatched, ambiguous, twice, fields, inst) -> str:
    choices = {}
    for f in fields:
        for lang in ("ky", "ru", "en"):
            choices[normalise(f.label(lang))] = f.code
        choices[normalise(f.code)] = f.code
    lines = [f"the columns do not all match questionnaire {inst.id} {inst.version}:"]
    for col in unmatched:
        close = difflib.get_close_matches(normalise(col), list(choices), n=3, cutoff=0.6)
        hint = ", ".join(dict.fromkeys(choices[c] for c in close)) or "none close"
        lines.append(f"  - column {col!r} matches no item (closest: {hint})")
    for col, codes in ambiguous.items():
        lines.append(f"  - column {col!r} matches several items: {', '.join(codes)}")
    for code, cols in twice.items():
        lines.append(f"  - item {code} is matched by several columns: {', '.join(map(repr, cols))}")
    lines.append(
        "Write the matches into a YAML file (column: item_code, or column: ignore) and "
        "pass it with --mapping FILE."
    )
    return "\n".join(lines)


# ----------------------------------------------------------------- answers
def answer_table(inst: Instrument, f: Field) -> dict[str, int]:
    """Normalised answer text → scale code, from the choice list in every language.

    Accepts the choice name (``4``, ``na``, ``employed``), its label in ky/ru/en, its
    declared aliases (other spellings an export uses, e.g. a typo in the source),
    LimeSurvey's positional code ``A<k>``, and ``4.0`` for numeric names. A text that
    would mean two different answers is accepted for neither.
    """
    scale = inst.scale_of(f)
    table: dict[str, int] = {}
    if scale is None:
        return table
    ambiguous = set()
    for pos, c in enumerate(scale.choices, start=1):
        keys = {c.name, f"A{pos}", *c.labels.values(), *c.aliases}
        if c.name.isdigit():
            keys.add(f"{c.name}.0")
        for k in keys:
            nk = normalise(k)
            if nk in table and table[nk] != c.code:
                ambiguous.add(nk)
            table[nk] = c.code
    for nk in ambiguous:
        del table[nk]
    return table


def unit_table(names: dict[str, dict[str, str]]) -> dict[str, str]:
    """Normalised unit name or code → code; names shared by two units are left out
    (such answers must carry the code, as ``Name (CODE)``)."""
    table: dict[str, str] = {}
    clash: set[str] = set()
    for code in names:
        table[normalise(code)] = code
    for code, by_lang in names.items():
        for name in by_lang.values():
            key = normalise(name)
            if key in table and table[key] != code:
                clash.add(key)
            else:
                table[key] = code
    codes = {normalise(c) for c in names}
    for key in clash - codes:
        table.pop(key, None)
    return table


def code_in_brackets(text: str) -> str | None:
    m = _CODE_IN_BRACKETS.search(text)
    return m.group(1) if m else None
