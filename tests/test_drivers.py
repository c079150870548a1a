"""Tests for pipeline.methods.drivers.key_drivers (Shapley/LMG decomposition of R²)."""

from __future__ import annotations

from itertools import permutations

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

from pipeline.errors import UsageError
from pipeline.methods.drivers import key_drivers


def _survey(rng, n=600, missing=0.03):
    """Correlated dimension scores; 'teaching' is planted as the strongest driver."""
    latent = rng.normal(size=n)
    dims = {
        name: 0.6 * latent + rng.normal(size=n)
        for name in ["teaching", "facilities", "support", "assessment", "library"]
    }
    frame = pd.DataFrame(dims)
    frame["overall"] = (
        0.9 * frame["teaching"]
        + 0.25 * frame["support"]
        + 0.1 * frame["facilities"]
        + rng.normal(size=n)
    )
    mask = rng.random(frame.shape) < missing
    return frame.mask(mask)


PREDICTORS = ["teaching", "facilities", "support", "assessment", "library"]


def test_importances_sum_to_r2_of_listwise_ols():
    wide = _survey(np.random.default_rng(1))
    res = key_drivers(wide, "overall", PREDICTORS)
    complete = wide.dropna()
    ols = sm.OLS(complete["overall"], sm.add_constant(complete[PREDICTORS])).fit()
    assert (res["n"] == len(complete)).all()
    np.testing.assert_allclose(res["r2"], ols.rsquared, rtol=1e-12)
    np.testing.assert_allclose(res["importance"].sum(), ols.rsquared, rtol=1e-12)
    np.testing.assert_allclose(res["share"].sum(), 1.0, rtol=1e-12)
    assert list(res.columns) == [
        "outcome",
        "predictor",
        "n",
        "r2",
        "importance",
        "share",
        "rank",
        "correlation",
        "std_coef",
        "predictor_mean",
    ]


def test_planted_strong_driver_ranks_first():
    res = key_drivers(_survey(np.random.default_rng(2)), "overall", PREDICTORS)
    top = res.sort_values("rank").iloc[0]
    assert top["predictor"] == "teaching" and top["rank"] == 1
    assert top["share"] > 0.5
    assert sorted(res["rank"]) == [1, 2, 3, 4, 5]


def test_two_predictors_match_closed_form():
    rng = np.random.default_rng(3)
    x1 = rng.normal(size=400)
    x2 = 0.5 * x1 + rng.normal(size=400)
    y = x1 + 0.5 * x2 + rng.normal(size=400)
    wide = pd.DataFrame({"y": y, "x1": x1, "x2": x2})
    res = key_drivers(wide, "y", ["x1", "x2"]).set_index("predictor")
    r = wide.corr()
    r1, r2, r12 = r.loc["y", "x1"], r.loc["y", "x2"], r.loc["x1", "x2"]
    full = (r1**2 + r2**2 - 2 * r1 * r2 * r12) / (1 - r12**2)
    lmg1 = 0.5 * r1**2 + 0.5 * (full - r2**2)
    lmg2 = 0.5 * r2**2 + 0.5 * (full - r1**2)
    np.testing.assert_allclose(res.loc["x1", "importance"], lmg1, rtol=1e-12)
    np.testing.assert_allclose(res.loc["x2", "importance"], lmg2, rtol=1e-12)
    np.testing.assert_allclose(res["r2"].iloc[0], full, rtol=1e-12)
    np.testing.assert_allclose(res.loc["x1", "correlation"], r1, rtol=1e-12)


def test_shapley_equals_average_over_entry_orders():
    rng = np.random.default_rng(4)
    wide = _survey(rng, n=300, missing=0)[["overall", *PREDICTORS[:4]]]
    preds = PREDICTORS[:4]

    def r2(cols):
        if not cols:
            return 0.0
        return sm.OLS(wide["overall"], sm.add_constant(wide[list(cols)])).fit().rsquared

    expected = dict.fromkeys(preds, 0.0)
    orders = list(permutations(preds))
    for order in orders:
        for k, p in enumerate(order):
            expected[p] += (r2(order[: k + 1]) - r2(order[:k])) / len(orders)
    res = key_drivers(wide, "overall", preds).set_index("predictor")
    for p in preds:
        np.testing.assert_allclose(res.loc[p, "importance"], expected[p], rtol=1e-10)


def test_input_is_not_mutated_and_errors_are_usage_errors():
    wide = _survey(np.random.default_rng(5), n=50)
    before = wide.copy()
    key_drivers(wide, "overall", PREDICTORS)
    pd.testing.assert_frame_equal(wide, before)
    with pytest.raises(UsageError, match="no column"):
        key_drivers(wide, "overall", ["teaching", "nope"])
    with pytest.raises(UsageError, match="max_predictors"):
        key_drivers(wide, "overall", PREDICTORS, max_predictors=3)
    with pytest.raises(UsageError, match="complete cases"):
        key_drivers(wide.head(5), "overall", PREDICTORS)
