"""Tests for pipeline.methods.disclosure, the privacy gate.

The property tests check the gate's output with an independent oracle: the published figures of
a slice give one linear equation per family, ``n(parent) - sum n(children) = r`` with ``r``
known; a hidden cell (or a total over hidden cells) is derivable exactly when its indicator
vector lies in the row space of those equations restricted to the hidden cells.
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from pipeline.methods.disclosure import MIN_N_FLOOR, suppress, suppress_comments


def faculty_table(**programmes: int) -> pd.DataFrame:
    """One wave/item: faculty F with the given programmes (n per programme)."""
    units = ["F", *programmes]
    n = [sum(programmes.values()), *programmes.values()]
    return pd.DataFrame(
        {
            "wave": "2025-2026",
            "item": "q01",
            "unit": units,
            "parent": [None] + ["F"] * len(programmes),
            "n": n,
            "mean": np.linspace(3.0, 4.0, len(units)),
            "pct_positive": np.linspace(50.0, 70.0, len(units)),
        }
    )


def gate(table: pd.DataFrame, **kwargs) -> pd.DataFrame:
    kwargs.setdefault("hierarchy", "parent")
    kwargs.setdefault("unit_col", "unit")
    kwargs.setdefault("by", ["wave", "item"])
    return suppress(table, **kwargs)


def hidden_units(out: pd.DataFrame) -> set[str]:
    return set(out.loc[out["suppressed"], "unit"])


# --- examples -----------------------------------------------------------------------------


def test_small_cell_shows_no_statistic_but_keeps_its_keys():
    out = gate(faculty_table(P1=3, P2=40, P3=50))
    row = out.set_index("unit").loc["P1"]
    assert row["suppressed"] and row["suppression_reason"] == "small_cell"
    assert pd.isna(row["n"]) and pd.isna(row["mean"]) and pd.isna(row["pct_positive"])
    assert row["wave"] == "2025-2026" and row["parent"] == "F"


def test_single_suppressed_child_takes_the_next_smallest_sibling_with_it():
    out = gate(faculty_table(P1=3, P2=40, P3=12, P4=50)).set_index("unit")
    assert out.loc["P3", "suppression_reason"] == "complementary"
    assert not out.loc[["F", "P2", "P4"], "suppressed"].any()


def test_hidden_children_total_below_min_n_needs_another_sibling():
    # P1 + P2 = 4 could be derived as F - P3 - P4: a group of 4 respondents.
    out = gate(faculty_table(P1=2, P2=2, P3=30, P4=20)).set_index("unit")
    assert out.loc["P4", "suppression_reason"] == "complementary"
    assert not out.loc["P3", "suppressed"]


def test_parent_with_a_single_child_is_hidden_with_it():
    table = faculty_table(P1=4)
    table.loc[0, "n"] = 30  # 26 faculty respondents are in no listed programme
    out = gate(table).set_index("unit")
    assert out.loc["P1", "suppression_reason"] == "small_cell"
    assert out.loc["F", "suppression_reason"] == "complementary"


def test_small_parent_hides_its_children_and_propagates_up():
    table = pd.DataFrame(
        {
            "unit": ["U", "F1", "F2", "F3", "P1", "P2"],
            "parent": [None, "U", "U", "U", "F1", "F1"],
            "n": [104, 4, 50, 50, 2, 2],
            "mean": 3.0,
        }
    )
    out = suppress(table, hierarchy="parent", unit_col="unit").set_index("unit")
    assert hidden_units(out.reset_index()) >= {"F1", "P1", "P2"}
    # F1 alone hidden among U's children would be U - F2 - F3: one sibling must join it.
    assert out.loc[["F2", "F3"], "suppressed"].sum() == 1
    assert not out.loc["U", "suppressed"]


def test_children_link_to_nearest_published_ancestor():
    table = pd.DataFrame(
        {"unit": ["U", "P1", "P2", "P3"], "n": [100, 3, 47, 50], "mean": [1.0, 2.0, 3.0, 4.0]}
    )
    mapping = {"P1": "F1", "P2": "F1", "P3": "F2", "F1": "U", "F2": "U"}
    out = suppress(table, hierarchy=mapping, unit_col="unit").set_index("unit")
    assert out.loc["P1", "suppressed"] and out.loc["P2", "suppressed"]
    assert not out.loc["P3", "suppressed"] and not out.loc["U", "suppressed"]


def test_slices_are_independent():
    a = faculty_table(P1=3, P2=40, P3=12)
    b = faculty_table(P1=30, P2=40, P3=12).assign(wave="2024-2025")
    out = gate(pd.concat([a, b], ignore_index=True))
    assert out.loc[out["wave"] == "2024-2025", "suppressed"].sum() == 0
    assert out.loc[out["wave"] == "2025-2026", "suppressed"].sum() == 2


def test_statistic_columns_are_fail_closed_and_labels_stay():
    table = faculty_table(P1=3, P2=40, P3=12).assign(unit_name="Programme", new_stat=1)
    out = gate(table, labels=["unit_name"])
    hidden = out[out["suppressed"]]
    assert hidden["new_stat"].isna().all()
    assert (hidden["unit_name"] == "Programme").all()
    assert not out.loc[~out["suppressed"], "new_stat"].isna().any()


def test_without_hierarchy_only_small_cells_are_hidden():
    out = suppress(faculty_table(P1=3, P2=40, P3=12), by=["wave", "item"], labels=["unit"])
    assert hidden_units(out) == {"P1"}
    # "parent" is neither a key nor a label here, so it is blanked with the statistics.
    assert out.loc[out["suppressed"], "parent"].isna().all()


def test_missing_n_is_treated_as_small():
    table = faculty_table(P1=30, P2=40).astype({"n": float})
    table.loc[1, "n"] = np.nan
    out = gate(table).set_index("unit")
    assert out.loc["P1", "suppression_reason"] == "small_cell"
    assert out.loc["P2", "suppression_reason"] == "complementary"


def test_input_is_not_mutated_and_index_is_kept():
    table = faculty_table(P1=3, P2=40, P3=12)
    table.index = [10, 11, 12, 13]
    before = table.copy()
    out = gate(table)
    pd.testing.assert_frame_equal(table, before)
    assert list(out.index) == [10, 11, 12, 13]


def test_gate_applied_twice_keeps_everything_hidden():
    once = gate(faculty_table(P1=3, P2=40, P3=12, P4=50))
    twice = gate(once)
    assert set(twice.loc[twice["suppressed"], "unit"]) >= hidden_units(once)
    assert twice.set_index("unit").loc["P1", "suppression_reason"] == "small_cell"


def test_hierarchy_errors_are_explained():
    table = faculty_table(P1=30, P2=40)
    with pytest.raises(ValueError, match="unit_col"):
        suppress(table, hierarchy="parent")
    with pytest.raises(ValueError, match="cycle"):
        suppress(table, hierarchy={"F": "P1", "P1": "F"}, unit_col="unit", by=["wave"])
    with pytest.raises(ValueError, match="same unit within a slice"):
        suppress(pd.concat([table, table]), hierarchy="parent", unit_col="unit")
    clash = table.copy()
    clash = pd.concat([clash, clash.assign(item="q02", parent="P1")], ignore_index=True)
    with pytest.raises(ValueError, match="more than one parent"):
        gate(clash)


@pytest.mark.parametrize("min_n", [2, 0, -1, 2.99, True])
def test_min_n_below_floor_is_rejected(min_n):
    with pytest.raises(ValueError):
        suppress(faculty_table(P1=30), min_n=min_n)
    with pytest.raises(ValueError):
        suppress_comments(pd.DataFrame({"n": [20], "comment": ["ok"]}), min_n=min_n)


@given(st.one_of(st.integers(max_value=MIN_N_FLOOR - 1), st.floats(max_value=2.999)))
def test_min_n_below_floor_is_always_rejected(min_n):
    with pytest.raises(ValueError):
        suppress(pd.DataFrame({"n": [10]}), min_n=min_n)


def test_min_n_can_be_raised():
    out = suppress(pd.DataFrame({"n": [7, 12]}), min_n=10)
    assert out["suppressed"].tolist() == [True, False]


def test_comments_need_ten_respondents():
    comments = pd.DataFrame({"n": [9, 10, 40], "comment": ["a", "b", "c"], "unit": "x"})
    out = suppress_comments(comments)
    assert out["comment"].isna().tolist() == [True, False, False]
    assert out["suppression_reason"].iloc[0] == "comment_small_cell"
    assert (out["unit"] == "x").all()
    assert suppress_comments(comments, min_n=20)["suppressed"].tolist() == [True, True, False]


# --- properties ----------------------------------------------------------------------------


@st.composite
def hierarchies(draw):
    """A random forest of units, counts per slice, and which units each slice publishes."""
    size = draw(st.integers(1, 11))
    parent = [-1]
    for i in range(1, size):
        parent.append(draw(st.integers(-1, i - 1)))
    n_slices = draw(st.integers(1, 2))
    slices = []
    for _ in range(n_slices):
        n = [0] * size
        for i in reversed(range(size)):
            kids = [j for j in range(size) if parent[j] == i]
            base = draw(st.integers(0, 14)) if not kids else sum(n[j] for j in kids)
            n[i] = base + (draw(st.sampled_from([0, 0, 0, 1, 3])) if kids else 0)
        published = draw(st.lists(st.booleans(), min_size=size, max_size=size))
        slices.append((n, published))
    min_n = draw(st.integers(3, 8))
    return parent, slices, min_n


def _nearest_published(i, parent, published):
    p = parent[i]
    while p >= 0 and not published[p]:
        p = parent[p]
    return p


def _is_ancestor(a, b, parent):
    p = parent[b]
    while p >= 0:
        if p == a:
            return True
        p = parent[p]
    return False


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(hierarchies())
def test_gate_leaves_nothing_small_derivable(case):
    parent, slices, min_n = case
    rows = []
    for s, (n, published) in enumerate(slices):
        for i in range(len(parent)):
            if published[i]:
                rows.append({"wave": s, "unit": f"u{i}", "n": n[i], "mean": 1.0 + i})
    if not rows:
        return
    table = pd.DataFrame(rows)
    mapping = {f"u{i}": f"u{p}" for i, p in enumerate(parent) if p >= 0}
    out = suppress(table, min_n=min_n, hierarchy=mapping, unit_col="unit", by=["wave"])
    event(
        f"complementary cells: {min(int((out['suppression_reason'] == 'complementary').sum()), 3)}"
    )

    # Every visible statistic rests on at least min_n respondents; hidden rows show nothing.
    visible = ~out["suppressed"]
    assert (out.loc[visible, "n"] >= min_n).all()
    assert out.loc[~visible, ["n", "mean"]].isna().all(axis=None)
    assert out.loc[visible, "mean"].notna().all()

    for s, (n, published) in enumerate(slices):
        part = out[out["wave"] == s]
        hidden = {int(u[1:]) for u in part.loc[part["suppressed"], "unit"]}
        if not hidden:
            continue
        order = sorted(hidden)
        pos = {u: k for k, u in enumerate(order)}
        families: dict[int, list[int]] = {}
        for i in range(len(parent)):
            if published[i]:
                p = _nearest_published(i, parent, published)
                if p >= 0:
                    families.setdefault(p, []).append(i)
        equations = []
        for p, kids in families.items():
            row = np.zeros(len(order))
            if p in hidden:
                row[pos[p]] = 1.0
            for c in kids:
                if c in hidden:
                    row[pos[c]] = -1.0
            # parent - visible siblings: never exactly one hidden member.
            assert np.count_nonzero(row) != 1, f"family of u{p} has one hidden member"
            if row.any():
                equations.append(row)
        if not equations:
            continue
        a = np.array(equations)
        projector = np.linalg.pinv(a) @ a

        def derivable(v, projector=projector):
            return np.allclose(projector @ v, v, atol=1e-8)

        for u in order:
            e = np.zeros(len(order))
            e[pos[u]] = 1.0
            assert not derivable(e), f"hidden u{u} (n={n[u]}) can be recomputed"
        if len(order) <= 9:
            for size in range(1, len(order) + 1):
                for subset in itertools.combinations(order, size):
                    if any(
                        _is_ancestor(x, y, parent) or _is_ancestor(y, x, parent)
                        for x, y in itertools.combinations(subset, 2)
                    ):
                        continue
                    v = np.zeros(len(order))
                    v[[pos[u] for u in subset]] = 1.0
                    if derivable(v):
                        total = sum(n[u] for u in subset)
                        assert total >= min_n, (
                            f"hidden group {[f'u{u}' for u in subset]} of {total} < {min_n} "
                            "respondents is derivable"
                        )


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.integers(0, 30), min_size=1, max_size=8),
    st.integers(3, 10),
    st.integers(0, 3),
)
def test_parent_minus_visible_siblings_never_reveals_one_hidden_child(kids, min_n, extra):
    names = [f"P{i}" for i in range(len(kids))]
    table = pd.DataFrame(
        {
            "unit": ["F", *names],
            "parent": [None] + ["F"] * len(kids),
            "n": [sum(kids) + extra, *kids],
            "mean": 3.0,
        }
    )
    out = suppress(table, min_n=min_n, hierarchy="parent", unit_col="unit")
    hidden_kids = out.iloc[1:][out["suppressed"].iloc[1:]]
    if not out["suppressed"].iloc[0]:
        # The parent is visible: hidden children are 0 or >= 2 and their total is >= min_n.
        assert len(hidden_kids) != 1
        if len(hidden_kids):
            assert table.loc[hidden_kids.index, "n"].sum() >= min_n
    else:
        # A hidden parent with all children visible would equal their sum.
        assert len(hidden_kids) >= 1
