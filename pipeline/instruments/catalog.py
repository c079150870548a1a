"""Read XLSForm workbooks and the version registry into :class:`Instrument` objects.

The workbooks in this folder are the single source of truth for questionnaires:
the office edits them in Excel and deploys the same file in KoboToolbox or ODK.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from functools import cache
from pathlib import Path

import pandas as pd
import yaml

from pipeline.config import INSTRUMENTS_DIR, LANGUAGE_NAMES, LANGUAGES
from pipeline.errors import DeclarationError
from pipeline.instruments.model import (
    MAX_POINTS,
    MISSING_CODES,
    Choice,
    ContextRole,
    Field,
    Instrument,
    Measure,
    Missing,
    Role,
    Scale,
    Statistic,
    default_thresholds,
)

CODE_PATTERN = re.compile(r"^[a-z][a-z0-9_]*$")
DATA_TYPES = {
    "select_one",
    "select_multiple",
    "select_one_from_file",
    "select_multiple_from_file",
    "integer",
    "decimal",
    "text",
    "date",
    "start",
    "end",
    "today",
}
WAVE_PATTERN = re.compile(r"^(\d{4})-(\d{4})$")
#: ``label::Kyrgyz (ky)``, ``label::ky``, ``label::Russian``: the language of a label column
_LANG_IN_HEADER = re.compile(r"\((?P<code>[a-z]{2})\)\s*$|^(?P<bare>[a-z]{2})$")
_LANG_WORDS = {"kyrgyz": "ky", "кыргызча": "ky", "russian": "ru", "русский": "ru", "english": "en"}


def _clean(value: object) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)) or value is pd.NA:
        return ""
    text = str(value).strip()
    return "" if text.lower() == "nan" else text


def _yes(value: object) -> bool:
    return _clean(value).lower() in {"yes", "true", "1", "y", "да", "ооба"}


def _names(value: object) -> tuple[str, ...]:
    """``a|b | c`` → ("a", "b", "c")."""
    return tuple(p.strip() for p in _clean(value).split("|") if p.strip())


def language_of(header: str) -> str | None:
    """The language code of a ``label::…`` column, or None when it is not one."""
    text = header.strip()
    if "::" not in text:
        return None
    tail = text.split("::", 1)[1].strip()
    m = _LANG_IN_HEADER.search(tail.lower())
    if m:
        code = m.group("code") or m.group("bare")
        return code if code in LANGUAGES else None
    return _LANG_WORDS.get(tail.lower())


@dataclass
class _Book:
    """One workbook's sheets as records, with what its label columns are."""

    path: Path
    sheets: dict[str, list[dict]]
    default_language: str
    warnings: list[str] = field(default_factory=list)
    #: language -> the rows ("sheet row N (what)") that lack a label in it
    lacking: dict[str, list[str]] = field(default_factory=dict)
    labelled: int = 0

    def labels(self, row: dict, prefix: str = "label") -> dict[str, str]:
        """The row's labels by language; a plain ``label`` column is the default language."""
        out: dict[str, str] = {}
        for col, value in row.items():
            text = _clean(value)
            if not text or not col:
                continue
            if col == prefix:
                out.setdefault(self.default_language, text)
            elif col.startswith(prefix + "::"):
                lang = language_of(col)
                if lang:
                    out[lang] = text
        return out

    def need_labels(self, row: dict, what: str, row_no: int, sheet: str) -> dict[str, str]:
        """Labels of a row that must have one; missing languages fall back (a warning)."""
        labels = self.labels(row)
        if not labels:
            raise DeclarationError(
                f"{what} has no label",
                file=str(self.path),
                row=row_no,
                column="label",
                expected=f"a label in at least one language (sheet {sheet})",
            )
        self.labelled += 1
        for lang in LANGUAGES:
            if lang not in labels:
                self.lacking.setdefault(lang, []).append(f"sheet {sheet} row {row_no} ({what})")
        return labels

    def language_warnings(self) -> list[str]:
        """One line per language a workbook lacks: wholly, or in some rows (named)."""
        out = []
        for lang, rows in self.lacking.items():
            name = LANGUAGE_NAMES[lang]
            if len(rows) == self.labelled:
                out.append(
                    f"{self.path.name}: no labels in {name}; readers choosing {name} see "
                    f"the {LANGUAGE_NAMES[self.default_language]} ones"
                )
            else:
                shown = "; ".join(rows[:8]) + (
                    f"; and {len(rows) - 8} more" if len(rows) > 8 else ""
                )
                out.append(
                    f"{self.path.name}: {len(rows)} label(s) missing in {name}, the "
                    f"{LANGUAGE_NAMES[self.default_language]} ones shown instead: {shown}"
                )
        return out

    def fallback(self, labels: dict[str, str]) -> str:
        return self.default_language if self.default_language in labels else next(iter(labels))


def _sheet(book: dict[str, pd.DataFrame], name: str, path: Path, required: bool = True):
    if name not in book:
        if not required:
            return []
        raise DeclarationError(
            f"the workbook has no sheet {name!r}",
            file=str(path),
            expected="sheets survey, choices, scales, dimensions, settings (measures optional)",
        )
    frame = book[name]
    frame.columns = [_clean(c) for c in frame.columns]
    return frame.to_dict("records")


def _language_setting(text: str, path: Path) -> str:
    if not text:
        return "en"
    lang = language_of(f"label::{text}")
    if lang is None:
        raise DeclarationError(
            f"unknown default_language {text!r}",
            file=str(path),
            column="default_language",
            expected="Kyrgyz (ky), Russian (ru) or English (en)",
        )
    return lang


def _read_scales(b: _Book) -> dict[str, Scale]:
    path = b.path
    choice_rows: dict[str, list[tuple[int, Choice]]] = {}
    for i, row in enumerate(b.sheets["choices"], start=2):
        list_name = _clean(row.get("list_name"))
        name = _clean(row.get("name"))
        if not list_name:
            continue
        if not name:
            raise DeclarationError(
                f"a choice of list {list_name!r} has no name", file=str(path), row=i, column="name"
            )
        labels = b.need_labels(row, f"choice {list_name}/{name}", i, "choices")
        choice = Choice(name=name, labels=labels, code=0, aliases=_names(row.get("aliases")))
        choice_rows.setdefault(list_name, []).append((i, choice))

    scale_meta = {}
    for i, row in enumerate(b.sheets["scales"], start=2):
        list_name = _clean(row.get("list_name"))
        if list_name:
            scale_meta[list_name] = (i, row)

    scales: dict[str, Scale] = {}
    for list_name, rows in choice_rows.items():
        i, meta = scale_meta.get(list_name, (None, {}))
        kind = _clean(meta.get("kind")) or "nominal"
        if kind not in {"ordinal", "nominal", "binary"}:
            raise DeclarationError(
                f"scale {list_name!r} has an unknown kind {kind!r}",
                file=str(path),
                row=i,
                column="kind",
                expected="ordinal, nominal or binary",
            )
        names = {c.name for _, c in rows}
        missing: dict[str, Missing] = {}
        for what in Missing:
            for name in _names(meta.get(what.value)):
                if name not in names:
                    raise DeclarationError(
                        f"scale {list_name!r}: {what.value} names choice {name!r}, which the "
                        "choices sheet does not list",
                        file=str(path),
                        row=i,
                        column=what.value,
                        expected=", ".join(sorted(names)),
                    )
                missing[name] = what
        coded: list[Choice] = []
        position = 0
        for row_no, c in rows:
            if c.name in missing:
                code = MISSING_CODES[missing[c.name]]
            elif kind == "ordinal":
                try:
                    code = int(c.name)
                except ValueError as exc:
                    raise DeclarationError(
                        f"rating scale {list_name!r} has a choice named {c.name!r}; the names of "
                        "a rating scale are its answer codes",
                        file=str(path),
                        row=row_no,
                        column="name",
                        expected="whole numbers 1..k or 0..k-1 (put the wording in the label)",
                    ) from exc
            else:
                position += 1
                code = position
            coded.append(Choice(name=c.name, labels=c.labels, code=code, aliases=c.aliases))
        scale = Scale(list_name=list_name, kind=kind, choices=tuple(coded), missing=missing)
        if not scale.valid_choices:
            raise DeclarationError(
                f"scale {list_name!r} has no answer that is not a non-answer",
                file=str(path),
                row=i,
            )
        if kind == "ordinal":
            scale = _ordinal(scale, meta, path, i)
        scales[list_name] = scale
    return scales


def _ordinal(scale: Scale, meta: dict, path: Path, row: int | None) -> Scale:
    codes = sorted(scale.codes)
    low, high = codes[0], codes[-1]
    name = scale.list_name
    if (
        low not in (0, 1)
        or codes != list(range(low, high + 1))
        or not 2 <= len(codes) <= MAX_POINTS
    ):
        raise DeclarationError(
            f"rating scale {name!r} has answer codes {codes}",
            file=str(path),
            row=row,
            column="name",
            expected=f"consecutive whole numbers 1..k or 0..k-1, 2 to {MAX_POINTS} of them",
        )
    points = _clean(meta.get("points"))
    if points and int(float(points)) != len(codes):
        raise DeclarationError(
            f"scale {name!r} says points = {points} but lists {len(codes)} answers",
            file=str(path),
            row=row,
            column="points",
            expected=str(len(codes)),
        )
    pos_default, neg_default = default_thresholds(low, high)
    values = {}
    for col, default in (("positive_from", pos_default), ("negative_to", neg_default)):
        text = _clean(meta.get(col))
        try:
            values[col] = int(float(text)) if text else default
        except ValueError as exc:
            raise DeclarationError(
                f"scale {name!r}: {col} {text!r} is not a whole number",
                file=str(path),
                row=row,
                column=col,
            ) from exc
    if not low <= values["negative_to"] < values["positive_from"] <= high:
        raise DeclarationError(
            f"scale {name!r}: negative_to {values['negative_to']} and positive_from "
            f"{values['positive_from']} do not fit the answers {low}..{high}",
            file=str(path),
            row=row,
            column="positive_from",
            expected=f"{low} <= negative_to < positive_from <= {high}",
        )
    return replace(scale, **values)


def _choice_codes(
    scale: Scale, measure: str, column: str, names: tuple[str, ...], where: dict
) -> tuple[int, ...]:
    out = []
    for name in names:
        try:
            out.append(scale.by_name(name).code)
        except KeyError as exc:
            raise DeclarationError(
                f"measure {measure!r}: {column} names {name!r}, not a choice of list "
                f"{scale.list_name!r}",
                **where,
                column=column,
                expected=", ".join(c.name for c in scale.choices),
            ) from exc
    return tuple(out)


def _read_measures(b: _Book, fields: dict[str, Field], scales: dict[str, Scale]):
    out = []
    for i, row in enumerate(b.sheets.get("measures", []), start=2):
        code = _clean(row.get("code"))
        if not code:
            continue
        where = {"file": str(b.path), "row": i}
        if not CODE_PATTERN.match(code):
            raise DeclarationError(
                f"the measure code {code!r} is not a valid code",
                **where,
                column="code",
                expected="lowercase letters, digits and _",
            )
        field_code = _clean(row.get("field"))
        if field_code not in fields:
            raise DeclarationError(
                f"measure {code!r} names field {field_code!r}, which the survey sheet lacks",
                **where,
                column="field",
            )
        f = fields[field_code]
        stat_text = _clean(row.get("statistic")) or "share"
        try:
            stat = Statistic(stat_text)
        except ValueError as exc:
            raise DeclarationError(
                f"measure {code!r} has statistic {stat_text!r}",
                **where,
                column="statistic",
                expected=", ".join(s.value for s in Statistic),
            ) from exc
        scale = scales.get(f.list_name) if f.list_name else None
        success: tuple[int, ...] = ()
        base: tuple[int, ...] = ()
        if stat is Statistic.SHARE:
            if scale is None:
                raise DeclarationError(
                    f"measure {code!r} is a share, but field {field_code!r} has no choice list",
                    **where,
                    column="field",
                    expected="a select_one field",
                )

            success = _choice_codes(scale, code, "success", _names(row.get("success")), where)
            base = _choice_codes(scale, code, "base", _names(row.get("base")), where)
            if not success:
                raise DeclarationError(
                    f"measure {code!r} names no success answers",
                    **where,
                    column="success",
                    expected="choice names, a|b",
                )
        elif f.base_type not in ("integer", "decimal") and (
            scale is None or scale.kind != "ordinal"
        ):
            raise DeclarationError(
                f"measure {code!r} takes the {stat.value} of field {field_code!r}, which is not "
                "a number",
                **where,
                column="statistic",
                expected="an integer, decimal or rating field",
            )
        labels = b.labels(row) or {b.default_language: code}
        out.append(Measure(code, field_code, stat, success, base, labels))
    return tuple(out)


def read_workbook(path: str | Path) -> Instrument:
    """Read one XLSForm workbook into an :class:`Instrument`.

    Warnings (labels missing in a language) are kept in ``read_workbook.warnings`` of the
    catalog that reads it; see :func:`read_workbook_with_warnings`.

    Raises
    ------
    DeclarationError
        When a sheet, column or label is missing or inconsistent; the message
        names the sheet row as Excel numbers it (header = row 1).
    """
    return read_workbook_with_warnings(path)[0]


def read_workbook_with_warnings(path: str | Path) -> tuple[Instrument, list[str]]:
    """(:class:`Instrument`, warnings) of one workbook."""
    path = Path(path)
    try:
        book = pd.read_excel(path, sheet_name=None, engine="calamine", dtype=str)
    except Exception as exc:  # calamine raises several types for broken files
        raise DeclarationError(
            f"cannot open the questionnaire workbook ({exc})", file=str(path)
        ) from exc

    settings_rows = _sheet(book, "settings", path)
    if not settings_rows:
        raise DeclarationError("the settings sheet is empty", file=str(path))
    settings = settings_rows[0]
    form_id = _clean(settings.get("form_id"))
    version = _clean(settings.get("version"))
    if not form_id or not version:
        raise DeclarationError(
            "settings must give form_id and version", file=str(path), column="form_id/version"
        )
    if not CODE_PATTERN.match(form_id):
        raise DeclarationError(
            f"form_id {form_id!r} is not a valid code",
            file=str(path),
            column="form_id",
            expected="lowercase letters, digits and _ starting with a letter",
        )
    sheets = {
        name: _sheet(book, name, path, required=name not in ("measures", "scales"))
        for name in ("survey", "choices", "scales", "dimensions", "measures")
    }
    b = _Book(path, sheets, _language_setting(_clean(settings.get("default_language")), path))

    dimensions: dict[str, dict[str, str]] = {}
    overall = None
    for i, row in enumerate(sheets["dimensions"], start=2):
        code = _clean(row.get("code"))
        if code:
            dimensions[code] = b.need_labels(row, f"dimension {code}", i, "dimensions")
            if _clean(row.get("kind")).lower() == "overall":
                if overall is not None:
                    raise DeclarationError(
                        "two dimensions are marked kind = overall",
                        file=str(path),
                        row=i,
                        column="kind",
                    )
                overall = code
    scales = _read_scales(b)

    fields: list[Field] = []
    group, group_labels = None, {}
    for i, row in enumerate(sheets["survey"], start=2):
        qtype = _clean(row.get("type"))
        name = _clean(row.get("name"))
        if not qtype:
            continue
        base = qtype.split()[0]
        if base == "begin_group":
            group = name
            group_labels = b.labels(row)
            continue
        if base == "end_group":
            group, group_labels = None, {}
            continue
        if base not in DATA_TYPES:
            continue
        if not CODE_PATTERN.match(name):
            raise DeclarationError(
                f"the item code {name!r} is not a valid code",
                file=str(path),
                row=i,
                column="name",
                expected="lowercase letters, digits and _ starting with a letter",
            )
        role_text = _clean(row.get("sapat_role")) or ("meta" if base in {"start", "end"} else "")
        try:
            role = Role(role_text)
        except ValueError as exc:
            raise DeclarationError(
                f"field {name!r} has sapat_role {role_text!r}",
                file=str(path),
                row=i,
                column="sapat_role",
                expected=", ".join(r.value for r in Role),
            ) from exc
        labels = (
            b.labels(row) or {b.default_language: name}
            if role is Role.META
            else b.need_labels(row, f"field {name}", i, "survey")
        )
        parts = qtype.split()
        list_name = (
            parts[1] if base in {"select_one", "select_multiple"} and len(parts) > 1 else None
        )
        from_file = parts[1] if base.endswith("_from_file") and len(parts) > 1 else None
        if list_name and list_name not in scales:
            raise DeclarationError(
                f"field {name!r} uses choice list {list_name!r}, which the choices sheet lacks",
                file=str(path),
                row=i,
                column="type",
            )
        dimension = _clean(row.get("dimension")) or None
        if role is Role.ITEM:
            if not dimension:
                raise DeclarationError(
                    f"item {name!r} has no dimension", file=str(path), row=i, column="dimension"
                )
            if list_name is None or scales[list_name].kind != "ordinal" or base != "select_one":
                raise DeclarationError(
                    f"item {name!r} is not a rating question",
                    file=str(path),
                    row=i,
                    column="type",
                    expected="select_one <list> whose list is an ordinal scale (sheet scales); "
                    "other questions are outcomes or context",
                )
        if dimension and dimension not in dimensions:
            raise DeclarationError(
                f"item {name!r} names dimension {dimension!r}, missing from sheet dimensions",
                file=str(path),
                row=i,
                column="dimension",
            )
        context = _clean(row.get("context")) or None
        if role is Role.CONTEXT and context is None:
            context = name
        if context == "level":  # the older name of the study-level role
            context = ContextRole.STUDY_LEVEL.value
        fields.append(
            Field(
                code=name,
                type=qtype,
                role=role,
                labels=labels,
                dimension=dimension,
                reverse=_yes(row.get("reverse")),
                aliases=_names(row.get("aliases")),
                context=context if role is Role.CONTEXT else None,
                list_name=list_name,
                group=group,
                group_labels=dict(group_labels),
                required=_yes(row.get("required")),
                optional=_yes(row.get("sapat_optional")),
                constraint=_clean(row.get("constraint")) or None,
                relevant=_clean(row.get("relevant")) or None,
                from_file=from_file,
            )
        )
    _check_fields(fields, scales, path)
    by_code = {f.code: f for f in fields}
    measures = _read_measures(b, by_code, scales)
    titles = b.labels(settings, prefix="form_title")
    title = _clean(settings.get("form_title")) or titles.get(b.default_language) or form_id
    inst = Instrument(
        id=form_id,
        version=version,
        title=title,
        fields=tuple(fields),
        scales=scales,
        dimensions=dimensions,
        source=str(path),
        population=_clean(settings.get("population")) or None,
        measures=measures,
        overall_dimension=overall,
        default_language=b.default_language,
        titles=titles or {b.default_language: title},
    )
    return inst, b.warnings + b.language_warnings()


def _check_fields(fields: list[Field], scales: dict[str, Scale], path: Path) -> None:
    codes = [f.code for f in fields]
    dupes = sorted({c for c in codes if codes.count(c) > 1})
    if dupes:
        raise DeclarationError(f"item codes used twice: {', '.join(dupes)}", file=str(path))
    columns: dict[str, str] = {}
    for f in fields:
        if f.role is Role.META or f.role is Role.COMMENT:
            continue
        if f.column in columns:
            raise DeclarationError(
                f"fields {columns[f.column]!r} and {f.code!r} would both be stored as "
                f"{f.column!r}: two fields with the same context role, or a field named after "
                "another's role",
                file=str(path),
                column="context",
            )
        columns[f.column] = f.code
    by_dimension: dict[str, set[tuple[int, int]]] = {}
    for f in fields:
        if f.role is Role.ITEM:
            s = scales[f.list_name]
            by_dimension.setdefault(f.dimension, set()).add((s.low, s.high))
    for dim, ranges in by_dimension.items():
        if len(ranges) > 1:
            shown = ", ".join(f"{lo}..{hi}" for lo, hi in sorted(ranges))
            raise DeclarationError(
                f"dimension {dim!r} mixes rating scales of different lengths ({shown}); its "
                "score is the mean of its items, so they must share one scale",
                file=str(path),
                column="dimension",
                expected="one dimension per scale length",
            )


@dataclass(frozen=True)
class VersionEntry:
    instrument: str
    version: str
    workbook: Path
    waves: tuple[str, ...]


@dataclass
class Catalog:
    """Every instrument version, and which waves used which version."""

    instruments: dict[tuple[str, str], Instrument]
    versions: dict[str, list[VersionEntry]]
    not_comparable: dict[str, list[dict]] = field(default_factory=dict)
    #: what ``sapat instruments check`` should tell (labels missing in a language, …)
    warnings: list[str] = field(default_factory=list)

    @property
    def ids(self) -> list[str]:
        return list(self.versions)

    def get(self, instrument_id: str, version: str | None = None) -> Instrument:
        """One instrument version (the newest when ``version`` is None)."""
        if instrument_id not in self.versions:
            raise DeclarationError(
                f"unknown questionnaire {instrument_id!r}" + closest(instrument_id, self.versions),
                expected="one of " + (", ".join(self.versions) or "(none declared yet)"),
            )
        if version is None:
            version = self.versions[instrument_id][-1].version
        try:
            return self.instruments[(instrument_id, version)]
        except KeyError as exc:
            known = ", ".join(v.version for v in self.versions[instrument_id])
            raise DeclarationError(
                f"questionnaire {instrument_id!r} has no version {version!r}", expected=known
            ) from exc

    def for_wave(self, instrument_id: str, wave: str) -> Instrument:
        """The version used in a wave (registry ``waves``), else the newest."""
        for entry in self.versions.get(instrument_id, []):
            if wave in entry.waves:
                return self.instruments[(instrument_id, entry.version)]
        return self.get(instrument_id)

    def all(self) -> list[Instrument]:
        return list(self.instruments.values())

    def comparable(self, instrument_id: str, code: str, version_a: str, version_b: str) -> bool:
        """True when item ``code`` means the same in both versions.

        Same code, same wording in all three languages, same scale, and not listed
        under ``not_comparable`` in versions.yaml.
        """
        if version_a == version_b:
            return self.get(instrument_id, version_a).has(code)
        a = self.get(instrument_id, version_a)
        b = self.get(instrument_id, version_b)
        if not (a.has(code) and b.has(code)):
            return False
        for entry in self.not_comparable.get(instrument_id, []):
            if entry.get("item") == code and {version_a, version_b} <= set(
                entry.get("versions", [])
            ):
                return False
        return a.item_signature(code) == b.item_signature(code)

    def comparability_problems(self) -> list[str]:
        """Codes reused with different wording or scale and not declared not comparable."""
        problems = []
        for instrument_id, entries in self.versions.items():
            for older, newer in zip(entries, entries[1:], strict=False):
                a = self.instruments[(instrument_id, older.version)]
                b = self.instruments[(instrument_id, newer.version)]
                declared = {
                    e.get("item")
                    for e in self.not_comparable.get(instrument_id, [])
                    if {older.version, newer.version} <= set(e.get("versions", []))
                }
                for f in a.fields:
                    if (
                        b.has(f.code)
                        and f.code not in declared
                        and a.item_signature(f.code) != b.item_signature(f.code)
                    ):
                        problems.append(
                            f"{instrument_id}: item {f.code} differs between versions "
                            f"{older.version} and {newer.version} (wording or scale); give the "
                            "reworded item a new code, or list it under not_comparable"
                        )
        return problems


def read_catalog(directory: str | Path = INSTRUMENTS_DIR) -> Catalog:
    """Read versions.yaml and every workbook it names."""
    directory = Path(directory)
    registry_path = directory / "versions.yaml"
    if not registry_path.exists():
        raise DeclarationError("the version registry is missing", file=str(registry_path))
    try:
        registry = yaml.safe_load(registry_path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise DeclarationError(
            f"versions.yaml is not valid YAML: {exc}", file=str(registry_path)
        ) from exc
    instruments: dict[tuple[str, str], Instrument] = {}
    versions: dict[str, list[VersionEntry]] = {}
    not_comparable: dict[str, list[dict]] = {}
    warnings: list[str] = []
    if not isinstance(registry, dict):
        raise DeclarationError(
            "versions.yaml must map each questionnaire id to its versions", file=str(registry_path)
        )
    for instrument_id, spec in registry.items():
        if not isinstance(spec, dict) or not isinstance(spec.get("versions"), list):
            raise DeclarationError(
                f"{instrument_id}: expected a list under 'versions'",
                file=str(registry_path),
                expected="versions: [{version: ..., workbook: ..., waves: [...]}]",
            )
        entries = []
        for v in spec["versions"]:
            if not isinstance(v, dict) or not v.get("workbook") or not v.get("version"):
                raise DeclarationError(
                    f"{instrument_id}: a version without version or workbook",
                    file=str(registry_path),
                )
            workbook = directory / str(v["workbook"])
            waves = tuple(str(w) for w in v.get("waves", []))
            for w in waves:
                if not WAVE_PATTERN.match(w) or int(w[5:]) != int(w[:4]) + 1:
                    raise DeclarationError(
                        f"{instrument_id} {v.get('version')}: wave {w!r} is not an academic year",
                        file=str(registry_path),
                        expected="YYYY-YYYY with consecutive years, e.g. 2024-2025",
                    )
            if not workbook.exists():
                raise DeclarationError(
                    f"{instrument_id} {v['version']}: the workbook is missing", file=str(workbook)
                )
            inst, found = read_workbook_with_warnings(workbook)
            warnings += found
            if inst.id != instrument_id or inst.version != str(v["version"]):
                raise DeclarationError(
                    f"the workbook says form_id={inst.id!r} version={inst.version!r}, "
                    f"but versions.yaml lists it as {instrument_id!r} {v['version']!r}",
                    file=str(workbook),
                )
            instruments[inst.key] = inst
            entries.append(VersionEntry(instrument_id, inst.version, workbook, waves))
        versions[instrument_id] = entries
        not_comparable[instrument_id] = list((spec or {}).get("not_comparable") or [])
    return Catalog(
        instruments=instruments, versions=versions, not_comparable=not_comparable, warnings=warnings
    )


@cache
def example_catalog() -> Catalog:
    """The questionnaires of the BatSU example workspace shipped with Sapat (read once per
    process): for tests and synthetic data. Commands read the workspace's own."""
    return read_catalog(INSTRUMENTS_DIR)


def closest(name: str, known) -> str:
    """``"; did you mean X?"`` when a known name is close to ``name``, else ``""``."""
    import difflib

    near = difflib.get_close_matches(str(name), [str(k) for k in known], n=2, cutoff=0.6)
    return f"; did you mean {' or '.join(near)}?" if near else ""


def wave_start_year(wave: str) -> int:
    m = WAVE_PATTERN.match(wave)
    if not m or int(m.group(2)) != int(m.group(1)) + 1:
        raise DeclarationError(
            f"{wave!r} is not an academic year", expected="YYYY-YYYY, e.g. 2024-2025"
        )
    return int(m.group(1))


__all__ = [
    "Catalog",
    "read_catalog",
    "read_workbook",
    "example_catalog",
    "closest",
    "wave_start_year",
    "LANGUAGES",
]
