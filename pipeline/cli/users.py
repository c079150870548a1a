"""``sapat users``: who may open the dashboard, and what each person sees.

The accounts are kept in the workspace's ``data/users.json`` (:mod:`pipeline.users`);
every change is written to the audit log of the workspace's database. A password is
typed at a hidden prompt, or read from standard input with ``--password-stdin`` (for
scripts), never given on the command line, where the shell's history would keep it.

Registered on the ``sapat`` command in :mod:`pipeline.cli.main` with
``app.add_typer(users_app, name="users")``; that module is imported inside the
functions, as it imports this one.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated

import typer

from pipeline.errors import UsageError

users_app = typer.Typer(
    help="Who may open the dashboard, and what each person sees.", no_args_is_help=True
)

NameArgument = Annotated[str, typer.Argument(help="The log-in name.", show_default=False)]
PasswordStdinOption = Annotated[
    bool,
    typer.Option(
        "--password-stdin",
        help="Read the password from standard input (one line), for scripts; "
        "without it the password is asked for twice, hidden.",
    ),
]


def _friendly_errors():
    """:func:`pipeline.cli.main.friendly_errors` (which prints a message as typed, square
    brackets included)."""
    from pipeline.cli.main import friendly_errors

    return friendly_errors()


def _password(from_stdin: bool) -> str:
    """The new password: one line of standard input, or typed twice at a hidden prompt."""
    if from_stdin:
        line = sys.stdin.readline()
        if not line.strip("\r\n"):
            raise UsageError(
                "--password-stdin: no password on standard input",
                expected="the password on one line, e.g. from a password manager's command",
            )
        return line.rstrip("\r\n")
    return typer.prompt("Password", hide_input=True, confirmation_prompt=True)


@contextmanager
def _audit_log(ws) -> Iterator:
    """The workspace's database open for an audit entry (made when it does not exist
    yet), as the other commands open it; the actor is the OS user (or SAPAT_ACTOR)."""
    from pipeline.ingest.pseudonym import load_key
    from pipeline.store import Store

    s = ws.settings
    with Store(s.db_path, raw_dir=s.raw_dir, audit_key=load_key()) as store:
        yield store


def _unit_check(ws, role: str, units: list[str]) -> tuple[Callable[[str], bool] | None, list]:
    """The registry's test of this role's codes, and the codes to suggest from: a dean
    covers a faculty-level unit figures are reported for (a faculty, institute or college
    right below the university), a programme leader programmes, a teacher teacher codes.
    A code that exists but is of another kind is refused saying what it is."""
    from pipeline.publish import ViewerRole
    from pipeline.registry import FACULTY_KINDS

    if not units or role not in (ViewerRole.DEAN, ViewerRole.PROGRAMME_LEADER, ViewerRole.TEACHER):
        return None, []
    reg = ws.registry
    if role == ViewerRole.DEAN:
        choices = [str(c) for c in reg.faculties["code"]]
    elif role == ViewerRole.PROGRAMME_LEADER:
        choices = [str(c) for c in reg.programmes["code"]]
    else:
        choices = [str(c) for c in reg.teachers["teacher_code"]]
    allowed = set(choices)
    wanted = {
        ViewerRole.DEAN: "a faculty, institute or college",
        ViewerRole.PROGRAMME_LEADER: "a programme",
        ViewerRole.TEACHER: "a teacher code",
    }[ViewerRole(role)]

    def known(code: str) -> bool:
        if code in allowed:
            return True
        if not reg.exists(code):
            return False
        kind = reg.kind(code)
        top = reg.faculty_of(code)
        if role == ViewerRole.DEAN and kind in FACULTY_KINDS and top:
            raise UsageError(
                f"{code} is a {kind} inside {top}, and figures are reported for {top}",
                expected=f"--unit {top}",
            )
        hint = f"--unit {top} (its faculty-level unit)" if role == ViewerRole.DEAN and top else ""
        raise UsageError(
            f"{code} is {'the university' if kind == 'university' else 'a ' + kind}, not {wanted}",
            expected=hint or f"{wanted} code: sapat org show",
        )

    return known, choices


@users_app.command("add")
def users_add(
    name: NameArgument,
    role: Annotated[
        str,
        typer.Option(
            "--role",
            help="What the person sees: quality_office or rector (everything), dean (their "
            "faculty, institute or college), programme_leader (their programmes), teacher "
            "(their own teaching evaluations).",
            show_default=False,
        ),
    ],
    unit: Annotated[
        list[str] | None,
        typer.Option(
            "--unit",
            help="A code the person covers (repeat for several): a dean's faculty-level "
            "unit, a programme leader's programme, a teacher's teacher code.",
        ),
    ] = None,
    display_name: Annotated[
        str | None,
        typer.Option("--display-name", help="How the dashboard greets the person."),
    ] = None,
    password_stdin: PasswordStdinOption = False,
) -> None:
    """Add a person who may open the dashboard.

    The log-in name has 3 to 64 letters, digits, '.', '_', '@' or '-'; the password at
    least 10 characters (only its Argon2id hash is kept). Unit codes are checked against
    the workspace's declarations (sapat org show).
    """
    from rich.markup import escape

    from pipeline import users
    from pipeline.cli.main import console, workspace

    with _friendly_errors():
        ws = workspace()
        units = list(unit or [])
        known, choices = _unit_check(ws, role.strip(), units)
        checks = {"known_units": known, "unit_choices": choices}
        # everything but the password first: nobody types a password for nothing
        users.check_new_user(ws.settings, name, role, units, display_name, **checks)
        password = _password(password_stdin)
        users.check_password(password)
        with _audit_log(ws) as store:
            user = users.add_user(ws.settings, name, role, units, password, display_name, **checks)
            covers = f"; units {', '.join(user.units)}" if user.units else ""
            store.audit("user add", user.name, f"role {user.role}{covers}")
    console.print(
        f"[green]✓[/] {user.name} may open the dashboard as {user.role}"
        + (f" ({escape(', '.join(user.units))})" if user.units else ""),
        highlight=False,
    )


@users_app.command("list")
def users_list(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """List the accounts: who may open the dashboard, and what each sees.

    Name, role, units, display name and disabled (--json adds when each account was made
    and last changed); never a password or its hash.
    """
    from rich.markup import escape
    from rich.table import Table

    from pipeline import users
    from pipeline.cli.main import console, workspace

    with _friendly_errors():
        accounts = users.list_users(workspace().settings)
    if as_json:
        print(json.dumps([u.as_dict() for u in accounts], ensure_ascii=False))
        return
    if not accounts:
        console.print("No accounts yet: add one with `sapat users add NAME --role ROLE`.")
        return
    table = Table(title="Dashboard accounts")
    for col in ("name", "role", "units", "display name", "disabled"):
        table.add_column(col, overflow="fold")
    for u in accounts:
        table.add_row(
            u.name,
            str(u.role),
            escape(", ".join(u.units)) or "(everything)",
            escape(u.display_name or ""),
            "[red]yes[/]" if u.disabled else "no",
        )
    console.print(table)


def _switch(name: str, disable: bool) -> None:
    from pipeline import users
    from pipeline.cli.main import console, workspace

    word = "disabled" if disable else "enabled"
    with _friendly_errors():
        ws = workspace()
        user = users.get_user(ws.settings, name)
        if user.disabled == disable:
            console.print(f"{user.name} is already {word}; nothing changed.", highlight=False)
            return
        with _audit_log(ws) as store:
            change = users.disable_user if disable else users.enable_user
            user = change(ws.settings, user.name)
            store.audit(f"user {'disable' if disable else 'enable'}", user.name, word)
    console.print(
        f"[green]✓[/] {user.name} is {word}"
        + ("; an open dashboard session ends at its next page." if disable else "."),
        highlight=False,
    )


@users_app.command("disable")
def users_disable(name: NameArgument) -> None:
    """Stop a person from opening the dashboard.

    An open dashboard session ends at its next page. The account is kept: `sapat users
    enable` lets the person in again.
    """
    _switch(name, disable=True)


@users_app.command("enable")
def users_enable(name: NameArgument) -> None:
    """Let a disabled person open the dashboard again, with their password as it was."""
    _switch(name, disable=False)


@users_app.command("passwd")
def users_passwd(name: NameArgument, password_stdin: PasswordStdinOption = False) -> None:
    """Give a person a new password.

    At least 10 characters, typed twice at a hidden prompt (or one line of standard input
    with --password-stdin); only its Argon2id hash is kept.
    """
    from pipeline import users
    from pipeline.cli.main import console, workspace

    with _friendly_errors():
        ws = workspace()
        user = users.get_user(ws.settings, name)
        password = _password(password_stdin)
        users.check_password(password)
        with _audit_log(ws) as store:
            user = users.set_password(ws.settings, user.name, password)
            store.audit("user password", user.name, "changed")
    console.print(f"[green]✓[/] New password for {user.name}.", highlight=False)
