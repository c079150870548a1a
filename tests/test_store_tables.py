"""Each derived table is declared once (pipeline/store/tables.py): the store's DDL, the gate
and docs/tables.md all come from that declaration."""

from __future__ import annotations

from pathlib import Path

import duckdb

from pipeline.store import Store
from pipeline.store.tables import TABLES, markdown

ROOT = Path(__file__).resolve().parents[1]


def test_docs_tables_md_is_generated_from_the_declarations():
    assert (ROOT / "docs" / "tables.md").read_text("utf-8") == markdown(), (
        "regenerate docs/tables.md (its first lines say how)"
    )


def test_the_store_creates_every_declared_table_with_its_types(tmp_path):
    with Store(tmp_path / "s.duckdb"):
        pass
    con = duckdb.connect(str(tmp_path / "s.duckdb"), read_only=True)
    for t in TABLES.values():
        cols = con.execute(
            "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = ? "
            "ORDER BY ordinal_position",
            [t.name],
        ).fetchall()
        assert cols == [(c.name, c.type) for c in t.columns], t.name
        assert set(t.key) <= set(t.names) and set(t.n_columns) <= set(t.names)
        assert set(t.slice_by) <= set(t.names) and set(t.unit_columns) <= set(t.names)


def test_an_older_layout_of_a_derived_table_is_replaced_and_recomputed(tmp_path):
    path = tmp_path / "s.duckdb"
    with Store(path) as s:
        s.con.execute("DROP TABLE ind_items")
        s.con.execute("CREATE TABLE ind_items (instrument VARCHAR, level VARCHAR)")
        s.con.execute("INSERT INTO sys_indicator_state VALUES ('x', '2024-2025', 'sig', now())")
    with Store(path) as s:
        cols = [r[0] for r in s.con.execute("DESCRIBE ind_items").fetchall()]
        assert cols == TABLES["ind_items"].names
        assert s.con.execute("SELECT count(*) FROM sys_indicator_state").fetchone()[0] == 0
