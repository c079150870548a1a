"""Who may open the dashboard: the workspace's user accounts, in one file.

The accounts live in ``<workspace>/data/users.json`` (readable by its owner only, mode
0o600), rewritten whole and atomically (a temporary file renamed over it) on every
change. Each account holds:

``name``
    the log-in name: 3 to 64 ASCII letters, digits, ``.``, ``_``, ``@`` or ``-``; two
    names may not differ by case only (a log-in name is found whatever its case).
``role``
    a :class:`~pipeline.publish.ViewerRole`: ``quality_office`` and ``rector`` see
    everything; ``dean``, ``programme_leader`` and ``teacher`` see their ``units``.
``units``
    the codes the person covers: a dean's faculty, institute or college, a programme
    leader's programmes, a teacher's own teacher code; none for the two other roles.
``display_name``
    how the dashboard greets the person (optional).
``password_hash``
    an Argon2id hash (``argon2.PasswordHasher()``, memory-hard); the password itself is
    never written anywhere.
``disabled``
    a disabled account cannot log in, and its open sessions end at their next request
    (:func:`viewer_of`).
``created_utc``, ``changed_utc``
    ISO 8601 UTC times (``2026-01-31T09:15:00Z``).

Nothing here reaches the database: the CLI writes each change to the audit log.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from pipeline.config import Settings
from pipeline.errors import DeclarationError, UsageError
from pipeline.publish import Viewer, ViewerRole

#: The file of the accounts, in the workspace's data folder.
USERS_FILE = "users.json"
#: Version of the file's layout.
FORMAT = 1
#: A log-in name: 3 to 64 ASCII letters, digits, ``.``, ``_``, ``@``, ``-``.
NAME_PATTERN = re.compile(r"[A-Za-z0-9._@-]{3,64}")
MIN_PASSWORD = 10
#: Longer passwords are refused (hashing megabytes would be a way to slow the server).
MAX_PASSWORD = 1024
MAX_DISPLAY_NAME = 200
#: Roles that see everything and cover no unit.
EVERYTHING = (ViewerRole.QUALITY_OFFICE, ViewerRole.RECTOR)
#: What a unit code is, for each role that has units.
UNIT_WORDS = {
    ViewerRole.DEAN: "faculty, institute or college",
    ViewerRole.PROGRAMME_LEADER: "programme",
    ViewerRole.TEACHER: "teacher code",
}
_ROLE_WORDS = {
    ViewerRole.QUALITY_OFFICE: "the quality office",
    ViewerRole.RECTOR: "a rector",
    ViewerRole.DEAN: "a dean",
    ViewerRole.PROGRAMME_LEADER: "a programme leader",
    ViewerRole.TEACHER: "a teacher",
}
_FIELDS = (
    "name",
    "role",
    "units",
    "display_name",
    "password_hash",
    "disabled",
    "created_utc",
    "changed_utc",
)


@dataclass(frozen=True)
class User:
    """One account as the rest of Sapat sees it (never its password hash).

    Attributes
    ----------
    name
        The log-in name.
    role
        What the person sees (:class:`~pipeline.publish.ViewerRole`).
    units
        The unit, programme or teacher codes the person covers (empty for the quality
        office and the rector).
    display_name
        How the dashboard greets the person, if given.
    disabled
        True when the account may not log in.
    created_utc, changed_utc
        When the account was made and last changed (ISO 8601, UTC).
    """

    name: str
    role: ViewerRole
    units: tuple[str, ...]
    display_name: str | None
    disabled: bool
    created_utc: str
    changed_utc: str

    @property
    def viewer(self) -> Viewer:
        """The :class:`~pipeline.publish.Viewer` this account reads as."""
        return Viewer(self.role, self.units)

    def as_dict(self) -> dict[str, Any]:
        """The account as plain JSON values (no password hash: there is none here)."""
        return {
            "name": self.name,
            "role": str(self.role),
            "units": list(self.units),
            "display_name": self.display_name,
            "disabled": self.disabled,
            "created_utc": self.created_utc,
            "changed_utc": self.changed_utc,
        }


# ----------------------------------------------------------------------- the file
def users_path(settings: Settings) -> Path:
    """The accounts file of a workspace.

    Parameters
    ----------
    settings
        The workspace's settings.

    Returns
    -------
    Path
        ``<workspace>/data/users.json`` (it need not exist yet).
    """
    return settings.data_dir / USERS_FILE


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _corrupt(path: Path, what: str) -> DeclarationError:
    return DeclarationError(
        f"the user accounts file is damaged: {what}",
        file=str(path),
        expected="the file as `sapat users` writes it; restore it from a backup, or move "
        "it aside and add the accounts again",
    )


def _check_record(path: Path, i: int, rec: object) -> dict[str, Any]:
    """One account of the file, checked (a damaged file is never half used)."""
    if not isinstance(rec, dict):
        raise _corrupt(path, f"account {i + 1} is not an object")
    missing = [f for f in _FIELDS if f not in rec]
    if missing:
        raise _corrupt(path, f"account {i + 1} lacks {', '.join(missing)}")
    name = rec["name"]
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        raise _corrupt(path, f"account {i + 1} has no valid name")
    if rec["role"] not in {r.value for r in ViewerRole}:
        raise _corrupt(path, f"account {name!r} has an unknown role {rec['role']!r}")
    units = rec["units"]
    if not isinstance(units, list) or not all(isinstance(u, str) and u for u in units):
        raise _corrupt(path, f"account {name!r}: units is not a list of codes")
    if (ViewerRole(rec["role"]) in EVERYTHING) == bool(units):
        raise _corrupt(path, f"account {name!r}: its units do not fit its role")
    if rec["display_name"] is not None and not isinstance(rec["display_name"], str):
        raise _corrupt(path, f"account {name!r}: display_name is not text")
    digest = rec["password_hash"]
    if not isinstance(digest, str) or not digest.startswith("$argon2"):
        raise _corrupt(path, f"account {name!r} has no Argon2 password hash")
    if not isinstance(rec["disabled"], bool):
        raise _corrupt(path, f"account {name!r}: disabled is not true or false")
    for f in ("created_utc", "changed_utc"):
        if not isinstance(rec[f], str):
            raise _corrupt(path, f"account {name!r}: {f} is not a time")
    return {f: rec[f] for f in _FIELDS}


def _read(settings: Settings) -> list[dict[str, Any]]:
    """Every account of the file (none when it does not exist yet)."""
    path = users_path(settings)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise DeclarationError(
            f"cannot read the user accounts file ({reason})", file=str(path)
        ) from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _corrupt(path, f"not valid JSON (line {exc.lineno}: {exc.msg})") from None
    if not isinstance(data, dict) or not isinstance(data.get("users"), list):
        raise _corrupt(path, "no list of users in it")
    if data.get("format") != FORMAT:
        raise _corrupt(path, f"layout {data.get('format')!r} is not {FORMAT}")
    records = [_check_record(path, i, r) for i, r in enumerate(data["users"])]
    seen: set[str] = set()
    for r in records:
        if r["name"].casefold() in seen:
            raise _corrupt(path, f"the name {r['name']!r} is there twice")
        seen.add(r["name"].casefold())
    return records


def _write(settings: Settings, records: list[dict[str, Any]]) -> None:
    """Replace the file with ``records``: a temporary file (mode 0o600) beside it,
    flushed to disk, then renamed over it, so a reader sees the old or the new file."""
    path = users_path(settings)
    text = json.dumps({"format": FORMAT, "users": records}, ensure_ascii=False, indent=2) + "\n"
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    done = False
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o600)  # whatever the umask
        os.replace(tmp, path)
        done = True
    except OSError as exc:
        raise UsageError(
            f"cannot write the user accounts file ({exc.strerror or exc})",
            file=str(path),
            expected="a data folder this user may write",
        ) from exc
    finally:
        if not done:
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def _locked(settings: Settings) -> Iterator[None]:
    """Hold the accounts file's lock while it is read, changed and written, so two
    changes at once (the CLI, the dashboard rehashing) never lose one of them. On a
    system without ``fcntl`` (Windows) there is no lock."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    path = users_path(settings)
    lock = path.with_name(f".{path.name}.lock")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise UsageError(
            f"cannot lock the user accounts file ({exc.strerror or exc})",
            file=str(lock),
            expected="a data folder this user may write",
        ) from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _index(records: list[dict[str, Any]], name: object) -> int | None:
    """Where the account ``name`` is (case does not matter), or None."""
    if not isinstance(name, str):
        return None
    key = name.casefold()
    return next((i for i, r in enumerate(records) if r["name"].casefold() == key), None)


def _find(settings: Settings, records: list[dict[str, Any]], name: str) -> int:
    """Where the account ``name`` is; an unknown name is a :class:`UsageError`."""
    i = _index(records, name)
    if i is None:
        from pipeline.instruments import closest

        known = [r["name"] for r in records]
        raise UsageError(
            f"there is no user {name!r}" + closest(name, known),
            file=str(users_path(settings)),
            expected="a name from `sapat users list`" if known else "`sapat users add` first",
        )
    return i


def _user(rec: dict[str, Any]) -> User:
    return User(
        name=rec["name"],
        role=ViewerRole(rec["role"]),
        units=tuple(rec["units"]),
        display_name=rec["display_name"],
        disabled=rec["disabled"],
        created_utc=rec["created_utc"],
        changed_utc=rec["changed_utc"],
    )


# ------------------------------------------------------------------- passwords
@cache
def _hasher() -> PasswordHasher:
    return PasswordHasher()


@cache
def _dummy_hash() -> str:
    """A hash of a random password no one knows: what an unknown name is verified
    against, so that a log-in takes as long whether the name exists or not."""
    return _hasher().hash(secrets.token_urlsafe(32))


def _normal(password: str) -> str:
    """The password as hashed: Unicode NFC (the same letters typed on two systems)."""
    return unicodedata.normalize("NFC", password)


def check_password(password: object) -> str:
    """A new password, checked.

    Parameters
    ----------
    password
        The password typed.

    Returns
    -------
    str
        The password as it will be hashed (Unicode NFC).

    Raises
    ------
    UsageError
        When it is not text, shorter than 10 characters or longer than 1024.
    """
    if not isinstance(password, str):
        raise UsageError("the password must be text")
    password = _normal(password)
    if len(password) < MIN_PASSWORD:
        raise UsageError(
            f"the password is too short: {len(password)} characters",
            expected=f"at least {MIN_PASSWORD} characters (a few words make a good one)",
        )
    if len(password) > MAX_PASSWORD:
        raise UsageError(
            f"the password is too long: {len(password)} characters",
            expected=f"at most {MAX_PASSWORD} characters",
        )
    return password


# ----------------------------------------------------------------- the accounts
def parse_role(role: ViewerRole | str) -> ViewerRole:
    """A role by its value, with the closest known when it is unknown.

    Parameters
    ----------
    role
        ``quality_office``, ``rector``, ``dean``, ``programme_leader`` or ``teacher``.

    Returns
    -------
    ViewerRole

    Raises
    ------
    UsageError
        When the role is unknown.
    """
    if isinstance(role, ViewerRole):
        return role
    try:
        return ViewerRole(str(role).strip())
    except ValueError:
        from pipeline.instruments import closest

        roles = [r.value for r in ViewerRole]
        raise UsageError(
            f"unknown role {role!r}" + closest(role, roles), expected=", ".join(roles)
        ) from None


def check_new_user(
    settings: Settings,
    name: str,
    role: ViewerRole | str,
    units: Iterable[str] = (),
    display_name: str | None = None,
    *,
    known_units: Callable[[str], bool] | None = None,
    unit_choices: Iterable[str] = (),
) -> tuple[str, ViewerRole, tuple[str, ...], str | None]:
    """Check an account before it is added (the CLI calls it before asking for the
    password, :func:`add_user` calls it again).

    Parameters
    ----------
    settings
        The workspace's settings.
    name
        The log-in name: 3 to 64 ASCII letters, digits, ``.``, ``_``, ``@``, ``-``; not
        the name of an account already there, whatever the case.
    role
        A :class:`~pipeline.publish.ViewerRole` or its value.
    units
        The codes the person covers: at least one for a dean, a programme leader or a
        teacher, none for the quality office or a rector.
    display_name
        How the dashboard greets the person (blank: none).
    known_units
        The org registry's membership test for this role's codes (a dean's faculty-level
        units, programmes, teacher codes); it may raise :class:`UsageError` itself to say
        why a code that exists does not fit. None: the codes are not checked.
    unit_choices
        The codes an unknown code is compared with, to suggest the closest.

    Returns
    -------
    tuple
        ``(name, role, units, display_name)`` as they will be stored.

    Raises
    ------
    UsageError
        When anything does not fit, in a sentence saying what to give instead.
    """
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        raise UsageError(
            f"{name!r} cannot be a log-in name",
            expected="3 to 64 letters (a-z, A-Z), digits, '.', '_', '@' or '-'",
        )
    role = parse_role(role)
    codes = tuple(dict.fromkeys(str(u).strip() for u in units))
    who = _ROLE_WORDS[role]
    if role in EVERYTHING:
        if codes:
            raise UsageError(f"{who} sees every unit: give no --unit", value=", ".join(codes))
    else:
        what = UNIT_WORDS[role]
        if "" in codes:
            raise UsageError("an empty --unit", expected=f"a {what} code")
        if not codes:
            raise UsageError(
                f"{who} needs at least one --unit: the {what} they may see",
                expected=f"--unit CODE (a {what}; repeat for several)",
            )
        if known_units is not None:
            choices = list(unit_choices)
            for code in codes:
                if not known_units(code):
                    from pipeline.instruments import closest

                    raise UsageError(
                        f"unknown {what} {code!r}" + closest(code, choices),
                        expected="a code from `sapat org show`"
                        if role is not ViewerRole.TEACHER
                        else "a teacher_code from declarations/teachers.csv",
                    )
    if display_name is not None:
        if not isinstance(display_name, str):
            raise UsageError("the display name must be text")
        display_name = " ".join(display_name.split()) or None
        if display_name and len(display_name) > MAX_DISPLAY_NAME:
            raise UsageError(
                "the display name is too long", expected=f"at most {MAX_DISPLAY_NAME} characters"
            )
    _refuse_taken(settings, _read(settings), name)
    return name, role, codes, display_name


def _refuse_taken(settings: Settings, records: list[dict[str, Any]], name: str) -> None:
    i = _index(records, name)
    if i is not None:
        raise UsageError(
            f"there is already a user {records[i]['name']!r}",
            file=str(users_path(settings)),
            expected="another name (or `sapat users enable` / `sapat users passwd` for that one)",
        )


def add_user(
    settings: Settings,
    name: str,
    role: ViewerRole | str,
    units: Iterable[str],
    password: str,
    display_name: str | None = None,
    *,
    known_units: Callable[[str], bool] | None = None,
    unit_choices: Iterable[str] = (),
) -> User:
    """Add an account.

    Parameters
    ----------
    settings
        The workspace's settings.
    name
        The log-in name (see :func:`check_new_user`).
    role
        A :class:`~pipeline.publish.ViewerRole` or its value.
    units
        The codes the person covers (none for the quality office and a rector).
    password
        At least 10 characters; only its Argon2id hash is kept.
    display_name
        How the dashboard greets the person.
    known_units
        The org registry's membership test for this role's codes (None: unchecked).
    unit_choices
        The codes to suggest from when a code is unknown.

    Returns
    -------
    User
        The account added.

    Raises
    ------
    UsageError
        A name already taken, an unknown role, units that do not fit the role, an
        unknown unit code, a password too short.
    DeclarationError
        When the accounts file is damaged.
    """
    name, role, codes, display_name = check_new_user(
        settings,
        name,
        role,
        units,
        display_name,
        known_units=known_units,
        unit_choices=unit_choices,
    )
    digest = _hasher().hash(check_password(password))
    with _locked(settings):
        records = _read(settings)
        _refuse_taken(settings, records, name)  # added meanwhile?
        now = _now()
        rec = {
            "name": name,
            "role": role.value,
            "units": list(codes),
            "display_name": display_name,
            "password_hash": digest,
            "disabled": False,
            "created_utc": now,
            "changed_utc": now,
        }
        _write(settings, [*records, rec])
    return _user(rec)


def list_users(settings: Settings) -> list[User]:
    """Every account, in the order they were added.

    Parameters
    ----------
    settings
        The workspace's settings.

    Returns
    -------
    list of User
        No password hash in any of them.

    Raises
    ------
    DeclarationError
        When the accounts file is damaged.
    """
    return [_user(r) for r in _read(settings)]


def get_user(settings: Settings, name: str) -> User:
    """One account by its log-in name (case does not matter).

    Parameters
    ----------
    settings
        The workspace's settings.
    name
        The log-in name.

    Returns
    -------
    User

    Raises
    ------
    UsageError
        When there is no such account (with the closest names).
    """
    records = _read(settings)
    return _user(records[_find(settings, records, name)])


def _change(settings: Settings, name: str, **values: Any) -> User:
    with _locked(settings):
        records = _read(settings)
        i = _find(settings, records, name)
        rec = {**records[i], **values, "changed_utc": _now()}
        records[i] = rec
        _write(settings, records)
    return _user(rec)


def disable_user(settings: Settings, name: str) -> User:
    """Stop an account from logging in; its open sessions end at their next request.

    Parameters
    ----------
    settings
        The workspace's settings.
    name
        The log-in name.

    Returns
    -------
    User
        The account, disabled (unchanged when it already was).

    Raises
    ------
    UsageError
        When there is no such account.
    """
    user = get_user(settings, name)
    return user if user.disabled else _change(settings, name, disabled=True)


def enable_user(settings: Settings, name: str) -> User:
    """Let a disabled account log in again.

    Parameters
    ----------
    settings
        The workspace's settings.
    name
        The log-in name.

    Returns
    -------
    User
        The account, enabled (unchanged when it already was).

    Raises
    ------
    UsageError
        When there is no such account.
    """
    user = get_user(settings, name)
    return _change(settings, name, disabled=False) if user.disabled else user


def set_password(settings: Settings, name: str, password: str) -> User:
    """Give an account a new password.

    Parameters
    ----------
    settings
        The workspace's settings.
    name
        The log-in name.
    password
        At least 10 characters; only its Argon2id hash is kept.

    Returns
    -------
    User
        The account.

    Raises
    ------
    UsageError
        When there is no such account or the password is too short.
    """
    get_user(settings, name)  # an unknown name before the slow hash
    digest = _hasher().hash(check_password(password))
    return _change(settings, name, password_hash=digest)


def authenticate(settings: Settings, name: str, password: str) -> Viewer | None:
    """The viewer a log-in name and password open the dashboard as.

    The password is verified with Argon2 even when the name is unknown (against the
    hash of a random password), so the time a log-in takes does not tell which names
    exist. A hash made with weaker parameters than today's is replaced by a new one.

    Parameters
    ----------
    settings
        The workspace's settings.
    name
        The log-in name (case does not matter).
    password
        The password typed.

    Returns
    -------
    Viewer or None
        ``Viewer(role, units)``; None for an unknown name, a wrong password or a
        disabled account (the same answer for all three).

    Raises
    ------
    DeclarationError
        When the accounts file is damaged (nobody logs in).
    """
    records = _read(settings)
    i = _index(records, name)
    rec = records[i] if i is not None else None
    stored = rec["password_hash"] if rec is not None else _dummy_hash()
    hasher = _hasher()
    if not isinstance(password, str) or len(password) > 4 * MAX_PASSWORD:
        password = ""
    try:
        hasher.verify(stored, _normal(password))
    except (VerificationError, InvalidHashError):
        return None
    if rec is None or rec["disabled"]:
        return None
    if hasher.check_needs_rehash(stored):
        _rehash(settings, rec["name"], stored, hasher.hash(_normal(password)))
    return Viewer(ViewerRole(rec["role"]), tuple(rec["units"]))


def _rehash(settings: Settings, name: str, old: str, new: str) -> None:
    """Store a stronger hash of the same password (when nobody changed it meanwhile);
    a file that cannot be written leaves the old hash, and the log-in still succeeds."""
    with contextlib.suppress(UsageError), _locked(settings):
        records = _read(settings)
        i = _index(records, name)
        if i is not None and records[i]["password_hash"] == old:
            records[i] = {**records[i], "password_hash": new}
            _write(settings, records)


def viewer_of(settings: Settings, name: str) -> Viewer | None:
    """The viewer of a logged-in session now: None when the account is gone or disabled,
    so disabling takes effect at the session's next request.

    Parameters
    ----------
    settings
        The workspace's settings.
    name
        The session's log-in name.

    Returns
    -------
    Viewer or None
    """
    records = _read(settings)
    i = _index(records, name)
    if i is None or records[i]["disabled"]:
        return None
    return Viewer(ViewerRole(records[i]["role"]), tuple(records[i]["units"]))


__all__ = [
    "USERS_FILE",
    "User",
    "add_user",
    "authenticate",
    "check_new_user",
    "check_password",
    "disable_user",
    "enable_user",
    "get_user",
    "list_users",
    "parse_role",
    "set_password",
    "users_path",
    "viewer_of",
]
