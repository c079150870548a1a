"""A file is loaded completely or not at all, even when the process is killed.

Real `sapat ingest` processes loading a batch are killed with SIGKILL at random
(seeded) moments. After every kill the database must open, and every file must be
either absent from the manifest with no rows anywhere, or complete: its rows in
fct_<instrument>, quarantine, flags, comments and answer counts exactly those of an
uninterrupted load. Re-running the batch then finishes the job, and the tables equal
those of a clean single run. The raw copies kept in data/raw are never partial either.
"""

from __future__ import annotations

import random
import signal
import subprocess
import time
from pathlib import Path

import duckdb
import pytest
from ingest_helpers import (
    canonical,
    canonical_of,
    consistency_problems,
    diff,
    export_files,
    only_files,
    sapat_command,
    sha256_of,
)

from pipeline.instruments import example_catalog
from pipeline.registry import example_registry
from pipeline.synth import synthesize

KILLS = 15  # a new database whenever the batch got completely loaded
KILL_SEED = 9090


@pytest.fixture(scope="module")
def batch(tmp_path_factory) -> list[Path]:
    """Eight exports (KoboToolbox, Google Forms ky/ru, LimeSurvey, MS Forms) of three
    questionnaires in two waves; each takes a noticeable moment to load."""
    out = tmp_path_factory.mktemp("atomic_exports")
    synthesize(
        out,
        example_registry(),
        example_catalog(),
        waves=["2023-2024", "2024-2025"],
        scale=0.15,
        seed=23,
        instruments=["teaching_evaluation", "student_experience", "graduate"],
    )
    files = export_files(out)
    assert len(files) == 8
    return files


@pytest.fixture
def env(batsu_workspace) -> dict:
    return {"workspace": batsu_workspace}


def _ingest(db: Path, files: list[Path]) -> subprocess.Popen:
    return subprocess.Popen(
        [*sapat_command(), "ingest", "--db", str(db), "--json", *map(str, files)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _raw_copies_whole(raw_dir: Path) -> list[str]:
    """Raw copies are named by their sha256; a file under that name must have it."""
    bad = []
    for p in sorted(raw_dir.rglob("*")):
        if not p.is_file() or p.name.endswith(".part"):
            continue
        if sha256_of(p) != p.name.split(".")[0]:
            bad.append(str(p.relative_to(raw_dir)))
    return bad


@pytest.mark.slow
def test_sigkill_at_random_moments_never_leaves_a_partial_file(tmp_path, env, batch):
    # the reference: one clean, uninterrupted run
    clean_db = tmp_path / "clean" / "processed" / "sapat.duckdb"
    t0 = time.perf_counter()
    proc = _ingest(clean_db, batch)
    out, errs = proc.communicate(timeout=600)
    clean_seconds = time.perf_counter() - t0
    assert proc.returncode == 0, errs
    assert "Traceback" not in out + errs
    ref = canonical(clean_db)
    assert len(ref["sys_loads"]) == len(batch)

    def finish(db: Path, episode: int) -> None:
        """Re-run the batch to completion: the same tables as the clean run."""
        proc = _ingest(db, batch)
        out, errs = proc.communicate(timeout=600)
        assert proc.returncode == 0, f"episode {episode}: the re-run fails: {errs}"
        assert "Traceback" not in out + errs
        d = diff(ref, canonical(db))
        assert d == [], f"episode {episode}: after kills and a re-run:\n" + "\n".join(d)

    rng = random.Random(KILL_SEED)
    seen = dict.fromkeys(("no_database", "nothing_loaded", "partial", "complete"), 0)
    seen["finished_before_kill"] = 0
    episode = 0
    db = tmp_path / "episode0" / "processed" / "sapat.duckdb"
    for k in range(KILLS):
        delay = rng.uniform(0.1, clean_seconds)
        proc = _ingest(db, batch)
        try:
            proc.wait(timeout=delay)
            seen["finished_before_kill"] += 1
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            if proc.returncode == 0:  # it ended between the time running out and the kill
                seen["finished_before_kill"] += 1
            else:
                assert proc.returncode == -signal.SIGKILL, proc.returncode
        where = f"kill {k} (episode {episode}) after {delay:.2f} s"
        if not db.exists():
            seen["no_database"] += 1
            continue
        try:
            con = duckdb.connect(str(db), read_only=True)
        except duckdb.Error as exc:  # pragma: no cover - the failure being tested for
            pytest.fail(f"{where}: the database does not open after the kill: {exc}")
        try:
            problems = consistency_problems(con)
            got = canonical_of(con)
        finally:
            con.close()
        assert problems == [], f"{where}: " + "; ".join(problems)
        shas = {r[0] for r in got.get("sys_loads", [])}
        # every file present is exactly as an uninterrupted load leaves it (the batch
        # has no submission repeated across files, so a file's rows, flags and counts
        # depend only on the files before it, as in the clean run)
        d = diff(only_files(ref, shas), only_files(got, shas))
        assert d == [], f"{where}: a loaded file differs from a clean load:\n" + "\n".join(d)
        bad_raw = _raw_copies_whole(env["workspace"] / "data" / "raw")
        assert bad_raw == [], f"{where}: partial raw copies {bad_raw}"
        if len(shas) == len(batch):  # nothing left to interrupt: check, start afresh
            seen["complete"] += 1
            finish(db, episode)
            episode += 1
            db = tmp_path / f"episode{episode}" / "processed" / "sapat.duckdb"
        else:
            seen["partial" if shas else "nothing_loaded"] += 1
    finish(db, episode)
    print(f"clean run {clean_seconds:.1f} s; {episode + 1} episodes; after the kills: {seen}")
    # the kills did land in the middle of batches (the test exercised something)
    assert seen["partial"] >= 3, seen
