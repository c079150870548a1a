"""Design-based estimates from answer counts equal those from one row per respondent
(pipeline.methods.weighting.weighted_estimates is the oracle, itself checked against R), and
reliability_tables equals cronbach_alpha and item_total_statistics."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipeline.methods.reliability import cronbach_alpha, item_total_statistics, reliability_tables
from pipeline.methods.weighting import weighted_estimates, weighted_estimates_from_counts

CELLS = ["faculty", "level"]


def to_counts(frame: pd.DataFrame, items: list[str], keys: list[str]):
    long = (
        frame[keys + items]
        .melt(id_vars=keys, value_vars=items, var_name="item", value_name="answer")
        .dropna(subset=["answer"])
    )
    counts = long.groupby(keys + ["item", "answer"]).size().rename("count").reset_index()
    sizes = frame.groupby(keys).size().rename("respondents").reset_index()
    return counts, sizes


def assert_same(a: pd.DataFrame, b: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(a, b, check_exact=False, rtol=1e-11, atol=1e-12)


@pytest.fixture(scope="module")
def sample(reference_dir) -> pd.DataFrame:
    return pd.read_csv(reference_dir / "satisfaction_sample.csv")


@pytest.fixture(scope="module")
def population(reference_dir) -> pd.DataFrame:
    return pd.read_csv(reference_dir / "population.csv")


def test_counts_reproduce_respondent_estimates_on_the_r_sample(sample, population):
    items = ["q01", "q03"]
    counts, sizes = to_counts(sample, items, ["wave", *CELLS])
    got = weighted_estimates_from_counts(counts, sizes, items, CELLS, population, by=["wave"])
    assert_same(weighted_estimates(sample, items, CELLS, population, by=["wave"]), got)


@pytest.mark.parametrize("designs", ["equal_prob", ["weighted", "poststratified"]])
@pytest.mark.parametrize("confidence", [0.9, 0.95])
def test_counts_reproduce_respondent_estimates_with_gaps(designs, confidence):
    rng = np.random.default_rng(7)
    n = 3000
    frame = pd.DataFrame(
        {
            "g": rng.choice(["x", "y", "z"], n),
            "c": rng.choice(list("abcd"), n),
            "q": rng.integers(1, 6, n).astype(float),
            "r": rng.integers(1, 3, n).astype(float),
            "s": np.nan,
        }
    )
    frame.loc[rng.random(n) < 0.2, "q"] = np.nan
    frame.loc[frame["g"] == "z", "r"] = np.nan  # an item nobody in a group answered
    heads = frame[["c"]].drop_duplicates().assign(headcount=lambda d: 900 + 50 * np.arange(len(d)))
    items = ["q", "r", "s"]
    counts, sizes = to_counts(frame, items, ["g", "c"])
    kw = {"by": ["g"], "designs": designs, "confidence": confidence}
    expected = weighted_estimates(frame, items, ["c"], heads, **kw)
    assert_same(expected, weighted_estimates_from_counts(counts, sizes, items, ["c"], heads, **kw))


def test_counts_without_groups_or_headcounts():
    frame = pd.DataFrame({"unit": ["a"] * 4 + ["b"] * 3, "q": [1.0, 4.0, 5.0, np.nan, 2, 4, 4]})
    counts, sizes = to_counts(frame, ["q"], ["unit"])
    expected = weighted_estimates(frame, ["q"], ["unit"], designs="equal_prob")
    got = weighted_estimates_from_counts(counts, sizes, ["q"], ["unit"], designs="equal_prob")
    assert_same(expected, got)


def test_count_inputs_are_checked():
    frame = pd.DataFrame({"unit": ["a", "a"], "q": [3.0, 4.0]})
    counts, sizes = to_counts(frame, ["q"], ["unit"])
    heads = pd.DataFrame({"unit": ["a", "b"], "headcount": [10, 20]})
    with pytest.raises(ValueError, match="collapse"):
        weighted_estimates_from_counts(
            counts, sizes, ["q"], ["unit"], heads, designs="poststratified"
        )
    stray = pd.concat(
        [counts, pd.DataFrame({"unit": ["c"], "item": ["q"], "answer": [2.0], "count": [1]})]
    )
    with pytest.raises(ValueError, match="without respondents"):
        weighted_estimates_from_counts(stray, sizes, ["q"], ["unit"], designs="equal_prob")
    with pytest.raises(ValueError, match="headcounts"):
        weighted_estimates_from_counts(counts, sizes, ["q"], ["unit"], designs="weighted")


def test_reliability_tables_equal_the_separate_functions(sample):
    scales = {"a": ["q01", "q02", "q03"], "b": ["q03", "q04"]}
    x = sample[["wave", "q01", "q02", "q03", "q04"]]
    alpha, items = reliability_tables(x, scales, reverse={"q02"}, by=["wave"])
    pd.testing.assert_frame_equal(alpha, cronbach_alpha(x, scales, reverse={"q02"}, by=["wave"]))
    pd.testing.assert_frame_equal(
        items, item_total_statistics(x, scales, reverse={"q02"}, by=["wave"])
    )
