"""Every shell example in docs/*.md and README.md runs, through the real `sapat` command.

The fenced blocks labelled ``bash``, ``sh``, ``shell`` or ``console`` (and unlabelled blocks
made only of ``sapat`` lines) are read line by line: comment lines are skipped, ``\\``
continues a line, ``$ `` marks a command in a ``console`` block (other lines there are
output). Each ``sapat …`` line (or ``.venv/bin/sapat …``) is run in-process through
``pipeline.cli.run``, split with :func:`shlex.split` and with ``*`` patterns expanded as the
shell would, in ONE workspace prepared once for the session: the BatSU example, synthetic
exports at scale 0.05 loaded and computed, and the files the docs name (``answers.xlsx``,
``course-eval.csv``, ``graduates.csv`` …) made from synthetic exports of the right kind. A
YAML block whose first line is a ``# path.yaml`` comment is written to that path first, so the
mapping files the docs show are the ones the commands use.

Each example must end with exit code 0, unless its line ends with ``# exit N`` (an example of a
refusal). A line ending with ``# not run in tests: REASON`` is counted and printed, not run.
Other commands (``bash scripts/setup``, ``cd``, ``python -m …``) are counted and skipped.

The examples of one page run in the page's order, as a reader would type them: running one
alone (``-k``) first runs the ones above it on the same page. Each example is one test named
``file:line``, so a failure names the line of the doc to look at.
"""

from __future__ import annotations

import contextlib
import csv
import glob
import io
import os
import random
import re
import shlex
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pytest
import typer

ROOT = Path(__file__).resolve().parents[1]
DOC_FILES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
SHELL_LANGUAGES = {"bash", "sh", "shell", "console"}
SAPAT_PROGRAMS = {"sapat", ".venv/bin/sapat"}
#: sapat examples in the docs when this test was written: fewer means examples were lost
MIN_SAPAT_EXAMPLES = 34
#: at most this many examples may be marked "not run in tests" (a 1.6-million-row synth,
#: and `sapat serve`, which runs until stopped)
MAX_NOT_RUN = 2
EXIT_MARK = re.compile(r"^exit (\d+)\b")
NOT_RUN_MARK = re.compile(r"^not run in tests:\s*(\S.*)$")
FENCE = re.compile(r"^(```+|~~~+)\s*([\w+-]*)")
SHELL_OPERATORS = {"&&", "||", "|", ";", ">", ">>", "&"}
#: ``sapat … < FILE`` (a password from a file) is run with FILE as standard input


# ------------------------------------------------------------------ reading the docs
@dataclass(frozen=True)
class Example:
    """One command line of a fenced block."""

    file: str  # relative to the repository
    line: int  # 1-based line of the doc where the command starts
    text: str  # the command as written (continuations joined), without its comment
    args: tuple[str, ...] | None  # the arguments after `sapat`; None: not a sapat command
    exit_code: int = 0
    not_run: str | None = None  # the reason, for an example that cannot run in a test

    @property
    def id(self) -> str:
        return f"{self.file}:{self.line}"


def split_comment(line: str) -> tuple[str, str]:
    """(code, comment) of a shell line: the comment starts at a ``#`` that begins a word
    outside quotes."""
    quote = None
    for i, ch in enumerate(line):
        if quote:
            if ch == quote:
                quote = None
            elif ch == "\\" and quote == '"':
                continue
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i].rstrip(), line[i + 1 :].strip()
    return line.rstrip(), ""


def fenced_blocks(text: str):
    """(language, [(line number, line)]) of each fenced block of a markdown text."""
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        fence, lang = m.group(1), m.group(2).lower()
        body = []
        i += 1
        while i < len(lines) and not lines[i].startswith(fence):
            body.append((i + 1, lines[i]))
            i += 1
        yield lang, body
        i += 1


def _is_sapat_block(body) -> bool:
    code = [ln.strip() for _, ln in body if ln.strip() and not ln.strip().startswith("#")]
    return bool(code) and all(c.removeprefix("$ ").split(" ", 1)[0] in SAPAT_PROGRAMS for c in code)


def command_lines(lang: str, body):
    """(line number, command text) of a shell block: comment lines skipped, continuations
    joined, ``$`` prompts of a console block taken off (its other lines are output)."""
    pending: list[str] = []
    start = 0
    for number, raw in body:
        line = raw.rstrip()
        if not pending:
            stripped = line.strip()
            if lang == "console":
                if not stripped.startswith("$ "):
                    continue
                stripped = stripped[2:].strip()
            if not stripped or stripped.startswith("#"):
                continue
            start, line = number, stripped
        code, _ = split_comment(line)
        if code.endswith("\\"):
            pending.append(code[:-1].strip())
            continue
        pending.append(line.strip())
        yield start, " ".join(pending)
        pending = []
    if pending:
        yield start, " ".join(pending)


def examples_of(text: str, file: str) -> list[Example]:
    """Every command line of the shell blocks of one markdown text."""
    out = []
    for lang, body in fenced_blocks(text):
        if lang not in SHELL_LANGUAGES and not (lang == "" and _is_sapat_block(body)):
            continue
        for number, command in command_lines(lang, body):
            code, comment = split_comment(command)
            words = shlex.split(code)
            if not words:
                continue
            exit_mark, not_run = EXIT_MARK.match(comment), NOT_RUN_MARK.match(comment)
            is_sapat = words[0] in SAPAT_PROGRAMS and not SHELL_OPERATORS & set(words)
            out.append(
                Example(
                    file=file,
                    line=number,
                    text=code,
                    args=tuple(words[1:]) if is_sapat else None,
                    exit_code=int(exit_mark.group(1)) if exit_mark else 0,
                    not_run=not_run.group(1) if not_run else None,
                )
            )
    return out


def _relative(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


EXAMPLES = [e for p in DOC_FILES for e in examples_of(p.read_text(encoding="utf-8"), _relative(p))]
SAPAT_EXAMPLES = [e for e in EXAMPLES if e.args is not None]
RUNNABLE = [e for e in SAPAT_EXAMPLES if e.not_run is None]
NOT_RUN = [e for e in SAPAT_EXAMPLES if e.not_run is not None]
OTHER_COMMANDS = [e for e in EXAMPLES if e.args is None]


def yaml_files_shown() -> dict[str, str]:
    """{path: text} of the YAML blocks whose first line names their file (``# x.yaml``)."""
    out = {}
    for p in DOC_FILES:
        for lang, body in fenced_blocks(p.read_text(encoding="utf-8")):
            if lang not in ("yaml", "yml") or not body:
                continue
            m = re.match(r"^#\s*(\S+\.ya?ml)\b", body[0][1].strip())
            if m:
                out[m.group(1)] = "\n".join(line for _, line in body) + "\n"
    return out


# ------------------------------------------------------------------ the fast checks
def test_the_parser_reads_prompts_continuations_and_marks():
    text = "\n".join(
        [
            "```console",
            "$ sapat loads",
            "│ output │",
            "```",
            "```sh",
            "# a comment line",
            "sapat ingest a.csv \\",
            "    --wave 2025-2026   # exit 1: wrong wave",
            "cd somewhere",
            'sapat unload 7 --why "a # inside quotes"',
            "sapat serve   # not run in tests: a server",
            "```",
            "```",
            "sapat org show",
            "```",
            "```",
            "code,name",
            "```",
        ]
    )
    got = [(e.line, e.args, e.exit_code, e.not_run) for e in examples_of(text, "x.md")]
    assert got == [
        (2, ("loads",), 0, None),
        (7, ("ingest", "a.csv", "--wave", "2025-2026"), 1, None),
        (9, None, 0, None),
        (10, ("unload", "7", "--why", "a # inside quotes"), 0, None),
        (11, ("serve",), 0, "a server"),
        (14, ("org", "show"), 0, None),
    ]


def test_the_docs_hold_the_sapat_examples_they_held_when_this_test_was_written(capsys):
    assert len(SAPAT_EXAMPLES) >= MIN_SAPAT_EXAMPLES, [e.id for e in SAPAT_EXAMPLES]
    assert len(NOT_RUN) <= MAX_NOT_RUN, [f"{e.id}: {e.not_run}" for e in NOT_RUN]
    with capsys.disabled():
        print(
            f"\n{len(SAPAT_EXAMPLES)} sapat examples in the docs: {len(RUNNABLE)} run, "
            f"{len(NOT_RUN)} marked not run ("
            + "; ".join(f"{e.id}: {e.not_run}" for e in NOT_RUN)
            + f"); {len(OTHER_COMMANDS)} other commands skipped ("
            + ", ".join(e.id for e in OTHER_COMMANDS)
            + ")"
        )


def test_every_sapat_line_is_one_plain_command():
    """A sapat line joined to another command (&&, |, ;) would be skipped silently."""
    mixed = [
        e.id
        for e in OTHER_COMMANDS
        if any(w.split("/")[-1] == "sapat" for w in shlex.split(e.text)[:1])
    ]
    assert not mixed, f"split these into one command per line: {mixed}"


def _commands() -> dict[str, set[str] | None]:
    """{command: its subcommands, or None for a plain command} of `sapat --help`."""
    from pipeline.cli import app

    group = typer.main.get_command(app)
    return {
        name: set(cmd.commands) if hasattr(cmd, "commands") else None
        for name, cmd in group.commands.items()
    }


MENTION = re.compile(r"(?<![\w.-])sapat ([a-z][\w-]*)(?: ([a-z][\w-]*))?")


def _mentions():
    import nbformat

    texts = [(_relative(p), p.read_text(encoding="utf-8")) for p in DOC_FILES]
    for nb_path in NOTEBOOKS:
        nb = nbformat.read(nb_path, as_version=4)
        texts.append(
            (_relative(nb_path), "\n".join(c.source for c in nb.cells if c.cell_type == "markdown"))
        )
    for name, text in texts:
        for number, line in enumerate(text.splitlines(), start=1):
            for m in MENTION.finditer(line):
                yield f"{name}:{number}", m.group(1), m.group(2)


def test_every_sapat_command_the_docs_mention_exists():
    commands = _commands()
    wrong = []
    for where, first, second in _mentions():
        if first not in commands:
            wrong.append(f"{where}: sapat {first}")
        elif commands[first] is not None and second and second not in commands[first]:
            wrong.append(f"{where}: sapat {first} {second}")
    assert not wrong, "commands the docs name but `sapat --help` does not list: " + ", ".join(wrong)


def test_the_mention_check_sees_the_commands():
    found = {first for _, first, _ in _mentions()}
    assert {"ingest", "indicators", "changes", "instruments", "quarantine"} <= found


# ------------------------------------------------------------------ the workspace
#: the environment every example runs in: no workspace or database named, no overrides
CLEARED = ("SAPAT_WORKSPACE", "SAPAT_DB", "SAPAT_MIN_N", "SAPAT_CONFIDENCE", "SAPAT_LANG")


@contextlib.contextmanager
def _environment(cwd: Path):
    """The current folder ``cwd`` and the example's environment, put back afterwards. The
    pseudonymisation key is a throw-away one beside the workspace."""
    saved = {k: os.environ.get(k) for k in (*CLEARED, "SAPAT_DUPLICATES", "SAPAT_KEY_FILE")}
    before = Path.cwd()
    try:
        for k in (*CLEARED, "SAPAT_DUPLICATES"):
            os.environ.pop(k, None)
        os.environ["SAPAT_KEY_FILE"] = str(cwd.parent / "keys" / "pseudonym.key")
        os.chdir(cwd)
        yield
    finally:
        os.chdir(before)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _run(args, cwd: Path) -> tuple[int, str]:
    """Run `sapat ARGS` in-process in the workspace ``cwd``, with ``*`` patterns expanded as a
    shell does; (exit code, everything printed)."""
    from pipeline.cli import run

    args = list(args)
    stdin = None
    if "<" in args:  # sapat … < FILE: the file is the command's standard input
        at = args.index("<")
        stdin = (cwd / args[at + 1]).read_text("utf-8")
        del args[at : at + 2]
    expanded = []
    for a in args:
        matches = sorted(glob.glob(a, root_dir=cwd)) if any(ch in a for ch in "*?[") else []
        expanded.extend(matches or [a])
    out = io.StringIO()
    old_stdin = sys.stdin
    with (
        _environment(cwd),
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(out),
    ):
        sys.stdin = io.StringIO(stdin) if stdin is not None else old_stdin
        try:
            code = run(expanded)
        finally:
            sys.stdin = old_stdin
    return code, out.getvalue()


def _sapat(cwd: Path, *args: str) -> str:
    code, out = _run([str(a) for a in args], cwd)
    assert code == 0, f"preparing the workspace: sapat {' '.join(args)} exited {code}\n{out}"
    return out


def _side_export(ws, tmp: Path, instrument: str, dialect: str, seed: int) -> Path:
    """One synthetic export of 2025-2026 in one format, drawn apart from the workspace's."""
    from pipeline.synth import synthesize

    out = tmp / f"{instrument}-{dialect}-{seed}"
    synthesize(
        out,
        ws.registry,
        ws.catalog,
        waves=["2025-2026"],
        seed=seed,
        scale=0.05,
        instruments=[instrument],
        dialect=dialect,
    )
    (path,) = (p for p in (out / "2025-2026").iterdir() if p.suffix in (".csv", ".xlsx"))
    return path


def _read_csv(path: Path, encoding: str, delimiter: str) -> list[list[str]]:
    with path.open(encoding=encoding, newline="") as fh:
        return list(csv.reader(fh, delimiter=delimiter))


def _write_csv(path: Path, rows, encoding="utf-8", delimiter=",") -> None:
    with path.open("w", encoding=encoding, newline="") as fh:
        csv.writer(fh, delimiter=delimiter).writerows(rows)


def _course_eval(ws, tmp: Path, dest: Path) -> None:
    """course-eval.csv: a teaching evaluation of one programme, without a programme column
    (as a file collected by one programme arrives)."""
    src = _side_export(ws, tmp, "teaching_evaluation", "plain_cp1251", seed=7)
    header, *rows = _read_csv(src, "cp1251", ";")
    k = header.index("programme")
    keep = [r[:k] + r[k + 1 :] for r in rows if r[k] == "P-KKH-ENG-B"]
    assert len(keep) >= 10, "too few rows of P-KKH-ENG-B in the synthetic teaching evaluation"
    _write_csv(dest, [header[:k] + header[k + 1 :], *keep], "cp1251", ";")


def _staff_long(ws, tmp: Path, dest: Path) -> None:
    """staff-2025.csv: the staff survey exported one row per answer, as the mapping file of
    docs/own-questionnaire.md describes it (RespondentID, Department, Category, Question,
    Response)."""
    src = _side_export(ws, tmp, "staff", "plain_cp1251", seed=11)
    header, *rows = _read_csv(src, "cp1251", ";")
    items = [c for c in header if c.startswith("st_") and c != "st_comment"]
    long = [["RespondentID", "Department", "Category", "Question", "Response"]]
    for i, r in enumerate(rows, start=1):
        row = dict(zip(header, r, strict=True))
        who = [f"R{i:04d}", row["unit"], row["staff_category"]]
        long += [[*who, q, row[q]] for q in items if row[q]]
    _write_csv(dest, long)


def _course_feedback(ws, dest: Path) -> None:
    """answers-2025.csv: an export of a questionnaire of the office's own (four-point
    agreement, a Faculty column naming BatSU's faculties as the form listed them)."""
    rng = random.Random(2025)
    faculties = list(ws.registry.faculties["name_en"])
    scale = ["Strongly disagree", "Disagree", "Agree", "Strongly agree"]
    rows = [["Timestamp", "Faculty", "Q1", "Q2", "Q3", "Q4", "Q5", "Q6"]]
    for i in range(240):
        lean = rng.choice([0, 1, 1, 2, 2, 3])
        answers = [scale[min(3, max(0, lean + rng.choice([-1, 0, 0, 1])))] for _ in range(6)]
        when = f"2025-11-{1 + i % 28:02d} {9 + i % 8:02d}:{i % 60:02d}:{(7 * i) % 60:02d}"
        rows.append([when, faculties[i % len(faculties)], *answers])
    _write_csv(dest, rows)


def prepare_workspace(tmp: Path) -> Path:
    """The one workspace every doc example runs in (see the module's docstring), in ``tmp``."""
    from pipeline.workspace import Workspace, init_workspace

    root = init_workspace(tmp / "batsu", "batsu")
    ws = Workspace.at(root)
    _sapat(root, "synth", "exports", "--scale", "0.05")
    side = tmp / "side"
    shutil.copy(_side_export(ws, side, "staff", "ms_forms", seed=7), root / "answers.xlsx")
    shutil.copy(_side_export(ws, side, "graduate", "limesurvey", seed=7), root / "graduates.csv")
    _course_eval(ws, side, root / "course-eval.csv")
    _staff_long(ws, side, root / "staff-2025.csv")
    _course_feedback(ws, root / "answers-2025.csv")
    (root / "password.txt").write_text("a long passphrase for the docs\n", encoding="utf-8")
    for name, text in yaml_files_shown().items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text, encoding="utf-8")
    # load 7 is graduates.csv under the wrong academic year, as docs/ingesting.md's
    # `sapat unload 7 --why "loaded under the wrong academic year"` has it
    exports = sorted(p.relative_to(root).as_posix() for p in (root / "exports").rglob("*"))
    exports = [p for p in exports if p.endswith((".csv", ".xlsx"))]
    _sapat(root, "ingest", *exports[:6])
    _sapat(root, "ingest", "graduates.csv", "--wave", "2024-2025", "--accept-dates")
    _sapat(root, "ingest", *exports[6:])
    _sapat(root, "indicators")
    con = duckdb.connect(str(ws.settings.db_path), read_only=True)
    try:
        seventh = con.execute("SELECT file_name, wave FROM sys_loads WHERE load_id = 7").fetchall()
    finally:
        con.close()
    assert seventh == [("graduates.csv", "2024-2025")], seventh
    return root


@pytest.fixture(scope="session")
def docs_workspace(tmp_path_factory) -> Path:
    return prepare_workspace(tmp_path_factory.mktemp("docs-examples"))


class Runner:
    """Runs the examples of each page in the page's order, each once."""

    def __init__(self, root: Path):
        self.root = root
        self.results: dict[str, tuple[int, str]] = {}

    def result(self, example: Example) -> tuple[int, str]:
        page = [e for e in RUNNABLE if e.file == example.file]
        for e in page[: page.index(example) + 1]:
            if e.id not in self.results:
                self.results[e.id] = _run(e.args, self.root)
        return self.results[example.id]


@pytest.fixture(scope="session")
def docs_runner(docs_workspace) -> Runner:
    return Runner(docs_workspace)


# ------------------------------------------------------------------ the examples
@pytest.mark.slow
@pytest.mark.parametrize("example", RUNNABLE, ids=lambda e: e.id)
def test_doc_example_runs(example: Example, docs_runner: Runner):
    code, out = docs_runner.result(example)
    assert "Traceback" not in out, f"{example.id}: `{example.text}`\n{out}"
    assert code == example.exit_code, (
        f"{example.id}: `{example.text}` ended with exit code {code}, the doc expects "
        f"{example.exit_code}"
        + ("" if example.exit_code else " (mark a refusal `# exit N`)")
        + f"\n{out}"
    )


@pytest.mark.slow
def test_every_doc_example_ran(docs_runner: Runner, capsys):
    for example in RUNNABLE:
        docs_runner.result(example)
    assert len(docs_runner.results) >= MIN_SAPAT_EXAMPLES - MAX_NOT_RUN
    assert set(docs_runner.results) == {e.id for e in RUNNABLE}
    with capsys.disabled():
        print(
            f"\nran {len(docs_runner.results)} sapat examples of the docs; not run: "
            + ("; ".join(f"{e.id} ({e.not_run})" for e in NOT_RUN) or "none")
            + f"; {len(OTHER_COMMANDS)} other commands skipped"
        )
