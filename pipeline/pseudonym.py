"""Pseudonymous keys: respondents are recognised across files without being stored.

A keyed HMAC-SHA256 turns an e-mail or a platform id into a key that cannot be
reversed or recomputed without the secret. The secret lives outside the database
and the repository: ``SAPAT_KEY_FILE`` or ``~/.config/sapat/pseudonym.key``, made on
first use with permissions 600. Keep a backup of it: a new key makes the same person
look new.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

from pipeline.errors import SapatError

DEFAULT_KEY_FILE = Path("~/.config/sapat/pseudonym.key")


def key_path() -> Path:
    return Path(os.environ.get("SAPAT_KEY_FILE", str(DEFAULT_KEY_FILE))).expanduser()


def load_key(path: Path | None = None) -> bytes:
    """The secret key, created (32 random bytes) when it does not exist yet."""
    path = path or key_path()
    try:
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_hex(32))
        key = bytes.fromhex(path.read_text().strip())
    except (OSError, ValueError) as exc:
        raise SapatError(
            f"cannot read or create the pseudonymisation key ({exc})",
            file=str(path),
            expected="a file holding 64 hexadecimal characters; set SAPAT_KEY_FILE to move it",
        ) from exc
    if len(key) < 16:
        raise SapatError("the pseudonymisation key is too short", file=str(path))
    return key


def pseudonym(key: bytes, *parts: str) -> str:
    """HMAC-SHA256 of the parts (case- and space-normalised), as 32 hex characters."""
    msg = "\x1f".join(p.strip().casefold() for p in parts).encode("utf-8")
    return hmac.new(key, msg, hashlib.sha256).hexdigest()[:32]
