"""Load survey exports into the store: read → map → type → validate → store, one file
per transaction, nothing lost: ``rows_read = rows_loaded + rows_quarantined``."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from pipeline.errors import InputFileError, MappingError, SapatError, UsageError, ValidationFailed
from pipeline.ingest.layout import WIDE, Mapping, layout_of, mapping_to_json, widen
from pipeline.ingest.mapping import ColumnMap, Meta, map_columns
from pipeline.ingest.validate import (
    Context,
    build_schema,
    parse_timestamps,
    row_flags,
    type_chunk,
    validate_typed,
)
from pipeline.instruments import Catalog, Instrument, Role, wave_start_year
from pipeline.readers import SOURCE_ROW, Export, open_export
from pipeline.readers.encoding import file_sha256
from pipeline.registry import OrgRegistry
from pipeline.store import Store, arrow_table, count_answers, quarantine_json, response_ids

#: Rows typed, validated and stored at a time: larger chunks spread the fixed cost per
#: chunk and column (pandera, DuckDB) over more rows; memory grows with the chunk.
CHUNK_ROWS = 250_000
_WAVE_IN_PATH = re.compile(r"(?<!\d)(20\d\d)[-_](20\d\d)(?!\d)")


@dataclass
class LoadResult:
    """What happened to one file (the ``--json`` object)."""

    file: str
    sha256: str | None = None
    status: str = "rejected"  # loaded | duplicate | rejected
    instrument: str | None = None
    version: str | None = None
    wave: str | None = None
    dialect: str | None = None
    encoding: str | None = None
    rows_read: int = 0
    rows_loaded: int = 0
    rows_quarantined: int = 0
    rows_flagged: int = 0
    rows_excluded: int = 0
    #: rows per flag (repeated_submission, identical_answers, straight_liner, …)
    flag_counts: dict[str, int] = field(default_factory=dict)
    layout: str = "wide"
    load_id: int | None = None
    errors: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)


# ------------------------------------------------------------------ inference
def infer_instrument(
    export: Export, catalog: Catalog, explicit: dict | None, file: str
) -> tuple[Instrument, ColumnMap, str]:
    """The questionnaire whose items the header matches; (instrument, map, how)."""
    best: tuple[int, Instrument] | None = None
    # a questionnaire matches when its columns map without a problem AND hold at least one of
    # its items (a sheet of notes maps "cleanly" onto every questionnaire by matching nothing);
    # of several, the one that lacks nothing, then the one with most items, then the latest
    matches: list[tuple[bool, int, Instrument, ColumnMap]] = []
    for inst in sorted(catalog.all(), key=lambda i: (i.id, i.version), reverse=True):
        try:
            cmap = map_columns(
                export.columns,
                inst,
                explicit=explicit,
                labels=export.column_labels,
                file=file,
                report=False,
            )
        except MappingError as exc:
            score = getattr(exc, "problems", 0)
            if best is None or score < best[0]:
                best = (score, inst)
            continue
        items = {f.code for f in inst.items} & set(cmap.fields.values())
        if not items:
            continue
        try:
            check_columns(inst, cmap, file)
            whole = True
        except MappingError:
            whole = False
        matches.append((whole, len(items), inst, cmap))
    if matches:
        _, _, inst, cmap = max(matches, key=lambda m: (m[0], m[1]))
        return inst, cmap, f"the columns match {inst.id} {inst.version}"
    msg = "cannot tell which questionnaire this file is: its columns match none completely"
    if best:  # the full report, with suggestions, for the closest questionnaire only
        try:
            map_columns(
                export.columns, best[1], explicit=explicit, labels=export.column_labels, file=file
            )
        except MappingError as exc:
            msg += f". Closest: {exc.message}"
    raise MappingError(msg, file=file, expected="--instrument ID (and --mapping FILE if needed)")


def dated_wave(export: Export, cmap: ColumnMap) -> tuple[str, str, str] | None:
    """(wave, first date, last date) by the submission dates of the file's first rows: the
    academic year (September to August) of their median; None without dates."""
    stamp_col = next(
        (c for c, k in cmap.meta.items() if k in (Meta.SUBMITTED_AT, Meta.COMPLETED_AT)), None
    )
    if stamp_col is None:
        return None
    first = next(export.iter_chunks())
    stamps = parse_timestamps(first[stamp_col]).dropna().sort_values()
    if stamps.empty:
        return None
    mid = stamps.iloc[len(stamps) // 2]
    start = mid.year if mid.month >= 9 else mid.year - 1
    return f"{start}-{start + 1}", f"{stamps.iloc[0]:%Y-%m-%d}", f"{stamps.iloc[-1]:%Y-%m-%d}"


def infer_wave(path: Path, export: Export, cmap: ColumnMap) -> tuple[str, str]:
    """(wave, how): a ``YYYY-YYYY`` in the path, else the submission timestamps."""
    for part in reversed(path.resolve().parts):
        m = _WAVE_IN_PATH.search(part)
        if m and int(m.group(2)) == int(m.group(1)) + 1:
            return f"{m.group(1)}-{m.group(2)}", f"from the path ({part})"
    dated = dated_wave(export, cmap)
    if dated is not None:
        return dated[0], "from the submission dates (academic year Sep–Aug)"
    raise UsageError(
        "cannot tell the wave (academic year) of this file: no YYYY-YYYY in its path and "
        "no submission dates",
        file=str(path),
        expected="--wave YYYY-YYYY",
    )


def _with_hints(exc: MappingError, path: Path, export: Export, catalog: Catalog,
                explicit: dict | None, sheet: str | None, given: str | None) -> MappingError:  # fmt: skip
    """The mapping error, with what would have worked: another questionnaire whose items
    the columns match (when ``--instrument`` named one), or another sheet of a workbook
    that holds a questionnaire's columns."""
    hints = []
    if given is not None:
        try:
            other, _, _ = infer_instrument(export, catalog, explicit, str(path))
            if other.id != given:
                hints.append(f"its columns match questionnaire {other.id} {other.version}: "
                             f"--instrument {other.id}")  # fmt: skip
        except MappingError:
            pass
    if export.kind == "xlsx":
        try:
            from python_calamine import CalamineWorkbook

            names = CalamineWorkbook.from_path(str(path)).sheet_names
        except Exception:  # noqa: BLE001 - a hint only: the error stands without it
            names = []
        for name in names:
            if name == export.sheet:
                continue
            try:
                other_sheet = open_export(path, sheet=name, chunk_rows=CHUNK_ROWS)
                found, _, _ = infer_instrument(other_sheet, catalog, explicit, str(path))
            except (MappingError, InputFileError):
                continue
            hints.append(f"sheet {name!r} holds questionnaire {found.id}: --sheet {name!r}")
        if names and not hints:
            hints.append("the workbook's sheets: " + ", ".join(map(repr, names)))
    if not hints:
        return exc
    out = MappingError(exc.message + ". " + "; ".join(hints), file=exc.file, column=exc.column,
                       expected=exc.expected)  # fmt: skip
    return out


# ---------------------------------------------------------------------- load
class AlreadyLoaded(SapatError):
    """The file holds the same answers as a file already loaded (a re-export)."""

    code = "duplicate"


def ingest_file(
    path: str | Path,
    store: Store,
    catalog: Catalog,
    registry: OrgRegistry,
    *,
    key: bytes,
    instrument: str | None = None,
    wave: str | None = None,
    dialect: str | None = None,
    mapping: Mapping | dict[str, str] | None = None,
    sheet: str | None = None,
    strict: bool = False,
    replace: bool = False,
    set_values: dict[str, str] | None = None,
    duplicates: str = "exclude",
    duplicate_window_minutes: float = 60.0,
    speeder_fraction: float = 0.5,
    progress: Callable[[str, int, int], None] | None = None,
    file_name: str | None = None,
    accept_dates: bool = False,
) -> LoadResult:
    """Load one export in one transaction; a :class:`LoadResult` whatever happens.

    ``set_values`` gives context the file lacks, the same for every row (``{"programme":
    "P-ENG-B"}`` for a file from one programme), by field code or context role.
    ``duplicates``: what to do with repeated submissions (``exclude``, ``flag``, ``off``).
    ``file_name``: the name recorded for the file (default: its own; a rebuild passes the
    original's name for the kept copy). A wave given (by ``wave`` or the file's folder)
    that the submission dates contradict is refused unless ``accept_dates``.
    """
    path = Path(path)
    if isinstance(mapping, dict):
        mapping = Mapping(columns=mapping)
    explicit = dict(mapping.columns) if mapping else None
    if mapping is not None and mapping.respondent:  # a long export's respondent id
        explicit.setdefault(mapping.respondent, "submission_id")
    result = LoadResult(file=str(path), layout=layout_of(mapping))
    # the file's hash (on a thread: hashing runs without the GIL) while it is opened
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="sapat-sha256") as pool:
        digest = pool.submit(file_sha256, path)
        export = opening = None
        try:
            export = open_export(path, sheet=sheet, dialect=dialect, chunk_rows=CHUNK_ROWS)
        except Exception as exc:  # reported below, after the hash and duplicate checks
            opening = exc
        try:
            result.sha256 = digest.result()
        except OSError as exc:
            result.errors.append(
                InputFileError(f"cannot read the file ({exc.strerror})", file=str(path)).as_dict()
            )
            return result
    if (done := store.load_of(result.sha256)) is not None:
        result.status = "duplicate"
        result.instrument, result.wave = done["instrument"], done["wave"]
        result.notes.append(f"already loaded as load {done['load_id']} ({done['file_name']})")
        return result
    try:
        if opening is not None:
            raise opening
        result.dialect, result.encoding = export.dialect, export.encoding
        if result.layout != WIDE:
            export = widen(export, mapping)
        if instrument:
            inst = catalog.for_wave(instrument, wave) if wave else catalog.get(instrument)
            candidates = [inst] + [i for i in catalog.all() if i.id == instrument and i is not inst]
            cmap, errors = None, []
            for cand in candidates:
                try:
                    cmap = map_columns(
                        export.columns,
                        cand,
                        explicit=explicit,
                        labels=export.column_labels,
                        file=str(path),
                    )
                    inst = cand
                    break
                except MappingError as exc:
                    errors.append(exc)
            if cmap is None:
                raise _with_hints(errors[0], path, export, catalog, explicit, sheet, instrument)
        else:
            try:
                inst, cmap, how = infer_instrument(export, catalog, explicit, str(path))
            except MappingError as exc:
                raise _with_hints(exc, path, export, catalog, explicit, sheet, None) from None
            result.notes.append(f"questionnaire inferred: {how}")
        constants = apply_set_values(inst, cmap, set_values or {}, str(path))
        if constants:
            result.notes.append(
                "set for every row: "
                + ", ".join(f"{k} = {v}" for k, v in (set_values or {}).items())
            )
        check_columns(inst, cmap, str(path))
        given = "--wave" if wave is not None else None
        if wave is None:
            wave, how = infer_wave(path, export, cmap)
            result.notes.append(f"wave inferred {how}: {wave}")
            given = "its folder or name" if how.startswith("from the path") else None
        wave_start_year(wave)
        dated = dated_wave(export, cmap) if given else None
        if dated is not None and dated[0] != wave:
            if not accept_dates:
                raise UsageError(
                    f"the file's submission dates ({dated[1]} to {dated[2]}, mostly in the "
                    f"academic year {dated[0]}) do not fall in the wave {wave} that "
                    f"{given} gives",
                    file=str(path),
                    expected=f"--wave {dated[0]}; or, if {wave} is right, "
                    f"--wave {wave} --accept-dates",
                )
            result.notes.append(
                f"loaded as {wave} although its submission dates ({dated[1]} "
                f"to {dated[2]}) are in {dated[0]} (--accept-dates)"
            )
        result.instrument, result.version, result.wave = inst.id, inst.version, wave
        dropped = [c for c, k in cmap.meta.items() if k in (Meta.EMAIL, Meta.NAME)]
        if dropped:
            result.notes.append(
                "personal columns recognised and not stored: " + ", ".join(map(repr, dropped))
            )
        policy = RepeatPolicy(
            duplicates,
            duplicate_window_minutes,
            speeder_fraction,
            mapping_to_json(mapping),
            file_name or path.name,
            accept_dates,
        )
        _load(
            path,
            export,
            inst,
            cmap,
            wave,
            store,
            catalog,
            registry,
            key,
            strict,
            replace,
            result,
            progress,
            constants,
            policy,
            set_values or {},
        )
    except AlreadyLoaded as exc:
        result.status = "duplicate"
        result.rows_loaded = result.rows_quarantined = result.rows_flagged = 0
        result.notes.append(exc.message)
        store.audit("load", f"{path.name} ({result.sha256[:12]})", "duplicate: a re-export")
    except SapatError as exc:
        result.status = "rejected"
        result.rows_loaded = 0
        result.errors.insert(0, exc.as_dict())
        store.audit("load", f"{path.name} ({(result.sha256 or '')[:12]})", f"rejected: {exc.code}")
    except Exception as exc:  # noqa: BLE001 - a bug must not stop the rest of a batch
        result.status = "rejected"
        result.rows_loaded = 0
        result.errors.insert(
            0,
            SapatError(
                f"Sapat could not load this file because of a problem it does not handle yet "
                f"({type(exc).__name__}: {str(exc)[:200]}); nothing of it was stored, and the other "
                "files of the batch were still tried. Please report it.",
                file=str(path),
            ).as_dict(),
        )
        store.audit("load", f"{path.name} ({(result.sha256 or '')[:12]})", "rejected: a bug")
    return result


@dataclass(frozen=True)
class RepeatPolicy:
    """How repeated submissions and speeders are looked for (per load)."""

    duplicates: str = "exclude"  # exclude | flag | off
    window_minutes: float = 60.0
    speeder_fraction: float = 0.5
    #: the mapping file's content as JSON (recorded with the load, for rebuilds)
    mapping: str | None = None
    file_name: str | None = None
    accept_dates: bool = False


#: Prefix of the columns ``--set`` adds to an export.
SET_PREFIX = "--set "


def apply_set_values(
    inst: Instrument, cmap: ColumnMap, values: dict[str, str], file: str
) -> dict[str, str]:
    """Add ``--set`` values to the column map; returns {added column: value}.

    Each key is a field code or a context role of the questionnaire; the file must not
    have a column for it already.
    """
    out = {}
    mapped = set(cmap.fields.values())
    for name, value in values.items():
        f = next((f for f in inst.context_fields if name in (f.code, f.context)), None)
        if f is None:
            known = ", ".join(sorted({x for f in inst.context_fields for x in (f.code, f.context)}))
            raise UsageError(
                f"--set {name}=…: {inst.id} has no context field {name!r}",
                expected=f"one of {known}",
            )
        if f.code in mapped:
            col = next(c for c, code in cmap.fields.items() if code == f.code)
            raise UsageError(
                f"--set {name}=…: the file already has a column for {f.code} ({col!r})",
                file=file,
                expected="--set only for context the file lacks",
            )
        col = SET_PREFIX + f.code
        cmap.fields[col], cmap.how[col] = f.code, "set"
        out[col] = str(value)
    return out


def check_columns(inst: Instrument, cmap: ColumnMap, file: str) -> None:
    """Refuse a file that lacks a required context column or an item that the
    questionnaire version does not mark optional, saying how to proceed."""
    present = set(cmap.fields.values())
    lacking = [f for f in inst.context_fields if f.required and f.code not in present]
    if lacking:
        f = lacking[0]
        names = ", ".join(f"{x.code} ({x.label('en')})" for x in lacking)
        raise MappingError(
            f"the file has no column for the required context field(s) {names}",
            file=file,
            column=f.code,
            expected=f"a column holding it; for a file from one {f.context or 'unit'} only, "
            f"give it with --set {f.context or f.code}=CODE",
        )
    missing = [f.code for f in inst.items if f.code not in present and not f.optional]
    if missing:
        shown = ", ".join(missing[:8]) + (
            f" and {len(missing) - 8} more" if len(missing) > 8 else ""
        )
        raise MappingError(
            f"the file has no column for item(s) {shown} of {inst.id} {inst.version}",
            file=file,
            column=missing[0],
            expected="every item of the questionnaire version; if this survey really did not "
            "ask them, mark them sapat_optional = yes in the workbook, or use the version the "
            "file was made with (--instrument, and the waves in versions.yaml)",
        )


def _load(
    path,
    export,
    inst,
    cmap,
    wave,
    store,
    catalog,
    registry,
    key,
    strict,
    replace,
    result,
    progress,
    constants,
    policy,
    set_values,
) -> None:
    ctx = Context.from_registry(registry)
    present = [c for c in cmap.fields.values()]
    schema = build_schema(inst, ctx, present)
    personal = {
        c
        for c, k in cmap.meta.items()
        if k in (Meta.EMAIL, Meta.NAME, Meta.SUBMISSION_ID, Meta.DROP)
    }
    # typed columns are named by field code; the fact table names context roles
    rename = {f.code: f.column for f in inst.fields if f.column != f.code}
    context_seen = {f.code: False for f in inst.context_fields if f.code in present}
    raw_path = store.raw_path(path, inst.id, wave, result.sha256)
    with _discarded_on_failure(store, raw_path) as guard, store.loading(), store.transaction():
        load_id = result.load_id = store.next_load_id()
        table = store.ensure_fact_table(inst)
        store.write_declarations(catalog, registry.units, registry.disciplines)
        replaced = []
        if replace:
            for old_id, name in store.loads_to_replace(inst.id, wave, export.dialect):
                store.supersede(old_id, load_id, inst.id)
                replaced.append(old_id)
                result.notes.append(f"replaces load {old_id} ({name})")
        read = loaded = quarantined = 0
        failures_all = []
        fingerprints = []
        # rows of other loads in this wave, which a newer export may repeat (looked up once:
        # while this file loads, only its own rows are added)
        others = store.wave_has_other_rows(table, wave, load_id)
        same = {
            "load_id": load_id,
            "instrument": inst.id,
            "version": inst.version,
            "wave": wave,
            "excluded": False,
        }
        # the first load of a wave counts the answers as its chunks are written
        with _Writer(store, table, same, None if others else inst) as writer:
            for chunk in export.iter_chunks():
                read += len(chunk)
                if constants:
                    chunk = chunk.assign(**constants)
                typed, comments = type_chunk(chunk, cmap, ctx, key=key, wave=wave)
                good, failures = validate_typed(typed, chunk, cmap, schema)
                for code in context_seen:  # a context column empty in every row is refused
                    context_seen[code] = context_seen[code] or bool(typed[code].notna().any())
                # submissions loaded from an earlier file (a newer export repeating them)
                keys = good["submission_key"].dropna().unique().tolist() if others else []
                if keys:
                    writer.wait()  # the connection is the writer's until it is done
                    seen = store.submissions_seen(table, wave, load_id, keys)
                    if seen:
                        again = good[good["submission_key"].isin(seen)]
                        failures = pd.concat(
                            [
                                failures,
                                pd.DataFrame(
                                    {
                                        "index": again.index,
                                        "column_name": None,
                                        "check_name": "already_loaded",
                                        "value": None,
                                        "reason": "this submission was already loaded from an earlier file "
                                        "(use --replace to load the newer export instead)",
                                    }
                                ),
                            ],
                            ignore_index=True,
                        )
                        good = good[~good.index.isin(again.index)]
                bad_idx = sorted(set(failures["index"]))
                if len(failures):
                    failures = failures.assign(
                        source_row=chunk.loc[failures["index"], SOURCE_ROW].to_numpy()
                    )
                    raw_rows = chunk.loc[bad_idx].drop(columns=[c for c in personal if c in chunk])
                    raw_json = {
                        int(r[SOURCE_ROW]): quarantine_json(
                            {k: v for k, v in r.items() if k != SOURCE_ROW and pd.notna(v)}
                        )
                        for r in raw_rows.to_dict("records")
                    }
                    failures["raw"] = failures["source_row"].map(raw_json)
                    failures_all.append(failures)
                quarantined += len(bad_idx)
                good = good.rename(columns=rename)
                good["response_id"] = response_ids(load_id, good[SOURCE_ROW])
                if "programme" not in good:
                    good["programme"] = None
                if "unit" not in good:
                    good["unit"] = good["programme"]
                fingerprints.append(_row_hashes(good, inst))
                facts = arrow_table(good)
                writes = []
                loaded += len(good)
                flags = row_flags(good, inst)
                if len(flags):
                    flags["load_id"] = load_id
                    flags["response_id"] = response_ids(load_id, flags[SOURCE_ROW])
                    writes.append(("qa_flags", flags, None))
                comments = comments[comments[SOURCE_ROW].isin(good[SOURCE_ROW].to_numpy())]
                if len(comments):
                    at = pd.Index(good[SOURCE_ROW]).get_indexer(comments[SOURCE_ROW])
                    writes.append(
                        (
                            "fct_comments",
                            arrow_table(
                                comments.assign(
                                    load_id=load_id,
                                    response_id=response_ids(load_id, comments[SOURCE_ROW]),
                                    programme=good["programme"].array.take(at),
                                    unit=good["unit"].array.take(at),
                                ).drop(columns=[SOURCE_ROW])
                            ),
                            {"instrument": inst.id, "wave": wave},
                        )
                    )
                writer.submit(facts, writes)
                if progress:
                    progress(path.name, read, read)
            writer.finish()
        empty = [c for c, seen in context_seen.items() if not seen and read]
        if empty:
            f = next(f for f in inst.context_fields if f.code == empty[0])
            col = next((c for c, code in cmap.fields.items() if code == f.code), f.code)
            raise MappingError(
                f"the column for {f.code} is empty in every row that loads",
                file=str(path),
                column=col,
                expected=f"the {f.context or f.code} of each row; for a file from one "
                f"{f.context or 'unit'}, drop the column and give --set {f.context or f.code}=CODE",
            )
        if strict and quarantined:
            first = pd.concat(failures_all).iloc[0]
            raise ValidationFailed(
                f"{quarantined} of {read} rows fail validation and --strict rejects the whole "
                f"file; first: {first['reason']}",
                file=str(path),
                row=int(first["source_row"]),
                column=first["column_name"],
                value=first["value"],
            )
        content = _content_key(fingerprints)
        if not replace and loaded and (same_as := store.load_with_content(inst.id, wave, content)):
            raise AlreadyLoaded(
                f"the same answers as load {same_as[0]} ({same_as[1]}): a re-export of a file "
                "already loaded, so nothing was added (use --replace to load it instead)"
            )
        if failures_all:
            fails = pd.concat(failures_all, ignore_index=True).drop(columns=["index"])
            fails["load_id"], fails["sha256"] = load_id, result.sha256
            store.insert("qa_quarantine", fails)
            result.errors.extend(
                {
                    "row": int(r.source_row),
                    "column": r.column_name,
                    "check": r.check_name,
                    "value": r.value,
                    "reason": r.reason,
                }
                for r in fails.sort_values("source_row", kind="stable").head(50).itertuples()
            )
        result.rows_read, result.rows_loaded, result.rows_quarantined = read, loaded, quarantined
        assert read == loaded + quarantined
        store.write_manifest(
            {
                "load_id": load_id,
                "sha256": result.sha256,
                "file_name": policy.file_name,
                "instrument": inst.id,
                "version": inst.version,
                "wave": wave,
                "dialect": export.dialect,
                "encoding": export.encoding,
                "sheet": export.sheet,
                "rows_read": read,
                "rows_loaded": loaded,
                "raw_path": str(raw_path),
                "rows_quarantined": quarantined,
                "status": "loaded",
                "layout": result.layout,
                "duplicates": policy.duplicates,
                "content_key": content,
                "set_values": json.dumps(set_values, ensure_ascii=False) if set_values else None,
                "mapping": policy.mapping,
                "accept_dates": policy.accept_dates,
                "replaces": replaced[0] if replaced else None,
                "notes": "; ".join(result.notes),
            }
        )
        store.flag_wave(
            inst,
            wave,
            load_id,
            window_minutes=policy.window_minutes,
            speeder_fraction=policy.speeder_fraction,
        )
        versions = store.wave_versions(table, wave)
        store.refresh_counts(
            [catalog.get(inst.id, v) for v in versions] or [inst], wave, writer.counts
        )
        store.audit(
            "load",
            f"{path.name} ({result.sha256[:12]})",
            f"loaded as load {load_id}: {inst.id} {inst.version} {wave}, {read} rows read, "
            f"{loaded} loaded, {quarantined} set aside",
        )
        guard.copied = store.keep_raw(path, raw_path)

    counts = store.flag_counts(result.load_id)
    result.rows_flagged = counts.pop("_flagged", 0)
    result.rows_excluded = counts.pop("_excluded", 0)
    result.flag_counts = counts
    result.status = "loaded"


class _discarded_on_failure:  # noqa: N801 - used as a statement
    """Removes the original's copy when the load it was made for does not happen (the
    transaction is rolled back, or its commit fails)."""

    def __init__(self, store: Store, raw_path: Path) -> None:
        self.store, self.raw_path, self.copied = store, raw_path, False

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None and self.copied:
            self.store.drop_raw(self.raw_path)


def _row_hashes(good: pd.DataFrame, inst: Instrument) -> np.ndarray:
    """A 64-bit hash of each row's typed answers and context (order-independent use)."""
    cols = [
        f.column for f in inst.by_role(Role.CONTEXT, Role.ITEM, Role.OUTCOME) if f.column in good
    ]
    if not cols:
        return np.zeros(0, dtype=np.uint64)
    return pd.util.hash_pandas_object(good[cols], index=False).to_numpy()


def _content_key(parts: list[np.ndarray]) -> str:
    """The multiset of a file's rows (typed): equal for a re-export in any order or
    format, different as soon as one answer differs."""
    rows = np.sort(np.concatenate(parts)) if parts else np.zeros(0, dtype=np.uint64)
    return hashlib.sha256(rows.tobytes()).hexdigest()


#: Rows in a DuckDB row group. The fact rows are appended in whole row groups: a
#: transaction that leaves part-filled row groups behind in the middle of a table makes
#: the next checkpoint rewrite them (half a second for a million rows).
ROW_GROUP_ROWS = 122_880


class _Writer:
    """Writes a load's rows on one background thread (DuckDB works without holding the
    GIL) while the caller types and validates the next chunk; at most one chunk waits.

    Fact rows are held back until they fill whole row groups (:data:`ROW_GROUP_ROWS`);
    :meth:`finish` writes the rest. Nothing else may use the connection until
    :meth:`wait` returns.
    """

    def __init__(
        self, store: Store, table: str, constants: dict, count: Instrument | None = None
    ) -> None:
        self.store, self.table, self.constants = store, table, constants
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sapat-store")
        self.pending: Future | None = None
        self.held: list[pa.Table] = []
        self.count = count
        #: answer counts of the fact rows (:func:`count_answers`, as ``Store.wide_counts``)
        self.counts: list[pa.Table] = []

    def __enter__(self) -> _Writer:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        """Leave only when the thread is idle and gone (before a rollback, say)."""
        try:
            if exc_type is None:
                self.wait()
            elif self.pending is not None:
                self.pending.exception()  # wait; the error in flight is the one to report
        finally:
            self.pool.shutdown(wait=True)

    def wait(self) -> None:
        """Block until the last submitted write is done (raising its error, if any)."""
        if self.pending is not None:
            pending, self.pending = self.pending, None
            pending.result()

    def submit(self, facts: pa.Table, others: list[tuple[str, object, dict | None]]) -> None:
        self.wait()
        self.pending = self.pool.submit(self._write, facts, others, False)

    def finish(self) -> None:
        """Write what is held back; returns when everything is written."""
        self.wait()
        self._write(None, [], True)

    def _write(self, facts: pa.Table | None, others: list, last: bool) -> None:
        if facts is not None and facts.num_rows:
            self.held.append(facts)
            if self.count is not None:
                same = {k: v for k, v in self.constants.items() if k != "excluded"}
                self.counts.append(count_answers(self.count, facts, same))
        rows = sum(t.num_rows for t in self.held)
        ready = rows if last else rows - rows % ROW_GROUP_ROWS
        if ready:
            held = pa.concat_tables(self.held, promote_options="default")
            # one contiguous batch: DuckDB starts a new row group at each Arrow batch
            batch = held.slice(0, ready).combine_chunks()
            self.store.insert(self.table, batch, self.constants)
            self.held = [held.slice(ready)] if ready < rows else []
        for table, frame, constants in others:
            self.store.insert(table, frame, constants)
