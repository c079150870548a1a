"""Real survey files nobody on the project wrote (../shared/realdata, read where they are),
loaded through the `sapat` command exactly as docs/own-questionnaire.md tells an office to:
`sapat init`, `sapat instruments draft`, `sapat ingest`, `sapat indicators`. No row is lost,
identical answers are kept, and every figure equals a direct computation on the raw file
with the answer orders written out here by hand (independent of the draft's recognition).
"""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from scipy import stats
from statsmodels.stats.proportion import proportion_confint
from typer.testing import CliRunner

from pipeline.cli import app

REALDATA = Path(__file__).resolve().parents[2] / "shared" / "realdata"
runner = CliRunner()
TOL = 1e-9

#: PISA 2009 answer orders (low → high), from realdata/README.md
AGREE4 = ["Strongly disagree", "Disagree", "Agree", "Strongly agree"]
PISA_ORDERS = {
    "ST24": AGREE4,
    "ST25": [
        "Never or almost never",
        "A few times a year",
        "About once a month",
        "Several times a month",
        "Several times a week",
    ],
    "ST26": [
        "Never or almost never",
        "Several times a month",
        "Several times a week",
        "Several times a day",
    ],
    "ST27": ["Almost Never", "Sometimes", "Often", "Almost always"],
    "ST34": ["Strongly disagree", "Disagree", "Agree", "Strong agree"],
    "ST36": ["Never or hardly ever", "Some lessons", "Most lessons", "All lessons"],
    "ST37": ["Never or hardly ever", "Some lessons", "Most lessons", "All lessons"],
    "ST38": ["Never or hardly ever", "Some lessons", "Most lessons", "All lessons"],
    "ST39": [
        "Never",
        "A few times a year",
        "About once a month",
        "Several times a month",
        "Several times a week",
    ],
    "ST41": ["(1) Not useful at all", "(2)", "(3)", "(4)", "(5)", "(6) Very Useful"],
    "ST42": ["(1) Not useful at all", "(2)", "(3)", "(4)", "(5)", "(6) Very Useful"],
}
SASR_ORDER = ["Strongly Disagree", "Disagree", "Neither", "Agree", "Strongly Agree"]


def _source(name: str) -> Path:
    path = REALDATA / name
    if not path.exists():
        pytest.fail(f"the real data set {path} is missing: CI keeps ../shared beside the checkout")
    return path


def _invoke(*args, env=None):
    r = runner.invoke(app, [str(a) for a in args], env=env)
    assert r.exit_code == 0, r.output
    assert "Traceback" not in r.output
    return r


def _json(*args, env=None):
    return pd.DataFrame(
        json.loads(_invoke(*args, "--format", "json", env=env).stdout.strip().splitlines()[-1])
    )


def _codes(raw: pd.Series, order: list[str]) -> pd.Series:
    """Answer codes 1..k by the hand-written order, case-insensitively; anything else
    (blank, "Don't know") is not an answer."""
    table = {o.casefold(): i for i, o in enumerate(order, start=1)}
    return raw.str.casefold().map(table)


def _workspace(tmp: Path, monkeypatch, name: str) -> dict:
    monkeypatch.setenv("SAPAT_KEY_FILE", str(tmp / "key"))
    for var in ("SAPAT_DB", "SAPAT_MIN_N", "SAPAT_CONFIDENCE", "SAPAT_LANG", "SAPAT_WORKSPACE"):
        monkeypatch.delenv(var, raising=False)
    ws = tmp / "ws"
    _invoke("init", ws, "--name", name)
    return {"SAPAT_WORKSPACE": str(ws)}


@pytest.mark.slow
def test_pisa_2009_loads_whole_and_equals_a_direct_computation(tmp_path, monkeypatch):
    """66,690 students, 4-, 5- and 6-point scales, a "don't know" option, a label typo,
    one label in two spellings, no ids, 675 rows sharing their answer pattern."""
    csv = tmp_path / "pisa2009.csv"
    with (
        gzip.open(_source("pisa2009_north_america_items.csv.gz"), "rb") as src,
        csv.open("wb") as dst,
    ):
        shutil.copyfileobj(src, dst)
    env = _workspace(tmp_path, monkeypatch, "PISA 2009 North America")
    _invoke(
        "instruments",
        "draft",
        csv,
        "--form-id",
        "pisa_student",
        "--version",
        "2009",
        "--waves",
        "2009-2010",
        "--unit",
        "CNT",
        "--add-units",
        env=env,
    )
    _invoke("instruments", "check", env=env)
    r = _invoke("ingest", "--json", csv, "--wave", "2009-2010", env=env)
    res = json.loads(r.stdout.strip().splitlines()[-1])
    assert res["status"] == "loaded", res["errors"]
    assert res["rows_read"] == res["rows_loaded"] == 66_690
    assert res["rows_quarantined"] == res["rows_excluded"] == 0
    raw = pd.read_csv(csv, dtype=str, keep_default_na=False)
    items = _json("indicators", "--table", "items", "--level", "faculty", env=env)
    names = {"CANADA": "Canada", "MEXICO": "Mexico", "UNITED_STATES": "United States"}
    assert set(items["unit"]) == set(names) and len(items) == 3 * 80
    for row in items.itertuples():
        col = row.item.upper()
        v = _codes(raw.loc[raw["CNT"] == names[row.unit], col], PISA_ORDERS[col[:4]]).dropna()
        k = len(PISA_ORDERS[col[:4]])
        pos = int((1 + k) / 2) + 1  # above the midpoint: 3 of 1..4, 4 of 1..5, 4 of 1..6
        assert row.n == len(v), (row.unit, col)
        assert abs(row.mean - v.mean()) <= TOL * v.mean(), (row.unit, col)
        assert abs(row.sd - v.std(ddof=1)) <= TOL, (row.unit, col)
        assert abs(row.pct_positive - 100 * (v >= pos).mean()) <= TOL * 100, (row.unit, col)
        lo, hi = proportion_confint((v >= pos).sum(), len(v), method="wilson")
        assert abs(row.pct_positive_ci_low - 100 * lo) <= 1e-7
        assert abs(row.pct_positive_ci_high - 100 * hi) <= 1e-7
    # "Don't know what it is" is a declared non-answer, not a position on the scale
    dk = (raw["ST26Q06"] == "Don’t know what it is").sum()
    uni = _json(
        "indicators", "--table", "items", "--level", "university", "--item", "st26q06", env=env
    )
    assert int(uni["n"].iloc[0]) == (raw["ST26Q06"] != "").sum() - dk
    # Kruskal-Wallis across the three countries equals scipy's
    kw = _json("indicators", "--table", "kruskal", "--level", "faculty", env=env).set_index("item")
    for col in ("ST24Q01", "ST34Q01", "ST41Q01"):
        groups = [
            _codes(raw.loc[raw["CNT"] == c, col], PISA_ORDERS[col[:4]]).dropna()
            for c in ("Canada", "Mexico", "United States")
        ]
        h, p = stats.kruskal(*groups)
        assert abs(kw.loc[col.lower(), "statistic"] - h) <= TOL * h
        assert abs(kw.loc[col.lower(), "p_value"] - p) <= 1e-12 + TOL * p


@pytest.mark.slow
def test_sasr_loads_whole_and_alpha_equals_the_textbook_formula(tmp_path, monkeypatch):
    """860 students, 63 five-point items, 18 % of rows identical to another: all kept."""
    src = _source("sasr_academic_self_regulation.csv")
    env = _workspace(tmp_path, monkeypatch, "SASR study")
    _invoke(
        "instruments",
        "draft",
        src,
        "--form-id",
        "sasr",
        "--version",
        "2011",
        "--waves",
        "2010-2011",
        env=env,
    )
    r = _invoke("ingest", "--json", src, "--wave", "2010-2011", env=env)
    res = json.loads(r.stdout.strip().splitlines()[-1])
    assert res["rows_read"] == res["rows_loaded"] == 860 and res["rows_excluded"] == 0
    assert res["flag_counts"]["identical_answers"] > 0
    raw = pd.read_csv(src, dtype=str, keep_default_na=False)
    codes = pd.DataFrame({c: _codes(raw[c], SASR_ORDER) for c in raw.columns})
    items = _json("indicators", "--table", "items", "--level", "university", env=env)
    for row in items.itertuples():
        v = codes[row.item.upper()].dropna()
        assert row.n == len(v)
        assert abs(row.mean - v.mean()) <= TOL * v.mean()
        assert abs(row.pct_positive - 100 * (v >= 4).mean()) <= TOL * 100
    rel = _json("indicators", "--table", "reliability", env=env).set_index("scale")
    full = codes.dropna().astype(float)
    k = full.shape[1]
    alpha = k / (k - 1) * (1 - full.var(ddof=1).sum() / full.sum(axis=1).var(ddof=1))
    assert int(rel.loc["all_items", "n"]) == len(full)
    assert abs(rel.loc["all_items", "alpha"] - alpha) <= TOL
    resp = _json("indicators", "--table", "response", "--level", "university", env=env)
    assert int(resp["respondents"].iloc[0]) == 860
    assert pd.isna(resp["response_rate"].iloc[0])  # no headcount declared
