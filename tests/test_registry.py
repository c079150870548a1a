"""The university as data: the shipped org structure, headcounts and objectives."""

from __future__ import annotations

import shutil

import pytest

from pipeline.config import DECLARATIONS_DIR
from pipeline.errors import DeclarationError
from pipeline.registry import FACULTY_KINDS, example_registry, read_registry

REG = example_registry()


def test_shipped_registry_has_no_problems():
    assert REG.problems() == []


def test_structure_matches_the_digest():
    kinds = REG.units["kind"].value_counts()
    assert kinds["university"] == 1
    assert kinds.get("institute", 0) >= 3
    assert kinds.get("college", 0) >= 2
    assert len(REG.of_kind(*FACULTY_KINDS)) >= 8
    assert len(REG.faculties) >= 6  # top faculty-level units: institutes hold faculties
    assert REG.programmes["level"].value_counts().to_dict().keys() >= {
        "vocational",
        "bachelor",
        "master",
    }
    assert len(REG.programmes) >= 40


def test_every_programme_has_one_faculty_and_department():
    p = REG.programmes
    assert p["faculty_code"].notna().all()
    assert p["department_code"].notna().all()
    for fac in p["faculty_code"]:
        assert REG.kind(fac) in FACULTY_KINDS


def test_headcounts_cover_every_programme_each_wave():
    students = REG.headcounts[REG.headcounts["population"] == "students"]
    for wave in REG.waves:
        units = set(students.loc[students["wave"] == wave, "unit_code"])
        assert set(REG.programmes["code"]) <= units, wave
    total = students.groupby("wave")["headcount"].sum()
    assert total.between(8_000, 20_000).all(), total


def test_objectives_reference_processes_and_instruments():
    assert len(REG.objectives) >= 8
    for obj in REG.objectives:
        assert obj["process"] in set(REG.processes["code"])
        assert set(obj["title"]) == {"ky", "ru", "en"}


def test_unknown_parent_is_reported(tmp_path):
    dest = tmp_path / "decl"
    shutil.copytree(DECLARATIONS_DIR, dest)
    path = dest / "org_units.csv"
    lines = path.read_text(encoding="utf-8").splitlines()
    head, last = lines[0].split(","), lines[-1].split(",")
    last[head.index("parent_code")] = "NO-SUCH-UNIT"
    path.write_text("\n".join([*lines[:-1], ",".join(last)]) + "\n", encoding="utf-8")
    problems = read_registry(dest).problems()
    assert any("NO-SUCH-UNIT" in p and f"row {len(lines)}" in p for p in problems), problems


def test_missing_column_names_file_and_expected(tmp_path):
    dest = tmp_path / "decl"
    shutil.copytree(DECLARATIONS_DIR, dest)
    (dest / "teachers.csv").write_text("teacher\nT1\n", encoding="utf-8")
    with pytest.raises(DeclarationError) as info:
        read_registry(dest)
    assert "teachers.csv" in str(info.value) and "teacher_code" in str(info.value)
