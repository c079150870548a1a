"""The ``sapat`` command."""

from pipeline.cli.main import app, entry, run

__all__ = ["app", "entry", "run"]
