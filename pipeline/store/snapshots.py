"""Published snapshots: what readers (the CLI's reads, the dashboard, the review pack) open.

After each load or recompute the store writes a new, consistent, read-only DuckDB file
holding the indicator tables, the declarations (``dim_*``) and the load manifest with
counts of what was set aside and flagged, the quality office's records (nonconformities,
actions, audit findings), plus ``snapshot_meta``: one row per table with
its rows and a content checksum. Then it switches the pointer file ``CURRENT`` to it with
one atomic rename. Readers open the file ``CURRENT`` names, never the live database: a
reader never blocks a load and never sees half a publish. The last few snapshots are
kept, so a reader that opened one a moment ago keeps reading it.

Measured (docs/tables.md, benchmarks/README.md): publishing the demo store's tables takes
a fraction of a second; a copied snapshot of only the derived tables is far smaller than
the live file, which also holds every typed answer.
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from pipeline.quality import RECORD_TABLES
from pipeline.store.tables import TABLES

POINTER = "CURRENT"
#: Snapshots kept besides the current one (readers that opened one keep reading it).
KEEP = 3
#: Tables copied beside the indicator tables.
DECLARATIONS = ("dim_units", "dim_items", "dim_choices", "dim_disciplines")
#: The quality office's records, copied as they are (no respondent data in them):
#: nonconformities, corrective and preventive actions, internal audit findings.
RECORDS = RECORD_TABLES

_LOADS = """SELECT l.load_id, l.file_name, l.instrument, l.version, l.wave, l.dialect,
                   l.layout, l.rows_read, l.rows_loaded, l.rows_quarantined, l.rows_excluded,
                   l.rows_flagged, l.status, l.loaded_at
            FROM sys_loads l ORDER BY l.load_id"""
_FLAGS = """SELECT load_id, flag, excluded, count(DISTINCT response_id) AS rows
            FROM qa_flags GROUP BY ALL ORDER BY ALL"""
_QUARANTINE = """SELECT load_id, check_name, column_name, count(*) AS rows
                 FROM qa_quarantine GROUP BY ALL ORDER BY ALL"""
#: free-text answers without any link to a respondent (no response id, sorted by text),
#: for the roles that may read comments; the dashboard shows a unit's comments only when
#: they are at least ``comment_min_n``
_COMMENTS = """SELECT c.instrument, c.wave, coalesce(c.unit, c.programme) AS unit, c.item, c.text
               FROM fct_comments c JOIN sys_loads l USING (load_id)
               WHERE l.status = 'loaded' ORDER BY ALL"""
#: Published QA summaries (counts only: no answer, no raw value) and anonymous comments.
SUMMARIES = {
    "pub_loads": _LOADS,
    "pub_flags": _FLAGS,
    "pub_quarantine": _QUARANTINE,
    "pub_comments": _COMMENTS,
}


def checksum(con: duckdb.DuckDBPyConnection, table: str) -> tuple[int, str]:
    """(rows, content checksum) of a table: the sum of its rows' hashes, so the same rows
    in any order give the same checksum, and a changed or duplicated row another."""
    rows, total = con.execute(
        f"SELECT count(*), coalesce(sum(hash(*COLUMNS(*))::HUGEINT), 0) FROM {table}"
    ).fetchone()
    return int(rows), str(total)


def publish(con: duckdb.DuckDBPyConnection, directory: Path, signature: str = "") -> Path:
    """Write a snapshot of the store behind ``con`` into ``directory`` and make it current.

    ``con`` must see a committed state (call it outside a transaction). Returns the
    snapshot's path.
    """
    directory.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    name = f"snapshot-{stamp}-{os.getpid()}.duckdb"
    final = directory / name
    part = directory / (name + ".part")
    have = {
        r[0]
        for r in con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database()"
        ).fetchall()
    }
    snap = duckdb.connect(str(part))
    try:
        meta = []
        sources = [(t, f"SELECT * FROM {t}") for t in (*TABLES, *DECLARATIONS) if t in have]
        sources += list(SUMMARIES.items())
        sources += [(t, f"SELECT * FROM {t}") for t in RECORDS if t in have]
        for table, query in sources:
            data = con.sql(query).to_arrow_table()  # noqa: F841 (a replacement scan)
            snap.execute(f"CREATE TABLE {table} AS SELECT * FROM data")
            rows, total = checksum(snap, table)
            meta.append((table, rows, total))
        snap.execute("""CREATE TABLE snapshot_meta (snapshot VARCHAR, published_at TIMESTAMP,
                        signature VARCHAR, table_name VARCHAR, rows BIGINT, checksum VARCHAR)""")
        snap.executemany(
            "INSERT INTO snapshot_meta VALUES (?, ?, ?, ?, ?, ?)",
            [
                (name, datetime.now(UTC).replace(tzinfo=None), signature, t, r, c)
                for t, r, c in meta
            ],
        )
        snap.execute("CHECKPOINT")
    finally:
        snap.close()
    part.replace(final)
    _point(directory, name)
    _prune(directory, name)
    return final


def _point(directory: Path, name: str) -> None:
    tmp = directory / f".{POINTER}.{os.getpid()}"
    tmp.write_text(name + "\n", encoding="utf-8")
    os.replace(tmp, directory / POINTER)


def _prune(directory: Path, current: str) -> None:
    snaps = sorted(p for p in directory.glob("snapshot-*.duckdb") if p.name != current)
    for old in snaps[: max(0, len(snaps) - KEEP)]:
        try:
            old.unlink()
            Path(str(old) + ".wal").unlink(missing_ok=True)
        except OSError:
            pass


def current(directory: Path) -> Path | None:
    """The current snapshot's path, or None when nothing was published yet."""
    try:
        name = (directory / POINTER).read_text(encoding="utf-8").strip()
    except OSError:
        return None
    path = directory / name
    return path if name and path.exists() else None


def open_current(directory: Path, attempts: int = 5) -> duckdb.DuckDBPyConnection | None:
    """A read-only connection to the current snapshot (None when none is published).

    Between reading the pointer and opening the file a publish may have removed an old
    snapshot; then the pointer is read again.
    """
    for k in range(attempts):
        path = current(directory)
        if path is None:
            return None
        try:
            return duckdb.connect(str(path), read_only=True)
        except duckdb.IOException:
            if k == attempts - 1:
                raise
            time.sleep(0.02 * (k + 1))
    return None


def export_parquet(snapshot: Path, folder: Path) -> list[Path]:
    """Every table of a snapshot as ``<table>.parquet`` in ``folder`` (for warehouses)."""
    folder.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(snapshot), read_only=True)
    out = []
    try:
        import pyarrow.parquet as pq

        for (table,) in con.execute("SELECT table_name FROM duckdb_tables() ORDER BY 1").fetchall():
            path = folder / f"{table}.parquet"
            pq.write_table(con.sql(f"SELECT * FROM {table}").to_arrow_table(), path)
            out.append(path)
    finally:
        con.close()
    return out
