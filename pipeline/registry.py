"""The university as data: org units, headcounts, teachers, disciplines, processes, objectives.

All read from plain CSV/YAML files in ``pipeline/declarations/`` (or the folder
``SAPAT_DECLARATIONS`` points to), which the quality office edits in Excel.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache, cached_property
from pathlib import Path

import pandas as pd
import yaml

from pipeline.config import DECLARATIONS_DIR
from pipeline.errors import DeclarationError

UNIT_KINDS = ("university", "institute", "faculty", "college", "department", "programme")
#: Kinds that count as "faculty level" for reporting (the dean's unit).
FACULTY_KINDS = ("institute", "faculty", "college")
LEVELS = ("vocational", "bachelor", "master")
POPULATIONS = ("students", "graduates", "employers", "staff")

_COLUMNS = {
    "org_units.csv": [
        "code", "parent_code", "kind", "level", "name_ky", "name_ru", "name_en", "city",
        "illustrative",
    ],
    "headcounts.csv": ["wave", "unit_code", "level", "population", "headcount"],
    "teachers.csv": ["teacher_code", "department_code"],
    "disciplines.csv": [
        "discipline_code", "programme_code", "year_of_study", "teacher_code", "name_ky",
        "name_ru", "name_en",
    ],
    "processes.csv": ["code", "name_ky", "name_ru", "name_en"],
}  # fmt: skip


def _read_csv(directory: Path, name: str) -> pd.DataFrame:
    path = directory / name
    if not path.exists():
        raise DeclarationError("the file is missing", file=str(path))
    frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    frame.columns = [c.strip() for c in frame.columns]
    missing = [c for c in _COLUMNS[name] if c not in frame.columns]
    if missing:
        raise DeclarationError(
            f"columns missing: {', '.join(missing)}",
            file=str(path),
            row=1,
            expected=", ".join(_COLUMNS[name]),
        )
    return frame.apply(lambda s: s.str.strip())


@dataclass
class OrgRegistry:
    """Org units with their tree, and everything hung on them."""

    units: pd.DataFrame
    headcounts: pd.DataFrame
    teachers: pd.DataFrame
    disciplines: pd.DataFrame
    processes: pd.DataFrame
    objectives: list[dict]
    source: Path

    # ------------------------------------------------------------------ tree
    @cached_property
    def _parent(self) -> dict[str, str]:
        return dict(zip(self.units["code"], self.units["parent_code"], strict=True))

    @cached_property
    def _kind(self) -> dict[str, str]:
        return dict(zip(self.units["code"], self.units["kind"], strict=True))

    def kind(self, code: str) -> str:
        return self._kind[code]

    def exists(self, code: str) -> bool:
        return code in self._kind

    def ancestors(self, code: str) -> list[str]:
        """The unit's ancestors, nearest first (excluding the unit itself)."""
        out, cur = [], self._parent.get(code, "")
        while cur:
            out.append(cur)
            cur = self._parent.get(cur, "")
        return out

    def ancestor_of_kind(self, code: str, kinds: tuple[str, ...]) -> str | None:
        """Nearest ancestor-or-self whose kind is in ``kinds`` (outermost faculty-level unit
        when an institute contains faculties is *not* returned: the nearest is)."""
        for c in [code, *self.ancestors(code)]:
            if self._kind.get(c) in kinds:
                return c
        return None

    def faculty_of(self, code: str) -> str | None:
        """The faculty-level unit (institute, faculty or college) a unit belongs to.

        When an institute contains faculties, the *top* faculty-level unit below the
        university is returned, so every programme has exactly one.
        """
        chain = [code, *self.ancestors(code)]
        top = None
        for c in chain:
            if self._kind.get(c) in FACULTY_KINDS:
                top = c
        return top

    def department_of(self, code: str) -> str | None:
        return self.ancestor_of_kind(code, ("department",))

    def of_kind(self, *kinds: str) -> pd.DataFrame:
        return self.units[self.units["kind"].isin(kinds)]

    @cached_property
    def programmes(self) -> pd.DataFrame:
        """Programme rows with their department and faculty-level unit."""
        p = self.of_kind("programme").copy()
        p["department_code"] = [self.department_of(c) for c in p["code"]]
        p["faculty_code"] = [self.faculty_of(c) for c in p["code"]]
        return p.reset_index(drop=True)

    @property
    def faculties(self) -> pd.DataFrame:
        codes = {self.faculty_of(c) for c in self.units["code"]} - {None}
        return self.units[self.units["code"].isin(codes)].reset_index(drop=True)

    def name(self, code: str, lang: str = "en") -> str:
        row = self.units.loc[self.units["code"] == code]
        if row.empty:
            return code
        return str(row.iloc[0][f"name_{lang}"])

    def lookup_table(self) -> pd.DataFrame:
        """programme -> department, faculty, university: one row per programme."""
        return self.programmes[["code", "level", "department_code", "faculty_code"]].rename(
            columns={"code": "programme_code"}
        )

    def headcount(self, wave: str, population: str) -> pd.DataFrame:
        h = self.headcounts
        return h[(h["wave"] == wave) & (h["population"] == population)].reset_index(drop=True)

    @property
    def waves(self) -> list[str]:
        return sorted(self.headcounts["wave"].unique())

    # ---------------------------------------------------------------- checks
    def problems(self) -> list[str]:
        """Inconsistencies a person should fix; empty when all is well."""
        out: list[str] = []
        u = self.units
        dup = u["code"][u["code"].duplicated()].tolist()
        if dup:
            out.append(f"org_units.csv: codes used twice: {', '.join(dup)}")
        codes = set(u["code"])
        for row_no, (code, parent, kind, level) in enumerate(
            zip(u["code"], u["parent_code"], u["kind"], u["level"], strict=True), start=2
        ):
            if kind not in UNIT_KINDS:
                out.append(f"org_units.csv row {row_no}: unknown kind {kind!r} for {code}")
            if kind == "university":
                if parent:
                    out.append(f"org_units.csv row {row_no}: the university has a parent")
            elif parent not in codes:
                out.append(f"org_units.csv row {row_no}: {code} names unknown parent {parent!r}")
            if kind == "programme" and level not in LEVELS:
                out.append(
                    f"org_units.csv row {row_no}: programme {code} has level {level!r}; "
                    f"expected one of {', '.join(LEVELS)}"
                )
            for lang in ("ky", "ru", "en"):
                if not u.loc[u["code"] == code, f"name_{lang}"].iloc[0]:
                    out.append(f"org_units.csv row {row_no}: {code} has no name_{lang}")
        h = self.headcounts
        for row_no, (unit, pop, n) in enumerate(
            zip(h["unit_code"], h["population"], h["headcount"], strict=True), start=2
        ):
            if unit not in codes:
                out.append(f"headcounts.csv row {row_no}: unknown unit {unit!r}")
            if pop not in POPULATIONS:
                out.append(f"headcounts.csv row {row_no}: unknown population {pop!r}")
            if pd.isna(n) or n < 0:
                out.append(f"headcounts.csv row {row_no}: headcount {n!r} is not a whole number")
        teachers = set(self.teachers["teacher_code"])
        for row_no, (prog, teacher) in enumerate(
            zip(self.disciplines["programme_code"], self.disciplines["teacher_code"], strict=True),
            start=2,
        ):
            if prog not in codes:
                out.append(f"disciplines.csv row {row_no}: unknown programme {prog!r}")
            if teacher not in teachers:
                out.append(f"disciplines.csv row {row_no}: unknown teacher {teacher!r}")
        processes = set(self.processes["code"])
        for obj in self.objectives:
            if obj.get("process") not in processes:
                out.append(
                    f"objectives.yaml {obj.get('id')}: unknown process {obj.get('process')!r}"
                )
        return out


def read_registry(directory: str | Path = DECLARATIONS_DIR) -> OrgRegistry:
    """Read every declaration file; raises :class:`DeclarationError` on a missing file/column."""
    directory = Path(directory)
    headcounts = _read_csv(directory, "headcounts.csv")
    objectives_path = directory / "objectives.yaml"
    objectives = []
    if objectives_path.exists():
        try:
            objectives = yaml.safe_load(objectives_path.read_text(encoding="utf-8-sig")) or []
        except yaml.YAMLError as exc:
            raise DeclarationError(f"not valid YAML: {exc}", file=str(objectives_path)) from exc
    return OrgRegistry(
        units=_read_csv(directory, "org_units.csv"),
        headcounts=headcounts.assign(
            headcount=pd.to_numeric(headcounts["headcount"], errors="coerce").astype("Int64")
        ),
        teachers=_read_csv(directory, "teachers.csv"),
        disciplines=_read_csv(directory, "disciplines.csv"),
        processes=_read_csv(directory, "processes.csv"),
        objectives=objectives,
        source=directory,
    )


@cache
def default_registry() -> OrgRegistry:
    return read_registry(DECLARATIONS_DIR)
