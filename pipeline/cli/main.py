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


# ---------------------------------------------------------------- ingest
def _db_option() -> Path:
    return settings().db_path


DbOption = Annotated[
    Path | None,
    typer.Option("--db", help="The database file (default data/processed/sapat.duckdb, or "
                 "SAPAT_DB)."),
]  # fmt: skip
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def _print_result(r) -> None:
    colour = {"loaded": "green", "duplicate": "yellow", "rejected": "red"}[r.status]
    head = f"[{colour}]{r.status}[/] {r.file}"
    if r.instrument:
        head += f"  ({r.instrument} {r.version or ''}, {r.wave}, {r.dialect or '?'})"
    console.print(head)
    if r.status == "loaded":
        console.print(f"    {r.rows_read:,} rows read: {r.rows_loaded:,} loaded, "
                      f"{r.rows_quarantined:,} set aside in quarantine, "
                      f"{r.rows_flagged:,} flagged for a look")  # fmt: skip
    for note in r.notes:
        console.print(f"    [dim]{note}[/]")
    shown = r.errors if r.status == "rejected" else r.errors[:5]
    for e in shown:
        if "message" in e:
            where = ", ".join(f"{k} {e[k]}" for k in ("row", "column") if e.get(k) is not None)
            text = e["message"] + (f" (expected {e['expected']})" if e.get("expected") else "")
            console.print(f"    [red]✗[/] {where + ': ' if where else ''}{text}")
        else:
            console.print(f"    [yellow]•[/] row {e['row']}, column {e['column']!r}: "
                          f"{e['reason']} (found {e['value']!r})")  # fmt: skip
    if r.status == "loaded" and len(r.errors) > 5:
        console.print(f"    … and more: sapat quarantine --file {r.sha256[:12]}")


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
            help="YAML file matching columns to item codes, for exports with other headings."
        ),
    ] = None,
    sheet: Annotated[
        str | None, typer.Option(help="XLSX sheet to read (default: the first).")
    ] = None,
    strict: Annotated[
        bool,
        typer.Option(help="Reject a whole file if any row fails, instead of setting rows aside."),
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
    from pipeline.ingest import ingest_file
    from pipeline.ingest.mapping import read_mapping_file
    from pipeline.ingest.pseudonym import load_key
    from pipeline.instruments import default_catalog
    from pipeline.readers import DIALECT_NAMES
    from pipeline.registry import default_registry
    from pipeline.store import Store

    with friendly_errors():
        if wave:
            _parse_waves(wave)
        if export_format and export_format not in DIALECT_NAMES:
            raise UsageError(f"unknown --format {export_format!r}",
                             expected=", ".join(DIALECT_NAMES))  # fmt: skip
        catalog, registry = default_catalog(), default_registry()
        if instrument and instrument not in catalog.versions:
            raise UsageError(f"unknown questionnaire {instrument!r}",
                             expected=", ".join(catalog.versions))  # fmt: skip
        explicit = read_mapping_file(mapping) if mapping else None
        key = load_key()
        results = []
        with (
            Store(db or _db_option(), raw_dir=None if db else settings().raw_dir) as store,
            progress_bar() as update,
        ):
            for f in files:
                r = ingest_file(f, store, catalog, registry, key=key, instrument=instrument,
                                wave=wave, dialect=export_format, mapping=explicit,
                                sheet=sheet, strict=strict, replace=replace,
                                progress=update)  # fmt: skip
                results.append(r)
                if not as_json:
                    _print_result(r)
    if as_json:
        keys = ("file", "sha256", "status", "instrument", "version", "wave", "dialect",
                "encoding", "rows_read", "rows_loaded", "rows_quarantined", "rows_flagged",
                "errors", "notes")  # fmt: skip
        for r in results:
            print(json.dumps({k: r.as_dict()[k] for k in keys}, ensure_ascii=False))
    else:
        done = sum(r.status != "rejected" for r in results)
        console.print(f"[bold]{done} of {len(results)} files loaded or already loaded.[/]")
    if any(r.status == "rejected" for r in results):
        raise typer.Exit(1)


def _connect(db: Path | None, read_only: bool = True):
    """Open the database; plain errors when it is missing or another command holds it."""
    import duckdb

    path = db or _db_option()
    if not Path(path).exists():
        raise UsageError("there is no database yet: load files with `sapat ingest` first",
                         file=str(path))  # fmt: skip
    try:
        return duckdb.connect(str(path), read_only=read_only)
    except duckdb.Error as exc:
        raise SapatError(
            f"cannot open the database ({exc}); if another Sapat command is using it, "
            "wait for it to finish and try again",
            file=str(path),
        ) from exc


def _read_only(db: Path | None):
    return _connect(db, read_only=True)


def _show(frame, title: str, as_json: bool) -> None:
    if as_json:
        print(frame.to_json(orient="records", force_ascii=False, date_format="iso"))
        return
    table = Table(title=title)
    for col in frame.columns:
        table.add_column(str(col))
    for row in frame.itertuples(index=False):
        table.add_row(*["" if v is None else str(v) for v in row])
    console.print(table)


@app.command()
def quarantine(
    wave: Annotated[str | None, typer.Option(help="Only this wave.")] = None,
    file: Annotated[
        str | None, typer.Option("--file", help="Only this file (its sha256, or the start of it).")
    ] = None,
    limit: Annotated[int, typer.Option(help="Show at most this many rows.")] = 200,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show the rows set aside during loading, with the reason for each."""
    with friendly_errors():
        con = _read_only(db)
        sql = """SELECT l.file_name AS file, q.source_row AS row, q.column_name AS column,
                        q.check_name AS check, q.value, q.reason, l.wave, q.sha256
                 FROM qa_quarantine q JOIN sys_loads l USING (load_id)
                 WHERE (? IS NULL OR l.wave = ?) AND (? IS NULL OR q.sha256 LIKE ? || '%')
                 ORDER BY l.load_id, q.source_row LIMIT ?"""
        frame = con.execute(sql, [wave, wave, file, file, limit]).fetchdf()
    _show(frame if as_json else frame.drop(columns=["sha256"]), "Rows in quarantine", as_json)


@app.command()
def loads(db: DbOption = None, as_json: JsonOption = False) -> None:
    """List every file loaded: when, what, how many rows loaded and set aside."""
    with friendly_errors():
        con = _read_only(db)
        frame = con.execute(
            """SELECT load_id, file_name, instrument, version, wave, dialect, encoding,
                      rows_read, rows_loaded, rows_quarantined, rows_flagged, status,
                      strftime(loaded_at, '%Y-%m-%d %H:%M') AS loaded_at, sha256
               FROM sys_loads ORDER BY load_id"""
        ).fetchdf()
    _show(frame if as_json else frame.drop(columns=["sha256", "encoding"]), "Loads", as_json)


# ------------------------------------------------------------ indicators
def _number(v) -> str:
    """A number for a screen table: whole numbers as integers, others to 3 digits."""
    if v != v:
        return ""
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


def _write_output(frame, fmt: str, out: Path | None, title: str) -> None:
    if fmt != "table" or out is not None:
        frame = _whole_counts(frame)
    if fmt == "table" and out is None:
        shown = frame.copy()
        for c in shown.select_dtypes("number").columns:
            shown[c] = shown[c].map(_number)
        _show(shown, title, False)
        return
    if fmt == "csv":
        text = frame.to_csv(index=False)
    elif fmt == "json":
        text = frame.to_json(orient="records", force_ascii=False, date_format="iso")
    else:
        raise UsageError(f"unknown --format {fmt!r}", expected="table, csv or json")
    if out:
        out.write_text(text, encoding="utf-8")
        err.print(f"Wrote {len(frame):,} rows to {out}")
    else:
        print(text)


@app.command()
def indicators(
    wave: Annotated[str | None, typer.Option(help="Only this wave (YYYY-YYYY).")] = None,
    instrument: Annotated[str | None, typer.Option(help="Only this questionnaire.")] = None,
    level: Annotated[
        str, typer.Option(help="university, faculty, department, programme or teacher.")
    ] = "faculty",
    item: Annotated[str | None, typer.Option(help="Only this item code.")] = None,
    dimension: Annotated[
        str | None, typer.Option(help="Show dimension scores for this dimension instead of items.")
    ] = None,
    outcomes: Annotated[
        bool, typer.Option(help="Show graduates' and employers' outcome indicators (employment…).")
    ] = False,
    recompute_all: Annotated[
        bool, typer.Option("--all", help="Recompute everything, not only what new loads touched.")
    ] = False,
    confidence: Annotated[
        float | None,
        typer.Option(help="Confidence level of the intervals (default 0.95; QILT uses 0.90)."),
    ] = None,
    ci_method: Annotated[
        str,
        typer.Option(
            help="Interval for % positive: wilson, agresti_coull, clopper_pearson, svy_logit, "
            "svy_beta."
        ),
    ] = "wilson",
    adjust: Annotated[
        str,
        typer.Option(help="Correction for many tests at once: holm or bh (Benjamini-Hochberg)."),
    ] = "holm",
    output_format: Annotated[str, typer.Option("--format", help="table, csv or json.")] = "table",
    out: Annotated[Path | None, typer.Option(help="Write to this file.")] = None,
    db: DbOption = None,
) -> None:
    """Compute the satisfaction indicators and show them, small groups hidden.

    Recomputes what new loads touched (everything with --all): n, mean, SD, median, %
    positive with its confidence interval, response rate, reliability; dimension scores;
    Cronbach's alpha; tests of change, benchmarks and trends. Then shows one level.
    Cells with fewer respondents than the privacy threshold are never shown.
    """

    from pipeline.gate import gate_units
    from pipeline.indicators import Options, compute, unit_tables
    from pipeline.instruments import default_catalog
    from pipeline.methods.estimators import CIMethod
    from pipeline.registry import default_registry

    with friendly_errors():
        from pipeline.indicators import LEVELS

        if level not in LEVELS:
            raise UsageError(f"unknown --level {level!r}", expected=", ".join(LEVELS))
        if item and dimension:
            raise UsageError("give --item or --dimension, not both")
        if ci_method not in {m.value for m in CIMethod}:
            raise UsageError(f"unknown --ci-method {ci_method!r}",
                             expected=", ".join(m.value for m in CIMethod))  # fmt: skip
        if adjust not in ("holm", "bh"):
            raise UsageError(f"unknown --adjust {adjust!r}", expected="holm or bh")
        conf = confidence if confidence is not None else settings().confidence
        if not 0.5 <= conf < 1:
            raise UsageError("--confidence must be between 0.5 and 1", value=conf)
        options = Options(confidence=conf, ci_method=ci_method, adjust=adjust)
        if wave:
            _parse_waves(wave)
        reg, cat = default_registry(), default_catalog()
        with _connect(db, read_only=False) as con, progress_bar() as update:
            done = compute(con, reg, cat, full=recompute_all, options=options,
                           progress=update)  # fmt: skip
            if len(done):
                err.print(f"Recomputed {len(done)} questionnaire × wave combinations.")
            table = ("ind_outcomes" if outcomes else "ind_dimensions" if dimension
                     else "ind_items")  # fmt: skip
            frame = con.execute(f"SELECT * FROM {table}").fetchdf()
        s = settings()
        _, parent = unit_tables(reg)
        frame = gate_units(frame, table, parent, s.min_n)
        keep = frame["level"] == level
        if wave:
            keep &= frame["wave"] == wave
        if instrument:
            keep &= frame["instrument"] == instrument
        if item:
            keep &= frame["item"] == item
        if dimension:
            keep &= frame["dimension"] == dimension
        frame = frame[keep].sort_values(
            [
                c
                for c in ("instrument", "wave", "unit", "item", "dimension", "measure")
                if c in frame
            ]
        )
        if output_format == "table" and out is None:
            # a screen-sized summary; --format csv/json gives every column
            short = {
                "pct_positive": "% pos",
                "pct_positive_ci_low": "CI low",
                "pct_positive_ci_high": "CI high",
                "response_rate": "resp. rate",
                "indicative_only": "indicative",
                "ci_low": "CI low",
                "ci_high": "CI high",
            }
            cols = [c for c in ("wave", "unit", "item", "measure", "n", "mean",
                                "pct_positive", "pct_positive_ci_low", "pct_positive_ci_high",
                                "value", "ci_low", "ci_high", "response_rate",
                                "indicative_only") if c in frame]  # fmt: skip
            frame = frame[cols].rename(columns=short)
        _write_output(frame, output_format, out, f"Indicators: {level}")


@app.command()
def changes(
    wave: Annotated[str, typer.Option(help="The wave to look at (YYYY-YYYY).")],
    vs: Annotated[
        str | None, typer.Option(help="Compare with this wave (default: the one before).")
    ] = None,
    level: Annotated[
        str, typer.Option(help="university, faculty, department, programme or teacher.")
    ] = "faculty",
    instrument: Annotated[str | None, typer.Option(help="Only this questionnaire.")] = None,
    alpha: Annotated[
        float, typer.Option(help="Significance level after the correction within each family.")
    ] = 0.05,
    adjust: Annotated[
        str,
        typer.Option(help="Correction for many tests at once: holm or bh (Benjamini-Hochberg)."),
    ] = "holm",
    show_all: Annotated[
        bool, typer.Option("--show-all", help="List every comparison, not only significant ones.")
    ] = False,
    output_format: Annotated[str, typer.Option("--format", help="table, csv or json.")] = "table",
    out: Annotated[Path | None, typer.Option(help="Write to this file.")] = None,
    db: DbOption = None,
) -> None:
    """List the significant changes between two waves, largest effect first.

    Two-proportion test on % positive (effect size Cohen's h) and Mann-Whitney on the
    whole answer distribution, corrected for testing many units at once (Holm). Only
    items worded the same in both waves are compared.
    """
    from pipeline.gate import gate_comparisons
    from pipeline.indicators import Computer
    from pipeline.instruments import default_catalog
    from pipeline.methods.inference import wave_change
    from pipeline.registry import default_registry

    with friendly_errors():
        from pipeline.indicators import LEVELS

        if level not in LEVELS:
            raise UsageError(f"unknown --level {level!r}", expected=", ".join(LEVELS))
        _parse_waves(wave if vs is None else f"{wave},{vs}")
        if adjust not in ("holm", "bh"):
            raise UsageError(f"unknown --adjust {adjust!r}", expected="holm or bh")
        reg, cat = default_registry(), default_catalog()
        con = _read_only(db)
        loaded = con.execute(
            "SELECT DISTINCT instrument, wave FROM sys_loads WHERE status = 'loaded'"
        ).fetchdf()
        comp = Computer(con, reg, cat)
        parts = []
        for inst_id in sorted(loaded["instrument"].unique()):
            if instrument and inst_id != instrument:
                continue
            waves = sorted(loaded.loc[loaded["instrument"] == inst_id, "wave"])
            if wave not in waves:
                continue
            base = vs or (waves[waves.index(wave) - 1] if waves.index(wave) > 0 else None)
            if base is None or base not in waves:
                continue
            a, b = cat.for_wave(inst_id, base), cat.for_wave(inst_id, wave)
            items = [f.code for f in b.items if cat.comparable(inst_id, f.code, a.version,
                                                                b.version)]  # fmt: skip
            counts = comp.counts(inst_id, [base, wave])
            counts = counts[(counts["level"] == level) & counts["item"].isin(items)]
            if counts.empty:
                continue
            parts.append(wave_change(counts, by=["instrument", "level", "unit", "item"],
                                     wave_col="wave", wave_from=base, wave_to=wave,
                                     family=["instrument", "level", "item"],
                                     adjust=adjust))  # fmt: skip
        if not parts:
            raise UsageError(f"nothing to compare for wave {wave}: it needs an earlier wave "
                             "of the same questionnaire", expected="--vs YYYY-YYYY")  # fmt: skip
        import pandas as pd

        frame = gate_comparisons(pd.concat(parts, ignore_index=True), settings().min_n)
        if not show_all:
            frame = frame[pd.to_numeric(frame["p_adjusted"], errors="coerce") < alpha]
        # Cohen's h (proportions) first, then rank-biserial r: each ranked by size
        frame = frame.assign(_size=pd.to_numeric(frame["effect_size"]).abs()).sort_values(
            ["test", "_size"], ascending=[False, False]).drop(columns="_size")  # fmt: skip
        if output_format == "table" and out is None:
            # a screen-sized summary; --format csv/json gives every column
            frame = frame.assign(
                test=frame["test"]
                .map({"two_proportion_z": "% pos", "mann_whitney": "M-W"})
                .fillna(frame["test"])
            )

            # before → after: answers, and % positive in per cent as in the indicator
            # tables (csv/json keep the shares 0–1 of ind_changes); p as papers report it
            def pct(share) -> str:
                return "" if pd.isna(share) else f"{100 * share:.1f}".removesuffix(".0")

            def count(n) -> str:
                return "" if pd.isna(n) else f"{int(n)}"

            frame = frame.assign(
                n=[f"{count(a)} → {count(b)}" for a, b in zip(
                    pd.to_numeric(frame["n_from"]), pd.to_numeric(frame["n_to"]), strict=True)],
                positive=[f"{pct(a)} → {pct(b)}" for a, b in zip(
                    pd.to_numeric(frame["share_from"]), pd.to_numeric(frame["share_to"]),
                    strict=True)],
                p_adjusted=["" if pd.isna(p) else "<0.001" if p < 0.001 else f"{p:.3f}"
                            for p in pd.to_numeric(frame["p_adjusted"])],
            )  # fmt: skip
            frame = frame[["unit", "item", "test", "n", "positive", "p_adjusted",
                           "effect_size"]].rename(columns={
                "positive": "% positive", "p_adjusted": "p (adj.)",
                "effect_size": "effect"})  # fmt: skip
        _write_output(frame, output_format, out, f"Changes {wave} ({level})")


# ------------------------------------------------------------------ demo
@app.command()
def demo(
    data_dir: Annotated[
        Path, typer.Option(help="Where to put the demo's exports and database.")
    ] = PROJECT_DIR / "data",
    seed: Annotated[int, typer.Option(help="Random seed of the synthetic survey.")] = 2026,
) -> None:
    """Run the whole job on synthetic data: generate three waves of survey exports, load
    them into the database, compute the indicators and list significant changes.

    Later steps (dashboard, review pack) are added here as they land.
    """
    exports = data_dir / "exports"
    db = data_dir / "processed" / "sapat.duckdb"
    console.print(f"[bold]1.[/] Generating three waves of synthetic exports into {exports}")
    synth(exports, seed=seed)
    console.print(f"[bold]2.[/] Loading them into {db}")
    files = sorted(p for p in exports.rglob("*") if p.suffix in (".csv", ".xlsx"))
    try:
        ingest(files, db=db)
    except typer.Exit as exc:
        if exc.exit_code:
            raise
    console.print("[bold]3.[/] Computing indicators and tests")
    indicators(level="faculty", instrument="student_experience", item="se_overall", db=db)
    last = sorted({p.parent.name for p in files})[-1]
    console.print(f"[bold]4.[/] Significant changes in {last}")
    changes(wave=last, level="faculty", db=db)
    console.print(
        "[bold green]Done.[/] Next: `sapat loads`, `sapat quarantine`, `sapat indicators --help`."
    )


def run() -> None:  # pragma: no cover - entry point
    app()
