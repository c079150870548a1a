"""Teaching evaluation per teacher × discipline (``ind_teaching``): computed from the answer
counts by the methods of ind_items, gated with the teacher's row of ind_items as the parent
of the teacher's disciplines (no hidden discipline is the teacher's total minus the visible
ones), scoped to the reader, and shown on the dashboard's "Teaching evaluation" page."""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd
import pytest

from dashboards.views import Context, Filters, suppressed_text, teaching
from pipeline.config import Statistics
from pipeline.indicators import compute as ic
from pipeline.instruments import example_catalog
from pipeline.locale import t
from pipeline.publish import OFFICE, Tree, Viewer, ViewerRole, gate, read
from pipeline.registry import example_registry
from pipeline.store import Store
from pipeline.store.tables import TABLES
from pipeline.views.indicators import in_context

CAT, REG = example_catalog(), example_registry()
TREE = Tree.of(REG)
INST = CAT.get("teaching_evaluation")
ITEMS = ("te_overall", "te_q01")
NOW, BEFORE = "2025-2026", "2024-2025"
TEACHING = TABLES["ind_teaching"]
#: (wave, teacher, discipline, answers to each item); T0001 and T0002 teach in F-NHP,
#: T0048 in KKHPI, T0119 in KKELT
CELLS = [
    (NOW, "T0001", "C-NHP-PRIM-B-05", 20),
    (NOW, "T0001", "C-NHP-PRIM-B-04", 3),  # too few: hides its sibling too
    (NOW, "T0002", "C-NHP-PRIM-B-04", 12),
    (NOW, "T0002", "C-NHP-PRIM-B-05", 15),
    (NOW, "T0002", None, 8),  # answers naming no discipline: a part of their own
    (NOW, "T0048", "C-KKH-X-01", 30),  # one discipline: the teacher's row itself
    (NOW, "T0119", "C-KKE-X-01", 4),  # the teacher's row is hidden too
    (BEFORE, "T0048", "C-KKH-X-01", 25),
]


def _answers(n: int, shift: int) -> list[int]:
    """n answers on 1..5, spread so that the cells differ."""
    return [1 + (k * 3 + shift) % 5 for k in range(n)]


def _counts() -> pd.DataFrame:
    rows = []
    for i, (wave, teacher, discipline, n) in enumerate(CELLS):
        for j, item in enumerate(ITEMS):
            for answer in _answers(n, i + j):
                rows.append((wave, teacher, discipline, item, answer))
    frame = pd.DataFrame(rows, columns=["wave", "teacher", "discipline", "item", "answer"])
    return (
        frame.assign(_d=frame["discipline"].fillna("\x00"))
        .groupby(["wave", "teacher", "_d", "item", "answer"], as_index=False)
        .size()
        .rename(columns={"size": "count", "_d": "discipline"})
        .assign(discipline=lambda f: f["discipline"].replace("\x00", None))
    )


@pytest.fixture(scope="module")
def con(tmp_path_factory):
    """A store holding the teacher rows of ind_items and ind_teaching of CELLS, computed
    by the pipeline's own functions from the same answer counts, written by the store."""
    stats = Statistics()
    parts = _counts()
    waves = {w: INST for w in (BEFORE, NOW)}
    teachers = (
        parts.groupby(["wave", "teacher", "item", "answer"], as_index=False)["count"]
        .sum()
        .rename(columns={"teacher": "unit"})
        .assign(org_level="teacher")
    )
    resp = (
        parts[parts["item"] == ITEMS[0]]
        .groupby(["wave", "teacher"], as_index=False)["count"]
        .sum()
        .rename(columns={"teacher": "unit", "count": "respondents"})
        .assign(org_level="teacher")
    )
    resp_table = ic.response_table(INST, resp, None, stats)
    path = tmp_path_factory.mktemp("teaching") / "s.duckdb"
    keys = pd.DataFrame({"instrument": INST.id, "wave": [BEFORE, NOW]})
    with Store(path) as store:
        store.write_declarations(CAT, REG.units, REG.disciplines)
        store.replace_rows("ind_items", ic.item_table(waves, teachers, resp_table, stats), keys)
        store.replace_rows("ind_teaching", ic.teaching_table(waves, parts, stats), keys)
    c = duckdb.connect(str(path), read_only=True)
    yield c
    c.close()


def _read(con, viewer=OFFICE, min_n=5, **filters) -> pd.DataFrame:
    return read(con, "ind_teaching", viewer=viewer, tree=TREE, min_n=min_n, filters=filters)


def _cell(frame: pd.DataFrame, teacher: str, discipline: str | None, item=ITEMS[0]):
    rows = frame[(frame["teacher"] == teacher) & (frame["item"] == item)]
    rows = rows[
        rows["discipline"].isna() if discipline is None else rows["discipline"] == discipline
    ]
    assert len(rows) == 1, (teacher, discipline)
    return rows.iloc[0]


# ------------------------------------------------------------------ the table
def test_a_teachers_disciplines_add_up_to_their_row_of_ind_items(con):
    parts = con.execute(
        "SELECT wave, teacher, item, sum(n) AS n FROM ind_teaching GROUP BY ALL ORDER BY ALL"
    ).fetchdf()
    whole = con.execute(
        "SELECT wave, unit AS teacher, item, n FROM ind_items WHERE org_level = 'teacher' "
        "ORDER BY ALL"
    ).fetchdf()
    assert parts.values.tolist() == whole.values.tolist()
    assert con.execute("SELECT count(*) FROM ind_teaching").fetchone()[0] == len(CELLS) * 2


def test_a_single_discipline_has_the_figures_and_interval_of_its_teachers_row(con):
    """Same counts, same methods (describe_counts with the workspace's interval)."""
    cols = ["n", "mean", "sd", "x_positive", "pct_positive", "pct_positive_ci_low"]
    cols += ["pct_positive_ci_high", "mean_ci_low", "mean_ci_high", "ci_method", "confidence"]
    part = con.execute(
        f"SELECT {', '.join(cols)} FROM ind_teaching WHERE teacher = 'T0048' ORDER BY wave, item"
    ).fetchdf()
    whole = con.execute(
        f"SELECT {', '.join(cols)} FROM ind_items WHERE unit = 'T0048' ORDER BY wave, item"
    ).fetchdf()
    pd.testing.assert_frame_equal(part, whole)
    assert (part["ci_method"] == "wilson").all()
    labels = con.execute(
        "SELECT DISTINCT version, dimension, scale_low, scale_high, positive_from "
        "FROM ind_teaching WHERE item = 'te_q01'"
    ).fetchall()
    assert labels == [(INST.version, "teaching_quality", 1, 5, 4)]


# ------------------------------------------------------------------- the gate
def test_a_small_discipline_hides_its_sibling_so_the_teachers_total_gives_nothing_away(con):
    items = read(
        con,
        "ind_items",
        viewer=OFFICE,
        tree=TREE,
        min_n=5,
        filters={"org_level": "teacher", "wave": NOW},
    )
    total = items[(items["unit"] == "T0001") & (items["item"] == ITEMS[0])].iloc[0]
    assert not total["suppressed"] and total["n"] == 23  # published: the parent
    got = _read(con, wave=NOW)
    small = _cell(got, "T0001", "C-NHP-PRIM-B-04")
    big = _cell(got, "T0001", "C-NHP-PRIM-B-05")
    assert small["suppressed"] and small["suppression_reason"] == "small_cell"
    # n = 20 would give the n = 3 cell as 23 - 20: hidden as well
    assert big["suppressed"] and big["suppression_reason"] == "complementary"
    for row in (small, big):
        assert pd.isna(row["n"]) and pd.isna(row["pct_positive"]) and pd.isna(row["mean"])


def test_every_statistic_is_hidden_with_its_row_and_keys_and_labels_stay(con):
    got = _read(con, min_n=5)
    hidden = got[got["suppressed"].astype(bool)]
    assert len(hidden) >= 6
    stats = [c.name for c in TEACHING.columns if c.kind == "stat"]
    assert {"n", "pct_positive", "indicative_only", "reliability_reason"} <= set(stats)
    assert hidden[stats].isna().all().all()
    keep = [c for c in TEACHING.labels if c != "discipline"]
    assert hidden[keep].notna().all().all()
    shown = got[~got["suppressed"].astype(bool)]
    assert (shown["n"] >= 5).all() and shown["pct_positive"].notna().all()


def test_no_teacher_is_left_with_exactly_one_hidden_discipline(con):
    for min_n in (5, 9, 13, 16, 21):
        got = _read(con, min_n=min_n)
        items = read(
            con,
            "ind_items",
            viewer=OFFICE,
            tree=TREE,
            min_n=min_n,
            filters={"org_level": "teacher"},
        )
        shown = items.loc[~items["suppressed"], ["wave", "unit", "item", "n"]]
        for (wave, teacher, item), rows in got.groupby(["wave", "teacher", "item"]):
            parent = shown[
                (shown["wave"] == wave) & (shown["unit"] == teacher) & (shown["item"] == item)
            ]
            hidden = rows["suppressed"].astype(bool)
            if parent.empty:  # the teacher's row is hidden: so is every part of it
                assert hidden.all(), (min_n, teacher)
                continue
            assert hidden.sum() != 1, (min_n, teacher, item)
            # what the hidden parts hold together (parent - visible parts) is no small group
            rest = float(parent["n"].iloc[0]) - rows.loc[~hidden, "n"].sum()
            assert rest == 0 or rest >= min_n, (min_n, teacher, item, rest)


def test_answers_naming_no_discipline_are_a_part_of_their_own(con):
    got = _read(con, wave=NOW)
    rows = got[(got["teacher"] == "T0002") & (got["item"] == ITEMS[0])]
    assert len(rows) == 3 and not rows["suppressed"].any()
    assert sorted(rows["n"].astype(int)) == [8, 12, 15]
    assert _cell(got, "T0002", None)["n"] == 8


def test_a_teacher_hidden_in_ind_items_has_every_discipline_hidden(con):
    row = _cell(_read(con, wave=NOW), "T0119", "C-KKE-X-01")
    assert row["suppressed"] and pd.isna(row["n"])


def test_parts_that_do_not_add_up_to_a_shown_parent_stay_hidden(con):
    """Were a teacher's row of ind_items computed from more answers than their disciplines
    (tables out of step), the gate would want to hide that row, which ind_items shows: the
    parts stay hidden, and nothing is shown of them."""
    parents = read(
        con, "ind_items", viewer=OFFICE, tree=TREE, min_n=5, filters={"org_level": "teacher"}
    )
    frame = con.execute(
        "SELECT * FROM ind_teaching WHERE teacher = 'T0002' AND discipline IS NOT NULL ORDER BY ALL"
    ).fetchdf()
    for sizes in ([3], [2, 2]):  # one hidden part; hidden parts of 4 under a total of 35
        part = frame.groupby("item").head(len(sizes)).copy()
        part["n"] = sizes * len(ITEMS)
        got = gate(part, TEACHING, TREE, 5, parents=parents)
        assert got["suppressed"].all() and got["n"].isna().all(), sizes
    shown = parents[(parents["unit"] == "T0002") & (parents["wave"] == NOW)]
    assert not shown["suppressed"].any() and (shown["n"] == 35).all()


def test_the_gate_of_a_parts_table_refuses_to_run_without_the_parent_rows(con):
    frame = con.execute("SELECT * FROM ind_teaching").fetchdf()
    with pytest.raises(ValueError, match="parent"):
        gate(frame, TEACHING, TREE, 5)


def test_the_declaration_names_the_parent_and_the_docs_say_so():
    assert TEACHING.rule == "parts" and TEACHING.parent is not None
    assert TEACHING.parent.table == "ind_items"
    assert TEACHING.unit_columns == ("teacher",)
    assert tuple(TEACHING.slice_by) == tuple(TABLES["ind_items"].slice_by)


# ------------------------------------------------------------------ who sees what
def test_a_teacher_sees_only_their_own_rows_a_dean_the_teachers_of_their_faculty(con):
    own = _read(con, Viewer(ViewerRole.TEACHER, ("T0002",)))
    assert set(own["teacher"]) == {"T0002"}
    # gated on the whole slice first: the teacher sees the cells everyone sees
    everyone = _read(con)
    mine = everyone[everyone["teacher"] == "T0002"].reset_index(drop=True)
    pd.testing.assert_frame_equal(own, mine)
    dean = _read(con, Viewer(ViewerRole.DEAN, ("F-NHP",)))
    assert set(dean["teacher"]) == {"T0001", "T0002"}
    other = _read(con, Viewer(ViewerRole.DEAN, ("KKHPI",)))
    assert set(other["teacher"]) == {"T0048"}
    leader = _read(con, Viewer(ViewerRole.PROGRAMME_LEADER, ("P-NHP-MATH-B",)))
    assert leader.empty
    assert set(_read(con, Viewer(ViewerRole.TEACHER, ("T9999",)))["teacher"]) == set()


def test_the_cli_read_limits_to_a_unit_and_names_the_disciplines(con):
    frame = _read(con, wave=NOW)
    out = in_context(
        con, frame, TEACHING, viewer=OFFICE, tree=TREE, min_n=5, lang="en", alpha=0.05, unit="F-NHP"
    )
    assert set(out["teacher"]) == {"T0001", "T0002"}
    named = dict(zip(out["discipline"], out["discipline_name"], strict=True))
    assert named["C-NHP-PRIM-B-05"] == "Natural Science and Its Teaching Methods"


# ------------------------------------------------------------------ the page
def _ctx(con, viewer=OFFICE, lang="en") -> Context:
    return Context(con=con, viewer=viewer, tree=TREE, lang=lang)


def test_the_page_shows_teacher_x_discipline_with_hidden_cells_as_n_below_min_n(con):
    view = teaching(_ctx(con), Filters())
    assert view.message is None
    y = list(view.figure.data[0].y)
    assert "T0001 · Natural Science and Its Teaching Methods" in y
    assert "T0002 · Developmental Psychology" in y
    assert f"T0002 · {t('ui.no_discipline', 'en')}" in y
    assert "T0048 · C-KKH-X-01" in y  # a code not in disciplines.csv stays a code
    table = view.table
    assert set(table["wave"]) == {NOW}  # the latest wave by default
    assert {"n", "pct_positive", "pct_positive_ci_low", "pct_positive_ci_high"} <= set(table)
    assert {"discipline_name", "item_name"} <= set(table)
    hidden = table[table["suppressed"].astype(bool)]
    assert set(hidden["teacher"]) == {"T0001", "T0119"}
    assert hidden["pct_positive"].isna().all() and hidden["n"].isna().all()
    # in the chart, a hidden cell reads "n < 5" and carries no number
    text = np.asarray(view.figure.data[0].text)
    row = y.index("T0001 · Natural Science and Its Teaching Methods")
    assert list(text[row]) == [suppressed_text(_ctx(con))] * len(ITEMS)
    z = np.asarray(view.figure.data[0].z, dtype=float)
    assert np.isnan(z[row]).all()
    shown = y.index("T0048 · C-KKH-X-01")
    assert np.isfinite(z[shown]).all()
    assert any("n < 5" in note for note in view.notes)


def test_the_page_shows_the_chosen_wave_and_item(con):
    view = teaching(_ctx(con), Filters(waves=(BEFORE,), item="te_q01"))
    assert set(view.table["wave"]) == {BEFORE} and set(view.table["item"]) == {"te_q01"}
    assert list(view.figure.data[0].y) == ["T0048 · C-KKH-X-01"]


def test_the_page_limits_to_a_unit(con):
    view = teaching(_ctx(con), Filters(unit="F-NHP"))
    assert set(view.table["teacher"]) == {"T0001", "T0002"}


def test_a_teacher_sees_only_their_own_disciplines_on_the_page(con):
    view = teaching(_ctx(con, Viewer(ViewerRole.TEACHER, ("T0002",)), "ru"), Filters())
    assert set(view.table["teacher"]) == {"T0002"}
    assert all(label.startswith("T0002 · ") for label in view.figure.data[0].y)
    assert "Возрастная психология" in set(view.table["discipline_name"])


def test_a_programme_leader_gets_the_not_for_role_message(con):
    viewer = Viewer(ViewerRole.PROGRAMME_LEADER, ("P-NHP-MATH-B",))
    view = teaching(_ctx(con, viewer), Filters())
    assert view.message == t("ui.not_for_role", "en") and view.table.empty


def test_a_dean_sees_the_teachers_of_their_faculty_only(con):
    view = teaching(_ctx(con, Viewer(ViewerRole.DEAN, ("F-NHP",))), Filters())
    assert set(view.table["teacher"]) == {"T0001", "T0002"}
    assert {label.split(" · ")[0] for label in view.figure.data[0].y} == {"T0001", "T0002"}
    other = teaching(_ctx(con, Viewer(ViewerRole.DEAN, ("KKHPI",))), Filters())
    assert set(other.table["teacher"]) == {"T0048"}


def test_nothing_to_show_for_a_questionnaire_without_teachers(con):
    view = teaching(_ctx(con), Filters(instrument="student_experience"))
    assert view.message == t("ui.nothing", "en")


def test_reverse_worded_questions_are_marked_and_explained(con):
    """A question where agreeing is unfavourable (``reverse``) carries ↺ and a note says
    what it means; with none on the page, neither appears."""
    plain = teaching(_ctx(con), Filters())
    assert not [x for x in plain.figure.data[0].x if x.startswith("↺")]
    assert t("note.reverse_mark", "en") not in plain.notes

    class Reversed(Context):  # te_q01 worded negatively
        def read(self, table, **filters):
            rows = super().read(table, **filters)
            return rows.assign(reverse=rows["item"].eq("te_q01") | rows["reverse"].astype(bool))

    for lang in ("en", "ky"):
        view = teaching(Reversed(con=con, viewer=OFFICE, tree=TREE, lang=lang), Filters())
        marked = [x for x in view.figure.data[0].x if x.startswith("↺ ")]
        assert len(marked) == 1 and t("note.reverse_mark", lang) in view.notes
