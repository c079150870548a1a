"""The one door out: every indicator that leaves Sapat is read here, gated and scoped.

:func:`read` returns a declared ``ind_*`` table already passed through its disclosure
rule (:mod:`pipeline.store.tables`) and limited to the units the viewer may see. The
CLI, the notebook, the dashboard and the review pack read indicators only through it.

Who sees what (:class:`Viewer`)
-------------------------------
``quality_office``, ``rector``
    everything.
``dean``
    their faculty-level unit and every unit below it, the teachers of its departments,
    and the university (the reference beside every unit).
``programme_leader``
    their programme(s) and the university.
``teacher``
    their own teaching evaluations (teacher rows with their code) and the university.

Whole-university tables (alpha, key drivers, post-stratified estimates, Kruskal-Wallis)
are shown to every role but teachers. Gating runs on the whole slice before rows are
scoped, so a viewer sees exactly the cells everyone sees, never a complement.

Tables gated with another
-------------------------
A ``parts`` table (a teacher's disciplines) is gated with its parent rows, and a
``comparison`` table that declares the cells it rests on (``rests_on``: a unit's item in
two waves, a unit against the university, two units, a trend) with those cells: :func:`read`
reads them from their own table, for the same slices, through that table's own gate, so
the rows it hides are exactly the ones every reader of that table finds hidden. A
comparison row resting on a hidden cell (``rests_on_hidden_cell``), or on a cell that
table does not hold or holds with another ``n`` (``rests_on_missing_cell``), is hidden
like a small one: the complementary suppression of ``ind_items`` is not undone by a
change, a benchmark or a trend that would publish the cell it hid.

This module imports no statistics library: reading stays fast.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from pipeline.config import MIN_N_FLOOR
from pipeline.errors import SapatError, UsageError
from pipeline.methods.disclosure import suppress
from pipeline.store.tables import BY_CLI_NAME, TABLES, Table


class ViewerRole(StrEnum):
    QUALITY_OFFICE = "quality_office"
    RECTOR = "rector"
    DEAN = "dean"
    PROGRAMME_LEADER = "programme_leader"
    TEACHER = "teacher"


@dataclass(frozen=True)
class Viewer:
    """Who is reading: a role and the units it covers (a dean's faculty, a programme
    leader's programmes, a teacher's own code)."""

    role: ViewerRole
    units: tuple[str, ...] = ()

    @property
    def everything(self) -> bool:
        return self.role in (ViewerRole.QUALITY_OFFICE, ViewerRole.RECTOR)


#: The quality office: sees every unit (the CLI's and the notebook's viewer).
OFFICE = Viewer(ViewerRole.QUALITY_OFFICE)


@dataclass(frozen=True)
class Tree:
    """The reporting tree the gate and the scoping need (from the org registry)."""

    parents: Mapping[str, str]
    university: str
    #: teacher code -> department code
    teacher_department: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, reg) -> Tree:
        teachers = dict(
            zip(reg.teachers["teacher_code"], reg.teachers["department_code"], strict=True)
        )
        return cls(
            parents=dict(reg.parents), university=reg.university, teacher_department=teachers
        )

    def ancestors(self, unit: str) -> list[str]:
        out, cur, seen = [], self.parents.get(unit), set()
        while cur and cur not in seen:
            seen.add(cur)
            out.append(cur)
            cur = self.parents.get(cur)
        return out

    def within(self, unit: str) -> set[str]:
        """``unit`` with every unit below it (teachers under their departments)."""
        if unit == self.university:
            return {unit, *self.parents, *self.teacher_department}
        inside = {u for u in self.parents if unit in self.ancestors(u)}
        inside |= {t for t, d in self.teacher_department.items() if d == unit or d in inside}
        return inside | {unit}

    def scope(self, viewer: Viewer) -> set[str] | None:
        """Units the viewer may see (None: all)."""
        if viewer.everything:
            return None
        roots = set(viewer.units)
        if viewer.role is ViewerRole.TEACHER:
            return roots | {self.university}
        if viewer.role is ViewerRole.PROGRAMME_LEADER:
            return roots | {self.university}
        inside = {u for u in self.parents if u in roots or roots & set(self.ancestors(u))}
        return inside | roots | {self.university}


def table_of(name: str) -> Table:
    """A declared table by its stored name (``ind_items``) or CLI name (``items``)."""
    if name in TABLES:
        return TABLES[name]
    if name in BY_CLI_NAME:
        return BY_CLI_NAME[name]
    from pipeline.instruments import closest

    raise UsageError(
        f"unknown table {name!r}" + closest(name, BY_CLI_NAME),
        expected=", ".join(BY_CLI_NAME),
    )


def connect(path: Path | str) -> duckdb.DuckDBPyConnection:
    """A read-only connection to a database or published snapshot."""
    path = Path(path)
    if not path.exists():
        raise UsageError(
            "there is no database yet: load files with `sapat ingest` first", file=str(path)
        )
    try:
        return duckdb.connect(str(path), read_only=True)
    except duckdb.Error as exc:
        raise SapatError(
            f"cannot open the database ({exc}); if another Sapat command is writing to it, "
            "wait for it to finish and try again",
            file=str(path),
        ) from exc


def _where(filters: Mapping[str, object], table: Table) -> tuple[str, list]:
    """A WHERE clause over declared columns (identifiers from the declaration only,
    values bound as parameters)."""
    parts, params = [], []
    for col, value in filters.items():
        if value is None:
            continue
        if col not in table.names:
            raise UsageError(
                f"{table.cli_name or table.name} has no column {col!r}",
                expected=", ".join(table.names),
            )
        if isinstance(value, list | tuple | set | frozenset):
            parts.append(f'"{col}" IN (SELECT unnest(?))')
            params.append(list(value))
        else:
            parts.append(f'"{col}" = ?')
            params.append(value)
    return (" WHERE " + " AND ".join(parts)) if parts else "", params


def read(
    con: duckdb.DuckDBPyConnection,
    table: str,
    *,
    viewer: Viewer,
    tree: Tree,
    min_n: int,
    filters: Mapping[str, object] | None = None,
) -> pd.DataFrame:
    """A declared indicator table, gated and limited to what ``viewer`` may see.

    ``filters``: column → value (or list of values). Filters on the table's slice
    columns are applied before the gate (a slice is gated on its own); the others after.
    A ``parts`` table is gated with its parent rows, a ``comparison`` table with the
    cells it rests on, each read here from its own table through that table's gate.

    Returns the declared columns plus ``suppressed`` and ``suppression_reason``.
    """
    t = table_of(table)
    if min_n < MIN_N_FLOOR:
        raise UsageError(f"min_n must be at least {MIN_N_FLOOR}", value=min_n)
    filters = dict(filters or {})
    if not t.unit_columns and viewer.role is ViewerRole.TEACHER:
        return _empty(t)
    sliced = t.rule in ("units", "parts")
    before = {k: v for k, v in filters.items() if k in t.slice_by or not sliced}
    after = {k: v for k, v in filters.items() if k not in before}
    where, params = _where(before, t)
    cols = ", ".join(f'"{c}"' for c in t.names)
    order = ", ".join(f'"{c}"' for c in t.key)
    frame = con.execute(f"SELECT {cols} FROM {t.name}{where} ORDER BY {order}", params).fetchdf()
    parents = cells = None
    if t.parent is not None and not frame.empty:
        # the parent rows of these slices, as their own table's gate shows them (it gates
        # each slice on its own: reading only these slices changes none of them)
        slices = {c: sorted(set(frame[c])) for c in t.slice_by}
        parents = read(
            con,
            t.parent.table,
            viewer=OFFICE,
            tree=tree,
            min_n=min_n,
            filters={**slices, **dict(t.parent.where)},
        )
    if t.rests_on and not frame.empty:
        cells = _cells(con, t, frame, tree, min_n)
    frame = gate(frame, t, tree, min_n, parents=parents, cells=cells)
    for col, value in after.items():
        if value is None:
            continue
        if col not in frame:
            raise UsageError(f"{t.cli_name} has no column {col!r}", expected=", ".join(t.names))
        values = list(value) if isinstance(value, list | tuple | set | frozenset) else [value]
        frame = frame[frame[col].isin(values)]
    scope = tree.scope(viewer)
    if scope is not None:
        for col in t.unit_columns:
            frame = frame[frame[col].isin(scope)]
    return frame.reset_index(drop=True)


def _cells(
    con: duckdb.DuckDBPyConnection, t: Table, frame: pd.DataFrame, tree: Tree, min_n: int
) -> dict[str, pd.DataFrame]:
    """The cells the rows of ``frame`` rest on (``t.rests_on``): per units table, its rows
    in the slices these rows name, as its own gate shows them to every reader (it gates
    each slice on its own, in the order :func:`read` reads it: reading only these slices,
    and of each row only the keys and ``n`` it decides on, changes none of its flags)."""
    out = {}
    for name, slices in _cell_slices(frame, t).items():
        up = TABLES[name]
        where, params = _where(slices, up)
        cols = ", ".join(f'"{c}"' for c in dict.fromkeys([*up.key, *up.n_columns]))
        order = ", ".join(f'"{c}"' for c in up.key)
        rows = con.execute(f"SELECT {cols} FROM {up.name}{where} ORDER BY {order}", params)
        out[name] = gate(rows.fetchdf(), up, tree, min_n)
    return out


def _cell_slices(frame: pd.DataFrame, t: Table) -> dict[str, dict[str, list | None]]:
    """Per units table that ``t`` rests on, the values of its slice columns the rows of
    ``frame`` name (a column some cell leaves open, e.g. the waves up to a trend's, is
    read whole)."""
    out: dict[str, dict[str, list | None]] = {}
    for cell in t.rests_on:
        slices = out.setdefault(cell.table, {})
        named = {c: set(frame[mine].dropna().unique()) for c, mine in cell.on}
        named.update({c: {v} for c, v in cell.where})
        for c in TABLES[cell.table].slice_by:
            if c not in named or slices.get(c, ()) is None:
                slices[c] = None  # read whole (None is no filter)
            else:
                slices[c] = sorted(set(slices.get(c, ())) | named[c])
    return out


def _empty(t: Table) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=object) for c in t.names}).assign(
        suppressed=pd.Series(dtype=bool), suppression_reason=pd.Series(dtype=object)
    )


def gate(
    frame: pd.DataFrame,
    t: Table,
    tree: Tree,
    min_n: int,
    *,
    parents: pd.DataFrame | None = None,
    cells: Mapping[str, pd.DataFrame] | None = None,
) -> pd.DataFrame:
    """Apply a table's disclosure rule (see :mod:`pipeline.store.tables`).

    ``parents``: for a ``parts`` table, the rows of its parent table (``t.parent``) in
    the same slices, already gated (:func:`read` passes them); required there.
    ``cells``: for a ``comparison`` table resting on cells of units tables
    (``t.rests_on``), each such table's rows in the slices the frame names, already
    gated (:func:`read` passes them); required there.
    """
    if frame.empty:
        return frame.assign(
            suppressed=pd.Series(dtype=bool), suppression_reason=pd.Series(dtype=object)
        )
    if t.rule == "none":
        return frame.assign(suppressed=False, suppression_reason=None)
    if t.rule == "comparison":
        need = {c.table for c in t.rests_on} - set(cells or {})
        if need:
            raise ValueError(f"{t.name} is gated with the cells it rests on ({', '.join(need)})")
        return _gate_comparisons(frame, t, min_n, cells or {})
    if t.rule == "parts":
        if parents is None:
            raise ValueError(f"{t.name} is gated with its parent rows ({t.parent.table})")
        return _gate_parts(frame, t, min_n, parents)
    labels = [c for c in t.labels if c in frame and c not in t.slice_by and c != "unit"]
    n_col = t.n_columns[0]
    is_teacher = frame["org_level"] == "teacher"
    parts = []
    for part, parents in (
        (frame[~is_teacher], tree.parents),
        (frame[is_teacher], tree.teacher_department),
    ):
        if part.empty:
            continue
        parts.append(
            suppress(
                part,
                n_col=n_col,
                min_n=min_n,
                hierarchy=dict(parents),
                unit_col="unit",
                by=list(t.slice_by),
                labels=labels,
            )
        )
    return pd.concat(parts).loc[frame.index]


def _gate_parts(frame: pd.DataFrame, t: Table, min_n: int, parents: pd.DataFrame) -> pd.DataFrame:
    """The ``parts`` rule: within each slice, the rows of one unit (a teacher's
    disciplines) form a family under that unit's parent row (the teacher's row of
    ind_items), which stays shown or hidden as its own table's gate decided. Primary and
    complementary suppression run on these families; then the rows are masked
    fail-closed (every column but the keys and labels)."""
    assert t.parent is not None
    slices = list(t.slice_by)
    here, there = t.parent.unit
    n_col = t.n_columns[0]
    # a row's id: its key beyond the slice (teacher, discipline); its parent's: the unit
    cell = frame[[c for c in t.key if c not in slices]].astype(object)
    cell = cell.where(cell.notna(), "").astype(str)
    child = "\x01" + cell.iloc[:, 0]
    for c in cell.columns[1:]:
        child = child + "\x1f" + cell[c]
    head = "\x00" + frame[here].astype(str)
    up = parents[parents[there].isin(set(frame[here]))]
    up_n = pd.to_numeric(up[TABLES[t.parent.table].n_columns[0]], errors="coerce")
    heads = pd.DataFrame(
        {
            **{c: up[c].to_numpy() for c in slices},
            "_cell": ("\x00" + up[there].astype(str)).to_numpy(),
            n_col: up_n.to_numpy(dtype=float),
            "suppressed": up["suppressed"].astype(bool).to_numpy(),
        }
    )
    kids = pd.DataFrame(
        {
            **{c: frame[c].to_numpy() for c in slices},
            "_cell": child.to_numpy(),
            n_col: pd.to_numeric(frame[n_col], errors="coerce").to_numpy(dtype=float),
            "suppressed": False,
        }
    )
    flags = suppress(
        pd.concat([heads, kids], ignore_index=True),
        n_col=n_col,
        min_n=min_n,
        hierarchy=dict(zip(child, head, strict=True)),
        unit_col="_cell",
        by=slices,
    )
    hidden = flags["suppressed"].to_numpy(dtype=bool)[len(heads) :]
    reason = flags["suppression_reason"].to_numpy(dtype=object, na_value=None)[len(heads) :]
    # A parent the families would hide stays shown in its own table. That happens only
    # when none of its parts is shown and they do not add up to it (its table and this
    # one computed from different answers): fail closed all the same, every part hidden.
    exposed = (
        ~heads["suppressed"].to_numpy() & flags["suppressed"].to_numpy(dtype=bool)[: len(heads)]
    )
    if exposed.any():
        marks = heads.loc[exposed, [*slices, "_cell"]].assign(_exposed=True)
        mine = kids[slices].assign(_cell=head.to_numpy())
        more = mine.merge(marks, on=[*slices, "_cell"], how="left")["_exposed"]
        more = more.fillna(False).to_numpy(dtype=bool) & ~hidden
        reason[more] = "complementary"
        hidden = hidden | more
    marked = frame.assign(suppressed=hidden, suppression_reason=reason)
    labels = [c for c in t.labels if c not in slices]
    return suppress(marked, n_col=n_col, min_n=min_n, by=slices, labels=labels)


def _gate_comparisons(
    frame: pd.DataFrame, t: Table, min_n: int, cells: Mapping[str, pd.DataFrame]
) -> pd.DataFrame:
    """Blank the statistics of rows resting on a group smaller than ``min_n``, and of
    rows resting on a cell of a units table that its gate hid (``cells``: those tables'
    rows, gated) or that it lacks (fail-closed)."""
    out = frame.copy()
    small = np.zeros(len(out), dtype=bool)
    for c in t.n_columns:
        small |= pd.to_numeric(out[c], errors="coerce").fillna(0).to_numpy() < min_n
    on_hidden, missing = _resting(frame, t, cells)
    on_hidden &= ~small
    missing &= ~small & ~on_hidden
    hide = small | on_hidden | missing
    keep = set(t.labels)
    for c in (c for c in out.columns if c not in keep):
        if pd.api.types.is_numeric_dtype(out[c]) and not pd.api.types.is_bool_dtype(out[c]):
            out[c] = out[c].astype("float64").mask(hide)
        else:
            out[c] = out[c].astype(object).mask(hide, None)
    reason = np.full(len(out), None, dtype=object)
    reason[small] = "small_cell"
    reason[on_hidden] = "rests_on_hidden_cell"
    reason[missing] = "rests_on_missing_cell"
    out["suppressed"] = hide
    out["suppression_reason"] = reason
    return out


def _resting(
    frame: pd.DataFrame, t: Table, cells: Mapping[str, pd.DataFrame]
) -> tuple[np.ndarray, np.ndarray]:
    """Per row of ``frame``: whether a cell it rests on (``t.rests_on``) is hidden in
    ``cells``, and whether one is missing there (no row matches, or the matching rows'
    ``n`` is not the one the row publishes).

    Both sides are coded on the cell's columns alike and the cells sorted by that code:
    the cells of a row are one run of the sorted codes (with ``through``, the run of its
    other columns up to its own value of the last), counted by cumulative sums."""
    hidden = np.zeros(len(frame), dtype=bool)
    missing = np.zeros(len(frame), dtype=bool)
    for cell in t.rests_on:
        there = cells[cell.table]
        for c, v in cell.where:
            there = there[(there[c] == v).to_numpy(dtype=bool)]
        k = len(there)
        code = np.zeros(k + len(frame), dtype=np.int64)
        for c, mine in cell.on:
            both = np.concatenate([there[c].to_numpy(dtype=object), frame[mine].to_numpy(object)])
            codes, uniques = pd.factorize(both, use_na_sentinel=False)
            code, _ = pd.factorize(code * (len(uniques) + 1) + codes)  # kept dense
            code = code.astype(np.int64)
        low = high = code[k:]
        if cell.through is not None:
            at, upto = cell.through
            both = np.concatenate([there[at].to_numpy(dtype=object), frame[upto].to_numpy(object)])
            rank, uniques = pd.factorize(both, sort=True, use_na_sentinel=False)
            code = code * (len(uniques) + 1) + rank
            low, high = low * (len(uniques) + 1), code[k:]
        order = np.argsort(code[:k], kind="stable")
        sorted_code = code[:k][order]
        up_n = pd.to_numeric(there[TABLES[cell.table].n_columns[0]], errors="coerce")
        cum_hidden = np.concatenate([[0], np.cumsum(there["suppressed"].to_numpy(bool)[order])])
        cum_n = np.concatenate([[0.0], np.cumsum(np.nan_to_num(up_n.to_numpy(float)[order]))])
        start = np.searchsorted(sorted_code, low, side="left")
        stop = np.searchsorted(sorted_code, high, side="right")
        found = stop > start
        hidden |= (cum_hidden[stop] - cum_hidden[start]) > 0
        missing |= ~found
        if cell.n is not None:
            said = pd.to_numeric(frame[cell.n], errors="coerce").to_numpy(dtype=float)
            missing |= found & ~(cum_n[stop] - cum_n[start] == said)
    return hidden, missing


def loads(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """The load manifest (quality office): one row per file ever loaded, with its counts
    and, per load, rows per flag (``flag_counts``)."""
    frame = con.execute(
        """SELECT load_id, file_name, instrument, version, wave, dialect, encoding, layout,
                  rows_read, rows_loaded, rows_quarantined, rows_excluded, rows_flagged,
                  duplicates, status, strftime(loaded_at, '%Y-%m-%d %H:%M') AS loaded_at, sha256
           FROM sys_loads ORDER BY load_id"""
    ).fetchdf()
    flags = con.execute(
        "SELECT load_id, flag, count(DISTINCT response_id) AS n FROM qa_flags GROUP BY ALL"
    ).fetchdf()
    per = {
        lid: dict(zip(g["flag"], g["n"].astype(int), strict=True))
        for lid, g in flags.groupby("load_id")
    }
    frame["flag_counts"] = [per.get(i, {}) for i in frame["load_id"]]
    return frame


def quarantine(
    con: duckdb.DuckDBPyConnection,
    *,
    wave: str | None = None,
    file: str | None = None,
    limit: int = 200,
) -> pd.DataFrame:
    """Rows set aside while loading (quality office), with the reason; ``file`` is the
    start of a file's sha256 or its name."""
    return con.execute(
        """SELECT l.file_name AS file, q.source_row AS row, q.column_name AS column,
                  q.check_name AS check, q.value, q.reason, l.wave, q.sha256
           FROM qa_quarantine q JOIN sys_loads l USING (load_id)
           WHERE (? IS NULL OR l.wave = ?)
             AND (? IS NULL OR q.sha256 LIKE ? || '%' OR l.file_name = ?)
           ORDER BY l.load_id, q.source_row LIMIT ?""",
        [wave, wave, file, file, file, limit],
    ).fetchdf()


def flags(
    con: duckdb.DuckDBPyConnection,
    *,
    wave: str | None = None,
    file: str | None = None,
    flag: str | None = None,
    limit: int = 200,
) -> pd.DataFrame:
    """Rows flagged for a look while loading (quality office): the file, its row, the
    flag, why, and whether the row is excluded from the indicators."""
    return con.execute(
        """SELECT l.file_name AS file, f.source_row AS row, f.flag, f.detail, f.excluded,
                  l.wave, l.instrument
           FROM qa_flags f JOIN sys_loads l USING (load_id)
           WHERE (? IS NULL OR l.wave = ?)
             AND (? IS NULL OR l.sha256 LIKE ? || '%' OR l.file_name = ?)
             AND (? IS NULL OR f.flag = ?)
           ORDER BY l.load_id, f.source_row, f.flag LIMIT ?""",
        [wave, wave, file, file, file, flag, flag, limit],
    ).fetchdf()


def names(con: duckdb.DuckDBPyConnection, lang: str) -> dict[str, dict[str, str]]:
    """Display names in ``lang`` of units, items, dimensions, questionnaires and
    disciplines known to the store: {"unit": {code: name}, "item": {...}, ...} (codes stay
    their own name when no label is declared)."""
    out: dict[str, dict[str, str]] = {
        "unit": {},
        "item": {},
        "dimension": {},
        "reverse": {},
        "instrument": {},
        "discipline": {},
    }
    have = {
        r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()
    }
    for kind, table in (("unit", "dim_units"), ("discipline", "dim_disciplines")):
        if table not in have:
            continue
        for code, *labels in con.execute(
            f"SELECT code, name_ky, name_ru, name_en FROM {table}"
        ).fetchall():
            out[kind][code] = _pick(dict(zip(("ky", "ru", "en"), labels, strict=True)), lang, code)
    if "dim_items" in have:
        for item, dim, reverse, *labels in con.execute(
            "SELECT item, dimension, reverse, label_ky, label_ru, label_en, dimension_label_ky, "
            "dimension_label_ru, dimension_label_en FROM dim_items ORDER BY instrument, version"
        ).fetchall():
            out["reverse"][item] = "yes" if reverse else ""
            out["item"][item] = _pick(
                dict(zip(("ky", "ru", "en"), labels[:3], strict=True)), lang, item
            )
            if dim:
                out["dimension"][dim] = _pick(
                    dict(zip(("ky", "ru", "en"), labels[3:], strict=True)), lang, dim
                )
        columns = {
            r[0]
            for r in con.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = 'dim_items'"
            ).fetchall()
        }
        if "title_en" in columns:  # stores written before titles were kept show codes
            for inst, *titles in con.execute(
                "SELECT DISTINCT ON (instrument) instrument, title_ky, title_ru, title_en "
                "FROM dim_items ORDER BY instrument, version DESC"
            ).fetchall():
                out["instrument"][inst] = _pick(
                    dict(zip(("ky", "ru", "en"), titles, strict=True)), lang, inst
                )
    return out


def _pick(labels: dict, lang: str, fallback: str) -> str:
    return labels.get(lang) or next((v for v in labels.values() if v), fallback)


def tables() -> Sequence[str]:
    """The CLI names of the readable tables."""
    return list(BY_CLI_NAME)
