"""The `sapat` command: plain help everywhere, clear errors, no tracebacks."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from pipeline.cli import app

runner = CliRunner()


def _commands(group, prefix=()):
    info = group.registered_commands
    for cmd in info:
        name = cmd.name or cmd.callback.__name__
        yield (*prefix, name)
    for sub in group.registered_groups:
        yield from _commands(sub.typer_instance, (*prefix, sub.name))


COMMANDS = list(_commands(app))


def test_top_level_help_lists_commands():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for name in ("synth", "instruments", "org", "demo"):
        assert name in result.output


@pytest.mark.parametrize("cmd", COMMANDS, ids=" ".join)
def test_every_subcommand_has_plain_help(cmd):
    result = runner.invoke(app, [*cmd, "--help"])
    assert result.exit_code == 0, result.output
    text = result.output.split("Usage:")[-1]
    assert len(text.strip().splitlines()) > 2


def test_synth_rejects_a_bad_wave_with_a_clear_message(tmp_path):
    result = runner.invoke(app, ["synth", str(tmp_path), "--years", "2024-2026"])
    assert result.exit_code == 2
    assert "2024-2026" in result.output and "YYYY-YYYY" in result.output
    assert "Traceback" not in result.output


def test_synth_rejects_unknown_format_and_instrument(tmp_path):
    r1 = runner.invoke(app, ["synth", str(tmp_path), "--format", "sas"])
    r2 = runner.invoke(app, ["synth", str(tmp_path), "--instrument", "parents"])
    assert r1.exit_code == 2 and "google_forms" in r1.output
    assert r2.exit_code == 2 and "student_experience" in r2.output


def test_synth_writes_files_and_summary(tmp_path):
    result = runner.invoke(
        app,
        [
            "synth",
            str(tmp_path),
            "--years",
            "2025-2026",
            "--scale",
            "0.1",
            "--instrument",
            "employer",
        ],
    )
    assert result.exit_code == 0, result.output
    truth = json.loads((tmp_path / "truth.json").read_text("utf-8"))
    assert truth["files"] and all((tmp_path / f["file"]).exists() for f in truth["files"])
    assert "rows in" in result.output


def test_instruments_commands(batsu_workspace):
    assert runner.invoke(app, ["instruments", "check"]).exit_code == 0
    listed = runner.invoke(app, ["instruments", "list", "--json"])
    rows = json.loads(listed.output)
    assert {r["instrument"] for r in rows} >= {"student_experience", "staff"}
    shown = runner.invoke(app, ["instruments", "show", "staff", "--lang", "ru"])
    assert shown.exit_code == 0 and "st_overall" in shown.output
    bad = runner.invoke(app, ["instruments", "show", "parents"])
    assert bad.exit_code == 1 and "unknown questionnaire" in bad.output


def test_org_commands(batsu_workspace):
    assert runner.invoke(app, ["org", "check"]).exit_code == 0
    shown = runner.invoke(app, ["org", "show"])
    assert shown.exit_code == 0 and "BatSU" in shown.output
