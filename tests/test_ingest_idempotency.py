"""Ingestion is idempotent and independent of the order files arrive in.

Loading a file twice changes nothing; twenty exports (five questionnaires, three
waves, five export dialects) loaded in fifty random orders give the same tables,
compared on content keyed by (file sha256, source row), since load ids legitimately
follow the order. Duplicate submissions: the earlier submission is kept and the later
one flagged, whichever file holds it and whichever file is loaded first.
"""

from __future__ import annotations

import os
import random
import shutil
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import duckdb
import openpyxl
import pytest
from ingest_helpers import (
    canonical,
    diff,
    ingest_in_order,
    split_google_forms_at_duplicate,
    tables,
)

from pipeline.ingest import ingest_file
from pipeline.ingest.pseudonym import load_key
from pipeline.instruments import example_catalog
from pipeline.registry import example_registry
from pipeline.store import Store
from pipeline.synth import synthesize

WAVES = ["2023-2024", "2024-2025", "2025-2026"]
ORDERS = 50
ORDER_SEED = 20260


@pytest.fixture(scope="module")
def reg_cat():
    return example_registry(), example_catalog()


@pytest.fixture(scope="module")
def twenty(tmp_path_factory, reg_cat):
    """Twenty small exports: every questionnaire in three waves (Google Forms ky/ru,
    MS Forms, KoboToolbox, LimeSurvey, Windows-1251 CSV), one Google Forms export
    downloaded as two weekly files cut between a submission and its repeat."""
    out = tmp_path_factory.mktemp("twenty")
    truth = synthesize(out, *reg_cat, waves=WAVES, scale=0.05, seed=11)
    week1, week2, repeat_row, original_row = split_google_forms_at_duplicate(truth, out)
    meta = {f["file"]: f for f in truth["files"]}
    files = []
    for rel, f in meta.items():
        path = out / rel
        if path.exists():
            files.append((str(path), f["instrument"], f["wave"]))
        else:  # the split one
            files += [
                (str(week1), f["instrument"], f["wave"]),
                (str(week2), f["instrument"], f["wave"]),
            ]
    assert len(files) == 20
    assert len({f[1] for f in files}) == 5 and len({f[2] for f in files}) == 3
    assert len({meta[r]["dialect"] for r in meta}) == 5
    return {
        "out": out,
        "truth": truth,
        "files": files,
        "week1": week1,
        "week2": week2,
        "repeat_row": repeat_row,
        "original_row": original_row,
    }


@pytest.fixture
def key(tmp_path, monkeypatch) -> bytes:
    monkeypatch.setenv("SAPAT_KEY_FILE", str(tmp_path / "pseudonym.key"))
    monkeypatch.setenv("SAPAT_DATA", str(tmp_path / "data"))
    return load_key()


def _store(tmp_path: Path, name: str) -> Store:
    db = tmp_path / name / "processed" / "sapat.duckdb"
    return Store(db, raw_dir=db.parent.parent / "raw")


def _snapshot(con: duckdb.DuckDBPyConnection) -> dict[str, list[tuple]]:
    """Every table, every column (load ids and timestamps included), sorted."""
    return {t: con.execute(f"SELECT * FROM {t} ORDER BY ALL").fetchall() for t in tables(con)}


# ----------------------------------------------------------------- the same file twice
def test_same_file_twice_is_a_duplicate_and_changes_nothing(tmp_path, key, reg_cat, twenty):
    path = next(Path(f[0]) for f in twenty["files"] if "graduate__ms_forms" in f[0])
    copy = tmp_path / "renamed" / "2023-2024" / "graduate export (1).xlsx"
    copy.parent.mkdir(parents=True)
    shutil.copyfile(path, copy)
    with _store(tmp_path, "db") as store:
        first = ingest_file(path, store, reg_cat[1], reg_cat[0], key=key)
        assert first.status == "loaded", first.errors
        assert first.rows_quarantined > 0 and first.rows_flagged > 0  # a file with everything
        before = _snapshot(store.con)
        raw_before = sorted(p.name for p in store.raw_dir.rglob("*") if p.is_file())
        again = ingest_file(path, store, reg_cat[1], reg_cat[0], key=key)
        renamed = ingest_file(copy, store, reg_cat[1], reg_cat[0], key=key)
        after = _snapshot(store.con)
        raw_after = sorted(p.name for p in store.raw_dir.rglob("*") if p.is_file())
    for dup in (again, renamed):
        assert dup.status == "duplicate", dup
        assert dup.sha256 == first.sha256
        assert (dup.instrument, dup.wave) == (first.instrument, first.wave)
        assert dup.rows_loaded == dup.rows_quarantined == dup.rows_read == 0
        assert any("already loaded as load" in n for n in dup.notes)
    assert after == before, "\n".join(diff(before, after))
    assert raw_after == raw_before


# ------------------------------------------------------------------ duplicate flags
REPEAT_RULES = (
    "repeated_submission",
    "same_person_same_answers",
    "same_person",
    "identical_answers",
)


def _duplicate_rows(con, excluded_only: bool = False) -> set[tuple[str, int]]:
    return set(
        con.execute(
            "SELECT l.file_name, f.source_row FROM qa_flags f JOIN sys_loads l USING (load_id) "
            "WHERE f.flag IN (SELECT unnest(?)) AND (f.excluded OR NOT ?)",
            [list(REPEAT_RULES), excluded_only],
        ).fetchall()
    )


def test_within_a_file_the_later_submission_is_flagged(tmp_path, key, reg_cat, twenty):
    """Planted repeats (same answers again 45 s later) are flagged in every dialect, their
    originals kept; they are excluded only on evidence: the same e-mail (Google, MS
    Forms). In Kobo, LimeSurvey and Windows-1251 CSV exports the repeat has its own
    submission id or none, so only its answers are identical: flagged, kept."""
    out, truth = twenty["out"], twenty["truth"]
    repeats: dict[str, set[int]] = {}
    for f in truth["faults"]:
        if f["kind"] == "duplicate_submission" and (out / f["file"]).exists():
            repeats.setdefault(f["file"], set()).add(f["row"])
    assert len(repeats) >= 5
    dialects = {m["dialect"] for m in truth["files"] if m["file"] in repeats}
    assert dialects >= {"google_forms", "ms_forms", "kobo", "limesurvey", "plain_cp1251"}
    with _store(tmp_path, "db") as store:
        for rel in repeats:
            meta = next(m for m in truth["files"] if m["file"] == rel)
            r = ingest_file(
                out / rel,
                store,
                reg_cat[1],
                reg_cat[0],
                key=key,
                instrument=meta["instrument"],
                wave=meta["wave"],
            )
            assert r.status == "loaded", r.errors
        flagged = _duplicate_rows(store.con)
        evidence = _duplicate_rows(store.con, excluded_only=True)
        excluded = set(
            store.con.execute(
                " UNION ALL ".join(
                    f"SELECT l.file_name, t.source_row FROM {t} t JOIN sys_loads l "
                    "USING (load_id) WHERE t.excluded"
                    for t in sorted(
                        {f"fct_{m['instrument']}" for m in truth["files"] if m["file"] in repeats}
                    )
                )
            ).fetchall()
        )
    expected = {(Path(rel).name, row) for rel, rows in repeats.items() for row in rows}
    with_email = {
        (Path(rel).name, row)
        for rel, rows in repeats.items()
        for row in rows
        if next(m for m in truth["files"] if m["file"] == rel)["dialect"]
        in ("google_forms", "ms_forms")
    }
    assert expected <= flagged  # (straight-liners may share answers with others too)
    assert excluded == evidence == with_email and with_email


def test_duplicate_flag_keeps_the_earlier_submission_whatever_the_file_order(
    tmp_path, key, reg_cat, twenty
):
    """A respondent submits, then submits again 45 s later; the office downloads the
    responses weekly and the two submissions fall into different weekly files. The
    repeat (week 2, later in time) must be flagged and excluded, the original kept,
    whether week 1 or week 2 is loaded first."""
    week1, week2, repeat_row = twenty["week1"], twenty["week2"], twenty["repeat_row"]
    results = {}
    for name, order in (("week1_first", (week1, week2)), ("week2_first", (week2, week1))):
        with _store(tmp_path, name) as store:
            for f in order:
                r = ingest_file(f, store, reg_cat[1], reg_cat[0], key=key)
                assert r.status == "loaded", r.errors
            results[name] = {
                "flagged": _duplicate_rows(store.con),
                "excluded": set(
                    store.con.execute(
                        "SELECT l.file_name, t.source_row FROM fct_student_experience t "
                        "JOIN sys_loads l USING (load_id) WHERE t.excluded"
                    ).fetchall()
                ),
            }
    repeat = (week2.name, repeat_row)
    original = (week1.name, twenty["original_row"])
    for name, res in results.items():
        assert repeat in res["flagged"], (
            f"{name}: the repeat submission (row {repeat_row} of {week2.name}) is not "
            f"flagged as a duplicate; flags: {sorted(res['flagged'])}"
        )
        assert repeat in res["excluded"], f"{name}: the repeat submission is not excluded"
        assert original not in res["flagged"] | res["excluded"], (
            f"{name}: the original submission is flagged or excluded instead"
        )
    assert results["week1_first"] == results["week2_first"]


def test_separate_forms_with_overlapping_platform_ids_both_load(tmp_path, key, reg_cat, twenty):
    """Two Microsoft Forms of the same questionnaire (a Kyrgyz and a Russian form) in
    one wave: each form numbers its responses 1, 2, 3…, so their IDs overlap though
    the submissions are different. No row of the second form is 'already loaded'."""
    src = next(Path(f[0]) for f in twenty["files"] if "graduate__ms_forms" in f[0])
    rows = list(openpyxl.load_workbook(src).active.iter_rows(values_only=True))
    assert rows[0][0] == "ID"
    half = len(rows) // 2
    folder = tmp_path / "exports" / "2023-2024"
    folder.mkdir(parents=True)
    forms = []
    for lang, part in (("ky", rows[1:half]), ("ru", rows[half:])):
        book = openpyxl.Workbook()
        sheet = book.active
        sheet.title = "Sheet1"
        sheet.append(rows[0])
        for i, r in enumerate(part, start=1):
            sheet.append((i, *r[1:]))
        forms.append(folder / f"graduate_form_{lang}.xlsx")
        book.save(forms[-1])
    with _store(tmp_path, "db") as store:
        results = [ingest_file(f, store, reg_cat[1], reg_cat[0], key=key) for f in forms]
    for r in results:
        assert r.status == "loaded", r.errors
        checks = [e["check"] for e in r.errors]
        assert "already_loaded" not in checks, (
            f"{Path(r.file).name}: {checks.count('already_loaded')} of {r.rows_read} rows "
            "set aside as 'already loaded' although no other file holds them"
        )


# -------------------------------------------------------------------- fifty orders
@pytest.mark.slow
def test_fifty_load_orders_give_identical_tables(tmp_path, key, twenty):
    files = twenty["files"]
    rng = random.Random(ORDER_SEED)
    orders = [rng.sample(files, k=len(files)) for _ in range(ORDERS)]
    assert len({tuple(o) for o in orders}) == ORDERS
    week1, week2 = str(twenty["week1"]), str(twenty["week2"])

    def week2_first(order) -> bool:
        names = [f[0] for f in order]
        return names.index(week2) < names.index(week1)

    assert {week2_first(o) for o in orders} == {True, False}  # both orders are exercised
    jobs = [
        (o, str(tmp_path / f"order{i:02d}" / "processed" / "sapat.duckdb"), key)
        for i, o in enumerate(orders)
    ]
    workers = max(1, min(4, os.cpu_count() or 1))
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
        results = list(pool.map(ingest_in_order, jobs))
    for i, res in enumerate(results):
        bad = [s for s in res["statuses"] if s[1] != "loaded"]
        assert not bad, f"order {i}: not loaded: {bad}"
        assert res["loads"] == len(files)
    failures = []
    groups: dict[str, list[int]] = {}
    for i, res in enumerate(results):
        groups.setdefault(res["digest"], []).append(i)
    if len(groups) > 1:
        classes = sorted(groups.values(), key=len, reverse=True)
        a, b = classes[0][0], classes[1][0]
        d = diff(canonical(Path(jobs[a][1])), canonical(Path(jobs[b][1])))
        lines = [
            f"{ORDERS} load orders give {len(classes)} different sets of tables:",
            *(
                f"  {len(c)} orders (week 2 loaded before week 1 in "
                f"{sum(week2_first(orders[i]) for i in c)} of them): {c[:12]}"
                for c in classes
            ),
            "Tables that differ: "
            + ", ".join(sorted({ln.split(":")[0] for ln in d if not ln.startswith(" ")})),
            f"Order {a} (first) against order {b} (second):",
            *d,
        ]
        failures += lines
    # each order's store is internally consistent (manifest = rows, flags, counts)
    inconsistent = {i: res["problems"] for i, res in enumerate(results) if res["problems"]}
    if inconsistent:
        i = next(iter(inconsistent))
        failures += [
            f"{len(inconsistent)} of {ORDERS} stores are inconsistent; order {i}:",
            *(f"  {p}" for p in inconsistent[i][:8]),
        ]
    if failures:
        pytest.fail("\n".join(failures))
