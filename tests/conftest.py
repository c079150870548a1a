"""Shared fixtures for the test suite."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# pytest-xdist's workers start with COLUMNS=80 and LINES=24 set; the CLI's consoles take a
# width found in the environment at import as fixed, which a serial run never does. Tests
# that need a width give it to the command they run.
if os.environ.get("PYTEST_XDIST_WORKER"):
    for _var in ("COLUMNS", "LINES"):
        os.environ.pop(_var, None)

TESTS_DIR = Path(__file__).resolve().parent
DATA_DIR = TESTS_DIR / "data"
REFERENCE_DIR = DATA_DIR / "reference"


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    """The R `survey` reference kit (CC0), copied from shared/reference."""
    return REFERENCE_DIR


@pytest.fixture
def batsu_workspace(tmp_path, monkeypatch) -> Path:
    """A fresh copy of the BatSU example workspace, made the commands' workspace
    (SAPAT_WORKSPACE), with its own pseudonymisation key."""
    from pipeline.workspace import init_workspace

    root = init_workspace(tmp_path / "ws", "batsu")
    monkeypatch.setenv("SAPAT_WORKSPACE", str(root))
    monkeypatch.setenv("SAPAT_KEY_FILE", str(tmp_path / "keys" / "pseudonym.key"))
    for var in ("SAPAT_DB", "SAPAT_MIN_N", "SAPAT_CONFIDENCE", "SAPAT_LANG", "SAPAT_DUPLICATES"):
        monkeypatch.delenv(var, raising=False)
    return root


def pytest_configure(config):
    """The quick run (``-m "not slow"``) draws fewer property-test examples; the full run
    (CI) draws them all. Tests read ``examples(n)``."""
    import os

    if "not slow" in (config.option.markexpr or ""):
        os.environ["SAPAT_QUICK_RUN"] = "1"


def examples(full: int, quick: int | None = None) -> int:
    """How many hypothesis examples a property test draws: ``full`` in the full run, a
    quarter (at least 10) in the quick one."""
    import os

    if os.environ.get("SAPAT_QUICK_RUN"):
        return quick if quick is not None else max(10, full // 4)
    return full
