"""One door in, one door out: only the store writes; readers read published snapshots through
the gate, scoped to the viewer; the audit log detects tampering; a rebuild from the raw
files gives the same tables."""

from __future__ import annotations

import re
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
from conftest import examples
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.config import Statistics
from pipeline.indicators import recompute
from pipeline.ingest import ingest_file
from pipeline.ingest.pseudonym import load_key
from pipeline.ingest.rebuild import rebuild, table_checksums
from pipeline.instruments import example_catalog
from pipeline.publish import Tree, Viewer, ViewerRole, gate, read
from pipeline.registry import example_registry
from pipeline.store import Store, verify_audit
from pipeline.store.snapshots import checksum, current, open_current
from pipeline.store.tables import TABLES
from pipeline.synth import synthesize

ROOT = Path(__file__).resolve().parents[1]
CAT, REG = example_catalog(), example_registry()
TREE = Tree.of(REG)
WRITES = re.compile(
    r"\b(INSERT\s+INTO|UPDATE\s+\w+\s+SET|DELETE\s+FROM|CREATE\s+(OR\s+REPLACE\s+)?(TEMP\s+)?"
    r"TABLE|ALTER\s+TABLE|DROP\s+TABLE|COPY\s+\w+\s+TO)\b",
    re.IGNORECASE,
)


def test_no_module_but_the_store_writes_sql():
    offenders = []
    for path in sorted((ROOT / "pipeline").rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        if rel.startswith("pipeline/store/"):
            continue
        for no, line in enumerate(path.read_text("utf-8").splitlines(), start=1):
            if WRITES.search(line) and not line.lstrip().startswith("#"):
                offenders.append(f"{rel}:{no}: {line.strip()}")
    assert offenders == []


def test_no_sql_text_carries_a_value_formatted_into_it():
    """Values are bound as parameters: no f-string puts a value between SQL quotes."""
    quoted = re.compile(r"""f["'].*'\{[^}]+\}'""")
    offenders = [
        f"{p.relative_to(ROOT)}:{no}"
        for p in sorted((ROOT / "pipeline").rglob("*.py"))
        for no, line in enumerate(p.read_text("utf-8").splitlines(), start=1)
        if quoted.search(line)
    ]
    assert offenders == []


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A small store of two questionnaires over three waves, indicators computed and
    published, with an audit log."""
    root = tmp_path_factory.mktemp("door")
    truth = synthesize(
        root / "ex",
        REG,
        CAT,
        scale=0.15,
        seed=8,
        instruments=["student_experience", "teaching_evaluation"],
    )
    key = load_key(root / "key")
    db = root / "processed" / "sapat.duckdb"
    with Store(db, raw_dir=root / "raw", audit_key=key) as store:
        for meta in truth["files"]:
            assert (
                ingest_file(root / "ex" / meta["file"], store, CAT, REG, key=key).status == "loaded"
            )
        recompute(store, REG, CAT, Statistics())
        store.audit("recompute", "all", "test")
        store.publish(root / "processed" / "snapshots")
    return {"root": root, "db": db, "key": key, "snaps": root / "processed" / "snapshots"}


def test_a_snapshot_holds_the_indicator_tables_with_their_checksums(built):
    con = open_current(built["snaps"])
    meta = con.execute("SELECT table_name, rows, checksum FROM snapshot_meta").fetchall()
    assert {t for t, _, _ in meta} >= {"ind_items", "ind_changes", "pub_loads", "dim_units"}
    for table, rows, total in meta:
        assert checksum(con, table) == (rows, total), table
    assert not con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE table_name LIKE 'fct_%'"
    ).fetchone()[0]  # no answers in a snapshot
    con.close()


def _tampered(db: Path, tmp: Path, sql: str) -> list[str]:
    copy = tmp / f"t{abs(hash(sql))}.duckdb"
    copy.write_bytes(db.read_bytes())
    con = duckdb.connect(str(copy))
    con.execute(sql)
    log = con.execute("SELECT * FROM sys_audit ORDER BY seq").fetchdf()
    con.close()
    return log


def test_the_audit_log_detects_an_edit_a_deletion_and_a_reordering(built, tmp_path):
    con = duckdb.connect(str(built["db"]), read_only=True)
    log = con.execute("SELECT * FROM sys_audit ORDER BY seq").fetchdf()
    con.close()
    assert len(log) >= 5 and verify_audit(log, built["key"]) == []
    assert set(log["action"]) >= {"load", "recompute", "publish"}
    assert not log["object"].str.contains("@").any()  # no respondent data
    edited = _tampered(
        built["db"], tmp_path, "UPDATE sys_audit SET outcome = 'nothing happened' WHERE seq = 2"
    )
    deleted = _tampered(built["db"], tmp_path, "DELETE FROM sys_audit WHERE seq = 3")
    reordered = _tampered(
        built["db"],
        tmp_path,
        "UPDATE sys_audit SET seq = CASE seq WHEN 2 THEN 3 WHEN 3 THEN 2 ELSE seq END",
    )
    for log in (edited, deleted, reordered):
        assert verify_audit(log, built["key"]) != []
    # rewriting the chain without the key is detected too
    assert verify_audit(log, b"another key entirely, 32 bytes..") != []


@pytest.mark.slow
def test_a_rebuild_from_the_raw_files_gives_identical_tables(built, tmp_path):
    new = tmp_path / "rebuilt.duckdb"
    result = rebuild(
        built["db"],
        new,
        CAT,
        REG,
        key=built["key"],
        recompute=lambda s: recompute(s, REG, CAT, Statistics()),
    )
    assert result and all(c.same for c in result), [c for c in result if not c.same]
    assert table_checksums(built["db"]) == table_checksums(new)


# ----------------------------------------------------------------- the door out
VIEWERS = st.one_of(
    st.just(Viewer(ViewerRole.QUALITY_OFFICE)),
    st.just(Viewer(ViewerRole.RECTOR)),
    st.sampled_from(list(REG.faculties["code"])).map(lambda u: Viewer(ViewerRole.DEAN, (u,))),
    st.sampled_from(list(REG.programmes["code"])).map(
        lambda u: Viewer(ViewerRole.PROGRAMME_LEADER, (u,))
    ),
    st.sampled_from(list(REG.teachers["teacher_code"])).map(
        lambda u: Viewer(ViewerRole.TEACHER, (u,))
    ),
)


def _allowed(viewer: Viewer) -> set[str] | None:
    if viewer.role in (ViewerRole.QUALITY_OFFICE, ViewerRole.RECTOR):
        return None
    uni = REG.university
    if viewer.role is ViewerRole.DEAN:
        fac = viewer.units[0]
        units = set(REG.rollup.loc[REG.rollup["faculty"] == fac, "unit"]) | {fac}
        deps = set(REG.rollup.loc[REG.rollup["faculty"] == fac, "department"].dropna())
        teachers = set(REG.teachers.loc[REG.teachers["department_code"].isin(deps), "teacher_code"])
        return units | teachers | {uni}
    return {viewer.units[0], uni}


@settings(
    max_examples=examples(60),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    viewer=VIEWERS, table=st.sampled_from(sorted(TABLES)), min_n=st.integers(3, 12), data=st.data()
)
def test_read_never_shows_a_foreign_unit_or_a_small_or_derivable_cell(
    built, viewer, table, min_n, data
):
    con = duckdb.connect(str(current(built["snaps"])), read_only=True)
    try:
        t = TABLES[table]
        filters = {}
        if "wave" in t.names and data.draw(st.booleans()):
            filters["wave"] = data.draw(st.sampled_from(["2023-2024", "2024-2025", "2025-2026"]))
        if "org_level" in t.names and data.draw(st.booleans()):
            filters["org_level"] = data.draw(
                st.sampled_from(["university", "faculty", "department", "programme", "teacher"])
            )
        if "instrument" in t.names and data.draw(st.booleans()):
            filters["instrument"] = data.draw(
                st.sampled_from(["student_experience", "teaching_evaluation"])
            )
        got = read(con, table, viewer=viewer, tree=TREE, min_n=min_n, filters=filters)
        full = read(
            con,
            table,
            viewer=Viewer(ViewerRole.QUALITY_OFFICE),
            tree=TREE,
            min_n=min_n,
            filters={k: v for k, v in filters.items() if k in t.slice_by},
        )
        parents = None
        if t.parent is not None:
            parents = read(
                con,
                t.parent.table,
                viewer=Viewer(ViewerRole.QUALITY_OFFICE),
                tree=TREE,
                min_n=min_n,
                filters={k: v for k, v in filters.items() if k in t.slice_by},
            )
    finally:
        con.close()
    allowed = _allowed(viewer)
    if allowed is not None:
        for col in t.unit_columns:
            assert set(got[col]) <= allowed, (viewer, table, set(got[col]) - allowed)
        if not t.unit_columns and viewer.role is ViewerRole.TEACHER:
            assert got.empty
    for col in t.n_columns:
        shown = pd.to_numeric(got.loc[~got["suppressed"].astype(bool), col], errors="coerce")
        assert (shown.dropna() >= min_n).all(), (table, col)
    stats_cols = [c.name for c in t.columns if c.kind == "stat"]
    hidden = got[got["suppressed"].astype(bool)]
    assert hidden[stats_cols].isna().all().all(), table
    if t.rule == "units" and not full.empty:
        _no_derivable_cell(full, t, min_n)
    if t.rule == "parts" and not full.empty:
        _no_derivable_part(full, parents, t, min_n)
    if table in CELLS_OF:
        _no_hidden_cell_shown_through(got, table, _items(built["snaps"], min_n), min_n)


#: the ind_items cells a shown comparison row carries, by table (written out here, not
#: taken from the declaration): each as (instrument, wave, org_level, unit, item) and the
#: row's value that is that cell's n (None: the row publishes no n of it)
CELLS_OF = {
    "ind_changes": lambda r: [
        ((r.instrument, r.wave_from, r.org_level, r.unit, r.item), r.n_from),
        ((r.instrument, r.wave_to, r.org_level, r.unit, r.item), r.n_to),
    ],
    "ind_benchmark": lambda r: [
        ((r.instrument, r.wave, r.org_level, r.unit, r.item), r.n_unit),
        ((r.instrument, r.wave, "university", REG.university, r.item), None),
    ],
    "ind_dunn": lambda r: [
        ((r.instrument, r.wave, r.org_level, r.group_a, r.item), r.n_a),
        ((r.instrument, r.wave, r.org_level, r.group_b, r.item), r.n_b),
    ],
    "ind_trends": None,  # every wave up to the trend's own: below
}
_ITEMS: dict[tuple, pd.DataFrame] = {}


def _items(snaps: Path, min_n: int) -> pd.DataFrame:
    """ind_items as every reader finds it (the quality office, no filter)."""
    if (snaps, min_n) not in _ITEMS:
        con = duckdb.connect(str(current(snaps)), read_only=True)
        try:
            _ITEMS[snaps, min_n] = read(
                con, "ind_items", viewer=Viewer(ViewerRole.QUALITY_OFFICE), tree=TREE, min_n=min_n
            )
        finally:
            con.close()
    return _ITEMS[snaps, min_n]


def _no_hidden_cell_shown_through(got: pd.DataFrame, table: str, items, min_n: int) -> None:
    """Across tables: a shown comparison row rests only on cells ind_items shows, and
    publishes their n (nothing ind_items hides, as a small cell or a complement, comes
    out through a change, a benchmark, a pairwise test or a trend)."""
    key = ["instrument", "wave", "org_level", "unit", "item"]
    cells = {
        tuple(k): (None if hidden else n)
        for k, n, hidden in zip(
            items[key].itertuples(index=False, name=None),
            items["n"],
            items["suppressed"].astype(bool),
            strict=True,
        )
    }
    waves: dict[tuple, list] = {}
    for inst, wave, level, unit, item in cells:
        waves.setdefault((inst, level, unit, item), []).append(wave)
    for r in got[~got["suppressed"].astype(bool)].itertuples():
        if table == "ind_trends":
            mine = [
                (r.instrument, w, r.org_level, r.unit, r.item)
                for w in waves.get((r.instrument, r.org_level, r.unit, r.item), [])
                if w <= r.wave
            ]
            assert mine and all(cells[k] is not None for k in mine), (table, r)
            assert sum(cells[k] for k in mine) == r.n, (table, r)
            continue
        for cell, n in CELLS_OF[table](r):
            assert cells.get(cell) is not None, (table, "rests on a hidden or no cell", cell)
            assert n is None or cells[cell] == n >= min_n, (table, cell, cells[cell], n)


def _no_derivable_cell(gated: pd.DataFrame, t, min_n: int) -> None:
    """Within each slice, no published parent has exactly one hidden child, and the
    hidden children's total is 0 or at least min_n (parent - visible children)."""
    parents = TREE.parents
    n_col = t.n_columns[0]
    org = gated[gated["org_level"] != "teacher"]
    for _, part in org.groupby(list(t.slice_by), observed=True):
        visible = part[~part["suppressed"]]
        n_of = dict(zip(visible["unit"], visible[n_col], strict=True))
        children = part.assign(parent=part["unit"].map(parents)).dropna(subset=["parent"])
        for parent, kids in children.groupby("parent"):
            if parent not in n_of:
                continue
            hidden = kids[kids["suppressed"]]
            assert len(hidden) != 1, (t.name, parent)


def _no_derivable_part(gated: pd.DataFrame, parents: pd.DataFrame, t, min_n: int) -> None:
    """Within each slice, the parts of a shown parent row (a teacher's disciplines under
    their row of ind_items) are never exactly one hidden, and the hidden ones hold 0 or at
    least min_n together; the parts of a hidden parent are all hidden."""
    here, there = t.parent.unit
    slices = list(t.slice_by)
    n_col = t.n_columns[0]
    shown = parents[~parents["suppressed"].astype(bool)]
    total = {
        (*k[:-1], k[-1]): n
        for k, n in zip(
            zip(*[shown[c] for c in [*slices, there]], strict=True), shown[n_col], strict=True
        )
    }
    for keys, rows in gated.groupby([*slices, here], observed=True):
        hidden = rows["suppressed"].astype(bool)
        if keys not in total:
            assert hidden.all(), (t.name, keys)
            continue
        assert hidden.sum() != 1, (t.name, keys)
        rest = float(total[keys]) - rows.loc[~hidden, n_col].sum()
        assert rest == 0 or rest >= min_n, (t.name, keys, rest)


def test_readers_never_see_half_a_publish(built, tmp_path):
    """A reader that opens the current snapshot always finds tables whose checksums match
    the snapshot's own record, while new snapshots are published."""
    from pipeline.store.snapshots import publish

    snaps = tmp_path / "snaps"
    src = duckdb.connect(str(built["db"]), read_only=True)
    seen = 0
    for _ in range(5):
        publish(src, snaps)
        con = open_current(snaps)
        for table, rows, total in con.execute(
            "SELECT table_name, rows, checksum FROM snapshot_meta"
        ).fetchall():
            assert checksum(con, table) == (rows, total)
            seen += 1
        con.close()
    src.close()
    assert seen and len(list(snaps.glob("snapshot-*.duckdb"))) <= 4
    assert np.isfinite(seen)


# ------------------------------------------- comparisons resting on hidden cells
#: a constructed university U: faculty F1 with programmes P1 and P2, F2 with Q1 and Q2,
#: F3 with R1 and R2; answers per programme and wave (ind_items hides P1 in W3 as small
#: and P2 with it as its complement, Q1 and Q2 alike in W2; R1 and R2 are always shown)
W1, W2, W3 = "2023-2024", "2024-2025", "2025-2026"
SIZES = {
    W1: {"P1": 11, "P2": 14, "Q1": 12, "Q2": 16, "R1": 13, "R2": 15},
    W2: {"P1": 12, "P2": 18, "Q1": 4, "Q2": 30, "R1": 15, "R2": 16},
    W3: {"P1": 3, "P2": 20, "Q1": 14, "Q2": 26, "R1": 17, "R2": 19},
}
SMALL_TREE = Tree(
    parents={
        **{f: "U" for f in ("F1", "F2", "F3")},
        **{"P1": "F1", "P2": "F1", "Q1": "F2", "Q2": "F2", "R1": "F3", "R2": "F3"},
    },
    university="U",
)
SE = CAT.get("student_experience")
SE_ITEMS = ["se_tl01", "se_tl02"]


def _small_counts() -> pd.DataFrame:
    """Answers (1..5) per wave, programme and item, rolled up to faculties and the
    university; each programme answers around its own level (the units differ)."""
    rows = []
    for wave, sizes in SIZES.items():
        for u, (unit, n) in enumerate(sizes.items()):
            for j, item in enumerate(SE_ITEMS):
                for k in range(n):
                    answer = min(5, max(1, 1 + u % 5 + (k + j) % 3 - 1))
                    for level, code in (
                        ("programme", unit),
                        ("faculty", SMALL_TREE.parents[unit]),
                        ("university", "U"),
                    ):
                        rows.append((wave, level, code, item, answer))
    frame = pd.DataFrame(rows, columns=["wave", "org_level", "unit", "item", "answer"])
    return (
        frame.groupby(list(frame.columns), as_index=False).size().rename(columns={"size": "count"})
    )


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """ind_items, ind_response, ind_changes, ind_benchmark, ind_dunn and ind_trends of the
    constructed university, computed by the pipeline's own functions, written by the store."""
    from pipeline.indicators import compute as ic

    stats = Statistics()
    counts = _small_counts()
    waves = {w: SE for w in SIZES}
    resp = (
        counts[counts["item"] == SE_ITEMS[0]]
        .groupby(["wave", "org_level", "unit"], as_index=False)["count"]
        .sum()
        .rename(columns={"count": "respondents"})
    )
    resp_table = ic.response_table(SE, resp, None, stats)
    bench, _, dunn, _ = ic.comparison_tables(waves, counts, stats)
    changes = pd.concat(
        [ic.change_table(SE, SE, SE_ITEMS, counts, a, b, stats) for a, b in ((W1, W2), (W2, W3))],
        ignore_index=True,
    )
    trends = ic.trend_table(SE, SE_ITEMS, counts, list(SIZES), stats)
    path = tmp_path_factory.mktemp("small") / "s.duckdb"
    keys = pd.DataFrame({"instrument": SE.id, "wave": list(SIZES)})
    with Store(path) as store:
        store.replace_rows("ind_response", resp_table, keys)
        store.replace_rows("ind_items", ic.item_table(waves, counts, resp_table, stats), keys)
        for name, frame in (
            ("ind_changes", changes),
            ("ind_benchmark", bench),
            ("ind_dunn", dunn),
            ("ind_trends", trends),
        ):
            store.replace_rows(name, frame, keys)
    con = duckdb.connect(str(path), read_only=True)
    yield con
    con.close()


def _small_read(con, table, viewer=None, **filters) -> pd.DataFrame:
    viewer = viewer or Viewer(ViewerRole.QUALITY_OFFICE)
    return read(con, table, viewer=viewer, tree=SMALL_TREE, min_n=5, filters=filters)


def _rows(frame: pd.DataFrame, **where) -> pd.DataFrame:
    keep = np.ones(len(frame), dtype=bool)
    for col, value in where.items():
        keep &= (frame[col] == value).to_numpy()
    rows = frame[keep]
    assert len(rows), where
    return rows


def test_the_constructed_units_table_hides_a_small_programme_and_its_complement(small):
    items = _small_read(small, "ind_items", item=SE_ITEMS[0])
    p1 = _rows(items, wave=W3, unit="P1").iloc[0]
    p2 = _rows(items, wave=W3, unit="P2").iloc[0]
    assert p1["suppression_reason"] == "small_cell"
    assert p2["suppression_reason"] == "complementary"  # n = 20: hidden to protect P1
    assert _rows(items, wave=W2, unit="Q2").iloc[0]["suppression_reason"] == "complementary"
    assert not _rows(items, unit="R1")["suppressed"].any()
    f1 = _rows(items, wave=W3, unit="F1").iloc[0]
    assert not f1["suppressed"] and f1["n"] == 23  # shown: P1 = F1 - P2 were P2 shown


def test_a_change_resting_on_a_complementary_cell_is_hidden(small):
    changes = _small_read(small, "ind_changes")
    # P2 in W3 (n = 20, hidden in ind_items as P1's complement): its change into W3
    # would publish n_to = 20 and its positives, and P1 = F1 - P2 again
    p2 = _rows(changes, wave=W3, unit="P2")
    assert p2["suppressed"].all()
    assert (p2["suppression_reason"] == "rests_on_hidden_cell").all()
    stats = [c.name for c in TABLES["ind_changes"].columns if c.kind == "stat"]
    assert p2[stats].isna().all().all()  # n_to, x_to, share_to, p_method, ... all hidden
    # Q2 is hidden in W2, the wave the change into W3 starts from (and the one into W2 ends at)
    assert _rows(changes, unit="Q2", wave_from=W2)["suppressed"].all()
    assert _rows(changes, unit="Q2", wave_to=W2)["suppressed"].all()
    # P2's change into W2 rests on shown cells only; R1 and R2 on shown cells throughout
    assert not _rows(changes, unit="P2", wave=W2)["suppressed"].any()
    shown = _rows(changes, unit="R1")
    assert not shown["suppressed"].any() and (shown["n_to"] >= 5).all()
    assert not _rows(changes, unit="F1")["suppressed"].any()


def test_a_benchmark_resting_on_a_complementary_cell_is_hidden(small):
    bench = _small_read(small, "ind_benchmark", org_level="programme")
    p2 = _rows(bench, wave=W3, unit="P2")
    assert p2["suppressed"].all() and p2["n_unit"].isna().all() and p2["n_rest"].isna().all()
    assert (p2["suppression_reason"] == "rests_on_hidden_cell").all()
    assert _rows(bench, wave=W2, unit="Q2")["suppressed"].all()
    for unit in ("R1", "Q1"):
        shown = _rows(bench, wave=W3, unit=unit)
        assert not shown["suppressed"].any() and shown["n_unit"].notna().all()


def test_a_trend_resting_on_a_hidden_cell_of_any_wave_is_hidden(small):
    trends = _small_read(small, "ind_trends")
    # P1's trend sums 11 + 12 + 3 = 26 answers: no small group, but with P1's shown
    # W1 and W2 it would give its hidden W3 cell (3 answers)
    for unit in ("P1", "P2", "Q1", "Q2"):
        rows = _rows(trends, unit=unit)
        assert rows["suppressed"].all() and rows["n"].isna().all(), unit
        assert (rows["suppression_reason"] == "rests_on_hidden_cell").all(), unit
    assert rows["converged"].isna().all()
    for unit in ("R1", "R2", "F1", "U"):
        assert not _rows(trends, unit=unit)["suppressed"].any(), unit


def test_a_pairwise_test_resting_on_a_hidden_cell_is_hidden(small):
    dunn = _small_read(small, "ind_dunn", org_level="programme", wave=W3)
    with_p2 = dunn[(dunn["group_a"] == "P2") | (dunn["group_b"] == "P2")]
    assert len(with_p2) and with_p2["suppressed"].all() and with_p2["n_a"].isna().all()
    shown = dunn[dunn["group_a"].isin(["Q1", "R1", "R2"]) & dunn["group_b"].isin(["R1", "R2"])]
    assert len(shown) and not shown["suppressed"].any()


def test_a_comparison_whose_cell_is_missing_or_differs_is_hidden(small):
    """Fail-closed: a cell ind_items does not hold, or holds with another n (the two
    tables computed from different answers), hides the row."""
    t = TABLES["ind_changes"]
    frame = small.execute("SELECT * FROM ind_changes WHERE wave = ? ORDER BY ALL", [W3]).fetchdf()
    items = _small_read(small, "ind_items")
    got = gate(frame, t, SMALL_TREE, 5, cells={"ind_items": items[items["unit"] != "R1"]})
    r1 = _rows(got, unit="R1")
    assert r1["suppressed"].all() and (r1["suppression_reason"] == "rests_on_missing_cell").all()
    assert not _rows(got, unit="R2")["suppressed"].any()
    frame.loc[frame["unit"] == "R2", "n_to"] += 1
    got = gate(frame, t, SMALL_TREE, 5, cells={"ind_items": items})
    assert _rows(got, unit="R2")["suppressed"].all()
    assert not _rows(got, unit="R1")["suppressed"].any()
    with pytest.raises(ValueError, match="rests on"):
        gate(frame, t, SMALL_TREE, 5)


def test_a_reader_in_scope_sees_the_same_hidden_comparison(small):
    leader = Viewer(ViewerRole.PROGRAMME_LEADER, ("P2",))
    mine = _small_read(small, "ind_changes", viewer=leader, wave=W3)
    assert set(mine["unit"]) == {"P2", "U"}
    assert _rows(mine, unit="P2")["suppressed"].all()


def test_reliability_flags_are_hidden_with_their_row(small):
    """indicative_only and reliability_reason say whether n is below 10: on a hidden row
    they would tell a hidden cell's size (P2's n = 20 from P1's n = 3)."""
    items = _small_read(small, "ind_items", wave=W3)
    for unit in ("P1", "P2"):
        hidden = _rows(items, unit=unit)
        assert hidden["suppressed"].all()
        for col in ("indicative_only", "reliability_reason", "fpc"):
            assert hidden[col].isna().all(), (unit, col)
    shown = _rows(items, unit="Q1")  # 14 answers: shown, not indicative
    assert not shown["suppressed"].any() and not shown["indicative_only"].astype(bool).any()
    response = _small_read(small, "ind_response", wave=W3)
    p1 = _rows(response, unit="P1")
    assert p1["suppressed"].all() and p1["indicative_only"].isna().all()
    assert p1["reliability_reason"].isna().all()
    for name in ("ind_items", "ind_response"):
        kinds = {c.name: c.kind for c in TABLES[name].columns}
        assert kinds["indicative_only"] == kinds["reliability_reason"] == "stat", name
