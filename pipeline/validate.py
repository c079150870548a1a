"""Type an export's rows and validate them with pandera; failures are data.

:func:`type_chunk` turns a chunk of raw strings into typed columns (scale codes,
registry codes, numbers), :func:`build_schema` makes the pandera schema from the
instrument and the org registry, and :func:`validate_chunk` runs it lazily and
returns the typed rows that passed plus one failure record per (row, column, check)
with the raw value. Nothing is dropped: a failing row goes to quarantine whole.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pandera.pandas as pa

from pipeline.instruments import Field, Instrument, Role
from pipeline.mapping import ColumnMap, Meta, answer_table, code_in_brackets, normalise, unit_table
from pipeline.pseudonym import pseudonym
from pipeline.readers import SOURCE_ROW

#: Typed value of an answer whose text is not in the choice list.
UNKNOWN_CODE = -1
#: Typed value of a number that does not parse.
UNPARSABLE = -32768
_DOTTED = re.compile(r"^\s*\d{1,2}\.\d{1,2}\.\d{4}")
_SLASHED = re.compile(r"^\s*\d{1,2}/\d{1,2}/\d{4}")

REASONS = {
    "isin": "value not allowed here",
    "in_range": "number out of range",
    "not_nullable": "required answer missing",
    "unknown_answer": "answer not in the questionnaire's choice list",
    "unknown_unit": "not in the org registry",
    "already_loaded": "this submission was already loaded from an earlier file",
}


@dataclass(frozen=True)
class Context:
    """What typing and validation need from the org registry, prepared once per load."""

    programmes: dict[str, str]  # normalised name/code -> programme code
    units: dict[str, str]  # normalised name/code -> unit code (faculty-level, university)
    teachers: dict[str, str]
    disciplines: dict[str, str]
    programme_codes: frozenset[str]
    unit_codes: frozenset[str]

    @classmethod
    def from_registry(cls, reg) -> Context:
        progs = reg.programmes
        names = lambda fr: {  # noqa: E731
            r.code: {"ky": r.name_ky, "ru": r.name_ru, "en": r.name_en} for r in fr.itertuples()
        }
        units = pd.concat([reg.faculties, reg.of_kind("university")])
        return cls(
            programmes=unit_table(names(progs)),
            units=unit_table(names(units)),
            teachers={normalise(t): t for t in reg.teachers["teacher_code"]},
            disciplines={normalise(d): d for d in reg.disciplines["discipline_code"]},
            programme_codes=frozenset(progs["code"]),
            unit_codes=frozenset(units["code"]),
        )


def _lookup_codes(values: pd.Series, table: dict[str, str]) -> pd.Series:
    """Registry code for each value (by code, unique name, or ``Name (CODE)``); else raw."""
    uniq = values.dropna().unique()
    found = {}
    for v in uniq:
        text = str(v)
        inner = code_in_brackets(text)
        hit = table.get(normalise(inner)) if inner else None
        found[v] = hit or table.get(normalise(text)) or text
    return values.map(found)


def parse_timestamps(values: pd.Series) -> pd.Series:
    """Timestamps as platforms write them: ``15.10.2024 10:23``, ``10/15/2024 10:23:45``,
    ISO 8601 with or without offset. Unparsable → NaT (timestamps are metadata)."""
    s = values.astype("string")
    out = pd.Series(pd.NaT, index=values.index, dtype="datetime64[ns]")
    for mask, kwargs in (
        (s.str.match(_DOTTED.pattern).fillna(False), {"dayfirst": True}),
        (s.str.match(_SLASHED.pattern).fillna(False), {"dayfirst": False}),
    ):
        if mask.any():
            out[mask] = pd.to_datetime(s[mask], errors="coerce", format="mixed", **kwargs)
    rest = s.notna() & out.isna()
    if rest.any():
        parsed = pd.to_datetime(s[rest], errors="coerce", format="mixed", utc=True)
        out[rest] = parsed.dt.tz_convert("Asia/Bishkek").dt.tz_localize(None)
    return out


def _typed_field(inst: Instrument, f: Field, raw: pd.Series, ctx: Context) -> pd.Series:
    scale = inst.scale_of(f)
    if f.context == "programme" and scale is None:
        return _lookup_codes(raw, ctx.programmes).astype("string")
    if f.context == "unit" and scale is None:
        return _lookup_codes(raw, ctx.units).astype("string")
    if f.context == "teacher":
        return _lookup_codes(raw, ctx.teachers).astype("string")
    if f.context == "discipline":
        return _lookup_codes(raw, ctx.disciplines).astype("string")
    if scale is not None:
        table = answer_table(inst, f)
        uniq = raw.dropna().unique()
        codes = {v: table.get(normalise(v), UNKNOWN_CODE) for v in uniq}
        return raw.map(codes).astype("Int8")
    if f.base_type in ("integer", "decimal"):
        num = pd.to_numeric(raw.str.replace(",", ".", regex=False), errors="coerce")
        bad = raw.notna() & (
            num.isna() | (num % 1 != 0) if f.base_type == "integer" else num.isna()
        )
        num = num.mask(bad, UNPARSABLE)
        return num.astype("Int16" if f.base_type == "integer" else "Float64")
    return raw.astype("string")


def _range(constraint: str | None) -> tuple[float | None, float | None]:
    """Bounds from an XLSForm constraint like ``. >= 0 and . <= 60``."""
    if not constraint:
        return None, None
    low = re.search(r"\.\s*>=?\s*(-?\d+(?:\.\d+)?)", constraint)
    high = re.search(r"\.\s*<=?\s*(-?\d+(?:\.\d+)?)", constraint)
    return (float(low.group(1)) if low else None, float(high.group(1)) if high else None)


def build_schema(inst: Instrument, ctx: Context, present: list[str]) -> pa.DataFrameSchema:
    """The pandera schema of a typed chunk, generated from the questionnaire."""
    columns = {}
    for f in inst.by_role(Role.CONTEXT, Role.ITEM, Role.OUTCOME):
        if f.code not in present:
            if f.required:
                columns[f.code] = pa.Column(object, required=True, nullable=False)
            continue
        scale = inst.scale_of(f)
        checks = []
        if f.context == "programme" and scale is None:
            dtype, checks = "string", [pa.Check.isin(sorted(ctx.programme_codes))]
        elif f.context == "unit" and scale is None:
            dtype, checks = "string", [pa.Check.isin(sorted(ctx.unit_codes))]
        elif f.context == "teacher":
            dtype, checks = "string", [pa.Check.isin(sorted(ctx.teachers.values()))]
        elif f.context == "discipline":
            dtype, checks = "string", [pa.Check.isin(sorted(ctx.disciplines.values()))]
        elif scale is not None:
            dtype, checks = "Int8", [pa.Check.isin([c.code for c in scale.choices])]
        elif f.base_type == "integer":
            low, high = _range(f.constraint)
            dtype = "Int16"
            checks = [pa.Check.in_range(low if low is not None else -32767,
                                        high if high is not None else 32767)]  # fmt: skip
        elif f.base_type == "decimal":
            dtype = "Float64"
        else:
            dtype = "string"
        columns[f.code] = pa.Column(dtype, checks, nullable=not f.required, required=True)
    return pa.DataFrameSchema(columns, name=f"{inst.id} {inst.version}", coerce=False)


@dataclass
class TypedChunk:
    """One chunk after typing and validation."""

    good: pd.DataFrame  # typed rows that passed, with base columns
    failures: pd.DataFrame  # source_row, column_name, check_name, value, reason
    bad_rows: pd.DataFrame  # raw rows that failed (e-mails/names removed), source_row first
    comments: pd.DataFrame  # source_row, item, text (of good rows)


def type_chunk(
    chunk: pd.DataFrame,
    cmap: ColumnMap,
    ctx: Context,
    *,
    key: bytes,
    wave: str,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(typed frame, comments) for one raw chunk; no validation yet."""
    inst = cmap.instrument
    typed = pd.DataFrame({SOURCE_ROW: chunk[SOURCE_ROW].to_numpy()}, index=chunk.index)
    comments = []
    for col, code in cmap.fields.items():
        f = inst.field(code)
        if f.role is Role.COMMENT:
            text = chunk[col].dropna()
            text = text[text.str.strip() != ""]
            comments.append(pd.DataFrame({SOURCE_ROW: chunk.loc[text.index, SOURCE_ROW],
                                          "item": code, "text": text.str.strip()}))  # fmt: skip
            continue
        typed[code] = _typed_field(inst, f, chunk[col], ctx)
    meta = {kind: col for col, kind in cmap.meta.items()}
    submitted = started = completed = None
    if Meta.SUBMITTED_AT in meta:
        submitted = parse_timestamps(chunk[meta[Meta.SUBMITTED_AT]])
    if Meta.STARTED_AT in meta:
        started = parse_timestamps(chunk[meta[Meta.STARTED_AT]])
    if Meta.COMPLETED_AT in meta:
        completed = parse_timestamps(chunk[meta[Meta.COMPLETED_AT]])
    typed["submitted_at"] = (
        submitted if submitted is not None else completed if completed is not None else pd.NaT
    )
    if Meta.DURATION in meta:
        typed["duration_s"] = pd.to_numeric(chunk[meta[Meta.DURATION]], errors="coerce")
    elif started is not None and completed is not None:
        typed["duration_s"] = (completed - started).dt.total_seconds()
    else:
        typed["duration_s"] = np.nan
    typed["person_key"] = (
        chunk[meta[Meta.EMAIL]].map(
            lambda v: pseudonym(key, inst.id, v) if isinstance(v, str) and "@" in v else None
        )
        if Meta.EMAIL in meta
        else None
    )
    answer_cols = [c for c in cmap.fields if inst.field(cmap.fields[c]).role is not Role.COMMENT]
    content = chunk[answer_cols].fillna("").astype(str).agg("\x1f".join, axis=1)
    if Meta.SUBMISSION_ID in meta:
        ids = chunk[meta[Meta.SUBMISSION_ID]].fillna("").astype(str)
        typed["submission_key"] = [pseudonym(key, inst.id, wave, i) if i else None for i in ids]
    else:  # no platform id: the submission time with the answers identify a submission
        stamp = chunk[meta[Meta.SUBMITTED_AT]].fillna("") if Meta.SUBMITTED_AT in meta else ""
        typed["submission_key"] = [
            pseudonym(key, inst.id, wave, s, c) for s, c in zip(
                stamp if isinstance(stamp, pd.Series) else [""] * len(content), content,
                strict=True)
        ]  # fmt: skip
    # identical answers (with context) mark a duplicate submission where no person key exists
    typed["dup_key"] = [hashlib.blake2b(c.encode(), digest_size=12).hexdigest() for c in content]
    items = [f.code for f in inst.items if f.code in typed]
    if items:
        vals = typed[items]
        typed["answered"] = vals.isin(list(range(1, 11))).sum(axis=1).astype("int16")
    else:
        typed["answered"] = 0
    frame = pd.concat(comments, ignore_index=True) if comments else pd.DataFrame(
        columns=[SOURCE_ROW, "item", "text"])  # fmt: skip
    return typed, frame


def validate_typed(
    typed: pd.DataFrame, raw: pd.DataFrame, cmap: ColumnMap, schema: pa.DataFrameSchema
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(passing rows, failure records) with pandera's lazy validation."""
    col_of = {code: col for col, code in cmap.fields.items()}
    try:
        schema.validate(typed, lazy=True)
        return typed, pd.DataFrame(
            columns=["index", "column_name", "check_name", "value", "reason"]
        )
    except pa.errors.SchemaErrors as exc:
        fc = exc.failure_cases
    fc = fc[fc["index"].notna()].copy()
    records = []
    for idx, column, check in zip(fc["index"], fc["column"], fc["check"], strict=True):
        idx = int(idx)
        src = col_of.get(column)
        value = raw.at[idx, src] if src is not None and src in raw.columns else None
        check_name = str(check).split("(")[0]
        typed_value = typed.at[idx, column] if column in typed.columns else None
        if check_name == "isin" and typed_value is not None and not pd.isna(typed_value):
            if typed_value == UNKNOWN_CODE:
                check_name = "unknown_answer"
            elif isinstance(typed_value, str):
                check_name = "unknown_unit"
        reason = REASONS.get(check_name, check_name)
        if check_name == "in_range":
            reason += f" ({check})"
        records.append({"index": idx, "column_name": src or column, "check_name": check_name,
                         "value": None if value is None or pd.isna(value) else str(value),
                         "reason": f"{column}: {reason}"})  # fmt: skip
    failures = pd.DataFrame(records, columns=["index", "column_name", "check_name", "value",
                                              "reason"])  # fmt: skip
    bad = set(failures["index"])
    good = typed[~typed.index.isin(bad)]
    return good, failures


def row_flags(typed: pd.DataFrame, inst: Instrument) -> pd.DataFrame:
    """Flags visible within a row: straight-lining and too few answers (nothing deleted)."""
    items = [f.code for f in inst.items if f.code in typed]
    out = []
    if len(items) >= 5:
        vals = typed[items].where(typed[items] > 0)
        answered = vals.notna().sum(axis=1)
        same = (vals.nunique(axis=1) == 1) & (answered >= 5)
        for r in typed.loc[same, SOURCE_ROW]:
            out.append((int(r), "straight_liner", "the same answer to every item"))
        few = answered < (len(items) + 1) // 2
        for r, n in zip(typed.loc[few, SOURCE_ROW], answered[few], strict=True):
            out.append((int(r), "too_few_answers", f"{int(n)} of {len(items)} items answered"))
    return pd.DataFrame(out, columns=[SOURCE_ROW, "flag", "detail"])
