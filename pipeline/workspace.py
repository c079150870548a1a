"""The office's workspace: its questionnaires, its university, its settings and its data.

A workspace is a folder made by ``sapat init``::

    sapat.toml           settings (thresholds, confidence, language, duplicate policy)
    instruments/         questionnaire workbooks (XLSForm) and versions.yaml
    declarations/        org_units.csv, headcounts.csv, teachers.csv, disciplines.csv,
                         processes.csv, objectives.yaml
    mappings/            column mappings for exports with other headings (optional)
    data/raw/            the untouched originals of every loaded file
    data/processed/      the database (sapat.duckdb) and its published snapshots

Every command reads questionnaires and declarations from the workspace, never from the
installed package; the package only carries examples that ``sapat init --example``
copies.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from pipeline.config import EXAMPLES_DIR, WORKSPACE_FILE, Settings, find_workspace, load_settings
from pipeline.errors import UsageError

SETTINGS_TEMPLATE = """\
# Sapat workspace settings. Every line may be left out: the value shown is the default.
# Environment variables (SAPAT_MIN_N, SAPAT_CONFIDENCE, SAPAT_LANG, SAPAT_DB,
# SAPAT_DUPLICATES) and command-line flags override what is written here.

[workspace]
name = "{name}"
language = "{language}"          # ky, ru or en: the language of names and labels shown
# database = "data/processed/sapat.duckdb"

[privacy]
min_n = 5                  # a cell on fewer respondents shows no number (never below 3)
comment_min_n = 10         # free-text comments need at least this many respondents

[statistics]
confidence = 0.95          # level of every interval (QILT uses 0.90)
ci_method = "wilson"       # wilson, agresti_coull, clopper_pearson, svy_logit, svy_beta
adjust = "holm"            # correction for many tests at once: holm or bh
alpha = 0.05               # significance level after the correction
min_n_reliable = 10        # fewer answers: "indicative only"
min_rate_reliable = 0.5    # a lower response rate: "indicative only"
fpc = "auto"               # finite population correction: auto, on or off

[ingest]
duplicates = "exclude"     # repeated submissions: exclude, flag (keep, mark) or off
duplicate_window_minutes = 60   # same person, same answers within this time: a repeat
speeder_fraction = 0.5     # faster than this share of the median time: flagged

[output]
csv = "plain"              # CSV files: plain (comma) or excel (";", decimal comma, BOM)
"""

#: Empty declaration files of a new workspace: their header rows.
DECLARATION_HEADERS = {
    "org_units.csv": "code,parent_code,kind,level,name_ky,name_ru,name_en,city,illustrative\n",
    "headcounts.csv": "wave,unit_code,level,population,headcount\n",
    "teachers.csv": "teacher_code,department_code\n",
    "disciplines.csv": (
        "discipline_code,programme_code,year_of_study,teacher_code,name_ky,name_ru,name_en\n"
    ),
    "processes.csv": "code,name_ky,name_ru,name_en,owner_ky,owner_ru,owner_en\n",
    "objectives.yaml": "# quality objectives: see docs/org-structure.md\n[]\n",
}
VERSIONS_TEMPLATE = """\
# Each questionnaire: its versions, the workbook of each, the waves (academic years) it
# was used in. See docs/own-questionnaire.md.
# example:
#   course_feedback:
#     versions:
#       - version: "2026.1"
#         workbook: course_feedback__2026.1.xlsx
#         waves: ["2026-2027"]
#     not_comparable: []
{}
"""


def examples() -> list[str]:
    """Names of the example workspaces shipped with Sapat."""
    return sorted(p.name for p in EXAMPLES_DIR.iterdir() if (p / "instruments").is_dir())


def init_workspace(
    folder: Path | str, example: str | None = None, *, name: str | None = None
) -> Path:
    """Make a workspace in ``folder`` (created; must be empty or absent).

    With ``example``, the questionnaires, declarations and settings of that example
    (``batsu``) are copied in; without, empty declaration files with their headers.
    """
    root = Path(folder).expanduser()
    if (root / WORKSPACE_FILE).exists():
        raise UsageError(f"{root} is already a Sapat workspace", file=str(root / WORKSPACE_FILE))
    if root.exists() and not root.is_dir():
        raise UsageError(f"{root} is a file, not a folder", file=str(root))
    if root.exists() and any(root.iterdir()):
        raise UsageError(
            f"{root} is not empty; give a new or empty folder",
            file=str(root),
            expected="a folder name that does not exist yet",
        )
    if example is not None and example not in examples():
        raise UsageError(f"unknown example {example!r}", expected=", ".join(examples()))
    try:
        root.mkdir(parents=True, exist_ok=True)
        for sub in ("data/raw", "data/processed", "mappings"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        if example:
            src = EXAMPLES_DIR / example
            shutil.copytree(src / "instruments", root / "instruments")
            shutil.copytree(src / "declarations", root / "declarations")
            settings = (src / WORKSPACE_FILE).read_text(encoding="utf-8")
        else:
            (root / "instruments").mkdir()
            (root / "instruments" / "versions.yaml").write_text(VERSIONS_TEMPLATE, "utf-8")
            (root / "declarations").mkdir()
            title = name or root.resolve().name
            for file, header in DECLARATION_HEADERS.items():
                body = header
                if file == "org_units.csv":  # the root of the tree, renamed at will
                    body += f'UNI,,university,,,,"{title.replace(chr(34), "")}",,no\n'
                (root / "declarations" / file).write_text(body, encoding="utf-8")
            settings = SETTINGS_TEMPLATE.format(name=title.replace('"', ""), language="en")
        (root / WORKSPACE_FILE).write_text(settings, encoding="utf-8")
        for p in (root / "instruments", root / "declarations"):
            for f in p.iterdir():
                f.chmod(0o644)
    except OSError as exc:
        raise UsageError(f"cannot make the workspace ({exc.strerror})", file=str(root)) from exc
    return root.resolve()


@dataclass
class Workspace:
    """A workspace found on disk, with its settings and (read on first use) its
    questionnaires and declarations."""

    settings: Settings
    _overrides: dict = field(default_factory=dict, repr=False)

    @classmethod
    def find(cls, explicit: Path | str | None = None) -> Workspace:
        return cls(load_settings(find_workspace(explicit)))

    @classmethod
    def at(cls, root: Path | str) -> Workspace:
        return cls(load_settings(Path(root)))

    @property
    def root(self) -> Path:
        return self.settings.root

    @cached_property
    def catalog(self):
        from pipeline.instruments import read_catalog

        return read_catalog(self.settings.instruments_dir)

    @cached_property
    def registry(self):
        from pipeline.registry import read_registry

        return read_registry(self.settings.declarations_dir)
