"""Paths, thresholds and defaults: one plain place, overridable from the environment.

Functions elsewhere receive these values as arguments; only the CLI and the
dashboard's entry point read this module.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
PROJECT_DIR = PACKAGE_DIR.parent
EXAMPLES_DIR = PACKAGE_DIR / "examples"
INSTRUMENTS_DIR = EXAMPLES_DIR / "batsu" / "instruments"
DECLARATIONS_DIR = EXAMPLES_DIR / "batsu" / "declarations"

LANGUAGES = ("ky", "ru", "en")
LANGUAGE_NAMES = {"ky": "Kyrgyz (ky)", "ru": "Russian (ru)", "en": "English (en)"}

#: Never show a statistic resting on fewer respondents than this.
MIN_N_FLOOR = 3


def _env_path(name: str, default: Path) -> Path:
    value = os.environ.get(name)
    return Path(value).expanduser() if value else default


@dataclass(frozen=True)
class Settings:
    """Where things live and the thresholds in force."""

    data_dir: Path = field(default_factory=lambda: _env_path("SAPAT_DATA", PROJECT_DIR / "data"))
    instruments_dir: Path = field(
        default_factory=lambda: _env_path("SAPAT_INSTRUMENTS", INSTRUMENTS_DIR)
    )
    declarations_dir: Path = field(
        default_factory=lambda: _env_path("SAPAT_DECLARATIONS", DECLARATIONS_DIR)
    )
    min_n: int = field(default_factory=lambda: int(os.environ.get("SAPAT_MIN_N", "5")))
    confidence: float = field(
        default_factory=lambda: float(os.environ.get("SAPAT_CONFIDENCE", "0.95"))
    )

    @property
    def raw_dir(self) -> Path:
        return self.data_dir / "raw"

    @property
    def processed_dir(self) -> Path:
        return self.data_dir / "processed"

    @property
    def db_path(self) -> Path:
        return _env_path("SAPAT_DB", self.processed_dir / "sapat.duckdb")

    def __post_init__(self) -> None:
        if self.min_n < MIN_N_FLOOR:
            raise ValueError(f"min_n must be at least {MIN_N_FLOOR}, got {self.min_n}")


def settings() -> Settings:
    return Settings()
