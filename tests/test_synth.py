"""`sapat synth`: realistic exports, planted effects found, nulls not, faults listed."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import openpyxl
import pandas as pd
import pytest
from statsmodels.stats.proportion import proportions_ztest
from synth_decode import INVALID, decode, read_raw

from pipeline.instruments import example_catalog
from pipeline.registry import example_registry
from pipeline.synth import synthesize

#: whole synthetic universities or six-figure row counts: seconds each
pytestmark = pytest.mark.slow

CAT = example_catalog()
REG = example_registry()
# programmes last: a programme may share its name with its department
UNIT_NAMES = {
    name: r.code
    for r in REG.units.sort_values("kind", key=lambda k: k == "programme").itertuples()
    for name in (r.code, r.name_ky, r.name_ru, r.name_en)
}


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth")
    truth = synthesize(out, REG, CAT, seed=2026)
    return out, truth


def _decoded(out, truth, instrument, wave):
    frames = []
    for meta in truth["files"]:
        if meta["instrument"] == instrument and meta["wave"] == wave:
            inst = CAT.get(instrument, meta["version"])
            frames.append(decode(out / meta["file"], meta, inst, UNIT_NAMES)[0])
    return pd.concat(frames, ignore_index=True)


def test_truth_file_written_and_lists_everything(generated):
    out, truth = generated
    on_disk = json.loads((out / "truth.json").read_text("utf-8"))
    assert on_disk["seed"] == 2026
    assert {f["dialect"] for f in truth["files"]} == {
        "google_forms",
        "ms_forms",
        "kobo",
        "limesurvey",
        "plain_cp1251",
    }
    assert {f["instrument"] for f in truth["files"]} == set(CAT.versions)
    assert len(truth["planted_changes"]) == 2
    assert truth["unit_differences"] and truth["teacher_effects"]
    kinds = {f["kind"] for f in truth["faults"]}
    assert kinds == {
        "duplicate_submission",
        "out_of_range",
        "speeder",
        "straight_liner",
        "unknown_programme",
        "email_column",
    }


def test_every_file_parses_back_in_its_stated_encoding(generated):
    out, truth = generated
    for meta in truth["files"]:
        path = out / meta["file"]
        if path.suffix == ".csv":
            frame = pd.read_csv(path, encoding=meta["encoding"], sep=meta["delimiter"], dtype=str)
            with pytest.raises(UnicodeDecodeError):
                if meta["encoding"] == "cp1251":
                    path.read_bytes().decode("utf-8")
                else:
                    raise UnicodeDecodeError("utf-8", b"", 0, 1, "utf-8 file: nothing to check")
            rows = len(frame)
        else:
            wb = openpyxl.load_workbook(path, read_only=True)
            rows = wb.worksheets[0].max_row - 1
        assert rows == meta["rows"], meta["file"]
        assert rows > 0


def test_cp1251_files_hold_cyrillic_text(generated):
    out, truth = generated
    metas = [m for m in truth["files"] if m["encoding"] == "cp1251"]
    assert metas
    for meta in metas:
        text = (out / meta["file"]).read_bytes().decode("cp1251")
        assert any("а" <= ch <= "я" for ch in text), meta["file"]


def test_response_rates_vary_by_unit_between_15_and_70_percent(generated):
    _, truth = generated
    rates = truth["response_rates"]["student_experience"]
    assert min(rates.values()) >= 0.15 and max(rates.values()) <= 0.70
    assert max(rates.values()) - min(rates.values()) > 0.2


def _pct_positive_counts(frame, item, faculty_of, unit):
    sub = frame[frame["programme"].map(faculty_of) == unit][item]
    valid = sub[sub.isin([1, 2, 3, 4, 5])]
    return int((valid >= 4).sum()), int(len(valid))


def test_planted_change_is_detectable_and_nulls_are_not(generated):
    out, truth = generated
    faculty_of = {c: REG.faculty_of(c) for c in REG.programmes["code"]}
    for ch in truth["planted_changes"]:
        before = _decoded(out, truth, ch["instrument"], ch["wave_from"])
        after = _decoded(out, truth, ch["instrument"], ch["wave_to"])
        x0, n0 = _pct_positive_counts(before, ch["item"], faculty_of, ch["unit"])
        x1, n1 = _pct_positive_counts(after, ch["item"], faculty_of, ch["unit"])
        assert n0 >= 400 and n1 >= 400, (n0, n1)
        _, p = proportions_ztest([x1, x0], [n1, n0])
        delta = 100 * (x1 / n1 - x0 / n0)
        assert p < 0.01, f"planted change {ch} not detected: p={p:.3g}, delta={delta:.1f}"
        assert abs(delta - ch["delta_points"]) < 7, (delta, ch)
    # nulls: every other faculty x comparable item between the same two waves
    ch = truth["planted_changes"][0]
    before = _decoded(out, truth, ch["instrument"], ch["wave_from"])
    after = _decoded(out, truth, ch["instrument"], ch["wave_to"])
    v0 = CAT.for_wave(ch["instrument"], ch["wave_from"]).version
    v1 = CAT.for_wave(ch["instrument"], ch["wave_to"]).version
    planted = {(c["unit"], c["item"]) for c in truth["planted_changes"]}
    items = [
        f.code
        for f in CAT.get(ch["instrument"], v1).items
        if CAT.comparable(ch["instrument"], f.code, v0, v1)
    ]
    pvals, deltas = [], []
    for unit in sorted(set(faculty_of.values())):
        for item in items:
            if (unit, item) in planted:
                continue
            x0, n0 = _pct_positive_counts(before, item, faculty_of, unit)
            x1, n1 = _pct_positive_counts(after, item, faculty_of, unit)
            if min(n0, n1) < 20 or x0 + x1 in (0, n0 + n1):
                continue
            pvals.append(proportions_ztest([x1, x0], [n1, n0])[1])
            deltas.append(x1 / n1 - x0 / n0)
    m = len(pvals)
    hits = int(np.sum(np.array(pvals) < 0.01))
    bound = 0.01 * m + 3 * np.sqrt(0.01 * 0.99 * m) + 1
    assert m > 100
    assert hits <= bound, f"{hits} of {m} null comparisons had p < 0.01 (bound {bound:.1f})"
    assert abs(np.mean(deltas)) < 0.01, f"mean null change {np.mean(deltas):.4f}"


def _alpha(frame: pd.DataFrame) -> tuple[float, int]:
    x = frame.where(frame.isin([1, 2, 3, 4, 5])).dropna().to_numpy(float)
    k = x.shape[1]
    return k / (k - 1) * (1 - x.var(axis=0, ddof=1).sum() / x.sum(axis=1).var(ddof=1)), len(x)


def test_cronbach_alpha_in_realistic_range(generated):
    out, truth = generated
    for instrument in CAT.versions:
        for wave in truth["waves"]:
            frame = _decoded(out, truth, instrument, wave)
            inst = CAT.for_wave(instrument, wave)
            items = [f.code for f in inst.items]
            scored = frame[items].where(frame[items].isin([1, 2, 3, 4, 5]))
            for f in inst.items:  # reverse-coded items are flipped before alpha
                if f.reverse:
                    scored[f.code] = 6 - scored[f.code]
            alpha, n = _alpha(scored)
            assert n >= 30, (instrument, wave, n)
            assert 0.75 <= alpha <= 0.92, f"{instrument} {wave}: alpha {alpha:.3f} (n={n})"


def test_items_correlate_more_within_than_across_dimensions(generated):
    out, truth = generated
    wave = truth["waves"][0]
    frame = _decoded(out, truth, "student_experience", wave)
    inst = CAT.for_wave("student_experience", wave)
    dims = {f.code: f.dimension for f in inst.items}
    corr = frame[list(dims)].where(frame[list(dims)].isin([1, 2, 3, 4, 5])).astype(float).corr()
    within, across = [], []
    for i, a in enumerate(dims):
        for b in list(dims)[i + 1 :]:
            (within if dims[a] == dims[b] else across).append(corr.loc[a, b])
    assert np.nanmean(within) > np.nanmean(across) + 0.1


def test_planted_faults_are_where_the_truth_says(generated):
    out, truth = generated
    metas = {m["file"]: m for m in truth["files"]}
    checked = set()
    for fault in truth["faults"]:
        meta = metas[fault["file"]]
        inst = CAT.get(meta["instrument"], meta["version"])
        frame, raw = decode(out / meta["file"], meta, inst, UNIT_NAMES)
        items = [f.code for f in inst.items]
        kind = fault["kind"]
        if kind == "email_column":
            assert raw[fault["column"]].str.contains("@").all()
            continue
        i = fault["row"] - 2  # spreadsheet row -> data index (one header row)
        if kind == "straight_liner":
            vals = frame.loc[i, items].dropna().unique()
            assert len(vals) == 1, vals
        elif kind == "out_of_range":
            assert frame.loc[i, fault["item"]] == INVALID
            assert raw.loc[i, fault["column"]] in ("7", "A7")
        elif kind == "unknown_programme":
            assert raw.loc[i, fault["column"]] not in UNIT_NAMES
        elif kind == "duplicate_submission":
            pd.testing.assert_series_equal(
                frame.loc[i, items], frame.loc[i - 1, items], check_names=False
            )
        elif kind == "speeder":
            cols = {
                "ms_forms": ("Start time", "Completion time"),
                "kobo": ("start", "end"),
                "limesurvey": ("startdate", "datestamp"),
            }[meta["dialect"]]
            t = pd.to_datetime(raw.loc[i, list(cols)], format="mixed", utc=True)
            assert (t.iloc[1] - t.iloc[0]).total_seconds() < 40
        checked.add(kind)
    assert checked == {
        "straight_liner",
        "out_of_range",
        "unknown_programme",
        "duplicate_submission",
        "speeder",
    }


def _digests(folder):
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_deterministic_for_a_seed(tmp_path):
    kwargs = dict(waves=["2024-2025", "2025-2026"], scale=0.1)
    synthesize(tmp_path / "a", REG, CAT, seed=7, **kwargs)
    synthesize(tmp_path / "b", REG, CAT, seed=7, **kwargs)
    synthesize(tmp_path / "c", REG, CAT, seed=8, **kwargs)
    a, b, c = (_digests(tmp_path / k) for k in "abc")
    assert a == b
    assert a.keys() == c.keys() and a != c


def test_forced_format_and_single_instrument(tmp_path):
    truth = synthesize(
        tmp_path, REG, CAT, waves=["2024-2025"], scale=0.2, instruments=["staff"], dialect="kobo"
    )
    assert {m["dialect"] for m in truth["files"]} == {"kobo"}
    assert {m["instrument"] for m in truth["files"]} == {"staff"}
    meta = truth["files"][0]
    raw = read_raw(tmp_path / meta["file"], meta)
    assert "_uuid" in raw.columns and len(raw) == meta["rows"]
