"""Shared fixtures for the test suite."""

from __future__ import annotations

from pathlib import Path

import pytest

TESTS_DIR = Path(__file__).resolve().parent
DATA_DIR = TESTS_DIR / "data"
REFERENCE_DIR = DATA_DIR / "reference"


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    """The R `survey` reference kit (CC0), copied from shared/reference."""
    return REFERENCE_DIR
