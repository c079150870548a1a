"""Load survey exports into the store: read → map → type → validate → store, one file
per transaction, nothing lost: ``rows_read = rows_loaded + rows_quarantined``."""

from __future__ import annotations

import re
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd
import pyarrow as pa

from pipeline.errors import InputFileError, MappingError, SapatError, UsageError, ValidationFailed
from pipeline.ingest.mapping import ColumnMap, Meta, map_columns
from pipeline.ingest.validate import (
    Context,
    build_schema,
    parse_timestamps,
    row_flags,
    type_chunk,
    validate_typed,
)
from pipeline.instruments import Catalog, Instrument, wave_start_year
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
    for inst in sorted(catalog.all(), key=lambda i: (i.id, i.version), reverse=True):
        try:
            cmap = map_columns(export.columns, inst, explicit=explicit,
                               labels=export.column_labels, file=file, report=False)  # fmt: skip
        except MappingError as exc:
            score = getattr(exc, "problems", 0)
            if best is None or score < best[0]:
                best = (score, inst)
            continue
        return inst, cmap, f"the columns match {inst.id} {inst.version}"
    msg = "cannot tell which questionnaire this file is: its columns match none completely"
    if best:  # the full report, with suggestions, for the closest questionnaire only
        try:
            map_columns(export.columns, best[1], explicit=explicit, labels=export.column_labels,
                        file=file)  # fmt: skip
        except MappingError as exc:
            msg += f". Closest: {exc.message}"
    raise MappingError(msg, file=file, expected="--instrument ID (and --mapping FILE if needed)")


def infer_wave(path: Path, export: Export, cmap: ColumnMap) -> tuple[str, str]:
    """(wave, how): a ``YYYY-YYYY`` in the path, else the submission timestamps."""
    for part in reversed(path.resolve().parts):
        m = _WAVE_IN_PATH.search(part)
        if m and int(m.group(2)) == int(m.group(1)) + 1:
            return f"{m.group(1)}-{m.group(2)}", f"from the path ({part})"
    stamp_col = next(
        (c for c, k in cmap.meta.items() if k in (Meta.SUBMITTED_AT, Meta.COMPLETED_AT)), None
    )
    if stamp_col is not None:
        first = next(export.iter_chunks())
        stamps = parse_timestamps(first[stamp_col]).dropna()
        if not stamps.empty:
            mid = stamps.sort_values().iloc[len(stamps) // 2]
            start = mid.year if mid.month >= 9 else mid.year - 1
            return f"{start}-{start + 1}", "from the submission dates (academic year Sep–Aug)"
    raise UsageError(
        "cannot tell the wave (academic year) of this file: no YYYY-YYYY in its path and "
        "no submission dates",
        file=str(path),
        expected="--wave YYYY-YYYY",
    )


# ---------------------------------------------------------------------- load
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
    mapping: dict[str, str] | None = None,
    sheet: str | None = None,
    strict: bool = False,
    replace: bool = False,
    progress: Callable[[str, int, int], None] | None = None,
) -> LoadResult:
    """Load one export in one transaction; a :class:`LoadResult` whatever happens."""
    path = Path(path)
    result = LoadResult(file=str(path))
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
            result.errors.append(InputFileError(f"cannot read the file ({exc.strerror})",
                                                file=str(path)).as_dict())  # fmt: skip
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
        if instrument:
            inst = catalog.for_wave(instrument, wave) if wave else catalog.get(instrument)
            candidates = [inst] + [i for i in catalog.all() if i.id == instrument and i is not inst]
            cmap, errors = None, []
            for cand in candidates:
                try:
                    cmap = map_columns(export.columns, cand, explicit=mapping,
                                       labels=export.column_labels, file=str(path))  # fmt: skip
                    inst = cand
                    break
                except MappingError as exc:
                    errors.append(exc)
            if cmap is None:
                raise errors[0]
        else:
            inst, cmap, how = infer_instrument(export, catalog, mapping, str(path))
            result.notes.append(f"questionnaire inferred: {how}")
        if wave is None:
            wave, how = infer_wave(path, export, cmap)
            result.notes.append(f"wave inferred {how}: {wave}")
        wave_start_year(wave)
        result.instrument, result.version, result.wave = inst.id, inst.version, wave
        dropped = [c for c, k in cmap.meta.items() if k in (Meta.EMAIL, Meta.NAME)]
        if dropped:
            result.notes.append(
                "personal columns recognised and not stored: " + ", ".join(map(repr, dropped))
            )
        _load(path, export, inst, cmap, wave, store, catalog, registry, key, strict, replace,
              result, progress)  # fmt: skip
    except SapatError as exc:
        result.status = "rejected"
        result.rows_loaded = 0
        result.errors.insert(0, exc.as_dict())
    return result


def _load(path, export, inst, cmap, wave, store, catalog, registry, key, strict, replace,
          result, progress) -> None:  # fmt: skip
    ctx = Context.from_registry(registry)
    present = [c for c in cmap.fields.values()]
    schema = build_schema(inst, ctx, present)
    personal = {c for c, k in cmap.meta.items() if k in (Meta.EMAIL, Meta.NAME, Meta.SUBMISSION_ID,
                                                          Meta.DROP)}  # fmt: skip
    raw_path = store.keep_raw(path, inst.id, wave, result.sha256)
    with store.loading(), store.transaction():
        load_id = store.next_load_id()
        table = store.ensure_fact_table(inst)
        store.write_declarations(catalog, registry.units)
        replaced = []
        if replace:
            earlier = store.con.execute(
                "SELECT load_id, file_name FROM sys_loads WHERE instrument = ? AND wave = ? "
                "AND status = 'loaded' AND dialect = ?",
                [inst.id, wave, export.dialect],
            ).fetchall()
            for old_id, name in earlier:
                store.supersede(old_id, load_id, inst.id)
                replaced.append(old_id)
                result.notes.append(f"replaces load {old_id} ({name})")
        read = loaded = quarantined = 0
        failures_all = []
        # rows of other loads in this wave, which a newer export may repeat (looked up once:
        # while this file loads, only its own rows are added)
        others = store.con.execute(
            f"SELECT count(*) FROM (SELECT 1 FROM {table} WHERE wave = ? AND load_id <> ? LIMIT 1)",
            [wave, load_id],
        ).fetchall()[0][0]
        prog_field = next((f.code for f in inst.context_fields if f.context == "programme"),
                          None)  # fmt: skip
        unit_field = next((f.code for f in inst.context_fields if f.context == "unit"), None)
        extra = [c for c in (prog_field, unit_field) if c and c not in ("programme", "unit")]
        same = {"load_id": load_id, "instrument": inst.id, "version": inst.version,
                "wave": wave, "excluded": False}  # fmt: skip
        # the first load of a wave counts the answers as its chunks are written
        with _Writer(store, table, same, None if others else inst) as writer:
            for chunk in export.iter_chunks():
                read += len(chunk)
                typed, comments = type_chunk(chunk, cmap, ctx, key=key, wave=wave)
                good, failures = validate_typed(typed, chunk, cmap, schema)
                # submissions loaded from an earlier file (a newer export repeating them)
                keys = good["submission_key"].dropna().unique().tolist() if others else []
                if keys:
                    writer.wait()  # the connection is the writer's until it is done
                    store.con.register("_keys", pd.DataFrame({"k": keys}))
                    seen = set(
                        store.con.execute(
                            f"SELECT DISTINCT submission_key FROM {table} JOIN _keys ON "
                            "submission_key = k WHERE wave = ? AND load_id <> ?",
                            [wave, load_id],
                        ).fetchdf()["submission_key"]
                    )
                    store.con.unregister("_keys")
                    if seen:
                        again = good[good["submission_key"].isin(seen)]
                        failures = pd.concat([failures, pd.DataFrame({
                            "index": again.index, "column_name": None, "check_name": "already_loaded",
                            "value": None,
                            "reason": "this submission was already loaded from an earlier file "
                                      "(use --replace to load the newer export instead)",
                        })], ignore_index=True)  # fmt: skip
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
                good["response_id"] = response_ids(load_id, good[SOURCE_ROW])
                good["programme"] = good[prog_field] if prog_field else None
                good["unit"] = good[unit_field] if unit_field else good["programme"]
                facts = arrow_table(good.drop(columns=extra))
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
                    writes.append(("fct_comments", arrow_table(comments.assign(
                        load_id=load_id, response_id=response_ids(load_id, comments[SOURCE_ROW]),
                        programme=good["programme"].array.take(at),
                        unit=good["unit"].array.take(at),
                    ).drop(columns=[SOURCE_ROW])), {"instrument": inst.id, "wave": wave}))  # fmt: skip
                writer.submit(facts, writes)
                if progress:
                    progress(path.name, read, read)
            writer.finish()
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
        if failures_all:
            fails = pd.concat(failures_all, ignore_index=True).drop(columns=["index"])
            fails["load_id"], fails["sha256"] = load_id, result.sha256
            store.insert("qa_quarantine", fails)
            result.errors.extend(
                {"row": int(r.source_row), "column": r.column_name, "check": r.check_name,
                 "value": r.value, "reason": r.reason}
                for r in fails.sort_values("source_row", kind="stable").head(50).itertuples()
            )  # fmt: skip
        flagged = _whole_file_flags(store, table, inst, wave, load_id)
        versions = store.con.execute(
            f"SELECT DISTINCT version FROM {table} WHERE wave = ?", [wave]
        ).fetchall()
        store.refresh_counts([catalog.get(inst.id, v) for (v,) in versions] or [inst], wave,
                             writer.counts)  # fmt: skip
        result.rows_read, result.rows_loaded, result.rows_quarantined = read, loaded, quarantined
        result.rows_flagged = flagged
        assert read == loaded + quarantined
        store.write_manifest({
            "load_id": load_id, "sha256": result.sha256, "file_name": path.name,
            "raw_path": str(raw_path), "instrument": inst.id, "version": inst.version,
            "wave": wave, "dialect": export.dialect, "encoding": export.encoding,
            "sheet": export.sheet, "rows_read": read, "rows_loaded": loaded,
            "rows_quarantined": quarantined, "rows_flagged": flagged, "status": "loaded",
            "replaces": replaced[0] if replaced else None, "notes": "; ".join(result.notes),
        })  # fmt: skip
        # duplicates are decided over the whole wave: keep every load's flagged count true
        store.con.execute(
            """UPDATE sys_loads SET rows_flagged = (
                   SELECT count(DISTINCT f.response_id) FROM qa_flags f
                   WHERE f.load_id = sys_loads.load_id)
               WHERE instrument = ? AND wave = ? AND status = 'loaded'""",
            [inst.id, wave],
        ).fetchall()
        result.status = "loaded"


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


def _whole_file_flags(store: Store, table: str, inst: Instrument, wave: str, load_id: int) -> int:
    """Flags that need the whole file or wave: duplicates and speeders. Returns rows flagged.

    Duplicates are decided over the whole wave, whatever the order files were loaded in:
    the earliest submission counts, every later one is flagged and excluded from the
    indicators (the same person, or identical answers where no person is known).
    """
    con = store.con
    context = [f.code for f in inst.context_fields if f.context in ("teacher", "discipline")]
    part = ["coalesce(person_key, dup_key)", *context]
    wave_loads = f"SELECT DISTINCT load_id FROM {table} WHERE wave = ?"
    con.execute(
        f"DELETE FROM qa_flags WHERE flag = 'duplicate' AND load_id IN ({wave_loads})", [wave]
    ).fetchall()
    con.execute(
        f"UPDATE {table} SET excluded = FALSE WHERE wave = ? AND excluded", [wave]
    ).fetchall()
    # only keys seen twice can hold a duplicate: number the rows of those partitions
    # (found by a hash of the key, which keeps the grouping small; a collision only adds
    # rows to number)
    key = ", ".join(part)
    con.execute(
        f"""
        INSERT INTO qa_flags
        SELECT load_id, response_id, source_row, 'duplicate',
               'same respondent or identical answers as an earlier submission'
        FROM (
            SELECT load_id, response_id, source_row,
                   row_number() OVER (PARTITION BY {key}
                                      ORDER BY submitted_at NULLS LAST, submission_key,
                                               source_row) AS k
            FROM {table}
            WHERE wave = ? AND hash({key}) IN (
                SELECT hash({key}) AS h FROM {table} WHERE wave = ?
                GROUP BY h HAVING count(*) > 1)
        ) WHERE k > 1
        """,
        [wave, wave],
    ).fetchall()
    con.execute(
        f"""UPDATE {table} SET excluded = TRUE WHERE wave = ? AND response_id IN (
              SELECT response_id FROM qa_flags WHERE flag = 'duplicate')""",
        [wave],
    ).fetchall()
    con.execute(
        f"""
        INSERT INTO qa_flags
        SELECT load_id, response_id, source_row, 'speeder',
               'completed in ' || round(duration_s) || ' s, under half the median ('
               || round(med) || ' s)'
        FROM {table}, (SELECT median(duration_s) AS med FROM {table} WHERE load_id = ?)
        WHERE load_id = ? AND duration_s IS NOT NULL AND duration_s < med / 2
        """,
        [load_id, load_id],
    ).fetchall()
    return int(
        con.execute(
            "SELECT count(DISTINCT response_id) FROM qa_flags WHERE load_id = ?", [load_id]
        ).fetchall()[0][0]
    )
