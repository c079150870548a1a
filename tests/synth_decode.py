"""Test helper: decode the files `sapat synth` writes back into codes.

It knows every representation an answer can take in the synthetic dialects
(labels in ky/ru/en, choice names, LimeSurvey ``A<k>`` codes), so tests can check
statistics of the generated data without depending on the ingestion pipeline.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.instruments import Instrument, Role
from pipeline.synth.writers import data_fields

INVALID = -1


def read_raw(path: Path, meta: dict) -> pd.DataFrame:
    if path.suffix == ".xlsx":
        return pd.read_excel(path, dtype=str, engine="calamine")
    return pd.read_csv(
        path,
        dtype=str,
        encoding=meta["encoding"],
        sep=meta["delimiter"],
        keep_default_na=False,
        na_values=[""],
    )


def header_map(inst: Instrument) -> dict[str, str]:
    out = {}
    for f in data_fields(inst):
        names = {f.code, *f.aliases, *f.labels.values()}
        if f.group:
            names.add(f"{f.group}/{f.code}")
            for lang, glabel in f.group_labels.items():
                names.add(f"{glabel} [{f.labels[lang]}]")
        for n in names:
            out[n] = f.code
    return out


def value_map(inst: Instrument, f) -> dict[str, int]:
    scale = inst.scale_of(f)
    out: dict[str, int] = {}
    for pos, c in enumerate(scale.choices, start=1):
        for text in (c.name, f"A{pos}", *c.labels.values()):
            out[text] = c.code
    return out


def decode(
    path: Path, meta: dict, inst: Instrument, unit_names: dict[str, str]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(codes per field, raw strings); codes: NaN blank, INVALID outside the scale."""
    raw = read_raw(path, meta)
    hmap = header_map(inst)
    out = pd.DataFrame(index=raw.index)
    for col in raw.columns:
        code = hmap.get(col)
        if code is None:
            continue
        f = inst.field(code)
        values = raw[col]
        if f.role is Role.COMMENT or f.context in ("teacher", "discipline"):
            out[code] = values
        elif f.context in ("programme", "unit") and inst.scale_of(f) is None:
            codes = values.str.extract(r"\(([^()]+)\)\s*$")[0]  # "Name (CODE)"
            out[code] = codes.fillna(values).map(lambda v: unit_names.get(v, v))
        elif inst.scale_of(f) is None:
            out[code] = pd.to_numeric(values, errors="coerce")
        else:
            vm = value_map(inst, f)
            out[code] = values.map(lambda v, vm=vm: np.nan if pd.isna(v) else vm.get(v, INVALID))
    return out, raw
