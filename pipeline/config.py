"""Settings: one place for thresholds, statistical choices, defaults and paths.

Values come, in increasing precedence, from the defaults below, the workspace's settings
file (``sapat.toml``), the environment (``SAPAT_*``) and command-line flags. Functions
elsewhere receive these values as arguments; only the CLI, the notebook and the
dashboard's entry point build a :class:`Settings`.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

from pipeline.errors import DeclarationError

PACKAGE_DIR = Path(__file__).resolve().parent
PROJECT_DIR = PACKAGE_DIR.parent
EXAMPLES_DIR = PACKAGE_DIR / "examples"
INSTRUMENTS_DIR = EXAMPLES_DIR / "batsu" / "instruments"
DECLARATIONS_DIR = EXAMPLES_DIR / "batsu" / "declarations"

#: The settings file that marks a folder as a Sapat workspace.
WORKSPACE_FILE = "sapat.toml"

LANGUAGES = ("ky", "ru", "en")
LANGUAGE_NAMES = {"ky": "Kyrgyz (ky)", "ru": "Russian (ru)", "en": "English (en)"}

#: Never show a statistic resting on fewer respondents than this (not configurable lower).
MIN_N_FLOOR = 3
#: Default thresholds: statistics need this many respondents, free-text comments more.
DEFAULT_MIN_N = 5
DEFAULT_COMMENT_MIN_N = 10
CI_METHODS = ("wilson", "agresti_coull", "clopper_pearson", "svy_logit", "svy_beta")
ADJUST_METHODS = ("holm", "bh")
DUPLICATE_POLICIES = ("exclude", "flag", "off")
FPC_MODES = ("auto", "on", "off")


@dataclass(frozen=True)
class Statistics:
    """The statistical choices every indicator and test is computed with."""

    confidence: float = 0.95
    ci_method: str = "wilson"
    adjust: str = "holm"
    alpha: float = 0.05
    #: results on fewer answers, or a lower response rate, are "indicative only"
    min_n_reliable: int = 10
    min_rate_reliable: float = 0.5
    #: finite population correction: "auto" applies it only where the response rate
    #: reaches ``min_rate_reliable`` (it assumes respondents are a random sample of the
    #: headcount, which low response puts in doubt); "on" wherever a headcount is known
    fpc: str = "auto"

    def signature(self) -> str:
        """What a stored computation depends on (recompute when it changes): these choices
        and the layout of the derived tables (a release that adds a column recomputes)."""
        from pipeline.store.tables import layout_signature

        choices = "/".join(str(getattr(self, f.name)) for f in fields(self))
        return f"{choices}/layout={layout_signature()}"


@dataclass(frozen=True)
class Settings:
    """Where things live and the thresholds in force, for one workspace."""

    root: Path
    name: str = "Sapat workspace"
    language: str = "en"
    #: privacy: cells on fewer respondents show no statistic; comments need more
    min_n: int = DEFAULT_MIN_N
    comment_min_n: int = DEFAULT_COMMENT_MIN_N
    stats: Statistics = field(default_factory=Statistics)
    #: a repeated submission (same platform id; same person and answers within the
    #: window) is excluded, flagged only, or not looked for
    duplicates: str = "exclude"
    duplicate_window_minutes: float = 60.0
    #: a submission faster than this share of the median completion time is a speeder
    speeder_fraction: float = 0.5
    #: CSV files written: "plain" (comma, decimal point) or "excel" (";", decimal comma,
    #: UTF-8 with BOM: what a Russian- or Kyrgyz-locale Excel opens by double-click)
    csv: str = "plain"
    database: Path | None = None
    source: Path | None = None  # the settings file read, if any
    #: settings given by environment variables: (attribute, variable) pairs
    from_env: tuple[tuple[str, str], ...] = ()

    @property
    def excel_csv(self) -> bool:
        return self.csv == "excel"

    @property
    def instruments_dir(self) -> Path:
        return self.root / "instruments"

    @property
    def declarations_dir(self) -> Path:
        return self.root / "declarations"

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def raw_dir(self) -> Path:
        return self.data_dir / "raw"

    @property
    def processed_dir(self) -> Path:
        return self.data_dir / "processed"

    @property
    def db_path(self) -> Path:
        return self.database or self.processed_dir / "sapat.duckdb"

    @property
    def snapshots_dir(self) -> Path:
        return self.db_path.parent / "snapshots"

    def with_stats(self, **changes) -> Settings:
        """A copy with some statistical choices changed (flags), checked."""
        changes = {k: v for k, v in changes.items() if v is not None}
        out = replace(self, stats=replace(self.stats, **changes))
        out.check()
        return out

    def check(self) -> None:
        """Raise :class:`DeclarationError` naming the setting that is out of range."""
        where = str(self.source) if self.source else None
        env = dict(self.from_env)

        def bad(name: str, value, expected: str) -> DeclarationError:
            if name in env:
                return DeclarationError(
                    f"the environment variable {env[name]} = {value!r} is not allowed",
                    expected=expected,
                )
            return DeclarationError(
                f"setting {name} = {value!r} is not allowed", file=where, expected=expected
            )

        if self.language not in LANGUAGES:
            raise bad("language", self.language, "ky, ru or en")
        if not isinstance(self.min_n, int) or self.min_n < MIN_N_FLOOR:
            raise bad("min_n", self.min_n, f"a whole number of at least {MIN_N_FLOOR}")
        if not isinstance(self.comment_min_n, int) or self.comment_min_n < self.min_n:
            raise bad(
                "comment_min_n", self.comment_min_n, f"a whole number >= min_n ({self.min_n})"
            )
        s = self.stats
        if not 0.5 <= s.confidence < 1:
            raise bad("confidence", s.confidence, "a level between 0.5 and 1, e.g. 0.95 or 0.90")
        if s.ci_method not in CI_METHODS:
            raise bad("ci_method", s.ci_method, ", ".join(CI_METHODS))
        if s.adjust not in ADJUST_METHODS:
            raise bad("adjust", s.adjust, "holm or bh")
        if not 0 < s.alpha < 0.5:
            raise bad("alpha", s.alpha, "a significance level between 0 and 0.5, e.g. 0.05")
        if not isinstance(s.min_n_reliable, int) or s.min_n_reliable < 1:
            raise bad("min_n_reliable", s.min_n_reliable, "a whole number of at least 1")
        if not 0 <= s.min_rate_reliable <= 1:
            raise bad("min_rate_reliable", s.min_rate_reliable, "a share between 0 and 1")
        if s.fpc not in FPC_MODES:
            raise bad("fpc", s.fpc, "auto, on or off")
        if self.duplicates not in DUPLICATE_POLICIES:
            raise bad("duplicates", self.duplicates, "exclude, flag or off")
        if not self.duplicate_window_minutes >= 0:
            raise bad("duplicate_window_minutes", self.duplicate_window_minutes, "minutes >= 0")
        if not 0 <= self.speeder_fraction < 1:
            raise bad("speeder_fraction", self.speeder_fraction, "a share between 0 and 1")
        if self.csv not in ("plain", "excel"):
            raise bad("csv", self.csv, "plain or excel")


#: settings file section.key -> (Settings attribute, or "stats.<attribute>"; type)
_KEYS = {
    ("workspace", "name"): ("name", str),
    ("workspace", "language"): ("language", str),
    ("workspace", "database"): ("database", Path),
    ("privacy", "min_n"): ("min_n", int),
    ("privacy", "comment_min_n"): ("comment_min_n", int),
    ("statistics", "confidence"): ("stats.confidence", float),
    ("statistics", "ci_method"): ("stats.ci_method", str),
    ("statistics", "adjust"): ("stats.adjust", str),
    ("statistics", "alpha"): ("stats.alpha", float),
    ("statistics", "min_n_reliable"): ("stats.min_n_reliable", int),
    ("statistics", "min_rate_reliable"): ("stats.min_rate_reliable", float),
    ("statistics", "fpc"): ("stats.fpc", str),
    ("ingest", "duplicates"): ("duplicates", str),
    ("ingest", "duplicate_window_minutes"): ("duplicate_window_minutes", float),
    ("ingest", "speeder_fraction"): ("speeder_fraction", float),
    ("output", "csv"): ("csv", str),
}
#: environment variable -> settings file key
_ENV = {
    "SAPAT_MIN_N": ("privacy", "min_n"),
    "SAPAT_CONFIDENCE": ("statistics", "confidence"),
    "SAPAT_LANG": ("workspace", "language"),
    "SAPAT_DB": ("workspace", "database"),
    "SAPAT_DUPLICATES": ("ingest", "duplicates"),
}


def _convert(value, kind, name: str, where: str | None):
    try:
        if kind is int:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            out = int(value)
            if isinstance(value, str) and value.strip() != str(out):
                raise ValueError
            return out
        if kind is float:
            return float(value)
        if kind is Path:
            return Path(str(value)).expanduser()
        return str(value).strip()
    except (TypeError, ValueError) as exc:
        raise DeclarationError(
            f"setting {name} = {value!r} is not a {kind.__name__}",
            file=where,
            expected={int: "a whole number", float: "a number"}.get(kind, "text"),
        ) from exc


def load_settings(root: Path, *, environ: dict | None = None) -> Settings:
    """The settings of the workspace at ``root``: its ``sapat.toml`` over the defaults,
    the environment over both."""
    root = Path(root)
    path = root / WORKSPACE_FILE
    data: dict = {}
    if path.exists():
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8-sig"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise DeclarationError(
                f"the settings file is not valid TOML: {exc}", file=str(path)
            ) from exc
    values: dict = {}
    stats: dict = {}
    for section, body in data.items():
        if not isinstance(body, dict):
            raise DeclarationError(f"{section} = … must be a [section]", file=str(path))
        for key, value in body.items():
            if (section, key) not in _KEYS:
                known = ", ".join(f"{s}.{k}" for s, k in _KEYS)
                raise DeclarationError(
                    f"unknown setting {section}.{key}", file=str(path), expected=f"one of {known}"
                )
            attr, kind = _KEYS[(section, key)]
            target, attr = (stats, attr[6:]) if attr.startswith("stats.") else (values, attr)
            target[attr] = _convert(value, kind, f"{section}.{key}", str(path))
    env = os.environ if environ is None else environ
    from_env = []
    for var, key in _ENV.items():
        if env.get(var):
            attr, kind = _KEYS[key]
            from_env.append((attr.removeprefix("stats."), var))
            target, attr = (stats, attr[6:]) if attr.startswith("stats.") else (values, attr)
            target[attr] = _convert(env[var], kind, var, "the environment")
    db = values.get("database")
    if db is not None and not db.is_absolute():
        values["database"] = root / db
    out = Settings(
        root=root,
        stats=Statistics(**stats),
        source=path if path.exists() else None,
        from_env=tuple(from_env),
        **values,
    )
    out.check()
    return out


def find_workspace(explicit: Path | str | None = None, start: Path | None = None) -> Path:
    """The workspace folder: ``explicit`` (``--workspace``), else ``SAPAT_WORKSPACE``, else
    the nearest folder holding ``sapat.toml`` from ``start`` (the current folder) upwards,
    as git finds a repository.

    Raises
    ------
    DeclarationError
        When there is none, saying how to make one.
    """
    given = explicit or os.environ.get("SAPAT_WORKSPACE")
    if given:
        root = Path(given).expanduser()
        if not (root / WORKSPACE_FILE).is_file():
            raise DeclarationError(
                f"{root} is not a Sapat workspace (it has no {WORKSPACE_FILE})",
                expected=f"a folder made by `sapat init {root}`",
            )
        return root.resolve()
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / WORKSPACE_FILE).is_file():
            return folder
    raise DeclarationError(
        f"no Sapat workspace here: neither {here} nor a folder above it holds {WORKSPACE_FILE}",
        expected="`sapat init FOLDER --example batsu` to make one, then run commands inside it "
        "(or pass --workspace FOLDER, or set SAPAT_WORKSPACE)",
    )
