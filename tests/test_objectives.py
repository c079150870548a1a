"""Quality objectives against the data: every objective per unit of its scope and per wave,
judged with its interval, numbers equal to what the read door returns, hidden cells never
shown, an objective without data reported as such; nonconformity candidates."""

from __future__ import annotations

import json

import duckdb
import pandas as pd
import pytest
from small_university import WAVES, build
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.publish import OFFICE, Tree, Viewer, ViewerRole, read
from pipeline.views.objectives import candidates, evaluate, status

runner = CliRunner()
pytestmark = pytest.mark.slow  # builds and loads a small university first


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    yield build(
        tmp_path_factory.mktemp("obj"), mp, seed=9, instruments=["student_experience", "graduate"]
    )
    mp.undo()


def _con(w):
    return duckdb.connect(str(w.settings.db_path), read_only=True)


def test_every_objective_is_judged_with_the_numbers_the_door_returns(ws):
    con, tree = _con(ws), Tree.of(ws.registry)
    goals = ws.registry.objectives
    judged = evaluate(con, goals, viewer=OFFICE, tree=tree, min_n=5, wave=WAVES[1])
    assert set(judged["objective"]) == {g["id"] for g in goals}  # none left out
    # staff, employer, teaching evaluation were not loaded: said, not hidden
    staff = judged[judged["instrument"] == "staff"]
    assert len(staff) and (staff["status"] == "no_data").all()
    obj1 = judged[judged["objective"] == "OBJ-01"]
    door = read(
        con,
        "ind_items",
        viewer=OFFICE,
        tree=tree,
        min_n=5,
        filters={"org_level": "faculty", "item": "se_overall", "wave": WAVES[1]},
    ).set_index("unit")
    assert set(obj1["unit"]) == set(door.index)
    for r in obj1.itertuples():
        d = door.loc[r.unit]
        if d["suppressed"]:
            assert r.status == "hidden" and r.value is None
            continue
        assert r.value == d["pct_positive"] and r.ci_low == d["pct_positive_ci_low"]
        want = status(d["pct_positive"], d["pct_positive_ci_low"], d["pct_positive_ci_high"], 75)
        assert r.status == want
    # a response-rate objective is judged on the rate in per cent
    rr = judged[judged["objective"] == "OBJ-05"].dropna(subset=["value"])
    assert len(rr) and rr["value"].between(0, 100).all() and rr["ci_low"].isna().all()


def test_a_dean_sees_the_objectives_of_their_own_faculty_only(ws):
    con, tree = _con(ws), Tree.of(ws.registry)
    dean = Viewer(ViewerRole.DEAN, ("F-NHP",))
    judged = evaluate(con, ws.registry.objectives, viewer=dean, tree=tree, min_n=5)
    units = set(judged["unit"].dropna())
    assert units and units <= tree.scope(dean)


def test_interval_rules():
    assert status(80, 76, 84, 75) == "met"
    assert status(74, 70, 78, 75) == "undecided"
    assert status(60, 55, 65, 75) == "not_met"
    assert status(40, None, None, 50) == "not_met"
    assert status(3, 2, 4, 5, "<=") == "met" and status(None, None, None, 5) == "hidden"


def test_candidates_are_objectives_not_met_and_significant_declines(ws):
    con, tree = _con(ws), Tree.of(ws.registry)
    found = candidates(
        con, ws.registry.objectives, viewer=OFFICE, tree=tree, min_n=5, wave=WAVES[1]
    )
    assert set(found["source"]) <= {"objective", "decline"}
    judged = evaluate(con, ws.registry.objectives, viewer=OFFICE, tree=tree, min_n=5)
    missed = judged[(judged["wave"] == WAVES[1]) & (judged["status"] == "not_met")]
    assert (found["source"] == "objective").sum() == len(missed)
    assert found["detail"].str.len().gt(0).all()


def test_sapat_objectives_on_screen_and_as_json(ws):
    r = runner.invoke(app, ["objectives", "--wave", WAVES[1], "--format", "json"])
    assert r.exit_code == 0, r.output
    rows = json.loads(r.stdout.strip().splitlines()[-1])
    assert {x["status"] for x in rows} <= {"met", "not_met", "undecided", "hidden", "no_data"}
    screen = runner.invoke(app, ["objectives", "--lang", "ru"], env={"COLUMNS": "160"})
    assert screen.exit_code == 0 and "не выполнена" in screen.output
    bad = runner.invoke(app, ["objectives", "--unit", "F-NHX"])
    assert bad.exit_code == 2 and "F-NHP" in bad.output
    assert pd.DataFrame(rows)["objective"].nunique() == len(ws.registry.objectives)
