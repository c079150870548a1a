"""One small university for the dashboard's tests: the BatSU example workspace with two
waves of synthetic exports loaded and published, one user per role, and one comment that
tries to run a script."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from pipeline.config import Statistics
from pipeline.indicators import recompute
from pipeline.ingest import ingest_file
from pipeline.ingest.pseudonym import load_key
from pipeline.publish import Tree, ViewerRole
from pipeline.store import Store
from pipeline.synth import synthesize
from pipeline.users import add_user
from pipeline.workspace import Workspace, init_workspace

WAVES = ["2024-2025", "2025-2026"]
#: a comment that would run if the page ever rendered data as HTML
SCRIPT = '<script>window.__sapat_xss = 1</script><img src=x onerror="window.__sapat_xss = 2">'
PASSWORD = "correct horse battery"
#: log-in name -> (role, units)
PEOPLE = {
    "office": (ViewerRole.QUALITY_OFFICE, []),
    "rector": (ViewerRole.RECTOR, []),
    "dean": (ViewerRole.DEAN, ["F-NHP"]),
    "leader": (ViewerRole.PROGRAMME_LEADER, ["P-NHP-MATH-B"]),
    "teacher": (ViewerRole.TEACHER, []),  # filled with a teacher who has results
}


@dataclass
class Site:
    root: Path
    ws: Workspace
    tree: Tree
    people: dict
    #: the unit whose comments hold SCRIPT
    script_unit: str = ""


def build(tmp: Path, monkeypatch) -> Site:
    monkeypatch.setenv("SAPAT_KEY_FILE", str(tmp / "keys" / "pseudonym.key"))
    for var in ("SAPAT_DB", "SAPAT_MIN_N", "SAPAT_CONFIDENCE", "SAPAT_LANG", "SAPAT_DUPLICATES"):
        monkeypatch.delenv(var, raising=False)
    root = init_workspace(tmp / "ws", "batsu")
    # a small university: comments show from 5 per unit (the privacy floor of cells)
    toml = root / "sapat.toml"
    toml.write_text(
        toml.read_text("utf-8").replace("comment_min_n = 10", "comment_min_n = 5"), "utf-8"
    )
    monkeypatch.setenv("SAPAT_WORKSPACE", str(root))
    ws = Workspace.at(root)
    exports = tmp / "exports"
    truth = synthesize(
        exports,
        ws.registry,
        ws.catalog,
        seed=5,
        scale=0.25,
        waves=WAVES,
        instruments=["student_experience", "graduate", "employer", "teaching_evaluation"],
    )
    _plant_script_comment(exports, truth)
    key = load_key()
    s = ws.settings
    with Store(s.db_path, raw_dir=s.raw_dir, audit_key=key) as store:
        for meta in truth["files"]:
            ingest_file(exports / meta["file"], store, ws.catalog, ws.registry, key=key)
        recompute(store, ws.registry, ws.catalog, Statistics(), full=True)
        store.publish(s.snapshots_dir, s.stats.signature())
    import duckdb

    con = duckdb.connect(str(s.db_path), read_only=True)
    teacher = con.execute(
        "SELECT unit FROM ind_items WHERE org_level = 'teacher' AND n >= 5 ORDER BY unit LIMIT 1"
    ).fetchone()[0]
    script_unit = con.execute(
        "SELECT coalesce(unit, programme) FROM fct_comments WHERE text = ?", [SCRIPT]
    ).fetchone()[0]
    con.close()
    people = dict(PEOPLE)
    people["teacher"] = (ViewerRole.TEACHER, [teacher])
    for name, (role, units) in people.items():
        add_user(s, name, role, units, PASSWORD)
    return Site(root=root, ws=ws, tree=Tree.of(ws.registry), people=people, script_unit=script_unit)


def _plant_script_comment(exports: Path, truth: dict) -> None:
    """Write SCRIPT into the comment column of the first student file with one."""
    for meta in truth["files"]:
        path = exports / meta["file"]
        if path.suffix != ".csv" or "student_experience" not in path.name:
            continue
        raw = path.read_bytes()
        encoding = "utf-8-sig" if raw.startswith(b"\xef\xbb\xbf") else "utf-8"
        try:
            text = raw.decode(encoding)
        except UnicodeDecodeError:
            continue
        rows = list(csv.reader(text.splitlines()))
        header = rows[0]
        # the free-text question (a rating grid's columns carry "[...]")
        col = next(
            (
                i
                for i, h in enumerate(header)
                if "[" not in h and ("предложения" in h or "сунуш" in h.lower())
            ),
            None,
        )
        if col is None:
            continue
        # in the programme with the most comments, so that its comments are shown
        prog = next(i for i, h in enumerate(header) if "программ" in h.lower() and "[" not in h)
        commented = [r for r in rows[1:] if len(r) > col and r[col].strip()]
        counts: dict[str, int] = {}
        for r in commented:
            counts[r[prog]] = counts.get(r[prog], 0) + 1
        busiest = max(counts, key=counts.get)
        next(r for r in commented if r[prog] == busiest)[col] = SCRIPT
        with open(path, "w", encoding=encoding, newline="") as fh:
            csv.writer(fh).writerows(rows)
        return
    raise AssertionError("no student export with a comment column to plant the script in")


def foreign_units(site: Site, name: str) -> set[str]:
    """Unit codes ``name`` may not see (teachers included)."""
    from pipeline.publish import Viewer

    role, units = site.people[name]
    scope = site.tree.scope(Viewer(role, tuple(units)))
    every = {site.tree.university, *site.tree.parents, *site.tree.teacher_department}
    if scope is None:
        return set()
    if role is not ViewerRole.TEACHER:
        scope = scope | {t for t, d in site.tree.teacher_department.items() if d in scope}
    return every - scope
