"""Test helper for the ingestion robustness tests (idempotency, atomicity, privacy, CLI).

Small synthetic exports, a canonical view of the store that does not depend on load
order (rows keyed by the file's sha256 and its ``source_row``, never by ``load_id`` or
``response_id``), and the invariants every committed load must satisfy.
"""

from __future__ import annotations

import csv
import hashlib
import sys
from collections import Counter
from pathlib import Path

import duckdb

#: Tables whose rows carry a load_id (a load's whole footprint in the store).
LOAD_TABLES = ("fct_answer_counts", "fct_comments", "qa_quarantine", "qa_flags")
EXPORT_SUFFIXES = (".csv", ".xlsx")


def export_files(folder: Path) -> list[Path]:
    """Every export under ``folder``, sorted (truth.json and the rest left out)."""
    return sorted(p for p in Path(folder).rglob("*") if p.suffix in EXPORT_SUFFIXES)


def sha256_of(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def sapat_command() -> list[str]:
    """The ``sapat`` console script of this interpreter (or its equivalent)."""
    script = Path(sys.executable).parent / "sapat"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "import sys; from pipeline.cli import app; sys.exit(app())"]


# ------------------------------------------------------------------ exports
def read_csv_rows(path: Path, encoding: str = "utf-8", delimiter: str = ",") -> list[list[str]]:
    with open(path, encoding=encoding, newline="") as fh:
        return list(csv.reader(fh, delimiter=delimiter))


def write_csv_rows(
    path: Path, rows: list[list[str]], encoding: str = "utf-8", delimiter: str = ","
) -> None:
    """Write rows the way ``sapat synth`` writes CSV exports (CRLF, minimal quoting)."""
    with open(path, "w", encoding=encoding, newline="") as fh:
        csv.writer(fh, delimiter=delimiter, lineterminator="\r\n").writerows(rows)


def split_google_forms_at_duplicate(truth: dict, out: Path) -> tuple[Path, Path, int, int]:
    """Replace one Google Forms export by two weekly downloads, cut between a planted
    duplicate submission and the original it repeats (the original in week 1, the
    repeat 45 s later in week 2), as when an office downloads responses every week.

    Returns (week1 path, week2 path, the repeat's row in week 2, the original's row in
    week 1), rows numbered as a spreadsheet shows them.
    """
    by_file = {f["file"]: f for f in truth["files"]}
    for fault in truth["faults"]:
        meta = by_file.get(fault["file"])
        if fault["kind"] == "duplicate_submission" and meta["dialect"] == "google_forms":
            break
    else:  # pragma: no cover - depends on the seed
        raise AssertionError("no planted duplicate in a Google Forms export; change the seed")
    src = out / fault["file"]
    rows = read_csv_rows(src)
    cut = fault["row"] - 1  # spreadsheet row r is rows[r - 1] (header is row 1)
    week1 = src.with_name(src.stem + "__week1.csv")
    week2 = src.with_name(src.stem + "__week2.csv")
    write_csv_rows(week1, rows[:cut])
    write_csv_rows(week2, [rows[0], *rows[cut:]])
    src.unlink()
    return week1, week2, 2, cut  # the repeat is the first response of week 2


# ---------------------------------------------------------------- canonical
def tables(con: duckdb.DuckDBPyConnection) -> set[str]:
    return {
        r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()
    }


def columns(con: duckdb.DuckDBPyConnection, table: str) -> list[str]:
    return [
        r[0]
        for r in con.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = ? "
            "ORDER BY ordinal_position",
            [table],
        ).fetchall()
    ]


def fact_tables(con: duckdb.DuckDBPyConnection) -> list[str]:
    return sorted(
        t
        for t in tables(con)
        if t.startswith("fct_") and t not in ("fct_answer_counts", "fct_comments")
    )


def canonical_of(con: duckdb.DuckDBPyConnection) -> dict[str, list[tuple]]:
    """The store's content independent of load order: sorted rows, keyed by file sha256
    and source row (load_id, response_id and loaded_at left out). For every table keyed
    by file, the sha256 is the first element of each row."""
    have = tables(con)
    out: dict[str, list[tuple]] = {}

    def q(sql: str) -> list[tuple]:
        return con.execute(sql).fetchall()

    if "sys_loads" not in have:
        return out
    out["sys_loads"] = q(
        """SELECT l.sha256, l.file_name, l.instrument, l.version, l.wave, l.dialect,
                  l.encoding, l.sheet, l.rows_read, l.rows_loaded, l.rows_quarantined,
                  l.rows_flagged, l.status, l.notes, r1.sha256 AS replaces,
                  r2.sha256 AS replaced_by
           FROM sys_loads l LEFT JOIN sys_loads r1 ON r1.load_id = l.replaces
                LEFT JOIN sys_loads r2 ON r2.load_id = l.replaced_by
           ORDER BY ALL"""
    )
    for t in fact_tables(con):
        cols = sorted(c for c in columns(con, t) if c not in ("load_id", "response_id"))
        out[f"{t}:columns"] = [tuple(cols)]
        body = ", ".join(f't."{c}"' for c in cols)
        out[t] = q(
            f"SELECT l.sha256, {body} FROM {t} t LEFT JOIN sys_loads l USING (load_id) ORDER BY ALL"
        )
    out["fct_answer_counts"] = q(
        """SELECT instrument, version, wave, programme, unit, study_level, teacher, discipline,
                  item, answer, sum(n)::BIGINT AS n
           FROM fct_answer_counts GROUP BY ALL ORDER BY ALL"""
    )
    out["fct_answer_counts:by_file"] = q(
        """SELECT l.sha256, c.instrument, c.version, c.wave, c.programme, c.unit, c.study_level,
                  c.teacher, c.discipline, c.item, c.answer, sum(c.n)::BIGINT AS n
           FROM fct_answer_counts c LEFT JOIN sys_loads l USING (load_id)
           GROUP BY ALL ORDER BY ALL"""
    )
    out["fct_comments"] = q(
        """SELECT l.sha256, (c.response_id & 4294967295)::BIGINT AS source_row, c.instrument,
                  c.wave, c.programme, c.unit, c.item, c.text
           FROM fct_comments c LEFT JOIN sys_loads l USING (load_id) ORDER BY ALL"""
    )
    out["qa_quarantine"] = q(
        """SELECT q.sha256, l.sha256 AS load_sha256, q.source_row, q.column_name,
                  q.check_name, q.value, q.reason, q.raw::VARCHAR AS raw
           FROM qa_quarantine q LEFT JOIN sys_loads l USING (load_id) ORDER BY ALL"""
    )
    out["qa_flags"] = q(
        """SELECT l.sha256, f.source_row, f.flag, f.detail
           FROM qa_flags f LEFT JOIN sys_loads l USING (load_id) ORDER BY ALL"""
    )
    for t in ("dim_items", "dim_choices", "dim_units"):
        if t in have:
            out[t] = q(f"SELECT * FROM {t} ORDER BY ALL")
    return out


def canonical(db: Path) -> dict[str, list[tuple]]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return canonical_of(con)
    finally:
        con.close()


def digest(canon: dict[str, list[tuple]]) -> str:
    """A fingerprint of a canonical view (equal views, equal fingerprints)."""
    return hashlib.sha256(repr(sorted(canon.items())).encode()).hexdigest()


def only_files(canon: dict[str, list[tuple]], shas: set[str]) -> dict[str, list[tuple]]:
    """The part of a canonical view that belongs to these files (by sha256)."""
    keyed = [k for k in canon if k == "sys_loads" or k.startswith(("fct_", "qa_"))]
    keyed = [k for k in keyed if k not in ("fct_answer_counts",) and ":columns" not in k]
    return {k: [r for r in canon[k] if r[0] in shas] for k in keyed}


def diff(a: dict[str, list[tuple]], b: dict[str, list[tuple]], limit: int = 4) -> list[str]:
    """Readable differences between two canonical views (empty when equal)."""
    out = []
    for k in sorted(set(a) | set(b)):
        ra, rb = Counter(a.get(k, [])), Counter(b.get(k, []))
        if ra == rb:
            continue
        only_a = list((ra - rb).elements())
        only_b = list((rb - ra).elements())
        out.append(f"{k}: {len(only_a)} rows only in the first, {len(only_b)} only in the second")
        out += [f"    first only:  {short(r)}" for r in only_a[:limit]]
        out += [f"    second only: {short(r)}" for r in only_b[:limit]]
    return out


def short(row: tuple, width: int = 220) -> str:
    text = repr(tuple(v[:12] if isinstance(v, str) and len(v) == 64 else v for v in row))
    return text if len(text) <= width else text[: width - 1] + "…"


# --------------------------------------------------------------- invariants
def consistency_problems(con: duckdb.DuckDBPyConnection) -> list[str]:
    """What breaks "each file is in the store completely or not at all"."""
    have = tables(con)
    if "sys_loads" not in have:
        leftovers = [t for t in have if t.startswith(("fct_", "qa_"))]
        return [
            f"{t} has rows but there is no manifest"
            for t in leftovers
            if con.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
        ]
    problems = []
    facts = fact_tables(con)
    for t in [*facts, *LOAD_TABLES]:
        if t not in have:
            continue
        orphans = con.execute(
            f"SELECT DISTINCT load_id FROM {t} WHERE load_id NOT IN (SELECT load_id FROM "
            "sys_loads WHERE status = 'loaded')"
        ).fetchall()
        if orphans:
            problems.append(f"{t} holds rows of loads missing from the manifest: {orphans}")
    dup = con.execute(
        "SELECT sha256, count(*) FROM sys_loads WHERE status = 'loaded' GROUP BY 1 HAVING count(*) > 1"
    ).fetchall()
    if dup:
        problems.append(f"files loaded more than once: {dup}")
    loads = con.execute(
        """SELECT load_id, sha256, file_name, instrument, version, rows_read, rows_loaded,
                  rows_quarantined, rows_flagged FROM sys_loads WHERE status = 'loaded'"""
    ).fetchall()
    for load_id, sha, name, inst, version, read, loaded, quarantined, flagged in loads:
        where = f"load {load_id} ({name})"
        table = f"fct_{inst}"
        if read != loaded + quarantined:
            problems.append(f"{where}: rows_read {read} != {loaded} + {quarantined}")
        n_fact = con.execute(f"SELECT count(*) FROM {table} WHERE load_id = ?", [load_id])
        n_fact = n_fact.fetchone()[0]
        if n_fact != loaded:
            problems.append(f"{where}: {n_fact} rows in {table}, manifest says {loaded}")
        bad_ids = con.execute(
            f"SELECT count(*) FROM {table} WHERE load_id = ? AND "
            "response_id <> (load_id::BIGINT << 32) | source_row",
            [load_id],
        ).fetchone()[0]
        if bad_ids:
            problems.append(f"{where}: {bad_ids} rows whose response_id is not load<<32|row")
        n_quar, wrong_sha = con.execute(
            "SELECT count(DISTINCT source_row), count(*) FILTER (WHERE sha256 <> ?) "
            "FROM qa_quarantine WHERE load_id = ?",
            [sha, load_id],
        ).fetchone()
        if n_quar != quarantined or wrong_sha:
            problems.append(
                f"{where}: {n_quar} rows in quarantine ({wrong_sha} with another "
                f"sha256), manifest says {quarantined}"
            )
        n_flag = con.execute(
            "SELECT count(DISTINCT response_id) FROM qa_flags WHERE load_id = ?", [load_id]
        ).fetchone()[0]
        if n_flag != flagged:
            problems.append(f"{where}: {n_flag} rows flagged, manifest says {flagged}")
        items = [
            r[0]
            for r in con.execute(
                "SELECT item FROM dim_items WHERE instrument = ? AND version = ? AND "
                "scale_kind IS NOT NULL AND role IN ('item', 'outcome')",
                [inst, version],
            ).fetchall()
        ]
        counted = dict(
            con.execute(
                "SELECT item, sum(n) FROM fct_answer_counts WHERE load_id = ? GROUP BY item",
                [load_id],
            ).fetchall()
        )
        if items:
            sums = ", ".join(f'count("{i}")' for i in items)
            answered = con.execute(
                f"SELECT {sums} FROM {table} WHERE load_id = ? AND NOT excluded", [load_id]
            ).fetchone()
            expected = {i: n for i, n in zip(items, answered, strict=True) if n}
            if {i: int(n) for i, n in counted.items()} != expected:
                problems.append(f"{where}: answer counts do not add up to the stored answers")
        n_comments = con.execute(
            "SELECT count(*) FROM fct_comments c WHERE load_id = ? AND NOT EXISTS ("
            f"SELECT 1 FROM {table} t WHERE t.response_id = c.response_id)",
            [load_id],
        ).fetchone()[0]
        if n_comments:
            problems.append(f"{where}: {n_comments} comments of rows not in {table}")
    return problems


# ------------------------------------------------------------- load orders
_CACHE: dict = {}


def ingest_in_order(job: tuple[list[tuple[str, str, str]], str, bytes], threads: int = 1) -> dict:
    """Load files ``[(path, instrument, wave)]`` in this order into a fresh store at
    ``db``; the canonical view. Runs in worker processes (module-level, picklable)."""
    from pipeline.ingest import ingest_file
    from pipeline.instruments import example_catalog
    from pipeline.registry import example_registry
    from pipeline.store import Store

    files, db, key = job
    if not _CACHE:
        _CACHE["catalog"], _CACHE["registry"] = example_catalog(), example_registry()
    db = Path(db)
    statuses = []
    with Store(db, raw_dir=db.parent / "raw") as store:
        store.con.execute(f"SET threads TO {threads}")  # tiny tables: threads only cost
        for path, instrument, wave in files:
            r = ingest_file(
                path,
                store,
                _CACHE["catalog"],
                _CACHE["registry"],
                key=key,
                instrument=instrument,
                wave=wave,
            )
            statuses.append((Path(path).name, r.status, r.errors[:1]))
    con = duckdb.connect(str(db), read_only=True)
    try:
        canon = canonical_of(con)
        return {
            "statuses": statuses,
            "digest": digest(canon),
            "loads": len(canon["sys_loads"]),
            "problems": consistency_problems(con),
        }
    finally:
        con.close()
