"""The vectorised shortcuts of ingestion give what the plain per-row definitions give:
factorizing by object address, pseudonyms with the HMAC state reused, the timestamp
patterns in Arrow, straight-lining from a min and a max."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from pipeline.ingest.pseudonym import keyed_labels, pseudonym, pseudonyms
from pipeline.ingest.validate import _DOTTED, _SLASHED, _factorize, _matches, row_flags
from pipeline.instruments import example_catalog
from pipeline.readers import SOURCE_ROW

TEXTS = ["5", "Не применимо", "", " 5", "5 ", "ß", "ΣΑΣ", "a\x1fb", "\u3000x", "١٥"]


@pytest.mark.parametrize("seed", range(20))
def test_factorize_by_address_equals_pandas(seed):
    rng = np.random.default_rng(seed)
    pool = [*TEXTS, np.nan, None]
    # equal texts sometimes as one object (as pandas' parser gives them), sometimes not
    values = [
        "".join(list(v)) if isinstance(v, str) and rng.random() < 0.5 else v
        for v in (pool[i] for i in rng.integers(0, len(pool), int(rng.integers(0, 60))))
    ]
    s = pd.Series(values, dtype=object)
    for part in (s, s.iloc[::2], s.iloc[::-1]):
        codes, uniq = _factorize(part)
        want_codes, want_uniq = pd.factorize(part.to_numpy(dtype=object))
        assert codes.tolist() == want_codes.tolist()
        assert list(uniq) == list(want_uniq)


@pytest.mark.parametrize("key", [bytes(range(32)), b"k" * 16, bytes(range(100))])
def test_pseudonyms_equal_pseudonym(key):
    values = ["User@Mail.ru ", "  x  ", "", "ΣΑΣ", "ß", "a\x1fb", "\u3000id-7"]
    assert pseudonyms(key, ["student_experience", "2025-2026"], values) == [
        pseudonym(key, "student_experience", "2025-2026", v) for v in values
    ]
    assert pseudonyms(key, [], values) == [pseudonym(key, v) for v in values]
    labels = keyed_labels(key, ["x"], values)
    assert [lab.hex() for lab in labels] == [pseudonym(key, "x", v) for v in values]


def test_timestamp_patterns_in_arrow_equal_python_re():
    texts = [
        "15.10.2024 10:23",
        "1.3.2026",
        " 15.10.2024",
        "\x1c15.10.2024",
        "\x0b1/2/2024",
        "\u300015.10.2024",
        "١٥.١٠.٢٠٢٤",
        "2024-03-01",
        "10/15/2024 10:23",
        "15-10-2024",
        "\n15.10.2024",
        "115.10.2024",
        "15.10.24",
        "",
    ]
    for pattern in (_DOTTED, _SLASHED):
        got = _matches(texts, pattern).tolist()
        assert got == [re.match(pattern.pattern, t) is not None for t in texts], pattern


def test_row_flags_equal_the_per_row_definition():
    inst = example_catalog().get("student_experience")
    items = [f.code for f in inst.items]
    rng = np.random.default_rng(3)
    n = 400
    data = {SOURCE_ROW: np.arange(2, n + 2)}
    for i, code in enumerate(items):
        v = rng.choice([-2, 1, 2, 3, 4, 5], n).astype(float)  # -2: "not applicable"
        v[rng.random(n) < 0.3] = np.nan
        v[: n // 4] = 4 if i % 7 else np.nan  # straight-liners, some with gaps
        data[code] = pd.array(v, dtype="Int8")
    typed = pd.DataFrame(data)
    got = row_flags(typed, inst)
    vals = typed[items].where(typed[items] >= 0)
    answered = vals.notna().sum(axis=1)
    same = (vals.nunique(axis=1) == 1) & (answered >= 5)
    few = answered < (len(items) + 1) // 2
    want = [(int(r), "straight_liner") for r in typed.loc[same, SOURCE_ROW]]
    want += [(int(r), "too_few_answers") for r in typed.loc[few, SOURCE_ROW]]
    assert list(zip(got[SOURCE_ROW].tolist(), got["flag"], strict=True)) == want
    assert len(want) > 100


@pytest.mark.parametrize("seed", range(10))
def test_factorize_of_a_categorical_gives_each_value_back(seed):
    """The Arrow reader's Categorical columns: codes index the texts, -1 is missing
    (unused categories allowed)."""
    rng = np.random.default_rng(seed)
    pool = [*TEXTS, None]
    values = [pool[i] for i in rng.integers(0, len(pool), int(rng.integers(0, 60)))]
    cats = list(dict.fromkeys(v for v in [*TEXTS[::-1], *values] if v is not None))
    s = pd.Series(pd.Categorical(values, categories=pd.Index(cats, dtype=object)))
    codes, uniq = _factorize(s)
    got = [None if c < 0 else uniq[c] for c in codes]
    assert got == values


def _random_facts(inst, n: int, rng) -> pa.Table:
    """Fact rows as the ingest hands them to the store, with missing and odd answers."""
    from pipeline.store import scale_codes

    columns = {
        "programme": pa.array(rng.choice(["P1", "P2", "P3", None], n).tolist(), pa.string()),
        "unit": pa.array(rng.choice(["F1", "F2"], n).tolist(), pa.string()),
    }
    if inst.has_context("study_level"):
        columns["study_level"] = pa.array(rng.choice([1, 2, None], n).tolist(), pa.int8())
    for name in ("teacher", "discipline"):
        if inst.has_context(name):
            columns[name] = pa.array(rng.choice(["T1", "T2", "T3", None], n).tolist())
    for item, codes in scale_codes(inst).items():
        pool = [*codes, None, None, -1, 99]
        columns[item] = pa.array([pool[i] for i in rng.integers(0, len(pool), n)], pa.int8())
    return pa.table(columns)


@pytest.mark.parametrize("instrument", ["student_experience", "teaching_evaluation", "graduate"])
@pytest.mark.parametrize("n", [0, 1, 500])
def test_answer_counts_in_numpy_equal_the_sql_counts(tmp_path, instrument, n):
    from pipeline.store import Store, count_answers

    inst = example_catalog().get(instrument)
    facts = _random_facts(inst, n, np.random.default_rng(n))
    same = {"load_id": 7, "instrument": inst.id, "version": inst.version, "wave": "2025-2026"}
    with Store(tmp_path / "s.duckdb") as store:
        want = store.wide_counts(inst, facts, same)
    got = count_answers(inst, facts, same)
    assert got.column_names == want.column_names
    order = [
        (c, "ascending") for c in ("programme", "unit", "study_level", "teacher", "discipline")
    ]
    got = got.sort_by(order).to_pylist()
    # DuckDB's count_if gives NULL, not 0, over a group whose answers are all missing;
    # the counts are summed later, where the two mean the same
    counted = [c for c in want.column_names if "|" in c or c == "_other"]
    want = [
        {k: (v or 0) if k in counted else v for k, v in r.items()}
        for r in want.sort_by(order).to_pylist()
    ]
    assert got == want
    if n:
        assert sum(r["_other"] for r in got) > 0  # the odd answers were counted apart


def test_straight_lining_on_items_of_different_scales_is_the_same_relative_position(tmp_path):
    from workbooks import rating_choices, write_workbook

    from pipeline.instruments import read_workbook

    survey = [
        {
            "type": f"select_one {s}",
            "name": f"{s}_{k}",
            "label": f"{s} {k}",
            "sapat_role": "item",
            "dimension": s,
        }
        for s in ("a4", "b7")
        for k in range(3)
    ]
    inst = read_workbook(
        write_workbook(
            tmp_path / "mixed.xlsx",
            form_id="mixed",
            version="1",
            survey=survey,
            choices=[*rating_choices("a4", 1, 4), *rating_choices("b7", 1, 7)],
            scales=[{"list_name": "a4", "kind": "ordinal"}, {"list_name": "b7", "kind": "ordinal"}],
            dimensions=[{"code": "a4", "label": "A"}, {"code": "b7", "label": "B"}],
        )
    )
    rows = {  # a4 answers, b7 answers -> straight-liner?
        2: ([4, 4, 4], [7, 7, 7], True),  # the top of every scale
        3: ([1, 1, 1], [1, 1, 1], True),  # the bottom
        4: ([2, 2, 2], [3, 3, 3], True),  # a third of the way up on both
        5: ([4, 4, 4], [4, 4, 4], False),  # the same code, not the same place
        6: ([2, 2, 2], [2, 2, 2], False),
    }
    data = {SOURCE_ROW: list(rows)}
    for k in range(3):
        data[f"a4_{k}"] = pd.array([r[0][k] for r in rows.values()], dtype="Int8")
        data[f"b7_{k}"] = pd.array([r[1][k] for r in rows.values()], dtype="Int8")
    got = row_flags(pd.DataFrame(data), inst)
    flagged = set(got.loc[got["flag"] == "straight_liner", SOURCE_ROW])
    assert flagged == {r for r, (_, _, s) in rows.items() if s}
