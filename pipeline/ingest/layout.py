"""Mapping files, and long-format exports turned into one row per respondent.

A mapping file (YAML, given with ``--mapping``) matches an export's headings to item
codes, for exports whose headings Sapat does not recognise::

    columns:
      Q1: se_tl01
      Q2: ignore

It can also declare that the export is in **long format**, one row per answer::

    layout: long
    respondent: RespondentID     # optional: the column identifying a respondent
    question: Question           # the column naming the item (code, label or alias)
    answer: Response             # the column holding the answer
    columns:                     # the other columns, matched as in a wide export
      Department: unit

With a respondent column, the rows are gathered per respondent into one wide row (its
first row number is kept for messages), so everything is computed as for a wide export.
Without one, each answer stays a row of its own: item indicators are computed from the
answers, and what needs a respondent (dimension scores, alpha, key drivers, response
rates, weights) is reported as not available.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import pandas as pd
import yaml

from pipeline.errors import MappingError
from pipeline.readers import SOURCE_ROW, Export

WIDE, LONG, LONG_NO_ID = "wide", "long", "long_no_id"


@dataclass(frozen=True)
class Mapping:
    """What a mapping file says."""

    columns: dict[str, str] = field(default_factory=dict)
    layout: str = WIDE
    respondent: str | None = None
    question: str | None = None
    answer: str | None = None
    source: str | None = None


def read_mapping_file(path: str | Path) -> Mapping:
    """Read a mapping file (see the module docstring)."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8-sig")) or {}
    except (OSError, yaml.YAMLError, UnicodeDecodeError) as exc:
        raise MappingError(f"cannot read the mapping file: {exc}", file=str(path)) from exc
    if not isinstance(data, dict):
        raise MappingError(
            "the mapping file must map column names to item codes",
            file=str(path),
            expected="lines like  Q1: se_tl01",
        )
    layout = str(data.get("layout", WIDE)).strip().lower()
    if layout not in (WIDE, LONG):
        raise MappingError(
            f"layout {layout!r} is not known", file=str(path), expected="wide or long"
        )
    columns = (data.get("columns") or {}) if "columns" in data or layout == LONG else data
    if not isinstance(columns, dict):
        raise MappingError(
            "'columns' must map column names to item codes",
            file=str(path),
            expected="columns:\n  Q1: se_tl01",
        )
    out = Mapping(
        columns={str(k): str(v) for k, v in columns.items()}, layout=layout, source=str(path)
    )
    if layout == LONG:
        for key in ("question", "answer"):
            if not data.get(key):
                raise MappingError(
                    f"a long-format mapping needs '{key}: COLUMN'",
                    file=str(path),
                    expected="question: <column naming the item>, "
                    "answer: <column holding the answer>",
                )
        respondent = data.get("respondent")
        out = replace(
            out,
            respondent=str(respondent) if respondent else None,
            question=str(data["question"]),
            answer=str(data["answer"]),
        )
    return out


def mapping_to_json(mapping: Mapping | None) -> str | None:
    """A mapping as JSON (kept with a load, so a rebuild reads the file the same way)."""
    if mapping is None:
        return None
    import json

    return json.dumps(
        {
            "columns": mapping.columns,
            "layout": mapping.layout,
            "respondent": mapping.respondent,
            "question": mapping.question,
            "answer": mapping.answer,
        },
        ensure_ascii=False,
    )


def mapping_from_json(text: str | None) -> Mapping | None:
    if not text:
        return None
    import json

    data = json.loads(text)
    return Mapping(
        columns=dict(data.get("columns") or {}),
        layout=data.get("layout", WIDE),
        respondent=data.get("respondent"),
        question=data.get("question"),
        answer=data.get("answer"),
    )


def layout_of(mapping: Mapping | None) -> str:
    if mapping is None or mapping.layout == WIDE:
        return WIDE
    return LONG if mapping.respondent else LONG_NO_ID


def widen(export: Export, mapping: Mapping) -> Export:
    """A long-format export as a wide one: columns are the other columns, then one per
    distinct question text (in order of first appearance)."""
    file = str(export.path)
    for role in ("respondent", "question", "answer"):
        col = getattr(mapping, role)
        if col is not None and col not in export.columns:
            raise MappingError(
                f"the mapping's {role} column {col!r} is not in the file",
                file=file,
                column=col,
                expected="one of " + ", ".join(map(repr, export.columns[:20])),
            )
    special = {mapping.question, mapping.answer}
    rows = export.read_all()
    questions = rows[mapping.question].astype("string")
    blank = questions.isna() | (questions.str.strip() == "")
    if blank.any():
        row = int(rows.loc[blank.idxmax(), SOURCE_ROW])
        raise MappingError(
            "a row names no question",
            file=file,
            row=row,
            column=mapping.question,
            expected="the item each answer is for",
        )
    order = list(dict.fromkeys(questions.str.strip()))
    others = [c for c in export.columns if c not in special]
    clash = [q for q in order if q in others]
    if clash:
        raise MappingError(
            f"questions {clash[:3]} have the same name as a column of the file",
            file=file,
            column=mapping.question,
        )
    rows = rows.assign(_q=questions.str.strip())
    if mapping.respondent is None:
        wide = rows[[SOURCE_ROW, *others]].copy()
        for q in order:
            wide[q] = rows[mapping.answer].where(rows["_q"] == q)
    else:
        rid = rows[mapping.respondent].astype("string")
        missing = rid.isna() | (rid.str.strip() == "")
        if missing.any():
            row = int(rows.loc[missing.idxmax(), SOURCE_ROW])
            raise MappingError(
                "a row has no respondent id",
                file=file,
                row=row,
                column=mapping.respondent,
                expected="the respondent every answer row belongs to",
            )
        rows = rows.assign(_rid=rid.str.strip())
        twice = rows.duplicated(["_rid", "_q"], keep=False)
        if twice.any():
            first = rows[twice].iloc[0]
            raise MappingError(
                f"respondent {first['_rid']!r} answers question {first['_q']!r} more than once",
                file=file,
                row=int(first[SOURCE_ROW]),
                column=mapping.question,
                expected="one row per respondent and question",
            )
        context = rows.groupby("_rid", sort=False)[[SOURCE_ROW, *others]].first()
        answers = rows.pivot(index="_rid", columns="_q", values=mapping.answer)
        wide = context.join(answers[order]).reset_index(drop=True)
        wide[SOURCE_ROW] = wide[SOURCE_ROW].astype("int64")
    wide = wide.astype({c: object for c in wide.columns if c != SOURCE_ROW})
    wide = wide.where(wide.notna(), None)
    columns = [*others, *order]
    size = export.chunk_rows

    def chunks(n: int) -> Iterator[pd.DataFrame]:
        for start in range(0, len(wide), n):
            yield wide.iloc[start : start + n][[SOURCE_ROW, *columns]].copy()

    return replace(
        export,
        columns=columns,
        column_labels=None,
        column_ids=None,
        chunk_rows=size,
        _chunks=chunks,
    )
