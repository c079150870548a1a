"""Tests for pipeline.methods.weighting against R ``survey`` (tests/data/reference, part c).

R calls behind the expected figures, per wave (all respondents of the wave in the design)::

    d0 <- svydesign(ids = ~1, weights = ~1, data = wave)                 # equal_prob
    dw <- svydesign(ids = ~1, weights = ~w, data = wave)                 # weighted, w = N_h/n_h
    dp <- postStratify(d0, ~faculty + level, headcounts)                 # poststratified
    svymean(~q01, design, na.rm = TRUE); svymean(~I(q01 >= 4), design, na.rm = TRUE)
    svyciprop(~I(q01 >= 4), design, method = "logit" | "beta")           # df = degf(design)
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipeline.errors import DeclarationError
from pipeline.methods.weighting import cell_weights, respondent_weights, weighted_estimates

TOL = 1e-9
CELLS = ["faculty", "level"]


def scaled_diff(python, r) -> float:
    p = np.asarray(python, dtype=float)
    q = np.asarray(r, dtype=float)
    assert p.shape == q.shape
    assert (np.isnan(p) == np.isnan(q)).all(), "missing values differ"
    ok = np.isfinite(q)
    assert (p[~ok] == q[~ok]).all() or np.isnan(q[~ok]).all()
    if not ok.any():
        return 0.0
    return float(np.max(np.abs(p[ok] - q[ok]) / np.maximum(1.0, np.abs(q[ok]))))


@pytest.fixture(scope="module")
def sample(reference_dir) -> pd.DataFrame:
    return pd.read_csv(reference_dir / "satisfaction_sample.csv")


@pytest.fixture(scope="module")
def population(reference_dir) -> pd.DataFrame:
    return pd.read_csv(reference_dir / "population.csv")


def test_cell_weights_reproduce_poststrat_cells(reference_dir, sample, population):
    expected = pd.read_csv(reference_dir / "poststrat_cells.csv")
    got = cell_weights(sample, population, CELLS, by=["wave"])
    m = expected.merge(got, on=["wave", *CELLS], suffixes=("", "_py"), validate="1:1")
    assert len(m) == len(expected) == len(got) == 24
    for col in ("headcount", "respondents", "response_rate", "weight"):
        dev = scaled_diff(m[f"{col}_py"], m[col])
        assert dev <= TOL, f"{col} deviates by {dev:.2e}"


def test_weighted_estimates_reproduce_poststrat_wave(reference_dir, sample, population):
    expected = pd.read_csv(reference_dir / "poststrat_wave.csv")
    expected["estimate"] = expected["estimate"].replace({"top2_share": "pct_positive"})
    got = weighted_estimates(sample, ["q01"], CELLS, population, by=["wave"])
    assert len(got) == len(expected) == 36
    m = expected.merge(
        got, on=["wave", "item", "design", "estimate", "method"], suffixes=("", "_py")
    )
    assert len(m) == 36
    assert (m["n_respondents"] == m["n_respondents_py"]).all()
    assert (m["n"] == m["n_py"]).all()
    assert (m["N"] == m["population"]).all()
    assert (m["df"] == m["df_py"]).all()
    scale = np.where(m["estimate"] == "pct_positive", 100.0, 1.0)
    for col in ("value", "se", "ci_low", "ci_high"):
        for (design, method), g in m.groupby(["design", "method"]):
            s = scale[g.index]
            dev = scaled_diff(g[f"{col}_py"] / s, g[col])
            assert dev <= TOL, f"{design} {method} {col} deviates by {dev:.2e}"


def test_respondents_who_skip_the_item_stay_in_the_design(sample, population):
    wave = sample[sample["wave"] == "2023-2024"]
    heads = population[population["wave"] == "2023-2024"].drop(columns="wave")
    got = weighted_estimates(wave, ["q01"], CELLS, heads, designs="equal_prob")
    row = got[(got["estimate"] == "mean") & (got["method"] == "svymean")].iloc[0]
    y = wave["q01"].dropna().to_numpy()
    n_resp, n = len(wave), len(y)
    assert (row["n_respondents"], row["n"]) == (n_resp, n)
    assert n_resp > n
    # Domain estimation: scores of skippers are 0 and n/(n-1) uses all respondents.
    z = (y - y.mean()) / n
    se = np.sqrt(n_resp / (n_resp - 1) * np.sum(z**2))
    assert row["se"] == pytest.approx(se, rel=1e-12)
    assert row["value"] == pytest.approx(y.mean(), rel=1e-14)


def test_poststratified_mean_equals_headcount_weighted_cell_means():
    rng = np.random.default_rng(4)
    frame = pd.DataFrame(
        {
            "faculty": rng.choice(["A", "B", "C"], 300),
            "level": rng.choice(["ba", "ma"], 300),
            "q": rng.integers(1, 6, 300).astype(float),
        }
    )
    heads = frame[CELLS].drop_duplicates().assign(headcount=lambda d: 100 + 37 * np.arange(len(d)))
    got = weighted_estimates(frame, ["q"], CELLS, heads, designs=["poststratified"])
    cell_means = frame.groupby(CELLS)["q"].mean().rename("m").reset_index().merge(heads)
    expected = (cell_means["m"] * cell_means["headcount"]).sum() / cell_means["headcount"].sum()
    mean_row = got[got["estimate"] == "mean"].iloc[0]
    assert mean_row["value"] == pytest.approx(expected, rel=1e-12)
    assert mean_row["population"] == heads["headcount"].sum()


def test_poststratification_reduces_variance_against_weighting(sample, population):
    got = weighted_estimates(sample, ["q01", "q03"], CELLS, population, by=["wave"])
    svy = got[got["method"] == "svymean"].pivot_table(
        index=["wave", "item", "estimate"], columns="design", values="se"
    )
    assert (svy["poststratified"] < svy["weighted"]).all()


def test_respondent_weights_align_with_index(sample, population):
    shuffled = sample.sample(frac=1.0, random_state=1)
    w = respondent_weights(shuffled, population, CELLS, by=["wave"])
    assert w.index.equals(shuffled.index)
    totals = w.groupby(shuffled["wave"]).sum()
    expected = population.groupby("wave")["headcount"].sum().astype(float).to_dict()
    assert totals.to_dict() == pytest.approx(expected, rel=1e-12)


def test_headcounts_without_by_columns_apply_to_every_group():
    frame = pd.DataFrame({"wave": ["w1", "w1", "w2", "w2"], "unit": ["a", "b", "a", "b"]})
    heads = pd.DataFrame({"unit": ["a", "b"], "headcount": [10, 20]})
    got = cell_weights(frame, heads, ["unit"], by=["wave"])
    assert got["weight"].tolist() == [10, 20, 10, 20]


def test_empty_cell_cannot_be_poststratified():
    frame = pd.DataFrame({"unit": ["a", "a"], "q": [3.0, 4.0]})
    heads = pd.DataFrame({"unit": ["a", "b"], "headcount": [10, 20]})
    table = cell_weights(frame, heads, ["unit"])
    assert table.loc[table["unit"] == "b", "respondents"].item() == 0
    assert np.isnan(table.loc[table["unit"] == "b", "weight"].item())
    with pytest.raises(ValueError, match="collapse"):
        weighted_estimates(frame, ["q"], ["unit"], heads, designs="poststratified")


def test_headcount_problems_are_declaration_errors():
    frame = pd.DataFrame({"unit": ["a", "a", "c"], "q": [3.0, 4.0, 5.0]})
    with pytest.raises(DeclarationError, match="no headcount"):
        cell_weights(frame, pd.DataFrame({"unit": ["a"], "headcount": [10]}), ["unit"])
    with pytest.raises(DeclarationError, match="more respondents"):
        cell_weights(frame, pd.DataFrame({"unit": ["a", "c"], "headcount": [1, 5]}), ["unit"])


def test_equal_prob_needs_no_headcounts_and_weighted_does():
    frame = pd.DataFrame({"unit": ["a"] * 4, "q": [1.0, 4.0, 5.0, np.nan]})
    got = weighted_estimates(frame, ["q"], ["unit"], designs="equal_prob")
    assert np.isnan(got["population"]).all()
    assert got.loc[got["estimate"] == "pct_positive", "value"].iloc[0] == pytest.approx(200 / 3)
    with pytest.raises(ValueError, match="headcounts"):
        weighted_estimates(frame, ["q"], ["unit"], designs="weighted")


def test_inputs_are_not_mutated(sample, population):
    s, p = sample.copy(), population.copy()
    weighted_estimates(sample, ["q01"], CELLS, population, by=["wave"])
    pd.testing.assert_frame_equal(sample, s)
    pd.testing.assert_frame_equal(population, p)


def test_planted_nonresponse_bias_is_removed_by_poststratification():
    """Satisfied students respond more; post-stratified CIs cover the truth, unweighted miss it."""
    rng = np.random.default_rng(12)
    reps = 300
    cells = pd.DataFrame(
        {
            "cell": ["happy", "unhappy"],
            "headcount": [400, 1600],
            "p_pos": [0.85, 0.40],
            "rate": [0.6, 0.15],
        }
    )
    truth = float((cells["p_pos"] * cells["headcount"]).sum() / cells["headcount"].sum())
    frames = []
    for rep in range(reps):
        for row in cells.itertuples():
            k = rng.binomial(row.headcount, row.rate)
            y = np.where(rng.random(k) < row.p_pos, 5.0, 2.0)
            frames.append(pd.DataFrame({"rep": rep, "cell": row.cell, "q": y}))
    frame = pd.concat(frames, ignore_index=True)
    got = weighted_estimates(
        frame, ["q"], ["cell"], cells[["cell", "headcount"]], by=["rep"], confidence=0.95
    )
    rows = got[(got["estimate"] == "pct_positive") & (got["method"] == "svyciprop_logit")]
    cover = {
        design: float(((g["ci_low"] <= 100 * truth) & (100 * truth <= g["ci_high"])).mean())
        for design, g in rows.groupby("design")
    }
    assert cover["poststratified"] >= 0.93, f"coverage {cover}, truth {truth:.3f}"
    assert cover["equal_prob"] < 0.05, f"coverage {cover}, truth {truth:.3f}"
