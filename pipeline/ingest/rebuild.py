"""Rebuild a store from its raw files: everything derived is dropped and every original is
loaded again, in manifest order, with the options it was first loaded with.

The quality office's records (nonconformities, actions, audit findings) are not derived
from the raw files: they are copied over as they are.

The result must equal the store it replaces, table by table (content checksums, ignoring
only when things happened: load times, the audit log). ``sapat rebuild`` writes the new
store beside the old one, compares, and swaps them only when asked.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pandas as pd

from pipeline.errors import SapatError
from pipeline.ingest.layout import mapping_from_json
from pipeline.ingest.load import ingest_file
from pipeline.quality import RECORD_TABLES
from pipeline.store import Store
from pipeline.store.snapshots import checksum

#: Columns that record when, not what: left out of the comparison.
TIMING = {
    "sys_loads": ("loaded_at", "tool_version", "notes"),
    "sys_indicator_state": ("computed_at",),
}
#: Tables left out of the comparison: the audit log records this very rebuild.
UNCOMPARED = ("sys_audit",)


@dataclass
class Comparison:
    table: str
    rows_before: int
    rows_after: int
    same: bool


def table_checksums(path: Path) -> dict[str, tuple[int, str]]:
    """(rows, checksum) of every table of a store, timing columns left out."""
    con = duckdb.connect(str(path), read_only=True)
    try:
        names = [
            r[0]
            for r in con.execute("SELECT table_name FROM duckdb_tables() ORDER BY 1").fetchall()
        ]
        out = {}
        for name in names:
            if name in UNCOMPARED:
                continue
            drop = TIMING.get(name, ())
            source = f"(SELECT * EXCLUDE ({', '.join(drop)}) FROM {name})" if drop else name
            out[name] = checksum(con, source)
        return out
    finally:
        con.close()


def manifest(path: Path) -> list[dict]:
    """The loads of a store in load order (every one ever loaded, replaced ones too)."""
    con = duckdb.connect(str(path), read_only=True)
    try:
        frame = con.execute("SELECT * FROM sys_loads ORDER BY load_id").fetchdf()
    finally:
        con.close()
    return frame.to_dict("records")


def _given(row: dict, key: str):
    """A manifest value, None where the manifest holds none (NULL read as NaN)."""
    value = row.get(key)
    return None if value is None or (not isinstance(value, str) and pd.isna(value)) else value


def rebuild(
    old: Path,
    new: Path,
    catalog,
    registry,
    *,
    key: bytes,
    recompute=None,
    progress=None,
    window_minutes: float = 60.0,
    speeder_fraction: float = 0.5,
) -> list[Comparison]:
    """Load every original of ``old`` again into a new store ``new``; returns the
    comparison of every table. ``recompute(store)`` recomputes the indicators when given.
    """
    if new.exists():
        raise SapatError(
            "the rebuilt store's file exists already",
            file=str(new),
            expected="a new path, or remove the old attempt",
        )
    loads = manifest(old)
    with Store(new, raw_dir=None, audit_key=key) as store:
        store.raw_dir = Path(loads[0]["raw_path"]).parents[2] if loads else store.raw_dir
        # the quality office's records are not derived from the raw files: copied as they are
        store.carry_records(old)
        withdrawn: list[dict] = []  # replayed, to be taken back again

        def take_back(row: dict) -> None:
            versions = {
                e.version: catalog.get(row["instrument"], e.version)
                for e in catalog.versions[row["instrument"]]
            }
            store.actor = row["withdrawn_by"] or store.actor
            store.unload(
                int(row["load_id"]),
                row["withdrawn_why"] or "",
                versions,
                window_minutes=window_minutes,
                speeder_fraction=speeder_fraction,
            )
            withdrawn.remove(row)

        for k, row in enumerate(loads, start=1):
            # a load taken back before this file was loaded again is taken back first
            for earlier in [
                w
                for w in withdrawn
                if w["sha256"] == row["sha256"] or w["content_key"] == row["content_key"]
            ]:
                take_back(earlier)
            raw = Path(row["raw_path"])
            if not raw.exists():
                raise SapatError(
                    f"the original of load {row['load_id']} ({row['file_name']}) is missing",
                    file=str(raw),
                    expected="the workspace's data/raw kept as Sapat left it",
                )
            set_values = _given(row, "set_values")
            result = ingest_file(
                raw,
                store,
                catalog,
                registry,
                key=key,
                instrument=row["instrument"],
                wave=row["wave"],
                dialect=row["dialect"],
                sheet=_given(row, "sheet"),
                mapping=mapping_from_json(_given(row, "mapping")),
                set_values=json.loads(set_values) if set_values else None,
                duplicates=row["duplicates"],
                replace=_given(row, "replaces") is not None,
                file_name=row["file_name"],
                accept_dates=bool(_given(row, "accept_dates")),
            )
            if result.status != "loaded":
                why = result.errors[0]["message"] if result.errors else "; ".join(result.notes)
                raise SapatError(
                    f"load {row['load_id']} ({row['file_name']}) did not load again "
                    f"({result.status}: {why})",
                    file=str(raw),
                )
            if progress:
                progress("rebuild", k, len(loads))
            if row["status"] == "withdrawn":
                withdrawn.append(row)
        for row in list(withdrawn):  # the others: after every load
            take_back(row)
        if recompute is not None:
            recompute(store)
        store.audit("rebuild", str(old.name), f"{len(loads)} loads again")
    before, after = table_checksums(old), table_checksums(new)
    for table in RECORD_TABLES:  # an older store without them: carried over as none
        if table not in before and after.get(table, (0, ""))[0] == 0:
            before[table] = after.get(table, (0, ""))
    return [
        Comparison(
            t, before.get(t, (0, ""))[0], after.get(t, (0, ""))[0], before.get(t) == after.get(t)
        )
        for t in sorted(set(before) | set(after))
    ]
