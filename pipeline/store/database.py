"""The only writer of the DuckDB store: schema, manifest, one transaction per file.

Tables (prefix = layer):

``sys_loads``          the load manifest: one row per file ever seen
``fct_<instrument>``   typed answers, one wide table per questionnaire (all versions;
                       a code means the same question in every version)
``fct_answer_counts``  load × wave × programme × (teacher × discipline) × item × answer → n,
                       the sufficient statistic for every per-item indicator and rank test
``fct_comments``       free-text answers (quality office only)
``qa_quarantine``      rejected rows with their reasons and raw values (no e-mails/names)
``qa_flags``           data-quality flags; nothing is deleted for a flag
``dim_units``, ``dim_items``, ``dim_choices``, ``dim_disciplines``   the declarations
                       at load time
``qa_nonconformities``, ``qa_actions``, ``qa_findings``   the quality office's records
                       (:mod:`pipeline.quality`): not derived from the raw files, so a
                       rebuild carries them over as they are

A file is loaded in one transaction: its rows, counts, quarantine, flags and its
manifest row, or nothing.
"""

from __future__ import annotations

import functools
import json
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from pipeline import __version__, quality
from pipeline.errors import SapatError
from pipeline.instruments import Catalog, ContextRole, Instrument, Role
from pipeline.store.tables import TABLES, Table, ddl

SCHEMA = """
CREATE TABLE IF NOT EXISTS sys_loads (
    load_id INTEGER PRIMARY KEY,
    sha256 VARCHAR NOT NULL,
    file_name VARCHAR NOT NULL,
    raw_path VARCHAR,
    instrument VARCHAR,
    version VARCHAR,
    wave VARCHAR,
    dialect VARCHAR,
    encoding VARCHAR,
    sheet VARCHAR,
    rows_read INTEGER NOT NULL,
    rows_loaded INTEGER NOT NULL,
    rows_quarantined INTEGER NOT NULL,
    rows_flagged INTEGER NOT NULL DEFAULT 0,
    rows_excluded INTEGER NOT NULL DEFAULT 0,
    layout VARCHAR NOT NULL DEFAULT 'wide',
    duplicates VARCHAR NOT NULL DEFAULT 'exclude',
    set_values VARCHAR,
    content_key VARCHAR,
    mapping VARCHAR,
    accept_dates BOOLEAN NOT NULL DEFAULT FALSE,
    withdrawn_by VARCHAR,
    withdrawn_why VARCHAR,
    status VARCHAR NOT NULL,
    replaces INTEGER,
    replaced_by INTEGER,
    notes VARCHAR,
    loaded_at TIMESTAMP NOT NULL,
    tool_version VARCHAR NOT NULL
);
CREATE TABLE IF NOT EXISTS qa_quarantine (
    load_id INTEGER NOT NULL,
    sha256 VARCHAR NOT NULL,
    source_row INTEGER NOT NULL,
    column_name VARCHAR,
    check_name VARCHAR NOT NULL,
    value VARCHAR,
    reason VARCHAR NOT NULL,
    raw JSON
);
CREATE TABLE IF NOT EXISTS qa_flags (
    load_id INTEGER NOT NULL,
    response_id BIGINT NOT NULL,
    source_row INTEGER NOT NULL,
    flag VARCHAR NOT NULL,
    detail VARCHAR,
    excluded BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE TABLE IF NOT EXISTS fct_comments (
    load_id INTEGER NOT NULL,
    response_id BIGINT NOT NULL,
    instrument VARCHAR NOT NULL,
    wave VARCHAR NOT NULL,
    programme VARCHAR,
    unit VARCHAR,
    item VARCHAR NOT NULL,
    text VARCHAR NOT NULL
);
CREATE TABLE IF NOT EXISTS fct_answer_counts (
    load_id INTEGER NOT NULL,
    instrument VARCHAR NOT NULL,
    version VARCHAR NOT NULL,
    wave VARCHAR NOT NULL,
    programme VARCHAR,
    unit VARCHAR,
    study_level TINYINT,
    teacher VARCHAR,
    discipline VARCHAR,
    item VARCHAR NOT NULL,
    answer TINYINT NOT NULL,
    n BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS sys_meta (key VARCHAR PRIMARY KEY, value VARCHAR);
CREATE TABLE IF NOT EXISTS sys_audit (
    seq BIGINT NOT NULL,
    at_utc TIMESTAMP NOT NULL,
    actor VARCHAR NOT NULL,
    action VARCHAR NOT NULL,
    object VARCHAR,
    outcome VARCHAR,
    prev_hash VARCHAR NOT NULL,
    hash VARCHAR NOT NULL
);
CREATE TABLE IF NOT EXISTS sys_indicator_state (
    instrument VARCHAR, wave VARCHAR, signature VARCHAR, computed_at TIMESTAMP
);
CREATE TABLE IF NOT EXISTS qa_nonconformities (
    nc_id INTEGER NOT NULL,
    source VARCHAR NOT NULL,     -- objective | decline | audit | manual
    objective VARCHAR,
    instrument VARCHAR,
    indicator VARCHAR,           -- item or dimension code
    unit VARCHAR,
    wave VARCHAR,
    detail VARCHAR,
    status VARCHAR NOT NULL,     -- candidate | confirmed | dismissed
    reason VARCHAR,
    created_at TIMESTAMP NOT NULL,
    decided_by VARCHAR,
    decided_at TIMESTAMP
);
CREATE TABLE IF NOT EXISTS qa_actions (
    action_id INTEGER NOT NULL,
    nc_id INTEGER,
    kind VARCHAR NOT NULL,       -- corrective | preventive
    unit VARCHAR,
    instrument VARCHAR,
    indicator VARCHAR,
    owner_process VARCHAR,
    due_date DATE,
    description VARCHAR,
    status VARCHAR NOT NULL,     -- open | in_progress | done | closed | cancelled
    opened_wave VARCHAR,         -- the wave whose results prompted it
    created_at TIMESTAMP NOT NULL,
    created_by VARCHAR,
    updated_at TIMESTAMP,
    closed_at TIMESTAMP,
    closed_by VARCHAR,
    closing_note VARCHAR
);
CREATE TABLE IF NOT EXISTS qa_findings (
    finding_id INTEGER NOT NULL,
    audit_date DATE NOT NULL,
    process VARCHAR,
    unit VARCHAR,
    kind VARCHAR NOT NULL,       -- nonconformity | observation | opportunity
    description VARCHAR,
    status VARCHAR NOT NULL,     -- open | closed
    created_at TIMESTAMP NOT NULL,
    created_by VARCHAR
);
"""
#: Version of the layout of the store's tables; a store of another version is rebuilt
#: from its raw files (``sapat rebuild``).
SCHEMA_VERSION = "2"

#: Columns every fct_<instrument> table has before its fields.
BASE_COLUMNS = {
    "response_id": "BIGINT",
    "load_id": "INTEGER",
    "source_row": "INTEGER",
    "instrument": "VARCHAR",
    "version": "VARCHAR",
    "wave": "VARCHAR",
    "programme": "VARCHAR",
    "unit": "VARCHAR",
    "submitted_at": "TIMESTAMP",
    "duration_s": "DOUBLE",
    "person_key": "VARCHAR",
    "submission_key": "VARCHAR",
    "dup_key": "VARCHAR",
    "answered": "SMALLINT",
    "excluded": "BOOLEAN",
}


#: DuckDB's memory limit while a file is loaded (:meth:`Store.loading`).
LOAD_MEMORY = "1GB"


def field_sql_type(inst: Instrument, f) -> str:
    """DuckDB type of a field's column: TINYINT codes, SMALLINT numbers, VARCHAR codes."""
    if f.role is Role.COMMENT:
        raise ValueError("comments are stored in fct_comments")
    if inst.scale_of(f) is not None:
        return "TINYINT"
    if f.base_type in ("integer",):
        return "SMALLINT"
    if f.base_type == "decimal":
        return "DOUBLE"
    return "VARCHAR"


def response_ids(load_id: int, source_rows) -> np.ndarray:
    """Traceable ids (int64): the load in the high 32 bits, the file row in the low ones."""
    return (np.int64(load_id) << np.int64(32)) | np.asarray(source_rows, dtype=np.int64)


@functools.cache
def _schema_columns() -> tuple[tuple[str, str, str, str | None], ...]:
    """(table, column, type, default) of every column ``SCHEMA`` declares, read from an
    empty in-memory database made with it."""
    con = duckdb.connect()
    try:
        con.execute(SCHEMA)
        return tuple(
            con.execute(
                "SELECT table_name, column_name, data_type, column_default "
                "FROM information_schema.columns ORDER BY table_name, ordinal_position"
            ).fetchall()
        )
    finally:
        con.close()


class Store:
    """A DuckDB database file, opened for writing by the CLI (one writer)."""

    def __init__(
        self,
        path: str | Path,
        *,
        raw_dir: str | Path | None = None,
        audit_key: bytes | None = None,
        actor: str | None = None,
    ) -> None:
        self.path = Path(path)
        #: the audit log's entries are chained with HMAC-SHA256 under this key (derived
        #: from the pseudonymisation key, kept outside the database)
        self.audit_key = audit_key
        self.actor = actor or default_actor()
        #: where the untouched originals go: the workspace's data/raw, or a folder ``raw``
        #: beside the database file
        self.raw_dir = Path(raw_dir) if raw_dir else self.path.parent / "raw"
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.con = duckdb.connect(str(self.path))
        except (duckdb.Error, OSError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else exc
            raise SapatError(
                f"cannot open the database ({reason}); is another Sapat command writing to "
                "it, and may this folder be written?",
                file=str(self.path),
            ) from exc
        try:
            self._check_version()
            self.con.execute(SCHEMA)
            for table in TABLES.values():
                self._ensure_declared(table)
        except BaseException:
            self.con.close()
            raise

    def _check_version(self) -> None:
        have = {
            r[0]
            for r in self.con.execute("SELECT table_name FROM information_schema.tables").fetchall()
        }
        if "sys_loads" in have and "sys_meta" not in have:
            raise SapatError(
                "this database was made by an older version of Sapat whose tables are laid out "
                "differently",
                file=str(self.path),
                expected="a new database: move this one aside and load the files again "
                "(the originals are in data/raw)",
            )
        self.con.execute(SCHEMA)
        self._add_new_columns()
        row = self.con.execute("SELECT value FROM sys_meta WHERE key = 'schema'").fetchall()
        if not row:
            self.con.execute("INSERT INTO sys_meta VALUES ('schema', ?)", [SCHEMA_VERSION])
        elif row[0][0] != SCHEMA_VERSION:
            raise SapatError(
                f"this database has table layout {row[0][0]}; this Sapat writes layout "
                f"{SCHEMA_VERSION}",
                file=str(self.path),
                expected="a new database: move this one aside and load the files again",
            )

    def _add_new_columns(self) -> None:
        """Columns added to the store's own tables (``SCHEMA``) since this database was
        made are added to it, with their defaults (``accept_dates`` false, the others
        empty): a database of an earlier release of the same layout keeps working."""
        have = {
            (t, c)
            for t, c in self.con.execute(
                "SELECT table_name, column_name FROM information_schema.columns"
            ).fetchall()
        }
        for table, column, kind, default in _schema_columns():
            if (table, column) not in have:
                extra = f" DEFAULT {default}" if default is not None else ""
                self.con.execute(f'ALTER TABLE {table} ADD COLUMN "{column}" {kind}{extra}')

    def _ensure_declared(self, table: Table) -> None:
        """Create a declared table; one whose columns differ from the declaration (an
        older release's) is derived data: dropped, made anew and marked for recompute."""
        have = self.con.execute(
            "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = ? "
            "ORDER BY ordinal_position",
            [table.name],
        ).fetchall()
        want = [(c.name, c.type) for c in table.columns]
        if have and have != want:
            self.con.execute(f"DROP TABLE {table.name}")
            self.con.execute("DELETE FROM sys_indicator_state")
        self.con.execute(ddl(table))

    def close(self) -> None:
        self.con.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -------------------------------------------------------------- reading
    def load_of(self, sha256: str) -> dict | None:
        """The manifest row of a file already loaded (status loaded), if any."""
        row = self.con.execute(
            "SELECT * FROM sys_loads WHERE sha256 = ? AND status = 'loaded' LIMIT 1", [sha256]
        ).fetchdf()
        return None if row.empty else row.iloc[0].to_dict()

    def loads(self) -> pd.DataFrame:
        return self.con.execute("SELECT * FROM sys_loads ORDER BY load_id").fetchdf()

    def has_table(self, name: str) -> bool:
        return bool(
            self.con.execute(
                "SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [name]
            ).fetchall()[0][0]
        )

    def next_load_id(self) -> int:
        return int(
            self.con.execute("SELECT coalesce(max(load_id), 0) + 1 FROM sys_loads").fetchall()[0][0]
        )

    # ------------------------------------------------------------- raw files
    def raw_path(self, source: Path, instrument: str, wave: str, sha256: str) -> Path:
        """Where the untouched original of a load is kept:
        ``<raw_dir>/<instrument>/<wave>/<sha256>.<ext>``."""
        ext = Path(source).suffix.lower().lstrip(".") or "bin"
        return self.raw_dir / instrument / wave / f"{sha256}.{ext}"

    def keep_raw(self, source: Path, dest: Path) -> bool:
        """Copy the file once to ``dest`` (read-only, never modified); True when this call
        made the copy (False: it was there already)."""
        if dest.exists():
            return False
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            tmp = dest.with_suffix(dest.suffix + ".part")
            shutil.copyfile(source, tmp)
            tmp.replace(dest)
            dest.chmod(0o444)
        except OSError as exc:
            raise SapatError(
                f"cannot keep the original file ({exc.strerror})",
                file=str(dest),
                expected=f"a folder Sapat may write to for the originals ({self.raw_dir})",
            ) from exc
        return True

    def drop_raw(self, dest: Path) -> None:
        """Remove a copy made for a load that did not happen."""
        try:
            dest.chmod(0o644)
            dest.unlink()
        except OSError:
            pass

    # --------------------------------------------------------------- writing
    @contextmanager
    def loading(self) -> Iterator[None]:
        """DuckDB set up for loading a file, then back to its defaults.

        - Memory capped at :data:`LOAD_MEMORY` (DuckDB's own default, 80 % of RAM, comes back
          afterwards). Left alone, DuckDB keeps every block a load writes cached while
          RAM allows, so a load's memory would grow with the file: with the cap it
          evicts them (they are on disk) and spills its larger intermediate results,
          and a 5M-row file loads in about the memory of a 1M-row one.
        - The load's commit checkpoints straight into the database file. The rows are
          written to it as they arrive (DuckDB's optimistic writes); but a load also
          marks its duplicates, and once rows written in a transaction are updated,
          DuckDB's commit copies all of them into the write-ahead log before the
          checkpoint copies them again (a third of a second per million rows). A
          checkpoint is as atomic as the log: a crash leaves the old or the new file.
        """
        self.con.execute("SET memory_limit = '1GB'").fetchall()  # LOAD_MEMORY
        self.con.execute("SET checkpoint_threshold = '1kB'").fetchall()
        try:
            yield
        finally:
            self.con.execute("RESET memory_limit").fetchall()
            self.con.execute("RESET checkpoint_threshold").fetchall()

    @contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        self.con.execute("BEGIN TRANSACTION")
        try:
            yield self.con
        except BaseException:
            self.con.execute("ROLLBACK")
            raise
        else:
            self.con.execute("COMMIT")

    def ensure_fact_table(self, inst: Instrument) -> str:
        """Create fct_<instrument>, or add the columns a new version brings."""
        table = fact_table(inst.id)
        cols = dict(BASE_COLUMNS)
        for f in inst.by_role(Role.CONTEXT, Role.ITEM, Role.OUTCOME):
            if f.column in cols:  # programme, unit: base columns
                continue
            cols[f.column] = field_sql_type(inst, f)
        if not self.has_table(table):
            body = ", ".join(f'"{c}" {t}' for c, t in cols.items())
            self.con.execute(f"CREATE TABLE {table} ({body})")
        else:
            have = set(
                self.con.execute(
                    "SELECT column_name FROM information_schema.columns WHERE table_name = ?",
                    [table],
                ).fetchdf()["column_name"]
            )
            for c, t in cols.items():
                if c not in have:
                    self.con.execute(f'ALTER TABLE {table} ADD COLUMN "{c}" {t}')
        return table

    def insert(
        self, table: str, frame: pd.DataFrame | pa.Table, constants: dict | None = None
    ) -> None:
        """Append rows (matched to the table's columns by name); ``constants`` are
        columns with the same value in every row."""
        if not len(frame):
            return
        constants = constants or {}
        extra = "".join(f', ? AS "{c}"' for c in constants)
        # read by DuckDB from this local variable (a replacement scan): an object
        # registered inside a transaction stays in memory until the transaction ends,
        # even once unregistered, so a large load would hold every chunk it wrote
        _rows = frame  # noqa: F841
        self.con.execute(
            f"INSERT INTO {table} BY NAME SELECT *{extra} FROM _rows", list(constants.values())
        ).fetchall()

    def _count_columns(self, inst: Instrument) -> tuple[list[str], str, list[str], str] | None:
        """(scale items, group keys, ``item|code`` count columns, out-of-code count) of
        the answer counts of a questionnaire version, as SQL; None without scale items."""
        codes = scale_codes(inst)
        items = list(codes)
        if not items:
            return None
        teacher = "teacher" if inst.has_context(ContextRole.TEACHER) else "NULL"
        discipline = "discipline" if inst.has_context(ContextRole.DISCIPLINE) else "NULL"
        level = "study_level" if inst.has_context(ContextRole.STUDY_LEVEL) else "NULL"
        keys = (
            f"load_id, instrument, version, wave, programme, unit, {level}::TINYINT AS "
            f"study_level, {teacher}::VARCHAR AS teacher, {discipline}::VARCHAR AS discipline"
        )
        counts = [f'count_if("{c}" = {v}) AS "{c}|{v}"' for c in items for v in codes[c]]
        # coalesce: count_if over a group whose answers are all missing is NULL, which
        # would make the whole sum NULL and hide the other items' odd answers
        other = " + ".join(
            f'coalesce(count_if("{c}" NOT IN ({", ".join(map(str, codes[c]))})), 0)' for c in items
        )
        return items, keys, counts, other

    def wide_counts(
        self, inst: Instrument, rows: str | pa.Table, params: list | dict
    ) -> pa.Table | None:
        """Answer counts of some rows, one wide row per group: a column ``item|code`` per
        item and answer code, ``_other`` for values outside the codes. None when the
        questionnaire has no scale items.

        ``rows`` is a query (with ``params``), or fact rows as Arrow, with ``params`` the
        columns every row shares (``load_id``, ``instrument``, ...).
        """
        sql = self._count_columns(inst)
        if sql is None:
            return None
        _, keys, counts, other = sql
        if isinstance(rows, pa.Table):
            _rows = rows  # noqa: F841 (a replacement scan, as in insert)
            extra = "".join(f', ? AS "{c}"' for c in params)
            rows, params = f"SELECT *{extra} FROM _rows", list(params.values())
        return self.con.sql(
            f"SELECT {keys}, {', '.join(counts)}, {other} AS _other FROM ({rows}) GROUP BY ALL",
            params=params,
        ).to_arrow_table()

    def refresh_counts(
        self, versions: list[Instrument], wave: str, partial: list[pa.Table] | None = None
    ) -> None:
        """Rebuild the answer counts of one questionnaire × wave (duplicates excluded).

        ``versions`` are the questionnaire versions whose rows the wave holds; each
        version's rows are counted over its own items. Rebuilding the whole wave keeps
        the counts right when a later file changes which submission counts as the first.

        ``partial``: :meth:`wide_counts` of every row the wave holds, taken while they
        were written (a first load of a wave, one version); the rows excluded as
        duplicates are subtracted instead of counting the wave again.
        """
        table = fact_table(versions[0].id)
        self.con.execute(
            "DELETE FROM fct_answer_counts WHERE instrument = ? AND wave = ?",
            [versions[0].id, wave],
        ).fetchall()
        for inst in versions:
            sql = self._count_columns(inst)
            if sql is None:
                continue
            items, keys, counts, other = sql
            # One pass: a count per item × answer code for each group (a wide row), then
            # unpivoted; the groups are few, so this is several times faster than
            # unpivoting every answer. Values outside an item's codes (validation keeps
            # them out) take the general path.
            names = [c.rsplit(" AS ", 1)[1] for c in counts]
            if partial and len(versions) == 1:
                minus = self.wide_counts(
                    inst,
                    f"SELECT * FROM {table} WHERE wave = ? AND version = ? AND excluded",
                    [wave, inst.version],
                )
                self.con.register("_partial", pa.concat_tables(partial, promote_options="default"))
                self.con.register("_minus", minus)  # small tables: a row per group
                group = ", ".join(COUNT_GROUP)
                sums = ", ".join(f"sum({n})::BIGINT AS {n}" for n in [*names, "_other"])
                negated = ", ".join(f"-{n} AS {n}" for n in [*names, "_other"])
                self.con.execute(
                    f"""
                    CREATE OR REPLACE TEMP TABLE _counts AS
                    SELECT {group}, {sums}
                    FROM (SELECT * FROM _partial
                          UNION ALL BY NAME SELECT {group}, {negated} FROM _minus)
                    GROUP BY {group}
                    """
                ).fetchall()
                self.con.unregister("_partial")
                self.con.unregister("_minus")
            else:
                self.con.execute(
                    f"""
                    CREATE OR REPLACE TEMP TABLE _counts AS
                    SELECT {keys}, {", ".join(counts)}, {other} AS _other
                    FROM {table} WHERE wave = ? AND version = ? AND NOT excluded
                    GROUP BY ALL
                    """,
                    [wave, inst.version],
                ).fetchall()
            if self.con.execute("SELECT sum(_other) FROM _counts").fetchall()[0][0]:
                self.con.execute(
                    f"""
                    INSERT INTO fct_answer_counts
                    SELECT {keys}, item, answer, count(*) AS n
                    FROM (
                        UNPIVOT (SELECT * FROM {table}
                                 WHERE wave = ? AND version = ? AND NOT excluded)
                        ON {", ".join(f'"{c}"' for c in items)} INTO NAME item VALUE answer
                    )
                    GROUP BY ALL
                    """,
                    [wave, inst.version],
                ).fetchall()
            else:
                self.con.execute(
                    """
                    INSERT INTO fct_answer_counts
                    SELECT load_id, instrument, version, wave, programme, unit, study_level,
                           teacher, discipline, split_part(k, '|', 1) AS item,
                           split_part(k, '|', 2)::TINYINT AS answer, n
                    FROM (UNPIVOT (SELECT * EXCLUDE (_other) FROM _counts)
                          ON COLUMNS('\\|') INTO NAME k VALUE n)
                    WHERE n > 0
                    """
                ).fetchall()
            self.con.execute("DROP TABLE _counts").fetchall()

    def loads_to_replace(self, instrument: str, wave: str, dialect: str) -> list[tuple]:
        """(load_id, file_name) of the loaded exports a newer one replaces (``--replace``)."""
        return self.con.execute(
            "SELECT load_id, file_name FROM sys_loads WHERE instrument = ? AND wave = ? "
            "AND status = 'loaded' AND dialect = ?",
            [instrument, wave, dialect],
        ).fetchall()

    def wave_has_other_rows(self, table: str, wave: str, load_id: int) -> bool:
        return bool(
            self.con.execute(
                f"SELECT count(*) FROM (SELECT 1 FROM {table} WHERE wave = ? AND load_id <> ? "
                "LIMIT 1)",
                [wave, load_id],
            ).fetchall()[0][0]
        )

    def submissions_seen(self, table: str, wave: str, load_id: int, keys: list[str]) -> set[str]:
        """Which of these submission keys earlier loads of the wave hold."""
        _keys = pd.DataFrame({"k": keys})  # noqa: F841 (a replacement scan)
        return set(
            self.con.execute(
                f"SELECT DISTINCT submission_key FROM {table} JOIN _keys ON submission_key = k "
                "WHERE wave = ? AND load_id <> ?",
                [wave, load_id],
            ).fetchdf()["submission_key"]
        )

    def load_with_content(self, instrument: str, wave: str, content: str) -> tuple | None:
        """(load_id, file_name) of a loaded file of the wave with the same rows, if any."""
        rows = self.con.execute(
            "SELECT load_id, file_name FROM sys_loads WHERE instrument = ? AND wave = ? AND "
            "status = 'loaded' AND content_key = ? LIMIT 1",
            [instrument, wave, content],
        ).fetchall()
        return rows[0] if rows else None

    def wave_versions(self, table: str, wave: str) -> list[str]:
        return [
            v
            for (v,) in self.con.execute(
                f"SELECT DISTINCT version FROM {table} WHERE wave = ? ORDER BY 1", [wave]
            ).fetchall()
        ]

    def flag_wave(
        self,
        inst: Instrument,
        wave: str,
        load_id: int,
        *,
        window_minutes: float,
        speeder_fraction: float,
    ) -> None:
        """Decide repeated submissions over the whole wave, whatever order its files came in,
        and flag the speeders of one load. Only evidence excludes a row:

        ``repeated_submission``
            the same submission as an earlier row (the platform's submission id; without
            one, the same submission time and answers) — excluded;
        ``same_person_same_answers``
            the same respondent (pseudonymous e-mail key) with the same answers within
            ``window_minutes`` of their earlier submission — excluded;
        ``same_person``
            the same respondent again with other answers — flagged for a look;
        ``identical_answers``
            the same answers as an earlier row, nothing else in common — flagged only
            (straight-liners and short forms give identical answers honestly).

        A load whose policy is ``flag`` keeps its repeats (flagged, not excluded); ``off``
        gets none of these flags. The earliest submission of a group counts (then load
        order, then row). Teaching evaluations compare rows of the same teacher and
        discipline only.
        """
        con = self.con
        table = fact_table(inst.id)
        part = [
            r.value for r in (ContextRole.TEACHER, ContextRole.DISCIPLINE) if inst.has_context(r)
        ]
        order = "submitted_at NULLS LAST, load_id, source_row"
        rules = (
            "repeated_submission",
            "same_person_same_answers",
            "same_person",
            "identical_answers",
            "duplicate",
        )
        con.execute(
            f"DELETE FROM qa_flags WHERE flag IN (SELECT unnest($rules)) AND load_id IN "
            f"(SELECT DISTINCT load_id FROM {table} WHERE wave = $wave)",
            {"rules": list(rules), "wave": wave},
        ).fetchall()
        con.execute(
            f"UPDATE {table} SET excluded = FALSE WHERE wave = ? AND excluded", [wave]
        ).fetchall()

        def later_rows(
            key: str, rule: str, detail: str, where: str = "TRUE", window: float | None = None
        ) -> None:
            # only keys seen twice can repeat: number the rows of those partitions (found
            # by a hash of the key, which keeps the grouping small)
            keys = ", ".join([key, *part])
            within = ""
            if window is not None:
                within = (
                    "AND prev_at IS NOT NULL AND submitted_at IS NOT NULL AND "
                    "submitted_at - prev_at <= to_minutes($window::BIGINT)"
                )
            con.execute(
                f"""
                INSERT INTO qa_flags
                SELECT load_id, response_id, source_row, $rule, $detail, FALSE
                FROM (
                    SELECT load_id, response_id, source_row, submitted_at,
                           row_number() OVER (PARTITION BY {keys} ORDER BY {order}) AS k,
                           lag(submitted_at) OVER (PARTITION BY {keys} ORDER BY {order})
                               AS prev_at
                    FROM {table}
                    WHERE wave = $wave AND {where} AND hash({keys}) IN (
                        SELECT hash({keys}) AS h FROM {table} WHERE wave = $wave AND {where}
                        GROUP BY h HAVING count(*) > 1)
                      AND response_id NOT IN (
                        SELECT response_id FROM qa_flags WHERE flag IN (SELECT unnest($rules)))
                ) WHERE k > 1 {within}
                """,
                {
                    "wave": wave,
                    "rules": list(rules),
                    "rule": rule,
                    "detail": detail,
                    **({"window": int(window)} if window is not None else {}),
                },
            ).fetchall()

        later_rows(
            "submission_key",
            "repeated_submission",
            "the same submission as an earlier row",
            "submission_key IS NOT NULL",
        )
        later_rows(
            "person_key, dup_key",
            "same_person_same_answers",
            "the same respondent with the same answers shortly after",
            "person_key IS NOT NULL",
            window=window_minutes,
        )
        later_rows(
            "person_key",
            "same_person",
            "the same respondent again, other answers",
            "person_key IS NOT NULL",
        )
        later_rows(
            "dup_key",
            "identical_answers",
            "the same answers as an earlier row (kept: not evidence of a repeat)",
        )
        # the policy of each row's load: exclude, flag (keep), or off (no such flags)
        con.execute(
            """DELETE FROM qa_flags WHERE flag IN (SELECT unnest($rules)) AND load_id IN (
                    SELECT load_id FROM sys_loads WHERE duplicates = 'off')""",
            {"rules": list(rules)},
        ).fetchall()
        con.execute(
            """UPDATE qa_flags SET excluded = TRUE
               WHERE flag IN ('repeated_submission', 'same_person_same_answers') AND load_id IN (
                   SELECT load_id FROM sys_loads WHERE duplicates = 'exclude')"""
        ).fetchall()
        con.execute(
            f"""UPDATE {table} SET excluded = TRUE WHERE wave = ? AND response_id IN (
                  SELECT response_id FROM qa_flags WHERE excluded)""",
            [wave],
        ).fetchall()
        con.execute(
            f"""
            INSERT INTO qa_flags
            SELECT load_id, response_id, source_row, 'speeder',
                   'completed in ' || round(duration_s) || ' s, under '
                   || round(100 * $fraction) || ' % of the median ('
                   || round(med) || ' s)', FALSE
            FROM {table}, (SELECT median(duration_s) AS med FROM {table} WHERE load_id = $load)
            WHERE load_id = $load AND duration_s IS NOT NULL AND duration_s < med * $fraction
            """,
            {"load": load_id, "fraction": float(speeder_fraction)},
        ).fetchall()
        # every load of the wave: its flagged and excluded counts, as `sapat loads` shows
        con.execute(
            """UPDATE sys_loads SET
                   rows_flagged = (SELECT count(DISTINCT f.response_id) FROM qa_flags f
                                   WHERE f.load_id = sys_loads.load_id),
                   rows_excluded = (SELECT count(DISTINCT f.response_id) FROM qa_flags f
                                    WHERE f.load_id = sys_loads.load_id AND f.excluded)
               WHERE instrument = ? AND wave = ? AND status = 'loaded'""",
            [inst.id, wave],
        ).fetchall()

    def unload(
        self,
        load_id: int,
        why: str,
        versions: dict[str, Instrument],
        *,
        window_minutes: float,
        speeder_fraction: float,
    ) -> dict:
        """Take one load back, in one transaction: its answers, counts, comments, flags and
        quarantined rows are removed, its manifest row stays, marked withdrawn with who
        and why, and the repeats of its wave are decided again (a row that repeated one of
        the withdrawn rows counts again). Its original stays in ``data/raw``. Loading the
        same file again afterwards (e.g. under the right wave) works. Returns the manifest
        row as it was."""
        row = self.con.execute("SELECT * FROM sys_loads WHERE load_id = ?", [load_id]).fetchdf()
        if row.empty:
            raise SapatError(f"there is no load {load_id}", expected="a number from `sapat loads`")
        before = row.iloc[0].to_dict()
        if before["status"] != "loaded":
            raise SapatError(
                f"load {load_id} is {before['status']}, not loaded: nothing to take back",
                expected="a load whose status is loaded",
            )
        wave = before["wave"]
        inst = versions[before["version"]]
        with self.transaction():
            for table in (
                fact_table(inst.id),
                "fct_answer_counts",
                "fct_comments",
                "qa_flags",
                "qa_quarantine",
            ):
                if self.has_table(table):
                    self.con.execute(f"DELETE FROM {table} WHERE load_id = ?", [load_id])
            self.con.execute(
                "UPDATE sys_loads SET status = 'withdrawn', withdrawn_by = ?, withdrawn_why = ? "
                "WHERE load_id = ?",
                [self.actor, why, load_id],
            )
            self.flag_wave(
                inst,
                wave,
                load_id,
                window_minutes=window_minutes,
                speeder_fraction=speeder_fraction,
            )
            left = [versions[v] for v in self.wave_versions(fact_table(inst.id), wave)]
            if left:
                self.refresh_counts(left, wave)
            else:  # nothing of the questionnaire is left in the wave
                self.con.execute(
                    "DELETE FROM fct_answer_counts WHERE instrument = ? AND wave = ?",
                    [inst.id, wave],
                )
            self.audit("unload", f"load {load_id} ({before['file_name']})", f"withdrawn: {why}")
        return before

    def flag_counts(self, load_id: int) -> dict[str, int]:
        """Rows per flag of a load, with ``_flagged`` (rows with any flag) and
        ``_excluded`` (rows excluded as repeats)."""
        rows = self.con.execute(
            """SELECT flag, count(DISTINCT response_id) FROM qa_flags WHERE load_id = ?
               GROUP BY flag ORDER BY flag""",
            [load_id],
        ).fetchall()
        out = {flag: int(n) for flag, n in rows}
        flagged, excluded = self.con.execute(
            "SELECT rows_flagged, rows_excluded FROM sys_loads WHERE load_id = ?", [load_id]
        ).fetchall()[0]
        out["_flagged"], out["_excluded"] = int(flagged), int(excluded)
        return out

    def write_manifest(self, row: dict) -> None:
        row = {**row, "loaded_at": datetime.now(), "tool_version": __version__}
        cols = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        self.con.execute(f"INSERT INTO sys_loads ({cols}) VALUES ({marks})", list(row.values()))

    def supersede(self, old_load_id: int, new_load_id: int, instrument: str) -> None:
        """Take an earlier load's rows out (``--replace``); its manifest row stays."""
        table = fact_table(instrument)
        for t in (table, "fct_answer_counts", "fct_comments", "qa_flags"):
            if self.has_table(t):
                self.con.execute(f"DELETE FROM {t} WHERE load_id = ?", [old_load_id])
        self.con.execute(
            "UPDATE sys_loads SET status = 'replaced', replaced_by = ? WHERE load_id = ?",
            [new_load_id, old_load_id],
        )

    def write_declarations(
        self, catalog: Catalog, units: pd.DataFrame, disciplines: pd.DataFrame | None = None
    ) -> None:
        """dim_units, dim_items, dim_choices and dim_disciplines (code and names of each
        discipline) as declared now (small; rewritten each load)."""
        items, choices = [], []
        for inst in catalog.all():
            for f in inst.by_role(Role.ITEM, Role.OUTCOME, Role.CONTEXT):
                scale = inst.scale_of(f)
                items.append(
                    {
                        "instrument": inst.id,
                        "version": inst.version,
                        "item": f.code,
                        "role": f.role.value,
                        "dimension": f.dimension,
                        "reverse": f.reverse,
                        "list_name": f.list_name,
                        "scale_kind": scale.kind if scale else None,
                        "positive_from": scale.positive_from if scale else None,
                        "points": scale.points if scale else None,
                        "label_ky": f.labels.get("ky"),
                        "label_ru": f.labels.get("ru"),
                        "label_en": f.labels.get("en"),
                        "dimension_label_ky": inst.dimension_label(f.dimension, "ky")
                        if f.dimension
                        else None,
                        "dimension_label_ru": inst.dimension_label(f.dimension, "ru")
                        if f.dimension
                        else None,
                        "dimension_label_en": inst.dimension_label(f.dimension, "en")
                        if f.dimension
                        else None,
                        **{f"title_{lang}": inst.title_in(lang) for lang in ("ky", "ru", "en")},
                    }
                )
                if scale:
                    for c in scale.choices:
                        choices.append(
                            {
                                "instrument": inst.id,
                                "version": inst.version,
                                "item": f.code,
                                "code": c.code,
                                "name": c.name,
                                "label_ky": c.labels.get("ky"),
                                "label_ru": c.labels.get("ru"),
                                "label_en": c.labels.get("en"),
                            }
                        )
        for name, frame in (
            ("dim_items", pd.DataFrame(items)),
            ("dim_choices", pd.DataFrame(choices)),
            ("dim_units", units),
        ):
            self.con.register("_dim", frame)
            self.con.execute(f"CREATE OR REPLACE TABLE {name} AS SELECT * FROM _dim")
            self.con.unregister("_dim")
        named = ["discipline_code", "name_ky", "name_ru", "name_en"]
        if disciplines is None:
            disciplines = pd.DataFrame(columns=named)
        _disciplines = (  # noqa: F841 (a replacement scan)
            disciplines[named].astype(str).drop_duplicates("discipline_code")
        )
        self.con.execute(
            "CREATE OR REPLACE TABLE dim_disciplines (code VARCHAR, name_ky VARCHAR, "
            "name_ru VARCHAR, name_en VARCHAR)"
        )
        self.con.execute("INSERT INTO dim_disciplines SELECT * FROM _disciplines ORDER BY ALL")

    # ------------------------------------------------------------- audit log
    def audit(self, action: str, obj: str | None = None, outcome: str | None = None) -> None:
        """Append an entry to the audit log: UTC time, actor, action, object, outcome,
        chained to the previous entry (no respondent data ever goes in)."""
        last = self.con.execute(
            "SELECT seq, hash FROM sys_audit ORDER BY seq DESC LIMIT 1"
        ).fetchall()
        seq, prev = (int(last[0][0]) + 1, last[0][1]) if last else (1, GENESIS)
        at = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
        digest = audit_hash(self.audit_key, seq, at, self.actor, action, obj, outcome, prev)
        self.con.execute(
            "INSERT INTO sys_audit VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [seq, at, self.actor, action, obj, outcome, prev, digest],
        )

    def audit_log(self) -> pd.DataFrame:
        return self.con.execute("SELECT * FROM sys_audit ORDER BY seq").fetchdf()

    def publish(self, directory: Path, signature: str = "") -> Path:
        """Publish a read-only snapshot for readers (:mod:`pipeline.store.snapshots`)."""
        from pipeline.store.snapshots import publish

        path = publish(self.con, directory, signature)
        self.audit("publish", path.name, "ok")
        return path

    # ------------------------------------------------------------ quality records
    # Nonconformities, corrective and preventive actions, internal audit findings
    # (pipeline.quality checks what a person typed and reads them). Each change is one
    # transaction with one audit entry per record, which names ids, codes, statuses and
    # dates, never a description, reason or note (the office's own words stay in the
    # records). The actor is who decided, acted or recorded.
    @staticmethod
    def _utc_now() -> datetime:
        return datetime.now(UTC).replace(tzinfo=None, microsecond=0)

    def _next_record_id(self, table: str, column: str) -> int:
        return int(
            self.con.execute(f"SELECT coalesce(max({column}), 0) + 1 FROM {table}").fetchone()[0]
        )

    def record_candidates(self, frame: pd.DataFrame) -> int:
        """Record candidate nonconformities found in the data; returns how many were new.

        ``frame`` has the columns source (objective | decline | audit), objective (an
        objective id, or missing), instrument, indicator (an item or dimension code), unit,
        wave and detail (a sentence on what was found). A candidate already recorded under
        the same (source, objective, instrument, indicator, unit, wave), whatever was
        decided on it, is not recorded again, so a scan can be run any number of times."""
        missing = [c for c in quality.CANDIDATE_COLUMNS if c not in frame.columns]
        if [c for c in missing if c not in ("objective", "detail")]:
            raise SapatError(
                f"candidate nonconformities lack the columns {', '.join(missing)}",
                expected=", ".join(quality.CANDIDATE_COLUMNS),
            )
        cand = [  # plain text or None (pandas would turn a None back into NaN)
            {c: None if quality._missing(v) else str(v).strip() or None for c, v in r.items()}
            for r in frame.reindex(columns=list(quality.CANDIDATE_COLUMNS)).to_dict("records")
        ]
        wrong = sorted({str(r["source"]) for r in cand if r["source"] not in quality.SOURCES})
        if wrong:
            raise SapatError(
                f"unknown source of a candidate nonconformity: {', '.join(wrong)}",
                expected=" | ".join(quality.SOURCES),
            )
        needed = ("instrument", "indicator", "unit", "wave")
        empty = [c for c in needed if any(r[c] is None for r in cand)]
        if empty:
            raise SapatError(
                f"candidate nonconformities without {', '.join(empty)}",
                expected="every candidate with its questionnaire, indicator, unit and wave",
            )
        key = list(quality.CANDIDATE_KEY)
        with self.transaction():
            seen = {
                tuple(r)
                for r in self.con.execute(
                    f"SELECT {', '.join(key)} FROM qa_nonconformities"
                ).fetchall()
            }
            new = []
            for rec in cand:
                k = tuple(rec[c] for c in key)
                if k not in seen:
                    seen.add(k)
                    new.append(rec)
            first = self._next_record_id("qa_nonconformities", "nc_id")
            if new:
                now = self._utc_now()
                self.con.executemany(
                    """INSERT INTO qa_nonconformities (nc_id, source, objective, instrument,
                           indicator, unit, wave, detail, status, created_at)
                       VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'candidate', ?)""",
                    [
                        [first + k, *(r[c] for c in quality.CANDIDATE_COLUMNS), now]
                        for k, r in enumerate(new)
                    ],
                )
            ids = f"nonconformities {first}-{first + len(new) - 1}" if new else "nonconformities"
            sources = ", ".join(sorted({r["source"] for r in new}))
            self.audit(
                "nonconformity add",
                ids,
                f"{len(new)} new of {len(cand)} candidates" + (f" ({sources})" if new else ""),
            )
        return len(new)

    def add_nonconformity(
        self,
        *,
        unit: str,
        instrument: str,
        indicator: str,
        wave: str,
        detail: str,
        objective: str | None = None,
        source: str = "manual",
    ) -> int:
        """Record a nonconformity a person found (``manual``, or ``audit``): recorded
        confirmed by its actor. Check the codes first (:func:`pipeline.quality.new_nonconformity`).
        The same one twice (same codes, wave and detail, not dismissed) is refused."""
        from pipeline.errors import UsageError

        source = quality.choice(source, ("manual", "audit"), "source")
        detail = quality.text(detail, "--detail", "what was found, in a sentence")
        wave = quality.check_wave(wave)
        with self.transaction():
            twin = self.con.execute(
                """SELECT nc_id FROM qa_nonconformities
                   WHERE source = ? AND objective IS NOT DISTINCT FROM ? AND instrument = ?
                     AND indicator = ? AND unit = ? AND wave = ? AND detail = ?
                     AND status <> 'dismissed'""",
                [source, objective, instrument, indicator, unit, wave, detail],
            ).fetchall()
            if twin:
                raise UsageError(
                    f"nonconformity {twin[0][0]} records this already",
                    expected="sapat nonconformities list",
                )
            nc_id = self._next_record_id("qa_nonconformities", "nc_id")
            now = self._utc_now()
            self.con.execute(
                """INSERT INTO qa_nonconformities (nc_id, source, objective, instrument,
                       indicator, unit, wave, detail, status, created_at, decided_by, decided_at)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'confirmed', ?, ?, ?)""",
                [nc_id, source, objective, instrument, indicator, unit, wave, detail, now]
                + [self.actor, now],
            )
            self.audit(
                "nonconformity add",
                f"nonconformity {nc_id}",
                f"{source}, confirmed; {instrument} {indicator}; unit {unit}; wave {wave}"
                + (f"; objective {objective}" if objective else ""),
            )
        return nc_id

    def decide_nonconformity(self, nc_id: int, status: str, reason: str) -> None:
        """Confirm or dismiss a nonconformity, saying why (kept with it, not in the audit
        log). A decision can be changed, saying why again; a nonconformity is not
        dismissed while an action answering it is still to be closed or cancelled."""
        from pipeline.errors import UsageError

        status = quality.choice(status, quality.DECISIONS, "status")
        reason = quality.text(reason, "--why", "why, in a few words")
        with self.transaction():
            before = quality.nonconformity(self.con, nc_id)
            if before["status"] == status:
                raise UsageError(
                    f"nonconformity {nc_id} is already {status}",
                    expected="sapat nonconformities list --status candidate",
                )
            if status == "dismissed":
                pending = [
                    r[0]
                    for r in self.con.execute(
                        "SELECT action_id FROM qa_actions WHERE nc_id = ? "
                        "AND status NOT IN ('closed', 'cancelled') ORDER BY 1",
                        [int(nc_id)],
                    ).fetchall()
                ]
                if pending:
                    raise UsageError(
                        f"nonconformity {nc_id} has actions still open "
                        f"({', '.join(map(str, pending))})",
                        expected="close or cancel them first (sapat actions close|update)",
                    )
            self.con.execute(
                "UPDATE qa_nonconformities SET status = ?, reason = ?, decided_by = ?, "
                "decided_at = ? WHERE nc_id = ?",
                [status, reason, self.actor, self._utc_now(), int(nc_id)],
            )
            verb = "confirm" if status == "confirmed" else "dismiss"
            self.audit(
                f"nonconformity {verb}", f"nonconformity {nc_id}", f"{before['status']} → {status}"
            )

    def add_action(
        self,
        *,
        unit: str,
        instrument: str,
        indicator: str,
        owner_process: str,
        due_date,
        description: str,
        kind: str = "corrective",
        nc_id: int | None = None,
        opened_wave: str | None = None,
    ) -> int:
        """Record a corrective or preventive action (status open); returns its number.
        Check the codes first (:func:`pipeline.quality.new_action`); the nonconformity it
        answers, if any, must be confirmed."""
        kind = quality.choice(kind, quality.ACTION_KINDS, "--kind")
        due = quality.parse_date(due_date, "--due")
        description = quality.text(description, "--description")
        opened_wave = None if opened_wave is None else quality.check_wave(opened_wave)
        with self.transaction():
            if nc_id is not None:
                quality.check_nc_for_action(self.con, nc_id)
            action_id = self._next_record_id("qa_actions", "action_id")
            now = self._utc_now()
            self.con.execute(
                """INSERT INTO qa_actions (action_id, nc_id, kind, unit, instrument, indicator,
                       owner_process, due_date, description, status, opened_wave, created_at,
                       created_by, updated_at)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'open', ?, ?, ?, ?)""",
                [action_id, nc_id, kind, unit, instrument, indicator, owner_process, due]
                + [description, opened_wave, now, self.actor, now],
            )
            self.audit(
                "action add",
                f"action {action_id}",
                f"{kind}; unit {unit}; {instrument} {indicator}; owner {owner_process}; "
                f"due {due.isoformat()}"
                + (f"; nonconformity {nc_id}" if nc_id is not None else "")
                + (f"; wave {opened_wave}" if opened_wave else ""),
            )
        return action_id

    def update_action(self, action_id: int, **changes) -> dict[str, tuple]:
        """Change an action's status (open | in_progress | done | cancelled), due_date,
        description or owner_process; returns ``{field: (before, after)}`` of what changed
        (nothing is written when nothing changes). A closed action is not changed."""
        from pipeline.errors import UsageError

        unknown = sorted(set(changes) - set(quality.ACTION_CHANGES))
        if unknown:
            raise UsageError(
                f"an action has no field {', '.join(unknown)} to change",
                expected=", ".join(quality.ACTION_CHANGES),
            )
        clean: dict = {}
        for field, value in changes.items():
            if value is None:
                continue
            if field == "status":
                if str(value).strip().lower() == "closed":
                    raise UsageError(
                        "--status closed: an action is closed with a note on what was achieved",
                        expected=f"sapat actions close {action_id} --note TEXT",
                    )
                clean[field] = quality.choice(value, quality.UPDATABLE_STATUSES, "--status")
            elif field == "due_date":
                clean[field] = quality.parse_date(value, "--due")
            elif field == "description":
                clean[field] = quality.text(value, "--description")
            else:
                clean[field] = quality.text(value, "--owner", "a process code (PR-01 …)")
        with self.transaction():
            before = quality.action(self.con, action_id)
            if before["status"] == "closed":
                raise UsageError(
                    f"action {action_id} is closed and stays as it was closed",
                    expected="a new action: sapat actions add …",
                )
            was = dict(before)
            if was.get("due_date") is not None:
                was["due_date"] = pd.Timestamp(was["due_date"]).date()
            diff = {f: (was[f], v) for f, v in clean.items() if was[f] != v}
            if not diff:
                return {}
            sets = ", ".join(f"{f} = ?" for f in diff)
            self.con.execute(
                f"UPDATE qa_actions SET {sets}, updated_at = ? WHERE action_id = ?",
                [v for _, v in diff.values()] + [self._utc_now(), int(action_id)],
            )
            told = [
                "description changed"
                if f == "description"
                else f"{f} {_shown(old)} → {_shown(new)}"
                for f, (old, new) in diff.items()
            ]
            self.audit("action update", f"action {action_id}", "; ".join(told))
        return diff

    def close_action(self, action_id: int, note: str) -> None:
        """Close an action with a note on what was achieved (kept with it, not in the
        audit log): who closed it and when are recorded."""
        from pipeline.errors import UsageError

        note = quality.text(note, "--note", "what was achieved, in a sentence")
        with self.transaction():
            before = quality.action(self.con, action_id)
            if before["status"] in ("closed", "cancelled"):
                raise UsageError(
                    f"action {action_id} is {before['status']} already",
                    expected="an action that is open, in_progress or done",
                )
            now = self._utc_now()
            self.con.execute(
                "UPDATE qa_actions SET status = 'closed', closed_at = ?, closed_by = ?, "
                "closing_note = ?, updated_at = ? WHERE action_id = ?",
                [now, self.actor, note, now, int(action_id)],
            )
            self.audit("action close", f"action {action_id}", f"{before['status']} → closed")

    def _insert_finding(self, finding: dict, origin: str = "") -> int:
        finding_id = self._next_record_id("qa_findings", "finding_id")
        when = quality.parse_date(finding["audit_date"], "--date")
        kind = quality.choice(finding["kind"], quality.FINDING_KINDS, "--kind")
        status = quality.choice(
            finding.get("status") or "open", quality.FINDING_STATUSES, "--status"
        )
        self.con.execute(
            """INSERT INTO qa_findings (finding_id, audit_date, process, unit, kind,
                   description, status, created_at, created_by)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)""",
            [finding_id, when, finding["process"], finding["unit"], kind]
            + [quality.text(finding["description"], "--description"), status]
            + [self._utc_now(), self.actor],
        )
        self.audit(
            "finding add",
            f"finding {finding_id}",
            f"{kind}, {status}; process {finding['process']}; unit {finding['unit']}; "
            f"audit {when.isoformat()}" + origin,
        )
        return finding_id

    def add_finding(
        self,
        *,
        audit_date,
        process: str,
        unit: str,
        kind: str,
        description: str,
        status: str = "open",
    ) -> int:
        """Record an internal audit finding; returns its number. Check the codes first
        (:func:`pipeline.quality.new_finding`)."""
        finding = {
            "audit_date": audit_date,
            "process": process,
            "unit": unit,
            "kind": kind,
            "description": description,
            "status": status,
        }
        with self.transaction():
            return self._insert_finding(finding)

    def add_findings(self, frame: pd.DataFrame, origin: str | None = None) -> list[int]:
        """Record the findings of an audit sheet (:func:`pipeline.quality.read_findings_sheet`)
        in one transaction: all or none. A finding recorded already (same date, process,
        unit, kind and description) is skipped, so importing a sheet again adds nothing.
        Returns the numbers of the findings recorded."""
        ids = []
        with self.transaction():
            have = {
                (pd.Timestamp(d).date(), p, u, k, t)
                for d, p, u, k, t in self.con.execute(
                    "SELECT audit_date, process, unit, kind, description FROM qa_findings"
                ).fetchall()
            }
            for rec in frame.to_dict("records"):
                key = (quality.parse_date(rec["audit_date"], "audit_date"), rec["process"])
                key += (rec["unit"], rec["kind"], str(rec["description"]).strip())
                if key in have:
                    continue
                have.add(key)
                ids.append(self._insert_finding(rec, f"; imported from {origin}" if origin else ""))
        return ids

    def carry_records(self, source: Path) -> dict[str, int]:
        """Copy the quality records of another store (the one a rebuild replaces) as they
        are: they are not derived from the raw files. Returns the rows copied per table."""
        old = duckdb.connect(str(source), read_only=True)
        try:
            have = {
                r[0]
                for r in old.execute(
                    "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database()"
                ).fetchall()
            }
            frames = {
                t: old.sql(f"SELECT * FROM {t}").to_arrow_table()
                for t in quality.RECORD_TABLES
                if t in have
            }
        finally:
            old.close()
        with self.transaction():
            for table, data in frames.items():  # noqa: B007 (data: a replacement scan)
                self.con.execute(f"DELETE FROM {table}")
                self.con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM data")
            copied = {t: frames[t].num_rows if t in frames else 0 for t in quality.RECORD_TABLES}
            self.audit(
                "carry",
                source.name,
                "; ".join(f"{n} rows of {t}" for t, n in copied.items()),
            )
        return copied

    # ------------------------------------------------- indicator inputs and outputs
    def loaded_waves(self, instrument: str | None = None) -> pd.DataFrame:
        """(instrument, wave) pairs holding loaded files, with ``has_ids`` (false when a
        load of that wave is a long-format export without respondent ids) and
        ``versions`` (the questionnaire versions its files were loaded with, most rows
        first)."""
        return self.con.execute(
            """SELECT instrument, wave, bool_and(has_ids) AS has_ids,
                      list(version ORDER BY rows DESC, version DESC) AS versions
               FROM (SELECT instrument, wave, version, sum(rows_loaded) AS rows,
                            bool_and(layout <> 'long_no_id') AS has_ids
                     FROM sys_loads WHERE status = 'loaded' AND (? IS NULL OR instrument = ?)
                     GROUP BY ALL)
               GROUP BY ALL ORDER BY ALL""",
            [instrument, instrument],
        ).fetchdf()

    def touched(self, signature: str, full: bool) -> pd.DataFrame:
        """(instrument, wave, signature) whose loads or statistical choices changed since
        their indicators were computed (all with ``full``)."""
        return touched(self.con, signature, full)

    def mark_computed(self, touched: pd.DataFrame) -> None:
        _touched = touched[["instrument", "wave", "signature"]]  # noqa: F841 (replacement scan)
        self.con.execute(
            "DELETE FROM sys_indicator_state WHERE (instrument, wave) IN "
            "(SELECT (instrument, wave) FROM _touched)"
        )
        self.con.execute(
            "INSERT INTO sys_indicator_state SELECT instrument, wave, signature, "
            "now() FROM _touched"
        )

    def replace_rows(self, name: str, frame: pd.DataFrame | None, keys: pd.DataFrame) -> None:
        """Replace the rows of a declared table for the (instrument, wave) ``keys`` by
        ``frame`` (its columns a subset of the declaration's; the rest NULL)."""
        table = TABLES[name]
        if not keys.empty:
            _keys = keys[list(table.replaced_by)].drop_duplicates()  # noqa: F841
            on = ", ".join(table.replaced_by)
            self.con.execute(f"DELETE FROM {table.name} WHERE ({on}) IN (SELECT ({on}) FROM _keys)")
        if frame is None or frame.empty:
            return
        unknown = [c for c in frame.columns if c not in table.names]
        if unknown:
            raise ValueError(f"{name}: columns {unknown} are not declared in store/tables.py")
        _new = frame  # noqa: F841 (a replacement scan)
        cols = ", ".join(f'"{c}"' for c in frame.columns)
        self.con.execute(f"INSERT INTO {table.name} ({cols}) SELECT {cols} FROM _new")

    def answer_counts(
        self,
        instrument: str,
        waves: list[str],
        rollup: pd.DataFrame,
        teacher: bool,
        university: str,
    ) -> pd.DataFrame:
        """Valid answers (code >= 0) per wave × org level × unit × item × answer, rolled up
        the org tree (``rollup``: unit → programme, department, faculty) and, with
        ``teacher``, per teacher."""
        _lookup = rollup  # noqa: F841 (a replacement scan)
        src = """SELECT c.wave, c.item, c.answer, c.n, c.teacher, l.programme, l.department,
                        l.faculty
                 FROM fct_answer_counts c LEFT JOIN _lookup l ON l.unit = coalesce(c.programme, c.unit)
                 WHERE c.instrument = $instrument AND c.answer >= 0
                   AND c.wave IN (SELECT unnest($waves))"""
        frame = (
            self.con.sql(
                _rollup_sql(src, "wave, item, answer", "sum(n)::BIGINT AS count", teacher),
                params={"instrument": instrument, "waves": waves, "university": university},
            )
            .to_arrow_table()
            .to_pandas()
        )
        return frame

    def teaching_counts(self, instrument: str, waves: list[str]) -> pd.DataFrame:
        """Valid answers (code >= 0) per wave × teacher × discipline × item × answer, of
        every answer naming a teacher (discipline missing where it names none): the
        answers of the teacher rows of :meth:`answer_counts`, split by discipline."""
        return (
            self.con.sql(
                """SELECT wave, teacher, discipline, item, answer, sum(n)::BIGINT AS count
                   FROM fct_answer_counts
                   WHERE instrument = $instrument AND answer >= 0 AND teacher IS NOT NULL
                     AND wave IN (SELECT unnest($waves))
                   GROUP BY ALL""",
                params={"instrument": instrument, "waves": waves},
            )
            .to_arrow_table()
            .to_pandas()
        )

    def respondent_counts(
        self,
        instrument: str,
        waves: list[str],
        rollup: pd.DataFrame,
        teacher: bool,
        university: str,
    ) -> pd.DataFrame:
        """Respondents (rows not excluded) per wave × org level × unit."""
        _lookup = rollup  # noqa: F841
        teacher_col = "f.teacher" if teacher else "NULL"
        src = f"""SELECT f.wave, {teacher_col} AS teacher, l.programme, l.department, l.faculty
                  FROM {fact_table(instrument)} f LEFT JOIN _lookup l ON l.unit = coalesce(f.programme, f.unit)
                  WHERE NOT f.excluded AND f.wave IN (SELECT unnest($waves))"""
        return (
            self.con.sql(
                _rollup_sql(src, "wave", "count(*) AS respondents", teacher),
                params={"waves": waves, "university": university},
            )
            .to_arrow_table()
            .to_pandas()
        )

    def respondent_rows(
        self,
        instrument: str,
        wave: str,
        columns: list[str],
        rollup: pd.DataFrame,
        extra: tuple[str, ...] = (),
    ) -> pd.DataFrame:
        """One row per respondent of a wave (not excluded): response_id, programme, unit,
        department, faculty, the ``extra`` columns as stored (teacher, study_level), and
        ``columns`` as float64 with declared non-answers (negative codes) as NaN."""
        table = fact_table(instrument)
        have = {
            r[0]
            for r in self.con.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = ?", [table]
            ).fetchall()
        }
        answers = [c for c in columns if c in have]
        cols = "".join(f', f."{c}"::DOUBLE AS "{c}"' for c in answers)
        extras = "".join(f', f."{c}"' if c in have else f', NULL AS "{c}"' for c in extra)
        _lookup = rollup  # noqa: F841
        frame = (
            self.con.sql(
                f"""SELECT f.response_id, f.programme, f.unit, l.department, l.faculty{extras}{cols}
                FROM {table} f LEFT JOIN _lookup l ON l.unit = coalesce(f.programme, f.unit)
                WHERE f.wave = $wave AND NOT f.excluded""",
                params={"wave": wave},
            )
            .to_arrow_table()
            .to_pandas()
        )
        if answers:  # declared non-answers (negative codes) are no answer: NaN
            block = frame[answers].to_numpy(dtype=float)
            masked = pd.DataFrame(
                np.where(block >= 0, block, np.nan), index=frame.index, columns=answers, copy=False
            )
            frame = pd.concat([frame.drop(columns=answers), masked], axis=1)
        return frame

    def cell_answer_counts(
        self, instrument: str, wave: str, items: list[str], rollup: pd.DataFrame
    ) -> pd.DataFrame:
        """Valid answers per programme × faculty × item × answer (post-stratification)."""
        _lookup = rollup  # noqa: F841
        return self.con.execute(
            """SELECT c.programme, l.faculty, c.item, c.answer::DOUBLE AS answer,
                      sum(c.n)::BIGINT AS count
               FROM fct_answer_counts c LEFT JOIN _lookup l ON l.unit = coalesce(c.programme, c.unit)
               WHERE c.instrument = $instrument AND c.wave = $wave AND c.answer >= 0
                 AND c.item IN (SELECT unnest($items))
               GROUP BY ALL""",
            {"instrument": instrument, "wave": wave, "items": items},
        ).fetchdf()


def touched(con: duckdb.DuckDBPyConnection, signature: str, full: bool) -> pd.DataFrame:
    """:meth:`Store.touched` on any connection to a store (read-only will do)."""
    now = con.execute(
        """SELECT instrument, wave, string_agg(load_id::VARCHAR || ':' || status, ','
                  ORDER BY load_id) || ' | ' || ? AS signature
           FROM sys_loads WHERE instrument IS NOT NULL GROUP BY ALL""",
        [signature],
    ).fetchdf()
    if full:
        return now
    before = con.execute("SELECT instrument, wave, signature FROM sys_indicator_state").fetchdf()
    merged = now.merge(before, on=["instrument", "wave"], how="left", suffixes=("", "_old"))
    changed = merged["signature"] != merged["signature_old"]
    return merged.loc[changed, ["instrument", "wave", "signature"]].reset_index(drop=True)


#: The previous hash of the first audit entry.
GENESIS = "0" * 64


def default_actor() -> str:
    """Who is acting: ``SAPAT_ACTOR`` (the dashboard sets its user), else the login name."""
    import getpass
    import os

    try:
        return os.environ.get("SAPAT_ACTOR") or getpass.getuser()
    except (KeyError, OSError):  # no user name known (a container without one)
        return "unknown"


def audit_hash(
    key: bytes | None, seq: int, at, actor: str, action: str, obj, outcome, prev: str
) -> str:
    """The chained hash of one audit entry: HMAC-SHA256 under a key derived from the
    pseudonymisation key (SHA-256 without one)."""
    import hashlib
    import hmac

    text = "\x1f".join(str(v) for v in (seq, at, actor, action, obj, outcome, prev)).encode()
    if key:
        derived = hashlib.sha256(b"sapat-audit\x1f" + key).digest()
        return hmac.new(derived, text, hashlib.sha256).hexdigest()
    return hashlib.sha256(text).hexdigest()


def verify_audit(log: pd.DataFrame, key: bytes | None) -> list[str]:
    """Problems of an audit log (empty when intact): an edited entry (its hash does not
    match), a deleted one (a gap, or a broken link), entries out of order."""
    problems = []
    prev, expected = GENESIS, 1
    for row in log.itertuples(index=False):
        if row.seq != expected:
            problems.append(f"entry {expected} is missing or out of order (found {row.seq})")
            expected = row.seq
        if row.prev_hash != prev:
            problems.append(
                f"entry {row.seq} does not follow the entry before it "
                "(one was deleted, inserted or moved)"
            )
        want = audit_hash(
            key,
            row.seq,
            pd.Timestamp(row.at_utc).to_pydatetime(),
            row.actor,
            row.action,
            _none(row.object),
            _none(row.outcome),
            row.prev_hash,
        )
        if want != row.hash:
            problems.append(f"entry {row.seq} was changed after it was written")
        prev, expected = row.hash, expected + 1
    return problems


def _none(v):
    return None if v is None or (isinstance(v, float) and v != v) else v


def _shown(value) -> str:
    """A value of a record as the audit log writes it (dates as YYYY-MM-DD)."""
    if value is None:
        return "(none)"
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def _rollup_sql(source: str, cols: str, agg: str, teacher: bool) -> str:
    """SQL rolling rows with columns programme, department, faculty (and teacher) up to
    every org level: one result row per (``cols``, org_level, unit). The university's
    code is the query parameter ``$university``."""
    levels = [
        ("'university'", "$university", "TRUE"),
        ("'faculty'", "faculty", "faculty"),
        ("'department'", "department", "department"),
        ("'programme'", "programme", "programme"),
    ]
    if teacher:
        levels.append(("'teacher'", "teacher", "teacher"))
    parts = [
        f"SELECT {cols}, {level} AS org_level, {unit}::VARCHAR AS unit, {agg} FROM src "
        + ("" if cond == "TRUE" else f"WHERE {cond} IS NOT NULL ")
        + "GROUP BY ALL"
        for level, unit, cond in levels
    ]
    return f"WITH src AS MATERIALIZED ({source}) " + " UNION ALL ".join(parts)


def fact_table(instrument: str) -> str:
    """The typed-answer table of a questionnaire (its id is a checked code)."""
    return f"fct_{instrument}"


def scale_codes(inst: Instrument) -> dict[str, list[int]]:
    """The answer codes of each scale item and outcome of a questionnaire version."""
    return {
        f.code: [c.code for c in inst.scale_of(f).choices]
        for f in inst.by_role(Role.ITEM, Role.OUTCOME)
        if inst.scale_of(f)
    }


#: The group columns of :func:`count_answers` and :meth:`Store.wide_counts`, in order.
COUNT_GROUP = (
    "load_id",
    "instrument",
    "version",
    "wave",
    "programme",
    "unit",
    "study_level",
    "teacher",
    "discipline",
)
#: Columns of the count group that come from a context role, when the questionnaire has it.
_ROLE_KEYS = {
    "study_level": ContextRole.STUDY_LEVEL,
    "teacher": ContextRole.TEACHER,
    "discipline": ContextRole.DISCIPLINE,
}


def count_answers(inst: Instrument, facts: pa.Table, constants: dict) -> pa.Table | None:
    """:meth:`Store.wide_counts` of fact rows held as Arrow, counted with numpy.

    The same table (columns, groups, counts; tested equal), computed in the loading
    process instead of by a DuckDB query with a ``count_if`` per item × answer code:
    a quarter of the CPU time, which matters while DuckDB is busy storing the rows.
    Missing answers count nowhere; answers outside an item's codes count in ``_other``.
    """
    codes = scale_codes(inst)
    if not codes:
        return None
    n = facts.num_rows
    keys = [
        c
        for c in ("programme", "unit", "study_level", "teacher", "discipline")
        if c in facts.column_names
        and (c in ("programme", "unit") or inst.has_context(_ROLE_KEYS[c]))
    ]
    group = np.zeros(n, dtype=np.int64)
    for k in keys:  # mixed radix over each key's distinct values (missing = its own)
        column = facts.column(k)
        if pa.types.is_null(column.type) or n == 0:  # all missing (pandas' None column)
            continue
        encoded = pc.dictionary_encode(column).combine_chunks()
        index = pc.fill_null(encoded.indices, len(encoded.dictionary)).to_numpy()
        group = group * (len(encoded.dictionary) + 1) + index
    _, first, group = np.unique(group, return_index=True, return_inverse=True)
    n_groups = len(first)
    out: dict[str, object] = {}
    for name in COUNT_GROUP:
        if name in constants:
            out[name] = pa.array([constants[name]] * n_groups)
        elif name in keys and not pa.types.is_null(facts.column(name).type):
            out[name] = facts.column(name).take(pa.array(first)).combine_chunks()
        else:
            out[name] = pa.nulls(n_groups, pa.int8() if name == "study_level" else pa.string())
    out["study_level"] = pc.cast(out["study_level"], pa.int8())
    other = np.zeros(n_groups, dtype=np.int64)
    for item, item_codes in codes.items():
        width = len(item_codes) + 1  # the codes, then "other"
        position = np.full(256, len(item_codes), dtype=np.int64)
        position[np.asarray(item_codes) + 128] = np.arange(len(item_codes))
        column = facts.column(item).combine_chunks()
        values = pc.fill_null(column, 0).to_numpy(zero_copy_only=False).astype(np.int64)
        given = column.is_valid().to_numpy(zero_copy_only=False)
        cells = group[given] * width + position[values[given] + 128]
        counts = np.bincount(cells, minlength=n_groups * width).reshape(n_groups, width)
        for j, code in enumerate(item_codes):
            out[f"{item}|{code}"] = counts[:, j]
        other += counts[:, -1]
    out["_other"] = other
    return pa.table(out)


def arrow_table(frame: pd.DataFrame) -> pa.Table:
    """A frame as Arrow, which DuckDB reads without holding Python's GIL."""
    return pa.Table.from_pandas(frame, preserve_index=False)


def quarantine_json(raw: dict) -> str:
    return json.dumps(raw, ensure_ascii=False, default=str)
