"""No command ever answers with a Python traceback: every subcommand is driven with generated
arguments (unknown names, negative and huge numbers, missing folders, malformed waves, odd
languages, files that are not exports) against a real workspace with a database."""

from __future__ import annotations

import os
import time

import pytest
import typer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.ingest import ingest_file
from pipeline.ingest.pseudonym import load_key
from pipeline.instruments import example_catalog
from pipeline.registry import example_registry
from pipeline.store import Store
from pipeline.synth import synthesize
from pipeline.workspace import init_workspace

runner = CliRunner()
#: Commands left out: they run whole jobs (minutes) whatever the arguments.
SLOW = {("demo",), ("rebuild",), ("serve",)}
TEXTS = ["parents", "xx", "", " ", "ky", "ru", "en", "faculty", "programme", "teacher",
         "se_overall", "teaching", "student_experience", "2024-2025", "2024-2026", "2024",
         "1900-1901", "abc-defg", "Факультет", "P-UNKNOWN", "F-NHP", "--", "-1", "0", "1e9",
         "../../etc/passwd", "a" * 300, "holm", "bh", "wilson", "bayes", "csv", "json",
         "table", "xlsx", "exclude", "flag", "off", "programme=P-KKH-ENG-B", "unit=", "=x",
         "x=y"]  # fmt: skip
NUMBERS = ["-1", "0", "1", "0.5", "1.5", "-0.5", "nan", "inf", "99999999999", "3", "0.9"]
#: Options whose valid values start whole jobs (a recompute under other settings, a
#: synthetic university): drawn from wrong values and tiny ones only, to keep the run short
QUICK = {"confidence": ["-1", "0", "1", "1.5", "nan", "inf", "x"],
         "ci_method": ["bayes", "", "WILSON", "svy"], "adjust": ["bonferroni", "", "HOLM"],
         "scale": ["-1", "0", "nan", "x", "0.0001"], "rows": ["-1", "0", "x"],
         "seed": ["-1", "x", "1e99"]}  # fmt: skip


def _commands():
    root = typer.main.get_command(app)
    out = []

    def walk(cmd, prefix):
        if hasattr(cmd, "commands"):  # a group (typer's own click)
            for name, sub in cmd.commands.items():
                walk(sub, (*prefix, name))
        elif prefix not in SLOW:
            out.append((prefix, cmd))

    walk(root, ())
    return out


COMMANDS = _commands()


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz")
    ws = init_workspace(root / "ws", "batsu")
    mp = pytest.MonkeyPatch()
    mp.setenv("SAPAT_WORKSPACE", str(ws))
    mp.setenv("SAPAT_KEY_FILE", str(root / "key"))
    mp.chdir(root)
    truth = synthesize(root / "ex", example_registry(), example_catalog(), scale=0.05, seed=3,
                       waves=["2024-2025", "2025-2026"], instruments=["employer"])  # fmt: skip
    files = [root / "ex" / f["file"] for f in truth["files"]]
    key = load_key()
    with Store(ws / "data" / "processed" / "sapat.duckdb", raw_dir=ws / "data" / "raw") as s:
        for f in files:
            ingest_file(f, s, example_catalog(), example_registry(), key=key)
    assert runner.invoke(app, ["indicators"]).exit_code == 0
    (root / "notes.txt").write_text("not a survey export", "utf-8")
    (root / "folder").mkdir()
    paths = [str(files[0]), str(root / "notes.txt"), str(root / "folder"),
             str(root / "missing" / "x.csv"), str(root / "out.csv"), str(root / "out.json"),
             str(root / "out.xlsx"), str(root / "missing-folder" / "x.csv"),
             str(root / "new-workspace"), str(ws)]  # fmt: skip
    out = {"paths": paths, "lines": 0, "seconds": 0.0}
    yield out
    mp.undo()
    by = {k: (len(v), sum(v)) for k, v in out.get("by", {}).items()}
    print(
        f"\n{out['lines']} command lines in {out['seconds']:.1f} s, 0 tracebacks; slowest: "
        + ", ".join(
            f"{k} {n}x {s:.1f}s" for k, (n, s) in sorted(by.items(), key=lambda kv: -kv[1][1])[:6]
        )
    )


def _value(data, param, paths: list[str]) -> str:
    kind = type(getattr(param, "type", None)).__name__.lower()
    if getattr(param, "is_flag", False) or "bool" in kind:
        return ""
    if param.name in QUICK:
        return data.draw(st.sampled_from(QUICK[param.name]))
    if "path" in kind or param.name in ("out", "db", "mapping", "files", "folder", "out_dir",
                                        "export", "parquet", "workspace_dir"):  # fmt: skip
        return data.draw(st.sampled_from(paths + TEXTS[:6]))
    if "int" in kind or "float" in kind:
        return data.draw(st.sampled_from(NUMBERS))
    return data.draw(st.sampled_from(TEXTS + paths[:2]))


@pytest.mark.slow
@settings(
    max_examples=int(os.environ.get("SAPAT_FUZZ_LINES", "2000")),
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_generated_command_lines_never_give_a_traceback(world, data):
    path, cmd = data.draw(st.sampled_from(COMMANDS))
    args = list(path)
    for param in cmd.params:
        if param.name in ("help",):
            continue
        if getattr(param, "param_type_name", "") == "argument":
            n = 1 if param.nargs == 1 else data.draw(st.integers(0, 2))
            if data.draw(st.integers(0, 9)) == 0:
                n = 0  # an argument left out
            args += [_value(data, param, world["paths"]) for _ in range(n)]
        elif param.name == "recompute_all":
            continue  # --all recomputes everything: minutes over a run, no new answer
        elif data.draw(st.booleans()):
            flag = data.draw(st.sampled_from(param.opts))
            value = _value(data, param, world["paths"])
            args += [flag] if getattr(param, "is_flag", False) else [flag, value]
    if path == ("synth",) and "--scale" not in args:  # a whole university takes seconds
        args += ["--scale", "0.001", "--instrument", "employer", "--years", "2025-2026"]
    t0 = time.perf_counter()
    result = runner.invoke(app, args)
    took = time.perf_counter() - t0
    world["seconds"] += took
    world["lines"] += 1
    world.setdefault("by", {}).setdefault(" ".join(path), []).append(took)
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"sapat {' '.join(args)}\n{result.output}\n{result.exception!r}"
    )
    assert "Traceback" not in result.output, f"sapat {' '.join(args)}\n{result.output}"
    assert result.exit_code in (0, 1, 2), (args, result.exit_code, result.output)
