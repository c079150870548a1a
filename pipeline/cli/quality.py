"""``sapat nonconformities``, ``sapat actions``, ``sapat findings``: the quality office's
records of the PDCA loop (ISO 9001 9.2, 10.2), which the management review reports on.

Each change is written by the store in one transaction with an entry in the audit log,
then a new snapshot is published, so the dashboard and the review pack see it. Lists are
read from the published snapshot. The checks are :mod:`pipeline.quality`'s.

Registered on the ``sapat`` command in :mod:`pipeline.cli.main` with::

    app.add_typer(nonconformities_app, name="nonconformities")
    app.add_typer(actions_app, name="actions")
    app.add_typer(findings_app, name="findings")

That module is imported inside the functions, as it imports this one.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime
from pathlib import Path
from typing import Annotated

import typer

from pipeline.errors import UsageError

nonconformities_app = typer.Typer(
    help="Nonconformities: candidates found in the results, confirmed or dismissed by the "
    "quality office, and those recorded by hand.",
    no_args_is_help=True,
)
actions_app = typer.Typer(
    help="Corrective and preventive actions: who does what by when, and how each ended.",
    no_args_is_help=True,
)
findings_app = typer.Typer(
    help="Internal audit findings: add them one by one or import the audit's sheet.",
    no_args_is_help=True,
)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
IdArgument = Annotated[int, typer.Argument(help="The number (first column of the list).")]
UnitOption = Annotated[
    str | None, typer.Option("--unit", help="A unit code (sapat org show).", show_default=False)
]
InstrumentOption = Annotated[
    str | None,
    typer.Option(
        "--instrument", help="The questionnaire (e.g. student_experience).", show_default=False
    ),
]
IndicatorOption = Annotated[
    str | None,
    typer.Option(
        "--indicator",
        help="An item or dimension code of the questionnaire (sapat instruments show I).",
        show_default=False,
    ),
]
WaveOption = Annotated[
    str | None,
    typer.Option(
        "--wave", help="The academic year, YYYY-YYYY (e.g. 2024-2025).", show_default=False
    ),
]


# ------------------------------------------------------------------ plumbing
def _friendly_errors():
    """:func:`pipeline.cli.main.friendly_errors` (plain message, exit 2 for usage errors)."""
    from pipeline.cli.main import friendly_errors

    return friendly_errors()


def _ws():
    from pipeline.cli.main import workspace

    return workspace()


def _print(text: str) -> None:
    from pipeline.cli.main import console

    console.print(text, highlight=False)


@contextmanager
def _writing(ws, create: bool = False) -> Iterator:
    """The workspace's database open for writing, as the other writing commands open it;
    after the block succeeds a new snapshot is published for readers. Without ``create``
    a missing database is refused (nothing to check the questionnaires against)."""
    from pipeline.ingest.pseudonym import load_key
    from pipeline.store import Store

    s = ws.settings
    if not create and not s.db_path.exists():
        raise UsageError(
            "there is no database yet: load files with `sapat ingest` first", file=str(s.db_path)
        )
    with Store(s.db_path, raw_dir=s.raw_dir, audit_key=load_key()) as store:
        yield store
        store.publish(s.snapshots_dir, s.stats.signature())


@contextmanager
def _reading(ws) -> Iterator:
    """A read-only connection to the current snapshot (the live database when nothing was
    published yet; an empty one when there is no database either: empty lists)."""
    import duckdb

    from pipeline.publish import connect
    from pipeline.store.snapshots import open_current

    con = open_current(ws.settings.snapshots_dir)
    if con is None:
        con = connect(ws.settings.db_path) if ws.settings.db_path.exists() else duckdb.connect()
    try:
        yield con
    finally:
        con.close()


def _plain(value):
    """A value of a record for JSON and tables: times to the second, missing as None."""
    import pandas as pd

    if value is None or (not isinstance(value, str) and bool(pd.isna(value))):
        return None
    if isinstance(value, pd.Timestamp):
        value = value.to_pydatetime()
    if isinstance(value, datetime):
        return value.isoformat(sep=" ", timespec="seconds")
    if isinstance(value, date):
        return value.isoformat()
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    return value


def _show(frame, columns: dict[str, str], title: str, as_json: bool, empty: str) -> None:
    """A list as JSON (every column) or as a screen table of ``columns`` (column ->
    heading) that fits the terminal as every table of sapat does (codes never cut)."""
    import pandas as pd

    from pipeline.cli.main import _show as show_table

    records = [{k: _plain(v) for k, v in r.items()} for r in frame.to_dict("records")]
    if as_json:
        print(json.dumps(records, ensure_ascii=False))
        return
    if not records:
        _print(empty)
        return
    shown = pd.DataFrame(
        {h: ["" if r.get(c) is None else str(r[c]) for r in records] for c, h in columns.items()}
    )
    show_table(shown, title, False, "--json")


def _date_columns(frame, *columns: str):
    """Date columns as dates (not midnight times) for showing."""
    import pandas as pd

    for c in columns:
        frame[c] = [None if pd.isna(v) else pd.Timestamp(v).date() for v in frame[c]]
    return frame


# ------------------------------------------------------------ nonconformities
@nonconformities_app.command("list")
def nonconformities_list(
    status: Annotated[
        str | None,
        typer.Option("--status", help="Only these: candidate, confirmed or dismissed."),
    ] = None,
    wave: WaveOption = None,
    as_json: JsonOption = False,
) -> None:
    """List the nonconformities: candidates found in the results (objectives not met,
    significant declines), those confirmed or dismissed (by whom, why), and those recorded
    by hand."""
    from pipeline import quality

    with _friendly_errors(), _reading(_ws()) as con:
        frame = quality.nonconformities(con, status, wave)
    if not as_json:
        frame = frame.assign(
            source=[
                f"{src} {obj}" if obj else src
                for src, obj in zip(frame["source"], frame["objective"], strict=True)
            ],
            indicator=_joined(frame["instrument"], frame["indicator"]),
        )
    _show(
        frame,
        {
            "nc_id": "no.",
            "status": "status",
            "source": "source",
            "indicator": "indicator",
            "unit": "unit",
            "wave": "wave",
            "detail": "what was found",
        },
        "Nonconformities (--json adds the decisions: by whom, when, why)",
        as_json,
        "No nonconformity recorded"
        + (
            " with these options."
            if status or wave
            else " yet: add one with `sapat nonconformities add`, or scan the results."
        ),
    )


def _joined(instruments, indicators) -> list[str]:
    """``questionnaire: indicator`` for a table cell."""
    return [
        f"{i}: {c}" if isinstance(i, str) and isinstance(c, str) else (c or i or "")
        for i, c in zip(instruments, indicators, strict=True)
    ]


@nonconformities_app.command("add")
def nonconformities_add(
    unit: UnitOption = None,
    instrument: InstrumentOption = None,
    indicator: IndicatorOption = None,
    wave: WaveOption = None,
    detail: Annotated[
        str | None,
        typer.Option("--detail", help="What was found, in a sentence.", show_default=False),
    ] = None,
    objective: Annotated[
        str | None,
        typer.Option(
            "--objective", help="The quality objective not met (OBJ-01 …), if one is concerned."
        ),
    ] = None,
) -> None:
    """Record a nonconformity found by a person (not by a scan of the results).

    It is recorded as confirmed, by you; an action can then answer it (sapat actions add
    --nc ID). Every option but --objective is needed; codes are checked against the
    workspace's declarations and questionnaires.
    """
    from pipeline import quality

    with _friendly_errors():
        ws = _ws()
        _needed(unit=unit, instrument=instrument, indicator=indicator, wave=wave, detail=detail)
        with _writing(ws) as store:
            record = quality.new_nonconformity(
                store.con,
                ws.registry,
                unit=unit,
                instrument=instrument,
                indicator=indicator,
                wave=wave,
                detail=detail,
                objective=objective,
            )
            nc_id = store.add_nonconformity(**record)
    _print(
        f"[green]✓[/] Nonconformity {nc_id} recorded (confirmed): {record['instrument']} "
        f"{record['indicator']}, {record['unit']}, {record['wave']}."
    )


def _needed(**options) -> None:
    """Every option given (typer's own message would not say which ones are missing)."""
    missing = [f"--{name}" for name, value in options.items() if value is None]
    if missing:
        raise UsageError(
            f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} needed",
            expected="sapat nonconformities add --help",
        )


def _decide(nc_id: int, status: str, why: str) -> None:
    with _friendly_errors(), _writing(_ws()) as store:
        store.decide_nonconformity(nc_id, status, why)
    _print(f"[green]✓[/] Nonconformity {nc_id} {status}.")


WhyOption = Annotated[
    str,
    typer.Option("--why", help="Why (kept with the nonconformity).", show_default=False),
]


@nonconformities_app.command("confirm")
def nonconformities_confirm(nc_id: IdArgument, why: WhyOption) -> None:
    """Confirm a nonconformity: it is real and calls for a corrective action (sapat actions
    add --nc ID). Say why; the decision, who took it and when are kept."""
    _decide(nc_id, "confirmed", why)


@nonconformities_app.command("dismiss")
def nonconformities_dismiss(nc_id: IdArgument, why: WhyOption) -> None:
    """Dismiss a candidate nonconformity (e.g. too few answers to act on, a known cause
    already dealt with). Say why; a later scan does not bring it back."""
    _decide(nc_id, "dismissed", why)


# ------------------------------------------------------------------ actions
@actions_app.command("add")
def actions_add(
    unit: UnitOption = None,
    indicator: IndicatorOption = None,
    instrument: InstrumentOption = None,
    owner: Annotated[
        str | None,
        typer.Option(
            "--owner",
            help="The process that owns the action (PR-01 …, declarations/processes.csv).",
            show_default=False,
        ),
    ] = None,
    due: Annotated[
        str | None, typer.Option("--due", help="Due date, YYYY-MM-DD.", show_default=False)
    ] = None,
    description: Annotated[
        str | None,
        typer.Option("--description", help="What will be done, in a sentence.", show_default=False),
    ] = None,
    kind: Annotated[
        str, typer.Option("--kind", help="corrective (a problem found) or preventive.")
    ] = "corrective",
    nc: Annotated[
        int | None,
        typer.Option(
            "--nc",
            help="The confirmed nonconformity it answers; its unit, questionnaire, "
            "indicator and wave are taken when not given.",
            show_default=False,
        ),
    ] = None,
    wave: Annotated[
        str | None,
        typer.Option(
            "--wave",
            help="The wave whose results prompted it (YYYY-YYYY): the review pack follows "
            "the indicator at the next wave.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Record a corrective or preventive action on one indicator of one unit.

    Needed: --unit, --instrument and --indicator (or --nc), --owner, --due, --description.
    The action starts open; follow it with `sapat actions update` and end it with `sapat
    actions close`.
    """
    from pipeline import quality

    with _friendly_errors():
        ws = _ws()
        for option, value in (("--owner", owner), ("--due", due), ("--description", description)):
            if value is None:
                raise UsageError(f"{option} is needed", expected="sapat actions add --help")
        with _writing(ws) as store:
            record = quality.new_action(
                store.con,
                ws.registry,
                unit=unit,
                instrument=instrument,
                indicator=indicator,
                owner_process=owner,
                due_date=due,
                description=description,
                kind=kind,
                nc_id=nc,
                wave=wave,
            )
            action_id = store.add_action(**record)
    _print(
        f"[green]✓[/] Action {action_id} recorded ({record['kind']}): {record['instrument']} "
        f"{record['indicator']}, {record['unit']}; owner {record['owner_process']}, due "
        f"{record['due_date'].isoformat()}."
    )


@actions_app.command("list")
def actions_list(
    status: Annotated[
        str | None,
        typer.Option("--status", help="Only these: open, in_progress, done, closed or cancelled."),
    ] = None,
    unit: Annotated[
        str | None,
        typer.Option("--unit", help="Only this unit's and those of the units below it."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """List the corrective and preventive actions, with those past their due date marked
    overdue."""
    from pipeline import quality

    with _friendly_errors():
        ws = _ws()
        if unit is not None:
            unit = quality.check_unit(ws.registry, unit)
        with _reading(ws) as con:
            frame = quality.actions(con, status, unit)
    frame = _date_columns(frame, "due_date")
    if not as_json:
        frame = frame.assign(
            status=[
                f"{st}, overdue" if late else st
                for st, late in zip(frame["status"], frame["overdue"], strict=True)
            ],
            indicator=_joined(frame["instrument"], frame["indicator"]),
        )
    _show(
        frame,
        {
            "action_id": "no.",
            "status": "status",
            "kind": "kind",
            "unit": "unit",
            "indicator": "indicator",
            "owner_process": "owner",
            "due_date": "due",
            "nc_id": "nc",
            "description": "what will be done",
        },
        "Corrective and preventive actions (--json adds who, when, the wave, the closing note)",
        as_json,
        "No action recorded"
        + (" with these options." if status or unit else " yet: add one with `sapat actions add`."),
    )


@actions_app.command("update")
def actions_update(
    action_id: IdArgument,
    status: Annotated[
        str | None,
        typer.Option("--status", help="open, in_progress, done or cancelled.", show_default=False),
    ] = None,
    due: Annotated[
        str | None, typer.Option("--due", help="A new due date, YYYY-MM-DD.", show_default=False)
    ] = None,
    description: Annotated[
        str | None,
        typer.Option("--description", help="A new description.", show_default=False),
    ] = None,
    owner: Annotated[
        str | None,
        typer.Option("--owner", help="Another owning process (PR-01 …).", show_default=False),
    ] = None,
) -> None:
    """Change an action's status, due date, description or owner. A closed action stays as
    it was closed."""
    from pipeline import quality

    with _friendly_errors():
        ws = _ws()
        changes = quality.action_changes(
            ws.registry, status=status, due_date=due, description=description, owner_process=owner
        )
        with _writing(ws) as store:
            changed = store.update_action(action_id, **changes)
    if not changed:
        _print(f"Action {action_id} is like that already; nothing changed.")
        return
    told = {
        "status": lambda v: f"status {v}",
        "due_date": lambda v: f"due {v.isoformat()}",
        "description": lambda v: "new description",
        "owner_process": lambda v: f"owner {v}",
    }
    _print(
        f"[green]✓[/] Action {action_id}: "
        + "; ".join(told[f](new) for f, (_, new) in changed.items())
        + "."
    )


@actions_app.command("close")
def actions_close(
    action_id: IdArgument,
    note: Annotated[
        str,
        typer.Option(
            "--note",
            help="What was achieved (kept with the action), e.g. how its effect was checked.",
            show_default=False,
        ),
    ],
) -> None:
    """Close an action, saying what was achieved; who closed it and when are kept. The
    review pack then reports the action's indicator at the next wave."""
    with _friendly_errors(), _writing(_ws()) as store:
        store.close_action(action_id, note)
    _print(f"[green]✓[/] Action {action_id} closed.")


# ------------------------------------------------------------------ findings
@findings_app.command("add")
def findings_add(
    when: Annotated[
        str | None,
        typer.Option("--date", help="The day of the audit, YYYY-MM-DD.", show_default=False),
    ] = None,
    process: Annotated[
        str | None,
        typer.Option("--process", help="The process audited (PR-01 …).", show_default=False),
    ] = None,
    unit: UnitOption = None,
    kind: Annotated[
        str | None,
        typer.Option(
            "--kind",
            help="nonconformity, observation or opportunity (for improvement).",
            show_default=False,
        ),
    ] = None,
    description: Annotated[
        str | None,
        typer.Option("--description", help="The finding, in a sentence.", show_default=False),
    ] = None,
) -> None:
    """Record one finding of an internal audit (ISO 9001 9.2). All options are needed."""
    from pipeline import quality

    with _friendly_errors():
        ws = _ws()
        record = quality.new_finding(
            ws.registry,
            audit_date=when,
            process=process,
            unit=unit,
            kind=kind,
            description=description,
        )
        with _writing(ws, create=True) as store:
            finding_id = store.add_finding(**record)
    _print(
        f"[green]✓[/] Finding {finding_id} recorded ({record['kind']}): {record['process']}, "
        f"{record['unit']}, {record['audit_date'].isoformat()}."
    )


@findings_app.command("list")
def findings_list(
    year: Annotated[
        str | None,
        typer.Option(
            "--year", help="Only audits of this academic year, YYYY-YYYY (September to August)."
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """List the internal audit findings, by date."""
    from pipeline import quality

    with _friendly_errors(), _reading(_ws()) as con:
        frame = quality.findings(con, year)
    frame = _date_columns(frame, "audit_date")
    _show(
        frame,
        {
            "finding_id": "no.",
            "audit_date": "audit",
            "process": "process",
            "unit": "unit",
            "kind": "kind",
            "status": "status",
            "description": "finding",
        },
        "Internal audit findings",
        as_json,
        "No finding recorded"
        + (
            " in that year."
            if year
            else " yet: add one with `sapat findings add`, or import "
            "the audit's sheet with `sapat findings import`."
        ),
    )


@findings_app.command("import")
def findings_import(
    file: Annotated[
        Path,
        typer.Argument(
            help="The audit's sheet, CSV or XLSX: columns audit_date, process, unit, kind, "
            "description and optionally status (or дата, процесс, подразделение, вид, "
            "описание, статус).",
            show_default=False,
        ),
    ],
) -> None:
    """Import the findings of an internal audit from a sheet, all or nothing.

    Every row is checked first; if any is wrong, each problem is shown with its row and
    column and nothing is imported. Dates as YYYY-MM-DD or DD.MM.YYYY; kind nonconformity,
    observation or opportunity (or несоответствие, наблюдение, возможность для улучшения);
    status open (the default) or closed. Findings recorded already are skipped, so a sheet
    can be imported again after it grew.
    """
    from pipeline import quality

    with _friendly_errors():
        ws = _ws()
        frame = quality.read_findings_sheet(file, ws.registry)
        with _writing(ws, create=True) as store:
            ids = store.add_findings(frame, origin=file.name)
    skipped = len(frame) - len(ids)
    shown = f" ({ids[0]}–{ids[-1]})" if ids else ""
    _print(
        f"[green]✓[/] {len(ids)} finding(s) imported{shown}"
        + (f"; {skipped} recorded already, skipped." if skipped else ".")
    )
