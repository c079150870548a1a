"""No personal data reaches the database: e-mails and names are dropped, platform ids
and bookkeeping (LimeSurvey seed, IP address) are not stored, respondents are
recognised only through keyed HMACs.

The checks read the raw bytes of the .duckdb file (after CHECKPOINT, so the WAL is
merged) and of the WAL while the store is still open. DuckDB compresses strings
(FSST) when it pays, which can hide a leaked value from a byte search, so the
store is also written with compression switched off, where a positive control
(comment texts that are meant to be stored) proves the byte search sees strings.
Every text column is searched through SQL as well.
"""

from __future__ import annotations

import json
import re
import stat
from pathlib import Path

import duckdb
import openpyxl
import pytest
from ingest_helpers import read_csv_rows, sha256_of, tables, write_csv_rows

from pipeline.ingest import ingest_file
from pipeline.ingest.pseudonym import load_key, pseudonym
from pipeline.instruments import example_catalog
from pipeline.registry import example_registry
from pipeline.store import Store
from pipeline.synth import synthesize

FIRST = ["Айжамал", "Бекжан", "Гүлзат", "Нурбек", "Чолпонай", "Эрмек", "Жылдыз", "Талант"]
LAST = ["Токтогулова", "Сыдыков", "Асанбаева", "Жумабеков", "Осмоналиева", "Кадырбеков"]
EMAIL_HEADERS = ("Email Address", "Адрес электронной почты", "Email")
UUID = re.compile(rb"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
DIGITS = re.compile(rb"\d{9,}")
IP = re.compile(rb"\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}")
HEX32 = re.compile(r"^[0-9a-f]{32}$")


@pytest.fixture(scope="module")
def reg_cat():
    return example_registry(), example_catalog()


def _person(i: int) -> str:
    return f"{FIRST[i % len(FIRST)]} {LAST[(i // len(FIRST)) % len(LAST)]}"


@pytest.fixture(scope="module")
def exports(tmp_path_factory, reg_cat):
    """Google Forms (ky, ru), MS Forms, KoboToolbox and LimeSurvey exports, with what
    the platforms add filled in: respondents' names (MS Forms), the enumerator account
    (Kobo ``_submitted_by``), large LimeSurvey response ids and the IP address column.
    Returns the files and every personal value in them."""
    out = tmp_path_factory.mktemp("privacy")
    truth = synthesize(
        out,
        *reg_cat,
        waves=["2023-2024", "2024-2025"],
        scale=0.1,
        seed=3,
        instruments=["student_experience", "graduate", "teaching_evaluation"],
    )
    secrets = {"emails": set(), "names": set(), "uuids": set(), "ids": set(), "ips": set()}
    files = {}
    for meta in truth["files"]:
        path = out / meta["file"]
        files[meta["file"]] = {**meta, "path": path}
        d = meta["dialect"]
        if d == "google_forms":
            rows = read_csv_rows(path)
            col = next(i for i, h in enumerate(rows[0]) if h in EMAIL_HEADERS)
            secrets["emails"] |= {r[col] for r in rows[1:]}
        elif d in ("ms_forms", "kobo"):
            book = openpyxl.load_workbook(path)
            sheet = book.active
            head = [c.value for c in sheet[1]]
            if d == "ms_forms":
                email, name = head.index("Email") + 1, head.index("Name") + 1
                for r in range(2, sheet.max_row + 1):
                    secrets["emails"].add(sheet.cell(r, email).value)
                    sheet.cell(r, name, _person(r))
                    secrets["names"].add(_person(r))
            else:
                uuid, by = head.index("_uuid") + 1, head.index("_submitted_by") + 1
                for r in range(2, sheet.max_row + 1):
                    secrets["uuids"].add(sheet.cell(r, uuid).value)
                    account = f"enum_{FIRST[r % 8].lower()}_{r % 7}"
                    sheet.cell(r, by, account)
                    secrets["names"].add(account)
            book.save(path)
        elif d == "limesurvey":
            rows = read_csv_rows(path)
            head = rows[0]
            i_id, i_seed = head.index("id"), head.index("seed")
            rows[0] = [*head[: i_seed + 1], "ipaddr", *head[i_seed + 1 :]]
            for k, r in enumerate(rows[1:], start=1):
                r[i_id] = str(481_516_000 + 2342 * k)
                ip = f"10.{k % 200 + 20}.{k % 97 + 100}.{k % 250 + 3}"
                rows[k] = [*r[: i_seed + 1], ip, *r[i_seed + 1 :]]
                secrets["ids"] |= {r[i_id], r[i_seed]}
                secrets["ips"].add(ip)
            write_csv_rows(path, rows)
    secrets = {k: {str(v) for v in vals if v} for k, vals in secrets.items()}
    assert len(secrets["emails"]) > 500 and len(secrets["uuids"]) > 500
    assert len(secrets["names"]) > 20 and len(secrets["ids"]) > 200 and secrets["ips"]
    assert {f["dialect"] for f in files.values()} == {
        "google_forms",
        "ms_forms",
        "kobo",
        "limesurvey",
    }
    return {"out": out, "files": files, "secrets": secrets}


@pytest.fixture
def key_file(tmp_path, monkeypatch) -> Path:
    path = tmp_path / "keys" / "pseudonym.key"
    monkeypatch.setenv("SAPAT_KEY_FILE", str(path))
    monkeypatch.setenv("SAPAT_DATA", str(tmp_path / "data"))
    return path


def _ingest_all(db: Path, exports, reg_cat, key: bytes, *, uncompressed: bool = False):
    """Load every export; (results, bytes of the db file and WAL while still open)."""
    store = Store(db, raw_dir=db.parent.parent / "raw")
    try:
        if uncompressed:
            store.con.execute("SET force_compression = 'uncompressed'")
        results = [
            ingest_file(f["path"], store, reg_cat[1], reg_cat[0], key=key)
            for f in exports["files"].values()
        ]
        wal = Path(str(db) + ".wal")
        open_bytes = db.read_bytes() + (wal.read_bytes() if wal.exists() else b"")
    finally:
        store.close()
    con = duckdb.connect(str(db))
    con.execute("CHECKPOINT")
    con.close()
    assert not Path(str(db) + ".wal").exists()
    return results, open_bytes


def _leaks(data: bytes, secrets: dict[str, set[str]]) -> dict[str, list[str]]:
    """Personal values found in raw bytes (searched around anchors, so it stays fast)."""
    found: dict[str, set[str]] = {k: set() for k in secrets}
    emails = secrets["emails"]
    for m in re.finditer(rb"@", data):
        window = data[max(0, m.start() - 64) : m.start() + 32].decode("utf-8", "replace")
        found["emails"] |= {e for e in emails if e in window}
    found["uuids"] = {u.decode() for u in UUID.findall(data)} & secrets["uuids"]
    digits = {t.decode() for t in DIGITS.findall(data)}
    found["ids"] = {i for i in secrets["ids"] if any(i in t for t in digits)}
    found["ips"] = {i.decode() for i in IP.findall(data)} & secrets["ips"]
    found["names"] = {n for n in secrets["names"] if n.encode("utf-8") in data}
    return {k: sorted(v)[:5] for k, v in found.items() if v}


def _text_values(con: duckdb.DuckDBPyConnection) -> str:
    """Every text value in every table, one per line."""
    out = []
    for t in sorted(tables(con)):
        cols = con.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = ? AND "
            "(data_type = 'VARCHAR' OR data_type = 'JSON')",
            [t],
        ).fetchall()
        for (c,) in cols:
            out += [
                v
                for (v,) in con.execute(f'SELECT DISTINCT "{c}"::VARCHAR FROM {t}').fetchall()
                if v is not None
            ]
    return "\n".join(out)


@pytest.mark.slow
def test_leak_search_finds_what_it_looks_for(exports):
    s = exports["secrets"]
    sample = {k: {next(iter(v))} for k, v in s.items()}
    blob = b"\x00xx".join(v.encode() for vals in sample.values() for v in vals)
    assert set(_leaks(blob, sample)) == set(sample)
    assert _leaks(b"\x00" * 1000, sample) == {}


@pytest.mark.slow
@pytest.mark.parametrize("uncompressed", [False, True], ids=["default", "uncompressed"])
def test_no_personal_data_in_the_database_bytes(tmp_path, key_file, reg_cat, exports, uncompressed):
    db = tmp_path / "processed" / "sapat.duckdb"
    results, open_bytes = _ingest_all(db, exports, reg_cat, load_key(), uncompressed=uncompressed)
    assert all(r.status == "loaded" for r in results), [r.errors[:1] for r in results]
    assert sum(r.rows_quarantined for r in results) > 0  # raw rows of these are stored
    secrets = exports["secrets"]
    data = db.read_bytes()
    assert _leaks(open_bytes, secrets) == {}, "personal data in the database or WAL while open"
    assert _leaks(data, secrets) == {}, "personal data in the checkpointed database file"
    con = duckdb.connect(str(db), read_only=True)
    try:
        texts = _text_values(con)
        comments = [t for (t,) in con.execute("SELECT DISTINCT text FROM fct_comments").fetchall()]
        raws = con.execute("SELECT DISTINCT raw::VARCHAR FROM qa_quarantine").fetchall()
        raw_keys = {k for (raw,) in raws for k in json.loads(raw)}
    finally:
        con.close()
    assert _leaks(texts.encode("utf-8"), secrets) == {}, "personal data in a text column"
    assert "@" not in texts
    personal_columns = {
        "Email",
        "Email Address",
        "Адрес электронной почты",
        "Name",
        "ID",
        "id",
        "_id",
        "_uuid",
        "_submitted_by",
        "seed",
        "ipaddr",
    }
    assert raw_keys and not raw_keys & personal_columns
    if uncompressed:  # positive control: strings that are stored are visible in the bytes
        assert comments
        seen = [c for c in comments if c.encode("utf-8") in data]
        assert len(seen) == len(comments)


def test_person_key_is_a_keyed_hmac_stable_for_a_key(
    tmp_path, key_file, monkeypatch, reg_cat, exports
):
    picked = [
        next(f for f in exports["files"].values() if f["dialect"] == d)
        for d in ("google_forms", "ms_forms")
    ]
    key = load_key()
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert load_key() == key  # read again, not made again

    def person_keys(name: str, k: bytes) -> dict[tuple[str, int], str]:
        db = tmp_path / name / "processed" / "sapat.duckdb"
        with Store(db, raw_dir=tmp_path / name / "raw") as store:
            for f in picked:
                r = ingest_file(f["path"], store, reg_cat[1], reg_cat[0], key=k)
                assert r.status == "loaded", r.errors
            rows = store.con.execute(
                " UNION ALL ".join(
                    f"SELECT l.sha256, t.source_row, t.person_key FROM fct_{i} t "
                    "JOIN sys_loads l USING (load_id)"
                    for i in sorted({f["instrument"] for f in picked})
                )
            ).fetchall()
        return {(sha, row): pk for sha, row, pk in rows}

    first = person_keys("first", key)
    again = person_keys("again", load_key())
    # the e-mail of every stored row, from the source files
    emails = {}
    for f in picked:
        sha = sha256_of(f["path"])
        if f["dialect"] == "google_forms":
            rows = read_csv_rows(f["path"])
            col = next(i for i, h in enumerate(rows[0]) if h in EMAIL_HEADERS)
            emails |= {(sha, n): (f["instrument"], r[col]) for n, r in enumerate(rows[1:], 2)}
        else:
            sheet = openpyxl.load_workbook(f["path"]).active
            col = [c.value for c in sheet[1]].index("Email")
            emails |= {
                (sha, n): (f["instrument"], r[col])
                for n, r in enumerate(sheet.iter_rows(min_row=2, values_only=True), 2)
            }
    assert len(first) > 300 and set(first) <= set(emails)
    for where, pk in first.items():
        inst, email = emails[where]
        assert HEX32.match(pk), pk
        assert pk == pseudonym(key, inst, email)
        assert email.split("@")[0] not in pk
    assert again == first
    # another key file: other keys for the same people, grouped the same way
    monkeypatch.setenv("SAPAT_KEY_FILE", str(tmp_path / "other" / "pseudonym.key"))
    other_key = load_key()
    assert other_key != key
    other = person_keys("other", other_key)
    assert set(other) == set(first)
    assert not set(other.values()) & set(first.values())
    pairs = {(first[w], other[w]) for w in first}
    assert len(pairs) == len(set(first.values())) == len(set(other.values()))


def test_platform_ids_become_keyed_submission_keys(tmp_path, key_file, reg_cat, exports):
    kobo = next(f for f in exports["files"].values() if f["dialect"] == "kobo")
    key = load_key()
    db = tmp_path / "processed" / "sapat.duckdb"
    with Store(db, raw_dir=tmp_path / "raw") as store:
        r = ingest_file(kobo["path"], store, reg_cat[1], reg_cat[0], key=key)
        assert r.status == "loaded", r.errors
        got = dict(
            store.con.execute(
                "SELECT source_row, submission_key FROM fct_teaching_evaluation WHERE person_key "
                "IS NULL"
            ).fetchall()
        )
    sheet = openpyxl.load_workbook(kobo["path"]).active
    head = [c.value for c in sheet[1]]
    col, when = head.index("_uuid"), head.index("_submission_time")
    rows = dict(enumerate(sheet.iter_rows(min_row=2, values_only=True), 2))
    uuids = {n: row[col] for n, row in rows.items()}
    assert len(got) == r.rows_loaded
    for row, sk in got.items():
        # the platform id together with the submission time (ids restart in every form)
        expected = f"{uuids[row]}\x1f{rows[row][when]}"
        assert sk == pseudonym(key, "teaching_evaluation", kobo["wave"], expected)
        assert uuids[row] not in sk
