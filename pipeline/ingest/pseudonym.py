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
from collections.abc import Iterable, Iterator, Sequence
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


def fold(part: str) -> str:
    """One part of a pseudonym's message as :func:`pseudonym` normalises it."""
    return part.strip().casefold()


def _digests(key: bytes, prefix: Sequence[str], values: Iterable[str]) -> Iterator:
    """HMAC-SHA256 objects of ``prefix + [value]`` for each value, as :func:`pseudonym`
    builds the message; the key blocks and the prefix are hashed once (same digests as
    ``hmac.new``, about twice as fast)."""
    if len(key) > 64:
        key = hashlib.sha256(key).digest()
    block = key.ljust(64, b"\0")
    head = "".join(fold(p) + "\x1f" for p in prefix).encode("utf-8")
    inner = hashlib.sha256(bytes(b ^ 0x36 for b in block) + head)
    outer = hashlib.sha256(bytes(b ^ 0x5C for b in block))
    for v in values:
        i = inner.copy()
        i.update(fold(v).encode("utf-8"))
        o = outer.copy()
        o.update(i.digest())
        yield o


def pseudonyms(key: bytes, prefix: Sequence[str], values: Iterable[str]) -> list[str]:
    """``pseudonym(key, *prefix, v)`` for each ``v`` in ``values`` (the same keys)."""
    return [o.hexdigest()[:32] for o in _digests(key, prefix, values)]


def keyed_labels(key: bytes, prefix: Sequence[str], values: Iterable[str]) -> list[bytes]:
    """The first 16 bytes of ``pseudonym``'s HMAC for each value: random-looking labels
    that only the key holder can compute, combined (XOR) into per-row keys."""
    return [o.digest()[:16] for o in _digests(key, prefix, values)]
