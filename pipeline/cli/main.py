"""The ``sapat`` command: thin; every subcommand calls the modules that do the work.

Commands find the workspace as git finds a repository (the current folder upwards),
or take it from ``--workspace`` / ``SAPAT_WORKSPACE``; questionnaires, declarations and
settings are read from it, never from the installed package.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from pipeline import __version__
from pipeline.cli import placeholders
from pipeline.errors import SapatError, UsageError

placeholders.install()

app = typer.Typer(
    name="sapat",
    help="Sapat: survey and satisfaction analytics for the university quality office.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",
)
instruments_app = typer.Typer(help="See and check the questionnaires.", no_args_is_help=True)
org_app = typer.Typer(
    help="See and check the university's structure and headcounts.", no_args_is_help=True
)
app.add_typer(instruments_app, name="instruments")
app.add_typer(org_app, name="org")
from pipeline.cli.users import users_app  # noqa: E402 - the sub-command imports this module lazily

app.add_typer(users_app, name="users")
from pipeline.cli.quality import (  # noqa: E402 - they import this module lazily
    actions_app,
    findings_app,
    nonconformities_app,
)

app.add_typer(nonconformities_app, name="nonconformities")
app.add_typer(actions_app, name="actions")
app.add_typer(findings_app, name="findings")

console = Console()
err = Console(stderr=True)
#: ``--workspace`` of this invocation (the callback sets it)
_STATE: dict = {"workspace": None}


def fail(exc: SapatError, code: int = 1) -> None:
    """Print a domain error in plain words and exit; never a traceback."""
    from rich.markup import escape

    err.print(f"[bold red]Error:[/] {escape(str(exc))}", highlight=False, markup=True)
    raise typer.Exit(2 if isinstance(exc, UsageError) else code)


@contextmanager
def friendly_errors():
    try:
        yield
    except SapatError as exc:
        fail(exc)


@contextmanager
def progress_bar() -> Callable[[str, int, int], None]:
    """A progress bar that speaks in rows; yields a ``(label, done, total)`` callback."""
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=False,
        disable=not err.is_terminal and "--progress" not in sys.argv,
    ) as bar:
        tasks: dict[str, int] = {}

        def update(label: str, done: int, total: int) -> None:
            if label not in tasks:
                tasks[label] = bar.add_task(label, total=total)
            bar.update(tasks[label], completed=done, total=total)

        yield update


def workspace():
    """The workspace of this command (found once)."""
    from pipeline.workspace import Workspace

    if not isinstance(_STATE.get("ws"), Workspace):
        _STATE["ws"] = Workspace.find(_STATE["workspace"])
    return _STATE["ws"]


@app.callback(invoke_without_command=True)
def main(
    version: Annotated[bool, typer.Option("--version", help="Show Sapat's version.")] = False,
    workspace_dir: Annotated[
        Path | None,
        typer.Option(
            "--workspace",
            "-w",
            help="The workspace folder (default: the current "
            "folder or the nearest above it holding sapat.toml; or SAPAT_WORKSPACE).",
        ),
    ] = None,
) -> None:
    _STATE.clear()
    _STATE["workspace"] = workspace_dir
    if version:
        console.print(f"sapat {__version__}")
        raise typer.Exit()


# ------------------------------------------------------------------ init
@app.command()
def init(
    folder: Annotated[Path, typer.Argument(help="The folder to make (new or empty).")],
    example: Annotated[
        str | None,
        typer.Option(help="Copy an example's questionnaires, university and settings: batsu."),
    ] = None,
    name: Annotated[
        str | None, typer.Option(help="The workspace's name (your university).")
    ] = None,
) -> None:
    """Make a workspace: the office's folder for its questionnaires, its university and
    its data.

    Without --example the questionnaire list and the declaration files are empty, with
    their header rows; see docs/own-questionnaire.md for filling them in.
    """
    from pipeline.workspace import init_workspace

    with friendly_errors():
        root = init_workspace(folder, example, name=name)
    console.print(f"[green]✓[/] Workspace made in {root}")
    for sub, what in (
        ("sapat.toml", "settings"),
        ("instruments/", "questionnaires"),
        ("declarations/", "units, headcounts, teachers, objectives"),
        ("data/raw/", "original files, as loaded"),
        ("data/processed/", "the database"),
    ):
        console.print(f"  {sub:<16} {what}")
    console.print(f"Next: cd {folder} && sapat instruments check && sapat org check")


# ---------------------------------------------------------------- synth
def _parse_waves(text: str, option: str = "--wave") -> list[str]:
    from pipeline.instruments import wave_start_year

    waves = [w.strip() for w in text.split(",") if w.strip()]
    if not waves:
        raise UsageError(f"{option}: give at least one wave", expected="e.g. 2023-2024,2024-2025")
    for w in waves:
        try:
            wave_start_year(w)
        except SapatError as exc:
            raise UsageError(f"{option}: {exc.message}", expected=exc.expected) from exc
    return waves


@app.command()
def synth(
    out_dir: Annotated[Path, typer.Argument(help="Folder to write the exports and truth.json to.")],
    years: Annotated[
        str, typer.Option("--years", help="Academic years (waves), comma-separated.")
    ] = "2023-2024,2024-2025,2025-2026",
    seed: Annotated[
        int, typer.Option(help="Random seed: the same seed gives the same files.")
    ] = 2026,
    scale: Annotated[
        float, typer.Option(help="Multiply the number of respondents (e.g. 100 for benchmarks).")
    ] = 1.0,
    instrument: Annotated[
        list[str] | None, typer.Option(help="Only this questionnaire (repeat for several).")
    ] = None,
    export_format: Annotated[
        str | None,
        typer.Option(
            "--format",
            help="Write every file in this export format instead of the "
            "usual mix: google_forms, ms_forms, kobo, limesurvey, plain_cp1251.",
        ),
    ] = None,
    rows: Annotated[int, typer.Option(help="Your own questionnaires: respondents per wave.")] = 500,
    straight_share: Annotated[
        float,
        typer.Option(
            help="Your own questionnaires: share giving one answer to every "
            "item (51 % in a real teaching evaluation)."
        ),
    ] = 0.2,
    identical_share: Annotated[
        float,
        typer.Option(
            help="Your own questionnaires: share of rows repeating another row's answers."
        ),
    ] = 0.1,
) -> None:
    """Make realistic synthetic survey exports, for trying Sapat out, tests and benchmarks.

    For the BatSU example (the default): one folder per wave with the exports as offices
    receive them (Google Forms, Microsoft Forms, KoboToolbox, LimeSurvey, Windows-1251
    CSV), and truth.json listing the planted effects and the faults planted on purpose.
    For a questionnaire of your workspace (--instrument ID): one CSV per wave with answers
    on each item's own scale, straight-liners and identical rows in the shares asked.
    """
    from pipeline.instruments import example_catalog
    from pipeline.registry import example_registry
    from pipeline.synth import FORMAT_PLAN, synthesize
    from pipeline.synth.writers import DIALECTS

    with friendly_errors():
        waves = _parse_waves(years, "--years")
        if not scale > 0 or scale == float("inf"):
            raise UsageError("--scale must be a positive number", value=scale)
        if out_dir.exists() and not out_dir.is_dir():
            raise UsageError(
                "the folder to write to is a file",
                file=str(out_dir),
                expected="a folder (new, or one that exists)",
            )
        if export_format and export_format not in DIALECTS:
            raise UsageError(f"unknown --format {export_format!r}", expected=", ".join(DIALECTS))
        own = [i for i in instrument or [] if i not in FORMAT_PLAN]
        if own:
            _synth_own(out_dir, own, waves, seed, rows, straight_share, identical_share)
            return
        t0 = time.perf_counter()
        with progress_bar() as update:
            truth = synthesize(
                out_dir,
                example_registry(),
                example_catalog(),
                waves=waves,
                seed=seed,
                scale=scale,
                instruments=instrument,
                dialect=export_format,
                progress=update,
            )
    if not _STATE.get("quiet"):
        table = Table(title=f"Synthetic exports in {out_dir}")
        for col in ("file", "format", "rows"):
            table.add_column(col, justify="right" if col == "rows" else "left")
        for f in truth["files"]:
            table.add_row(f["file"], f["dialect"], f"{f['rows']:,}")
        console.print(table)
    console.print(
        f"{sum(f['rows'] for f in truth['files']):,} rows in {len(truth['files'])} files, "
        f"{len(truth['planted_changes'])} planted changes, {len(truth['faults'])} planted faults "
        f"({time.perf_counter() - t0:.1f} s). Truth: {Path(out_dir) / 'truth.json'}"
    )


def _context_lists(inst, reg, unit) -> dict[str, dict[str, list[str]]]:
    """Codes for the context fields the generator cannot invent: programmes of each
    faculty, the declared teachers and disciplines (or a few made-up codes)."""
    out: dict[str, dict[str, list[str]]] = {}
    for f in inst.context_fields:
        if f is unit:
            continue
        if f.context == "programme":
            progs = reg.programmes
            out[f.code] = {fac: list(g["code"]) for fac, g in progs.groupby("faculty_code")}
            out[f.code]["*"] = list(progs["code"])
        elif f.context == "teacher":
            out[f.code] = {
                "*": list(reg.teachers["teacher_code"]) or [f"T{i:02d}" for i in range(1, 13)]
            }
        elif f.context == "discipline":
            out[f.code] = {
                "*": list(reg.disciplines["discipline_code"]) or [f"D{i:02d}" for i in range(1, 21)]
            }
    return out


def _synth_own(
    out_dir: Path,
    ids: list[str],
    waves: list[str],
    seed: int,
    rows: int,
    straight: float,
    identical: float,
) -> None:
    """Synthetic exports of the workspace's own questionnaires (pipeline.synth.generic)."""
    from pipeline.instruments import closest
    from pipeline.synth import FORMAT_PLAN
    from pipeline.synth.generic import synthesize_instrument, unit_field, write_export

    try:
        ws = workspace()
        known = list(ws.catalog.versions)
    except SapatError:
        ws, known = None, []
    for i in ids:
        if i not in known:
            choices = [*FORMAT_PLAN, *(k for k in known if k not in FORMAT_PLAN)]
            raise UsageError(
                f"unknown questionnaire {i!r}" + closest(i, choices),
                expected=", ".join(choices)
                + ("" if ws else " (or one of your workspace's: run inside it)"),
            )
    if rows < 1:
        raise UsageError("--rows must be at least 1", value=rows)
    for name, share in (("--straight-share", straight), ("--identical-share", identical)):
        if not 0 <= share <= 1:
            raise UsageError(f"{name} must be a share between 0 and 1", value=share)
    reg = ws.registry
    written = 0
    for i in ids:
        for k, wave in enumerate(waves):
            inst = ws.catalog.for_wave(i, wave)
            f = unit_field(inst)
            if f is not None and f.context == "programme":
                units = list(reg.programmes["code"])
            elif f is not None:
                units = list(reg.faculties["code"]) or [reg.university]
            else:
                units = [reg.university]
            export, _ = synthesize_instrument(
                inst,
                units or [reg.university],
                n=rows,
                seed=seed + k,
                straight_share=straight,
                identical_share=identical,
                label_language=ws.settings.language,
                lists=_context_lists(inst, reg, f),
            )
            path = write_export(export, Path(out_dir) / wave / f"{i}.csv")
            written += len(export)
            console.print(f"{path}: {len(export):,} rows")
    console.print(f"{written:,} rows of {', '.join(ids)} in {len(waves)} waves.")


# ---------------------------------------------------------- instruments
LangOption = Annotated[
    str | None,
    typer.Option(
        "--lang", help="Language of names and labels: ky, ru or en (default: the workspace's)."
    ),
]


def _lang(lang: str | None) -> str:
    from pipeline.config import LANGUAGES

    if lang is None:
        return workspace().settings.language
    if lang not in LANGUAGES:
        raise UsageError(f"--lang: unknown language {lang!r}", expected="ky, ru or en")
    return lang


@instruments_app.command("list")
def instruments_list(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """List the workspace's questionnaires, their versions, waves and item counts."""
    with friendly_errors():
        cat = workspace().catalog
    rows = []
    for iid, entries in cat.versions.items():
        for e in entries:
            inst = cat.get(iid, e.version)
            rows.append(
                {
                    "instrument": iid,
                    "version": e.version,
                    "waves": list(e.waves),
                    "items": len(inst.items),
                    "outcomes": len(inst.outcomes),
                    "dimensions": len(inst.dimension_items()),
                    "population": inst.population or "",
                    "workbook": e.workbook.name,
                }
            )
    if as_json:
        print(json.dumps(rows, ensure_ascii=False))
        return
    if not rows:
        console.print(
            "No questionnaires yet: add a workbook and list it in "
            "instruments/versions.yaml (docs/own-questionnaire.md)."
        )
        return
    table = Table(title="Questionnaires")
    for col in rows[0]:
        table.add_column(col)
    for r in rows:
        table.add_row(*[", ".join(v) if isinstance(v, list) else str(v) for v in r.values()])
    console.print(table)


@instruments_app.command("show")
def instruments_show(
    instrument: Annotated[str, typer.Argument(help="The questionnaire id (form_id).")],
    version: Annotated[str | None, typer.Option(help="Version (default: the newest).")] = None,
    lang: LangOption = None,
) -> None:
    """Show a questionnaire's fields with their role, dimension, scale and label."""
    with friendly_errors():
        lang = _lang(lang)
        inst = workspace().catalog.get(instrument, version)
    table = Table(title=f"{inst.id} {inst.version}: {inst.title_in(lang)}")
    for col in ("code", "role", "dimension", "scale", "reverse", "label"):
        table.add_column(col)
    for f in inst.fields:
        scale = inst.scale_of(f)
        if scale is not None and scale.kind == "ordinal":
            desc = f"{f.list_name} {scale.low}..{scale.high}, positive ≥ {scale.positive_from}"
        else:
            desc = f.list_name or f.base_type
        role = f.role.value + (f" ({f.context})" if f.context else "")
        table.add_row(
            f.code, role, f.dimension or "", desc, "yes" if f.reverse else "", f.label(lang)
        )
    console.print(table)
    for m in inst.measures:
        console.print(
            f"measure [bold]{m.code}[/]: {m.statistic.value} of {m.field} — {m.label(lang)}"
        )


@instruments_app.command("check")
def instruments_check() -> None:
    """Check every workbook: readable by Sapat, valid XLSForm for KoboToolbox/ODK, versions
    consistent; warn where a label is missing in a language."""
    from pyxform.xls2xform import convert

    with friendly_errors():
        cat = workspace().catalog
    problems = list(cat.comparability_problems())
    for entries in cat.versions.values():
        for e in entries:
            try:
                result = convert(xlsform=str(e.workbook))
                problems += [
                    f"{e.workbook.name}: {w}"
                    for w in result.warnings
                    if "sapat_" not in w and "measures" not in w
                ]
            except Exception as exc:  # pyxform raises its own error types
                problems.append(f"{e.workbook.name}: pyxform cannot convert it: {exc}")
    for w in cat.warnings:
        err.print(f"[yellow]![/] {w}")
    if problems:
        for p in problems:
            err.print(f"[red]✗[/] {p}")
        raise typer.Exit(1)
    console.print(
        f"[green]✓[/] {len(cat.instruments)} questionnaire workbooks are valid XLSForm "
        "and their versions are consistent."
    )


@instruments_app.command("draft")
def instruments_draft(
    export: Annotated[Path, typer.Argument(help="An export of the survey (CSV or XLSX).")],
    form_id: Annotated[
        str,
        typer.Option(
            "--form-id",
            help="The questionnaire's id: lowercase letters, digits and _, e.g. course_feedback.",
        ),
    ],
    version: Annotated[str, typer.Option(help="Its version, e.g. 2026.1.")] = "1",
    waves: Annotated[
        str | None, typer.Option(help="Waves it was used in, comma-separated (YYYY-YYYY).")
    ] = None,
    unit: Annotated[
        str | None,
        typer.Option(
            help="The column naming each row's unit (faculty, department, site, country…)."
        ),
    ] = None,
    programme: Annotated[str | None, typer.Option(help="The column naming the programme.")] = None,
    teacher: Annotated[str | None, typer.Option(help="The column naming the teacher.")] = None,
    discipline: Annotated[
        str | None, typer.Option(help="The column naming the discipline (course).")
    ] = None,
    context: Annotated[
        list[str] | None,
        typer.Option(
            help="Another column that describes the respondent rather than asking "
            "a rating (repeat for several)."
        ),
    ] = None,
    population: Annotated[
        str | None,
        typer.Option(
            help="The headcount population it samples (headcounts.csv: students, "
            "graduates, employers, staff …)."
        ),
    ] = None,
    add_units: Annotated[
        bool,
        typer.Option(
            "--add-units",
            help="Add the --unit column's values to org_units.csv as "
            "faculty-level units, where they are not declared yet.",
        ),
    ] = False,
    sheet: Annotated[str | None, typer.Option(help="XLSX sheet to read.")] = None,
    mapping: Annotated[
        Path | None, typer.Option(help="A mapping file declaring a long layout, if any.")
    ] = None,
) -> None:
    """Draft a questionnaire workbook from an export: rating items with their scales,
    dimensions by heading stem, context fields. Check it, then `sapat instruments check`.

    Scales are recognised from numbers (0..10, 1..k), numbered labels such as
    "(1) Not useful at all", and the wording of common agreement, satisfaction, quality
    and frequency scales; every scale is printed with its order so it can be checked.
    """
    from collections import Counter

    from pipeline.instruments.draft import add_version, check_form_id, draft_items, write_draft
    from pipeline.readers import open_export

    with friendly_errors():
        check_form_id(form_id, version)
        wave_list = _parse_waves(waves, "--waves") if waves else []
        ws = workspace()
        path = ws.settings.instruments_dir / f"{form_id}__{version}.xlsx"
        if path.exists():
            raise UsageError(
                f"{path.name} exists already",
                file=str(path),
                expected="another --form-id or --version",
            )
        exp = open_export(export, sheet=sheet)
        if mapping:
            from pipeline.ingest.layout import LONG, read_mapping_file, widen

            m = read_mapping_file(mapping)
            if m.layout == LONG:
                exp = widen(exp, m)
        roles = {
            c: r
            for c, r in (
                ("unit", unit),
                ("programme", programme),
                ("teacher", teacher),
                ("discipline", discipline),
            )
            if r
        }
        roles = {col: role for role, col in roles.items()}
        for col in (*roles, *(context or [])):
            if col not in exp.columns:
                raise UsageError(
                    f"the export has no column {col!r}",
                    expected=", ".join(map(repr, exp.columns[:15])),
                )
        for col in context or []:
            roles[col] = None
        from pipeline.ingest.mapping import META_COLUMNS, normalise

        meta = {c for c in exp.columns if normalise(c) in META_COLUMNS and c not in roles}
        values: dict[str, Counter] = {c: Counter() for c in exp.columns}
        for chunk in exp.iter_chunks():
            for c in exp.columns:
                values[c].update(chunk[c].dropna().astype(str).tolist())
        items, scales = draft_items(exp.columns, values, {k: v for k, v in roles.items()}, meta)
        for it in items:
            if it.column in roles and roles[it.column] is None:
                it.context = it.code
        write_draft(
            path,
            form_id=form_id,
            version=version,
            items=items,
            scales=scales,
            lang=ws.settings.language,
            population=population,
        )
        add_version(ws.settings.instruments_dir, form_id, version, path.name, wave_list)
        added = _add_units(ws, values[unit]) if add_units and unit else []
    console.print(f"[green]✓[/] Drafted {path}")
    console.print(
        f"  {sum(i.role == 'item' for i in items)} rated items in "
        f"{len({i.dimension for i in items if i.role == 'item'})} dimensions, "
        f"{sum(i.role == 'context' for i in items)} context fields, "
        f"{sum(i.role == 'comment' for i in items)} comments; "
        f"metadata columns left to Sapat: {', '.join(sorted(meta)) or 'none'}"
    )
    for s in scales:
        order = " < ".join(f"{n}={lab}" for n, lab, _ in s.choices if n not in s.missing)
        extra = "".join(
            f"; {k.replace('_', ' ')}: {lab}"
            for n, lab, _ in s.choices
            for m, k in s.missing.items()
            if m == n
        )
        mark = "[green]✓[/]" if s.checked else "[bold yellow]check the order[/]"
        console.print(f"  {mark} {s.name} ({s.how}): {order}{extra}", highlight=False)
    if added:
        console.print(f"  units added to org_units.csv: {', '.join(added)}")
    console.print(
        "Next: open the workbook, check the scales' order, name the dimensions, mark "
        "reverse-worded items (reverse = yes), then `sapat instruments check`."
    )


def _add_units(ws, values) -> list[str]:
    """Add a unit column's values to org_units.csv (faculty level under the root)."""
    import csv

    from pipeline.ingest.mapping import normalise
    from pipeline.instruments.draft import code_of

    path = ws.settings.declarations_dir / "org_units.csv"
    reg = ws.registry
    known = {normalise(c) for c in reg.units["code"]}
    known |= {
        normalise(n) for col in ("name_ky", "name_ru", "name_en") for n in reg.units[col] if n
    }
    rows, added = [], []
    has_root = (reg.units["kind"] == "university").any()
    root = reg.university if has_root else "UNI"
    if not has_root:
        rows.append([root, "", "university", "", "", "", ws.settings.name, "", "no"])
    used = set(reg.units["code"])
    for value in sorted(v for v in values if str(v).strip()):
        if normalise(value) in known:
            continue
        code = code_of(value, used).upper()
        rows.append([code, root, "faculty", "", "", "", str(value).strip(), "", "no"])
        added.append(code)
    text = path.read_text(encoding="utf-8-sig")
    header = next(csv.reader([text.splitlines()[0]])) if text.strip() else list(reg.units.columns)
    cols = [
        "code",
        "parent_code",
        "kind",
        "level",
        "name_ky",
        "name_ru",
        "name_en",
        "city",
        "illustrative",
    ]
    with path.open("a", newline="", encoding="utf-8") as fh:
        if text and not text.endswith("\n"):
            fh.write("\n")
        out = csv.DictWriter(fh, fieldnames=header, extrasaction="ignore")
        for r in rows:
            out.writerow(dict(zip(cols, r, strict=True)))
    return added


# ------------------------------------------------------------------- org
@org_app.command("check")
def org_check() -> None:
    """Check the org structure, headcounts, teachers, disciplines and objectives."""
    with friendly_errors():
        reg = workspace().registry
    problems = reg.problems()
    if problems:
        for p in problems:
            err.print(f"[red]✗[/] {p}")
        raise typer.Exit(1)
    kinds = reg.units["kind"].value_counts().to_dict()
    console.print(
        "[green]✓[/] "
        + ", ".join(f"{v} {k}" for k, v in kinds.items())
        + f"; {len(reg.teachers)} teachers, {len(reg.disciplines)} disciplines, "
        f"{len(reg.objectives)} quality objectives."
    )


@org_app.command("show")
def org_show(lang: LangOption = None) -> None:
    """Show the org tree with each programme's level and students in the latest wave."""
    from rich.tree import Tree

    with friendly_errors():
        lang = _lang(lang)
        reg = workspace().registry
    students = reg.headcounts[reg.headcounts["population"] == "students"]
    latest = (
        students[students["wave"] == max(reg.waves)].set_index("unit_code")["headcount"]
        if reg.waves
        else {}
    )
    children: dict[str, list] = {}
    for r in reg.units.itertuples():
        children.setdefault(r.parent_code, []).append(r)

    def add(node: Tree, parent: str) -> None:
        for r in children.get(parent, []):
            extra = (
                f" [dim]{r.level or '?'}, {latest.get(r.code, 0)} students[/]"
                if r.kind == "programme"
                else ""
            )
            add(node.add(f"{r.code} {reg.name(r.code, lang)}{extra}"), r.code)

    tree = Tree("Org structure")
    add(tree, "")
    console.print(tree)


# ---------------------------------------------------------------- ingest
DbOption = Annotated[
    Path | None,
    typer.Option(
        "--db",
        help="The database file (default: the workspace's "
        "data/processed/sapat.duckdb, or SAPAT_DB).",
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
UnitOption = Annotated[
    str | None,
    typer.Option(help="Only this unit and the units below it (a code: sapat org show)."),
]
FormatOption = Annotated[
    str | None,
    typer.Option("--format", help="table (screen), csv, json or xlsx (default: from --out)."),
]
OutOption = Annotated[Path | None, typer.Option(help="Write to this file: .xlsx, .csv or .json.")]
ExcelOption = Annotated[
    bool,
    typer.Option(
        "--excel",
        help="CSV for Excel with a decimal comma: ';' between fields, UTF-8 with BOM "
        "(default: the workspace's csv setting).",
    ),
]


def _check_unit(unit: str | None, tree) -> None:
    """An unknown --unit is an error with the closest known codes."""
    if unit is None:
        return
    known = {tree.university, *tree.parents, *tree.teacher_department}
    _check_name("unit", unit, known, "a unit code: sapat org show")


def _db(db: Path | None) -> Path:
    """The database file: ``--db``, else the workspace's. A path that holds something else
    than a DuckDB database (a CSV, a folder) is refused."""
    path = db if db is not None else workspace().settings.db_path
    if path.is_dir():
        raise UsageError(
            "--db names a folder",
            file=str(path),
            expected="a database file, e.g. data/processed/sapat.duckdb",
        )
    if path.exists():
        with path.open("rb") as fh:
            head = fh.read(12)
        if len(head) >= 12 and head[8:12] != b"DUCK":
            raise UsageError(
                "this file is not a Sapat database (a DuckDB file)",
                file=str(path),
                expected="the database, e.g. data/processed/sapat.duckdb",
            )
    return path


_FLAG_WORDS = {
    "repeated_submission": "repeated submissions",
    "same_person_same_answers": "same person and answers again",
    "same_person": "same person, other answers",
    "identical_answers": "identical answers (kept)",
    "straight_liner": "one answer to every item",
    "too_few_answers": "too few answers",
    "speeder": "too fast",
}


def _print_result(r) -> None:
    colour = {"loaded": "green", "duplicate": "yellow", "rejected": "red"}[r.status]
    head = f"[{colour}]{r.status}[/] {r.file}"
    if r.instrument:
        parts = [f"{r.instrument} {r.version}" if r.version else r.instrument, r.wave, r.dialect]
        head += "  (" + ", ".join(str(p) for p in parts if p) + ")"
    console.print(head, highlight=False)
    if r.status == "loaded":
        console.print(
            f"    {r.rows_read:,} rows read: {r.rows_loaded:,} loaded, "
            f"{r.rows_quarantined:,} set aside in quarantine, "
            f"{r.rows_excluded:,} excluded as repeats, "
            f"{r.rows_flagged:,} flagged for a look",
            highlight=False,
        )
        if r.flag_counts:
            console.print(
                "    flags: "
                + ", ".join(f"{_FLAG_WORDS.get(k, k)} {v:,}" for k, v in r.flag_counts.items()),
                highlight=False,
            )
    for note in r.notes:
        console.print(f"    [dim]{note}[/]", highlight=False)
    shown = r.errors if r.status == "rejected" else r.errors[:5]
    for e in shown:
        if "message" in e:
            where = ", ".join(f"{k} {e[k]}" for k in ("row", "column") if e.get(k) is not None)
            text = e["message"] + (f" (expected {e['expected']})" if e.get("expected") else "")
            console.print(f"    [red]✗[/] {where + ': ' if where else ''}{text}", highlight=False)
        else:
            console.print(
                f"    [yellow]•[/] row {e['row']}, column {e['column']!r}: "
                f"{e['reason']} (found {e['value']!r})",
                highlight=False,
            )
    if r.status == "loaded" and len(r.errors) > 5:
        console.print(f"    … and more: sapat quarantine --file {r.sha256[:12]}")


def _set_values(pairs: list[str] | None) -> dict[str, str]:
    out = {}
    for pair in pairs or []:
        if "=" not in pair or not pair.split("=", 1)[0].strip() or not pair.split("=", 1)[1]:
            raise UsageError(
                f"--set {pair!r} is not FIELD=VALUE", expected="e.g. --set programme=P-KKH-ENG-B"
            )
        k, v = pair.split("=", 1)
        out[k.strip()] = v.strip()
    return out


@app.command()
def ingest(
    files: Annotated[list[Path], typer.Argument(help="Export files (CSV or XLSX) to load.")],
    instrument: Annotated[
        str | None, typer.Option(help="The questionnaire (default: recognised from the columns).")
    ] = None,
    wave: Annotated[
        str | None,
        typer.Option(help="Academic year YYYY-YYYY (default: from the file's folder or dates)."),
    ] = None,
    export_format: Annotated[
        str | None,
        typer.Option(
            "--format",
            help="Export format if not recognised: google_forms, ms_forms, kobo, "
            "limesurvey, surveymonkey, qualtrics, plain.",
        ),
    ] = None,
    mapping: Annotated[
        Path | None,
        typer.Option(
            help="YAML file matching columns to item codes, or declaring a long "
            "layout (one row per answer); see docs/ingesting.md."
        ),
    ] = None,
    sheet: Annotated[
        str | None, typer.Option(help="XLSX sheet to read (default: the first).")
    ] = None,
    set_value: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            help="Context the file lacks, the same for every row: "
            "FIELD=VALUE, e.g. --set programme=P-KKH-ENG-B (repeat for several).",
        ),
    ] = None,
    duplicates: Annotated[
        str | None,
        typer.Option(
            help="Repeated submissions: exclude, flag (keep them, marked) or off "
            "(default: the workspace setting)."
        ),
    ] = None,
    strict: Annotated[
        bool,
        typer.Option(help="Reject a whole file if any row fails, instead of setting rows aside."),
    ] = False,
    accept_dates: Annotated[
        bool,
        typer.Option(
            help="Load under the wave given although the submission dates fall in "
            "another academic year (recorded with the load)."
        ),
    ] = False,
    replace: Annotated[
        bool,
        typer.Option(
            help="This is a newer export of a survey already loaded: replace the earlier file."
        ),
    ] = False,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Load survey export files into the database, checking every answer.

    Rows that fail a check are set aside in quarantine with the reason (see
    `sapat quarantine`); the rest load. Each file loads completely or not at all, and
    loading the same file twice does nothing. Exit code 0 when every file loaded or was
    already loaded, 1 when any was rejected, 2 for a usage error.
    """
    from pipeline.config import DUPLICATE_POLICIES
    from pipeline.ingest import ingest_file
    from pipeline.ingest.layout import read_mapping_file
    from pipeline.ingest.pseudonym import load_key
    from pipeline.readers import DIALECT_NAMES
    from pipeline.store import Store

    with friendly_errors():
        if wave:
            _parse_waves(wave)
        if export_format and export_format not in DIALECT_NAMES:
            raise UsageError(
                f"unknown --format {export_format!r}", expected=", ".join(DIALECT_NAMES)
            )
        if duplicates is not None and duplicates not in DUPLICATE_POLICIES:
            raise UsageError(
                f"unknown --duplicates {duplicates!r}", expected="exclude, flag or off"
            )
        values = _set_values(set_value)
        ws = workspace()
        s = ws.settings
        catalog, registry = ws.catalog, ws.registry
        if instrument and instrument not in catalog.versions:
            from pipeline.instruments import closest

            raise UsageError(
                f"unknown questionnaire {instrument!r}" + closest(instrument, catalog.versions),
                expected=", ".join(catalog.versions) or "(none declared)",
            )
        explicit = read_mapping_file(mapping) if mapping else None
        key = load_key()
        results = []
        with (
            Store(_db(db), raw_dir=s.raw_dir, audit_key=key) as store,
            progress_bar() as update,
        ):
            _audit_settings(store, ws)
            for f in files:
                r = ingest_file(
                    f,
                    store,
                    catalog,
                    registry,
                    key=key,
                    instrument=instrument,
                    wave=wave,
                    dialect=export_format,
                    mapping=explicit,
                    sheet=sheet,
                    strict=strict,
                    replace=replace,
                    set_values=values,
                    duplicates=duplicates or s.duplicates,
                    duplicate_window_minutes=s.duplicate_window_minutes,
                    speeder_fraction=s.speeder_fraction,
                    progress=update,
                    accept_dates=accept_dates,
                )
                results.append(r)
                if not as_json and not _STATE.get("quiet"):
                    _print_result(r)
            if any(r.status == "loaded" for r in results):
                store.publish(_snapshots(db), s.stats.signature())
    if as_json:
        keys = (
            "file",
            "sha256",
            "status",
            "instrument",
            "version",
            "wave",
            "dialect",
            "encoding",
            "layout",
            "rows_read",
            "rows_loaded",
            "rows_quarantined",
            "rows_excluded",
            "rows_flagged",
            "flag_counts",
            "errors",
            "notes",
        )
        for r in results:
            print(json.dumps({k: r.as_dict()[k] for k in keys}, ensure_ascii=False))
    else:
        done = sum(r.status != "rejected" for r in results)
        rows = sum(r.rows_loaded for r in results)
        console.print(
            f"[bold]{done} of {len(results)} files loaded or already loaded "
            f"({rows:,} rows added).[/]"
        )
    if any(r.status == "rejected" for r in results):
        raise typer.Exit(1)


def _read_only(db: Path | None):
    from pipeline.publish import connect

    return connect(_db(db))


#: a prose column wider than this wraps on screen
WRAP_AT = 40
#: ... and may be narrowed down to this to make room for more columns
MIN_WRAP = 14


def _show(frame, title: str, as_json: bool, whole: str = "--json", lang: str = "en") -> None:
    """A table on screen that fits the terminal: columns in their order until the width is
    used, none cut short or wrapped (a code or a wave stays whole); the columns left out
    are named, with how to get everything."""
    if as_json:
        print(frame.to_json(orient="records", force_ascii=False, date_format="iso"))
        return
    from rich.cells import cell_len

    columns = [str(c) for c in frame.columns]
    texts = {c: ["" if v is None or v != v else str(v) for v in frame[c]] for c in frame.columns}
    width = console.width
    needs, prose, values_width = {}, set(), {}
    for c, name in zip(frame.columns, columns, strict=True):
        widest = max((cell_len(x) for x in texts[c]), default=0)
        values_width[c] = widest
        # a header may wrap at its spaces; a value never does
        header = max((cell_len(w) for w in name.split()), default=0)
        needs[c] = max(header, widest) + 3
        if widest > MIN_WRAP and " " in "".join(texts[c][:50]):
            prose.add(c)  # prose (a question, a unit's name) may wrap; codes never do
    # keep as many columns as fit, narrowing prose columns (down to MIN_WRAP) before
    # leaving any column out
    chosen = list(frame.columns)
    while True:
        fixed = sum(needs[c] for c in chosen if c not in prose) + 4
        wrap_cols = [c for c in chosen if c in prose]
        room = width - fixed
        each = room // len(wrap_cols) - 3 if wrap_cols else WRAP_AT
        if (room >= 0 and each >= MIN_WRAP) or len(chosen) == 1:
            break
        chosen.pop()
    width_of = {c: max(min(each, WRAP_AT, needs[c] - 3), MIN_WRAP) for c in wrap_cols}
    wrapped = {c for c in wrap_cols if needs[c] - 3 > width_of[c]}
    table = Table(title=title, show_lines=bool(wrapped))
    for c in chosen:
        if c in wrap_cols:
            table.add_column(str(c), max_width=width_of[c], overflow="fold")
        else:
            table.add_column(str(c), min_width=max(values_width[c], 1), overflow="fold")
    for i in range(len(frame)):
        table.add_row(*[texts[c][i] for c in chosen])
    console.print(table)
    legends = _legends(lang)
    notes = list(dict.fromkeys(legends[str(c)] for c in chosen if str(c) in legends))
    if notes:
        console.print("[dim]" + "\n".join(notes) + "[/]", highlight=False)
    left = columns[len(chosen) :]
    if left:
        from pipeline.locale import t

        more = t("screen.more", lang, n=len(left), names=", ".join(left), whole=whole)
        console.print(f"[dim]{more}[/]", highlight=False)


@app.command()
def quarantine(
    wave: Annotated[str | None, typer.Option(help="Only this wave.")] = None,
    file: Annotated[
        str | None,
        typer.Option("--file", help="Only this file: its name, or its sha256 (or the start)."),
    ] = None,
    limit: Annotated[int, typer.Option(help="Show at most this many rows.")] = 200,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show the rows set aside during loading, with the reason for each."""
    from pipeline.publish import quarantine as read_quarantine

    with friendly_errors():
        if limit < 1:
            raise UsageError("--limit must be at least 1", value=limit)
        con = _read_only(db)
        frame = read_quarantine(con, wave=wave, file=file, limit=limit)
    _show(frame if as_json else frame.drop(columns=["sha256"]), "Rows in quarantine", as_json)


@app.command("flags")
def flags_command(
    wave: Annotated[str | None, typer.Option(help="Only this wave.")] = None,
    file: Annotated[
        str | None,
        typer.Option("--file", help="Only this file: its name, or its sha256 (or the start)."),
    ] = None,
    flag: Annotated[
        str | None,
        typer.Option(
            help="Only this flag: repeated_submission, same_person_same_answers, "
            "same_person, identical_answers, straight_liner, too_few_answers, speeder."
        ),
    ] = None,
    limit: Annotated[int, typer.Option(help="Show at most this many rows.")] = 200,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """List the rows flagged for a look while loading, and whether each is excluded from
    the indicators (only evidence of a repeated submission excludes a row)."""
    from pipeline.publish import flags as read_flags

    with friendly_errors():
        if limit < 1:
            raise UsageError("--limit must be at least 1", value=limit)
        known = set(_FLAG_WORDS)
        if flag is not None and flag not in known:
            from pipeline.instruments import closest

            raise UsageError(
                f"unknown --flag {flag!r}" + closest(flag, known), expected=", ".join(sorted(known))
            )
        frame = read_flags(_read_only(db), wave=wave, file=file, flag=flag, limit=limit)
    frame = frame[["file", "row", "flag", "excluded", "wave", "instrument", "detail"]]
    _show(frame, "Rows flagged for a look", as_json)


@app.command()
def loads(db: DbOption = None, as_json: JsonOption = False) -> None:
    """List every file loaded: when, what, how many rows loaded, set aside, excluded as
    repeats and flagged (per rule with --json)."""
    from pipeline.publish import loads as read_loads

    with friendly_errors():
        frame = read_loads(_read_only(db))
    if as_json:
        _show(frame, "Loads", True)
        return
    frame = frame.drop(columns=["sha256", "encoding", "duplicates", "version", "flag_counts"])
    first = [
        "load_id",
        "instrument",
        "wave",
        "status",
        "rows_read",
        "rows_loaded",
        "rows_quarantined",
        "rows_excluded",
        "rows_flagged",
    ]
    frame = frame[first + [c for c in frame.columns if c not in first]]
    frame = frame.rename(
        columns={
            "rows_read": "read",
            "rows_loaded": "loaded",
            "rows_quarantined": "set aside",
            "rows_excluded": "repeats",
            "rows_flagged": "flagged",
            "load_id": "load",
        }
    )
    _show(frame, "Loads", False)


# ------------------------------------------------------------ indicators
def _decimal(text: str, lang: str) -> str:
    """A number's text with the decimal comma Kyrgyz and Russian readers write."""
    return text.replace(".", ",") if lang in ("ky", "ru") and isinstance(text, str) else text


def _number(v) -> str:
    """A number for a screen table: whole numbers as integers, others to 3 digits."""
    if v is None or v != v:
        return ""
    if isinstance(v, bool):
        return "yes" if v else ""
    if float(v).is_integer() and abs(v) < 1e12:
        return f"{int(v)}"
    return f"{v:.3g}"


#: Columns that hold counts (of answers, respondents, people): written as integers.
_COUNT_COLUMNS = {"respondents", "headcount", "population", "k", "family_size"}


def _whole_counts(frame):
    """Count columns (``n``, ``n_*``, ``x_*``, respondents, headcount …) as integers
    where every value is whole: the disclosure gate blanks small cells, which makes them
    floating-point on the way (``537.0``)."""
    import pandas as pd

    out = frame
    for c in frame.columns:
        name = str(c)
        if not (name == "n" or name.startswith(("n_", "x_")) or name in _COUNT_COLUMNS):
            continue
        if not pd.api.types.is_float_dtype(frame[c]):
            continue
        values = frame[c].dropna()
        if (values == values.round()).all():
            out = out.assign(**{name: frame[c].astype("Int64")})
    return out


def _format(output_format: str | None, out: Path | None) -> str:
    """The output format: ``--format``, else from ``--out``'s extension, else the screen."""
    from pipeline.outputs import format_from

    fmt = format_from(out, output_format)
    if fmt == "table" and out is not None:
        raise UsageError("--format table is for the screen; give --out FILE.xlsx, .csv or .json")
    return fmt


def _write_output(
    frame,
    fmt: str | None,
    out: Path | None,
    title: str,
    *,
    excel: bool = False,
    lang: str = "en",
    notes: list[str] | None = None,
) -> None:
    """Show ``frame`` on screen, print it (csv, json) or write it to ``out`` (csv, json,
    xlsx); files keep every column at full precision, the screen rounds."""
    from pipeline.locale import t
    from pipeline.outputs import write_table

    fmt = _format(fmt, out) if fmt is None or out is not None else fmt
    if fmt not in ("table", "csv", "json", "xlsx"):
        raise UsageError(f"unknown --format {fmt!r}", expected="table, csv, json or xlsx")
    notes = notes or []
    if fmt == "table":
        shown = frame.copy()
        for c in shown.select_dtypes(include=["number", "bool"]).columns:
            shown[c] = shown[c].map(lambda v: _decimal(_number(v), lang))
        for c in frame.attrs.get("numeric_text", []):
            if c in shown:
                shown[c] = shown[c].map(lambda v: _decimal(v, lang))
        for line in frame.attrs.get("context", []):
            title += f"\n{line}"
        _show(shown, title, False, t("screen.whole_file", lang), lang=lang)
        if notes:
            console.print("[dim]" + "\n".join(notes) + "[/]", highlight=False)
        return
    frame = _whole_counts(frame)
    excel = excel or workspace().settings.excel_csv if fmt == "csv" else False
    if out is None:
        from pipeline.outputs import write_stream

        write_stream(frame, sys.stdout, fmt=fmt, excel_csv=excel)
        return
    from pipeline.store.tables import column_meanings

    meanings = {**column_meanings(), **_VIEW_COLUMNS}
    write_table(
        frame,
        out,
        fmt=fmt,
        title=title,
        columns={c: meanings.get(c, "") for c in frame.columns},
        excel_csv=excel,
        lang=lang,
        notes=notes,
    )
    err.print(f"Wrote {len(frame):,} rows to {out}")


#: meanings of the columns views add to the stored ones (the xlsx "about" sheet)
_VIEW_COLUMNS = {
    "instrument_name": "the questionnaire's title in the chosen language",
    "unit_name": "the unit's name in the chosen language",
    "item_name": "the question as worded in the chosen language",
    "dimension_name": "the dimension's name in the chosen language",
    "pct_from": "% positive in the earlier wave",
    "pct_to": "% positive in the later wave",
    "change_points": "% positive now minus then, in percentage points",
    "direction": "better or worse, taking a reverse-worded item into account",
    "direction_text": "the same in the chosen language",
    "reverse_worded": "true when agreeing is the unfavourable answer (e.g. conflicts at work)",
    "p_adjusted": "the smaller of the two corrected p-values; below alpha: significant",
    "p_adjusted_pct": "p-value of the test on % positive, corrected over every comparison "
    "of this list",
    "p_method_pct": "normal approximation, or Fisher's exact test where counts are small",
    "p_adjusted_rank": "p-value of the Mann-Whitney test on all answers, corrected over "
    "every comparison of this list (none under 10 answers a side)",
    "p_method_rank": "normal, or too_few_answers (no p-value)",
    "significant": "p_adjusted below the significance level",
    "university_pct_positive": "the university's % positive for the same item and wave",
    "university_mean": "the university's mean for the same item and wave",
    "vs_rest": "higher or lower than the rest of the university after correction, "
    "or empty when not distinguishable",
    "vs_rest_p_adjusted": "corrected p-value of the unit against the rest (% positive)",
}


#: What ``sapat indicators`` shows on screen for each table (csv/json: every column).
SCREEN = {
    "items": [
        "wave",
        "unit_name",
        "item_name",
        "n",
        "mean",
        "pct_positive",
        "pct_positive_ci_low",
        "pct_positive_ci_high",
        "university_pct_positive",
        "vs_rest",
        "response_rate",
        "indicative_only",
    ],
    "dimensions": [
        "wave",
        "unit_name",
        "dimension_name",
        "n",
        "mean",
        "pct_positive",
        "pct_positive_ci_low",
        "pct_positive_ci_high",
    ],
    "teaching": [
        "wave",
        "teacher",
        "discipline_name",
        "item_name",
        "n",
        "mean",
        "pct_positive",
        "pct_positive_ci_low",
        "pct_positive_ci_high",
        "indicative_only",
    ],
    "outcomes": ["wave", "unit", "measure", "n", "value", "ci_low", "ci_high"],
    "response": ["wave", "unit", "respondents", "headcount", "response_rate", "indicative_only"],
    "reliability": ["wave", "scale", "k", "n", "alpha", "low_alpha"],
    "item_total": ["wave", "scale", "item", "n", "alpha_if_deleted", "item_total_corr"],
    "drivers": ["wave", "outcome", "predictor", "n", "r2", "importance", "rank"],
    "weighted": [
        "wave",
        "item",
        "design",
        "estimate",
        "method",
        "n",
        "value",
        "se",
        "ci_low",
        "ci_high",
    ],
    "changes": [
        "wave_from",
        "wave_to",
        "unit",
        "item",
        "test",
        "n_from",
        "n_to",
        "estimate",
        "p_adjusted",
        "effect_size",
    ],
    "benchmark": [
        "wave",
        "unit",
        "item",
        "test",
        "n_unit",
        "estimate",
        "p_adjusted",
        "effect_size",
    ],
    "kruskal": ["wave", "item", "n", "n_groups", "statistic", "df", "p_value", "p_adjusted"],
    "dunn": ["wave", "item", "group_a", "group_b", "z", "p_adjusted"],
    "trends": ["wave", "unit", "item", "term", "n", "estimate", "p_adjusted"],
    "unavailable": ["instrument", "wave", "table_name", "reason"],
}
_HEADERS = {
    "pct_positive": "% pos",
    "pct_positive_ci_low": "CI low",
    "pct_positive_ci_high": "CI high",
    "response_rate": "resp. rate",
    "indicative_only": "indicative",
    "ci_low": "CI low",
    "ci_high": "CI high",
    "p_adjusted": "p (adj.)",
    "effect_size": "effect",
}


def _legends(lang: str) -> dict[str, str]:
    """What a screen column means, by its header in ``lang`` (and the English headers of
    the tables not yet translated), with the workspace's own thresholds filled in."""
    from pipeline.locale import t

    try:
        s = workspace().settings
        fields = {
            "n": s.stats.min_n_reliable,
            "rate": _decimal(f"{100 * s.stats.min_rate_reliable:g}", lang),
            "alpha": _decimal(f"{s.stats.alpha:g}", lang),
        }
    except SapatError:
        fields = {"n": 10, "rate": "50", "alpha": _decimal("0.05", lang)}
    out = {}
    for col, legend, english in (
        ("col.indicative", "legend.indicative", "indicative"),
        ("col.p_adjusted", "legend.p_adjusted", "p (adj.)"),
        ("col.effect_size", "legend.effect_size", "effect"),
    ):
        text = t(legend, lang, **fields)
        out[t(col, lang)] = text
        out.setdefault(english, text)
    return out


#: screen headers in the reader's language (message ids of pipeline/locale)
_SAY = {
    "wave": "col.wave",
    "unit_name": "col.unit_name",
    "item_name": "col.item_name",
    "dimension_name": "col.dimension_name",
    "instrument_name": "col.instrument_name",
    "teacher": "col.teacher",
    "discipline_name": "col.discipline_name",
    "n": "col.n",
    "mean": "col.mean",
    "pct_positive": "col.pct_positive",
    "university_pct_positive": "col.university_pct",
    "vs_rest": "col.vs_university",
    "response_rate": "col.response_rate",
    "indicative_only": "col.indicative",
    "pct_positive_ci": "col.ci",
    "ci": "col.ci",
}


#: columns that say what a row is about (lifted above the table when every row shares one)
_CONTEXT = ("instrument_name", "wave", "unit_name", "item_name", "dimension_name")


def _screen(frame, cli_name: str, lang: str):
    """The columns of a table a person reads on screen, headed in ``lang``; a response
    rate shown in percent like every other share."""
    from pipeline.locale import t as say

    cols = [c for c in SCREEN.get(cli_name, list(frame.columns)) if c in frame]
    shown = frame[cols].copy()
    if "response_rate" in shown:
        shown["response_rate"] = 100 * shown["response_rate"].astype(float)
    for low, high, name in (
        ("pct_positive_ci_low", "pct_positive_ci_high", "pct_positive_ci"),
        ("ci_low", "ci_high", "ci"),
    ):
        if low in shown and high in shown:
            lo, hi = shown[low].astype(float), shown[high].astype(float)
            text = [
                "" if a != a or b != b else f"{_number(a)}–{_number(b)}"
                for a, b in zip(lo, hi, strict=True)
            ]
            shown.insert(shown.columns.get_loc(low), name, text)
            shown = shown.drop(columns=[low, high])
    if "indicative_only" in shown:
        shown["indicative_only"] = [
            "" if v is None or v != v else say("yes" if v else "no", lang)
            for v in shown["indicative_only"]
        ]
    headers = {c: say(_SAY[c], lang) for c in shown.columns if c in _SAY}
    headers.update({c: h for c, h in _HEADERS.items() if c not in headers})
    # what every row shares (one unit, one question) goes above the table, once
    context = [
        c for c in _CONTEXT if c in shown and len(shown) > 1 and shown[c].nunique(dropna=False) == 1
    ]
    lifted = [f"{headers.get(c, c)}: {shown[c].iloc[0]}" for c in context]
    shown = shown.drop(columns=context).rename(columns=headers)
    shown.attrs["context"] = lifted
    shown.attrs["numeric_text"] = [headers.get(c, c) for c in ("pct_positive_ci", "ci")]
    return shown


def _check_name(kind: str, value: str | None, known, hint: str = "") -> None:
    if value is None or value in set(known):
        return
    from pipeline.instruments import closest

    raise UsageError(
        f"unknown {kind} {value!r}" + closest(value, known),
        expected=hint or (", ".join(sorted(map(str, known))[:20]) or "(none loaded)"),
    )


def _check_statistics(confidence: float | None, ci_method: str | None, adjust: str | None):
    """Option errors that name the option the user typed."""
    from pipeline.config import ADJUST_METHODS, CI_METHODS

    if confidence is not None and not 0.5 <= confidence < 1:
        raise UsageError(
            "--confidence must be between 0.5 and 1", value=confidence, expected="e.g. 0.95 or 0.90"
        )
    if ci_method is not None and ci_method not in CI_METHODS:
        raise UsageError(f"unknown --ci-method {ci_method!r}", expected=", ".join(CI_METHODS))
    if adjust is not None and adjust not in ADJUST_METHODS:
        raise UsageError(f"unknown --adjust {adjust!r}", expected="holm or bh")


def _snapshots(db: Path | None) -> Path:
    """Where the published snapshots of the database live."""
    return _db(db).parent / "snapshots"


def _audit_settings(store, ws) -> None:
    """Record in the audit log when the workspace's settings file changed."""
    import hashlib

    src = ws.settings.source
    digest = hashlib.sha256(src.read_bytes()).hexdigest()[:16] if src else "defaults"
    last = store.con.execute(
        "SELECT outcome FROM sys_audit WHERE action = 'settings' ORDER BY seq DESC LIMIT 1"
    ).fetchall()
    if not last or last[0][0] != digest:
        store.audit("settings", str(src.name if src else "defaults"), digest)


def _fresh(db: Path | None, options: dict, full: bool):
    """A read-only connection to current figures: recompute what new loads (or other
    statistical choices) touched and publish a snapshot when needed, then open the newest
    snapshot. Reading never touches the live database otherwise."""
    from pipeline.ingest.pseudonym import load_key
    from pipeline.publish import connect
    from pipeline.store import Store, touched
    from pipeline.store.snapshots import open_current

    ws = workspace()
    stats = ws.settings.with_stats(**options).stats
    path = _db(db)
    snaps = _snapshots(db)
    snap = open_current(snaps)
    if snap is not None and not full:
        meta = snap.execute("SELECT any_value(signature) FROM snapshot_meta").fetchone()[0]
        if meta == stats.signature():
            try:
                live = connect(path)
            except SapatError:  # a load is being written: read the last published figures
                return snap
            try:
                if touched(live, stats.signature(), False).empty:
                    return snap
            finally:
                live.close()
        snap.close()
    elif snap is not None:
        snap.close()
    if not path.exists():
        raise UsageError(
            "there is no database yet: load files with `sapat ingest` first", file=str(path)
        )
    from pipeline.indicators import recompute

    with (
        Store(path, raw_dir=ws.settings.raw_dir, audit_key=load_key()) as store,
        progress_bar() as update,
    ):
        _audit_settings(store, ws)
        done = recompute(store, ws.registry, ws.catalog, stats, full=full, progress=update)
        if len(done):
            # names and wording as declared now (a release may keep more of them)
            store.write_declarations(ws.catalog, ws.registry.units, ws.registry.disciplines)
            store.audit("recompute", f"{len(done)} questionnaire × wave", stats.signature())
            err.print(f"Recomputed {len(done)} questionnaire × wave combinations.")
        store.publish(snaps, stats.signature())
    return open_current(snaps)


@app.command()
def indicators(
    table: Annotated[
        str,
        typer.Option(
            help="Which table: items, dimensions, teaching, outcomes, response, "
            "reliability, item_total, drivers, weighted, changes, benchmark, kruskal, dunn, "
            "trends, unavailable."
        ),
    ] = "items",
    wave: Annotated[str | None, typer.Option(help="Only this wave (YYYY-YYYY).")] = None,
    instrument: Annotated[str | None, typer.Option(help="Only this questionnaire.")] = None,
    level: Annotated[
        str | None,
        typer.Option(
            help="Org level: university, faculty, department, programme or teacher "
            "(default faculty, where the table has levels)."
        ),
    ] = None,
    item: Annotated[str | None, typer.Option(help="Only this item code.")] = None,
    dimension: Annotated[
        str | None, typer.Option(help="Show dimension scores for this dimension instead of items.")
    ] = None,
    outcomes: Annotated[
        bool, typer.Option(help="Show the outcome measures (employment…): --table outcomes.")
    ] = False,
    recompute_all: Annotated[
        bool, typer.Option("--all", help="Recompute everything, not only what new loads touched.")
    ] = False,
    confidence: Annotated[
        float | None,
        typer.Option(
            help="Confidence level of the intervals (default: the workspace's, 0.95; "
            "QILT uses 0.90)."
        ),
    ] = None,
    ci_method: Annotated[
        str | None,
        typer.Option(
            help="Interval for % positive: wilson, agresti_coull, clopper_pearson, svy_logit, "
            "svy_beta (default: the workspace's)."
        ),
    ] = None,
    adjust: Annotated[
        str | None,
        typer.Option(help="Correction for many tests at once: holm or bh (Benjamini-Hochberg)."),
    ] = None,
    unit: UnitOption = None,
    lang: LangOption = None,
    output_format: FormatOption = None,
    out: OutOption = None,
    excel: ExcelOption = False,
    db: DbOption = None,
) -> None:
    """Compute the satisfaction indicators and show them, small groups hidden.

    Recomputes what new loads touched (everything with --all): n, mean, SD, median, %
    positive with its confidence interval, response rate, reliability; dimension scores;
    Cronbach's alpha; outcome measures; tests of change, benchmarks and trends. Then
    shows one table. Cells with fewer respondents than the privacy threshold are never
    shown.
    """
    from pipeline.indicators import ORG_LEVELS
    from pipeline.locale import t as say
    from pipeline.publish import OFFICE, Tree, read, table_of
    from pipeline.views.indicators import in_context

    with friendly_errors():
        _check_statistics(confidence, ci_method, adjust)
        language = _lang(lang)
        if outcomes:
            table = "outcomes"
        if dimension and table == "items":
            table = "dimensions"
        t = table_of(table)
        if level is not None and level not in ORG_LEVELS:
            raise UsageError(f"unknown --level {level!r}", expected=", ".join(ORG_LEVELS))
        if item and dimension:
            raise UsageError("give --item or --dimension, not both")
        if wave:
            _parse_waves(wave)
        ws = workspace()
        tree = Tree.of(ws.registry)
        _check_unit(unit, tree)
        options = {"confidence": confidence, "ci_method": ci_method, "adjust": adjust}
        con = _fresh(db, options, recompute_all)
        loaded = con.execute(
            "SELECT DISTINCT instrument, wave FROM pub_loads WHERE status = 'loaded'"
        ).fetchdf()
        _check_name("questionnaire", instrument, loaded["instrument"])
        _check_name("wave", wave, loaded["wave"])
        # the names the store knows (its declarations table), without reading workbooks
        known_items = {
            r[0]
            for r in con.execute(
                "SELECT DISTINCT item FROM dim_items WHERE role = 'item'"
            ).fetchall()
        }
        known_dims = {
            r[0]
            for r in con.execute(
                "SELECT DISTINCT dimension FROM dim_items WHERE dimension IS NOT NULL"
            ).fetchall()
        }
        _check_name("item", item, known_items, "an item code: sapat instruments show ID")
        _check_name(
            "dimension", dimension, known_dims, "a dimension code: sapat instruments show ID"
        )
        filters = {"wave": wave, "instrument": instrument, "item": item, "dimension": dimension}
        filters = {k: v for k, v in filters.items() if v is not None and k in t.names}
        if "org_level" in t.names:
            filters["org_level"] = level or "faculty"
        frame = read(
            con, t.name, viewer=OFFICE, tree=tree, min_n=ws.settings.min_n, filters=filters
        )
        frame = in_context(
            con,
            frame,
            t,
            viewer=OFFICE,
            tree=tree,
            min_n=ws.settings.min_n,
            lang=language,
            alpha=ws.settings.stats.alpha,
            unit=unit,
        )
        fmt = _format(output_format, out)
        notes = []
        if "pct_positive_ci_low" in frame or "ci_low" in frame:
            notes.append(say("note.interval", language))
        if fmt == "table":
            frame = _screen(frame, t.cli_name, language)
        level_text = f" ({filters['org_level']})" if "org_level" in filters else ""
        title = (
            say("title.items", language, level=say(f"level.{filters.get('org_level')}", language))
            if t.cli_name == "items"
            else f"{t.cli_name}{level_text}"
        )
        _write_output(frame, fmt, out, title, excel=excel, lang=language, notes=notes)


@app.command()
def changes(
    wave: Annotated[str, typer.Option(help="The wave to look at (YYYY-YYYY).")],
    level: Annotated[
        str, typer.Option(help="university, faculty, department, programme or teacher.")
    ] = "faculty",
    instrument: Annotated[str | None, typer.Option(help="Only this questionnaire.")] = None,
    unit: UnitOption = None,
    alpha: Annotated[
        float | None,
        typer.Option(
            help="Significance level after the correction (default: the workspace's, 0.05)."
        ),
    ] = None,
    show_all: Annotated[
        bool, typer.Option("--show-all", help="List every comparison, not only significant ones.")
    ] = False,
    lang: LangOption = None,
    output_format: FormatOption = None,
    out: OutOption = None,
    excel: ExcelOption = False,
    db: DbOption = None,
) -> None:
    """List what changed significantly since the previous wave, better or worse, the
    strongest evidence first.

    Read from the stored tests (`sapat indicators` computes them): % positive (Fisher's
    exact test where counts are small, else the two-proportion z test; effect size
    Cohen's h) and the whole answer distribution (Mann-Whitney, at least 10 answers a
    side). The correction for many comparisons (Holm, or the workspace's adjust setting)
    is made over every comparison this list considered, so the chance that it holds any
    false alarm stays at about the significance level. "better" and "worse" take a
    reverse-worded item into account. Only items worded the same in both waves are
    compared.
    """
    from pipeline.indicators import ORG_LEVELS
    from pipeline.locale import t
    from pipeline.publish import OFFICE, Tree
    from pipeline.views.changes import change_list

    with friendly_errors():
        if level not in ORG_LEVELS:
            raise UsageError(f"unknown --level {level!r}", expected=", ".join(ORG_LEVELS))
        _parse_waves(wave)
        ws = workspace()
        language = _lang(lang)
        a = ws.settings.stats.alpha if alpha is None else alpha
        if not 0 < a < 0.5:
            raise UsageError(
                "--alpha must be between 0 and 0.5",
                value=a,
                expected="a significance level such as 0.05",
            )
        tree = Tree.of(ws.registry)
        _check_unit(unit, tree)
        con = _fresh(db, {}, False)
        if not con.execute("SELECT count(*) FROM pub_loads").fetchone()[0]:
            raise UsageError("nothing is loaded yet: load files with `sapat ingest` first")
        result = change_list(
            con,
            wave=wave,
            viewer=OFFICE,
            tree=tree,
            min_n=ws.settings.min_n,
            alpha=a,
            adjust=ws.settings.stats.adjust,
            level=level,
            instrument=instrument,
            unit=unit,
            lang=language,
            show_all=show_all,
        )
        if not result.considered:
            raise UsageError(
                f"nothing to compare for wave {wave}: it needs an earlier wave "
                "of the same questionnaire"
            )
        title = t(
            "title.changes",
            language,
            wave_from=result.wave_from or "?",
            wave_to=wave,
            level=t(f"level.{level}", language),
        )
        notes = [
            t(
                "note.changes",
                language,
                adjust=result.adjust,
                m=result.family_size,
                alpha=_decimal(str(result.alpha), language),
            )
        ]
        if result.rows["reverse_worded"].any():
            notes.append(t("note.reverse", language))
        frame = result.rows
        fmt = _format(output_format, out)
        if fmt == "table":
            frame = _change_screen(frame, language)
        _write_output(frame, fmt, out, title, excel=excel, lang=language, notes=notes)


def _change_screen(frame, lang: str):
    """The change list as a dean reads it on screen: names, then → now, in words."""
    import pandas as pd

    from pipeline.locale import t

    def pct(x) -> str:
        return "" if pd.isna(x) else f"{x:.1f}".removesuffix(".0")

    def count(n) -> str:
        return "" if pd.isna(n) else f"{int(n)}"

    def p_text(p) -> str:
        return "" if pd.isna(p) else "<0.001" if p < 0.001 else f"{p:.3f}"

    screen = pd.DataFrame(
        {
            t("col.unit_name", lang): frame["unit_name"],
            t("col.item_name", lang): frame["item_name"],
            t("col.n_change", lang): [
                f"{count(a)} → {count(b)}"
                for a, b in zip(frame["n_from"], frame["n_to"], strict=True)
            ],
            t("col.pct_change", lang): [
                f"{pct(a)} → {pct(b)}"
                for a, b in zip(frame["pct_from"], frame["pct_to"], strict=True)
            ],
            t("col.direction", lang): frame["direction_text"],
            t("col.p_adjusted", lang): [p_text(p) for p in frame["p_adjusted"]],
            t("col.effect_size", lang): [
                "" if pd.isna(h) else f"{h:+.2f}" for h in frame["effect_size"]
            ],
        }
    )
    screen.attrs["numeric_text"] = [
        t(k, lang) for k in ("col.n_change", "col.pct_change", "col.p_adjusted", "col.effect_size")
    ]
    return screen


@app.command()
def objectives(
    wave: Annotated[
        str | None, typer.Option(help="Only this wave (YYYY-YYYY; default: every wave).")
    ] = None,
    unit: UnitOption = None,
    lang: LangOption = None,
    output_format: FormatOption = None,
    out: OutOption = None,
    excel: ExcelOption = False,
    db: DbOption = None,
) -> None:
    """Judge every quality objective (declarations/objectives.yaml) against the data, per
    unit of its scope and per wave: met, not met, or undecided when the interval straddles
    the target; with its trend and latest significant change.
    """
    from pipeline.locale import t
    from pipeline.publish import OFFICE, Tree
    from pipeline.views.objectives import evaluate

    with friendly_errors():
        if wave:
            _parse_waves(wave)
        ws = workspace()
        language = _lang(lang)
        tree = Tree.of(ws.registry)
        _check_unit(unit, tree)
        goals = list(ws.registry.objectives or [])
        if not goals:
            raise UsageError(
                "the workspace declares no quality objectives",
                file=str(ws.settings.declarations_dir / "objectives.yaml"),
                expected="objectives as in docs/org-structure.md",
            )
        con = _fresh(db, {}, False)
        frame = evaluate(
            con,
            goals,
            viewer=OFFICE,
            tree=tree,
            min_n=ws.settings.min_n,
            alpha=ws.settings.stats.alpha,
            lang=language,
            wave=wave,
            unit=unit,
        )
        fmt = _format(output_format, out)
        title = t("ui.overview", language) + (f" · {wave}" if wave else "")
        notes = [t("note.interval", language), t("note.objectives", language)]
        if fmt == "table":
            shown = frame.assign(
                status=[t(f"ui.{s}", language) for s in frame["status"]],
                value=[_decimal(_number(v), language) for v in frame["value"]],
            )[["objective", "wave", "unit_name", "target", "value", "status", "trend"]]
            frame = shown.rename(
                columns={
                    "objective": t("col.objective", language),
                    "wave": t("col.wave", language),
                    "unit_name": t("col.unit_name", language),
                    "target": t("ui.target", language),
                    "value": t("col.value", language),
                    "status": t("col.status", language),
                    "trend": t("col.trend", language),
                }
            )
        _write_output(frame, fmt, out, title, excel=excel, lang=language, notes=notes)


@app.command()
def review(
    year: Annotated[str, typer.Option(help="The academic year reviewed (YYYY-YYYY).")],
    out: Annotated[Path, typer.Option(help="The file to write: .docx, .xlsx or .html.")],
    lang: LangOption = None,
    charts: Annotated[
        bool, typer.Option("--charts/--no-charts", help="Draw charts (needs Chromium).")
    ] = True,
    db: DbOption = None,
) -> None:
    """Write the rector's management-review pack for one academic year (quality manual
    12.1 a-g): objectives against targets, audit findings, satisfaction of every
    stakeholder group with trends and significant changes, graduates' results,
    nonconformities, actions and whether their indicators moved, proposals drafted from
    the data, response rates. Sections without data are marked for the office to complete.
    """
    from pipeline.review.pack import build
    from pipeline.review.render import draw_charts, write

    with friendly_errors():
        _parse_waves(year)
        ws = workspace()
        language = _lang(lang)
        if out.suffix.lower() not in (".docx", ".xlsx", ".html"):
            raise UsageError(
                f"--out {out.name}: cannot tell the format from the extension",
                expected="a .docx, .xlsx or .html file",
            )
        con = _fresh(db, {}, False)
        waves = {r[0] for r in con.execute("SELECT DISTINCT wave FROM pub_loads").fetchall()}
        _check_name("year", year, waves, ", ".join(sorted(w for w in waves if w)))
        started = time.perf_counter()
        pack = build(con, ws, year=year, lang=language, charts=charts)
        drawn = draw_charts(pack) if charts and out.suffix.lower() != ".xlsx" else 0
        write(pack, out)
    console.print(
        f"Wrote the management-review pack for {year} ({language}) to [bold]{out}[/]: "
        f"{len(pack.tables())} tables, {drawn} charts, {time.perf_counter() - started:.1f} s."
    )


@nonconformities_app.command("scan")
def nonconformities_scan(
    wave: Annotated[str, typer.Option(help="The wave whose results to scan (YYYY-YYYY).")],
    db: DbOption = None,
) -> None:
    """Find the nonconformity candidates of a wave: every quality objective not met in a
    unit (its whole interval on the wrong side of the target) and every significant fall
    in % positive; record the new ones for the office to confirm or dismiss."""
    from pipeline.ingest.pseudonym import load_key
    from pipeline.publish import OFFICE, Tree
    from pipeline.store import Store
    from pipeline.views.objectives import candidates

    with friendly_errors():
        _parse_waves(wave)
        ws = workspace()
        con = _fresh(db, {}, False)
        found = candidates(
            con,
            list(ws.registry.objectives or []),
            viewer=OFFICE,
            tree=Tree.of(ws.registry),
            min_n=ws.settings.min_n,
            wave=wave,
            alpha=ws.settings.stats.alpha,
            adjust=ws.settings.stats.adjust,
        )
        con.close()
        s = ws.settings
        with Store(_db(db), raw_dir=s.raw_dir, audit_key=load_key()) as store:
            new = store.record_candidates(found)
            store.publish(_snapshots(db), s.stats.signature())
    console.print(
        f"{len(found)} candidates in {wave} ({(found['source'] == 'objective').sum()} "
        f"objectives not met, {(found['source'] == 'decline').sum()} significant falls); "
        f"{new} new. Confirm or dismiss them: sapat nonconformities list --status candidate."
    )


# ------------------------------------------------------------- the store
audit_app = typer.Typer(
    help="The audit log: who did what to the database, and when.", no_args_is_help=True
)
app.add_typer(audit_app, name="audit")


@audit_app.command("list")
def audit_list(
    limit: Annotated[int, typer.Option(min=1, help="Show the last N entries.")] = 50,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show the audit log: UTC time, actor, action, object, outcome (no respondent data)."""
    with friendly_errors():
        con = _read_only(db)
        frame = (
            con.execute(
                "SELECT seq, strftime(at_utc, '%Y-%m-%d %H:%M:%S') AS at_utc, actor, action, "
                "object, outcome FROM sys_audit ORDER BY seq DESC LIMIT ?",
                [limit],
            )
            .fetchdf()
            .iloc[::-1]
        )
    _show(frame, "Audit log", as_json)


@audit_app.command("verify")
def audit_verify(db: DbOption = None) -> None:
    """Check that no entry of the audit log was edited, deleted or moved.

    Each entry is chained to the one before it with a keyed hash (HMAC-SHA256 under a
    key derived from the pseudonymisation key, which is kept outside the database).
    Exit code 1 when the chain is broken.
    """
    from pipeline.ingest.pseudonym import load_key
    from pipeline.store import verify_audit

    with friendly_errors():
        con = _read_only(db)
        log = con.execute("SELECT * FROM sys_audit ORDER BY seq").fetchdf()
        key = load_key()
        problems = verify_audit(log, key)
        board = _dashboard_log()
        if board is not None:
            problems += [f"dashboard log: {p}" for p in verify_audit(board, key)]
    if problems:
        for p in problems:
            err.print(f"[red]✗[/] {p}")
        raise typer.Exit(1)
    console.print(f"[green]✓[/] The audit log's {len(log)} entries are intact.")
    if board is not None:
        console.print(f"[green]✓[/] The dashboard's log's {len(board)} entries are intact.")


def _dashboard_log():
    """The dashboard's audit log (data/audit/dashboard.jsonl) as a frame, or None."""
    import pandas as pd

    path = workspace().settings.data_dir / "audit" / "dashboard.jsonl"
    if not path.exists():
        return None
    try:
        frame = pd.read_json(path, lines=True, dtype=False)
    except ValueError as exc:
        raise SapatError(
            f"the dashboard's audit log cannot be read ({exc})", file=str(path)
        ) from exc
    return frame if len(frame) else None


@app.command()
def rebuild(
    swap: Annotated[
        bool,
        typer.Option(
            help="Replace the database by the rebuilt one when every table is the "
            "same (the old one is kept beside it as sapat.before-rebuild.duckdb)."
        ),
    ] = False,
    db: DbOption = None,
) -> None:
    """Load every original file again into a new database, in the order they were first
    loaded and with the same options, recompute the indicators, and compare every table
    with the database it would replace (content checksums).
    """
    from pipeline.indicators import recompute
    from pipeline.ingest.pseudonym import load_key
    from pipeline.ingest.rebuild import rebuild as run_rebuild

    with friendly_errors():
        ws = workspace()
        old = _db(db)
        if not old.exists():
            raise UsageError("there is no database to rebuild", file=str(old))
        new = old.with_name(old.stem + ".rebuilt.duckdb")
        if new.exists():
            new.unlink()
        key = load_key()
        stats = ws.settings.stats
        with progress_bar() as update:
            result = run_rebuild(
                old,
                new,
                ws.catalog,
                ws.registry,
                key=key,
                recompute=lambda store: recompute(store, ws.registry, ws.catalog, stats),
                progress=update,
                window_minutes=ws.settings.duplicate_window_minutes,
                speeder_fraction=ws.settings.speeder_fraction,
            )
    table = Table(title="Rebuild: every table compared")
    for col in ("table", "rows before", "rows after", "same"):
        table.add_column(col)
    for c in result:
        table.add_row(
            c.table,
            f"{c.rows_before:,}",
            f"{c.rows_after:,}",
            "[green]yes[/]" if c.same else "[red]NO[/]",
        )
    console.print(table)
    differ = [c.table for c in result if not c.same]
    if differ:
        err.print(
            f"[red]✗[/] {len(differ)} table(s) differ: {', '.join(differ)}; the rebuilt "
            f"database is kept as {new} for a look"
        )
        raise typer.Exit(1)
    console.print(f"[green]✓[/] The rebuilt database {new.name} equals {old.name}.")
    if swap:
        old.replace(old.with_name(old.stem + ".before-rebuild.duckdb"))
        new.replace(old)
        console.print(f"{old.name} is now the rebuilt one.")


@app.command()
def unload(
    load: Annotated[
        int, typer.Argument(help="The load's number (the first column of `sapat loads`).")
    ],
    why: Annotated[
        str,
        typer.Option(
            "--why", help="Why it is taken back (kept in the manifest and the audit log)."
        ),
    ],
    db: DbOption = None,
) -> None:
    """Take one load back: its answers, counts, flags and set-aside rows leave the database,
    its manifest row stays marked withdrawn (who, why), its original stays in data/raw, and
    the indicators it touched are recomputed. The same file can then be loaded again, e.g.
    under the right wave."""
    from pipeline.ingest.pseudonym import load_key
    from pipeline.store import Store

    with friendly_errors():
        if not why.strip():
            raise UsageError("--why: say why the load is taken back", expected="a few words")
        ws = workspace()
        path = _db(db)
        if not path.exists():
            raise UsageError("there is no database yet", file=str(path))
        s = ws.settings
        with Store(path, raw_dir=s.raw_dir, audit_key=load_key()) as store:
            row = store.con.execute(
                "SELECT instrument, version, wave FROM sys_loads WHERE load_id = ?", [load]
            ).fetchall()
            if not row:
                raise UsageError(f"there is no load {load}", expected="a number from `sapat loads`")
            instrument, version, wave = row[0]
            versions = {
                e.version: ws.catalog.get(instrument, e.version)
                for e in ws.catalog.versions.get(instrument, [])
            }
            before = store.unload(
                load,
                why.strip(),
                versions,
                window_minutes=s.duplicate_window_minutes,
                speeder_fraction=s.speeder_fraction,
            )
            from pipeline.indicators import recompute

            done = recompute(store, ws.registry, ws.catalog, s.stats)
            store.publish(_snapshots(db), s.stats.signature())
    console.print(
        f"[green]✓[/] Load {load} ({before['file_name']}, {instrument} {wave}, "
        f"{before['rows_loaded']:,} rows) taken back; {len(done)} questionnaire × "
        "wave recomputed. Its original is kept; load the file again when ready."
    )


@app.command("publish")
def publish_command(
    parquet: Annotated[
        Path | None,
        typer.Option(
            help="Also write every published table as Parquet into this folder "
            "(for a warehouse: Spark, Trino, DuckDB elsewhere)."
        ),
    ] = None,
    db: DbOption = None,
) -> None:
    """Publish a snapshot of the indicators for readers now (loads and recomputes publish
    one by themselves)."""
    from pipeline.ingest.pseudonym import load_key
    from pipeline.store import Store

    with friendly_errors():
        ws = workspace()
        path = _db(db)
        if not path.exists():
            raise UsageError(
                "there is no database yet: load files with `sapat ingest` first", file=str(path)
            )
        with Store(path, raw_dir=ws.settings.raw_dir, audit_key=load_key()) as store:
            snap = store.publish(_snapshots(db), ws.settings.stats.signature())
        console.print(f"[green]✓[/] Published {snap}")
        if parquet is not None:
            from pipeline.store.snapshots import export_parquet

            if parquet.exists() and not parquet.is_dir():
                raise UsageError("--parquet names a file; give a folder", file=str(parquet))
            try:
                files = export_parquet(snap, parquet)
            except OSError as exc:
                raise UsageError(
                    f"--parquet: cannot write there ({exc.strerror})", file=str(parquet)
                ) from exc
            console.print(f"  {len(files)} tables written as Parquet into {parquet}")


# ------------------------------------------------------------------ demo
@app.command()
def demo(
    folder: Annotated[
        Path, typer.Argument(help="The demo workspace (made with the BatSU example if new).")
    ] = Path("demo"),
    seed: Annotated[int, typer.Option(help="Random seed of the synthetic survey.")] = 2026,
    verbose: Annotated[
        bool, typer.Option("--verbose", help="Show every file generated and loaded.")
    ] = False,
    serve_app: Annotated[
        bool,
        typer.Option(
            "--serve/--no-serve", help="Start the dashboard at the end (stop it with Ctrl+C)."
        ),
    ] = True,
    port: Annotated[int, typer.Option(min=1, max=65535, help="The dashboard's port.")] = 8050,
) -> None:
    """Run the whole job on synthetic data: make the BatSU example workspace, generate
    three waves of survey exports, load them into its database, compute the indicators,
    list significant changes, write the management-review pack of the latest year, make
    one dashboard user per role and start the dashboard.
    """
    from pipeline.config import WORKSPACE_FILE
    from pipeline.workspace import init_workspace

    with friendly_errors():
        if not (folder / WORKSPACE_FILE).exists():
            console.print(f"[bold]1.[/] Making the example workspace {folder}")
            init_workspace(folder, "batsu")
        else:
            console.print(f"[bold]1.[/] Using the workspace {folder}")
    _STATE["workspace"] = folder
    _STATE.pop("ws", None)
    exports = folder / "exports"
    console.print(f"[bold]2.[/] Generating three waves of synthetic exports into {exports}")
    _STATE["quiet"] = not verbose
    try:
        synth(exports, seed=seed)
        db = workspace().settings.db_path
        console.print(f"[bold]3.[/] Loading them into {db}")
        files = sorted(p for p in exports.rglob("*") if p.suffix in (".csv", ".xlsx"))
        try:
            ingest(files)
        except typer.Exit as exc:
            if exc.exit_code:
                raise
    finally:
        _STATE["quiet"] = False
    console.print("[bold]4.[/] Computing indicators and tests")
    indicators(instrument="student_experience", item="se_overall", level="faculty")
    last = sorted({p.parent.name for p in files})[-1]
    console.print(f"[bold]5.[/] Significant changes into {last}")
    changes(wave=last, level="faculty")
    pack_path = folder / f"review-{last}.docx"
    console.print(f"[bold]6.[/] The management-review pack for {last}: {pack_path}")
    review(year=last, out=pack_path, lang=None, charts=True)
    console.print("[bold]7.[/] Dashboard users, one per role (new passwords each run):")
    with friendly_errors():
        people = _demo_users(workspace())
    table = Table()
    for col in ("user", "password", "role", "sees"):
        table.add_column(col)
    for row in people:
        table.add_row(*row)
    console.print(table)
    console.print(
        f"[bold green]Done.[/] The workspace is {folder}: `cd {folder}`, then `sapat loads`, "
        "`sapat quarantine`, `sapat indicators --help`."
    )
    if serve_app:
        console.print(f"[bold]8.[/] Starting the dashboard (`sapat serve` in {folder})")
        serve(host="127.0.0.1", port=port, workers=2, dev=False, https=False)


# ----------------------------------------------------------------- serve
LOOPBACK = ("127.0.0.1", "localhost", "::1")


@app.command()
def serve(
    host: Annotated[
        str, typer.Option(help="Address to listen on (127.0.0.1: this computer only).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8050,
    workers: Annotated[
        int, typer.Option(min=1, max=64, help="Worker processes answering requests.")
    ] = 4,
    dev: Annotated[
        bool,
        typer.Option("--dev", help="Dash's debug mode (reloads, shows errors): 127.0.0.1 only."),
    ] = False,
    https: Annotated[
        bool,
        typer.Option(
            "--https", help="Behind an HTTPS proxy: session cookies are sent over HTTPS only."
        ),
    ] = False,
) -> None:
    """Start the dashboard for the workspace: deans, programme leaders and teachers log in
    and see their own units' results. Stop it with Ctrl+C.

    It reads the newest published snapshot (every `sapat ingest` and `sapat indicators`
    publishes one) and picks up a newer one without a restart. People log in with the
    accounts of `sapat users`. Served by gunicorn with several worker processes; `--dev`
    runs Dash's debug server instead, on this computer only.
    """
    from pipeline.store.snapshots import current
    from pipeline.users import list_users

    with friendly_errors():
        ws = workspace()
        if dev and host not in LOOPBACK:
            raise UsageError(
                "--dev (Dash's debug mode shows code and errors) runs only on this computer",
                value=host,
                expected="--host 127.0.0.1, or leave --dev out",
            )
        if current(ws.settings.snapshots_dir) is None:
            raise UsageError(
                "nothing is published yet: load files (`sapat ingest`) and run "
                "`sapat indicators` first"
            )
        if not [u for u in list_users(ws.settings) if not u.disabled]:
            raise UsageError(
                "nobody can log in yet: add a user first",
                expected="sapat users add NAME --role quality_office",
            )
        from dashboards.app import create_app, secret_key

        secret_key(ws.settings)  # made once, before the workers start, so they share it
        root = ws.root
    url = f"http://{host}:{port}/"
    console.print(f"The dashboard is at [bold]{url}[/] (stop it with Ctrl+C).")
    if dev:
        create_app(root, secure_cookies=https).run(host=host, port=port, debug=True)
        return
    _gunicorn(root, host, port, workers, https)


def _gunicorn(root: Path, host: str, port: int, workers: int, https: bool) -> None:
    """Serve the app with gunicorn: ``workers`` processes, each building its own app
    (and its own read-only connections) after the fork; they share one id of this run, so
    page answers kept by an earlier run (another release) are never sent."""
    import os
    import secrets

    from gunicorn.app.base import BaseApplication

    from dashboards.app import SERVE_ID

    os.environ[SERVE_ID] = secrets.token_hex(8)

    class Server(BaseApplication):
        def load_config(self):
            for key, value in {
                "bind": f"[{host}]:{port}" if ":" in host else f"{host}:{port}",
                "workers": workers,
                "worker_class": "gthread",
                "threads": 4,
                "timeout": 120,
                "graceful_timeout": 10,
                "accesslog": None,
                "errorlog": "-",
                "loglevel": "warning",
                "forwarded_allow_ips": "127.0.0.1",
            }.items():
                self.cfg.set(key, value)

        def load(self):
            from dashboards.app import create_app

            return create_app(root, secure_cookies=https).server

    Server().run()


def _demo_users(ws) -> list[tuple[str, str, str, str]]:
    """One demo account per role with a fresh random password (made, or reset)."""
    import secrets

    from pipeline.publish import ViewerRole
    from pipeline.users import add_user, list_users, set_password

    reg = ws.registry
    faculty = next(iter(reg.faculties["code"]))
    programme = next(c for c in reg.programmes["code"] if faculty in reg.ancestors(c))
    teacher = str(reg.teachers["teacher_code"].iloc[0])
    plan = [
        ("office", ViewerRole.QUALITY_OFFICE, []),
        ("rector", ViewerRole.RECTOR, []),
        ("dean", ViewerRole.DEAN, [faculty]),
        ("leader", ViewerRole.PROGRAMME_LEADER, [programme]),
        ("teacher", ViewerRole.TEACHER, [teacher]),
    ]
    have = {u.name for u in list_users(ws.settings)}
    out = []
    for name, role, units in plan:
        password = secrets.token_urlsafe(9)
        if name in have:
            set_password(ws.settings, name, password)
        else:
            add_user(ws.settings, name, role, units, password)
        out.append((name, password, role.value, ", ".join(units) or "everything"))
    return out


def run(args: list[str] | None = None) -> int:
    """The ``sapat`` command's entry point: a traceback never reaches the user.

    Domain errors are already plain sentences (:func:`fail`); anything else is a bug,
    reported in one sentence with the details written to a crash log. Returns the exit
    code (0 done, 1 a file or check failed, 2 the command was mistyped, 3 a bug)."""
    try:
        app(args=args, prog_name="sapat")
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except KeyboardInterrupt:
        err.print("Stopped. A file being loaded was not loaded (a load is all or nothing).")
        return 130
    except Exception as exc:  # noqa: BLE001 - the last line of defence
        from rich.markup import escape

        path = _crash_log(exc)
        err.print(
            f"[bold red]Error:[/] Sapat met a situation it does not handle yet "
            f"({type(exc).__name__}: {escape(str(exc)[:300])}). A file being loaded was not loaded "
            f"(a load is all or nothing). The details are in {path}: please send them to "
            "whoever looks after Sapat.",
            highlight=False,
        )
        return 3
    return 0


def _crash_log(exc: BaseException) -> Path:
    """Write the traceback of an unexpected error where the user can find it."""
    import tempfile
    import traceback
    from datetime import UTC, datetime

    text = (
        f"sapat {__version__} {datetime.now(UTC).isoformat()}\n"
        f"command: {' '.join(sys.argv)}\n\n" + "".join(traceback.format_exception(exc))
    )
    for folder in (Path.home() / ".cache" / "sapat", Path(tempfile.gettempdir())):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / "sapat-crash.log"
            path.write_text(text, encoding="utf-8")
            return path
        except OSError:
            continue
    return Path("(nowhere: no folder could be written)")


def entry() -> None:  # pragma: no cover - the installed command
    sys.exit(run())
