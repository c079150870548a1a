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
        "code",
        "parent_code",
        "kind",
        "level",
        "name_ky",
        "name_ru",
        "name_en",
        "city",
        "illustrative",
    ],
    "headcounts.csv": ["wave", "unit_code", "level", "population", "headcount"],
    "teachers.csv": ["teacher_code", "department_code"],
    "disciplines.csv": [
        "discipline_code",
        "programme_code",
        "year_of_study",
        "teacher_code",
        "name_ky",
        "name_ru",
        "name_en",
    ],
    "processes.csv": ["code", "name_ky", "name_ru", "name_en"],
}


#: Columns that may be left out (filled with empty text).
_OPTIONAL_COLUMNS = {
    "city",
    "illustrative",
    "level",
    "year_of_study",
    "name_ky",
    "name_ru",
    "name_en",
    "owner_ky",
    "owner_ru",
    "owner_en",
}


def _read_csv(directory: Path, name: str, required: bool = False) -> pd.DataFrame:
    """A declaration file; a missing optional file is an empty table."""
    path = directory / name
    if not path.exists():
        if required:
            raise DeclarationError(
                "the file is missing",
                file=str(path),
                expected=f"columns {', '.join(_COLUMNS[name])}",
            )
        return pd.DataFrame({c: pd.Series(dtype=object) for c in _COLUMNS[name]})
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise DeclarationError(
            f"cannot read the file ({exc})", file=str(path), expected="a CSV file saved as UTF-8"
        ) from exc
    frame.columns = [c.strip() for c in frame.columns]
    for c in _COLUMNS[name]:
        if c not in frame.columns and c in _OPTIONAL_COLUMNS:
            frame[c] = ""
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

    @cached_property
    def _names(self) -> dict[str, dict[str, str]]:
        return {
            r.code: {"ky": r.name_ky, "ru": r.name_ru, "en": r.name_en}
            for r in self.units.itertuples()
        }

    def name(self, code: str, lang: str = "en") -> str:
        """The unit's name in ``lang``, else in another language, else its code."""
        names = self._names.get(code)
        if not names:
            return code
        return names.get(lang) or next((v for v in names.values() if v), code)

    @property
    def university(self) -> str:
        """The code of the root unit (kind university)."""
        roots = self.units.loc[self.units["kind"] == "university", "code"]
        if roots.empty:
            raise DeclarationError(
                "org_units.csv has no unit of kind university (the root of the tree)",
                file=str(self.source / "org_units.csv"),
                expected="one row with kind = university and an empty parent_code",
            )
        return str(roots.iloc[0])

    @cached_property
    def rollup(self) -> pd.DataFrame:
        """Every unit with the programme, department and faculty-level unit it counts in:
        columns ``unit, programme, department, faculty`` (the university counts in none).

        Answers given for a unit count in every level above it: this one table drives
        every roll-up of the indicators.
        """
        rows = []
        for r in self.units.itertuples():
            if r.kind == "university":
                continue
            rows.append(
                (
                    r.code,
                    r.code if r.kind == "programme" else None,
                    self.department_of(r.code),
                    self.faculty_of(r.code),
                )
            )
        frame = pd.DataFrame(rows, columns=["unit", "programme", "department", "faculty"])
        return frame.astype(object).where(frame.notna(), None)

    @cached_property
    def parents(self) -> dict[str, str]:
        """Reporting tree, child -> parent: programme -> department (or faculty), department
        -> faculty, faculty -> university, teacher -> department. Units that are not
        reported on (an institute holding faculties) are skipped."""
        uni = self.university
        out: dict[str, str] = {}
        for unit, programme, department, faculty in self.rollup.itertuples(index=False):
            department = department if isinstance(department, str) else None
            faculty = faculty if isinstance(faculty, str) else None
            if isinstance(programme, str):
                out[unit] = department or faculty or uni
            elif department == unit:
                out[unit] = faculty or uni
            elif faculty == unit:
                out[unit] = uni
        for t in self.teachers.itertuples():
            if t.department_code:
                out[t.teacher_code] = t.department_code
        return out

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
            if kind == "programme" and level and level not in LEVELS:
                out.append(
                    f"org_units.csv row {row_no}: programme {code} has level {level!r}; "
                    f"expected one of {', '.join(LEVELS)}"
                )
            names = self._names.get(code, {})
            if not any(names.values()):
                out.append(f"org_units.csv row {row_no}: {code} has no name in any language")
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
    if not directory.is_dir():
        raise DeclarationError("the declarations folder is missing", file=str(directory))
    headcounts = _read_csv(directory, "headcounts.csv")
    objectives_path = directory / "objectives.yaml"
    objectives = []
    if objectives_path.exists():
        try:
            objectives = yaml.safe_load(objectives_path.read_text(encoding="utf-8-sig")) or []
        except yaml.YAMLError as exc:
            raise DeclarationError(f"not valid YAML: {exc}", file=str(objectives_path)) from exc
    return OrgRegistry(
        units=_read_csv(directory, "org_units.csv", required=True),
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
def example_registry() -> OrgRegistry:
    return read_registry(DECLARATIONS_DIR)
