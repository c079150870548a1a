"""Ingestion: every dialect `sapat synth` writes, plus SurveyMonkey and Qualtrics, loads
with exact counts; every planted fault ends in quarantine or a flag; columns map by label
in any language; nothing is matched by guesswork."""

from __future__ import annotations

import csv
import json

import duckdb
import pandas as pd
import pytest

from pipeline.errors import MappingError
from pipeline.ingest import ingest_file
from pipeline.ingest.mapping import map_columns, normalise
from pipeline.ingest.pseudonym import load_key
from pipeline.instruments import Role, example_catalog
from pipeline.registry import example_registry
from pipeline.store import Store
from pipeline.synth import synthesize

CAT = example_catalog()
REG = example_registry()
QUARANTINED = {"out_of_range": "unknown_answer", "unknown_programme": "unknown_unit"}
#: a planted repeat (same answers again 40 s later) is excluded where the evidence says so
#: (the same e-mail: same_person_same_answers; the same platform id: repeated_submission)
#: and flagged only where nothing but the answers is shared (identical_answers)
FLAGGED = {
    "duplicate_submission": {
        "same_person_same_answers",
        "repeated_submission",
        "identical_answers",
    },
    "speeder": {"speeder"},
    "straight_liner": {"straight_liner"},
}
EVIDENCE = {"same_person_same_answers", "repeated_submission"}


@pytest.fixture
def key(tmp_path, monkeypatch):
    monkeypatch.setenv("SAPAT_KEY_FILE", str(tmp_path / "key"))
    return load_key()


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    """Three waves of every questionnaire, loaded once for the module."""
    root = tmp_path_factory.mktemp("ingest")
    truth = synthesize(root / "exports", REG, CAT, seed=11, scale=0.25)
    key = load_key(root / "key")
    results = {}
    with Store(root / "processed" / "sapat.duckdb") as store:
        for meta in truth["files"]:
            r = ingest_file(root / "exports" / meta["file"], store, CAT, REG, key=key)
            results[meta["file"]] = r
    con = duckdb.connect(str(root / "processed" / "sapat.duckdb"), read_only=True)
    yield truth, results, con
    con.close()


@pytest.mark.slow  # loads a whole synthetic university (about 10 s) first
def test_every_synthetic_file_loads_with_exact_counts(loaded):
    truth, results, con = loaded
    for meta in truth["files"]:
        r = results[meta["file"]]
        assert r.status == "loaded", (meta["file"], r.errors[:2])
        assert r.instrument == meta["instrument"] and r.wave == meta["wave"]
        assert r.version == meta["version"]
        assert r.rows_read == meta["rows"]
        planted = [
            f for f in truth["faults"] if f["file"] == meta["file"] and f["kind"] in QUARANTINED
        ]
        assert r.rows_quarantined == len(planted), (meta["file"], r.errors)
        assert r.rows_read == r.rows_loaded + r.rows_quarantined
        rows = [e["row"] for e in r.errors]
        assert rows == sorted(rows), meta["file"]  # the summary lists problems by row
        stored = con.execute(
            f"SELECT count(*) FROM fct_{meta['instrument']} f JOIN sys_loads l USING (load_id) "
            "WHERE l.sha256 = ?",
            [r.sha256],
        ).fetchone()[0]
        assert stored == r.rows_loaded


@pytest.mark.slow  # loads a whole synthetic university (about 10 s) first
def test_dialects_are_recognised(loaded):
    truth, results, _ = loaded
    expected = {
        "google_forms": "google_forms",
        "ms_forms": "ms_forms",
        "kobo": "kobo",
        "limesurvey": "limesurvey",
        "plain_cp1251": "plain",
    }
    for meta in truth["files"]:
        assert results[meta["file"]].dialect == expected[meta["dialect"]], meta["file"]
        if meta["encoding"] == "cp1251":
            assert results[meta["file"]].encoding == "cp1251"


@pytest.mark.slow  # loads a whole synthetic university (about 10 s) first
def test_every_planted_fault_is_quarantined_or_flagged_with_its_reason(loaded):
    truth, results, con = loaded
    for fault in truth["faults"]:
        r = results[fault["file"]]
        kind = fault["kind"]
        if kind == "email_column":
            assert any(fault["column"] in n and "not stored" in n for n in r.notes), r.notes
            continue
        if kind in QUARANTINED:
            rows = con.execute(
                "SELECT check_name, column_name FROM qa_quarantine WHERE sha256 = ? "
                "AND source_row = ?",
                [r.sha256, fault["row"]],
            ).fetchall()
            assert (QUARANTINED[kind], fault["column"]) in rows, (fault, rows)
        else:
            flags = con.execute(
                "SELECT flag, excluded FROM qa_flags JOIN sys_loads USING (load_id) WHERE "
                "sha256 = ? AND source_row = ?",
                [r.sha256, fault["row"]],
            ).fetchall()
            assert {f for f, _ in flags} & FLAGGED[kind], (fault, flags)
            for flag, excluded in flags:
                assert excluded == (flag in EVIDENCE), (fault, flags)


@pytest.mark.slow  # loads a whole synthetic university (about 10 s) first
def test_quarantine_keeps_raw_values_without_personal_columns(loaded):
    _, _, con = loaded
    raws = con.execute("SELECT raw FROM qa_quarantine").fetchall()
    assert raws
    for (raw,) in raws:
        row = json.loads(raw)
        assert row, "raw values kept"
        assert not any("@" in str(v) for v in row.values())


@pytest.mark.slow  # loads a whole synthetic university (about 10 s) first
def test_repeats_are_excluded_from_answer_counts_but_kept(loaded):
    _, _, con = loaded
    dup = con.execute("SELECT count(DISTINCT response_id) FROM qa_flags WHERE excluded").fetchone()[
        0
    ]
    excluded = sum(
        con.execute(f"SELECT count(*) FROM fct_{i} WHERE excluded").fetchone()[0]
        for i in CAT.versions
    )
    assert dup == excluded > 0
    kinds = {
        f for (f,) in con.execute("SELECT DISTINCT flag FROM qa_flags WHERE excluded").fetchall()
    }
    assert kinds <= EVIDENCE
    kept = con.execute(
        "SELECT count(*) FROM qa_flags WHERE flag = 'identical_answers' AND NOT excluded"
    ).fetchone()[0]
    assert kept > 0  # identical answers alone never exclude a row


@pytest.mark.slow  # loads a whole synthetic university (about 10 s) first
def test_answer_counts_match_the_typed_table(loaded):
    _, _, con = loaded
    a = con.execute(
        "SELECT wave, programme, count(*) FROM fct_student_experience "
        "WHERE NOT excluded AND se_overall BETWEEN 1 AND 5 GROUP BY ALL ORDER BY ALL"
    ).fetchall()
    b = con.execute(
        "SELECT wave, programme, sum(n)::BIGINT FROM fct_answer_counts WHERE item = 'se_overall' "
        "AND answer BETWEEN 1 AND 5 GROUP BY ALL ORDER BY ALL"
    ).fetchall()
    assert a == b


@pytest.mark.slow  # loads a whole synthetic university (about 10 s) first
def test_comments_are_stored(loaded):
    _, _, con = loaded
    n = con.execute("SELECT count(*) FROM fct_comments WHERE length(text) > 5").fetchone()[0]
    assert n > 50


# ------------------------------------------------------------------ mapping
STAFF = CAT.get("staff")


def test_columns_match_by_label_in_each_language():
    for lang in ("ky", "ru", "en"):
        cols = [
            f.label(lang)
            for f in STAFF.by_role(Role.CONTEXT, Role.ITEM, Role.OUTCOME, Role.COMMENT)
        ]
        cmap = map_columns(cols, STAFF)
        assert set(cmap.fields.values()) == {f.code for f in STAFF.fields if f.role.value != "meta"}
        assert all(h.startswith("label") for h in cmap.how.values())


def test_kyrgyz_letters_typed_as_russian_and_case_spacing_still_match():
    f = STAFF.items[0]
    sloppy = "  " + f.label("ky").upper().replace("Ң", "Н").replace("Ө", "О").replace("Ү", "У")
    cmap = map_columns([sloppy], STAFF)
    assert cmap.fields == {sloppy: f.code}
    assert normalise("Толугу менен  МАКУЛМУН!") == normalise("толугу менен макулмун")


def test_unmatched_columns_stop_the_load_with_suggestions():
    f = STAFF.items[0]
    with pytest.raises(MappingError) as info:
        map_columns([f.label("en")[:-3] + "xyz", "Q99"], STAFF)
    text = str(info.value)
    assert "Q99" in text and f.code in text and "--mapping" in text


def test_a_column_matching_two_items_is_refused():
    a, b = STAFF.items[0], STAFF.items[1]
    with pytest.raises(MappingError) as info:
        map_columns([a.code, a.label("ru")], STAFF)
    assert "several columns" in str(info.value)
    assert b.code not in str(info.value)


def _write_csv(path, header_rows, rows, encoding="utf-8", delimiter=","):
    with open(path, "w", encoding=encoding, newline="") as fh:
        w = csv.writer(fh, delimiter=delimiter)
        w.writerows(header_rows)
        w.writerows(rows)


def _staff_rows(n, lang, fmt):
    unit = REG.faculties["code"].iloc[0]
    cat_scale = STAFF.scale_of(STAFF.field("staff_category"))
    rows = []
    for i in range(n):
        row = {
            "unit": unit if fmt == "code" else f"{REG.name(unit, lang)} ({unit})",
            "staff_category": cat_scale.choices[i % 3].label(lang),
        }
        for j, f in enumerate(STAFF.items):
            choice = STAFF.scale_of(f).by_name(str(1 + (i + j) % 5))
            row[f.code] = choice.label(lang)
        rows.append(row)
    return rows


def test_legacy_export_with_a_mapping_file(tmp_path, key):
    rows = _staff_rows(12, "ru", "code")
    legacy = {"instr": "unit", "class": "staff_category"}
    legacy.update({f"Q{j + 1}": f.code for j, f in enumerate(STAFF.items)})
    path = tmp_path / "2024-2025" / "old_staff_survey.csv"
    path.parent.mkdir()
    _write_csv(
        path,
        [list(legacy)],
        [[r[legacy[c]] for c in legacy] for r in rows],
        encoding="cp1251",
        delimiter=";",
    )
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text("\n".join(f"{k}: {v}" for k, v in legacy.items()), encoding="utf-8")
    with Store(tmp_path / "db.duckdb") as store:
        refused = ingest_file(path, store, CAT, REG, key=key, instrument="staff")
        assert refused.status == "rejected" and "Q1" in refused.errors[0]["message"]
        from pipeline.ingest.layout import read_mapping_file

        r = ingest_file(path, store, CAT, REG, key=key, mapping=read_mapping_file(mapping))
    assert r.status == "loaded" and r.rows_loaded == 12 and r.wave == "2024-2025"
    assert r.instrument == "staff"


def test_surveymonkey_export_two_header_rows(tmp_path, key):
    rows = _staff_rows(9, "ru", "name")
    meta = [
        "Respondent ID",
        "Collector ID",
        "Start Date",
        "End Date",
        "IP Address",
        "Email Address",
        "First Name",
        "Last Name",
        "Custom Data 1",
    ]
    top, sub = list(meta), [""] * len(meta)
    fields = ["unit", "staff_category", *[f.code for f in STAFF.items]]
    last_group = None
    for code in fields:
        f = STAFF.field(code)
        if f.role.value == "item":
            group = f.group_labels["ru"]
            top.append(group if group != last_group else "")
            sub.append(f.label("ru"))
            last_group = group
        else:
            top.append(f.label("ru"))
            sub.append("Response")
    data = []
    for i, r in enumerate(rows):
        data.append(
            [
                str(1000 + i),
                "4567",
                "10/02/2024 09:10:00 AM",
                "10/02/2024 09:19:30 AM",
                "10.0.0.1",
                f"user{i}@mail.ru",
                "Айгуль",
                "Токтосунова",
                "",
            ]
            + [r[c] for c in fields]
        )
    path = tmp_path / "staff_surveymonkey.csv"
    _write_csv(path, [top, sub], data)
    with Store(tmp_path / "db.duckdb") as store:
        r = ingest_file(path, store, CAT, REG, key=key)
    assert r.status == "loaded", r.errors
    assert r.dialect == "surveymonkey" and r.instrument == "staff"
    assert (r.rows_read, r.rows_loaded, r.rows_quarantined) == (9, 9, 0)
    assert r.wave == "2024-2025"  # from the dates (academic year September-August)


def test_qualtrics_export_three_header_rows(tmp_path, key):
    rows = _staff_rows(7, "en", "name")
    meta = [
        "StartDate",
        "EndDate",
        "Status",
        "IPAddress",
        "Progress",
        "Duration (in seconds)",
        "Finished",
        "RecordedDate",
        "ResponseId",
        "RecipientLastName",
        "RecipientFirstName",
        "RecipientEmail",
        "ExternalReference",
        "LocationLatitude",
        "LocationLongitude",
        "DistributionChannel",
        "UserLanguage",
    ]
    codes, texts, ids = list(meta), list(meta), [json.dumps({"ImportId": m}) for m in meta]
    fields = ["unit", "staff_category", *[f.code for f in STAFF.items]]
    for k, code in enumerate(fields, start=1):
        f = STAFF.field(code)
        codes.append(f"Q{k}")
        text = f.label("en")
        if f.role.value == "item":
            text = f"{f.group_labels['en']} - {text}"
        texts.append(text)
        ids.append(json.dumps({"ImportId": f"QID{k}"}))
    data = [
        [
            "2025-03-03 10:00:00",
            "2025-03-03 10:06:00",
            "0",
            "10.0.0.2",
            "100",
            "360",
            "1",
            "2025-03-03 10:06:01",
            f"R_{i:06d}",
            "",
            "",
            "",
            "",
            "",
            "",
            "anonymous",
            "EN",
        ]
        + [r[c] for c in fields]
        for i, r in enumerate(rows)
    ]
    path = tmp_path / "staff_qualtrics.csv"
    _write_csv(path, [codes, texts, ids], data)
    with Store(tmp_path / "db.duckdb") as store:
        r = ingest_file(path, store, CAT, REG, key=key)
    assert r.status == "loaded", r.errors
    assert r.dialect == "qualtrics" and r.instrument == "staff" and r.wave == "2024-2025"
    assert (r.rows_read, r.rows_loaded) == (7, 7)


# ---------------------------------------------------------------- behaviour
def _one_file(tmp_path, instrument="employer", wave="2024-2025", fmt="kobo", scale=0.5):
    truth = synthesize(
        tmp_path / "ex",
        REG,
        CAT,
        waves=[wave],
        scale=scale,
        instruments=[instrument],
        dialect=fmt,
        seed=3,
    )
    return tmp_path / "ex" / truth["files"][0]["file"], truth["files"][0]


def test_wrong_instrument_is_rejected_with_the_columns_named(tmp_path, key):
    path, _ = _one_file(tmp_path)
    with Store(tmp_path / "db.duckdb") as store:
        r = ingest_file(path, store, CAT, REG, key=key, instrument="staff")
        assert r.status == "rejected"
        assert "staff" in r.errors[0]["message"] and "matches no item" in r.errors[0]["message"]
        assert store.loads().empty


def test_unknown_wave_without_dates_asks_for_the_option(tmp_path, key):
    path = tmp_path / "staff.csv"
    _write_csv(
        path,
        [["unit", "staff_category", *[f.code for f in STAFF.items]]],
        [
            [r["unit"], r["staff_category"], *[r[f.code] for f in STAFF.items]]
            for r in _staff_rows(3, "en", "code")
        ],
    )
    with Store(tmp_path / "db.duckdb") as store:
        r = ingest_file(path, store, CAT, REG, key=key)
        assert r.status == "rejected" and r.errors[0]["expected"] == "--wave YYYY-YYYY"
        ok = ingest_file(path, store, CAT, REG, key=key, wave="2025-2026")
        assert ok.status == "loaded" and ok.rows_loaded == 3


def test_strict_rejects_the_whole_file(tmp_path, key):
    path, meta = _one_file(tmp_path)
    with Store(tmp_path / "db.duckdb") as store:
        r = ingest_file(path, store, CAT, REG, key=key, strict=True)
        assert r.status == "rejected" and r.rows_loaded == 0
        assert r.errors[0]["row"] is not None and r.errors[0]["column"]
        assert store.loads().empty
        assert store.con.execute("SELECT count(*) FROM qa_quarantine").fetchone()[0] == 0
        assert not [p for p in store.raw_dir.rglob("*") if p.is_file()]  # no copy kept
        lenient = ingest_file(path, store, CAT, REG, key=key)
        assert lenient.status == "loaded" and lenient.rows_quarantined > 0
        assert len([p for p in store.raw_dir.rglob("*") if p.is_file()]) == 1


def test_raw_file_kept_once_and_read_only(tmp_path, key):
    path, meta = _one_file(tmp_path)
    with Store(tmp_path / "processed" / "db.duckdb") as store:
        r = ingest_file(path, store, CAT, REG, key=key)
        again = ingest_file(path, store, CAT, REG, key=key)
    # without a workspace's data/raw, originals are kept in a folder raw beside the database
    kept = tmp_path / "processed" / "raw" / "employer" / "2024-2025" / f"{r.sha256}.xlsx"
    assert kept.read_bytes() == path.read_bytes()
    assert not kept.stat().st_mode & 0o222
    assert again.status == "duplicate"


def test_newer_export_repeating_submissions_is_not_double_counted(tmp_path, key):
    path, meta = _one_file(tmp_path, fmt="limesurvey", instrument="staff", scale=1.0)
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    first = tmp_path / "2024-2025" / "staff_march.csv"
    first.parent.mkdir()
    frame.iloc[: len(frame) // 2].to_csv(first, index=False)
    newer = tmp_path / "2024-2025" / "staff_april.csv"
    frame.to_csv(newer, index=False)
    with Store(tmp_path / "a.duckdb") as store:
        r1 = ingest_file(first, store, CAT, REG, key=key)
        r2 = ingest_file(newer, store, CAT, REG, key=key)
        assert r2.status == "loaded"
        repeated = store.con.execute(
            "SELECT count(*) FROM qa_quarantine WHERE check_name = 'already_loaded'"
        ).fetchone()[0]
        total = store.con.execute("SELECT count(*) FROM fct_staff").fetchone()[0]
    assert repeated == r1.rows_loaded
    assert total == r1.rows_loaded + r2.rows_loaded
    with Store(tmp_path / "b.duckdb") as store:
        ingest_file(first, store, CAT, REG, key=key)
        r3 = ingest_file(newer, store, CAT, REG, key=key, replace=True)
        total = store.con.execute("SELECT count(*) FROM fct_staff").fetchone()[0]
        statuses = store.loads()["status"].tolist()
    assert total == r3.rows_loaded and statuses == ["replaced", "loaded"]
