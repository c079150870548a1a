"""The ``sapat`` command: thin; every subcommand calls the modules that do the work."""

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
from pipeline.config import PROJECT_DIR, settings
from pipeline.errors import SapatError, UsageError

app = typer.Typer(
    name="sapat",
    help="Sapat: survey and satisfaction analytics for the university quality office.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
instruments_app = typer.Typer(help="See and check the questionnaires.", no_args_is_help=True)
org_app = typer.Typer(help="See and check the university's structure and headcounts.",
                      no_args_is_help=True)  # fmt: skip
app.add_typer(instruments_app, name="instruments")
app.add_typer(org_app, name="org")

console = Console()
err = Console(stderr=True)


def fail(exc: SapatError, code: int = 1) -> None:
    """Print a domain error in plain words and exit; never a traceback."""
    err.print(f"[bold red]Error:[/] {exc}")
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


@app.callback(invoke_without_command=True)
def main(
    version: Annotated[bool, typer.Option("--version", help="Show Sapat's version.")] = False,
) -> None:
    if version:
        console.print(f"sapat {__version__}")
        raise typer.Exit()


# ---------------------------------------------------------------- synth
def _parse_waves(text: str) -> list[str]:
    from pipeline.instruments import wave_start_year

    waves = [w.strip() for w in text.split(",") if w.strip()]
    if not waves:
        raise UsageError("give at least one wave", expected="e.g. 2023-2024,2024-2025")
    for w in waves:
        try:
            wave_start_year(w)
        except SapatError as exc:
            raise UsageError(f"--years: {exc.message}", expected=exc.expected) from exc
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
    ] = None,  # fmt: skip
) -> None:
    """Make realistic synthetic survey exports, for trying Sapat out, tests and benchmarks.

    Writes one folder per wave with the exports as offices receive them (Google Forms,
    Microsoft Forms, KoboToolbox, LimeSurvey, Windows-1251 CSV), and truth.json listing
    the planted effects and the faults planted on purpose.
    """
    from pipeline.instruments import default_catalog
    from pipeline.registry import default_registry
    from pipeline.synth import FORMAT_PLAN, synthesize
    from pipeline.synth.writers import DIALECTS

    with friendly_errors():
        waves = _parse_waves(years)
        if scale <= 0:
            raise UsageError("--scale must be positive", value=scale)
        if export_format and export_format not in DIALECTS:
            raise UsageError(f"unknown --format {export_format!r}", expected=", ".join(DIALECTS))
        for i in instrument or []:
            if i not in FORMAT_PLAN:
                raise UsageError(f"unknown questionnaire {i!r}", expected=", ".join(FORMAT_PLAN))
        t0 = time.perf_counter()
        with progress_bar() as update:
            truth = synthesize(
                out_dir, default_registry(), default_catalog(), waves=waves, seed=seed,
                scale=scale, instruments=instrument, dialect=export_format, progress=update,
            )  # fmt: skip
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


# ---------------------------------------------------------- instruments
@instruments_app.command("list")
def instruments_list(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """List the questionnaires, their versions, waves and item counts."""
    from pipeline.instruments import default_catalog

    with friendly_errors():
        cat = default_catalog()
    rows = []
    for iid, entries in cat.versions.items():
        for e in entries:
            inst = cat.get(iid, e.version)
            rows.append({
                "instrument": iid, "version": e.version, "waves": list(e.waves),
                "items": len(inst.items), "outcomes": len(inst.outcomes),
                "dimensions": len(inst.dimension_items()), "workbook": e.workbook.name,
            })  # fmt: skip
    if as_json:
        console.print_json(json.dumps(rows))
        return
    table = Table(title="Questionnaires")
    for col in rows[0] if rows else []:
        table.add_column(col)
    for r in rows:
        table.add_row(*[", ".join(v) if isinstance(v, list) else str(v) for v in r.values()])
    console.print(table)


@instruments_app.command("show")
def instruments_show(
    instrument: Annotated[str, typer.Argument(help="e.g. student_experience")],
    version: Annotated[str | None, typer.Option(help="Version (default: the newest).")] = None,
    lang: Annotated[str, typer.Option(help="Language of labels: ky, ru or en.")] = "en",
) -> None:
    """Show a questionnaire's items with their dimension, scale and label."""
    from pipeline.instruments import default_catalog

    with friendly_errors():
        if lang not in ("ky", "ru", "en"):
            raise UsageError(f"unknown language {lang!r}", expected="ky, ru or en")
        inst = default_catalog().get(instrument, version)
    table = Table(title=f"{inst.id} {inst.version}")
    for col in ("code", "role", "dimension", "scale", "reverse", "label"):
        table.add_column(col)
    for f in inst.fields:
        table.add_row(f.code, f.role.value, f.dimension or "", f.list_name or f.base_type,
                      "yes" if f.reverse else "", f.label(lang))  # fmt: skip
    console.print(table)


@instruments_app.command("check")
def instruments_check() -> None:
    """Check every workbook converts for KoboToolbox/ODK and versions are comparable."""
    from pyxform.xls2xform import convert

    from pipeline.instruments import read_catalog

    with friendly_errors():
        cat = read_catalog(settings().instruments_dir)
    problems = list(cat.comparability_problems())
    for entries in cat.versions.values():
        for e in entries:
            try:
                result = convert(xlsform=str(e.workbook))
                problems += [f"{e.workbook.name}: {w}" for w in result.warnings]
            except Exception as exc:  # pyxform raises its own error types
                problems.append(f"{e.workbook.name}: pyxform cannot convert it: {exc}")
    if problems:
        for p in problems:
            err.print(f"[red]✗[/] {p}")
        raise typer.Exit(1)
    console.print(f"[green]✓[/] {len(cat.instruments)} questionnaire workbooks are valid XLSForm "
                  "and their versions are consistent.")  # fmt: skip


# ------------------------------------------------------------------- org
@org_app.command("check")
def org_check() -> None:
    """Check the org structure, headcounts, teachers, disciplines and objectives."""
    from pipeline.registry import read_registry

    with friendly_errors():
        reg = read_registry(settings().declarations_dir)
    problems = reg.problems()
    if problems:
        for p in problems:
            err.print(f"[red]✗[/] {p}")
        raise typer.Exit(1)
    kinds = reg.units["kind"].value_counts().to_dict()
    console.print("[green]✓[/] " + ", ".join(f"{v} {k}" for k, v in kinds.items()) +
                  f"; {len(reg.teachers)} teachers, {len(reg.disciplines)} disciplines, "
                  f"{len(reg.objectives)} quality objectives.")  # fmt: skip


@org_app.command("show")
def org_show(
    lang: Annotated[str, typer.Option(help="Language of names: ky, ru or en.")] = "en",
) -> None:
    """Show the org tree with each programme's level and students per wave."""
    from rich.tree import Tree

    from pipeline.registry import default_registry

    with friendly_errors():
        reg = default_registry()
    students = reg.headcounts[reg.headcounts["population"] == "students"]
    latest = students[students["wave"] == reg.waves[-1]].set_index("unit_code")["headcount"]
    children: dict[str, list] = {}
    for r in reg.units.itertuples():
        children.setdefault(r.parent_code, []).append(r)

    def add(node: Tree, parent: str) -> None:
        for r in children.get(parent, []):
            extra = (
                f" [dim]{r.level}, {latest.get(r.code, 0)} students[/]"
                if r.kind == "programme"
                else ""
            )
            add(node.add(f"{r.code} {getattr(r, 'name_' + lang)}{extra}"), r.code)

    tree = Tree("Org structure")
    add(tree, "")
    console.print(tree)


# ------------------------------------------------------------------ demo
@app.command()
def demo(
    data_dir: Annotated[
        Path, typer.Option(help="Where to put the demo's exports and database.")
    ] = PROJECT_DIR / "data",
    seed: Annotated[int, typer.Option(help="Random seed of the synthetic survey.")] = 2026,
) -> None:
    """Run the whole job on synthetic data: generate three waves of survey exports.

    Later steps (ingest, indicators, dashboard, review pack) are added here as they land.
    """
    exports = data_dir / "exports"
    console.print(f"[bold]1.[/] Generating three waves of synthetic exports into {exports}")
    synth(exports, seed=seed)
    console.print("[bold green]Done.[/]")


def run() -> None:  # pragma: no cover - entry point
    app()
