"""The quality office's records: nonconformities, corrective and preventive actions, and
internal audit findings (ISO 9001 10.2, 9.2; the PDCA loop behind the management review).

Pure: this module reads any read-only connection (a published snapshot or the live
database) and checks what a person typed; only :class:`pipeline.store.Store` writes the
records (``record_candidates``, ``decide_nonconformity``, ``add_nonconformity``,
``add_action``, ``update_action``, ``close_action``, ``add_finding``, ``add_findings``).

Every check raises :class:`pipeline.errors.UsageError` whose message names the option
(``--unit``) or the sheet's column, with what was expected. The records hold no
respondent data: codes, dates, who decided, and the office's own words.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import date, datetime
from pathlib import Path

import duckdb
import pandas as pd

from pipeline.errors import UsageError

#: The three record tables (created by the store's SCHEMA, copied into every snapshot,
#: carried over unchanged by a rebuild: they are not derived from the raw files).
RECORD_TABLES = ("qa_nonconformities", "qa_actions", "qa_findings")

#: Where a nonconformity came from: an objective not met, a significant decline (both
#: found by a scan of the indicators), an internal audit, or entered by hand.
SOURCES = ("objective", "decline", "audit", "manual")
NC_STATUSES = ("candidate", "confirmed", "dismissed")
#: The decisions on a nonconformity a person takes (``sapat nonconformities confirm|dismiss``).
DECISIONS = ("confirmed", "dismissed")
ACTION_KINDS = ("corrective", "preventive")
ACTION_STATUSES = ("open", "in_progress", "done", "closed", "cancelled")
#: Statuses ``sapat actions update --status`` may set (closing takes a note: ``close``).
UPDATABLE_STATUSES = ("open", "in_progress", "done", "cancelled")
#: An action still to be carried out (it can be overdue).
PENDING_STATUSES = ("open", "in_progress")
ACTION_CHANGES = ("status", "due_date", "description", "owner_process")
FINDING_KINDS = ("nonconformity", "observation", "opportunity")
FINDING_STATUSES = ("open", "closed")

#: A candidate is recorded once: a second scan finding the same one adds nothing.
CANDIDATE_KEY = ("source", "objective", "instrument", "indicator", "unit", "wave")
CANDIDATE_COLUMNS = (*CANDIDATE_KEY, "detail")

#: The columns of each record table, in the order of the store's DDL.
COLUMNS = {
    "qa_nonconformities": (
        "nc_id",
        "source",
        "objective",
        "instrument",
        "indicator",
        "unit",
        "wave",
        "detail",
        "status",
        "reason",
        "created_at",
        "decided_by",
        "decided_at",
    ),
    "qa_actions": (
        "action_id",
        "nc_id",
        "kind",
        "unit",
        "instrument",
        "indicator",
        "owner_process",
        "due_date",
        "description",
        "status",
        "opened_wave",
        "created_at",
        "created_by",
        "updated_at",
        "closed_at",
        "closed_by",
        "closing_note",
    ),
    "qa_findings": (
        "finding_id",
        "audit_date",
        "process",
        "unit",
        "kind",
        "description",
        "status",
        "created_at",
        "created_by",
    ),
}

_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")
_WAVE = re.compile(r"^(\d{4})-(\d{4})$")


# ------------------------------------------------------------------ checks
def _closest(value: str, known: Iterable[str]) -> str:
    from pipeline.instruments import closest

    return closest(value, known)


def text(value: str | None, option: str, what: str = "a few words") -> str:
    """A required free text, stripped; empty is refused."""
    cleaned = (value or "").strip()
    if not cleaned:
        raise UsageError(f"{option}: this cannot be empty", expected=what)
    return cleaned


def choice(value: str | None, allowed: Iterable[str], option: str) -> str:
    """One of the ``allowed`` values (case and surrounding spaces ignored)."""
    allowed = tuple(allowed)
    cleaned = (value or "").strip().lower().replace("-", "_").replace(" ", "_")
    if cleaned in allowed:
        return cleaned
    raise UsageError(
        f"{option}: {value!r} is not a known value" + _closest(cleaned, allowed),
        expected=" | ".join(allowed),
    )


def parse_date(value: str | date | None, option: str) -> date:
    """A calendar date written ``YYYY-MM-DD``."""
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    cleaned = (value or "").strip()
    m = _DATE.match(cleaned)
    if m:
        try:
            return date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
        except ValueError:
            pass
    raise UsageError(
        f"{option}: {value!r} is not a date", expected="a date written YYYY-MM-DD, e.g. 2025-06-30"
    )


def check_wave(value: str | None, option: str = "--wave") -> str:
    """An academic year ``YYYY-YYYY`` (the second year follows the first)."""
    cleaned = (value or "").strip()
    m = _WAVE.match(cleaned)
    if not m or int(m.group(2)) != int(m.group(1)) + 1:
        raise UsageError(
            f"{option}: {value!r} is not an academic year", expected="YYYY-YYYY, e.g. 2024-2025"
        )
    return cleaned


def academic_year(value: str, option: str = "--year") -> tuple[date, date]:
    """The first and last day of an academic year (1 September to 31 August)."""
    start = int(check_wave(value, option)[:4])
    return date(start, 9, 1), date(start + 1, 8, 31)


def _code(value: str | None, known: list[str], option: str, kind: str, hint: str) -> str:
    """A code from ``known``: exactly, or written in other letter case."""
    cleaned = (value or "").strip()
    if cleaned in known:
        return cleaned
    folded = [k for k in known if k.casefold() == cleaned.casefold()]
    if len(folded) == 1:
        return folded[0]
    raise UsageError(
        f"{option}: unknown {kind} {value!r}" + _closest(cleaned, known), expected=hint
    )


def check_unit(registry, unit: str | None, option: str = "--unit") -> str:
    """A unit code of the workspace's org_units.csv."""
    known = [str(c) for c in registry.units["code"]]
    return _code(
        unit,
        known,
        option,
        "unit",
        f"a unit code (sapat org show); {registry.university} for the whole university",
    )


def check_process(registry, code: str | None, option: str = "--owner") -> str:
    """A process code of the quality manual (declarations/processes.csv)."""
    known = [str(c) for c in registry.processes["code"]] if len(registry.processes) else []
    if not known:
        raise UsageError(
            f"{option}: the workspace declares no processes",
            expected="declarations/processes.csv with the quality manual's processes (PR-01, ...)",
        )
    m = re.match(r"^([A-Za-z]+)\s*-?\s*0*(\d+)$", (code or "").strip())
    if m:  # PR-2, pr 02: the code as declared
        same = [
            k
            for k in known
            if (n := re.match(r"^([A-Za-z]+)-0*(\d+)$", k))
            and n.group(1).casefold() == m.group(1).casefold()
            and int(n.group(2)) == int(m.group(2))
        ]
        if len(same) == 1:
            return same[0]
    return _code(
        code,
        known,
        option,
        "process",
        f"a process code of declarations/processes.csv ({known[0]} … {known[-1]})",
    )


def check_objective(registry, objective: str | None, option: str = "--objective") -> str:
    """An objective id of declarations/objectives.yaml."""
    known = [str(o.get("id")) for o in registry.objectives if o.get("id")]
    return _code(
        objective, known, option, "objective", "an id of declarations/objectives.yaml (OBJ-01 …)"
    )


def _has(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    return bool(
        con.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE table_name = ? "
            "AND database_name = current_database()",
            [table],
        ).fetchone()[0]
    )


def check_instrument(
    con: duckdb.DuckDBPyConnection, instrument: str | None, option: str = "--instrument"
) -> str:
    """A questionnaire the database knows (its declarations, ``dim_items``)."""
    if not _has(con, "dim_items"):
        raise UsageError(
            f"{option}: the database holds no questionnaire yet",
            expected="load a file first (sapat ingest), so its questions are known",
        )
    known = [
        r[0] for r in con.execute("SELECT DISTINCT instrument FROM dim_items ORDER BY 1").fetchall()
    ]
    return _code(
        instrument, known, option, "questionnaire", ", ".join(known) or "(none loaded yet)"
    )


def indicator_codes(con: duckdb.DuckDBPyConnection, instrument: str) -> list[str]:
    """The item (and outcome) codes and the dimension codes of a questionnaire, in any of
    its versions."""
    if not _has(con, "dim_items"):
        return []
    return [
        r[0]
        for r in con.execute(
            """SELECT DISTINCT code FROM (
                   SELECT item AS code FROM dim_items
                   WHERE instrument = ? AND role IN ('item', 'outcome')
                   UNION SELECT dimension FROM dim_items
                   WHERE instrument = ? AND dimension IS NOT NULL)
               ORDER BY 1""",
            [instrument, instrument],
        ).fetchall()
    ]


def check_indicator(
    con: duckdb.DuckDBPyConnection,
    instrument: str,
    indicator: str | None,
    option: str = "--indicator",
) -> str:
    """An item or dimension code of the questionnaire."""
    known = indicator_codes(con, instrument)
    cleaned = (indicator or "").strip()
    if cleaned in known:
        return cleaned
    raise UsageError(
        f"{option}: {indicator!r} is not an item or dimension of {instrument}"
        + _closest(cleaned, known),
        expected=f"an item or dimension code: sapat instruments show {instrument}",
    )


def nonconformity(con: duckdb.DuckDBPyConnection, nc_id: int, option: str = "ID") -> dict:
    """The record of one nonconformity; an unknown id is refused."""
    frame = (
        con.execute("SELECT * FROM qa_nonconformities WHERE nc_id = ?", [int(nc_id)]).fetchdf()
        if _has(con, "qa_nonconformities")
        else pd.DataFrame()
    )
    if frame.empty:
        raise UsageError(
            f"{option}: there is no nonconformity {nc_id}",
            expected="a number from `sapat nonconformities list`",
        )
    return _row(frame)


def check_nc_for_action(con: duckdb.DuckDBPyConnection, nc_id: int, option: str = "--nc") -> dict:
    """A nonconformity an action may answer: it exists and is confirmed."""
    row = nonconformity(con, nc_id, option)
    if row["status"] != "confirmed":
        raise UsageError(
            f"{option}: nonconformity {nc_id} is {row['status']}, not confirmed",
            expected=f"confirm it first: sapat nonconformities confirm {nc_id} --why TEXT",
        )
    return row


def action(con: duckdb.DuckDBPyConnection, action_id: int, option: str = "ID") -> dict:
    """The record of one action; an unknown id is refused."""
    frame = (
        con.execute("SELECT * FROM qa_actions WHERE action_id = ?", [int(action_id)]).fetchdf()
        if _has(con, "qa_actions")
        else pd.DataFrame()
    )
    if frame.empty:
        raise UsageError(
            f"{option}: there is no action {action_id}",
            expected="a number from `sapat actions list`",
        )
    return _row(frame)


def _row(frame: pd.DataFrame) -> dict:
    return {k: (None if _missing(v) else v) for k, v in frame.iloc[0].to_dict().items()}


def _missing(v) -> bool:
    return v is None or (not isinstance(v, str) and bool(pd.isna(v)))


# ------------------------------------------------------------- new records
def new_nonconformity(
    con: duckdb.DuckDBPyConnection,
    registry,
    *,
    unit: str | None,
    instrument: str | None,
    indicator: str | None,
    wave: str | None,
    detail: str | None,
    objective: str | None = None,
) -> dict:
    """A nonconformity entered by hand, checked: the keyword arguments of
    :meth:`pipeline.store.Store.add_nonconformity`."""
    unit = check_unit(registry, unit)
    instrument = check_instrument(con, instrument)
    return {
        "unit": unit,
        "instrument": instrument,
        "indicator": check_indicator(con, instrument, indicator),
        "wave": check_wave(wave),
        "detail": text(detail, "--detail", "what was found, in a sentence"),
        "objective": check_objective(registry, objective) if objective else None,
    }


def new_action(
    con: duckdb.DuckDBPyConnection,
    registry,
    *,
    unit: str | None,
    instrument: str | None,
    indicator: str | None,
    owner_process: str | None,
    due_date: str | date | None,
    description: str | None,
    kind: str | None = "corrective",
    nc_id: int | None = None,
    wave: str | None = None,
) -> dict:
    """An action, checked: the keyword arguments of :meth:`pipeline.store.Store.add_action`.

    With ``nc_id`` (a confirmed nonconformity) the unit, questionnaire, indicator and wave
    not given are the nonconformity's."""
    if nc_id is not None:
        nc = check_nc_for_action(con, nc_id)
        unit = unit if unit is not None else nc["unit"]
        instrument = instrument if instrument is not None else nc["instrument"]
        indicator = indicator if indicator is not None else nc["indicator"]
        wave = wave if wave is not None else nc["wave"]
    for option, value in (
        ("--unit", unit),
        ("--instrument", instrument),
        ("--indicator", indicator),
    ):
        if value is None:
            raise UsageError(
                f"{option} is needed",
                expected=f"{option} …, or --nc ID to take it from a confirmed nonconformity",
            )
    kind = choice(kind, ACTION_KINDS, "--kind")
    unit = check_unit(registry, unit)
    owner = check_process(registry, owner_process, "--owner")
    due = parse_date(due_date, "--due")
    instrument = check_instrument(con, instrument)
    return {
        "unit": unit,
        "instrument": instrument,
        "indicator": check_indicator(con, instrument, indicator),
        "owner_process": owner,
        "due_date": due,
        "description": text(description, "--description", "what will be done, in a sentence"),
        "kind": kind,
        "nc_id": None if nc_id is None else int(nc_id),
        "opened_wave": None if wave is None else check_wave(wave),
    }


def action_changes(
    registry,
    *,
    status: str | None = None,
    due_date: str | date | None = None,
    description: str | None = None,
    owner_process: str | None = None,
) -> dict:
    """The changes to an action, checked: the keyword arguments of
    :meth:`pipeline.store.Store.update_action`."""
    changes: dict = {}
    if status is not None:
        if status.strip().lower() == "closed":
            raise UsageError(
                "--status closed: an action is closed with a note on what was achieved",
                expected="sapat actions close ID --note TEXT",
            )
        changes["status"] = choice(status, UPDATABLE_STATUSES, "--status")
    if due_date is not None:
        changes["due_date"] = parse_date(due_date, "--due")
    if description is not None:
        changes["description"] = text(description, "--description")
    if owner_process is not None:
        changes["owner_process"] = check_process(registry, owner_process, "--owner")
    if not changes:
        raise UsageError(
            "nothing to change", expected="at least one of --status, --due, --description, --owner"
        )
    return changes


#: The option naming each field of a finding (``sapat findings add``).
FINDING_OPTIONS = {
    "audit_date": "--date",
    "process": "--process",
    "unit": "--unit",
    "kind": "--kind",
    "description": "--description",
    "status": "--status",
}


def _finding_checks(registry, today: date | None) -> dict:
    """The check of each field of a finding: ``(value, option) -> clean value``."""

    def audit_date(value, option: str) -> date:
        when = parse_date(value, option)
        if when > (today or date.today()):
            raise UsageError(
                f"{option}: {when.isoformat()} is in the future", expected="the day of the audit"
            )
        return when

    return {
        "audit_date": audit_date,
        "process": lambda v, o: check_process(registry, v, o),
        "unit": lambda v, o: check_unit(registry, v, o),
        "kind": lambda v, o: choice(v, FINDING_KINDS, o),
        "description": lambda v, o: text(v, o, "the finding, in a sentence"),
        "status": lambda v, o: choice(v or "open", FINDING_STATUSES, o),
    }


def new_finding(
    registry,
    *,
    audit_date: str | date | None,
    process: str | None,
    unit: str | None,
    kind: str | None,
    description: str | None,
    status: str | None = "open",
    today: date | None = None,
) -> dict:
    """An internal audit finding, checked: the keyword arguments of
    :meth:`pipeline.store.Store.add_finding`. The audit date cannot be in the future."""
    values = {
        "audit_date": audit_date,
        "process": process,
        "unit": unit,
        "kind": kind,
        "description": description,
        "status": status,
    }
    checks = _finding_checks(registry, today)
    return {field: checks[field](values[field], FINDING_OPTIONS[field]) for field in checks}


# ------------------------------------------------------------- an audit sheet
#: Accepted headers of an audit sheet (lower case), each to its column.
SHEET_COLUMNS = {
    "audit_date": "audit_date",
    "audit date": "audit_date",
    "date": "audit_date",
    "дата": "audit_date",
    "дата аудита": "audit_date",
    "process": "process",
    "процесс": "process",
    "unit": "unit",
    "подразделение": "unit",
    "kind": "kind",
    "вид": "kind",
    "description": "description",
    "описание": "description",
    "status": "status",
    "статус": "status",
}
SHEET_REQUIRED = ("audit_date", "process", "unit", "kind", "description")
#: Values of the kind and status columns also accepted in Russian.
SHEET_VALUES = {
    "kind": {
        "несоответствие": "nonconformity",
        "наблюдение": "observation",
        "замечание": "observation",
        "возможность для улучшения": "opportunity",
        "возможность улучшения": "opportunity",
    },
    "status": {
        "открыт": "open",
        "открыта": "open",
        "открыто": "open",
        "закрыт": "closed",
        "закрыта": "closed",
        "закрыто": "closed",
    },
}
_DOTTED = re.compile(r"^(\d{1,2})\.(\d{1,2})\.(\d{4})$")


def _sheet_date(value: str) -> str:
    """A date cell: ``YYYY-MM-DD``, a workbook date (``YYYY-MM-DDT00:00:00``) or
    ``DD.MM.YYYY``, as ``YYYY-MM-DD``."""
    value = value.strip()
    if re.match(r"^\d{4}-\d{2}-\d{2}T00:00(:00)?$", value):
        return value[:10]
    m = _DOTTED.match(value)
    if m:
        return f"{m.group(3)}-{int(m.group(2)):02d}-{int(m.group(1)):02d}"
    return value


def read_findings_sheet(path: str | Path, registry, today: date | None = None) -> pd.DataFrame:
    """The findings of an audit sheet (CSV or XLSX), every row checked: columns
    ``audit_date, process, unit, kind, description`` and optionally ``status`` (headers
    also in Russian: дата, процесс, подразделение, вид, описание, статус). Dates as
    ``YYYY-MM-DD`` or ``DD.MM.YYYY``. Other columns are ignored.

    All or nothing: every problem is reported at once, each naming its row (as the
    spreadsheet numbers it) and column; no row is returned then. A row repeating an earlier
    row is a problem too. Returns one row per finding with the columns of
    :func:`new_finding` and ``row`` (the sheet's row number)."""
    from pipeline.readers import open_export

    path = Path(path)
    frame = open_export(path, dialect="plain").read_all()
    headers: dict[str, str] = {}  # column -> header as written
    for header in frame.columns:
        if header == "source_row":
            continue
        column = SHEET_COLUMNS.get(" ".join(str(header).split()).lower())
        if column is None:
            continue
        if column in headers:
            raise UsageError(
                f"the columns {headers[column]!r} and {header!r} both give {column}",
                file=str(path),
                expected="one column for each",
            )
        headers[column] = header
    missing = [c for c in SHEET_REQUIRED if c not in headers]
    if missing:
        accepted = "; ".join(
            f"{c} ({', '.join(h for h, v in SHEET_COLUMNS.items() if v == c and h != c)})"
            for c in missing
        )
        raise UsageError(
            f"the sheet has no column {', '.join(missing)}",
            file=str(path),
            expected=f"a header row naming them: {accepted}",
        )
    problems, rows, seen = [], [], {}
    checks = _finding_checks(registry, today)
    for record in frame.to_dict("records"):
        row = int(record["source_row"])
        cells = {
            c: ("" if _missing(record[h]) else str(record[h]).strip()) for c, h in headers.items()
        }
        for column, aliases in SHEET_VALUES.items():
            if column in cells:
                cells[column] = aliases.get(cells[column].lower(), cells[column])
        cells["audit_date"] = _sheet_date(cells["audit_date"])
        finding, wrong = {}, []
        for field, check in checks.items():
            where = f"row {row}, column {headers.get(field, field)!r}"
            try:
                finding[field] = check(cells.get(field), where)
            except UsageError as exc:
                wrong.append(str(exc))
        if wrong:
            problems.extend(wrong)
            continue
        key = tuple(finding[c] for c in ("audit_date", "process", "unit", "kind", "description"))
        if key in seen:
            problems.append(f"row {row} repeats row {seen[key]}")
            continue
        seen[key] = row
        rows.append({**finding, "row": row})
    if problems:
        shown = problems[:20] + ([f"… and {len(problems) - 20} more"] if len(problems) > 20 else [])
        raise UsageError(
            f"{len(problems)} problem(s) in the sheet; nothing was imported:\n  "
            + "\n  ".join(shown),
            file=str(path),
        )
    if not rows:
        raise UsageError("the sheet has no finding", file=str(path), expected="one row each")
    return pd.DataFrame(rows)


# ------------------------------------------------------------------ reading
def _frame(con: duckdb.DuckDBPyConnection, table: str, where: str, params: list, order: str):
    if not _has(con, table):
        return pd.DataFrame(columns=list(COLUMNS[table]))
    return con.execute(f"SELECT * FROM {table} WHERE {where} ORDER BY {order}", params).fetchdf()


def nonconformities(
    con: duckdb.DuckDBPyConnection, status: str | None = None, wave: str | None = None
) -> pd.DataFrame:
    """The nonconformities (candidates, confirmed, dismissed), by number; an empty frame
    with the columns when none is recorded (or the snapshot predates them)."""
    status = None if status is None else choice(status, NC_STATUSES, "--status")
    wave = None if wave is None else check_wave(wave)
    return _frame(
        con,
        "qa_nonconformities",
        "(? IS NULL OR status = ?) AND (? IS NULL OR wave = ?)",
        [status, status, wave, wave],
        "nc_id",
    )


def actions(
    con: duckdb.DuckDBPyConnection,
    status: str | None = None,
    unit: str | None = None,
    *,
    today: date | None = None,
) -> pd.DataFrame:
    """The actions, by number, with ``overdue`` (open or in progress past the due date).

    ``unit``: the actions of that unit and of every unit below it (a faculty's include its
    departments' and programmes'), as the declarations in the database (``dim_units``)
    nest them."""
    status = None if status is None else choice(status, ACTION_STATUSES, "--status")
    units = None if unit is None else _within(con, unit.strip())
    frame = _frame(
        con,
        "qa_actions",
        "(? IS NULL OR status = ?) AND (?::VARCHAR[] IS NULL OR list_contains(?, unit))",
        [status, status, units, units],
        "action_id",
    )
    due = pd.to_datetime(frame["due_date"])
    pending = frame["status"].isin(PENDING_STATUSES)
    frame["overdue"] = (pending & (due < pd.Timestamp(today or date.today()))).astype(bool)
    return frame


def _within(con: duckdb.DuckDBPyConnection, unit: str) -> list[str]:
    """A unit and every unit below it (just the unit without ``dim_units``)."""
    if not _has(con, "dim_units"):
        return [unit]
    return [
        r[0]
        for r in con.execute(
            """WITH RECURSIVE below(code) AS (
                   SELECT ?::VARCHAR
                   UNION SELECT u.code FROM dim_units u JOIN below b ON u.parent_code = b.code)
               SELECT code FROM below""",
            [unit],
        ).fetchall()
    ]


def findings(con: duckdb.DuckDBPyConnection, year: str | None = None) -> pd.DataFrame:
    """The internal audit findings by date; ``year`` an academic year ``YYYY-YYYY``
    (audits from 1 September to 31 August)."""
    first, last = academic_year(year) if year is not None else (None, None)
    return _frame(
        con,
        "qa_findings",
        "(?::DATE IS NULL OR audit_date BETWEEN ? AND ?)",
        [first, first, last],
        "audit_date, finding_id",
    )
