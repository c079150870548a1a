"""Read XLSForm workbooks and the version registry into :class:`Instrument` objects.

The workbooks in this folder are the single source of truth for questionnaires:
the office edits them in Excel and deploys the same file in KoboToolbox or ODK.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import pandas as pd
import yaml

from pipeline.config import INSTRUMENTS_DIR, LANGUAGE_NAMES, LANGUAGES
from pipeline.errors import DeclarationError
from pipeline.instruments.model import (
    NOT_APPLICABLE_CODE,
    Choice,
    Field,
    Instrument,
    Role,
    Scale,
)

LABEL_COLUMNS = {lang: f"label::{name}" for lang, name in LANGUAGE_NAMES.items()}
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


def _clean(value: object) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)) or value is pd.NA:
        return ""
    text = str(value).strip()
    return "" if text.lower() == "nan" else text


def _yes(value: object) -> bool:
    return _clean(value).lower() in {"yes", "true", "1", "y", "да", "ооба"}


def _labels(row: dict, where: str, path: Path, row_no: int) -> dict[str, str]:
    labels = {}
    for lang, col in LABEL_COLUMNS.items():
        text = _clean(row.get(col))
        if not text:
            raise DeclarationError(
                f"{where}: the {LANGUAGE_NAMES[lang]} label is empty",
                file=str(path),
                row=row_no,
                column=col,
                expected="a label in each of Kyrgyz, Russian and English",
            )
        labels[lang] = text
    return labels


def _sheet(book: dict[str, pd.DataFrame], name: str, path: Path, required: bool = True):
    if name not in book:
        if not required:
            return []
        raise DeclarationError(
            f"the workbook has no sheet {name!r}",
            file=str(path),
            expected="sheets survey, choices, scales, dimensions, settings",
        )
    frame = book[name]
    frame.columns = [_clean(c) for c in frame.columns]
    return frame.to_dict("records")


def read_workbook(path: str | Path) -> Instrument:
    """Read one XLSForm workbook into an :class:`Instrument`.

    Raises
    ------
    DeclarationError
        When a sheet, column or label is missing or inconsistent; the message
        names the sheet row as Excel numbers it (header = row 1).
    """
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

    dimensions: dict[str, dict[str, str]] = {}
    for i, row in enumerate(_sheet(book, "dimensions", path), start=2):
        code = _clean(row.get("code"))
        if code:
            dimensions[code] = _labels(row, f"dimension {code}", path, i)

    choice_rows: dict[str, list[Choice]] = {}
    for i, row in enumerate(_sheet(book, "choices", path), start=2):
        list_name = _clean(row.get("list_name"))
        name = _clean(row.get("name"))
        if not list_name:
            continue
        if not name:
            raise DeclarationError(
                f"a choice of list {list_name!r} has no name", file=str(path), row=i, column="name"
            )
        choice_rows.setdefault(list_name, []).append(
            Choice(name=name, labels=_labels(row, f"choice {list_name}/{name}", path, i), code=-1)
        )

    scale_meta = {}
    for i, row in enumerate(_sheet(book, "scales", path), start=2):
        list_name = _clean(row.get("list_name"))
        if list_name:
            scale_meta[list_name] = (i, row)

    scales: dict[str, Scale] = {}
    for list_name, choices in choice_rows.items():
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
        na = _clean(meta.get("not_applicable")) or None
        coded: list[Choice] = []
        position = 0
        for c in choices:
            if c.name == na:
                code = NOT_APPLICABLE_CODE
            elif kind == "ordinal":
                try:
                    code = int(c.name)
                except ValueError as exc:
                    raise DeclarationError(
                        f"ordinal scale {list_name!r} has a non-numeric choice {c.name!r}",
                        file=str(path),
                        column="name",
                        expected="codes 1..points",
                    ) from exc
            else:
                position += 1
                code = position
            coded.append(Choice(name=c.name, labels=c.labels, code=code))
        points = _clean(meta.get("points"))
        positive = _clean(meta.get("positive_from"))
        scales[list_name] = Scale(
            list_name=list_name,
            kind=kind,
            choices=tuple(coded),
            points=int(float(points)) if points else None,
            positive_from=int(float(positive)) if positive else None,
            not_applicable=na,
        )

    fields: list[Field] = []
    group, group_labels = None, {}
    for i, row in enumerate(_sheet(book, "survey", path), start=2):
        qtype = _clean(row.get("type"))
        name = _clean(row.get("name"))
        if not qtype:
            continue
        base = qtype.split()[0]
        if base == "begin_group":
            group = name
            group_labels = {lang: _clean(row.get(col)) for lang, col in LABEL_COLUMNS.items()}
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
            {lang: _clean(row.get(col)) or name for lang, col in LABEL_COLUMNS.items()}
            if role is Role.META
            else _labels(row, f"field {name}", path, i)
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
        if role in (Role.ITEM,) and not dimension:
            raise DeclarationError(
                f"item {name!r} has no dimension", file=str(path), row=i, column="dimension"
            )
        if dimension and dimension not in dimensions:
            raise DeclarationError(
                f"item {name!r} names dimension {dimension!r}, missing from sheet dimensions",
                file=str(path),
                row=i,
                column="dimension",
            )
        aliases = tuple(a.strip() for a in _clean(row.get("aliases")).split("|") if a.strip())
        fields.append(
            Field(
                code=name,
                type=qtype,
                role=role,
                labels=labels,
                dimension=dimension,
                reverse=_yes(row.get("reverse")),
                aliases=aliases,
                context=_clean(row.get("context")) or (name if role is Role.CONTEXT else None),
                list_name=list_name,
                group=group,
                group_labels=dict(group_labels),
                required=_yes(row.get("required")),
                constraint=_clean(row.get("constraint")) or None,
                relevant=_clean(row.get("relevant")) or None,
                from_file=from_file,
            )
        )
    codes = [f.code for f in fields]
    dupes = sorted({c for c in codes if codes.count(c) > 1})
    if dupes:
        raise DeclarationError(f"item codes used twice: {', '.join(dupes)}", file=str(path))
    return Instrument(
        id=form_id,
        version=version,
        title=_clean(settings.get("form_title")) or form_id,
        fields=tuple(fields),
        scales=scales,
        dimensions=dimensions,
        source=str(path),
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

    @property
    def ids(self) -> list[str]:
        return list(self.versions)

    def get(self, instrument_id: str, version: str | None = None) -> Instrument:
        """One instrument version (the newest when ``version`` is None)."""
        if instrument_id not in self.versions:
            raise DeclarationError(
                f"unknown questionnaire {instrument_id!r}",
                expected="one of " + ", ".join(self.versions),
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
    for instrument_id, spec in registry.items():
        entries = []
        for v in (spec or {}).get("versions", []):
            workbook = directory / str(v["workbook"])
            waves = tuple(str(w) for w in v.get("waves", []))
            for w in waves:
                if not WAVE_PATTERN.match(w) or int(w[5:]) != int(w[:4]) + 1:
                    raise DeclarationError(
                        f"{instrument_id} {v.get('version')}: wave {w!r} is not an academic year",
                        file=str(registry_path),
                        expected="YYYY-YYYY with consecutive years, e.g. 2024-2025",
                    )
            inst = read_workbook(workbook)
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
    return Catalog(instruments=instruments, versions=versions, not_comparable=not_comparable)


@cache
def default_catalog() -> Catalog:
    """The catalog shipped with Sapat (read once per process)."""
    return read_catalog(INSTRUMENTS_DIR)


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
    "default_catalog",
    "wave_start_year",
    "LANGUAGES",
]
