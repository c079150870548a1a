"""Indicators on synthetic data: they agree with direct computation, planted effects are
found, nulls mostly are not, comparability is respected, recompute is incremental, and
nothing leaves the gate resting on a small cell."""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd
import pytest
from statsmodels.stats.proportion import proportion_confint

from pipeline.config import Statistics
from pipeline.indicators import recompute
from pipeline.ingest import ingest_file
from pipeline.ingest.pseudonym import load_key
from pipeline.instruments import example_catalog
from pipeline.publish import Tree, gate
from pipeline.registry import example_registry
from pipeline.store import Store
from pipeline.store.tables import TABLES
from pipeline.synth import synthesize

#: whole synthetic universities or six-figure row counts: seconds each
pytestmark = pytest.mark.slow

CAT = example_catalog()
REG = example_registry()
STATS = Statistics()


def compute(path, full=False):
    with Store(path) as store:
        return recompute(store, REG, CAT, STATS, full=full)


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    root = tmp_path_factory.mktemp("ind")
    truth = synthesize(root / "exports", REG, CAT, seed=2026, scale=0.6)
    key = load_key(root / "key")
    path = root / "sapat.duckdb"
    with Store(path) as store:
        for meta in truth["files"]:
            r = ingest_file(root / "exports" / meta["file"], store, CAT, REG, key=key)
            assert r.status == "loaded"
    compute(path, full=True)
    con = duckdb.connect(str(path))
    yield root, truth, con, key
    con.close()


def _faculty_frame(con):
    f = con.execute("SELECT * FROM fct_student_experience WHERE NOT excluded").fetchdf()
    f["faculty"] = f["programme"].map(REG.faculty_of)
    return f


def test_item_indicators_match_a_direct_computation(db):
    _, _, con, _ = db
    f = _faculty_frame(con)
    ind = con.execute(
        "SELECT * FROM ind_items WHERE org_level = 'faculty' AND item = 'se_overall'"
    ).fetchdf()
    for row in ind.itertuples():
        v = f.loc[(f["wave"] == row.wave) & (f["faculty"] == row.unit), "se_overall"]
        v = v[v.between(1, 5)].astype(float)
        assert row.n == len(v)
        assert row.mean == pytest.approx(v.mean(), rel=1e-12)
        assert row.sd == pytest.approx(v.std(ddof=1), rel=1e-12)
        assert row.pct_positive == pytest.approx(100 * (v >= 4).mean(), rel=1e-12)
        # Wilson, with the finite population correction where the response rate allows it
        n_eff = row.n * (row.headcount - 1) / (row.headcount - row.n) if row.fpc else row.n
        assert row.fpc == (row.response_rate >= 0.5)
        lo, hi = proportion_confint((v >= 4).mean() * n_eff, n_eff, method="wilson")
        assert row.pct_positive_ci_low == pytest.approx(100 * lo, rel=1e-9)
        assert row.pct_positive_ci_high == pytest.approx(100 * hi, rel=1e-9)


def test_finite_population_correction_where_the_setting_says(db, tmp_path):
    """fpc = on: every unit with a headcount holding its respondents; the interval is
    Wilson with the effective n = n (N - 1) / (N - n); off: none."""
    import shutil

    root, _, con, _ = db
    path = tmp_path / "copy.duckdb"
    con.execute("CHECKPOINT")
    shutil.copyfile(root / "sapat.duckdb", path)
    for mode in ("on", "off"):
        with Store(path) as store:
            recompute(store, REG, CAT, Statistics(fpc=mode), full=True)
        c = duckdb.connect(str(path), read_only=True)
        ind = c.execute(
            "SELECT * FROM ind_items WHERE org_level = 'faculty' AND item = 'se_overall'"
        ).fetchdf()
        c.close()
        assert ind["fpc"].all() if mode == "on" else not ind["fpc"].any()
        for row in ind.itertuples():
            x = round(row.pct_positive * row.n / 100)
            n_eff = row.n * (row.headcount - 1) / (row.headcount - row.n) if mode == "on" else row.n
            lo, hi = proportion_confint(x / row.n * n_eff, n_eff, method="wilson")
            assert row.pct_positive_ci_low == pytest.approx(100 * lo, rel=1e-9)
            assert row.pct_positive_ci_high == pytest.approx(100 * hi, rel=1e-9)


def test_response_rates_use_headcounts(db):
    _, _, con, _ = db
    r = con.execute(
        "SELECT * FROM ind_response WHERE instrument = 'student_experience' AND org_level = 'faculty'"
    ).fetchdf()
    assert (r["response_rate"].between(0.05, 0.95)).all()
    assert ((r["respondents"] / r["headcount"]) == r["response_rate"]).all()


def test_planted_changes_are_found_after_correction(db):
    _, truth, con, _ = db
    for ch in truth["planted_changes"]:
        rows = con.execute(
            "SELECT test, p_adjusted, estimate, family_size FROM ind_changes WHERE org_level = "
            "'faculty' AND unit = ? AND item = ? AND wave = ?",
            [ch["unit"], ch["item"], ch["wave_to"]],
        ).fetchdf()
        assert set(rows["test"]) == {"two_proportion_z", "mann_whitney"}
        assert (rows["p_adjusted"] < 0.01).all(), rows
        assert (np.sign(rows["estimate"]) == np.sign(ch["delta_points"])).all()
        assert (rows["family_size"] > 1).all()


def test_null_changes_rarely_flagged(db):
    _, truth, con, _ = db
    planted = {(c["unit"], c["item"]) for c in truth["planted_changes"]}
    rows = con.execute(
        "SELECT unit, item, wave, family, p_adjusted FROM ind_changes WHERE org_level = 'faculty' "
        "AND instrument = 'student_experience' AND test = 'two_proportion_z'"
    ).fetchdf()
    rows = rows[[(u, i) not in planted for u, i in zip(rows["unit"], rows["item"], strict=True)]]
    families = rows.groupby(["wave", "family"])["p_adjusted"].min()
    share = float((families < 0.05).mean())
    # Holm keeps the chance of any false alarm in a family at 5 %; allow sampling error
    bound = 0.05 + 3 * np.sqrt(0.05 * 0.95 / len(families))
    assert share <= bound, (
        f"{share:.3f} of {len(families)} null families flagged (bound {bound:.3f})"
    )


def test_units_that_truly_differ_stand_out_against_the_rest(db):
    _, truth, con, _ = db
    for d in truth["unit_differences"]:
        if d["instrument"] != "student_experience":
            continue
        rows = con.execute(
            "SELECT wave, estimate, p_adjusted FROM ind_benchmark WHERE org_level = 'faculty' "
            "AND unit = ? AND item = 'se_overall' AND test = 'two_proportion_z'",
            [d["unit"]],
        ).fetchdf()
        assert len(rows) == len(truth["waves"])
        assert (np.sign(rows["estimate"]) == np.sign(d["latent_offset"])).all(), rows
        assert (rows["p_adjusted"] < 0.05).all(), rows


def test_changes_and_trends_only_join_comparable_items(db):
    _, _, con, _ = db
    old_only = {f.code for f in CAT.get("student_experience", "2024.1").items} - {
        f.code for f in CAT.get("student_experience", "2025.1").items
    }
    new_only = {f.code for f in CAT.get("student_experience", "2025.1").items} - {
        f.code for f in CAT.get("student_experience", "2024.1").items
    }
    assert old_only and new_only
    changed = set(
        con.execute("SELECT DISTINCT item FROM ind_changes WHERE wave = '2025-2026'").fetchdf()[
            "item"
        ]
    )
    trended = set(con.execute("SELECT DISTINCT item FROM ind_trends").fetchdf()["item"])
    assert not (old_only | new_only) & changed
    assert not (old_only | new_only) & trended
    assert "se_overall" in changed and "se_overall" in trended


def test_reliability_and_key_drivers(db):
    _, _, con, _ = db
    alpha = con.execute(
        "SELECT * FROM ind_reliability WHERE instrument = 'student_experience' "
        "AND scale = 'all_items'"
    ).fetchdf()
    assert len(alpha) == 3 and alpha["alpha"].between(0.75, 0.95).all()
    drivers = con.execute(
        "SELECT instrument, wave, sum(importance) AS total, max(r2) AS r2 FROM ind_drivers "
        "GROUP BY ALL"
    ).fetchdf()
    assert np.allclose(drivers["total"], drivers["r2"])


def test_graduate_outcomes_match_direct_counts(db):
    _, _, con, _ = db
    g = con.execute("SELECT wave, gr_emp_status FROM fct_graduate WHERE NOT excluded").fetchdf()
    scale = CAT.get("graduate").scale_of(CAT.get("graduate").field("gr_emp_status"))
    work = {scale.by_name("employed").code, scale.by_name("self_employed").code}
    seek = scale.by_name("unemployed_seeking").code
    out = con.execute(
        "SELECT wave, n, value FROM ind_outcomes WHERE measure = 'employment_rate' "
        "AND org_level = 'university'"
    ).fetchdf()
    for row in out.itertuples():
        s = g.loc[g["wave"] == row.wave, "gr_emp_status"]
        labour = s.isin(work | {seek})
        assert row.n == labour.sum()
        assert row.value == pytest.approx(100 * s.isin(work).sum() / labour.sum())


def test_no_visible_cell_rests_on_a_small_group(db):
    _, _, con, _ = db
    tree = Tree.of(REG)
    parent = tree.parents
    cells = {}
    for table in ("ind_items", "ind_dimensions", "ind_outcomes"):
        frame = con.execute(f"SELECT * FROM {table}").fetchdf()
        gated = cells[table] = gate(frame, TABLES[table], tree, 5)
        visible = gated[~gated["suppressed"]]
        assert (visible["n"] >= 5).all(), table
        hidden = gated[gated["suppressed"]]
        stat = [c for c in ("mean", "pct_positive", "value") if c in gated]
        assert hidden[stat].isna().all().all()
        # no family (a visible parent and its rows) has exactly one hidden child
        slices = [c for c in ("instrument", "wave", "item", "dimension", "measure") if c in gated]
        gated["parent"] = gated["unit"].map(parent)
        vis_units = set(zip(*[visible[c] for c in slices], visible["unit"], strict=True))
        fam = gated[gated["org_level"] != "teacher"].groupby([*slices, "parent"])
        for keys, rows in fam:
            if (*keys[:-1], keys[-1]) not in vis_units:
                continue
            assert rows["suppressed"].sum() != 1, (table, keys)
    changes = gate(
        con.execute("SELECT * FROM ind_changes").fetchdf(),
        TABLES["ind_changes"],
        tree,
        5,
        cells=cells,  # the ind_items cells each change rests on
    )
    shown = changes[~changes["suppressed"]]
    assert (shown[["n_from", "n_to"]] >= 5).all().all()


def test_recompute_is_incremental_and_equals_a_full_one(db, tmp_path):
    """Runs last: it closes the module's connection to load one more file."""
    root, truth, con, key = db
    before = con.execute(
        "SELECT * FROM ind_items WHERE instrument = 'student_experience' ORDER BY ALL"
    ).fetchdf()
    con.close()
    assert compute(root / "sapat.duckdb").empty  # nothing new
    new = synthesize(
        tmp_path / "more", REG, CAT, waves=["2026-2027"], scale=0.5, seed=9, instruments=["staff"]
    )
    with Store(root / "sapat.duckdb") as store:
        r = ingest_file(tmp_path / "more" / new["files"][0]["file"], store, CAT, REG, key=key)
        assert r.status == "loaded"
    touched = compute(root / "sapat.duckdb")
    con = duckdb.connect(str(root / "sapat.duckdb"))
    try:
        assert touched[["instrument", "wave"]].values.tolist() == [["staff", "2026-2027"]]
        after = con.execute(
            "SELECT * FROM ind_items WHERE instrument = 'student_experience' ORDER BY ALL"
        ).fetchdf()
        pd.testing.assert_frame_equal(before, after)
        inc = con.execute("SELECT * FROM ind_items ORDER BY ALL").fetchdf()
        con.close()
        compute(root / "sapat.duckdb", full=True)
        con = duckdb.connect(str(root / "sapat.duckdb"))
        full = con.execute("SELECT * FROM ind_items ORDER BY ALL").fetchdf()
        pd.testing.assert_frame_equal(inc, full)
        staff = con.execute(
            "SELECT count(*) FROM ind_changes WHERE instrument = 'staff' AND wave = '2026-2027'"
        ).fetchall()[0][0]
        assert staff > 0
    finally:
        con.close()
