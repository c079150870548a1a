"""Synthetic exports of any questionnaire: a latent-trait model on each item's own scale.

Unlike :mod:`pipeline.synth.generate` (the BatSU example, whose questionnaires and planted
effects it knows by name), this module knows no questionnaire: everything it writes follows
from an :class:`~pipeline.instruments.Instrument` read from a workbook. It is for tests and
demonstrations of an office's own questionnaire.

Model
-----
Each respondent belongs to a unit (drawn uniformly from ``units``) and has a general
satisfaction ``g ~ N(unit_offset, 1)``. Each dimension has a factor
``f_d = A*g + sqrt(1 - A^2)*e_d`` (unit variance) and each item a continuous score
``y* = LOADING*f_d + b_i + eps`` with ``eps ~ N(0, NOISE^2)`` and a small positive
intercept ``b_i`` (most answers are favourable, as in real files). ``y*`` is cut into the
item's own scale ``low..high`` (2 to 11 points, 0- or 1-based) at cut points that split a
centred ``y*`` into equally likely answers, so every answer of a scale, both ends
included, occurs. ``y*`` always points to satisfaction; a reverse-coded item is written as
``low + high - x``.

Then, in this order:

* straight-liners (``straight_share`` of the respondents) give one answer position to
  every item, as they see the form: the same raw position, whatever an item's wording
  (a reverse item is not flipped), mapped to each item's own scale by its quantile
  (``low + floor(u * points)``); they answer every item;
* the other respondents leave an item blank at ``missing_rate`` and, on items whose scale
  declares non-answers, give one of them (uniformly) at ``non_answer_rate``;
* ``identical_share`` of the rows are replaced by a copy of another, randomly chosen row
  that is not itself replaced (every field, context included, and the unit).

Outcomes with a choice list are uniform over their valid choices; integer and decimal
fields are small non-negative integers (``min + Poisson(3)``, within a declared
``constraint``). Context fields with a choice list are uniform over their valid choices.
Comments are mostly empty. Meta fields (``start``, ``end``) are not written.

Everything is drawn from one ``numpy.random.default_rng(seed)`` in a fixed order: the
same arguments give the same export.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.special import ndtri

from pipeline.instruments.model import ContextRole, Field, Instrument, Role, Scale

#: Loading of a dimension factor on the general factor ``g``.
GENERAL_LOADING = 0.7
#: Loading of an item on its dimension factor, and the sd of its own noise.
LOADING = 1.0
NOISE = 0.85  # as pipeline.synth.model.ITEM_NOISE
#: Range of the item intercepts, in sd of ``y*`` (positive: answers lean favourable).
INTERCEPT_RANGE = (0.1, 0.4)
#: Mean above the declared minimum of an integer or decimal field.
COUNT_MEAN = 3.0
#: Share of respondents writing a comment, and what they write.
COMMENT_RATE = 0.05
COMMENTS = (
    "Thank you.",
    "No comment.",
    "More practical classes, please.",
    "Everything was fine.",
    "The schedule changes too often.",
)
#: Column of ``truth`` holding each row's unit.
UNIT_COLUMN = "unit"


def unit_field(inst: Instrument) -> Field | None:
    """The context field the units fill: the one declared ``unit``, else ``programme``."""
    return inst.context_field(ContextRole.UNIT) or inst.context_field(ContextRole.PROGRAMME)


def _bounds(constraint: str | None) -> tuple[float | None, float | None]:
    """(low, high) of an XLSForm constraint like ``. >= 0 and . <= 60``."""
    if not constraint:
        return None, None
    low = re.search(r"\.\s*>=?\s*(-?\d+(?:\.\d+)?)", constraint)
    high = re.search(r"\.\s*<=?\s*(-?\d+(?:\.\d+)?)", constraint)
    return (float(low.group(1)) if low else None, float(high.group(1)) if high else None)


def _check_share(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must lie in [0, 1], not {value!r}")


def _cuts(points: int, sd: float) -> np.ndarray:
    """Cut points splitting N(0, sd^2) into ``points`` equally likely answers."""
    return sd * ndtri(np.linspace(0.0, 1.0, points + 1)[1:-1])


def _labels(scale: Scale, lang: str) -> dict[int, str]:
    """Code -> the text an export writes: the label in ``lang``, else the choice name.
    A scale whose labels in ``lang`` are not all different is written by name."""
    labels = {c.code: c.labels.get(lang) or c.name for c in scale.choices}
    if len(set(labels.values())) < len(labels):
        return {c.code: c.name for c in scale.choices}
    return labels


def _render(values: pd.Series, f: Field, inst: Instrument, lang: str, is_unit: bool) -> pd.Series:
    """A truth column as the export's strings."""
    scale = inst.scale_of(f)
    if is_unit:  # unit codes; on a choice list, the label of the choice named so
        labels = _labels(scale, lang) if scale is not None else {}
        names = {c.name: labels[c.code] for c in scale.choices} if scale is not None else {}
        return values.map(lambda u: names.get(u, u))
    if scale is not None:
        labels = _labels(scale, lang)
        return values.map(lambda v: "" if pd.isna(v) else labels[int(v)])
    if f.base_type in ("integer", "decimal"):
        return values.map(lambda v: "" if pd.isna(v) else str(int(v)))
    return values.map(lambda v: "" if v is None or pd.isna(v) else str(v))


def synthesize_instrument(
    inst: Instrument,
    units: list[str],
    *,
    n: int,
    seed: int,
    straight_share: float = 0.0,
    identical_share: float = 0.0,
    missing_rate: float = 0.03,
    non_answer_rate: float = 0.05,
    unit_offsets: dict[str, float] | None = None,
    label_language: str = "en",
    lists: dict[str, dict[str, list[str]]] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A synthetic export of ``inst`` with ``n`` rows, and the truth behind it.

    Returns ``(export, truth)``. ``export`` holds strings, as a survey platform writes
    them: one column per context, item, outcome and comment field (heading: the field's
    code), choices written as their label in ``label_language`` (the choice name where a
    choice has none), units as their code, ``""`` for no answer. ``truth`` holds the
    same rows as codes: answers on a choice list as their storage code (declared
    non-answers -2/-3), numbers as numbers, NaN for a blank, the unit field as the unit
    code, comments as text or None; plus a ``unit`` column (each row's unit).

    ``unit_offsets`` (unit code -> offset of the mean of ``g``) plants differences
    between units; units not named have offset 0. Context fields filled from a file other
    than the unit field (a teacher or discipline list, a programme when the units are
    faculties) take their codes from ``lists``: field code -> {unit code -> codes}, the key
    ``"*"`` for every unit (a row of a unit with no list draws from ``"*"``); fields
    without a list are left empty.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, not {n}")
    if not units:
        raise ValueError("give at least one unit code")
    shares = {
        "straight_share": straight_share,
        "identical_share": identical_share,
        "missing_rate": missing_rate,
        "non_answer_rate": non_answer_rate,
    }
    for name, share in shares.items():
        _check_share(name, share)
    offsets = dict(unit_offsets or {})
    unknown = sorted(set(offsets) - set(units))
    if unknown:
        raise ValueError(f"unit_offsets names units not in units: {', '.join(unknown)}")
    fields = inst.by_role(Role.CONTEXT, Role.ITEM, Role.OUTCOME, Role.COMMENT)
    if any(f.code == UNIT_COLUMN for f in fields) and (
        (uf := unit_field(inst)) is None or uf.code != UNIT_COLUMN
    ):
        raise ValueError(f"a field named {UNIT_COLUMN!r} that is not the unit field")

    rng = np.random.default_rng(seed)
    unit_codes = np.asarray(units, dtype=object)
    unit = unit_codes[rng.integers(0, len(unit_codes), n)]
    mu = np.array([offsets.get(u, 0.0) for u in unit], dtype=float)
    g = mu + rng.standard_normal(n)

    # items: dimension factors, then each item's continuous score cut on its own scale
    items = inst.items
    dims = list(dict.fromkeys(f.dimension for f in items))
    a = GENERAL_LOADING
    factor = {d: a * g + np.sqrt(1 - a * a) * rng.standard_normal(n) for d in dims}
    sd = float(np.hypot(LOADING, NOISE))
    straight = rng.random(n) < straight_share
    position = rng.random(n)  # a straight-liner's answer position, as a quantile
    columns: dict[str, object] = {}
    for f in items:
        scale = inst.item_scale(f.code)
        low, high, points = scale.low, scale.high, scale.points
        intercept = rng.uniform(*INTERCEPT_RANGE) * sd
        ystar = LOADING * factor[f.dimension] + intercept + NOISE * rng.standard_normal(n)
        x = (low + np.searchsorted(_cuts(points, sd), ystar)).astype(float)
        if f.reverse:
            x = low + high - x
        x[straight] = low + np.minimum(np.floor(position[straight] * points), points - 1)
        blank = ~straight & (rng.random(n) < missing_rate)
        declared = sorted(c.code for c in scale.choices if c.name in scale.missing)
        non_answer = ~straight & ~blank & (rng.random(n) < non_answer_rate)
        if declared:
            x[non_answer] = np.asarray(declared)[rng.integers(0, len(declared), n)][non_answer]
        x[blank] = np.nan
        columns[f.code] = x

    the_unit = unit_field(inst)
    for f in fields:
        if f.role is Role.ITEM:
            continue
        scale = inst.scale_of(f)
        if f is the_unit:
            columns[f.code] = unit.copy()
        elif scale is not None:
            codes = np.asarray(scale.codes, dtype=float)
            v = codes[rng.integers(0, len(codes), n)]
            if f.role is Role.OUTCOME and not f.required:
                v[rng.random(n) < missing_rate] = np.nan
            columns[f.code] = v
        elif f.base_type in ("integer", "decimal") and f.role is not Role.COMMENT:
            lo, hi = _bounds(f.constraint)
            lo = np.ceil(lo) if lo is not None and lo > 0 else 0.0
            v = lo + rng.poisson(COUNT_MEAN, n).astype(float)
            if hi is not None:
                v = np.minimum(v, max(lo, np.floor(hi)))
            if f.role is Role.OUTCOME and not f.required:
                v[rng.random(n) < missing_rate] = np.nan
            columns[f.code] = v
        elif f.role is Role.COMMENT:
            pick = rng.integers(0, len(COMMENTS), n)
            wrote = rng.random(n) < COMMENT_RATE
            columns[f.code] = np.array(
                [COMMENTS[k] if w else None for k, w in zip(pick, wrote, strict=True)],
                dtype=object,
            )
        elif lists and f.code in lists:  # codes from a declared list, per unit
            per_unit = lists[f.code]
            out = np.full(n, None, dtype=object)
            for u in np.unique(unit):
                pool = per_unit.get(u) or per_unit.get("*") or []
                at = np.flatnonzero(unit == u)
                if pool:
                    out[at] = np.asarray(pool, dtype=object)[rng.integers(0, len(pool), len(at))]
            columns[f.code] = out
        else:  # text, a date, a list in a file the generator does not know
            columns[f.code] = np.full(n, None, dtype=object)

    # identical rows: copies of other rows, every field and the unit
    copies = np.flatnonzero(rng.random(n) < identical_share)
    originals = np.setdiff1d(np.arange(n), copies)
    if len(copies) and len(originals):
        sources = originals[rng.integers(0, len(originals), len(copies))]
        for values in (*columns.values(), unit):
            values[copies] = values[sources]
    truth = pd.DataFrame({f.code: columns[f.code] for f in fields})
    truth[UNIT_COLUMN] = unit

    export = pd.DataFrame(
        {f.code: _render(truth[f.code], f, inst, label_language, f is the_unit) for f in fields},
        dtype=object,
    )
    return export, truth


def write_export(export: pd.DataFrame, path: Path) -> Path:
    """Write an export as a UTF-8 CSV (empty cells for no answer); returns ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    export.to_csv(path, index=False, encoding="utf-8")
    return path


__all__ = ["synthesize_instrument", "unit_field", "write_export"]
