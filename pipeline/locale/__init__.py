"""The words Sapat prints around its numbers, in Kyrgyz, Russian and English.

Messages are data (``messages.yaml`` beside this file), looked up by id; a language
missing for an entry falls back to English, an unknown id to the id itself.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

LANGUAGES = ("ky", "ru", "en")


@cache
def _messages() -> dict[str, dict[str, str]]:
    import yaml

    text = (Path(__file__).with_name("messages.yaml")).read_text("utf-8")
    return {
        str(k): {str(lang): str(v) for lang, v in d.items()}
        for k, d in yaml.safe_load(text).items()
    }


def t(key: str, lang: str, **fields: object) -> str:
    """Message ``key`` in ``lang`` with ``fields`` filled in."""
    entry = _messages().get(key)
    text = key if entry is None else entry.get(lang) or entry.get("en") or key
    return text.format(**fields) if fields else text


#: thousands separator and decimal mark per language (ky and ru: thin space, comma)
_MARKS = {"ky": ("\u2009", ","), "ru": ("\u2009", ","), "en": (",", ".")}


def number(value: object, lang: str, decimals: int = 1) -> str:
    """``value`` written as a reader of ``lang`` writes numbers: ``12 345,6`` in Kyrgyz and
    Russian (thin space, decimal comma), ``12,345.6`` in English; empty for a missing one."""
    try:
        x = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return ""
    if x != x:
        return ""
    group, mark = _MARKS.get(lang, _MARKS["en"])
    text = f"{x:,.{decimals}f}"
    return text.replace(",", "\0").replace(".", mark).replace("\0", group)
