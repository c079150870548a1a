"""Tests for pipeline.methods.reliability.

R behind tests/data/reference/cronbach_alpha.csv (part d): for each wave and all waves pooled,
``x <- na.omit(d[, q01..q08]); k/(k-1) * (1 - sum(apply(x, 2, var)) / var(rowSums(x)))``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipeline.methods.reliability import cronbach_alpha, dimension_scores, item_total_statistics

ITEMS = [f"q{j:02d}" for j in range(1, 9)]
TOL = 1e-9


@pytest.fixture(scope="module")
def sample(reference_dir) -> pd.DataFrame:
    return pd.read_csv(reference_dir / "satisfaction_sample.csv")


def _alpha_direct(x: np.ndarray) -> float:
    x = x[~np.isnan(x).any(axis=1)]
    k = x.shape[1]
    return k / (k - 1) * (1 - x.var(axis=0, ddof=1).sum() / x.sum(axis=1).var(ddof=1))


def test_cronbach_alpha_reproduces_reference(reference_dir, sample):
    expected = pd.read_csv(reference_dir / "cronbach_alpha.csv").set_index("wave")
    per_wave = cronbach_alpha(sample, {"satisfaction": ITEMS}, by=["wave"]).set_index("wave")
    pooled = cronbach_alpha(sample, {"satisfaction": ITEMS})
    got = pd.concat([per_wave, pooled.assign(wave="ALL").set_index("wave")])
    got = got.loc[expected.index]
    assert (got["n"] == expected["n"]).all()
    assert (got["k"] == expected["k"]).all()
    dev = float(np.max(np.abs(got["alpha"] - expected["value"]) / np.maximum(1, expected["value"])))
    assert dev <= TOL, f"alpha deviates by {dev:.2e}"
    assert not got["low_alpha"].any()


def test_alpha_if_deleted_and_item_total_match_direct_computation(sample):
    stats_ = item_total_statistics(sample, {"s": ITEMS})
    full = sample[ITEMS].dropna().to_numpy(dtype=float)
    assert (stats_["n"] == len(full)).all()
    for j, item in enumerate(ITEMS):
        rest = np.delete(full, j, axis=1)
        row = stats_[stats_["item"] == item].iloc[0]
        assert row["alpha_if_deleted"] == pytest.approx(_alpha_direct(rest), rel=1e-12)
        r = np.corrcoef(full[:, j], rest.sum(axis=1))[0, 1]
        assert row["item_total_corr"] == pytest.approx(r, rel=1e-12)


def test_reverse_coded_item_is_flipped_before_alpha(sample):
    flipped = sample.copy()
    flipped["q04"] = 6 - flipped["q04"]
    original = cronbach_alpha(sample, {"s": ITEMS})["alpha"].iloc[0]
    declared = cronbach_alpha(flipped, {"s": ITEMS}, reverse={"q04"})["alpha"].iloc[0]
    undeclared = cronbach_alpha(flipped, {"s": ITEMS})["alpha"].iloc[0]
    assert declared == pytest.approx(original, rel=1e-12)
    assert undeclared < original - 0.05
    items = item_total_statistics(flipped, {"s": ITEMS}, reverse={"q04"})
    assert items.loc[items["item"] == "q04", "reversed"].item()
    assert items.loc[items["item"] == "q04", "item_total_corr"].item() > 0.5


def test_listwise_deletion_is_per_scale(sample):
    got = cronbach_alpha(sample, {"first": ITEMS[:4], "all": ITEMS}).set_index("scale")
    assert got.loc["first", "n"] == len(sample[ITEMS[:4]].dropna())
    assert got.loc["all", "n"] == len(sample[ITEMS].dropna())
    assert got.loc["first", "n"] > got.loc["all", "n"]


def test_planted_one_factor_alpha_matches_theory_and_noise_is_flagged():
    rng = np.random.default_rng(21)
    n, k, rho = 4000, 6, 0.4
    factor = rng.normal(size=(n, 1))
    x = np.sqrt(rho) * factor + np.sqrt(1 - rho) * rng.normal(size=(n, k))
    answers = np.clip(np.round(3 + 1.1 * x), 1, 5)
    noise = rng.integers(1, 6, size=(n, k)).astype(float)
    frame = pd.DataFrame(
        np.hstack([answers, noise]),
        columns=[f"a{j}" for j in range(k)] + [f"b{j}" for j in range(k)],
    )
    got = cronbach_alpha(
        frame, {"factor": [f"a{j}" for j in range(k)], "noise": [f"b{j}" for j in range(k)]}
    ).set_index("scale")
    theory = k * rho / (1 + (k - 1) * rho)  # 0.8 for continuous items; coarsening lowers it
    assert theory - 0.06 < got.loc["factor", "alpha"] <= theory + 0.01, got.to_dict()
    assert not got.loc["factor", "low_alpha"]
    assert abs(got.loc["noise", "alpha"]) < 0.1 and got.loc["noise", "low_alpha"]


def test_alpha_is_missing_when_too_few_complete_rows():
    frame = pd.DataFrame({"a": [1.0, np.nan, 3.0], "b": [2.0, 4.0, np.nan]})
    got = cronbach_alpha(frame, {"s": ["a", "b"]})
    assert got["n"].item() == 1 and np.isnan(got["alpha"].item())
    assert not got["low_alpha"].item()


def test_scale_definitions_are_validated(sample):
    with pytest.raises(ValueError, match="at least two items"):
        cronbach_alpha(sample, {"s": ["q01"]})
    with pytest.raises(ValueError, match="not in the frame"):
        cronbach_alpha(sample, {"s": ["q01", "q99"]})
    bad = sample.assign(q01=sample["q01"].replace({5: 9}))
    with pytest.raises(ValueError, match="1..5"):
        cronbach_alpha(bad, {"s": ["q01", "q02"]})


def test_errors_name_the_scale_at_fault_and_the_frame_is_left_as_given(sample):
    """All scales are converted in one go; an error still names the scale it is in, and
    flipping reverse-coded items never writes into the caller's frame."""
    bad = sample.assign(q03=sample["q03"].replace({5: 9}))
    scales = {"fine": ["q01", "q02"], "broken": ["q02", "q03"]}
    with pytest.raises(ValueError, match="scale 'broken'"):
        cronbach_alpha(bad, scales)
    with pytest.raises(ValueError, match="scale 'broken'"):
        dimension_scores(bad, scales)
    with pytest.raises(ValueError, match="scale 'broken'.*not in the frame"):
        cronbach_alpha(sample, {"fine": ["q01", "q02"], "broken": ["q01", "q99"]})
    before = sample.copy()
    cronbach_alpha(sample, scales, reverse={"q02"})
    dimension_scores(sample, scales, reverse={"q02"})
    pd.testing.assert_frame_equal(sample, before)


def test_dimension_scores_need_half_the_items():
    wide = pd.DataFrame(
        {
            "a": [5.0, 5.0, np.nan, np.nan],
            "b": [3.0, np.nan, np.nan, 4.0],
            "c": [1.0, np.nan, np.nan, np.nan],
            "d": [2.0, 1.0, 2.0, 2.0],
        },
        index=["r1", "r2", "r3", "r4"],
    )
    got = dimension_scores(wide, {"abc": ["a", "b", "c"], "cd": ["c", "d"]}, reverse={"c"})
    assert list(got.columns) == ["abc", "cd"]
    assert got.index.equals(wide.index)
    # r1: a=5, b=3, c flipped 1 -> 5: mean 13/3; r2: 1 of 3 answered < half -> NaN.
    assert got.loc["r1", "abc"] == pytest.approx(13 / 3)
    assert np.isnan(got.loc["r2", "abc"]) and np.isnan(got.loc["r3", "abc"])
    # cd: one of two answered is exactly half -> scored.
    assert got.loc["r2", "cd"] == 1.0 and got.loc["r4", "cd"] == 2.0
    assert got.loc["r1", "cd"] == pytest.approx((5 + 2) / 2)


def test_dimension_scores_do_not_mutate_and_validate(sample):
    before = sample.copy()
    dimension_scores(sample, {"x": ITEMS}, reverse={"q02"})
    pd.testing.assert_frame_equal(sample, before)
    with pytest.raises(ValueError, match="min_share"):
        dimension_scores(sample, {"x": ITEMS}, min_share=0)
