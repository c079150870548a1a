"""The office's own questionnaire, from data files only: a new form_id, its own university,
4-point, 7-point and 0-10 scales with declared "not applicable" and "don't know", an outcome
measure, wide and long exports with and without respondent ids. Loaded and computed through
the `sapat` command; every indicator and test equals a direct computation (numpy, scipy,
statsmodels) to 1e-9, and no file of the package is written."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import proportion_confint, proportions_ztest
from typer.testing import CliRunner
from workbooks import rating_choices, write_csv, write_versions, write_workbook

from pipeline.cli import app
from pipeline.config import PACKAGE_DIR
from pipeline.methods.weighting import weighted_estimates
from pipeline.workspace import init_workspace

runner = CliRunner()
TOL = 1e-9
WAVES = ["2023-2024", "2024-2025", "2025-2026"]
FACULTIES = {"FA": ["PA1", "PA2"], "FB": ["PB1", "PB2"], "FC": ["PC1"]}
LEVEL = {"PA1": "bachelor", "PA2": "master", "PB1": "bachelor", "PB2": "bachelor", "PC1": "master"}
TEACHING, FACILITIES = ["t1", "t2", "t3", "t4"], ["f1", "f2", "f3"]
ITEMS = [*TEACHING, *FACILITIES, "nps"]
AGREE = {1: "Strongly disagree", 2: "Disagree", 3: "Agree", 4: "Strongly agree"}
#: scale of each item: (low, high, positive_from, negative_to)
SCALE = {
    **{i: (1, 4, 3, 2) for i in TEACHING},
    **{i: (1, 7, 5, 3) for i in FACILITIES},
    "nps": (0, 10, 9, 6),
}
NA, DK = -2, -3  # the declared non-answers, as generated here


def _package_files() -> dict[str, str]:
    return {
        str(p): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(PACKAGE_DIR.rglob("*"))
        if p.is_file() and "__pycache__" not in str(p)
    }


def _workspace(root: Path) -> Path:
    ws = init_workspace(root, None, name="Test University")
    decl = ws / "declarations"
    units = [["U", "", "university", "", "", "", "Test University", "", "no"]]
    for fac, progs in FACULTIES.items():
        units.append([fac, "U", "faculty", "", "", "", f"Faculty {fac}", "", "no"])
        for p in progs:
            units.append([p, fac, "programme", LEVEL[p], "", "", f"Programme {p}", "", "no"])
    write_csv(
        decl / "org_units.csv",
        [
            "code",
            "parent_code",
            "kind",
            "level",
            "name_ky",
            "name_ru",
            "name_en",
            "city",
            "illustrative",
        ],
        units,
    )
    heads = []
    for w in WAVES:
        for p in LEVEL:
            # PC1's headcount is out of date (below its respondents): flagged, not fatal
            heads.append([w, p, LEVEL[p], "students", 40 if p == "PC1" else 260])
    write_csv(
        decl / "headcounts.csv", ["wave", "unit_code", "level", "population", "headcount"], heads
    )
    survey = [
        {
            "type": "select_one_from_file units.csv",
            "name": "fac",
            "label": "Faculty",
            "sapat_role": "context",
            "context": "unit",
            "required": "yes",
        },
        {
            "type": "select_one_from_file programmes.csv",
            "name": "prog",
            "label": "Programme",
            "sapat_role": "context",
            "context": "programme",
            "required": "yes",
        },
        *[
            {
                "type": "select_one agree4",
                "name": i,
                "label": f"Teaching statement {i}",
                "sapat_role": "item",
                "dimension": "teaching",
                "reverse": "yes" if i == "t4" else "",
            }
            for i in TEACHING
        ],
        *[
            {
                "type": "select_one sat7",
                "name": i,
                "label": f"Facilities {i}",
                "sapat_role": "item",
                "dimension": "facilities",
            }
            for i in FACILITIES
        ],
        {
            "type": "select_one nps11",
            "name": "nps",
            "label": "Would you recommend us (0-10)?",
            "sapat_role": "item",
            "dimension": "overall",
        },
        {
            "type": "select_one yesno",
            "name": "rec",
            "label": "Would you study here again?",
            "sapat_role": "outcome",
        },
        {"type": "text", "name": "remarks", "label": "Remarks", "sapat_role": "comment"},
    ]
    choices = [
        *rating_choices("agree4", 1, 4, AGREE, {"0": "Not applicable"}),
        *rating_choices("sat7", 1, 7),
        *rating_choices("nps11", 0, 10, missing={"dk": "Don't know"}),
        {"list_name": "yesno", "name": "yes", "label": "Yes"},
        {"list_name": "yesno", "name": "no", "label": "No"},
    ]
    scales = [
        {"list_name": "agree4", "kind": "ordinal", "positive_from": 3, "not_applicable": "0"},
        {"list_name": "sat7", "kind": "ordinal"},
        {
            "list_name": "nps11",
            "kind": "ordinal",
            "positive_from": 9,
            "negative_to": 6,
            "dont_know": "dk",
        },
        {"list_name": "yesno", "kind": "nominal"},
    ]
    dims = [
        {"code": "teaching", "label": "Teaching"},
        {"code": "facilities", "label": "Facilities"},
        {"code": "overall", "label": "Overall", "kind": "overall"},
    ]
    measures = [
        {
            "code": "pct_again",
            "field": "rec",
            "statistic": "share",
            "success": "yes",
            "label": "Would study here again (%)",
        }
    ]
    write_workbook(
        ws / "instruments" / "course_feedback__2026.1.xlsx",
        form_id="course_feedback",
        version="2026.1",
        survey=survey,
        choices=choices,
        scales=scales,
        dimensions=dims,
        measures=measures,
        settings={"population": "students"},
    )
    write_versions(
        ws / "instruments",
        {
            "course_feedback": [
                {"version": "2026.1", "workbook": "course_feedback__2026.1.xlsx", "waves": WAVES}
            ]
        },
    )
    return ws


def _answers(rng, n: int, wave: int) -> pd.DataFrame:
    """Respondents with a latent satisfaction; 30 % share one answer pattern (all top)."""
    prog = rng.choice(list(LEVEL), n, p=[0.25, 0.15, 0.25, 0.2, 0.15])
    fac = np.array([next(f for f, ps in FACULTIES.items() if p in ps) for p in prog])
    latent = (
        rng.normal(0, 1, n)
        + np.where(fac == "FA", 0.4, 0)
        - np.where((fac == "FB") & (wave == 2), 0.9, 0)
    )  # planted: FB falls in the last wave
    out = {"fac": fac, "prog": prog}
    for item in ITEMS:
        low, high, _, _ = SCALE[item]
        sign = -1 if item == "t4" else 1
        x = sign * latent + rng.normal(0, 0.8, n)
        cuts = np.quantile(rng.normal(0, 1.28, 50_000), np.linspace(0, 1, high - low + 2)[1:-1])
        v = (low + np.searchsorted(cuts, x)).astype(float)
        v[rng.random(n) < 0.04] = np.nan
        if item == "t3":
            v[rng.random(n) < 0.1] = NA
        if item == "nps":
            v[rng.random(n) < 0.05] = DK
        out[item] = v
    frame = pd.DataFrame(out)
    same = rng.random(n) < 0.3
    for item in ITEMS:
        frame.loc[same, item] = SCALE[item][1] if item != "t4" else SCALE[item][0]
    frame["rec"] = np.where(latent + rng.normal(0, 1, n) > 0, "yes", "no")
    frame.loc[rng.random(n) < 0.05, "rec"] = None
    frame["remarks"] = np.where(rng.random(n) < 0.1, "More practice, please", None)
    return frame


def _render(frame: pd.DataFrame) -> pd.DataFrame:
    """Answers as a survey platform writes them: labels for the 4-point items, numbers
    for the others, the non-answers in words, faculties by name."""
    out = frame.copy().astype(object)
    for item in ITEMS:

        def text(v, item=item):
            if pd.isna(v):
                return ""
            if v == NA:
                return "Not applicable"
            if v == DK:
                return "Don't know"
            return AGREE[int(v)] if item in TEACHING else str(int(v))

        out[item] = frame[item].map(text)
    out["fac"] = frame["fac"].map(lambda f: f"Faculty {f}")
    return out.where(out.notna(), "")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("own")
    before = _package_files()
    ws = _workspace(root / "ws")
    mp = pytest.MonkeyPatch()
    mp.setenv("SAPAT_WORKSPACE", str(ws))
    mp.setenv("SAPAT_KEY_FILE", str(root / "key"))
    for var in ("SAPAT_DB", "SAPAT_MIN_N", "SAPAT_CONFIDENCE", "SAPAT_LANG"):
        mp.delenv(var, raising=False)
    rng = np.random.default_rng(42)
    data, files = {}, []
    for k, wave in enumerate(WAVES):
        frame = _answers(rng, 700, k)
        data[wave] = frame
        files.append(
            write_csv(
                root / "exports" / wave / "course_feedback.csv",
                list(frame.columns),
                _render(frame).values.tolist(),
            )
        )
    r = runner.invoke(app, ["ingest", "--json", *map(str, files)])
    assert r.exit_code == 0, r.output
    results = [json.loads(line) for line in r.stdout.strip().splitlines()]
    r = runner.invoke(app, ["indicators", "--all", "--format", "json", "--level", "faculty"])
    assert r.exit_code == 0, r.output
    yield {
        "root": root,
        "ws": ws,
        "data": data,
        "files": files,
        "results": results,
        "before": before,
    }
    mp.undo()


def _table(name: str, *args: str) -> pd.DataFrame:
    r = runner.invoke(app, ["indicators", "--table", name, "--format", "json", *args])
    assert r.exit_code == 0, r.output
    return pd.DataFrame(json.loads(r.stdout.strip().splitlines()[-1]))


def _valid(v: pd.Series) -> np.ndarray:
    v = v.dropna()
    return v[v >= 0].to_numpy(dtype=float)


def _close(a, b, what=""):
    assert abs(a - b) <= TOL * max(1.0, abs(b)), (what, a, b)


def test_no_row_lost_and_no_package_file_written(world):
    for res, wave in zip(world["results"], WAVES, strict=True):
        assert res["status"] == "loaded", res["errors"]
        assert res["rows_read"] == res["rows_loaded"] == len(world["data"][wave])
        assert res["rows_quarantined"] == res["rows_excluded"] == 0
        # 30 % share one pattern: flagged for a look, never excluded
        assert res["flag_counts"].get("identical_answers", 0) > 0.25 * res["rows_read"]
    assert _package_files() == world["before"]


def test_items_on_every_scale_equal_a_direct_computation(world):
    items = _table("items", "--level", "faculty")
    heads = {
        w: {f: sum(40 if p == "PC1" else 260 for p in ps) for f, ps in FACULTIES.items()}
        for w in WAVES
    }
    for row in items.itertuples():
        frame = world["data"][row.wave]
        resp = (frame["fac"] == row.unit).sum()
        v = _valid(frame.loc[frame["fac"] == row.unit, row.item])
        low, high, pos, neg = SCALE[row.item]
        assert (row.scale_low, row.scale_high, row.positive_from, row.negative_to) == (
            low,
            high,
            pos,
            neg,
        )
        assert row.n == len(v)
        _close(row.mean, v.mean(), "mean")
        _close(row.sd, v.std(ddof=1), "sd")
        _close(row.pct_positive, 100 * (v >= pos).mean(), "pct_positive")
        _close(row.pct_negative, 100 * (v <= neg).mean(), "pct_negative")
        for code in range(low, high + 1):
            _close(getattr(row, f"pct_{code}"), 100 * (v == code).mean(), f"pct_{code}")
        rate = resp / heads[row.wave][row.unit]
        if rate > 1:  # FC: PC1's headcount is below its respondents
            assert np.isnan(row.response_rate) and "headcount_below" in row.reliability_reason
        else:
            _close(row.response_rate, rate, "response_rate")
        fpc = 0.5 <= rate <= 1  # the workspace's fpc = auto
        assert bool(row.fpc) == fpc
        n_eff = (
            len(v) * (heads[row.wave][row.unit] - 1) / (heads[row.wave][row.unit] - len(v))
            if fpc
            else len(v)
        )
        lo, hi = proportion_confint((v >= pos).mean() * n_eff, n_eff, method="wilson")
        _close(row.pct_positive_ci_low, 100 * lo, "ci_low")
        _close(row.pct_positive_ci_high, 100 * hi, "ci_high")
    assert set(items["item"]) == set(ITEMS)


def test_a_headcount_below_its_respondents_is_flagged_not_fatal(world):
    resp = _table("response", "--level", "programme")
    pc1 = resp[resp["unit"] == "PC1"]
    assert len(pc1) == len(WAVES)
    assert pc1["response_rate"].isna().all()
    assert pc1["reliability_reason"].str.contains("headcount_below_respondents").all()
    assert resp.loc[resp["unit"] != "PC1", "response_rate"].notna().all()


def test_dimension_scores_flip_reverse_items_on_their_own_scale(world):
    dims = _table("dimensions", "--level", "faculty")
    for row in dims.itertuples():
        frame = world["data"][row.wave]
        frame = frame[frame["fac"] == row.unit]
        items = {"teaching": TEACHING, "facilities": FACILITIES, "overall": ["nps"]}[row.dimension]
        x = frame[items].where(frame[items] >= 0).astype(float)
        low, high, pos, _ = SCALE[items[0]]
        if "t4" in x:
            x["t4"] = low + high - x["t4"]
        enough = x.notna().sum(axis=1) >= len(items) / 2
        score = x.mean(axis=1)[enough].to_numpy()
        assert row.n == len(score)
        _close(row.mean, score.mean(), "dimension mean")
        _close(row.sd, score.std(ddof=1), "dimension sd")
        _close(row.pct_positive, 100 * (score >= pos).mean(), "dimension % positive")


def test_alpha_equals_the_textbook_formula(world):
    rel = _table("reliability")
    row = rel[(rel["wave"] == WAVES[0]) & (rel["scale"] == "teaching")].iloc[0]
    x = world["data"][WAVES[0]][TEACHING]
    x = x.where(x >= 0).dropna().astype(float)
    x["t4"] = 1 + 4 - x["t4"]  # reverse-coded
    k = x.shape[1]
    alpha = k / (k - 1) * (1 - x.var(ddof=1).sum() / x.sum(axis=1).var(ddof=1))
    assert row["n"] == len(x)
    _close(row["alpha"], alpha, "alpha")


def test_kruskal_wallis_at_every_level_equals_scipy(world):
    kw = pd.concat([_table("kruskal", "--level", lev) for lev in ("faculty", "programme")])
    assert {"faculty", "programme"} <= set(kw["org_level"])
    for level, col in (("faculty", "fac"), ("programme", "prog")):
        for item in ("t1", "f2", "nps"):
            row = kw[(kw["org_level"] == level) & (kw["item"] == item) & (kw["wave"] == WAVES[1])]
            frame = world["data"][WAVES[1]]
            groups = [_valid(g[item]) for _, g in frame.groupby(col)]
            h, p = stats.kruskal(*groups)
            _close(row["statistic"].iloc[0], h, f"H {level} {item}")
            _close(row["p_value"].iloc[0], p, f"p {level} {item}")


def test_changes_equal_statsmodels_and_find_the_planted_fall(world):
    ch = _table("changes", "--level", "faculty", "--wave", WAVES[2])
    z = ch[ch["test"] == "two_proportion_z"]
    a, b = world["data"][WAVES[1]], world["data"][WAVES[2]]
    for item in ITEMS:
        pos = SCALE[item][2]
        rows = z[z["item"] == item].set_index("unit").loc[list(FACULTIES)]
        ps = []
        for fac in FACULTIES:
            va, vb = _valid(a.loc[a["fac"] == fac, item]), _valid(b.loc[b["fac"] == fac, item])
            stat, p = proportions_ztest([(vb >= pos).sum(), (va >= pos).sum()], [len(vb), len(va)])
            _close(rows.loc[fac, "statistic"], stat, f"z {item} {fac}")
            _close(rows.loc[fac, "p_value"], p, f"p {item} {fac}")
            ps.append(p)
        holm = multipletests(ps, method="holm")[1]
        for fac, adj in zip(FACULTIES, holm, strict=True):
            _close(rows.loc[fac, "p_adjusted"], adj, f"holm {item} {fac}")
    mw = ch[(ch["test"] == "mann_whitney") & (ch["item"] == "f1")].set_index("unit")
    for fac in FACULTIES:
        va, vb = _valid(a.loc[a["fac"] == fac, "f1"]), _valid(b.loc[b["fac"] == fac, "f1"])
        res = stats.mannwhitneyu(vb, va, use_continuity=True, method="asymptotic")
        _close(mw.loc[fac, "p_value"], res.pvalue, f"mann-whitney {fac}")
    fb = z[(z["unit"] == "FB") & (z["item"].isin(FACILITIES))]
    assert (fb["p_adjusted"] < 0.01).all() and (fb["estimate"] < 0).all()


def test_outcome_measure_as_declared(world):
    out = _table("outcomes", "--level", "university")
    for row in out.itertuples():
        rec = world["data"][row.wave]["rec"].dropna()
        assert row.measure == "pct_again" and row.n == len(rec)
        _close(row.value, 100 * (rec == "yes").mean(), "pct_again")


def test_poststratified_estimates_equal_the_respondent_level_computation(world):
    """Faculty × study level cells; PC1's out-of-date headcount makes the FC × master
    cell impossible to weight: it is left out (with a note), not weighted wrongly."""
    w = _table("weighted")
    frame = world["data"][WAVES[0]].assign(level=lambda f: f["prog"].map(LEVEL))
    frame = frame.rename(columns={"fac": "faculty"})
    frame = frame[~((frame["faculty"] == "FC") & (frame["level"] == "master"))]
    cells = {(f, LEVEL[p]) for f, ps in FACULTIES.items() for p in ps} - {("FC", "master")}
    heads = pd.DataFrame(
        [(f, lev, sum(260 for p in FACULTIES[f] if LEVEL[p] == lev)) for f, lev in sorted(cells)],
        columns=["faculty", "level", "headcount"],
    )
    answers = {i: frame[i].where(frame[i] >= 0) for i in ITEMS}
    direct = weighted_estimates(
        frame.assign(**answers),
        ITEMS,
        cells=["faculty", "level"],
        headcounts=heads,
        positive_from={i: SCALE[i][2] for i in ITEMS},
    )
    got = w[w["wave"] == WAVES[0]].set_index(["item", "design", "estimate", "method"])
    assert len(got) == len(direct) > 0
    for r in direct.itertuples():
        g = got.loc[(r.item, r.design, r.estimate, r.method)]
        _close(g["value"], r.value, f"{r.item} {r.design} {r.estimate}")
        _close(g["se"], r.se, f"se {r.item} {r.design} {r.estimate}")
    notes = _table("unavailable")
    assert any("FC × master" in n for n in notes["reason"])


@pytest.mark.slow
def test_rerunning_with_other_choices_never_fails(world):
    for args in (
        ["--all"],
        ["--all", "--ci-method", "clopper_pearson"],
        ["--confidence", "0.9"],
        ["--adjust", "bh"],
        [],
    ):
        r = runner.invoke(app, ["indicators", *args, "--format", "json"])
        assert r.exit_code == 0, (args, r.output)
    items = _table("items", "--level", "university", "--confidence", "0.9")
    assert (items["confidence"] == 0.9).all()


def test_a_reexport_of_the_same_submissions_loads_as_already_loaded(world, tmp_path):
    src = world["files"][0]
    frame = pd.read_csv(src, dtype=str, keep_default_na=False)
    again = tmp_path / WAVES[0] / "course_feedback (reexport).xlsx"
    again.parent.mkdir(parents=True)
    frame.sample(frac=1, random_state=1).to_excel(again, index=False)  # other order, other format
    r = runner.invoke(app, ["ingest", "--json", str(again)])
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout.strip().splitlines()[-1])
    assert res["status"] == "duplicate" and res["rows_loaded"] == 0
    assert any("re-export" in n for n in res["notes"]), res["notes"]


@pytest.mark.parametrize("with_ids", [True, False], ids=["with-ids", "without-ids"])
def test_long_format_exports(world, tmp_path, with_ids):
    """One row per answer. With a respondent id the rows are gathered per respondent and
    every indicator equals the wide load's; without one, item indicators still do and what
    needs a respondent is reported as not available."""
    ws = _workspace(tmp_path / "ws")
    frame = _render(world["data"][WAVES[0]]).reset_index().rename(columns={"index": "rid"})
    long = frame.melt(
        id_vars=["rid", "fac", "prog"],
        value_vars=[*ITEMS, "rec"],
        var_name="question",
        value_name="answer",
    )
    long = long[long["answer"].fillna("") != ""].sort_values(["rid", "question"])
    if not with_ids:
        long = long.drop(columns="rid")
    path = write_csv(tmp_path / WAVES[0] / "long.csv", list(long.columns), long.values.tolist())
    mapping = tmp_path / "long.yaml"
    mapping.write_text(
        "layout: long\n"
        + ("respondent: rid\n" if with_ids else "")
        + "question: question\nanswer: answer\n",
        "utf-8",
    )
    env = {"SAPAT_WORKSPACE": str(ws)}
    r = runner.invoke(app, ["ingest", "--json", "--mapping", str(mapping), str(path)], env=env)
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout.strip().splitlines()[-1])
    assert res["status"] == "loaded" and res["rows_quarantined"] == 0, res
    assert res["rows_loaded"] == (len(frame) if with_ids else len(long))
    r = runner.invoke(
        app, ["indicators", "--table", "items", "--level", "faculty", "--format", "json"], env=env
    )
    got = pd.DataFrame(json.loads(r.stdout.strip().splitlines()[-1]))
    want = _table("items", "--level", "faculty", "--wave", WAVES[0])
    cols = ["unit", "item", "n", "mean", "sd", "pct_positive"]
    pd.testing.assert_frame_equal(
        got[cols].sort_values(["unit", "item"]).reset_index(drop=True),
        want[cols].sort_values(["unit", "item"]).reset_index(drop=True),
        rtol=TOL,
    )
    r = runner.invoke(app, ["indicators", "--table", "unavailable", "--format", "json"], env=env)
    unavailable = [
        u
        for u in json.loads(r.stdout.strip().splitlines()[-1])
        if u["table_name"] != "ind_weighted" or "respondent id" in u["reason"]
    ]
    if with_ids:
        assert unavailable == []
        assert got["respondents"].notna().all()
    else:
        tables = {u["table_name"] for u in unavailable}
        assert {"ind_dimensions", "ind_reliability", "ind_drivers"} <= tables
        assert all("no respondent id" in u["reason"] for u in unavailable)
        assert got["respondents"].isna().all()
