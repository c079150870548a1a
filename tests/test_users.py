"""Dashboard accounts: one file of Argon2id hashes (never a password), roles that fit their
units, log-ins that do not tell which names exist, every change in the audit log."""

from __future__ import annotations

import json
import stat

import duckdb
import pytest
import typer
from argon2 import PasswordHasher
from typer.testing import CliRunner

import pipeline.cli.main as cli_main
from pipeline import users
from pipeline.cli.users import users_app
from pipeline.config import load_settings
from pipeline.errors import DeclarationError, UsageError
from pipeline.ingest.pseudonym import load_key
from pipeline.publish import Viewer, ViewerRole
from pipeline.store import verify_audit

runner = CliRunner()
PASSWORD = "correct horse battery"
OTHER = "staple-and-paperclip"

# the `sapat` command's callback (workspace option, fresh state) with `users` under it,
# as pipeline/cli/main.py registers it
root = typer.Typer(rich_markup_mode="markdown")
root.callback(invoke_without_command=True)(cli_main.main)
root.add_typer(users_app, name="users")


def sapat(*args: str, input: str | None = None):
    return runner.invoke(root, list(args), input=input)


@pytest.fixture
def ws(batsu_workspace, monkeypatch):
    monkeypatch.setenv("SAPAT_ACTOR", "office.tester")
    return batsu_workspace


@pytest.fixture
def settings(ws):
    return load_settings(ws)


def _audit(ws) -> list[tuple]:
    con = duckdb.connect(str(ws / "data" / "processed" / "sapat.duckdb"), read_only=True)
    try:
        return con.execute(
            "SELECT seq, at_utc, actor, action, object, outcome, prev_hash, hash "
            "FROM sys_audit ORDER BY seq"
        ).fetchall()
    finally:
        con.close()


def _says(result, *needles: str) -> bool:
    """Every needle is in the output, however the terminal wrapped it."""
    flat = "".join(result.output.split())
    return all("".join(n.split()) in flat for n in needles)


def _clean(result) -> None:
    """No traceback reached the user."""
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


# ------------------------------------------------------------------ the command
def test_add_list_disable_enable_passwd_round_trip(ws, settings):
    added = sapat(
        "users",
        "add",
        "aida.k",
        "--role",
        "dean",
        "--unit",
        "F-NHP",
        "--display-name",
        "Aida Kadyrova",
        input=f"{PASSWORD}\n{PASSWORD}\n",
    )
    assert added.exit_code == 0, added.output
    assert PASSWORD not in added.output
    rector = sapat("users", "add", "rector", "--role", "rector", input=f"{PASSWORD}\n" * 2)
    assert rector.exit_code == 0, rector.output

    listed = sapat("users", "list")
    assert listed.exit_code == 0
    assert _says(listed, "aida.k", "F-NHP", "rector")
    assert "argon2" not in listed.output

    assert users.authenticate(settings, "aida.k", PASSWORD) == Viewer(ViewerRole.DEAN, ("F-NHP",))
    assert sapat("users", "disable", "aida.k").exit_code == 0
    assert [u.disabled for u in users.list_users(settings)] == [True, False]
    assert users.authenticate(settings, "aida.k", PASSWORD) is None
    again = sapat("users", "disable", "aida.k")
    assert again.exit_code == 0 and _says(again, "already disabled")
    assert sapat("users", "enable", "aida.k").exit_code == 0
    assert users.authenticate(settings, "aida.k", PASSWORD) is not None

    changed = sapat("users", "passwd", "aida.k", input=f"{OTHER}\n{OTHER}\n")
    assert changed.exit_code == 0, changed.output
    assert users.authenticate(settings, "aida.k", PASSWORD) is None
    assert users.authenticate(settings, "aida.k", OTHER) == Viewer(ViewerRole.DEAN, ("F-NHP",))
    user = users.get_user(settings, "aida.k")
    assert user.display_name == "Aida Kadyrova" and user.changed_utc >= user.created_utc


def test_the_file_holds_argon2id_hashes_only_and_only_its_owner_reads_it(ws, settings):
    sapat("users", "add", "rector", "--role", "rector", input=f"{PASSWORD}\n" * 2)
    sapat("users", "passwd", "rector", input=f"{OTHER}\n" * 2)
    path = users.users_path(settings)
    assert path == ws / "data" / "users.json"
    text = path.read_text(encoding="utf-8")
    assert PASSWORD not in text and OTHER not in text
    [record] = json.loads(text)["users"]
    assert record["password_hash"].startswith("$argon2id$")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in path.parent.glob("*.tmp")] == []  # no temporary file left


def test_password_from_stdin_and_a_short_one_refused(ws, settings):
    ok = sapat(
        "users",
        "add",
        "ops.bot",
        "--role",
        "quality_office",
        "--password-stdin",
        input=PASSWORD + "\r\n",
    )
    assert ok.exit_code == 0, ok.output
    assert users.authenticate(settings, "ops.bot", PASSWORD) == Viewer(ViewerRole.QUALITY_OFFICE)

    short = sapat(
        "users", "add", "ops.two", "--role", "rector", "--password-stdin", input="tooshort\n"
    )
    assert short.exit_code == 2
    assert _says(short, "too short", "at least 10 characters")
    _clean(short)
    empty = sapat("users", "passwd", "ops.bot", "--password-stdin", input="")
    assert empty.exit_code == 2 and _says(empty, "standard input")
    assert [u.name for u in users.list_users(settings)] == ["ops.bot"]
    assert users.authenticate(settings, "ops.bot", PASSWORD) is not None


def test_the_password_is_never_a_command_line_argument(ws):
    result = sapat("users", "add", "rector", "--role", "rector", "--password", PASSWORD)
    assert result.exit_code == 2 and _says(result, "No such option")
    assert not (ws / "data" / "users.json").exists()


def test_roles_and_units_must_fit(ws, settings):
    dean = sapat("users", "add", "dean.one", "--role", "dean", input=f"{PASSWORD}\n" * 2)
    assert dean.exit_code == 2 and _says(dean, "needs at least one --unit")
    rector = sapat("users", "add", "rector", "--role", "rector", "--unit", "F-NHP")
    assert rector.exit_code == 2 and _says(rector, "give no --unit")
    role = sapat("users", "add", "dean.one", "--role", "deen", "--unit", "F-NHP")
    assert role.exit_code == 2 and _says(role, "did you mean dean")
    for r in (dean, rector, role):
        _clean(r)
        assert "Password" not in r.output  # refused before the password is asked for
    with pytest.raises(UsageError, match="needs at least one"):
        users.add_user(settings, "dean.one", ViewerRole.DEAN, [], PASSWORD)
    with pytest.raises(UsageError, match="sees every unit"):
        users.add_user(settings, "rector", "rector", ["F-NHP"], PASSWORD)
    assert users.list_users(settings) == []


def test_unknown_or_wrong_kind_of_unit_refused_with_a_suggestion(ws, settings):
    typo = sapat("users", "add", "dean.one", "--role", "dean", "--unit", "F-NHQ")
    assert typo.exit_code == 2
    assert _says(typo, "F-NHQ", "did you mean F-NHP")
    teacher = sapat("users", "add", "teach.one", "--role", "teacher", "--unit", "T00001")
    assert teacher.exit_code == 2 and _says(teacher, "did you mean T0001")
    programme = sapat("users", "add", "dean.one", "--role", "dean", "--unit", "P-NHP-ENG-B")
    assert programme.exit_code == 2
    assert _says(programme, "is a programme", "F-NHP")
    nested = sapat("users", "add", "dean.one", "--role", "dean", "--unit", "KKHPI-F-PED")
    assert nested.exit_code == 2 and _says(nested, "--unit KKHPI")
    leader = sapat(
        *("users", "add", "lead.one", "--role", "programme_leader", "--password-stdin"),
        *("--unit", "P-NHP-ENG-B", "--unit", "P-NHP-LAW-B"),
        input=PASSWORD + "\n",
    )
    assert leader.exit_code == 0, leader.output
    assert [u.name for u in users.list_users(settings)] == ["lead.one"]
    # the library with a membership test and codes to suggest from
    with pytest.raises(UsageError, match="did you mean F-NHP"):
        users.add_user(
            settings,
            "dean.two",
            "dean",
            ["F-NHQ"],
            PASSWORD,
            known_units={"F-NHP", "MAG"}.__contains__,
            unit_choices=["F-NHP", "MAG"],
        )


def test_names_are_checked_and_unique_whatever_the_case(ws, settings):
    users.add_user(settings, "Aida.K", "rector", [], PASSWORD)
    with pytest.raises(UsageError, match="already a user 'Aida.K'"):
        users.add_user(settings, "aida.k", "rector", [], PASSWORD)
    for bad in ("ab", "a b c", "x" * 65, "айда", "a/b/c"):
        with pytest.raises(UsageError, match="cannot be a log-in name"):
            users.add_user(settings, bad, "rector", [], PASSWORD)
    assert users.authenticate(settings, "AIDA.K", PASSWORD) == Viewer(ViewerRole.RECTOR)
    unknown = sapat("users", "disable", "aida.kk")
    assert unknown.exit_code == 2 and _says(unknown, "did you mean Aida.K")


def test_list_json_has_no_hash(ws):
    args = ("users", "add", "t.one", "--role", "teacher", "--unit", "T0001", "--password-stdin")
    assert sapat(*args, input=PASSWORD + "\n").exit_code == 0
    result = sapat("users", "list", "--json")
    assert result.exit_code == 0
    [row] = json.loads(result.stdout)
    assert row["name"] == "t.one" and row["units"] == ["T0001"] and row["disabled"] is False
    assert "password_hash" not in row
    assert "argon2" not in result.stdout and PASSWORD not in result.stdout
    assert json.loads(sapat("users", "list", "--json").stdout) == [row]


def test_every_change_is_in_the_audit_log_without_the_password(ws):
    sapat("users", "add", "aida.k", "--role", "dean", "--unit", "F-NHP", input=f"{PASSWORD}\n" * 2)
    sapat("users", "disable", "aida.k")
    sapat("users", "enable", "aida.k")
    sapat("users", "passwd", "aida.k", "--password-stdin", input=OTHER + "\n")
    sapat("users", "add", "short.one", "--role", "rector", "--password-stdin", input="short\n")
    log = _audit(ws)
    assert [(r[2], r[3], r[4]) for r in log] == [
        ("office.tester", "user add", "aida.k"),
        ("office.tester", "user disable", "aida.k"),
        ("office.tester", "user enable", "aida.k"),
        ("office.tester", "user password", "aida.k"),
    ]
    assert "dean" in log[0][5] and "F-NHP" in log[0][5]
    for row in log:
        text = " ".join(map(str, row))
        assert PASSWORD not in text and OTHER not in text and "argon2" not in text
    frame = duckdb.connect(str(ws / "data/processed/sapat.duckdb"), read_only=True).execute(
        "SELECT * FROM sys_audit ORDER BY seq"
    )
    assert verify_audit(frame.fetchdf(), load_key()) == []


def test_a_corrupt_file_is_a_clear_error(ws, settings):
    path = users.users_path(settings)
    path.write_text('{"format": 1, "users": [', encoding="utf-8")
    result = sapat("users", "list")
    assert result.exit_code == 1
    assert _says(result, "users.json", "damaged")
    _clean(result)
    with pytest.raises(DeclarationError, match="users.json"):
        users.authenticate(settings, "anyone", PASSWORD)
    added = sapat("users", "add", "rector", "--role", "rector", "--password-stdin", input=PASSWORD)
    assert added.exit_code == 1 and _says(added, "damaged")
    assert path.read_text(encoding="utf-8") == '{"format": 1, "users": ['  # left as found
    path.write_text(
        json.dumps({"format": 1, "users": [{"name": "rector", "role": "rector", "units": []}]}),
        encoding="utf-8",
    )
    with pytest.raises(DeclarationError, match="lacks"):
        users.list_users(settings)


# ------------------------------------------------------------------ logging in
def test_authenticate_right_wrong_disabled_unknown(ws, settings, monkeypatch):
    users.add_user(settings, "lead.one", "programme_leader", ["P-NHP-ENG-B"], PASSWORD)
    users.add_user(settings, "gone.one", "teacher", ["T0001"], PASSWORD)
    users.disable_user(settings, "gone.one")
    assert users.authenticate(settings, "lead.one", PASSWORD) == Viewer(
        ViewerRole.PROGRAMME_LEADER, ("P-NHP-ENG-B",)
    )
    assert users.authenticate(settings, "lead.one", PASSWORD.upper()) is None
    assert users.authenticate(settings, "gone.one", PASSWORD) is None
    assert users.authenticate(settings, "nobody", PASSWORD) is None
    assert users.authenticate(settings, "lead.one", None) is None  # type: ignore[arg-type]

    # an unknown name costs an Argon2 verification too (against a dummy hash)
    seen: list[str] = []
    real = PasswordHasher.verify
    monkeypatch.setattr(
        PasswordHasher, "verify", lambda self, h, p: seen.append(h) or real(self, h, p)
    )
    users.authenticate(settings, "nobody", PASSWORD)
    users.authenticate(settings, "gone.one", PASSWORD)
    users.authenticate(settings, "lead.one", "wrong password")
    assert len(seen) == 3 and all(h.startswith("$argon2id$") for h in seen)
    assert seen[0] == users._dummy_hash()


def test_viewer_of_a_session_follows_disabling(ws, settings):
    users.add_user(settings, "dean.one", "dean", ["F-NHP", "MAG"], PASSWORD)
    assert users.viewer_of(settings, "dean.one") == Viewer(ViewerRole.DEAN, ("F-NHP", "MAG"))
    users.disable_user(settings, "dean.one")
    assert users.viewer_of(settings, "dean.one") is None
    assert users.viewer_of(settings, "nobody") is None
    users.enable_user(settings, "dean.one")
    assert users.viewer_of(settings, "dean.one") is not None


def test_a_weak_hash_is_replaced_at_log_in(ws, settings, monkeypatch):
    weak = PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1)
    with monkeypatch.context() as m:
        m.setattr(users, "_hasher", lambda: weak)
        users.add_user(settings, "old.one", "rector", [], PASSWORD)
    before = json.loads(users.users_path(settings).read_text())["users"][0]["password_hash"]
    assert "m=8192,t=1,p=1" in before
    assert users.authenticate(settings, "old.one", PASSWORD) == Viewer(ViewerRole.RECTOR)
    after = json.loads(users.users_path(settings).read_text())["users"][0]["password_hash"]
    assert after != before and not users._hasher().check_needs_rehash(after)
    assert users.authenticate(settings, "old.one", PASSWORD) == Viewer(ViewerRole.RECTOR)


def test_a_user_shows_no_hash():
    user = users.User("aida.k", ViewerRole.DEAN, ("F-NHP",), None, False, "t", "t")
    assert "hash" not in repr(user) and "hash" not in json.dumps(user.as_dict())
    assert user.viewer == Viewer(ViewerRole.DEAN, ("F-NHP",))
    with pytest.raises(AttributeError):
        user.role = ViewerRole.RECTOR  # type: ignore[misc]


def test_every_users_command_has_plain_help():
    for cmd in ("add", "list", "disable", "enable", "passwd"):
        result = runner.invoke(root, ["users", cmd, "--help"])
        assert result.exit_code == 0
        assert len(result.output.split("Usage:")[-1].strip().splitlines()) > 2


def test_text_typed_with_square_brackets_is_shown_as_typed(ws):
    result = sapat("users", "add", "[/x]", "--role", "rector")
    assert result.exit_code == 2 and _says(result, "'[/x]' cannot be a log-in name")
    _clean(result)
    unit = sapat("users", "add", "dean.one", "--role", "dean", "--unit", "[/b]F-NHP")
    assert unit.exit_code == 2 and _says(unit, "'[/b]F-NHP'", "did you mean F-NHP")
    _clean(unit)
