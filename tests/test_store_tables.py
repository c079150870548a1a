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


def test_a_database_of_an_earlier_release_gains_the_new_columns(tmp_path):
    """The store's own tables grow columns between releases (``sys_loads.accept_dates``,
    ``content_key``, ...): opening an older database of the same layout adds them with
    their defaults instead of failing at the next load."""
    import duckdb

    from pipeline.store import Store

    path = tmp_path / "old.duckdb"
    Store(path).close()
    con = duckdb.connect(str(path))
    con.execute("ALTER TABLE sys_loads DROP COLUMN accept_dates")
    con.execute("ALTER TABLE sys_loads DROP COLUMN content_key")
    con.execute("ALTER TABLE qa_actions DROP COLUMN " + _last_column(con, "qa_actions"))
    con.execute(
        "INSERT INTO sys_loads (load_id, sha256, file_name, rows_read, rows_loaded, "
        "rows_quarantined, status, loaded_at, tool_version) "
        "VALUES (1, 'x', 'old.csv', 1, 1, 0, 'loaded', now(), '0.9')"
    )
    con.close()
    with Store(path) as store:
        cols = {
            (t, c)
            for t, c in store.con.execute(
                "SELECT table_name, column_name FROM information_schema.columns"
            ).fetchall()
        }
        assert {("sys_loads", "accept_dates"), ("sys_loads", "content_key")} <= cols
        assert store.con.execute("SELECT accept_dates FROM sys_loads").fetchall() == [(False,)]
    fresh = duckdb.connect()
    from pipeline.store.database import SCHEMA

    fresh.execute(SCHEMA)
    every = set(
        fresh.execute("SELECT table_name, column_name FROM information_schema.columns").fetchall()
    )
    assert every <= cols


def _last_column(con, table: str) -> str:
    return con.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_name = ? "
        "ORDER BY ordinal_position DESC LIMIT 1",
        [table],
    ).fetchone()[0]
