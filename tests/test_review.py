"""The management-review pack: every section of 12.1 in each language, numbers equal to
what the read door returns, no hidden cell shown, sections without data marked, DOCX and
XLSX that open."""

from __future__ import annotations

import duckdb
import openpyxl
import pytest
from docx import Document
from small_university import WAVES
from small_university import build as build_university

from pipeline.ingest.pseudonym import load_key
from pipeline.locale import number, t
from pipeline.publish import OFFICE, Tree, read
from pipeline.review.pack import build
from pipeline.review.render import write
from pipeline.store import Store
from pipeline.views.objectives import evaluate

SECTIONS = ("a", "b", "c", "d", "e", "f", "g")

pytestmark = pytest.mark.slow  # builds and loads a small university first


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    yield build_university(
        tmp_path_factory.mktemp("review"),
        mp,
        seed=21,
        instruments=["student_experience", "graduate", "employer"],
    )
    mp.undo()


def _con(w):
    return duckdb.connect(str(w.settings.db_path), read_only=True)


@pytest.mark.parametrize("lang", ["ky", "ru", "en"])
def test_every_section_in_each_language_and_marked_where_sapat_has_no_data(ws, tmp_path, lang):
    pack = build(_con(ws), ws, year=WAVES[1], lang=lang, charts=False)
    out = write(pack, tmp_path / f"pack-{lang}.docx")
    doc = Document(str(out))
    headings = [p.text for p in doc.paragraphs if p.style.name.startswith("Heading")]
    for key in SECTIONS:
        assert any(h.startswith(t(f"review.{key}", lang)) for h in headings), (lang, key)
    mark = t("review.to_complete_mark", lang)
    research = next(h for h in headings if h.startswith(t("review.research", lang)))
    assert mark in research  # present and marked, never left out
    audits = next(h for h in headings if h.startswith(t("review.b", lang)))
    assert mark in audits  # no findings recorded in this store
    assert any(t("review.draft_mark", lang) in h for h in headings)  # g) is a draft
    text = "\n".join(p.text for p in doc.paragraphs)
    assert t("review.to_complete", lang) in text
    # a table of contents field and numbered tables
    xml = doc.element.xml
    assert "TOC \\o" in xml and "SEQ Table" in xml
    assert len(doc.tables) == len(pack.tables()) > 5


def test_objective_and_response_numbers_equal_the_read_door(ws):
    con, lang = _con(ws), "en"
    pack = build(con, ws, year=WAVES[1], lang=lang, charts=False)
    tree = Tree.of(ws.registry)
    judged = evaluate(
        con, ws.registry.objectives, viewer=OFFICE, tree=tree, min_n=5, lang=lang, wave=WAVES[1]
    )
    table = pack.sections[0].tables[0].frame
    values = table[t("col.value", lang)].tolist()
    want = [
        f"n < {ws.settings.min_n}" if s == "hidden" else number(v, lang)
        for s, v in zip(judged["status"], judged["value"], strict=True)
    ]
    assert values == want
    response = next(s for s in pack.sections if s.key == "response").tables[0].frame
    door = read(
        con,
        "ind_response",
        viewer=OFFICE,
        tree=tree,
        min_n=5,
        filters={"org_level": ["university", "faculty"], "wave": WAVES[1]},
    )
    rates = response[t("col.response_rate", lang)].tolist()
    assert rates == [
        "" if h else number(100 * r, lang)
        for h, r in zip(door["suppressed"], door["response_rate"], strict=True)
    ]


def test_no_hidden_cell_appears_and_the_workbook_is_formula_safe(ws, tmp_path):
    con = _con(ws)
    pack = build(con, ws, year=WAVES[1], lang="ru", charts=False)
    tree = Tree.of(ws.registry)
    hidden = read(
        con,
        "ind_dimensions",
        viewer=OFFICE,
        tree=tree,
        min_n=5,
        filters={"org_level": "faculty", "wave": WAVES[1]},
    )
    hidden = hidden[hidden["suppressed"].astype(bool)]
    feedback = next(s for s in pack.sections if s.key == "c")
    for sub in feedback.subsections:
        for tb in sub.tables:
            assert not tb.frame.isin(["nan", "None"]).any().any()
    if len(hidden):  # every hidden faculty cell reads "n < 5"
        assert any(
            (tb.frame == f"n < {ws.settings.min_n}").any().any()
            for sub in feedback.subsections
            for tb in sub.tables
        )
    out = write(pack, tmp_path / "pack.xlsx")
    wb = openpyxl.load_workbook(out)
    assert len(wb.sheetnames) == len(pack.tables()) + 1
    for sheet in wb.worksheets:
        for row in sheet.iter_rows(values_only=True):
            for v in row:
                assert not (isinstance(v, str) and v[:1] in "=+@"), v


def test_the_html_pack_is_one_self_contained_file(ws, tmp_path):
    pack = build(_con(ws), ws, year=WAVES[1], lang="ky", charts=False)
    out = write(pack, tmp_path / "pack.html")
    text = out.read_text("utf-8")
    assert text.startswith("<!doctype html>") and 'lang="ky"' in text
    assert "<script" not in text and "http://" not in text and "https://" not in text
    assert t("review.a", "ky") in text


def test_an_action_recorded_in_one_wave_shows_its_follow_up_test_in_the_next(ws):
    from scipy import stats

    s = ws.settings
    with Store(s.db_path, raw_dir=s.raw_dir, audit_key=load_key()) as store:
        action = store.add_action(
            unit="F-NHP",
            instrument="student_experience",
            indicator="se_overall",
            owner_process="PR-06",
            due_date="2025-06-30",
            description="Talk to every year group about what would make their studies better",
            opened_wave=WAVES[0],
        )
    con = _con(ws)
    earlier = build(con, ws, year=WAVES[0], lang="en", charts=False)
    first = next(s for s in earlier.sections if s.key == "f").data
    row0 = first[first["action_id"] == action].iloc[0]
    assert row0["text"] == t("review.f_wait", "en")  # nothing to compare yet
    pack = build(con, ws, year=WAVES[1], lang="ru", charts=False)
    follow = next(s for s in pack.sections if s.key == "f").data
    row = follow[follow["action_id"] == action].iloc[0]
    door = read(
        con,
        "ind_items",
        viewer=OFFICE,
        tree=Tree.of(ws.registry),
        min_n=5,
        filters={"unit": "F-NHP", "item": "se_overall", "wave": WAVES},
    ).set_index("wave")
    assert row["pct_from"] == door.loc[WAVES[0], "pct_positive"]
    assert row["pct_to"] == door.loc[WAVES[1], "pct_positive"]
    n0, n1 = int(door.loc[WAVES[0], "n"]), int(door.loc[WAVES[1], "n"])
    x0, x1 = round(row["pct_from"] * n0 / 100), round(row["pct_to"] * n1 / 100)
    pooled = (x0 + x1) / (n0 + n1)
    z = (x1 / n1 - x0 / n0) / (pooled * (1 - pooled) * (1 / n0 + 1 / n1)) ** 0.5
    assert row["test"] == "z" and row["p_value"] == pytest.approx(2 * stats.norm.sf(abs(z)))
    assert row["moved"] == (row["p_value"] < 0.05)
    assert "p = " in row["text"] and WAVES[0] in row["text"]
