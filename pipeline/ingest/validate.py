"""Type an export's rows and validate them with pandera; failures are data.

:func:`type_chunk` turns a chunk of raw strings into typed columns (scale codes,
registry codes, numbers), :func:`build_schema` makes the pandera schema from the
instrument and the org registry, and :func:`validate_chunk` runs it lazily and
returns the typed rows that passed plus one failure record per (row, column, check)
with the raw value. Nothing is dropped: a failing row goes to quarantine whole.
"""

from __future__ import annotations

import ctypes
import hashlib
import math
import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pandera.polars as pa
import polars as pl
import pyarrow
import pyarrow.compute as pc

from pipeline.ingest.mapping import (
    ColumnMap,
    Meta,
    answer_table,
    code_in_brackets,
    normalise,
    unit_table,
)
from pipeline.ingest.pseudonym import keyed_labels, pseudonyms
from pipeline.instruments import Field, Instrument, Role
from pipeline.readers import SOURCE_ROW

# pandera registers its polars backend on the first validation, importing hypothesis
# for its data-synthesis strategies on the way (a quarter of a second): done here, at
# import, so that it is not charged to whichever file happens to load first
pa.DataFrameSchema.register_default_backends(pl.DataFrame)

#: Typed value of an answer whose text is not in the choice list.
UNKNOWN_CODE = -1
#: Typed value of a number that does not parse.
UNPARSABLE = -32768
_TO_THE_SECOND = re.compile(r"\d{1,2}:\d{2}:\d{2}")
_DOTTED = re.compile(r"^\s*\d{1,2}\.\d{1,2}\.\d{4}")
_SLASHED = re.compile(r"^\s*\d{1,2}/\d{1,2}/\d{4}")
#: The same patterns for ASCII text in RE2 (Arrow), with Python's ASCII ``\s`` and ``\d``.
_ASCII_SPACE = r"[\t\n\x0b\x0c\r\x1c-\x1f ]"
_RE2 = {
    _DOTTED: rf"^{_ASCII_SPACE}*[0-9]{{1,2}}\.[0-9]{{1,2}}\.[0-9]{{4}}",
    _SLASHED: rf"^{_ASCII_SPACE}*[0-9]{{1,2}}/[0-9]{{1,2}}/[0-9]{{4}}",
}

REASONS = {
    "isin": "value not allowed here",
    "in_range": "number out of range",
    "not_nullable": "required answer missing",
    "unknown_answer": "answer not in the questionnaire's choice list",
    "unknown_unit": "not in the org registry (org_units.csv, teachers.csv or disciplines.csv)",
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
    #: answer tables (:func:`answer_table`) by (instrument, version, field), made once
    answers: dict[tuple[str, str, str], dict[str, int]] = field(default_factory=dict, compare=False)

    def answer_table(self, inst: Instrument, f: Field) -> dict[str, int]:
        key = (inst.id, inst.version, f.code)
        if key not in self.answers:
            self.answers[key] = answer_table(inst, f)
        return self.answers[key]

    @classmethod
    def from_registry(cls, reg) -> Context:
        progs = reg.programmes
        names = lambda fr: {  # noqa: E731
            r.code: {"ky": r.name_ky, "ru": r.name_ru, "en": r.name_en} for r in fr.itertuples()
        }
        return cls(
            programmes=unit_table(names(progs)),
            units=unit_table(names(reg.units)),
            teachers={normalise(t): t for t in reg.teachers["teacher_code"]},
            disciplines={normalise(d): d for d in reg.disciplines["discipline_code"]},
            programme_codes=frozenset(progs["code"]),
            unit_codes=frozenset(reg.units["code"]),
        )


def _factorize(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """(codes, uniques) of a column, as ``pd.factorize``: missing values get code -1,
    uniques in order of first appearance.

    pandas' CSV parser hands out one ``str`` object per distinct text in a column, so
    the column is factorized by object address first (integers, hashed several times
    faster than strings), then only the distinct objects are factorized by value; the
    result is the same whether or not equal texts share an object. A ``Categorical``
    column (how the Arrow CSV reader delivers them) is factorized already: its codes and
    categories (unused categories do no harm: every caller only looks texts up).
    """
    if isinstance(values.dtype, pd.CategoricalDtype):
        cat = values.array
        return cat.codes.astype(np.intp), np.asarray(cat.categories, dtype=object)
    arr = values.to_numpy(dtype=object)
    if len(arr) == 0 or not arr.flags.c_contiguous:
        return pd.factorize(arr, use_na_sentinel=True)
    # the object pointers, read in place (arr keeps the objects alive meanwhile)
    addresses = np.ctypeslib.as_array((ctypes.c_ssize_t * len(arr)).from_address(arr.ctypes.data))
    by_object, objects = pd.factorize(addresses)
    first = np.empty(len(objects), dtype=np.intp)
    first[by_object[::-1]] = np.arange(len(arr) - 1, -1, -1)
    codes, uniques = pd.factorize(arr[first], use_na_sentinel=True)
    return codes[by_object], uniques


def _strings(per_unique: list, codes: np.ndarray, index: pd.Index) -> pd.Series:
    """A ``string`` column: ``per_unique[code]`` by row, missing for code -1 (built in
    Arrow from the distinct values, not from one Python object per row)."""
    table = pyarrow.array([*per_unique, None], type=pyarrow.string())
    rows = table.take(pyarrow.array(np.where(codes < 0, len(per_unique), codes)))
    return pd.Series(pd.arrays.ArrowStringArray(rows), index=index)


def _lookup_codes(values: pd.Series, table: dict[str, str], factorized=None) -> pd.Series:
    """Registry code for each value (by code, unique name, or ``Name (CODE)``); else raw."""
    codes, uniq = factorized if factorized is not None else _factorize(values)
    found = []
    for v in uniq:
        text = str(v)
        inner = code_in_brackets(text)
        hit = table.get(normalise(inner)) if inner else None
        found.append(hit or table.get(normalise(text)) or text)
    return _strings(found, codes, values.index)


#: Exact formats tried before pandas' per-value ``format="mixed"`` parser; a value they
#: do not fit goes to ``mixed`` as before, so the result is the same, only faster.
_DOTTED_FORMATS = ("%d.%m.%Y %H:%M:%S", "%d.%m.%Y %H:%M", "%d.%m.%Y")
_SLASHED_FORMATS = (
    "%m/%d/%Y %H:%M:%S",
    "%m/%d/%Y %H:%M",
    "%m/%d/%Y",
    "%m/%d/%Y %I:%M:%S %p",
    "%m/%d/%Y %I:%M %p",
)


def _to_datetime(s: pd.Series, formats: tuple[str, ...], utc: bool = False, **mixed) -> pd.Series:
    """``pd.to_datetime(s, errors="coerce", format="mixed", utc=utc, **mixed)``, with the
    exact ``formats`` tried first (vectorised); what they do not fit goes to ``mixed``."""
    pieces, todo = [], s
    for fmt in formats:
        parsed = pd.to_datetime(todo, errors="coerce", format=fmt, utc=utc)
        ok = parsed.notna()
        pieces.append(parsed[ok])
        todo = todo[~ok]
        if todo.empty:
            break
    else:
        pieces.append(pd.to_datetime(todo, errors="coerce", format="mixed", utc=utc, **mixed))
    return pd.concat(pieces).reindex(s.index)


def _matches(texts: list, pattern: re.Pattern) -> pd.Series:
    r"""``pattern.match`` of each text (missing: False): in Arrow for ASCII texts, in
    Python for the others (where ``\s`` and ``\d`` reach beyond ASCII)."""
    arr = pyarrow.array(texts, type=pyarrow.string())
    ascii_ = pc.string_is_ascii(arr).fill_null(True).to_numpy(zero_copy_only=False)
    hit = pc.match_substring_regex(arr, _RE2[pattern]).fill_null(False)
    hit = hit.to_numpy(zero_copy_only=False).copy()
    for i in np.flatnonzero(~ascii_):
        hit[i] = pattern.match(texts[i]) is not None
    return pd.Series(hit)


def _parse_stamps(texts: list) -> pd.Series:
    """Timestamps of distinct texts (see :func:`parse_timestamps`)."""
    s = pd.Series(texts, dtype="string")
    out = pd.Series(pd.NaT, index=s.index, dtype="datetime64[ns]")
    for mask, formats, kwargs in (
        (_matches(texts, _DOTTED), _DOTTED_FORMATS, {"dayfirst": True}),
        (_matches(texts, _SLASHED), _SLASHED_FORMATS, {"dayfirst": False}),
    ):
        if mask.any():
            out[mask] = _to_datetime(s[mask], formats, **kwargs)
    rest = s.notna() & out.isna()
    if rest.any():
        parsed = _to_datetime(s[rest], ("ISO8601",), utc=True)
        out[rest] = parsed.dt.tz_convert("Asia/Bishkek").dt.tz_localize(None)
    return out


def _parse_one_stamp(text: str) -> np.datetime64:
    try:
        return _parse_stamps([text]).to_numpy()[0]
    except (ValueError, TypeError, OverflowError):
        return np.datetime64("NaT")


def parse_timestamps(values: pd.Series) -> pd.Series:
    """Timestamps as platforms write them: ``15.10.2024 10:23``, ``10/15/2024 10:23:45``,
    ISO 8601 with or without offset. Unparsable → NaT (timestamps are metadata).
    Each distinct text is parsed once."""
    codes, uniq = _factorize(values)
    texts = [str(u) for u in uniq]
    try:
        parsed = _parse_stamps(texts).to_numpy()
    except (ValueError, TypeError, OverflowError):  # e.g. mixed time zones: one by one
        parsed = np.array([_parse_one_stamp(t) for t in texts], dtype="datetime64[ns]")
    table = np.empty(len(parsed) + 1, dtype="datetime64[ns]")
    table[:-1] = parsed
    table[-1] = np.datetime64("NaT")
    return pd.Series(table[codes], index=values.index)


def _typed_field(
    inst: Instrument, f: Field, raw: pd.Series, ctx: Context, factorized=None
) -> pd.Series:
    """The typed column of one field; each distinct answer text is looked at once.
    ``factorized``: ``_factorize(raw)`` when the caller has it already."""
    codes, uniq = factorized = factorized if factorized is not None else _factorize(raw)
    scale = inst.scale_of(f)
    if f.context == "programme" and scale is None:
        return _lookup_codes(raw, ctx.programmes, factorized)
    if f.context == "unit" and scale is None:
        return _lookup_codes(raw, ctx.units, factorized)
    if f.context == "teacher":
        return _lookup_codes(raw, ctx.teachers, factorized)
    if f.context == "discipline":
        return _lookup_codes(raw, ctx.disciplines, factorized)
    if scale is not None:
        table = ctx.answer_table(inst, f)
        lut = np.array([table.get(normalise(v), UNKNOWN_CODE) for v in uniq] + [0], np.int8)
        values = pd.arrays.IntegerArray(lut[codes], codes < 0)
        return pd.Series(values, index=raw.index)
    if f.base_type in ("integer", "decimal"):
        u = pd.Series(uniq, dtype=object)
        num = pd.to_numeric(u.str.replace(",", ".", regex=False), errors="coerce")
        bad = u.notna() & (num.isna() | (num % 1 != 0) if f.base_type == "integer" else num.isna())
        num = num.mask(bad, UNPARSABLE).astype("Int16" if f.base_type == "integer" else "Float64")
        return pd.Series(num.array.take(codes, allow_fill=True), index=raw.index)
    return _strings([str(u) for u in uniq], codes, raw.index)


def _range(constraint: str | None) -> tuple[float | None, float | None]:
    """Bounds from an XLSForm constraint like ``. >= 0 and . <= 60``."""
    if not constraint:
        return None, None
    low = re.search(r"\.\s*>=?\s*(-?\d+(?:\.\d+)?)", constraint)
    high = re.search(r"\.\s*<=?\s*(-?\d+(?:\.\d+)?)", constraint)
    return (float(low.group(1)) if low else None, float(high.group(1)) if high else None)


#: Polars dtype of each typed column kind (``object``: a required column that is missing).
_DTYPES = {
    "string": pl.String,
    "Int8": pl.Int8,
    "Int16": pl.Int16,
    "Float64": pl.Float64,
    "object": pl.Object,
}


def build_schema(inst: Instrument, ctx: Context, present: list[str]) -> pa.DataFrameSchema:
    """The pandera schema of a typed chunk, generated from the questionnaire.

    Pandera's polars backend: the same checks as on pandas, several times faster
    (design/PERFORMANCE.md); :func:`validate_typed` hands it the chunk as polars.
    """
    columns = {}
    for f in inst.by_role(Role.CONTEXT, Role.ITEM, Role.OUTCOME):
        if f.code not in present:
            if f.required:
                columns[f.code] = pa.Column(_DTYPES["object"], required=True, nullable=False)
            continue
        scale = inst.scale_of(f)
        checks = []
        if f.context == "programme" and scale is None:
            dtype, checks = "string", [pa.Check.isin(sorted(ctx.programme_codes))]
        elif f.context == "unit" and scale is None:
            dtype, checks = "string", [pa.Check.isin(sorted(ctx.unit_codes))]
        elif f.context == "teacher":
            # checked against teachers.csv once the office lists its teachers there
            dtype = "string"
            checks = [pa.Check.isin(sorted(ctx.teachers.values()))] if ctx.teachers else []
        elif f.context == "discipline":
            dtype = "string"
            checks = [pa.Check.isin(sorted(ctx.disciplines.values()))] if ctx.disciplines else []
        elif scale is not None:
            dtype, checks = "Int8", [pa.Check.isin([c.code for c in scale.choices])]
        elif f.base_type == "integer":
            low, high = _range(f.constraint)
            dtype = "Int16"
            checks = [
                pa.Check.in_range(
                    low if low is not None else -32767, high if high is not None else 32767
                )
            ]
        elif f.base_type == "decimal":
            dtype = "Float64"
        else:
            dtype = "string"
        columns[f.code] = pa.Column(_DTYPES[dtype], checks, nullable=not f.required, required=True)
    return pa.DataFrameSchema(columns, name=f"{inst.id} {inst.version}", coerce=False)


@dataclass
class TypedChunk:
    """One chunk after typing and validation."""

    good: pd.DataFrame  # typed rows that passed, with base columns
    failures: pd.DataFrame  # source_row, column_name, check_name, value, reason
    bad_rows: pd.DataFrame  # raw rows that failed (e-mails/names removed), source_row first
    comments: pd.DataFrame  # source_row, item, text (of good rows)


#: The two hex digits of each byte value, as one 2-byte unit per value.
_HEX2 = np.frombuffer(b"".join(b"%02x" % i for i in range(256)), dtype=np.uint16)


def _hex(digests: np.ndarray, index: pd.Index) -> pd.Series:
    """Rows of bytes (n × k) as strings of 2k hex digits, built without a Python loop."""
    n, k = digests.shape
    chars = _HEX2[digests]  # n × k two-digit units, in memory order
    offsets = np.arange(0, 2 * k * (n + 1), 2 * k, dtype=np.int32)
    texts = pyarrow.StringArray.from_buffers(
        n, pyarrow.py_buffer(offsets), pyarrow.py_buffer(chars)
    )
    return pd.Series(texts.to_pandas().array, index=index)


def _xor_labels(n: int, parts: list[tuple[np.ndarray, list[bytes]]]) -> np.ndarray:
    """Per row, the XOR of one 32-byte label per part (``labels[code]``; code -1 takes
    the last label, the one for a missing value): n × 32 bytes."""
    acc = np.zeros((n, 4), dtype=np.uint64)
    rows = np.empty((n, 4), dtype=np.uint64)
    for codes, labels in parts:
        table = np.frombuffer(b"".join(labels), dtype=np.uint64).reshape(-1, 4)
        np.take(table, codes, axis=0, out=rows, mode="wrap")
        acc ^= rows
    return acc.view(np.uint8).reshape(n, 32)


def _answer_label(code: str, text: str) -> bytes:
    return hashlib.blake2b(f"{code}\x1f{text}".encode(), digest_size=16).digest()


def _row_keys(
    chunk: pd.DataFrame,
    answers: list[tuple[str, np.ndarray, np.ndarray]],
    meta: dict[Meta, str],
    key: bytes,
    instrument: str,
    wave: str,
) -> dict[str, pd.Series | None]:
    """person_key, submission_key and dup_key of every row; each distinct text is
    hashed once, rows get their keys by vectorised lookups.

    ``person_key`` is :func:`pseudonym` of the e-mail and ``submission_key`` that of the
    platform id with the submission time. Without a platform id, ``submission_key`` combines (XOR) keyed labels
    (HMAC-SHA256 with the secret key) of the submission time and of each answer, folded
    like a pseudonym's parts, so equal time and answers give equal keys and nobody
    without the key can compute one. ``dup_key`` combines unkeyed BLAKE2b labels of the
    answers as given (missing = empty): equal answers, equal key (96 bits, 24 hex digits).
    """
    n, index = len(chunk), chunk.index
    out: dict[str, pd.Series | None] = {"person_key": None}
    if Meta.EMAIL in meta:
        codes, uniq = _factorize(chunk[meta[Meta.EMAIL]])
        emails = [u for u in uniq if isinstance(u, str) and "@" in u]
        found = dict(zip(emails, pseudonyms(key, [instrument], emails), strict=True))
        out["person_key"] = _strings([found.get(u) for u in uniq], codes, index)
    if Meta.SUBMISSION_ID in meta:
        # platform ids restart at 1 in every form (MS Forms, LimeSurvey): with the
        # submission time they identify a submission across forms of the same survey
        ids = chunk[meta[Meta.SUBMISSION_ID]]
        stamp = next(
            (meta[k] for k in (Meta.SUBMITTED_AT, Meta.COMPLETED_AT, Meta.STARTED_AT) if k in meta),
            None,
        )
        if stamp is not None:
            ids = (
                ids.astype("string").fillna("") + "\x1f" + chunk[stamp].astype("string").fillna("")
            )
            ids = ids.mask(chunk[meta[Meta.SUBMISSION_ID]].isna())
        codes, uniq = _factorize(ids)
        ids = [t for t in map(str, uniq) if t]
        found = dict(zip(ids, pseudonyms(key, [instrument, wave], ids), strict=True))
        out["submission_key"] = _strings([found.get(str(u)) for u in uniq], codes, index)
    # without a platform id, the submission time with the answers identify a submission;
    # without a time either, nothing does (identical answers are no evidence)
    keyed = Meta.SUBMISSION_ID not in meta and Meta.SUBMITTED_AT in meta
    blank = bytes(16)
    parts = []  # per part: 16 bytes keyed label (submission_key), 16 unkeyed (dup_key)
    if keyed:
        codes, uniq = _factorize(chunk[meta[Meta.SUBMITTED_AT]])
        stamps = [*map(str, uniq), ""]
        labels = keyed_labels(key, [instrument, wave, ":submitted_at"], stamps)
        parts.append((codes, [k + blank for k in labels]))
    for code, codes, uniq in answers:
        texts = [*map(str, uniq), ""]
        plain = [_answer_label(code, t) for t in texts]
        labels = (
            keyed_labels(key, [instrument, wave, code], texts) if keyed else [blank] * len(texts)
        )
        parts.append((codes, [k + p for k, p in zip(labels, plain, strict=True)]))
    digests = _xor_labels(n, parts)
    if keyed:
        # a time to the second with the same answers is evidence of one submission; a
        # date alone (plain exports) is not
        codes, uniq = _factorize(chunk[meta[Meta.SUBMITTED_AT]])
        seconds = np.array([bool(_TO_THE_SECOND.search(str(u))) for u in uniq] + [False])
        stamped = seconds[codes]
        out["submission_key"] = _hex(digests[:, :16], index).where(stamped)
    elif Meta.SUBMISSION_ID not in meta:
        out["submission_key"] = None
    out["dup_key"] = _hex(digests[:, 16:28], index)
    return out


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
    typed = {SOURCE_ROW: chunk[SOURCE_ROW].to_numpy()}
    comments = []
    answers = []
    for col, code in cmap.fields.items():
        f = inst.field(code)
        if f.role is Role.COMMENT:  # kept stripped, when not blank
            codes, uniq = _factorize(chunk[col])
            texts = [u.strip() if isinstance(u, str) else "" for u in uniq]
            keep = (codes >= 0) & np.array([t != "" for t in texts] + [False])[codes]
            comments.append(
                pd.DataFrame(
                    {
                        SOURCE_ROW: chunk[SOURCE_ROW].to_numpy()[keep],
                        "item": code,
                        "text": _strings(texts, codes[keep], pd.RangeIndex(int(keep.sum()))).array,
                    }
                )
            )
            continue
        factorized = _factorize(chunk[col])
        answers.append((code, *factorized))
        typed[code] = _typed_field(inst, f, chunk[col], ctx, factorized)
    meta = {kind: col for col, kind in cmap.meta.items()}
    submitted = started = completed = None
    if Meta.SUBMITTED_AT in meta:
        submitted = parse_timestamps(chunk[meta[Meta.SUBMITTED_AT]])
    if Meta.STARTED_AT in meta:
        started = parse_timestamps(chunk[meta[Meta.STARTED_AT]])
    if Meta.COMPLETED_AT in meta:
        completed = parse_timestamps(chunk[meta[Meta.COMPLETED_AT]])
    typed = pd.DataFrame(typed, index=chunk.index)
    typed["submitted_at"] = (
        submitted if submitted is not None else completed if completed is not None else pd.NaT
    )
    if Meta.DURATION in meta:
        typed["duration_s"] = pd.to_numeric(chunk[meta[Meta.DURATION]], errors="coerce")
    elif started is not None and completed is not None:
        typed["duration_s"] = (completed - started).dt.total_seconds()
    else:
        typed["duration_s"] = np.nan
    for name, values in _row_keys(chunk, answers, meta, key, inst.id, wave).items():
        typed[name] = values
    items = [f.code for f in inst.items if f.code in typed]
    if items:  # answers on the scale (code >= 0: not a declared non-answer, not missing)
        answered = np.zeros(len(typed), dtype=np.int16)
        for code in items:
            values, present = _numbers(typed[code])
            answered += present & (values >= 0)
        typed["answered"] = answered
    else:
        typed["answered"] = 0
    frame = (
        pd.concat(comments, ignore_index=True)
        if comments
        else pd.DataFrame(columns=[SOURCE_ROW, "item", "text"])
    )
    return typed, frame


def validate_typed(
    typed: pd.DataFrame, raw: pd.DataFrame, cmap: ColumnMap, schema: pa.DataFrameSchema
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(passing rows, failure records) with pandera's lazy validation."""
    col_of = {code: col for col, code in cmap.fields.items()}
    checked = [c for c in schema.columns if c in typed.columns]
    frame = pl.from_arrow(pyarrow.Table.from_pandas(typed[checked], preserve_index=False))
    try:
        schema.validate(frame, lazy=True)
        return typed, pd.DataFrame(
            columns=["index", "column_name", "check_name", "value", "reason"]
        )
    except pa.errors.SchemaErrors as exc:
        fc = exc.failure_cases.filter(pl.col("index").is_not_null())
    records = []
    positions, columns, checks = (fc[c].to_list() for c in ("index", "column", "check"))
    for pos, column, check in zip(positions, columns, checks, strict=True):
        idx = int(typed.index[pos])
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
        records.append(
            {
                "index": idx,
                "column_name": src or column,
                "check_name": check_name,
                "value": None if value is None or pd.isna(value) else str(value),
                "reason": f"{column}: {reason}",
            }
        )
    failures = pd.DataFrame(
        records, columns=["index", "column_name", "check_name", "value", "reason"]
    )
    bad = set(failures["index"])
    good = typed[~typed.index.isin(bad)]
    return good, failures


def _numbers(column: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """(values, present) of a numeric column; integer codes stay integers (no copy)."""
    arr = column.array
    if isinstance(arr, pd.arrays.IntegerArray):
        return arr._data, ~arr._mask
    values = column.to_numpy(dtype="float64", na_value=np.nan)
    return values, ~np.isnan(values)


def row_flags(typed: pd.DataFrame, inst: Instrument) -> pd.DataFrame:
    """Flags visible within a row: straight-lining and too few answers (nothing deleted).

    A straight-liner gives the same place on the scale to every item (five or more
    answered): the same code where the items share a scale; on items of different
    scales, the same relative position (lowest, highest, 1/3 of the way…).
    """
    items = [f.code for f in inst.items if f.code in typed]
    rows = typed[SOURCE_ROW].to_numpy(dtype=np.int64)
    frames = []
    if len(items) >= 5:
        n = len(typed)
        answered = np.zeros(n, dtype=np.int16)
        columns = [_numbers(typed[code]) for code in items]
        bounds = [(inst.item_scale(c).low, inst.item_scale(c).high) for c in items]
        if len(set(bounds)) > 1:  # positions on a common grid: exact integers
            grid = math.lcm(*(hi - lo for lo, hi in bounds))
            columns = [
                (
                    np.where(present, (values.astype(np.int64) - lo) * (grid // (hi - lo)), -1),
                    present,
                )
                for (values, present), (lo, hi) in zip(columns, bounds, strict=True)
            ]
            columns = [(np.where(v >= 0, v, -1), p & (v >= 0)) for v, p in columns]
        kind = np.result_type(*(values.dtype for values, _ in columns))
        if kind.kind in "iu":
            info = np.iinfo(kind)
            low, high = np.full(n, info.max, dtype=kind), np.full(n, info.min, dtype=kind)
        else:
            low, high = np.full(n, np.inf), np.full(n, -np.inf)
        for values, present in columns:  # declared non-answers (codes < 0) are no answer
            given = present & (values >= 0)
            answered += given
            np.minimum(low, values, out=low, where=given)
            np.maximum(high, values, out=high, where=given)
        same = (answered >= 5) & (low == high)
        frames.append(
            pd.DataFrame(
                {
                    SOURCE_ROW: rows[same],
                    "flag": "straight_liner",
                    "detail": "the same answer to every item",
                }
            )
        )
        few = answered < (len(items) + 1) // 2
        frames.append(
            pd.DataFrame(
                {
                    SOURCE_ROW: rows[few],
                    "flag": "too_few_answers",
                    "detail": [f"{n} of {len(items)} items answered" for n in answered[few]],
                }
            )
        )
    if not frames:
        return pd.DataFrame(columns=[SOURCE_ROW, "flag", "detail"])
    return pd.concat(frames, ignore_index=True)
