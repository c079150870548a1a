"""Tests for pipeline.methods.inference: R reference figures, scipy/statsmodels oracles, planted effects.

The R figures come from ``tests/data/reference`` (see its README for the R calls, e.g.
``kruskal.test(q03 ~ faculty)``, ``prop.test(c(x_to, x_from), c(n_to, n_from), correct=FALSE)``,
``wilcox.test(y_to, y_from, exact=FALSE, correct=TRUE)``, ``p.adjust(p, "holm")``,
``glm(top2 ~ wave_index, family=binomial)``).
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import (
    confint_proportions_2indep,
    proportion_effectsize,
    proportions_ztest,
)

from pipeline.errors import UsageError
from pipeline.methods.inference import (
    AdjustMethod,
    adjust_pvalues,
    dunn_pairwise,
    kruskal_from_counts,
    mann_kendall,
    mann_whitney_from_counts,
    pairwise_mann_whitney,
    trend_logistic,
    two_proportion_test,
    unit_vs_rest,
    wave_change,
)

R_TOL = 1e-9  # |python − R| ≤ R_TOL · max(1, |R|), as the reference README suggests
ORACLE_RTOL = 1e-10
WAVES = ["2023-2024", "2024-2025", "2025-2026"]


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------


def _assert_r_close(python: object, r: object, what: str) -> float:
    py = np.asarray(python, dtype=float)
    rv = np.asarray(r, dtype=float)
    assert py.shape == rv.shape, f"{what}: shape {py.shape} != {rv.shape}"
    scaled = np.abs(py - rv) / np.maximum(1.0, np.abs(rv))
    worst = float(np.max(scaled)) if scaled.size else 0.0
    assert worst <= R_TOL, f"{what}: worst scaled difference {worst:.3g} > {R_TOL}"
    return worst


@pytest.fixture(scope="module")
def sample(reference_dir) -> pd.DataFrame:
    return pd.read_csv(reference_dir / "satisfaction_sample.csv")


def _answer_counts(sample: pd.DataFrame, item: str) -> pd.DataFrame:
    answered = sample.dropna(subset=[item])
    counts = answered.groupby(["wave", "faculty", item]).size().rename("count").reset_index()
    counts = counts.rename(columns={item: "answer"})
    counts["answer"] = counts["answer"].astype(int)
    counts.insert(2, "item", item)
    return counts


def _random_counts(rng, n_families, max_groups, n_levels, *, zero_share=0.2, scale=40):
    """Long count table: family × group × answer, some zero cells, some empty groups."""
    rows = []
    for f in range(n_families):
        k = int(rng.integers(2, max_groups + 1))
        for g in range(k):
            probs = rng.dirichlet(np.ones(n_levels))
            counts = rng.multinomial(int(rng.integers(1, scale)), probs)
            counts[rng.random(n_levels) < zero_share] = 0
            for level, c in enumerate(counts, start=1):
                rows.append((f"F{f:03d}", f"G{g:02d}", level, int(c)))
    return pd.DataFrame(rows, columns=["family_id", "group", "answer", "count"])


def _expand(counts: pd.DataFrame) -> np.ndarray:
    return np.repeat(counts["answer"].to_numpy(float), counts["count"].to_numpy(int))


# ---------------------------------------------------------------------------------------------
# R reference kit
# ---------------------------------------------------------------------------------------------


def test_kruskal_from_counts_reproduces_r_kruskal_test(sample, reference_dir):
    expected = pd.read_csv(reference_dir / "kruskal_q03.csv")
    result = kruskal_from_counts(_answer_counts(sample, "q03"), "faculty", by=["wave", "item"])
    merged = expected.merge(result, on=["wave", "item"], suffixes=("_r", ""), validate="1:1")
    assert len(merged) == len(expected) == 3
    assert (merged["n"] == merged["n_r"]).all()
    assert (merged["n_groups"] == merged["groups"]).all()
    _assert_r_close(merged["statistic"], merged["value"], "kruskal H")
    _assert_r_close(merged["df"], merged["df_r"], "kruskal df")
    _assert_r_close(merged["p_value"], merged["p_value_r"], "kruskal p")


def test_wave_change_reproduces_r_change_q03(sample, reference_dir):
    expected = pd.read_csv(reference_dir / "change_q03.csv")
    counts = _answer_counts(sample, "q03")
    holm = wave_change(counts, ["item", "faculty"], "wave", "2024-2025", "2025-2026")
    bh = wave_change(counts, ["item", "faculty"], "wave", "2024-2025", "2025-2026", adjust="bh")
    keys = ["item", "faculty", "wave_from", "wave_to"]

    prop_r = expected[expected["estimate"] == "top2_diff"]
    prop = holm[holm["test"] == "two_proportion_z"].merge(prop_r, on=keys, suffixes=("", "_r"))
    prop_bh = bh[bh["test"] == "two_proportion_z"].merge(prop_r, on=keys, suffixes=("", "_r"))
    assert len(prop) == 4
    for col in ["n_from", "n_to", "x_from", "x_to"]:
        assert (prop[col] == prop[f"{col}_r"]).all(), col
    _assert_r_close(prop["estimate"], prop["value"], "top2_diff value")
    for col in ["se", "ci_low", "ci_high", "statistic", "p_value"]:
        _assert_r_close(prop[col], prop[f"{col}_r"], f"top2_diff {col}")
    _assert_r_close(prop["p_adjusted"], prop["p_holm"], "top2_diff p_holm")
    _assert_r_close(prop_bh["p_adjusted"], prop_bh["p_bh"], "top2_diff p_bh")

    h_r = expected[expected["estimate"] == "cohens_h"]
    h = holm[holm["test"] == "two_proportion_z"].merge(h_r, on=keys, suffixes=("", "_r"))
    assert len(h) == 4 and (h["effect_size_kind"] == "cohens_h").all()
    _assert_r_close(h["effect_size"], h["value"], "cohens_h")

    mw_r = expected[expected["estimate"] == "mann_whitney_W"]
    mw = holm[holm["test"] == "mann_whitney"].merge(mw_r, on=keys, suffixes=("", "_r"))
    mw_bh = bh[bh["test"] == "mann_whitney"].merge(mw_r, on=keys, suffixes=("", "_r"))
    assert len(mw) == 4
    _assert_r_close(mw["statistic"], mw["value"], "mann_whitney W")
    _assert_r_close(mw["statistic"], mw["statistic_r"], "mann_whitney statistic")
    _assert_r_close(mw["p_value"], mw["p_value_r"], "mann_whitney p")
    _assert_r_close(mw["p_adjusted"], mw["p_holm"], "mann_whitney p_holm")
    _assert_r_close(mw_bh["p_adjusted"], mw_bh["p_bh"], "mann_whitney p_bh")
    assert (holm["family_size"] == 4).all()


def test_trend_logistic_reproduces_r_glm(sample, reference_dir):
    expected = pd.read_csv(reference_dir / "trend_q01.csv")
    result = trend_logistic(_answer_counts(sample, "q01"), ["item", "faculty"], "wave", WAVES)
    expected["term"] = expected["estimate"]
    merged = expected.merge(
        result, on=["faculty", "item", "term"], suffixes=("_r", ""), validate="1:1"
    )
    assert len(merged) == 8 and merged["converged"].all()
    assert (merged["n"] == merged["n_r"]).all()
    _assert_r_close(merged["estimate"], merged["value"], "trend estimate")
    for col in ["se", "ci_low", "ci_high", "statistic", "p_value"]:
        _assert_r_close(merged[col], merged[f"{col}_r"], f"trend {col}")


# ---------------------------------------------------------------------------------------------
# scipy / statsmodels oracles
# ---------------------------------------------------------------------------------------------


def test_two_proportion_test_matches_statsmodels():
    rng = np.random.default_rng(11)
    n_from = rng.integers(5, 400, 200)
    n_to = rng.integers(5, 400, 200)
    x_from = rng.binomial(n_from, rng.uniform(0.05, 0.95, 200))
    x_to = rng.binomial(n_to, rng.uniform(0.05, 0.95, 200))
    res = two_proportion_test(x_from, n_from, x_to, n_to)
    assert list(res.columns[:4]) == ["n_from", "n_to", "x_from", "x_to"]
    for i in range(200):
        z, p = proportions_ztest([x_to[i], x_from[i]], [n_to[i], n_from[i]])
        lo, hi = confint_proportions_2indep(
            x_to[i], n_to[i], x_from[i], n_from[i], method="wald", compare="diff"
        )
        h = proportion_effectsize(x_to[i] / n_to[i], x_from[i] / n_from[i])
        row = res.iloc[i]
        np.testing.assert_allclose(
            [row["statistic"], row["p_value"], row["effect_size"]],
            [z, p, h],
            rtol=ORACLE_RTOL,
            atol=1e-14,
        )
        np.testing.assert_allclose(
            [row["ci_low"], row["ci_high"]], [max(lo, -1), min(hi, 1)], rtol=0, atol=1e-12
        )


def test_two_proportion_test_gives_nan_when_undefined():
    res = two_proportion_test([0, 5, 3], [10, 5, 0], [0, 7, 2], [12, 7, 4])
    assert res["p_value"].isna().all()
    assert res["effect_size"].iloc[0] == 0.0


def test_mann_whitney_from_counts_matches_scipy_on_random_tables():
    rng = np.random.default_rng(5)
    for n_levels in (2, 5, 7):
        a = rng.multinomial(60, rng.dirichlet(np.ones(n_levels)), size=300).astype(float)
        b = rng.multinomial(45, rng.dirichlet(np.ones(n_levels)), size=300).astype(float)
        a[rng.random(a.shape) < 0.2] = 0
        b[:, 0] += rng.integers(0, 50, 300)  # unequal sizes, heavy ties
        res = mann_whitney_from_counts(a, b)
        levels = np.arange(1, n_levels + 1, dtype=float)
        checked = 0
        for i in range(len(a)):
            ya, yb = np.repeat(levels, a[i].astype(int)), np.repeat(levels, b[i].astype(int))
            if ya.size == 0 or yb.size == 0 or np.unique(np.r_[ya, yb]).size < 2:
                assert np.isnan(res["p_value"].iloc[i])
                continue
            ref = stats.mannwhitneyu(
                ya, yb, use_continuity=True, alternative="two-sided", method="asymptotic"
            )
            np.testing.assert_allclose(res["statistic"].iloc[i], ref.statistic, rtol=1e-12)
            np.testing.assert_allclose(res["p_value"].iloc[i], ref.pvalue, rtol=ORACLE_RTOL)
            r = 2 * ref.statistic / (ya.size * yb.size) - 1
            np.testing.assert_allclose(res["effect_size"].iloc[i], r, rtol=1e-12, atol=1e-15)
            checked += 1
        assert checked > 200


@settings(max_examples=150, deadline=None)
@given(
    a=st.lists(st.integers(0, 25), min_size=5, max_size=5),
    b=st.lists(st.integers(0, 25), min_size=5, max_size=5),
)
def test_mann_whitney_from_counts_equals_scipy_property(a, b):
    levels = np.arange(1, 6)
    ya, yb = np.repeat(levels, a), np.repeat(levels, b)
    res = mann_whitney_from_counts(a, b).iloc[0]
    if ya.size == 0 or yb.size == 0 or np.unique(np.r_[ya, yb]).size < 2:
        assert np.isnan(res["p_value"])
        return
    ref = stats.mannwhitneyu(ya, yb, method="asymptotic", use_continuity=True)
    assert res["statistic"] == ref.statistic
    np.testing.assert_allclose(res["p_value"], ref.pvalue, rtol=ORACLE_RTOL)


def test_mann_whitney_from_counts_aligns_series_on_answer_codes():
    a = pd.Series({1: 3, 2: 5, 5: 4})
    b = pd.Series({2: 2, 3: 6, 4: 1})
    res = mann_whitney_from_counts(a, b).iloc[0]
    ref = stats.mannwhitneyu(
        np.repeat(a.index, a.to_numpy()),
        np.repeat(b.index, b.to_numpy()),
        method="asymptotic",
    )
    assert res["statistic"] == ref.statistic
    np.testing.assert_allclose(res["p_value"], ref.pvalue, rtol=ORACLE_RTOL)


def test_kruskal_from_counts_matches_scipy_on_random_tables():
    rng = np.random.default_rng(7)
    counts = _random_counts(rng, n_families=150, max_groups=8, n_levels=5)
    res = kruskal_from_counts(counts, "group", by="family_id").set_index("family_id")
    checked = 0
    for fam, sub in counts.groupby("family_id"):
        groups = [_expand(g) for _, g in sub.groupby("group")]
        groups = [g for g in groups if g.size]
        row = res.loc[fam]
        assert row["n_groups"] == len(groups)
        pooled = np.concatenate(groups)
        if len(groups) < 2 or np.unique(pooled).size < 2:
            assert np.isnan(row["p_value"])
            continue
        ref = stats.kruskal(*groups)
        np.testing.assert_allclose(row["statistic"], ref.statistic, rtol=ORACLE_RTOL)
        np.testing.assert_allclose(row["p_value"], ref.pvalue, rtol=ORACLE_RTOL)
        np.testing.assert_allclose(row["effect_size"], ref.statistic / (pooled.size - 1))
        assert row["df"] == len(groups) - 1
        checked += 1
    assert checked > 120


def _dunn_from_raw(groups: dict[str, np.ndarray]) -> dict[tuple[str, str], float]:
    """Dunn's z computed the long way: rank every answer, then the textbook formula."""
    names = sorted(groups)
    pooled = np.concatenate([groups[g] for g in names])
    ranks = stats.rankdata(pooled)
    _, t = np.unique(pooled, return_counts=True)
    n = pooled.size
    var_unit = n * (n + 1) / 12 - (t**3 - t).sum() / (12 * (n - 1))
    mean_rank, pos = {}, 0
    for g in names:
        mean_rank[g] = ranks[pos : pos + groups[g].size].mean()
        pos += groups[g].size
    out = {}
    for i, ga in enumerate(names):
        for gb in names[i + 1 :]:
            se = np.sqrt(var_unit * (1 / groups[ga].size + 1 / groups[gb].size))
            out[(ga, gb)] = (mean_rank[ga] - mean_rank[gb]) / se
    return out


def test_dunn_pairwise_matches_rank_formula_on_raw_answers():
    rng = np.random.default_rng(8)
    counts = _random_counts(rng, n_families=40, max_groups=6, n_levels=5, zero_share=0.1)
    res = dunn_pairwise(counts, "group", by="family_id")
    assert (res["test"] == "dunn").all()
    checked = 0
    for fam, sub in counts.groupby("family_id"):
        groups = {g: _expand(s) for g, s in sub.groupby("group")}
        groups = {g: v for g, v in groups.items() if v.size}
        expected = _dunn_from_raw(groups)
        got = res[res["family_id"] == fam]
        assert len(got) == len(expected)
        for row in got.itertuples():
            z = expected[(row.group_a, row.group_b)]
            np.testing.assert_allclose(row.statistic, z, rtol=ORACLE_RTOL, atol=1e-13)
            np.testing.assert_allclose(row.p_value, 2 * stats.norm.sf(abs(z)), rtol=1e-9)
            checked += 1
        if fam < "F008":  # multipletests calls gc.collect() each time: check a few families
            p_holm = multipletests(got["p_value"], method="holm")[1]
            np.testing.assert_allclose(got["p_adjusted"], p_holm, rtol=1e-12)
    assert checked > 100


def test_pairwise_mann_whitney_matches_scipy():
    rng = np.random.default_rng(9)
    counts = _random_counts(rng, n_families=20, max_groups=5, n_levels=5, zero_share=0.1)
    res = pairwise_mann_whitney(counts, "group", by="family_id", adjust="bh")
    for row in res.itertuples():
        sub = counts[counts["family_id"] == row.family_id]
        ya = _expand(sub[sub["group"] == row.group_a])
        yb = _expand(sub[sub["group"] == row.group_b])
        ref = stats.mannwhitneyu(ya, yb, method="asymptotic")
        assert row.statistic == ref.statistic
        np.testing.assert_allclose(row.p_value, ref.pvalue, rtol=ORACLE_RTOL)
    for _, got in res.groupby("family_id"):
        bh = multipletests(got["p_value"], method="fdr_bh")[1]
        np.testing.assert_allclose(got["p_adjusted"], bh, rtol=1e-12)


def test_unit_vs_rest_matches_scipy_and_statsmodels(sample):
    counts = _answer_counts(sample, "q03")
    res = unit_vs_rest(counts, "faculty", by=["wave", "item"])
    assert len(res) == 3 * 4 * 2
    assert (res["family_size"] == 4).all()
    raw = sample.dropna(subset=["q03"])
    for row in res.itertuples():
        wave = raw[raw["wave"] == row.wave]
        y_unit = wave.loc[wave["faculty"] == row.faculty, "q03"].to_numpy()
        y_rest = wave.loc[wave["faculty"] != row.faculty, "q03"].to_numpy()
        assert (row.n_unit, row.n_rest) == (y_unit.size, y_rest.size)
        if row.test == "mann_whitney":
            ref = stats.mannwhitneyu(y_unit, y_rest, method="asymptotic")
            assert row.statistic == ref.statistic
            np.testing.assert_allclose(row.p_value, ref.pvalue, rtol=ORACLE_RTOL)
        else:
            x = [(y_unit >= 4).sum(), (y_rest >= 4).sum()]
            z, p = proportions_ztest(x, [y_unit.size, y_rest.size])
            np.testing.assert_allclose([row.statistic, row.p_value], [z, p], rtol=ORACLE_RTOL)
    for _, fam in res.groupby("family"):
        holm = multipletests(fam["p_value"], method="holm")[1]
        np.testing.assert_allclose(fam["p_adjusted"], holm, rtol=1e-12)


@pytest.mark.parametrize(
    ("method", "sm_method"),
    [("holm", "holm"), ("bh", "fdr_bh"), ("bonferroni", "bonferroni")],
)
def test_adjust_pvalues_matches_multipletests_per_family(method, sm_method):
    rng = np.random.default_rng(3)
    p = np.r_[rng.uniform(0, 1, 300), rng.uniform(0, 0.01, 60), [0.02, 0.02, 0.02, 1.0, 0.0]]
    family = rng.integers(0, 6, p.size)
    adjusted = adjust_pvalues(p, method, family=family)
    for f in np.unique(family):
        sel = family == f
        expected = multipletests(p[sel], method=sm_method)[1]
        np.testing.assert_allclose(adjusted[sel], expected, rtol=1e-12, atol=1e-15)


def test_adjust_pvalues_leaves_nan_out_of_the_family():
    p = np.array([0.01, np.nan, 0.04, 0.03, np.nan])
    adjusted = adjust_pvalues(p, "holm")
    expected = multipletests([0.01, 0.04, 0.03], method="holm")[1]
    assert np.isnan(adjusted[[1, 4]]).all()
    np.testing.assert_allclose(adjusted[[0, 2, 3]], expected, rtol=1e-15)
    series = adjust_pvalues(pd.Series(p, index=list("abcde")), AdjustMethod.BH)
    assert list(series.index) == list("abcde")


def test_adjust_pvalues_accepts_family_frame_and_rejects_unknown_method():
    p = [0.01, 0.02, 0.03, 0.04]
    fam = pd.DataFrame({"item": ["a", "a", "b", "b"], "wave": [1, 1, 1, 1]})
    np.testing.assert_allclose(adjust_pvalues(p, family=fam), [0.02, 0.02, 0.06, 0.06])
    with pytest.raises(UsageError, match="Unknown p-value adjustment"):
        adjust_pvalues(p, "sidak-ish")


def _expand_binomial(successes, trials):
    y, x = [], []
    for w, (s, n) in enumerate(zip(successes, trials, strict=True)):
        y += [1] * int(s) + [0] * int(n - s)
        x += [w] * int(n)
    return np.array(y, float), np.array(x, float)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # statsmodels GLM with df_resid = 0
@pytest.mark.filterwarnings("ignore:Perfect separation")
def test_trend_logistic_matches_statsmodels_newton_logit():
    rng = np.random.default_rng(21)
    rows = []
    truth = {}
    for g in range(25):
        b0, b1 = rng.normal(0, 1), rng.normal(0, 0.4)
        truth[g] = []
        for w in range(int(rng.integers(2, 6))):
            n = int(rng.integers(10, 120))
            pos = rng.binomial(n, 1 / (1 + np.exp(-(b0 + b1 * w))))
            truth[g].append((pos, n))
            rows += [(f"G{g:02d}", w, 5, pos), (f"G{g:02d}", w, 2, n - pos)]
    counts = pd.DataFrame(rows, columns=["unit", "wave", "answer", "count"])
    res = trend_logistic(counts, "unit", "wave", waves=list(range(5)))
    for g, cells in truth.items():
        s, n = np.array(cells).T
        y, x = _expand_binomial(s, n)
        fit = sm.Logit(y, sm.add_constant(x)).fit(method="newton", tol=1e-14, disp=0)
        got = res[res["unit"] == f"G{g:02d}"].set_index("term")
        np.testing.assert_allclose(got["estimate"], fit.params, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(got["se"], fit.bse, rtol=1e-9)
        np.testing.assert_allclose(got["p_value"], fit.pvalues, rtol=1e-8)
        glm = sm.GLM(
            np.c_[s, n - s],
            sm.add_constant(np.arange(len(s), dtype=float)),
            family=sm.families.Binomial(),
        ).fit(tol=1e-14)
        np.testing.assert_allclose(got["estimate"], glm.params, rtol=1e-8, atol=1e-11)


def test_trend_logistic_flags_separation_and_too_few_waves():
    counts = pd.DataFrame(
        {
            "unit": ["sep"] * 6 + ["one"] * 2 + ["all"] * 3,
            "wave": [0, 0, 1, 1, 2, 2, 1, 1, 0, 1, 2],
            "answer": [1, 2, 5, 4, 5, 5, 1, 5, 5, 5, 4],
            "count": [10, 5, 0, 0, 0, 0, 3, 4, 0, 0, 0],
        }
    )
    counts.loc[[2, 3, 4, 5], "count"] = [8, 2, 9, 1]
    counts.loc[[8, 9, 10], "count"] = [5, 5, 5]
    res = trend_logistic(counts, "unit", "wave", waves=[0, 1, 2])
    assert not res["converged"].any()
    assert res["estimate"].isna().all() and res["p_value"].isna().all()
    assert res["p_adjusted"].isna().all()


def test_mann_kendall_exact_p_matches_scipy_kendalltau():
    rng = np.random.default_rng(4)
    rows = []
    means = {}
    for g in range(30):
        n_waves = int(rng.integers(3, 9))
        drift = rng.normal(0, 0.3)
        means[g] = []
        for w in range(n_waves):
            c = rng.multinomial(50 + g, rng.dirichlet(np.exp(drift * w * np.arange(5))))
            means[g].append((np.arange(1, 6) * c).sum() / c.sum())
            rows += [(g, w, a, int(k)) for a, k in enumerate(c, start=1)]
    counts = pd.DataFrame(rows, columns=["unit", "wave", "answer", "count"])
    res = mann_kendall(counts, "unit", "wave").set_index("unit")
    checked = 0
    for g, m in means.items():
        if len(set(m)) < len(m):  # tied means: normal approximation, tested below
            assert res.loc[g, "p_method"] == "normal"
            continue
        ref = stats.kendalltau(np.arange(len(m)), m, method="exact")
        assert res.loc[g, "p_method"] == "exact"
        checked += 1
        np.testing.assert_allclose(res.loc[g, "tau"], ref.statistic, rtol=1e-12)
        np.testing.assert_allclose(res.loc[g, "p_value"], ref.pvalue, rtol=ORACLE_RTOL)
        slopes = [(m[j] - m[i]) / (j - i) for i in range(len(m)) for j in range(i + 1, len(m))]
        np.testing.assert_allclose(res.loc[g, "sen_slope"], np.median(slopes), rtol=1e-12)
    assert checked >= 20


def test_mann_kendall_with_tied_means_uses_tie_corrected_normal():
    rows = []
    for w, ans in enumerate([3, 3, 4, 4, 5]):  # means 3, 3, 4, 4, 5: two tied pairs
        rows.append(("u", w, ans, 10))
    res = mann_kendall(pd.DataFrame(rows, columns=["unit", "wave", "answer", "count"]), "unit")
    row = res.iloc[0]
    x = [3, 3, 4, 4, 5]
    s = sum(np.sign(x[j] - x[i]) for i in range(5) for j in range(i + 1, 5))
    var = (5 * 4 * 15 - 2 * (2 * 1 * 9)) / 18
    assert row["statistic"] == s == 8
    assert row["p_method"] == "normal"
    np.testing.assert_allclose(row["z"], (s - 1) / np.sqrt(var), rtol=1e-14)
    np.testing.assert_allclose(row["tau"], stats.kendalltau(range(5), x).statistic, rtol=1e-12)


# ---------------------------------------------------------------------------------------------
# Planted effects against nulls
# ---------------------------------------------------------------------------------------------

NULL_PROBS = np.array([0.10, 0.15, 0.25, 0.30, 0.20])  # 50 % positive
PLANTED_PROBS = np.array([0.05, 0.10, 0.20, 0.38, 0.27])  # 65 % positive: +15 points


def _two_wave_datasets(rng, n_datasets, n_units, n_range, planted_unit=None):
    """Count table of many independent datasets (families), 10 units × two waves each."""
    n = rng.integers(*n_range, size=(n_datasets, n_units, 2))
    probs = np.broadcast_to(NULL_PROBS, (n_datasets, n_units, 2, 5)).copy()
    if planted_unit is not None:
        probs[:, planted_unit, 1] = PLANTED_PROBS
    counts = rng.multinomial(n, probs)  # (datasets, units, waves, levels)
    d, u, w, a = np.meshgrid(
        np.arange(n_datasets), np.arange(n_units), np.arange(2), np.arange(1, 6), indexing="ij"
    )
    return pd.DataFrame(
        {
            "dataset": d.ravel(),
            "unit": u.ravel(),
            "wave": np.where(w.ravel() == 0, "before", "after"),
            "answer": a.ravel(),
            "count": counts.ravel(),
        }
    )


def test_planted_fifteen_point_change_is_found_after_holm():
    rng = np.random.default_rng(2024)
    counts = _two_wave_datasets(rng, 100, 10, (300, 500), planted_unit=3)
    res = wave_change(counts, ["dataset", "unit"], "wave", "before", "after", family=["dataset"])
    planted = res[res["unit"] == 3]
    for test in ("two_proportion_z", "mann_whitney"):
        hits = planted.loc[planted["test"] == test, "p_adjusted"] < 0.05
        power = hits.mean()
        print(f"{test}: planted +15 points found after Holm in {hits.sum()}/{hits.size} datasets")
        assert power >= 0.9, f"{test}: power {power:.2f} < 0.90 ({hits.sum()}/{hits.size})"
    first = planted[(planted["dataset"] == 0) & (planted["test"] == "two_proportion_z")].iloc[0]
    assert first["p_adjusted"] < 0.05 and 0.05 < first["estimate"] < 0.25
    assert first["effect_size"] > 0 and first["family_size"] == 10


def test_null_datasets_keep_holm_family_wise_error_near_five_percent():
    rng = np.random.default_rng(77)
    n_datasets = 200
    counts = _two_wave_datasets(rng, n_datasets, 10, (30, 300))
    bound = 0.05 + 2 * np.sqrt(0.05 * 0.95 / n_datasets)
    change = wave_change(counts, ["dataset", "unit"], "wave", "before", "after", family=["dataset"])
    after = counts[counts["wave"] == "after"]
    rest = unit_vs_rest(after, "unit", by="dataset")
    dunn = dunn_pairwise(after, "unit", by="dataset")
    results = {
        "wave_change two_proportion_z": change[change["test"] == "two_proportion_z"],
        "wave_change mann_whitney": change[change["test"] == "mann_whitney"],
        "unit_vs_rest two_proportion_z": rest[rest["test"] == "two_proportion_z"],
        "unit_vs_rest mann_whitney": rest[rest["test"] == "mann_whitney"],
        "dunn": dunn,
    }
    for name, frame in results.items():
        assert frame["dataset"].nunique() == n_datasets
        any_fp = frame.groupby("dataset")["p_adjusted"].min() < 0.05
        rate = any_fp.mean()
        message = (
            f"{name}: {any_fp.sum()}/{n_datasets} null families ({rate:.3f}) had a Holm false "
            f"positive; bound 0.05 + 2 SE = {bound:.4f}"
        )
        print(message)
        assert rate <= bound, message


def test_rank_tests_from_counts_meet_performance_target():
    """PERFORMANCE.md: 400 Kruskal–Wallis + 18,000 Mann–Whitney + Holm well under a second."""
    rng = np.random.default_rng(1)
    grid = pd.MultiIndex.from_product(
        [range(10), range(40), range(10), range(1, 6)], names=["wave", "item", "unit", "answer"]
    ).to_frame(index=False)
    grid["count"] = rng.poisson(rng.uniform(5, 300, len(grid)))
    start = time.perf_counter()
    kw = kruskal_from_counts(grid, "unit", by=["wave", "item"], family=["wave"])
    mw = pairwise_mann_whitney(grid, "unit", by=["wave", "item"])
    elapsed = time.perf_counter() - start
    print(f"400 Kruskal–Wallis + {len(mw)} Mann–Whitney + Holm from counts: {elapsed:.3f} s")
    assert len(kw) == 400 and len(mw) == 18_000
    assert mw["p_adjusted"].notna().all()
    assert elapsed < 5.0, f"took {elapsed:.2f} s; the target is well under 1 s"


# ---------------------------------------------------------------------------------------------
# Contracts
# ---------------------------------------------------------------------------------------------


def test_functions_do_not_mutate_their_input(sample):
    counts = _answer_counts(sample, "q03")
    before = counts.copy()
    wave_change(counts, ["faculty"], "wave", "2024-2025", "2025-2026")
    unit_vs_rest(counts, "faculty", by="wave")
    kruskal_from_counts(counts, "faculty", by="wave")
    dunn_pairwise(counts, "faculty", by="wave")
    pairwise_mann_whitney(counts, "faculty", by="wave")
    trend_logistic(counts, "faculty", "wave")
    mann_kendall(counts, "faculty", "wave")
    pd.testing.assert_frame_equal(counts, before)


def test_missing_answers_are_not_valid_answers(sample):
    counts = _answer_counts(sample, "q03")
    with_blank = pd.concat(
        [counts, counts.head(3).assign(answer=pd.NA, count=999)], ignore_index=True
    )
    with_blank["answer"] = with_blank["answer"].astype("Int64")
    a = kruskal_from_counts(counts, "faculty", by="wave")
    b = kruskal_from_counts(with_blank, "faculty", by="wave")
    pd.testing.assert_frame_equal(a, b)


def test_group_missing_from_one_wave_gets_nan_tests():
    counts = pd.DataFrame(
        {
            "unit": ["a", "a", "a", "a", "b", "b"],
            "wave": ["w1", "w1", "w2", "w2", "w1", "w1"],
            "answer": [2, 5, 2, 5, 2, 5],
            "count": [10, 20, 15, 10, 4, 6],
        }
    )
    res = wave_change(counts, "unit", "wave", "w1", "w2")
    b = res[res["unit"] == "b"]
    assert b["p_value"].isna().all() and b["p_adjusted"].isna().all()
    assert (res.loc[res["unit"] == "a", "family_size"] == 1).all()


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"count": -1}, "negative"),
        ({"count": 2.5}, "fractional"),
    ],
)
def test_bad_counts_raise_usage_error(change, match):
    counts = pd.DataFrame({"g": ["a", "b"], "answer": [1, 2], "count": [3, 4]}).astype(
        {"count": float}
    )
    counts.loc[0, "count"] = change["count"]
    with pytest.raises(UsageError, match=match):
        kruskal_from_counts(counts, "g")


def test_missing_column_and_bad_family_raise_usage_error(sample):
    counts = _answer_counts(sample, "q03")
    with pytest.raises(UsageError, match="no column 'unit'"):
        kruskal_from_counts(counts, "unit", by="wave")
    with pytest.raises(UsageError, match="Family column"):
        dunn_pairwise(counts, "faculty", by="wave", family=["item"])


def test_family_columns_split_the_adjustment(sample):
    counts = pd.concat([_answer_counts(sample, "q01"), _answer_counts(sample, "q03")])
    args = (counts, ["item", "faculty"], "wave", "2024-2025", "2025-2026")
    per_item = wave_change(*args, family=["item"])
    pooled = wave_change(*args)
    assert (per_item["family_size"] == 4).all() and (pooled["family_size"] == 8).all()
    assert per_item["family"].nunique() == 4  # 2 items × 2 tests
    q03 = per_item[per_item["item"] == "q03"]
    alone = wave_change(_answer_counts(sample, "q03"), ["item", "faculty"], *args[2:])
    np.testing.assert_allclose(q03["p_adjusted"], alone["p_adjusted"], rtol=1e-15)
    assert (pooled["p_adjusted"].to_numpy() >= per_item["p_adjusted"].to_numpy()).all()


def test_functions_accept_no_by_columns(sample):
    counts = _answer_counts(sample, "q03")
    one_wave = counts[counts["wave"] == "2025-2026"]
    kw = kruskal_from_counts(one_wave, "faculty")
    groups = [_expand(g) for _, g in one_wave.groupby("faculty")]
    assert len(kw) == 1
    np.testing.assert_allclose(kw["statistic"], stats.kruskal(*groups).statistic, rtol=1e-12)
    assert len(unit_vs_rest(one_wave, "faculty")) == 8
    assert len(dunn_pairwise(one_wave, "faculty")) == 6
    trend = trend_logistic(counts.groupby(["wave", "answer"], as_index=False)["count"].sum())
    assert list(trend["term"]) == ["intercept", "slope"] and trend["converged"].all()


# --------------------------------------------------- exact test where the approximation is poor
def _fisher_by_enumeration(x_a, n_a, x_b, n_b):
    """Two-sided Fisher p as R's fisher.test defines it: the probability of every table with
    the same margins no more likely than the observed one (relative tolerance 1e-7)."""
    from math import comb

    k, n = x_a + x_b, n_a + n_b
    prob = {
        a: comb(n_a, a) * comb(n_b, k - a) / comb(n, k)
        for a in range(max(0, k - n_b), min(k, n_a) + 1)
    }
    return sum(p for p in prob.values() if p <= prob[x_a] * (1 + 1e-7))


def _two_samples(pos_from, n_from, pos_to, n_to):
    """A two-wave count table on a 5-point scale: positive answers coded 5, the rest 2."""
    rows = []
    for wave, pos, n in (("before", pos_from, n_from), ("after", pos_to, n_to)):
        rows += [(wave, 5, pos), (wave, 2, n - pos)]
    return pd.DataFrame(rows, columns=["wave", "answer", "count"]).assign(item="q")


def test_the_rule_sends_small_expected_counts_to_fishers_exact_test():
    from pipeline.methods.inference import MIN_EXPECTED_COUNT, approximation_poor

    assert MIN_EXPECTED_COUNT == 5
    # 0/5 then 8/11: expected positives in the small wave 5·8/16 = 2.5 < 5
    assert approximation_poor(0, 5, 8, 11).all()
    # 50/100 then 60/100: every expected count ≥ 45
    assert not approximation_poor(50, 100, 60, 100).any()
    # all positive in both waves: expected "not positive" counts are 0 < 5, but it is
    # Fisher's p = 1 anyway; an empty wave is never "poor" (no test at all)
    assert not approximation_poor(0, 0, 3, 10).any()

    small = wave_change(_two_samples(0, 5, 8, 11), ["item"], "wave", "before", "after")
    row = small[small["test"] == "two_proportion_z"].iloc[0]
    assert row["p_method"] == "fisher_exact"
    assert row["p_value"] == pytest.approx(_fisher_by_enumeration(8, 11, 0, 5), rel=1e-12)
    assert row["p_value"] > 0.02  # the z test's 0.0038 overstated the evidence
    # R: fisher.test(matrix(c(3, 1, 1, 3), 2))$p.value == 0.4857143 (the tea-tasting example)
    tea = wave_change(_two_samples(1, 4, 3, 4), ["item"], "wave", "before", "after")
    assert tea.loc[tea["test"] == "two_proportion_z", "p_value"].iloc[0] == pytest.approx(
        0.4857142857, abs=1e-9
    )
    large = wave_change(_two_samples(50, 100, 60, 100), ["item"], "wave", "before", "after")
    big = large[large["test"] == "two_proportion_z"].iloc[0]
    assert big["p_method"] == "normal"
    # R: prop.test(c(60, 50), c(100, 100), correct = FALSE): X-squared = 2.0202, p = 0.1552
    assert big["p_value"] == pytest.approx(
        stats.chi2.sf(0.1**2 / (0.55 * 0.45 * 0.02), 1), rel=1e-12
    )
    assert big["p_value"] == pytest.approx(0.1552, abs=5e-5)


def test_rank_test_is_not_given_on_fewer_than_ten_answers_a_side():
    res = wave_change(_two_samples(2, 9, 7, 30), ["item"], "wave", "before", "after")
    mw = res[res["test"] == "mann_whitney"].iloc[0]
    assert mw["p_method"] == "too_few_answers" and np.isnan(mw["p_value"])
    assert np.isnan(mw["p_adjusted"]) and mw["family_size"] == 0
    ok = wave_change(_two_samples(2, 10, 7, 30), ["item"], "wave", "before", "after")
    assert ok.loc[ok["test"] == "mann_whitney", "p_method"].iloc[0] == "normal"


def test_vectorised_fisher_equals_scipy_on_thousands_of_tables():
    from pipeline.methods.inference import fisher_exact_p

    rng = np.random.default_rng(11)
    n1 = rng.integers(1, 60, 2000)
    n2 = rng.integers(1, 4000, 2000)
    x1, x2 = rng.binomial(n1, 0.1), rng.binomial(n2, 0.15)
    got = fisher_exact_p(x2, n2, x1, n1)
    want = [
        stats.fisher_exact([[a, n - a], [b, m - b]]).pvalue
        for a, n, b, m in zip(x1, n1, x2, n2, strict=True)
    ]
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)
    assert np.isnan(fisher_exact_p(3, 0, 2, 5)).all()  # an empty sample: no test
