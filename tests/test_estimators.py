"""Tests for pipeline.methods.estimators: R reference figures, statsmodels/scipy oracles, planted effects.

R calls behind the expected figures (tests/data/reference/reference.R): per wave x faculty x
item, ``length``, ``mean``, ``sd`` and ``mean(y >= 4)``; intervals from
``prop.test(x, n, correct=FALSE)``, ``binom.test(x, n)``, the Agresti-Coull closed form,
``svyciprop(~I(y >= 4), svydesign(ids=~1, weights=~1, data=cell), method="logit"|"beta")``
and Wilson with ``n_eff = n (N - 1) / (N - n)``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from statsmodels.stats.proportion import proportion_confint

from pipeline.errors import DeclarationError
from pipeline.methods.estimators import (
    CIMethod,
    describe_counts,
    proportion_ci,
    reliability_flag,
    response_rate,
)

ITEMS = [f"q{j:02d}" for j in range(1, 9)]
TOL = 1e-9


def scaled_diff(python, r) -> float:
    """max |python - R| / max(1, |R|), with NaN required in the same places."""
    p = np.asarray(python, dtype=float)
    q = np.asarray(r, dtype=float)
    assert p.shape == q.shape
    assert (np.isnan(p) == np.isnan(q)).all(), "missing values differ"
    ok = ~np.isnan(q)
    if not ok.any():
        return 0.0
    return float(np.max(np.abs(p[ok] - q[ok]) / np.maximum(1.0, np.abs(q[ok]))))


@pytest.fixture(scope="module")
def sample(reference_dir) -> pd.DataFrame:
    return pd.read_csv(reference_dir / "satisfaction_sample.csv")


@pytest.fixture(scope="module")
def answer_counts(sample) -> pd.DataFrame:
    long = sample.melt(
        id_vars=["wave", "faculty"], value_vars=ITEMS, var_name="item", value_name="answer"
    ).dropna(subset=["answer"])
    return long.groupby(["wave", "faculty", "item", "answer"]).size().rename("count").reset_index()


@pytest.fixture(scope="module")
def faculty_headcount(reference_dir) -> pd.DataFrame:
    pop = pd.read_csv(reference_dir / "population.csv")
    return pop.groupby(["wave", "faculty"], as_index=False)["headcount"].sum()


# --- R reference ---------------------------------------------------------------------------


def test_describe_counts_reproduces_item_descriptives(reference_dir, answer_counts):
    expected = pd.read_csv(reference_dir / "item_descriptives.csv")
    got = describe_counts(answer_counts, ["wave", "faculty", "item"]).add_prefix("py_")
    m = expected.merge(
        got,
        left_on=["wave", "faculty", "item"],
        right_on=["py_wave", "py_faculty", "py_item"],
        validate="m:1",
    )
    assert len(m) == len(expected) == 384
    checks = {
        "n": ("py_n", None, 1.0),
        "mean": ("py_mean", "py_se_mean", 1.0),
        "sd": ("py_sd", None, 1.0),
        "top2_share": ("py_pct_positive", "py_pct_positive_se", 100.0),
    }
    for estimate, (col, se_col, scale) in checks.items():
        g = m[m["estimate"] == estimate]
        assert len(g) == 96
        assert (g["n"] == g["py_n"]).all()
        dev = scaled_diff(g[col] / scale, g["value"])
        assert dev <= TOL, f"{estimate} value deviates by {dev:.2e}"
        if se_col:
            dev = scaled_diff(g[se_col] / scale, g["se"])
            assert dev <= TOL, f"{estimate} se deviates by {dev:.2e}"


METHOD_OF_R = {
    "wilson": ("wilson", False),
    "clopper_pearson": ("clopper_pearson", False),
    "agresti_coull": ("agresti_coull", False),
    "svyciprop_logit": ("svy_logit", False),
    "svyciprop_beta": ("svy_beta", False),
    "wilson_fpc": ("wilson", True),
}


@pytest.mark.parametrize("r_method", sorted(METHOD_OF_R))
def test_proportion_ci_reproduces_ci_top2(reference_dir, r_method):
    expected = pd.read_csv(reference_dir / "ci_top2.csv")
    e = expected[expected["method"] == r_method].reset_index(drop=True)
    assert len(e) == 24
    method, fpc = METHOD_OF_R[r_method]
    got = proportion_ci(e["x"], e["n"], method=method, population=e["N"] if fpc else None)
    for col in ("value", "se", "ci_low", "ci_high"):
        py = got["p" if col == "value" else col]
        dev = scaled_diff(py, e[col])
        assert dev <= TOL, f"{r_method} {col} deviates by {dev:.2e}"


def test_describe_counts_counts_match_ci_top2_inputs(reference_dir, answer_counts):
    """x, n of the reference intervals come out of the answer counts."""
    e = pd.read_csv(reference_dir / "ci_top2.csv").drop_duplicates(["wave", "faculty", "item"])
    got = describe_counts(answer_counts, ["wave", "faculty", "item"])
    m = e.merge(got, on=["wave", "faculty", "item"], suffixes=("", "_py"))
    assert len(m) == len(e) == 24
    assert (m["x"] == m["x_positive"]).all()
    assert (m["n"] == m["n_py"]).all()


@pytest.mark.parametrize("r_method", ["wilson", "wilson_fpc", "agresti_coull", "svyciprop_beta"])
def test_describe_counts_interval_reproduces_ci_top2(
    reference_dir, answer_counts, faculty_headcount, r_method
):
    expected = pd.read_csv(reference_dir / "ci_top2.csv")
    e = expected[expected["method"] == r_method]
    method, fpc = METHOD_OF_R[r_method]
    got = describe_counts(
        answer_counts,
        ["wave", "faculty", "item"],
        method=method,
        population=faculty_headcount if fpc else None,
    )
    m = e.merge(got, on=["wave", "faculty", "item"], validate="1:1")
    assert len(m) == 24
    for col in ("ci_low", "ci_high", "se"):
        dev = scaled_diff(m[f"pct_positive_{col}"] / 100.0, m[col])
        assert dev <= TOL, f"{r_method} {col} deviates by {dev:.2e}"
    if fpc:
        assert (m["headcount"] == m["N"]).all()


# --- independent oracles ----------------------------------------------------------------


@pytest.fixture(scope="module")
def random_proportions():
    rng = np.random.default_rng(20240917)
    n = rng.integers(1, 400, 500)
    x = rng.binomial(n, rng.uniform(0, 1, 500))
    x[:5], n[:5] = 0, [1, 3, 10, 50, 200]
    x[5:10] = n[5:10]
    return x, n


@pytest.mark.parametrize(
    ("method", "sm_method"),
    [("wilson", "wilson"), ("agresti_coull", "agresti_coull"), ("clopper_pearson", "beta")],
)
@pytest.mark.parametrize("confidence", [0.90, 0.95, 0.99])
def test_proportion_ci_matches_statsmodels(random_proportions, method, sm_method, confidence):
    x, n = random_proportions
    got = proportion_ci(x, n, confidence=confidence, method=method)
    lo, hi = proportion_confint(x, n, alpha=1 - confidence, method=sm_method)
    assert scaled_diff(got["ci_low"], lo) <= 1e-9
    assert scaled_diff(got["ci_high"], hi) <= 1e-9


@pytest.mark.parametrize(
    ("method", "sm_method"),
    [("wilson", "wilson"), ("agresti_coull", "agresti_coull"), ("clopper_pearson", "beta")],
)
def test_fpc_equals_statsmodels_on_effective_n(random_proportions, method, sm_method):
    x, n = random_proportions
    big_n = n + np.arange(len(n)) % 300 + 1
    n_eff = n * (big_n - 1) / (big_n - n)
    got = proportion_ci(x, n, method=method, population=big_n)
    lo, hi = proportion_confint(x / n * n_eff, n_eff, method=sm_method)
    assert scaled_diff(got["n_eff"], n_eff) <= 1e-12
    assert scaled_diff(got["ci_low"], lo) <= 1e-9
    assert scaled_diff(got["ci_high"], hi) <= 1e-9


def test_svy_fpc_scales_variance_by_one_minus_sampling_fraction():
    got = proportion_ci([30], [80], method="svy_logit", population=[200])
    p = 30 / 80
    assert got["se"].iloc[0] == pytest.approx(np.sqrt((1 - 80 / 200) * p * (1 - p) / 79), 1e-12)
    beta = proportion_ci([30], [80], method="svy_beta", population=[200])
    assert beta["n_eff"].iloc[0] == pytest.approx(79 / (1 - 80 / 200), 1e-12)


@pytest.mark.parametrize("method", [m.value for m in CIMethod])
def test_census_gives_zero_width_interval(method):
    got = proportion_ci([12], [40], method=method, population=[40])
    assert got["ci_low"].iloc[0] == pytest.approx(0.3, abs=1e-12)
    assert got["ci_high"].iloc[0] == pytest.approx(0.3, abs=1e-12)


def test_missing_headcount_means_no_correction():
    with_nan = proportion_ci([10, 10], [40, 40], population=[np.nan, 100])
    plain = proportion_ci([10], [40])
    assert with_nan["ci_low"].iloc[0] == plain["ci_low"].iloc[0]
    assert with_nan["ci_low"].iloc[1] > plain["ci_low"].iloc[0]


def test_headcount_below_n_is_a_declaration_error():
    with pytest.raises(DeclarationError, match="headcount"):
        proportion_ci([5], [40], population=[30])


@pytest.mark.parametrize("method", ["svy_logit", "svy_beta"])
def test_svy_methods_at_the_boundary_use_the_beta_bounds(method):
    got = proportion_ci([0, 20], [20, 20], method=method)
    assert got["ci_low"].iloc[0] == 0.0
    assert 0 < got["ci_high"].iloc[0] < 0.25
    assert got["ci_high"].iloc[1] == 1.0
    assert 0.75 < got["ci_low"].iloc[1] < 1


def test_empty_group_has_no_interval():
    got = proportion_ci([0], [0])
    assert got[["p", "se", "ci_low", "ci_high"]].isna().all(axis=None)


def test_proportion_ci_rejects_bad_arguments():
    with pytest.raises(ValueError):
        proportion_ci([1], [2], method="wald")
    with pytest.raises(ValueError):
        proportion_ci([1], [2], confidence=95)
    with pytest.raises(ValueError, match="x exceeds n"):
        proportion_ci([3], [2])


def test_proportion_ci_keeps_series_index():
    x = pd.Series([1, 2], index=["a", "b"])
    assert list(proportion_ci(x, pd.Series([4, 4], index=["a", "b"])).index) == ["a", "b"]


def _expand(counts: np.ndarray) -> np.ndarray:
    return np.repeat(np.arange(1, len(counts) + 1), counts)


def test_describe_counts_matches_scipy_on_raw_answers():
    rng = np.random.default_rng(3)
    groups = 60
    c = rng.multinomial(rng.integers(2, 90), [0.1, 0.2, 0.3, 0.25, 0.15], size=groups)
    counts = pd.DataFrame(
        {
            "unit": np.repeat([f"U{g:03d}" for g in range(groups)], 5),
            "answer": np.tile(np.arange(1, 6), groups),
            "count": c.ravel(),
        }
    )
    got = describe_counts(counts, ["unit"], confidence=0.9)
    for g in range(groups):
        y = _expand(c[g])
        row = got.iloc[g]
        assert row["n"] == len(y)
        assert row["mean"] == pytest.approx(y.mean(), rel=1e-12)
        assert row["sd"] == pytest.approx(y.std(ddof=1), rel=1e-12)
        assert row["se_mean"] == pytest.approx(stats.sem(y), rel=1e-12)
        lo, hi = stats.t.interval(0.9, len(y) - 1, loc=y.mean(), scale=stats.sem(y))
        assert row["mean_ci_low"] == pytest.approx(lo, rel=1e-12)
        assert row["mean_ci_high"] == pytest.approx(hi, rel=1e-12)
        assert row["pct_positive"] == pytest.approx(100 * np.mean(y >= 4), rel=1e-12)
        assert row["pct_negative"] == pytest.approx(100 * np.mean(y <= 2), rel=1e-12)
        assert [row[f"pct_{j}"] for j in range(1, 6)] == pytest.approx(100 * c[g] / len(y))


def test_describe_counts_mean_fpc_uses_one_minus_sampling_fraction():
    counts = pd.DataFrame({"u": ["a"] * 5, "answer": range(1, 6), "count": [2, 3, 5, 6, 4]})
    plain = describe_counts(counts, ["u"])
    corrected = describe_counts(counts.assign(N=50), ["u"], population="N")
    assert corrected["se_mean"].iloc[0] == pytest.approx(
        plain["se_mean"].iloc[0] * np.sqrt(1 - 20 / 50), rel=1e-12
    )
    assert corrected["headcount"].iloc[0] == 50


@pytest.mark.parametrize(
    ("counts", "median"),
    [
        ([0, 1, 3, 10, 6], 4.1),  # 3.5 + (10 - 4) / 10
        ([5, 0, 0, 0, 5], 3.0),  # half at 1, half at 5: middle of the empty gap
        ([5, 5, 0, 0, 0], 1.5),  # the formula itself gives the class boundary
        ([0, 0, 0, 3, 0], 4.0),  # one class: its midpoint
        ([1, 0, 0, 0, 0], 1.0),
        ([2, 3, 5, 6, 4], 3.5),  # 2.5 + (10 - 5) / 5
        ([2, 3, 6, 5, 4], 3.333333333333333),  # 2.5 + (10 - 5) / 6
    ],
)
def test_median_interpolated_hand_examples(counts, median):
    frame = pd.DataFrame({"u": ["a"] * 5, "answer": range(1, 6), "count": counts})
    assert describe_counts(frame, ["u"])["median_interpolated"].iloc[0] == pytest.approx(median)


@settings(max_examples=80, deadline=None)
@given(st.lists(st.integers(0, 12), min_size=5, max_size=5).filter(lambda c: sum(c) > 0))
def test_median_interpolated_is_symmetric_and_within_range(counts):
    def med(c):
        frame = pd.DataFrame({"u": ["a"] * 5, "answer": range(1, 6), "count": c})
        return describe_counts(frame, ["u"])["median_interpolated"].iloc[0]

    m = med(counts)
    assert med(counts[::-1]) == pytest.approx(6 - m)
    y = _expand(np.array(counts))
    assert y.min() - 0.5 <= m <= y.max() + 0.5
    assert abs(m - np.median(y)) <= 0.5 + 1e-12


def test_describe_counts_rejects_not_applicable_codes():
    frame = pd.DataFrame({"u": ["a", "a"], "answer": [3, 6], "count": [4, 2]})
    with pytest.raises(ValueError, match="1..5"):
        describe_counts(frame, ["u"])
    frame = pd.DataFrame({"u": ["a", "a"], "answer": [3, np.nan], "count": [4, 2]})
    with pytest.raises(ValueError, match="not applicable"):
        describe_counts(frame, ["u"])


def test_describe_counts_validates_thresholds_and_columns(answer_counts):
    with pytest.raises(ValueError, match="positive_from"):
        describe_counts(answer_counts, ["wave"], positive_from=2, negative_to=2)
    with pytest.raises(ValueError, match="lacks"):
        describe_counts(answer_counts, ["programme"])


def test_describe_counts_does_not_mutate_input(answer_counts):
    before = answer_counts.copy()
    describe_counts(answer_counts, ["wave", "item"], population=None)
    pd.testing.assert_frame_equal(answer_counts, before)


def test_describe_counts_sums_duplicate_rows_and_keeps_empty_groups():
    frame = pd.DataFrame({"u": ["a", "a", "a", "b"], "answer": [4, 4, 1, 2], "count": [1, 2, 1, 0]})
    got = describe_counts(frame, ["u"]).set_index("u")
    assert got.loc["a", "n"] == 4
    assert got.loc["a", "x_positive"] == 3
    assert got.loc["b", "n"] == 0
    assert np.isnan(got.loc["b", "mean"]) and np.isnan(got.loc["b", "pct_positive_ci_low"])


def test_describe_counts_seven_point_scale():
    frame = pd.DataFrame({"u": ["a"] * 7, "answer": range(1, 8), "count": [1] * 7})
    got = describe_counts(frame, ["u"], points=7, positive_from=6, negative_to=2)
    assert got["pct_7"].iloc[0] == pytest.approx(100 / 7)
    assert got["pct_positive"].iloc[0] == pytest.approx(200 / 7)
    assert got["median_interpolated"].iloc[0] == pytest.approx(4.0)


# --- planted effects ------------------------------------------------------------------------


def test_planted_higher_group_excludes_null_and_null_group_covers():
    rng = np.random.default_rng(11)
    high = rng.binomial(1, 0.72, 300).sum()
    null = rng.binomial(1, 0.50, 300).sum()
    got = proportion_ci([high, null], [300, 300])
    assert got["ci_low"].iloc[0] > 0.5, f"planted p=0.72 group: CI {got.iloc[0].to_dict()}"
    assert got["ci_low"].iloc[1] <= 0.5 <= got["ci_high"].iloc[1]


@pytest.mark.parametrize("method", [m.value for m in CIMethod])
def test_coverage_is_near_nominal_under_the_null(method):
    rng = np.random.default_rng(5)
    reps, n, p = 4000, 60, 0.35
    x = rng.binomial(n, p, reps)
    got = proportion_ci(x, n, method=method)
    coverage = float(((got["ci_low"] <= p) & (p <= got["ci_high"])).mean())
    assert 0.93 <= coverage <= 0.975, f"{method}: coverage {coverage:.3f} over {reps} samples"


def test_fpc_interval_keeps_coverage_when_sampling_without_replacement():
    rng = np.random.default_rng(8)
    big_n, n, positives, reps = 200, 120, 70, 4000
    x = rng.hypergeometric(positives, big_n - positives, n, reps)
    p = positives / big_n
    with_fpc = proportion_ci(x, n, population=big_n)
    plain = proportion_ci(x, n)
    cov = float(((with_fpc["ci_low"] <= p) & (p <= with_fpc["ci_high"])).mean())
    cov_plain = float(((plain["ci_low"] <= p) & (p <= plain["ci_high"])).mean())
    width = float((with_fpc["ci_high"] - with_fpc["ci_low"]).mean())
    width_plain = float((plain["ci_high"] - plain["ci_low"]).mean())
    assert 0.93 <= cov <= 0.97, f"FPC coverage {cov:.3f}, without FPC {cov_plain:.3f}"
    assert width < 0.7 * width_plain, f"FPC width {width:.3f} vs {width_plain:.3f}"


def test_mean_interval_coverage_over_many_groups():
    rng = np.random.default_rng(9)
    probs = np.array([0.1, 0.15, 0.25, 0.3, 0.2])
    mu = float(probs @ np.arange(1, 6))
    reps = 4000
    c = rng.multinomial(40, probs, reps)
    frame = pd.DataFrame(
        {"g": np.repeat(np.arange(reps), 5), "answer": np.tile(np.arange(1, 6), reps)}
    ).assign(count=c.ravel())
    got = describe_counts(frame, ["g"])
    coverage = float(((got["mean_ci_low"] <= mu) & (mu <= got["mean_ci_high"])).mean())
    assert 0.93 <= coverage <= 0.97, f"t-interval coverage {coverage:.3f} over {reps} groups"


@pytest.mark.slow
def test_describe_counts_handles_a_million_groups_quickly():
    import time

    groups = 1_000_000
    rng = np.random.default_rng(1)
    frame = pd.DataFrame(
        {
            "wave": np.repeat(np.arange(groups) % 10, 5),
            "unit": np.repeat((np.arange(groups) // 10).astype(str), 5),
            "answer": np.tile(np.arange(1, 6), groups),
            "count": rng.integers(0, 20, 5 * groups),
        }
    )
    start = time.perf_counter()
    got = describe_counts(frame, ["wave", "unit"])
    elapsed = time.perf_counter() - start
    assert len(got) == groups
    assert elapsed < 15, f"{elapsed:.1f} s for {groups} groups"


# --- response rate and reliability flag -----------------------------------------------------


def test_response_rate_and_errors():
    assert response_rate([5, 10], [10, np.nan]) == pytest.approx([0.5, np.nan], nan_ok=True)
    s = response_rate(pd.Series([3], index=["x"]), [4])
    assert s.name == "response_rate" and s.loc["x"] == 0.75
    with pytest.raises(DeclarationError):
        response_rate([11], [10])
    with pytest.raises(DeclarationError):
        response_rate([0], [0])


def test_reliability_flag_marks_indicative_only():
    got = reliability_flag([5, 30, 30, 8, 30], [0.8, 0.3, 0.6, 0.2, np.nan])
    assert got["indicative_only"].tolist() == [True, True, False, True, False]
    reasons = [None if pd.isna(v) else v for v in got["reliability_reason"]]
    assert reasons == ["low_n", "low_response_rate", None, "low_n;low_response_rate", None]
    strict = reliability_flag([30], [np.nan], unknown_rate_indicative=True)
    assert strict["indicative_only"].iloc[0]
    assert strict["reliability_reason"].iloc[0] == "unknown_response_rate"
